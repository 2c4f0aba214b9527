"""Reading one file into chunks: hash it, detect its kind, run its ingestor within the file's time budget.

This is the part of an ingest run that needs no index: it runs in the ingest process itself or, with
``[ingest] workers`` above 1, in worker processes (``ingest_pool``), which is why a ``ParseJob`` and
its ``Parsed`` outcome are plain picklable data. Everything that writes (vectors, keywords, tables,
manifest) stays with the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from mmrag.ingest.base import IngestSettings, Note
from mmrag.ingest.chunk import Chunk, Table
from mmrag.ingest.detect import detect
from mmrag.ingest.errors import IngestError
from mmrag.ingest.filetypes import ingestor_for
from mmrag.ingest.ziplimits import ZipLimits
from mmrag.pipeline.config import fault_point
from mmrag.pipeline.walk import not_regular

log = logging.getLogger(__name__)

HASH_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Budget:
    """The per-file time budget (``[limits] file_seconds``): reading, hashing and parsing share it."""

    seconds: float
    deadline: float

    @classmethod
    def start(cls, seconds: float, spent: float = 0.0) -> Budget:
        return cls(seconds, time.monotonic() + seconds - spent)

    def check(self, path: Path) -> None:
        if time.monotonic() > self.deadline:
            raise IngestError(
                path, f"took longer than the {self.seconds:.0f} s per-file budget (raise [limits] file_seconds)"
            )


def sha256_file(path: Path, budget: Budget | None = None) -> str:
    """The file's SHA-256; ``IngestError`` when it is no regular file or reading overruns ``budget``.

    The file is opened without blocking and checked before a byte is read, so a file swapped for a
    named pipe after the walk cannot hang the run.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        problem = not_regular(os.fstat(fd).st_mode)
        if problem:
            raise IngestError(path, problem)
        digest = hashlib.sha256()
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            if budget is not None:
                budget.check(path)
    return digest.hexdigest()


class Outcome(StrEnum):
    HASH_FAILED = "hash-failed"  # the file could not be read to hash it (``reason``: the OS's words)
    NOT_READ = "not-read"  # refused before its kind was known (``reason``: why); nothing to record
    HASHED = "hashed"  # its digest is one of the job's ``known``: not parsed, the caller decides
    UNSUPPORTED = "unsupported"  # a kind no ingestor reads (``kind``)
    NO_CONTENT = "no-content"  # read, but nothing usable in it (``reason``), recorded as skipped
    PARSED = "parsed"  # ``items`` hold its chunks, tables and notes
    DIED = "died"  # the process reading it died (``ingest_pool``)


@dataclass(frozen=True, slots=True)
class ParseJob:
    """One file to read. ``source`` is its name relative to the ingest root (chunks carry it).

    ``digest`` set: already hashed (no hashing). ``known``: digests for which the file needs no parsing
    (its manifest row's, or those of files gone from the listing: a rename); ``None`` stops after
    hashing whatever the digest. ``spent``: seconds of the file's budget used before this job.
    """

    path: Path
    source: str
    settings: IngestSettings
    zip_limits: ZipLimits
    budget_s: float
    digest: str = ""
    known: frozenset[str] | None = frozenset()
    spent: float = 0.0


@dataclass(frozen=True, slots=True)
class Parsed:
    outcome: Outcome
    digest: str = ""
    kind: str = ""
    reason: str = ""
    items: tuple[Chunk | Table | Note, ...] = ()

    @property
    def chunks(self) -> list[Chunk]:
        return [item for item in self.items if isinstance(item, Chunk)]

    @property
    def tables(self) -> list[Table]:
        return [item for item in self.items if isinstance(item, Table)]

    @property
    def notes(self) -> list[Note]:
        return [item for item in self.items if isinstance(item, Note)]


def parse(job: ParseJob) -> Parsed:
    """Hash the file (unless ``job.digest``), then read it into chunks unless its digest is ``known``."""
    path = job.path
    budget = Budget.start(job.budget_s, job.spent)
    digest = job.digest
    if not digest:
        try:
            digest = sha256_file(path, budget)
        except OSError as e:
            return Parsed(Outcome.HASH_FAILED, reason=str(e.strerror or e))
        except IngestError as e:
            return Parsed(Outcome.NOT_READ, reason=e.reason)
        if job.known is None or digest in job.known:
            return Parsed(Outcome.HASHED, digest)
    fault_point(f"parse:{job.source}")  # a file that kills the process reading it (the crash-safety tests)
    try:
        detection = detect(path, job.zip_limits)
    except OSError as e:
        return Parsed(Outcome.NOT_READ, digest, reason=f"cannot read the file ({e.strerror or e})")
    kind = str(detection.kind)
    if detection.problem:
        return Parsed(Outcome.NO_CONTENT, digest, kind, detection.problem)
    ingestor = ingestor_for(kind, job.settings)
    if ingestor is None:
        return Parsed(Outcome.UNSUPPORTED, digest, kind)
    try:
        items = tuple(_within_budget(ingestor.ingest(path, job.source), budget, path))
    except IngestError as e:
        return Parsed(Outcome.NO_CONTENT, digest, kind, e.reason)
    except Exception as e:  # a bug in an ingestor or a library: record it and go on with the drive
        log.exception("internal error while ingesting %s", path)
        return Parsed(Outcome.NO_CONTENT, digest, kind, f"internal error: {type(e).__name__}: {e}")
    return Parsed(Outcome.PARSED, digest, kind, items=items)  # with no chunk, the caller says there is no content


def _within_budget(items: Iterator[Chunk | Table | Note], budget: Budget, path: Path) -> Iterator[Chunk | Table | Note]:
    for item in items:
        budget.check(path)
        yield item


def parse_in_worker(job: ParseJob) -> Parsed:
    """``parse`` in a worker process: its outcome must cross back to the ingest process."""
    parsed = parse(job)
    if parsed.outcome is Outcome.PARSED:
        parsed = replace(parsed, items=tuple(_sendable(item) for item in parsed.items))
    return parsed


def _sendable(item: Chunk | Table | Note) -> Chunk | Table | Note:
    """A table whose rest of rows is read by something that cannot be pickled (a closure of a plugin)
    brings its rows along instead."""
    if not isinstance(item, Table) or item.more_rows is None:
        return item
    try:
        pickle.dumps(item.more_rows)
    except Exception:
        rows = item.rows + tuple(item.more_rows())
        return replace(item, rows=rows, more_rows=None)
    return item
