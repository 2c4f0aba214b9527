"""The distributed ingest's Celery side: the app both ends share, and the task ``mmrag ingest-worker`` runs.

The ingest process sends each file as a ``Shipment`` (a ``ParseJob``, plus the file's bytes when it is a
downloaded copy of a remote item that no worker could reach); a worker reads it with the same ``parse``
as a local worker process and sends back a ``Returned``: the ``Parsed`` outcome and the pictures it made
(thumbnails, frames, slide pictures), which the ingest process writes to its own media folder. The worker
writes nothing of the index: its pictures go to a scratch folder first, and its chunks' picture paths are
the ones they will have on the ingest node.

Messages are pickled: a ``Parsed`` holds typed chunks, locators, tables and notes that JSON would need a
codec for, and pickle gives back exactly the objects a local run has, so chunk ids are the same. Pickle
runs what it reads, so the broker must be reachable only by the ingest node and its workers (a private
address, a password in the URL, ``rediss://`` across networks).

Workers use Celery's prefork pool: each file is read in a child process, so a file that kills its reader
(a crash in a parsing library, out of memory) fails its task with ``WorkerLostError`` and the worker
starts another child; the ingest process reports that file's skip.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.ingest.base import IngestSettings, MediaConfig, Note
from mmrag.ingest.chunk import Chunk, Table
from mmrag.pipeline.ingest_parse import Outcome, Parsed, ParseJob, parse_in_worker

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

TASK = "mmrag.parse"
QUEUE = "mmrag.parse"
GRACE_S = 60.0  # past the file's budget, a task's reader is stopped (a library call that never returns)
HOST = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Shipment:
    """One file for a worker: ``content`` carries the file itself when only the ingest node has it."""

    job: ParseJob
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class Returned:
    """A file's outcome and the pictures made from it, as (path relative to its media folder, bytes)."""

    parsed: Parsed
    pictures: tuple[tuple[str, bytes], ...] = ()
    host: str = ""


def celery_app(broker: str) -> Celery:
    """The Celery app of the distributed ingest: Redis as broker and result store, pickled messages."""
    from celery import Celery

    app = Celery("mmrag", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(
        task_serializer="pickle",
        result_serializer="pickle",
        accept_content=["pickle"],
        result_accept_content=["pickle"],
        task_default_queue=QUEUE,
        task_track_started=True,  # the ingest process learns which worker holds a file
        task_acks_late=False,  # a file that kills its reader is not handed to the next one
        worker_prefetch_multiplier=1,  # a busy worker does not hold files another could read
        worker_disable_prefetch=True,  # nor any file it has no free process for (one that dies holds none)
        broker_transport_options={"visibility_timeout": 300},  # a message a dead worker held: again in 5 min
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    app.task(name=TASK)(read_shipment)
    return app


def read_shipment(shipment: Shipment) -> Returned:
    """The task: read one file on this machine, its pictures in a scratch folder sent back with it."""
    job = shipment.job
    scratch = Path(tempfile.mkdtemp(prefix="mmrag-worker-"))
    try:
        if shipment.content is not None:
            local = scratch / "file" / (job.path.name or "item")
            local.parent.mkdir()
            local.write_bytes(shipment.content)
            job = replace(job, path=local)
        elif not job.path.exists():
            return Returned(Parsed(Outcome.NOT_READ, reason=_not_here(job.path)), host=HOST)
        media = job.settings.media.media_dir
        pictures = scratch / "media"
        job = replace(job, settings=_here(job.settings, pictures if media is not None else None))
        parsed = parse_in_worker(job)
        if media is None or parsed.outcome is not Outcome.PARSED:
            return Returned(parsed, host=HOST)
        items, made = _moved_pictures(parsed.items, pictures, media)
        return Returned(replace(parsed, items=items), made, HOST)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _not_here(path: Path) -> str:
    return (
        f"not found on the ingest worker {HOST} at {path}: mount the drive at the same path on every worker "
        "machine (or run without --broker)"
    )


def _moved_pictures(
    items: tuple[Chunk | Table | Note, ...], scratch: Path, media: Path
) -> tuple[tuple[Chunk | Table | Note, ...], tuple[tuple[str, bytes], ...]]:
    """Chunks whose pictures point to where the ingest node will write them, and those pictures' bytes."""
    made: dict[str, bytes] = {}
    moved: list[Chunk | Table | Note] = []
    for item in items:
        if isinstance(item, Chunk) and item.image is not None and item.image.is_relative_to(scratch):
            name = item.image.relative_to(scratch).as_posix()
            if name not in made:
                made[name] = item.image.read_bytes()
            item = replace(item, image=media / name)
        moved.append(item)
    return tuple(moved), tuple(made.items())


def _here(settings: IngestSettings, pictures: Path | None) -> IngestSettings:
    """The job's settings with this machine's folders: pictures to the scratch folder, this worker's OCR
    cache, and its own copy of each model the ingest node uses (where its location differs)."""
    media, local = settings.media, _local_media()
    media = replace(
        media,
        media_dir=pictures,
        ocr_cache=local.ocr_cache,
        cpu_threads=local.cpu_threads,
        speech_location=_same_or_own(media.speech_location, local.speech_location),
        wordnet_dir=_same_or_own(media.wordnet_dir, local.wordnet_dir),
        office=_same_or_own(media.office, local.office),
    )
    return replace(settings, media=media)


def _same_or_own(theirs: str, own: str) -> str:
    """The ingest node's model location when this machine has it too, else this machine's, else none."""
    if not theirs or Path(theirs).exists() or "/" not in theirs:  # "" (off) or a model name (downloaded)
        return theirs
    return own


@cache
def _local_media() -> MediaConfig:
    """This machine's model locations and OCR cache, from its own configuration (``MMRAG_CONFIG``...)."""
    from mmrag.pipeline.app import Models
    from mmrag.pipeline.config import load_config

    cfg = load_config()
    media = Models(cfg).ingest_settings().media
    cache_dir = Path(os.environ.get("MMRAG_WORKER_CACHE") or _default_cache())
    cache_dir.mkdir(parents=True, exist_ok=True)
    threads = int(os.environ.get("MMRAG_WORKER_THREADS") or media.cpu_threads)
    return replace(media, ocr_cache=cache_dir / "ocr-cache.sqlite", cpu_threads=threads)


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmrag" / "worker"


def run_worker(broker: str, concurrency: int, *, name: str = "", loglevel: str = "INFO") -> None:
    """Serve parse tasks from ``broker`` with ``concurrency`` child processes until stopped (Ctrl-C, SIGTERM).

    The children are forked before any model loads (the task imports them on first use), and each one's
    OCR, speech and PyTorch threads are the cores shared out among them.
    """
    from mmrag.pipeline.ingest_pool import worker_threads

    threads = str(worker_threads(concurrency))
    os.environ.setdefault("MMRAG_WORKER_THREADS", threads)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, threads)
    app = celery_app(broker)
    argv = [
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        f"--queues={QUEUE}",
        f"--hostname={name or 'mmrag'}@%h",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    app.worker_main(argv)
