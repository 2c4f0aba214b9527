"""``mmrag bench``: ingest speed per modality, re-ingest, query latency at scale and cold start,
each next to a baseline measured in the same run, so the ratio survives a noisy machine.

It measures and reports; it asserts nothing. The figures, how each is measured and the latest
results are described in docs/benchmarks.md. Wire it into the CLI with ``register`` and ``run``;
``python -m mmrag.pipeline.bench.main`` runs it on its own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.ingest.errors import MmragError
from mmrag.pipeline.bench.results import Results, targets, to_json
from mmrag.pipeline.config import Config, load_config

if TYPE_CHECKING:
    from mmrag.pipeline.bench.baseline import Encode
    from mmrag.pipeline.bench.ingest import IngestFigures
    from mmrag.pipeline.bench.search import EmbedderSpec

STORES = ("local", "server")  # search.STORES, without importing the measuring module
SECTIONS = (
    "workers",
    "distributed",
    "ingest",
    "baseline",
    "reingest",
    "small-files",
    "search",
    "busy-search",
    "cold",
    "sync",
)
DEFAULT_SIZES = "10000,100000"
REPO = Path(__file__).resolve().parents[2]


class BenchUsageError(MmragError, ValueError):
    """A bench option that cannot be used; the CLI exits 2 with this message."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``bench`` to the ``mmrag`` command's subcommands."""
    p = subparsers.add_parser("bench", help="measure ingest speed, re-ingest, query latency and cold start")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--corpus", type=Path, help="folder to ingest (default: ../shared/corpus/drive, else data/sample-drive)"
    )
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"synthetic index sizes in chunks (default {DEFAULT_SIZES})")
    p.add_argument(
        "--stores", default="local",
        help="vector stores the search part measures, comma-separated: local (embedded Chroma, the default), "
        "server (a private `chroma run` serving the same index)",
    )  # fmt: skip
    p.add_argument("--skip", action="append", default=[], help=f"parts to skip, comma-separated: {', '.join(SECTIONS)}")
    p.add_argument("--queries", type=int, default=50, help="queries per index size (default 50)")
    p.add_argument("--rounds", type=int, default=2, help="timed passes over the queries (default 2)")
    p.add_argument("--small-files", type=int, default=1000, help="files in the re-ingest folder (default 1000)")
    p.add_argument(
        "--sync-items", type=int, default=100_000, help="files in the unchanged-share sync figure (default 100000)"
    )
    p.add_argument(
        "--sync-s3-items", type=int, default=10_000, help="objects in the unchanged-bucket sync figure (default 10000)"
    )
    p.add_argument(
        "--long-video", type=float, nargs="?", const=600.0, default=0.0, metavar="SECONDS",
        help="also ingest a long video looped from the corpus's longest (default length 600 s)",
    )  # fmt: skip
    p.add_argument(
        "--ingest-workers", type=int, default=2, metavar="N",
        help="the parallel ingest figure: the corpus with 1 worker and with N (default 2)",
    )  # fmt: skip
    p.add_argument("--cache-dir", type=Path, help="where synthetic indexes are kept (default ~/.cache/mmrag-bench)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached synthetic indexes")
    p.add_argument("--work-dir", type=Path, help="keep the bench's working files here (default: a temporary folder)")
    p.add_argument(
        "--embedder", choices=("model", "hash"), default="model",
        help="hash: no model weights, for smoke tests only (figures are then not representative)",
    )  # fmt: skip
    p.add_argument("--config", type=Path, help="config file (default: $MMRAG_CONFIG or ~/.config/mmrag/config.toml)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    p.set_defaults(index=None)


@dataclass(frozen=True, slots=True)
class Options:
    corpus: Path | None
    sizes: tuple[int, ...]
    skip: frozenset[str]
    queries: int
    rounds: int
    small_files: int
    sync_items: int
    sync_s3_items: int
    long_video_s: float
    cache: Path
    rebuild: bool
    work: Path | None
    hash_embedder: bool
    config_file: Path | None
    ingest_workers: int = 2
    stores: tuple[str, ...] = ("local",)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        try:
            sizes = tuple(int(s.replace("_", "")) for s in str(args.sizes).split(",") if s.strip())
        except ValueError as e:
            raise BenchUsageError(f"--sizes takes numbers like 10000,100000, got {args.sizes!r}") from e
        skip = frozenset(s.strip() for value in args.skip for s in value.split(",") if s.strip())
        unknown = skip - set(SECTIONS)
        if unknown:
            raise BenchUsageError(
                f"unknown part(s) to skip: {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})"
            )
        if any(s < 1 for s in sizes) or args.queries < 1 or args.rounds < 1:
            raise BenchUsageError("--sizes, --queries and --rounds must be positive")
        if args.ingest_workers < 2:
            raise BenchUsageError(f"--ingest-workers takes 2 or more, got {args.ingest_workers}")
        stores = tuple(dict.fromkeys(s.strip() for s in str(args.stores).split(",") if s.strip()))
        if not stores or set(stores) - set(STORES):
            raise BenchUsageError(f"--stores takes {' and/or '.join(STORES)}, comma-separated, got {args.stores!r}")
        cache = args.cache_dir or Path.home() / ".cache" / "mmrag-bench"
        return cls(
            args.corpus, sizes, skip, args.queries, args.rounds, args.small_files, args.sync_items, args.sync_s3_items,
            args.long_video, cache,
            args.rebuild, args.work_dir, args.embedder == "hash", args.config, args.ingest_workers, stores,
        )  # fmt: skip

    @staticmethod
    def default_sizes() -> tuple[int, ...]:
        return tuple(int(s) for s in DEFAULT_SIZES.split(","))

    def corpus_folder(self) -> Path:
        if self.corpus is not None:
            if not self.corpus.is_dir():
                raise BenchUsageError(f"--corpus {self.corpus} is not a folder")
            return self.corpus
        for candidate in (REPO.parent / "shared" / "corpus" / "drive", REPO / "data" / "sample-drive"):
            if candidate.is_dir():
                return candidate
        raise BenchUsageError("no default corpus here (../shared/corpus/drive or data/sample-drive): pass --corpus DIR")

    def small_corpus(self) -> Path:
        """What the search-during-ingest part ingests: ``--corpus``, else the small sample drive (the part
        ingests it three times, so the whole shared corpus would take the bench past its time)."""
        sample = REPO / "data" / "sample-drive"
        return self.corpus_folder() if self.corpus is not None or not sample.is_dir() else sample


def _note(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def measure(cfg: Config, opts: Options) -> Results:
    """Run every part not skipped and collect the figures."""
    from mmrag.pipeline.bench.common import load_now, machine_info

    started = time.perf_counter()
    results = Results(machine=machine_info())
    work = opts.work or Path(tempfile.mkdtemp(prefix="mmrag-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if "workers" not in opts.skip:  # first: the reading models are not loaded in this process yet
            from mmrag.pipeline.bench.workers import measure_workers
            from mmrag.retrieval.embed import HashEmbedder

            results.workers = measure_workers(
                opts.corpus_folder(), cfg, work / "workers", workers=opts.ingest_workers,
                embedder=HashEmbedder(384) if opts.hash_embedder else None, note=_note,
                distributed="distributed" not in opts.skip, config_file=opts.config_file,
            )  # fmt: skip
        if "ingest" not in opts.skip:
            results.ingest = _ingest(cfg, opts, work)
        if "small-files" not in opts.skip and opts.small_files > 0:
            from mmrag.pipeline.bench.ingest import small_files_reingest

            results.small = small_files_reingest(cfg, opts.cache, opts.small_files, rebuild=opts.rebuild, note=_note)
        if "sync" not in opts.skip and opts.sync_items > 0:
            from mmrag.pipeline.bench.sync import measure_sync

            results.sync = measure_sync(cfg, opts.cache, opts.sync_items, note=_note)
        if "sync" not in opts.skip and opts.sync_s3_items > 0:
            from mmrag.pipeline.bench.sync import measure_s3_sync

            results.sync_s3 = measure_s3_sync(cfg, opts.sync_s3_items, note=_note)
        if "search" not in opts.skip:
            from mmrag.pipeline.bench.search import measure_tier

            spec = _embedder_spec(cfg, opts)
            for size in opts.sizes:
                for n, store in enumerate(opts.stores):
                    _note(f"search latency on {size:,} chunks, {store} store")
                    tier = measure_tier(
                        size, opts.cache, spec, queries=opts.queries, rounds=opts.rounds,
                        rebuild=opts.rebuild and n == 0, store=store,
                    )  # fmt: skip
                    results.tiers.append(tier)
        if "busy-search" not in opts.skip:
            from mmrag.pipeline.bench.contended import measure_busy_search

            results.busy = measure_busy_search(
                cfg, opts.small_corpus(), work / "busy", hashing=opts.hash_embedder, config_file=opts.config_file,
                queries=opts.queries, rounds=opts.rounds, note=_note,
            )  # fmt: skip
        if "cold" not in opts.skip:
            from mmrag.pipeline.bench.cold import measure_cold_start

            results.cold = measure_cold_start(
                cfg, work, config_file=opts.config_file, with_ask=not opts.hash_embedder, runs=3, note=_note
            )
    finally:
        if opts.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results.seconds = time.perf_counter() - started
    results.complete = not opts.skip and opts.sizes == Options.default_sizes() and not opts.long_video_s
    results.load_at_end = load_now()
    return results


def _ingest(cfg: Config, opts: Options, work: Path) -> IngestFigures:
    from mmrag.pipeline.bench.ingest import measure_ingest
    from mmrag.retrieval.embed import HashEmbedder

    hashing = HashEmbedder(384) if opts.hash_embedder else None
    encode: Encode | None = None
    if "baseline" not in opts.skip:
        if hashing is not None:
            encode = lambda text: [float(x) for x in hashing.embed([text])[0]]  # noqa: E731
        else:
            from mmrag.pipeline.bench.baseline import sentence_transformer_encoder

            encode = sentence_transformer_encoder(_embedder_spec(cfg, opts).location)
    return measure_ingest(
        opts.corpus_folder(),
        cfg,
        work / "ingest",
        embedder=hashing,
        baseline=encode,
        long_video_s=opts.long_video_s,
        reingest="reingest" not in opts.skip,
        note=_note,
    )


def _embedder_spec(cfg: Config, opts: Options) -> EmbedderSpec:
    from mmrag.pipeline.app import ModelMissing
    from mmrag.pipeline.bench.search import EmbedderSpec
    from mmrag.pipeline.models import resolve_text

    if opts.hash_embedder:
        return EmbedderSpec("hash")
    found = resolve_text(cfg.models)
    if not found.available:
        raise ModelMissing(f"no text embedding model: {found.remedy}")
    return EmbedderSpec(cfg.models.text_model, found.location, cfg.models.text_runtime)


def run(args: argparse.Namespace, cfg: Config) -> int:
    """``mmrag bench``: measure, then print the table (or ``--json``). Exit 2 on a usage error."""
    from mmrag.pipeline.bench.render import render
    from mmrag.pipeline.offline import apply_offline_env

    try:
        opts = Options.from_args(args)
        if {"workers", "ingest", "busy-search"} - opts.skip:
            opts.corpus_folder()
    except BenchUsageError as e:
        sys.stderr.write(f"mmrag bench: {e}\n")
        return 2
    apply_offline_env(cfg.models.allow_downloads)
    results = measure(cfg, opts)
    if args.json:
        _emit(json.dumps(to_json(results), indent=2, ensure_ascii=False))
    else:
        _emit("\n".join(render(results, targets(results))))
    return 0


def _emit(text: str) -> None:
    """The command's output (everything else goes to stderr)."""
    sys.stdout.write(text + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmrag.pipeline.bench.main``, before the command is wired into ``mmrag``."""
    import logging

    parser = argparse.ArgumentParser(prog="python -m mmrag.pipeline.bench.main", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr)
    return run(args, load_config(config_file=args.config))


if __name__ == "__main__":
    sys.exit(main())
