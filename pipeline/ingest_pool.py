"""Where files are read during an ingest run: in the run's own process, or in a pool of worker processes.

With ``[ingest] workers`` (``mmrag ingest --workers N``) above 1, files are hashed, parsed, OCR'd and
transcribed by N worker processes while the ingest process alone embeds and writes the index (one
writer, the same order of writes as with one process). At most ``2 * N`` files are read or waiting
to be written at a time, so memory stays bounded however large the drive. Each worker loads its
models (OCR, speech) once, on its first file that needs them. Workers are started with ``spawn``:
PyTorch, CTranslate2 and ONNX Runtime keep threads that a forked child would inherit broken.

A file that kills the process reading it (a crash in a parsing library, the kernel's out-of-memory
killer) is reported as that file's skip and the pool is replaced; the run goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from mmrag.pipeline.ingest_parse import Outcome, Parsed, ParseJob, parse, parse_in_worker

log = logging.getLogger(__name__)

PARENT_POLL_S = 0.5

Done = Callable[[Parsed], ParseJob | None]  # applies a file's outcome; may ask for a follow-up job of the same file


class Parser(Protocol):
    """Reads files for a run: ``done`` is called in the run's process, in its thread, with each outcome."""

    def submit(self, job: ParseJob, done: Done) -> None: ...

    def drain(self) -> None:
        """Return once every submitted file's ``done`` has run."""
        ...

    def close(self) -> None: ...


class InlineParser:
    """One process: each file is read when submitted (``[ingest] workers = 1``)."""

    def submit(self, job: ParseJob, done: Done) -> None:
        follow: ParseJob | None = job
        while follow is not None:
            follow = done(parse(follow))

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def died(reason: str) -> Parsed:
    return Parsed(
        Outcome.DIED,
        reason=f"the worker process reading it died ({reason}): a crash in a parsing library or too little "
        "memory; it is tried again next run",
    )


class PoolParser:
    """``workers`` processes read files; outcomes are applied here as they complete, ``in_flight`` at most."""

    def __init__(self, workers: int, in_flight: int = 0, threads: int = 1) -> None:
        self.workers = workers
        self.in_flight = in_flight or 2 * workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[Future[Parsed], tuple[ParseJob, Done]] = {}

    def submit(self, job: ParseJob, done: Done) -> None:
        while len(self._running) >= self.in_flight:
            self._settle()
        self._start(job, done)

    def drain(self) -> None:
        while self._running:
            self._settle()

    def close(self) -> None:
        """Stop the workers; files still being read are abandoned (the run failed or was interrupted)."""
        if self._pool is not None:
            if self._running:
                _terminate(self._pool)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._running.clear()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
                initargs=(self.threads,),
            )
        return self._pool

    def _start(self, job: ParseJob, done: Done) -> None:
        try:
            future = self._executor().submit(parse_in_worker, job)
        except BrokenProcessPool:  # a worker died since the last look: first tell which file killed it
            self.drain()
            try:
                future = self._executor().submit(parse_in_worker, job)
            except BrokenProcessPool:
                self._discard_pool()
                future = self._executor().submit(parse_in_worker, job)
        self._running[future] = (job, done)

    def _settle(self) -> None:
        """Wait for at least one file, and apply what finished. When a worker died, every file in flight
        failed with it: they are read again one at a time, to tell which one kills its reader."""
        finished, _ = wait(self._running, return_when=FIRST_COMPLETED)
        how = ""
        if any(isinstance(f.exception(), BrokenProcessPool) for f in finished):
            finished, _ = wait(self._running)  # the pool fails every file it holds
            how = self._discard_pool()
        outcomes = [(f, *self._running.pop(f)) for f in finished]
        suspects = [(job, done) for f, job, done in outcomes if isinstance(f.exception(), BrokenProcessPool)]
        follow: list[tuple[ParseJob | None, Done]] = []
        for job, done in suspects:  # before anything else starts, so that each is read alone
            parsed = died(how) if len(suspects) == 1 else self._alone(job)
            if parsed.outcome is Outcome.DIED:
                log.warning("the worker process reading %s died; starting another", job.path)
            follow.append((done(parsed), done))
        for future, job, done in outcomes:
            if not isinstance(future.exception(), BrokenProcessPool):
                follow.append((done(_result(future, job)), done))
        for then, done in follow:
            if then is not None:
                self._start(then, done)  # the window may pass its bound for a moment

    def _alone(self, job: ParseJob) -> Parsed:
        future = self._executor().submit(parse_in_worker, job)
        try:
            return future.result()
        except BrokenProcessPool:
            return died(self._discard_pool())
        except Exception:
            return _result(future, job)

    def _discard_pool(self) -> str:
        """Shut down a pool a worker of which died, and say how it died."""
        assert self._pool is not None
        pool, self._pool = self._pool, None
        how = _how_died(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        return how


def parser_for(workers: int) -> Parser:
    return PoolParser(workers, threads=worker_threads(workers)) if workers > 1 else InlineParser()


def worker_threads(workers: int) -> int:
    """Threads each worker's models may use: the cores shared out, so that N workers, each with threads of
    its own (ONNX Runtime, CTranslate2 and PyTorch keep them spinning), do not outnumber the cores."""
    return max(1, (os.cpu_count() or 1) // workers)


def _result(future: Future[Parsed], job: ParseJob) -> Parsed:
    error = future.exception()
    if error is None:
        return future.result()
    log.error("internal error while reading %s in a worker process", job.path, exc_info=error)
    return Parsed(Outcome.NOT_READ, reason=f"internal error in the worker process: {type(error).__name__}: {error}")


def _worker_started(threads: int) -> None:
    """In each worker: Ctrl-C goes to the whole process group, and the ingest process stops its workers
    itself; an ingest process that was killed cannot, so a worker ends when its parent is gone. PyTorch
    (photo labels) reads its thread count when it is first imported, after this."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    parent = os.getppid()
    threading.Thread(target=_end_with, args=(parent,), name="mmrag-parent-watch", daemon=True).start()


def _end_with(parent: int) -> None:
    while os.getppid() == parent:  # a killed parent's children go to init (or a subreaper)
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _processes(pool: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    # The standard pool does not expose its processes before Python 3.14 (``terminate_workers``).
    found = getattr(pool, "_processes", None) or {}
    return list(found.values())


def _how_died(pool: ProcessPoolExecutor) -> str:
    processes = _processes(pool)
    for process in processes:  # the pool stops the others; the dead one's status may lag its closed pipes
        process.join(timeout=2)
    for process in processes:
        code = process.exitcode
        if code is None or code == 0 or code == -signal.SIGTERM:  # the pool stops the others with SIGTERM
            continue
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"
    return "it stopped abruptly"


def _terminate(pool: ProcessPoolExecutor) -> None:
    for process in _processes(pool):
        if process.is_alive():
            process.terminate()
