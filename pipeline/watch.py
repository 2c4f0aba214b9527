"""Keep an index in step with its folders and sources: ``mmrag watch``.

File events on local folders (``watchfiles``) are hints that start a sync of the folder they happened
in, debounced; remote sources are listed every ``poll_seconds``; and every folder is listed in full
every ``full_seconds`` whatever the events said (native events miss writers on other machines of a
mounted share). Each sync is an ordinary ingest run (one writer: the index's ingest lock; a run held
up by another ingest waits for the next round). What happened is recorded in the manifest
(``sync_state``), so ``mmrag status`` and the web page can show the last and next sync, what is pending
and what failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.pipeline.app import App, IngestRunning
from mmrag.pipeline.ingest_run import IngestReport, configured_source, run_ingest
from mmrag.pipeline.sources import Source, is_remote, open_source

if TYPE_CHECKING:
    from mmrag.pipeline.worker import IndexWorker

log = logging.getLogger(__name__)

SYNC_STATE = "sync_state"  # the manifest's meta key holding the last round's outcome
FULL_SECONDS = 3600.0
DEBOUNCE_MS = 1000  # events closer together than this are one change
TICK_MS = 1000  # how often the loop wakes when nothing happens (to poll sources, to stop)


@dataclass
class _Due:
    """When each target is next listed, and which are waiting for a sync now."""

    next_at: dict[str, float] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Watched:
    """What a watch keeps in step: local folders (watched for events) and sources (polled)."""

    folders: tuple[Path, ...]
    sources: tuple[Source, ...]
    poll_seconds: dict[str, float]


def watched(targets: Sequence[Path | str], app: App) -> Watched:
    """Folders and opened sources for ``targets`` (a path, or the name of a configured source)."""
    folders: list[Path] = []
    sources: list[Source] = []
    polls: dict[str, float] = {}
    for target in targets:
        configured = configured_source(app, target)
        if configured is None:
            path = Path(target).expanduser().resolve()
            if not path.is_dir():
                raise FileNotFoundError(f"{path} is not a folder or a configured source ([sources.NAME])")
            folders.append(path)
            continue
        source = open_source(configured)
        sources.append(source)
        polls[source.name] = configured.poll_seconds
    return Watched(tuple(folders), tuple(sources), polls)


def watch(
    what: Watched,
    app: App,
    stop: threading.Event,
    *,
    full_seconds: float = FULL_SECONDS,
    on_round: Callable[[IngestReport], None] | None = None,
) -> None:
    """Sync everything once, then keep syncing on events and on schedule until ``stop`` is set."""
    import watchfiles

    due = _Due(pending={str(f) for f in what.folders} | {s.name for s in what.sources})
    by_name: dict[str, Path | Source] = {str(f): f for f in what.folders} | {s.name: s for s in what.sources}
    local = {str(f): f for f in what.folders}
    local |= {s.name: Path(s.location) for s in what.sources if not is_remote(s.location)}  # named local folders
    watcher = (
        watchfiles.watch(
            *local.values(),
            debounce=DEBOUNCE_MS,
            step=100,
            stop_event=stop,
            rust_timeout=TICK_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        if local
        else None
    )
    while not stop.is_set():
        now = time.monotonic()
        for name in by_name:
            period = what.poll_seconds.get(name, full_seconds) if name not in local else full_seconds
            if now >= due.next_at.get(name, 0.0):
                due.pending.add(name)
                due.next_at[name] = now + period
        if due.pending:
            _sync(app, [by_name[n] for n in sorted(due.pending)], due, on_round)
        if watcher is None:
            stop.wait(TICK_MS / 1000)
            continue
        changes = next(watcher, None)
        if changes is None:  # the watcher ended: stop was set
            break
        for _, changed in changes:
            for name, folder in local.items():
                if Path(changed).is_relative_to(folder):
                    due.pending.add(name)


def _sync(
    app: App, targets: Sequence[Path | Source], due: _Due, on_round: Callable[[IngestReport], None] | None
) -> None:
    names = [t.name if not isinstance(t, Path) else str(t) for t in targets]
    started = time.time()
    try:
        report = run_ingest(list(targets), app)
    except IngestRunning as e:
        log.info("sync waits: %s", e)
        record_state(app, started, due, error=str(e))
        return
    due.pending.difference_update(names)
    record_state(app, started, due, report=report)
    if report.changed or report.failed:
        log.info(
            "synced %s: %d ingested, %d moved, %d removed, %d failed",
            ", ".join(names),
            len(report.ingested),
            len(report.moved),
            len(report.removed),
            len(report.failed),
        )
    if on_round is not None:
        on_round(report)


def record_state(app: App, started: float, due: _Due, *, report: IngestReport | None = None, error: str = "") -> None:
    """Write the round's outcome where ``mmrag status`` and the web page read it."""
    wall = time.time() - time.monotonic()
    state = {
        "last_sync": started,
        "next_sync": min(due.next_at.values(), default=time.monotonic()) + wall,
        "pending": sorted(due.pending),
        "failures": [f.to_json() for f in report.failed] if report else [],
        "ingested": len(report.ingested) if report else 0,
        "removed": len(report.removed) if report else 0,
        "moved": len(report.moved) if report else 0,
        "error": error,
    }
    app.manifest.set_meta(SYNC_STATE, json.dumps(state))


def sync_state(app: App) -> dict[str, object] | None:
    """The last watch round's outcome, if a watch ever ran on this index."""
    raw = app.manifest.get_meta(SYNC_STATE)
    return json.loads(raw) if raw else None


class BackgroundSync:
    """``mmrag serve --watch``: the watch loop in a thread of the server, on an index of its own (the
    server's models shared); after a round that changed something the server's index is reopened, so
    searches see it. An ingest started over HTTP meanwhile holds the lock: the round waits for the next."""

    def __init__(self, worker: IndexWorker, targets: Sequence[str], *, full_seconds: float = FULL_SECONDS) -> None:
        self.worker = worker
        self.targets = list(targets)
        self.full_seconds = full_seconds
        self.stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mmrag-sync", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        from mmrag.pipeline.app import open_app
        from mmrag.pipeline.ingest_run import lower_priority

        lower_priority(self.worker.cfg.ingest.nice)  # this thread only (Linux): searches keep their priority
        try:
            app = open_app(self.worker.cfg, create=True, models=self.worker.models)
        except Exception:
            log.exception("the background sync could not open the index")
            return
        what: Watched | None = None
        try:
            what = watched(self.targets, app)
            watch(what, app, self.stop, full_seconds=self.full_seconds, on_round=self._changed)
        except Exception:
            log.exception("the background sync stopped")
        finally:
            for source in what.sources if what is not None else ():
                source.close()
            app.close()

    def _changed(self, report: IngestReport) -> None:
        if report.changed:
            self.worker.reopen()
