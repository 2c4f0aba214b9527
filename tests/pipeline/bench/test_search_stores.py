"""The search part of ``mmrag bench`` on both vector stores: the embedded one and a private ``chroma run``.

Shape and sizing fields only; timings are never asserted (they are measured by running the command).
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import psutil
import pytest

from mmrag.pipeline.bench import main as bench
from mmrag.pipeline.bench.common import Latency
from mmrag.pipeline.bench.render import render
from mmrag.pipeline.bench.results import Results, targets
from mmrag.pipeline.bench.synthetic import tier_dir
from mmrag.pipeline.bench.tier import TierResult

ALL_BUT_SEARCH = "workers,ingest,baseline,reingest,small-files,busy-search,cold,sync"


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _chroma_servers_on(folder: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "run" in cmdline and str(folder) in cmdline:
            found.append(int(proc.info["pid"]))
    return found


def test_search_figures_on_the_local_and_the_server_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], loopback_only: None
) -> None:
    cache = tmp_path / "cache"
    argv = ["--sizes", "200", "--stores", "server,local", "--embedder", "hash", "--skip", ALL_BUT_SEARCH]
    argv += ["--queries", "5", "--rounds", "1", "--cache-dir", str(cache), "--json"]

    assert bench.main(argv) == 0  # the server store first: its index is built in a process of its own

    data = json.loads(capsys.readouterr().out)
    local, server = data["search_ms"]["200"], data["search_ms_server"]["200"]
    assert (local["store"], local["server"], server["store"]) == ("local", None, "server")
    for tier in (local, server):
        assert _positive(tier["p50"]) and _positive(tier["p95"]) and tier["p95"] >= tier["p50"]
        assert _positive(tier["peak_rss_mb"]) and _positive(tier["disk_mb"]) and tier["answered"] > 0
    assert _positive(server["server"]["peak_rss_mb"]) and _positive(server["server"]["disk_mb"])
    assert server["server"]["disk_mb"] < server["disk_mb"]  # the server's folder is the index's Chroma part
    memory_gb = (server["peak_rss_mb"] + server["server"]["peak_rss_mb"]) / 1000
    assert server["chunks_per_gb_ram"] == pytest.approx(200 / memory_gb, rel=0.01)  # both processes count
    assert local["chunks_per_gb_ram"] == pytest.approx(200 / (local["peak_rss_mb"] / 1000), rel=0.01)
    assert not server["cached"] and local["cached"]  # one build, shared by both stores
    assert _chroma_servers_on(tier_dir(cache, 200) / "chroma") == [], "the bench stopped its chroma run"


def _tier(store: str, peak: float, server_peak: float = 0.0, size: int = 1_000_000) -> TierResult:
    ms = Latency.of([0.01, 0.02])
    latencies = {f.name: ms for f in fields(TierResult) if f.type == "Latency"}
    return TierResult(
        size=size, build_s=1.0, cached=True, disk_mb=9000.0, peak_rss_mb=peak, index_rss_mb=1.0, queries=2,
        answered=2, add_file_vectors_ms_per_chunk=1.0, add_file_keywords_ms_per_chunk=1.0, store=store,
        server_peak_rss_mb=server_peak, server_disk_mb=8000.0 if server_peak else 0.0, **latencies,
    )  # fmt: skip


def test_the_table_gives_each_store_a_row_and_a_sizing_line() -> None:
    results = Results(machine={}, tiers=[_tier("local", 4000.0), _tier("server", 1000.0, 3000.0)])

    out = "\n".join(render(results, targets(results)))

    assert "server RSS MB" in out
    assert "sizing, 1,000,000 chunks, local store: peak RSS search process 4,000 MB; 250,000 chunks per GB" in out
    assert "server store: peak RSS search process 1,000 MB + chroma run 3,000 MB (its folder 8,000 MB); 250,000" in out


def test_the_search_targets_are_the_local_stores() -> None:
    server_only = Results(machine={}, tiers=[_tier("server", 1000.0, 3000.0, size=100_000)])
    both = Results(machine={}, tiers=[*server_only.tiers, _tier("local", 4000.0, size=100_000)])

    assert [t.measured for t in targets(server_only) if "at 100,000 chunks" in t.name] == [None, None]
    assert [t.measured for t in targets(both) if "at 100,000 chunks" in t.name] == [15.0, 19.5]


def test_an_unknown_store_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--stores", "local,cloud", "--embedder", "hash", "--skip", ALL_BUT_SEARCH]) == 2
    assert "--stores takes local and/or server" in capsys.readouterr().err
