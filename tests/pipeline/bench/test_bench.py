"""``mmrag bench`` works end to end on a tiny input and prints the figures' documented shape.

Smoke tests only: nothing here asserts a timing (benchmarks are measured by running the command).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmrag.pipeline.bench import main as bench
from mmrag.pipeline.bench.common import Latency, StageTimer
from mmrag.pipeline.bench.distributed import redis_server
from mmrag.pipeline.config import Config


def _tiny_corpus(root: Path) -> Path:
    drive = root / "drive"
    (drive / "notes").mkdir(parents=True)
    (drive / "data").mkdir()
    (drive / "notes" / "budget.md").write_text(
        "# Budget 2024\n\nThe travel budget for 2024 is 12,500 EUR. It was approved in March.\n", encoding="utf-8"
    )
    (drive / "notes" / "office.txt").write_text("The Lisbon office opens at 8:30 on weekdays.\n", encoding="utf-8")
    rows = "\n".join(f"2024-01-{d:02d},{100 + d},{90 + d}" for d in range(1, 29))
    (drive / "data" / "prices.csv").write_text("date,high,low\n" + rows + "\n", encoding="utf-8")
    return drive


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def test_bench_on_a_tiny_input_prints_every_figure_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_network: list[str]
) -> None:
    argv = ["--corpus", str(_tiny_corpus(tmp_path)), "--sizes", "200", "--embedder", "hash", "--json"]
    argv += ["--small-files", "20", "--queries", "5", "--rounds", "1", "--cache-dir", str(tmp_path / "cache")]
    argv += ["--sync-items", "30", "--sync-s3-items", "0"]  # the S3 figure starts a server: no network here
    argv += ["--skip", "cold,distributed"]

    assert bench.main(argv) == 0

    data = json.loads(capsys.readouterr().out)
    tier = data["search_ms"]["200"]
    for key in ("p50", "p95", "p99", "baseline_p50", "baseline_p95", "baseline_p99", "ratio_p50", "build_s"):
        assert _positive(tier[key]), key
    assert _positive(tier["with_answer"]["p50"]) and _positive(tier["disk_mb"]) and _positive(tier["peak_rss_mb"])
    assert tier["answered"] > 0
    for share in ("5%_visible", "50%_visible", "95%_visible"):
        assert _positive(tier["with_permissions"][share]["p50"]), share
    assert set(data["ingest"]) == {"docs", "tables"}
    docs, tables = data["ingest"]["docs"], data["ingest"]["tables"]
    assert (docs["unit"], docs["units"]) == ("files", 2)
    assert (tables["unit"], tables["units"]) == ("rows", 28)
    for figures in (docs, tables):
        assert _positive(figures["per_s"]) and _positive(figures["baseline_per_s"]) and _positive(figures["speedup"])
        assert abs(sum(figures["stage_share"].values()) - 1.0) < 0.01
    corpus = data["ingest_text_corpus"]
    assert _positive(corpus["speedup"]) and corpus["ocr_s"] == 0  # no pictures in this corpus
    assert corpus["speedup_same_work"] == corpus["speedup"]
    assert corpus["embedding_s"] >= 0 and corpus["baseline_embedding_s"] >= 0  # the hash embedder takes ~0 s
    assert "embedding_speedup" in corpus
    workers = data["ingest_workers"]  # the corpus with 1 worker and with 2, the text corpus with 2
    assert (workers["one_worker"]["workers"], workers["workers"]["workers"]) == (1, 2)
    assert workers["one_worker"]["ingested"] == workers["workers"]["ingested"] == 3 and workers["same_chunks"]
    assert _positive(workers["speedup"]) and _positive(workers["text_corpus_speedup_over_baseline"])
    assert workers["distributed"] == {"skipped": "skipped (--skip distributed)"}  # Redis is a network server
    assert data["reingest_unchanged_s"] >= 0 and _positive(data["reingest_one_changed_s"])
    assert data["small_files"]["files"] == 20 and data["small_files"]["reingest_unchanged_s"] >= 0
    assert data["cold_start_s"] is None  # skipped
    assert data["sync"]["items"] == 30 and data["sync"]["unchanged"] == 30 and "sync_s3" not in data
    busy = data["search_during_ingest_ms"]
    assert busy["nice"] == 10 and busy["queries"] == 5
    for series in ("idle", "during_ingest", "during_ingest_normal_priority"):
        assert _positive(busy[series]["p50"]) and _positive(busy[series]["p95"]) and busy[series]["n"] == 5, series
    assert _positive(data["machine"]["cores"]) and _positive(data["bench_s"])
    assert {t["name"] for t in data["targets"]} >= {"search p50 at 100,000 chunks (ms)"}
    assert list((tmp_path / "cache").iterdir()), "the synthetic index is cached for the next run"


def test_the_table_names_each_part(tmp_path: Path, capsys: pytest.CaptureFixture[str], loopback_only: None) -> None:
    argv = ["--corpus", str(_tiny_corpus(tmp_path)), "--embedder", "hash", "--small-files", "5"]
    argv += ["--skip", "search,cold,baseline,busy-search,sync"]

    assert bench.main(argv) == 0

    out = capsys.readouterr().out
    assert "Search while an ingest runs" not in out
    assert "Ingest per modality" in out and "re-ingest, corpus unchanged" in out and "Targets" in out
    assert "Parallel ingest (--workers), the whole corpus (3 files" in out
    [distributed] = [line for line in out.splitlines() if "distributed (--broker" in line]
    if redis_server():  # the corpus read through a private Redis by one ingest-worker: the same chunks
        assert "one ingest-worker of 2 processes through a local Redis" in distributed and "!)" not in distributed
        assert "speedup over 1 worker" in distributed
    else:
        assert "redis-server is not installed" in distributed


def test_unknown_part_to_skip_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--skip", "everything", "--embedder", "hash"]) == 2
    assert "unknown part(s) to skip: everything" in capsys.readouterr().err


def test_register_adds_the_command_with_its_defaults() -> None:
    parser = argparse.ArgumentParser(prog="mmrag")
    bench.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "--long-video"])
    options = bench.Options.from_args(args)
    assert options.sizes == (10_000, 100_000) and options.long_video_s == 600.0 and args.index is None


def test_importing_the_command_loads_no_heavy_library() -> None:
    code = "import sys, mmrag.pipeline.bench.main as b; print(sorted(m for m in ('torch', 'chromadb', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_latency_percentiles_interpolate_between_ranks() -> None:
    latency = Latency.of([0.001 * i for i in range(1, 101)])
    assert (round(latency.p50, 2), round(latency.p99, 2), latency.n) == (50.5, 99.01, 100)


def test_stage_timer_restores_what_it_wrapped() -> None:
    class Worker:
        def work(self) -> int:
            return 1

    worker = Worker()
    timer = StageTimer()
    with timer.patch(worker, "work", "stage"):
        assert worker.work() == 1
    assert "work" not in vars(worker) and "stage" in timer.seconds


def test_the_s3_sync_figure_lists_a_real_bucket_and_finds_it_unchanged(cfg: Config, loopback_only: None) -> None:
    from mmrag.pipeline.bench.sync import measure_s3_sync

    figures = measure_s3_sync(cfg, 40, note=lambda _: None)

    assert figures.items == 40 and figures.unchanged == 40
    assert figures.sync_s > 0 and figures.walk_s > 0
