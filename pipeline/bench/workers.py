"""Parallel ingest: the corpus ingested with one worker and with N (``[ingest] workers``), each into a fresh
index, and the text corpus with N workers, set next to the baseline's seconds by the report. Then, where
redis-server is installed, the corpus read by one ``mmrag ingest-worker`` with N processes through a
private Redis (the distributed ingest, ``--broker``; ``distributed.py``).

Both whole-corpus runs start with the models of reading unloaded (OCR, speech, labels), as a first
``mmrag ingest`` does: the one-worker run loads them in the ingest process, each of the N workers
loads its own. The text embedder is loaded once, before either run, and shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mmrag.pipeline.bench.ingest import Note
from mmrag.pipeline.bench.stages import TEXT_MODALITIES, classify, copy_files
from mmrag.pipeline.config import Config
from mmrag.retrieval.embed import TextEmbedder


@dataclass(frozen=True, slots=True)
class WorkerRun:
    workers: int
    files: int
    ingested: int
    chunks: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "workers": self.workers,
            "files": self.files,
            "ingested": self.ingested,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 2),
        }


def ratio(value: float) -> float:
    """A ratio to three significant figures: 0.0042 stays 0.0042 (a tiny corpus under load) rather than 0.0."""
    return float(f"{value:.3g}")


@dataclass(frozen=True, slots=True)
class WorkersFigures:
    """The whole corpus with one worker and with ``many.workers``; the text corpus with as many."""

    one: WorkerRun
    many: WorkerRun
    text_many: WorkerRun | None
    broker: WorkerRun | None = None  # the corpus read by one ingest-worker with many.workers processes
    broker_skipped: str = ""  # why there is no broker run

    @property
    def speedup(self) -> float | None:
        return self.one.seconds / self.many.seconds if self.many.seconds > 0 else None

    @property
    def broker_speedup(self) -> float | None:
        return self.one.seconds / self.broker.seconds if self.broker is not None and self.broker.seconds > 0 else None

    def to_json(self, baseline_s: float | None = None) -> dict[str, object]:
        text = self.text_many
        return {
            "one_worker": self.one.to_json(),
            "workers": self.many.to_json(),
            "speedup": None if self.speedup is None else ratio(self.speedup),
            "same_chunks": self.one.chunks == self.many.chunks,
            "text_corpus": None if text is None else text.to_json(),
            "text_corpus_speedup_over_baseline": ratio(baseline_s / text.seconds)
            if text is not None and baseline_s and text.seconds > 0
            else None,
            "distributed": {"skipped": self.broker_skipped}
            if self.broker is None
            else {
                **self.broker.to_json(),
                "speedup": None if self.broker_speedup is None else ratio(self.broker_speedup),
                "same_chunks": self.broker.chunks == self.one.chunks,
            },
        }


def measure_workers(
    corpus: Path,
    cfg: Config,
    work: Path,
    *,
    workers: int,
    embedder: TextEmbedder | None,
    note: Note,
    distributed: bool = True,
    config_file: Path | None = None,
) -> WorkersFigures:
    """Ingest ``corpus`` with 1 and with ``workers`` workers, then its text modalities with ``workers``; with
    ``distributed``, the corpus through a private Redis and one ingest-worker of ``workers`` processes."""
    from mmrag.pipeline.app import Models

    models = Models(cfg, embedder=embedder)
    text, visual = models.text(), models.visual()  # loaded once, outside the timed runs

    def run(folder: Path, count: int, name: str, broker: str = "") -> WorkerRun:
        from mmrag.pipeline.app import open_app
        from mmrag.pipeline.ingest_run import run_ingest

        ingest = replace(cfg.ingest, workers=1 if broker else count, broker=broker)
        ran = replace(cfg, index_dir=work / f"index-{name}", ingest=ingest)
        app = open_app(ran, create=True, embedder=text, visual=visual, reindex=True)
        try:
            report = run_ingest([folder], app)
        finally:
            app.close()
        files = sum(1 for p in folder.rglob("*") if p.is_file())
        return WorkerRun(count, files, len(report.ingested), report.chunks, report.seconds)

    by_modality = classify(corpus)
    everything = work / "corpus"
    copy_files([f for files in by_modality.values() for f in files], everything)
    note(f"ingesting the corpus with 1 worker, then with {workers}")
    one = run(everything, 1, "one")
    many = run(everything, workers, "many")
    text_files = [f for name in TEXT_MODALITIES for f in by_modality.get(name, [])]
    text_many = None
    if text_files:
        folder = work / "text"
        copy_files(text_files, folder)
        note(f"ingesting the text corpus with {workers} workers")
        text_many = run(folder, workers, "text")
    if not distributed:
        return WorkersFigures(one, many, text_many, broker_skipped="skipped (--skip distributed)")
    from mmrag.pipeline.bench.distributed import redis_server

    if not redis_server():
        return WorkersFigures(one, many, text_many, broker_skipped="redis-server is not installed")
    note(f"ingesting the corpus through Redis with one ingest-worker of {workers} processes")
    return WorkersFigures(one, many, text_many, _broker_run(run, everything, workers, work, config_file))


def _broker_run(
    run: Callable[[Path, int, str, str], WorkerRun], folder: Path, workers: int, work: Path, config_file: Path | None
) -> WorkerRun:
    """``run`` with a private Redis and one ``mmrag ingest-worker --concurrency workers``, answering before
    the clock starts; its OCR cache is its own and cold, as the pool's is."""
    import os

    from mmrag.pipeline.bench.distributed import RedisServer, start_ingest_worker, stop_worker, wait_for_workers

    redis = RedisServer(work / "redis")
    url = redis.start()
    try:
        env = {k: v for k, v in os.environ.items() if k != "MMRAG_FAULT"}
        env["MMRAG_WORKER_CACHE"] = str(work / "worker-cache")
        worker = start_ingest_worker(url, workers, env=env, config=config_file, log=work / "ingest-worker.log")
        try:
            wait_for_workers(url, worker)
            return run(folder, workers, "broker", url)
        finally:
            stop_worker(worker)
    finally:
        redis.stop()
