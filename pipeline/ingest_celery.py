"""Files read by ``mmrag ingest-worker`` processes on other machines, through a Redis broker (Celery).

Selected by ``[ingest] broker`` (``MMRAG_INGEST_BROKER``, ``mmrag ingest --broker URL``). The ingest
process stays the one writer: it sends each file as a task, applies outcomes as they come back (in its
own thread, as with local workers) and writes the pictures the workers made into its media folder. What
the local pool guarantees holds here too: at most twice the workers' processes' files in flight, a file
that kills its reader skipped as that file's and tried again next run, the per-file budget (a reader
stuck past it is stopped by its worker). Files of local folders are read by path, so every worker
mounts the drive at the same path; downloaded copies of remote items travel in the task up to
``[ingest] broker_ship_mb`` (workers need no credentials or route to the source) and larger ones are read
here. Before the run writes anything, a broker that cannot be reached or no worker answering within
``[ingest] broker_wait_s`` stops it with a message naming the setting.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.errors import MmragError
from mmrag.pipeline.config import IngestConfig, redact_url
from mmrag.pipeline.ingest_parse import Outcome, Parsed, ParseJob, parse
from mmrag.pipeline.ingest_pool import Done, died
from mmrag.pipeline.ingest_worker import GRACE_S, TASK, Returned, Shipment, celery_app

if TYPE_CHECKING:
    from celery.result import AsyncResult

log = logging.getLogger(__name__)

POLL_S = 0.05
HEALTH_S = 5.0  # how often workers are asked whether they are there, while nothing finishes
SETTING = "[ingest] broker (MMRAG_INGEST_BROKER, --broker)"


class BrokerError(MmragError):
    """The broker cannot be reached, or no ingest worker answers on it."""


@dataclass
class _Task:
    result: AsyncResult
    job: ParseJob
    done: Done
    missing: int = 0  # health checks in a row its worker did not answer


class CeleryParser:
    """Files read by ingest workers through ``broker``; outcomes applied here as they come back."""

    def __init__(self, broker: str, wait_s: float = 15.0, ship_mb: float = 64.0, downloads: Path | None = None) -> None:
        self.broker = broker
        self.name = redact_url(broker)
        self.wait_s = wait_s
        self.ship_bytes = int(ship_mb * 1024 * 1024)
        self.downloads = downloads
        reach(broker)
        self.app = celery_app(broker)
        self.processes = self._workers()
        self.in_flight = 2 * self.processes
        self._running: dict[str, _Task] = {}
        self._seen = time.monotonic()  # when a worker last answered
        self._checked = time.monotonic()

    def submit(self, job: ParseJob, done: Done) -> None:
        while len(self._running) >= self.in_flight:
            self._settle()
        self._send(job, done)

    def drain(self) -> None:
        while self._running:
            self._settle()

    def close(self) -> None:
        """Withdraw the files still out (the run failed or was interrupted) and let go of the broker."""
        if self._running:
            self.app.control.revoke(list(self._running), terminate=True)
            for task in self._running.values():
                task.result.forget()
            self._running.clear()
        self.app.close()

    def _send(self, job: ParseJob, done: Done) -> None:
        content = None
        if self.downloads is not None and job.path.is_relative_to(self.downloads):
            if job.path.stat().st_size > self.ship_bytes:  # too big to send: read here, as with one process
                log.info("reading %s in the ingest process (over [ingest] broker_ship_mb)", job.source)
                follow = done(parse(job))
                if follow is not None:
                    self._send(follow, done)
                return
            content = job.path.read_bytes()
        limit = max(job.budget_s - job.spent, 1.0) + GRACE_S
        result = self.app.send_task(TASK, args=(Shipment(job, content),), time_limit=limit)
        self._running[result.id] = _Task(result, job, done)

    def _settle(self) -> None:
        """Wait for at least one file, and apply what came back."""
        while not (finished := [t for t in self._running.values() if t.result.ready()]):
            if time.monotonic() - self._checked > HEALTH_S:
                finished = self._lost()
                if finished:
                    break
            time.sleep(POLL_S)
        for task in finished:
            self._running.pop(task.result.id, None)
        for task in finished:
            follow = task.done(self._outcome(task))
            if follow is not None:
                self._send(follow, task.done)  # the window may pass its bound for a moment

    def _outcome(self, task: _Task) -> Parsed:
        result, job = task.result, task.job
        if not result.ready():  # its worker stopped answering (``_lost``)
            return died(f"its ingest worker {_host(result)} stopped answering")
        try:
            value: Any = result.result
            if result.successful() and isinstance(value, Returned):
                _write_pictures(job, value)
                return value.parsed
            return _failed(job, value)
        finally:
            result.forget()

    def _lost(self) -> list[_Task]:
        """Ask which workers are there; files held by one that stopped answering twice are lost. Stop the
        run when none has answered for ``broker_wait_s``."""
        self._checked = now = time.monotonic()
        alive = {host for reply in self.app.control.ping(timeout=1.0) or [] for host in reply}
        if alive:
            self._seen = now
        elif now - self._seen > self.wait_s:
            raise BrokerError(
                f"no ingest worker has answered on {self.name} for {now - self._seen:.0f} s ({SETTING}); "
                "the files read so far are kept and the rest is read next run: start `mmrag ingest-worker "
                "--broker URL` again"
            )
        lost = []
        for task in self._running.values():
            host = _host(task.result)
            task.missing = task.missing + 1 if host and host not in alive else 0
            if task.missing >= 2:
                lost.append(task)
        return lost

    def _workers(self) -> int:
        """The child processes of the workers answering now; ``BrokerError`` when none does in time."""
        deadline = time.monotonic() + self.wait_s
        while True:
            stats = self.app.control.inspect(timeout=1.0).stats() or {}
            if stats:
                processes = sum(_concurrency(s) for s in stats.values())
                log.info("%d ingest workers (%d processes) on %s", len(stats), processes, self.name)
                return processes
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"no ingest worker answered on {self.name} within {self.wait_s:g} s ([ingest] broker_wait_s): "
                    "start one on each worker machine with `mmrag ingest-worker --broker URL`, or ingest "
                    f"without {SETTING} to read files on this machine"
                )


def reach(broker: str) -> None:
    """Raise ``BrokerError`` unless the Redis at ``broker`` answers (within 5 s)."""
    import redis

    try:
        client = redis.Redis.from_url(broker, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as e:
        raise BrokerError(
            f"cannot reach the ingest broker {redact_url(broker)} ({SETTING}): {str(e).rstrip('.')}; start Redis there "
            "(redis-server) or fix the setting"
        ) from e


def parser_for_broker(cfg: IngestConfig, index_dir: Path) -> CeleryParser:
    return CeleryParser(cfg.broker, cfg.broker_wait_s, cfg.broker_ship_mb, index_dir / "downloads")


def _concurrency(stats: dict[str, Any]) -> int:
    pool = stats.get("pool") or {}
    return max(1, int(pool.get("max-concurrency") or 1))


def _host(result: AsyncResult) -> str:
    info = result.info if result.state == "STARTED" else None
    return str(info.get("hostname", "")) if isinstance(info, dict) else ""


def _write_pictures(job: ParseJob, returned: Returned) -> None:
    media = job.settings.media.media_dir
    if media is None:
        return
    for name, data in returned.pictures:
        target = media / name
        if not target.resolve().is_relative_to(media.resolve()):
            raise ValueError(f"a worker sent a picture outside the media folder: {name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)


_EXIT = re.compile(r"exitcode (\d+)")
_SIGNAL = re.compile(r"signal (\d+) \((\w+)\)")


def _failed(job: ParseJob, error: object) -> Parsed:
    """What a failed task means for its file."""
    kind = type(error).__name__
    text = str(error)
    if kind == "WorkerLostError":
        exited, signalled = _EXIT.search(text), _SIGNAL.search(text)
        how = f"exit code {exited[1]}" if exited else f"killed by {signalled[2]}" if signalled else text
        log.warning("the ingest worker process reading %s died; its worker starts another", job.path)
        return died(how)
    if kind in ("TimeLimitExceeded", "SoftTimeLimitExceeded"):
        return Parsed(
            Outcome.NOT_READ,
            reason=f"took longer than the {job.budget_s:.0f} s per-file budget and its reader was stopped "
            "(raise [limits] file_seconds)",
        )
    log.error("internal error while reading %s in an ingest worker: %s: %s", job.path, kind, text)
    return Parsed(Outcome.NOT_READ, reason=f"internal error in the ingest worker: {kind}: {text}")
