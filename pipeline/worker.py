"""The server's work off the event loop: one thread that owns the open index, and background ingest jobs.

The index's SQLite connections may only be used from the thread that opened them and its stores are not
meant for concurrent queries, so every search, ask and preview runs on one worker thread. An ingest job
opens its own index on its own thread (SQLite WAL lets it write while the worker reads) and, when done,
makes the worker reopen its index so that it sees the new files.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mmrag.ingest.errors import MmragError
from mmrag.pipeline.app import App, Models, open_app
from mmrag.pipeline.config import Config
from mmrag.pipeline.ingest_run import lower_priority, run_ingest
from mmrag.retrieval.embed import TextEmbedder
from mmrag.retrieval.vectorize import ImageTextEncoder

log = logging.getLogger(__name__)

T = TypeVar("T")

RUNNING, DONE, FAILED = "running", "done", "failed"


class IndexWorker:
    """Runs functions of the open index on its single thread; the index is opened on first use."""

    def __init__(
        self,
        cfg: Config,
        embedder: TextEmbedder | None = None,
        visual: ImageTextEncoder | None = None,
        *,
        opener: Callable[[Models], App] | None = None,
    ) -> None:
        """``opener`` opens the index instead of ``open_app`` (an API replica opens its newest snapshot)."""
        self.cfg = cfg
        self.models = Models(cfg, embedder=embedder, visual=visual)  # shared with ingest jobs: load once
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-server-index")
        self._index: App | None = None
        self._opener = opener

    def submit(self, fn: Callable[[App], T]) -> Future[T]:
        return self._pool.submit(self._run, fn)

    def call(self, fn: Callable[[App], T]) -> T:
        """Run ``fn(index)`` on the worker thread and wait for its result (its exception is re-raised)."""
        return self.submit(fn).result()

    def _run(self, fn: Callable[[App], T]) -> T:
        if self._index is None:
            self._index = self._open()
        return fn(self._index)

    def _open(self) -> App:
        if self._opener is not None:
            return self._opener(self.models)
        return open_app(self.cfg, create=False, models=self.models)

    def reopen(self) -> None:
        """Close the index; the next call opens it again (after an ingest changed it)."""
        self._pool.submit(self._close).result()

    def swap(self) -> None:
        """Close the index and open it again at once, between two requests (a replica's newer snapshot)."""

        def again() -> None:
            self._close()
            self._index = self._open()

        self._pool.submit(again).result()

    def _close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def shutdown(self) -> None:
        self.reopen()
        self._pool.shutdown(wait=True)


@dataclass
class IngestJob:
    """One background ingest run and its progress, as the API reports it."""

    id: str
    paths: tuple[str, ...]
    state: str = RUNNING
    files_total: int = 0
    files_done: int = 0
    chunks: int = 0
    current: str = ""
    error: str = ""
    report: dict[str, object] | None = None
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def files_found(self, total: int) -> None:
        with self._lock:
            self.files_total = total

    def file_done(self, source: str, outcome: str, chunks: int) -> None:
        with self._lock:
            self.files_done += 1
            self.chunks += chunks
            self.current = source

    def to_json(self) -> dict[str, object]:
        with self._lock:
            return {
                "job": self.id,
                "paths": list(self.paths),
                "state": self.state,
                "files_total": self.files_total,
                "files_done": self.files_done,
                "chunks": self.chunks,
                "current": self.current,
                "error": self.error,
                "report": self.report,
            }


class JobBusy(MmragError):
    """An ingest job is already running; only one runs at a time."""


class IngestJobs:
    """Starts ingest jobs one at a time and keeps their progress for the API."""

    def __init__(self, worker: IndexWorker) -> None:
        self.worker = worker
        self._jobs: dict[str, IngestJob] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def start(self, paths: Sequence[Path]) -> IngestJob:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise JobBusy("an ingest job is already running; wait for it to finish")
            job = IngestJob(id=str(next(self._ids)), paths=tuple(str(p) for p in paths))
            self._jobs[job.id] = job
            self._thread = threading.Thread(
                target=self._run, args=(job, list(paths)), name=f"mmrag-ingest-{job.id}", daemon=True
            )
            self._thread.start()
        return job

    def get(self, job_id: str) -> IngestJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self, job: IngestJob, paths: list[Path]) -> None:
        cfg = self.worker.cfg
        if sys.platform == "linux":  # the nice value is per thread there: searches keep theirs
            lower_priority(cfg.ingest.nice)
        try:
            index = open_app(cfg, create=True, models=self.worker.models)
            try:
                report = run_ingest(paths, index, job)
            finally:
                index.close()
            self.worker.reopen()
            with job._lock:
                job.report = report.to_json()
                job.state = DONE
                job.current = ""
        except Exception as e:  # reported to the client; the server keeps running
            log.exception("ingest job %s failed", job.id)
            with job._lock:
                job.state = FAILED
                job.error = f"{type(e).__name__}: {e}"
