"""Search latency while an ingest runs in another process, as on a machine serving searches that
is also indexing a drive.

The corpus is ingested once into an index that is then searched; another process
(``python -m mmrag.pipeline.bench.contended``) ingests the same corpus into an index of its own
again and again (``--reindex``), as ``mmrag ingest`` does: its CPU priority lowered by
``[ingest] nice``, then once more at normal priority to show what the lowering buys. The searches
(hybrid, query embedded, k=10, as ``mmrag search`` runs them) are timed idle and during each ingest.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmrag.pipeline.bench.common import Latency
from mmrag.pipeline.config import Config, load_config

DIM = 384
K = 10


@dataclass(frozen=True, slots=True)
class BusySearch:
    """Search percentiles idle, during an ingest at ``nice``, and during one at normal priority."""

    nice: int
    idle: Latency
    niced: Latency
    normal: Latency
    queries: int

    def to_json(self) -> dict[str, object]:
        return {
            "nice": self.nice,
            "queries": self.queries,
            "idle": self.idle.to_json(),
            "during_ingest": self.niced.to_json(),
            "during_ingest_normal_priority": self.normal.to_json(),
        }


def _ingest_command(cfg: Config, corpus: Path, index: Path, nice: int, hashing: bool, config: Path | None) -> list[str]:
    command = [sys.executable, "-m", "mmrag.pipeline.bench.contended", "--corpus", str(corpus), "--index", str(index)]
    command += ["--nice", str(nice)] + (["--hash"] if hashing else []) + (["--config", str(config)] if config else [])
    return command


def _timed(search: Callable[[str], object], queries: Sequence[str], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        for query in queries:
            start = time.perf_counter()
            search(query)
            seconds.append(time.perf_counter() - start)
    return seconds


def _during(
    command: list[str], log: Path, search: Callable[[str], object], queries: Sequence[str], rounds: int
) -> Latency:
    """The searches' latency while ``command`` (an endless ingest) runs; it is stopped afterwards."""
    with log.open("w") as errors:
        ingesting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            assert ingesting.stdout is not None
            if ingesting.stdout.readline().strip() != "ingesting":
                ingesting.wait()
                raise RuntimeError(f"the ingest process failed: {log.read_text()[-2000:]}")
            return Latency.of(_timed(search, queries, rounds))
        finally:
            ingesting.terminate()
            ingesting.wait()


def measure_busy_search(
    cfg: Config,
    corpus: Path,
    work: Path,
    *,
    hashing: bool,
    config_file: Path | None,
    queries: int,
    rounds: int,
    note: Callable[[str], None],
) -> BusySearch:
    from dataclasses import replace

    from mmrag.pipeline.api import search_index
    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.bench.search import _queries
    from mmrag.pipeline.ingest_run import run_ingest
    from mmrag.retrieval.embed import HashEmbedder

    searched = replace(cfg, index_dir=work / "searched")
    embedder = HashEmbedder(DIM) if hashing else None
    note("search while an ingest runs: building the searched index")
    app = open_app(searched, create=True, embedder=embedder, reindex=True)
    try:
        run_ingest([corpus], app)
        texts = [text for text, _ in _queries(searched.index_dir / "keyword.sqlite", queries)]

        def search(query: str) -> object:
            return search_index(app, query, K)

        _timed(search, texts, 1)  # warm: models loaded, caches filled
        idle = Latency.of(_timed(search, texts, rounds))
        figures = []
        for nice in (cfg.ingest.nice, 0):
            note(f"search while an ingest runs at nice {nice}")
            command = _ingest_command(cfg, corpus, work / f"ingesting-{nice}", nice, hashing, config_file)
            figures.append(_during(command, work / f"ingesting-{nice}.log", search, texts, rounds))
    finally:
        app.close()
    return BusySearch(cfg.ingest.nice, idle, figures[0], figures[1], len(texts))


def main(argv: Sequence[str] | None = None) -> int:
    """The ingest process: lower its priority as ``mmrag ingest`` does, then ingest until stopped."""
    parser = argparse.ArgumentParser(prog="python -m mmrag.pipeline.bench.contended")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--hash", action="store_true")
    parser.add_argument("--config", type=Path)
    args = parser.parse_args(argv)
    from mmrag.pipeline import api
    from mmrag.pipeline.ingest_run import lower_priority
    from mmrag.retrieval.embed import HashEmbedder

    lower_priority(args.nice)
    cfg = load_config(config_file=args.config, index_dir=args.index)
    embedder = HashEmbedder(DIM) if args.hash else None
    api.ingest([args.corpus], cfg, reindex=True, embedder=embedder)  # start-up and model loading: not measured
    sys.stdout.write("ingesting\n")
    sys.stdout.flush()
    while True:
        api.ingest([args.corpus], cfg, reindex=True, embedder=embedder)


if __name__ == "__main__":
    sys.exit(main())
