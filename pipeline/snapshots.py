"""Snapshots of an index's SQLite state, published by the ingest node and read by API replicas.

The ingest node is the one writer: it keeps its keyword index, table store and manifest as on one
machine and, after each run that changed something (and at most every ``[store] publish_seconds``
during a long one, right after a flush, so the manifest matches the vectors), copies them with
SQLite's backup API into a new snapshot of the shared location::

    blocks/<sha256>  256 KiB pieces of the three SQLite files (keyword index, table store, manifest)
    snapshots/<id>/snapshot.json   the snapshot: each file's blocks in order (written after its blocks)
    CURRENT          the id of the newest complete snapshot (written after all of it)
    media/           the pictures (a shared folder: written there directly by ingest; S3: uploaded with each snapshot)

A publish sends only the blocks the current snapshot lacks, and a replica fetches only the blocks the
snapshot it holds lacks (``snapshot_blocks``): a small change costs a few blocks, not the whole index.
A reader follows ``CURRENT``, so it never sees half a snapshot; a publish killed midway leaves the
previous one current. A replaced snapshot is deleted ``keep_seconds`` after it was replaced, so a
replica still copying it finishes, and so are the blocks no kept snapshot lists. Vectors are not in a
snapshot: they live in the Chroma server. (Snapshots of whole files, as earlier versions published
them, are still read.)
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mmrag.pipeline.app import KEYWORD_FILE, MANIFEST_FILE, TABLES_FILE, App, ReplicaRefused, replica_refusal
from mmrag.pipeline.config import fault_point
from mmrag.pipeline.shared import FolderLocation, SharedLocation, SharedUnavailable, open_shared
from mmrag.pipeline.snapshot_blocks import BLOCK, BLOCKS, assemble, held_blocks, referenced
from mmrag.pipeline.snapshot_blocks import upload as upload_blocks
from mmrag.retrieval.store import IndexMismatch

log = logging.getLogger(__name__)

FILES = (KEYWORD_FILE, TABLES_FILE, MANIFEST_FILE)
CURRENT = "CURRENT"
SNAPSHOTS = "snapshots/"
MEDIA = "media/"
INFO = "snapshot.json"
PENDING = "publish.pending"  # in the ingest node's index: changes not yet published (a run was cut short)
UPLOADED = "published-media.json"  # in the ingest node's index (S3): pictures uploaded, by name


class ProgressSink(Protocol):  # ingest_run's, which imports this module
    def files_found(self, total: int) -> None: ...

    def file_done(self, source: str, outcome: str, chunks: int) -> None: ...


class NothingPublished(IndexMismatch):
    """A replica's shared location holds no snapshot yet."""


@dataclass(frozen=True, slots=True)
class Published:
    """One publish: its id, its size, the bytes it sent (blocks the previous snapshot lacked) and seconds
    taken (copy, upload)."""

    id: str
    bytes: int
    copy_seconds: float
    upload_seconds: float
    sent: int = 0


def new_id() -> str:
    """Sortable by time (milliseconds), unique across machines."""
    return f"{time.time_ns() // 1_000_000:015d}-{secrets.token_hex(3)}"


def created(snapshot_id: str) -> float:
    """When a snapshot was made (Unix time, from its id; 0.0 for an id of another form)."""
    try:
        return int(snapshot_id.split("-", 1)[0]) / 1000
    except ValueError:
        return 0.0


def copy_databases(index_dir: Path, out: Path) -> None:
    """A consistent copy of each SQLite file (the backup API: a writer in another connection waits or is
    waited for, never seen half way), as one plain file each (no -wal to carry along)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        src = sqlite3.connect(f"file:{index_dir / name}?mode=ro", uri=True)
        dst = sqlite3.connect(out / name)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
            src.close()


def publish(app: App, location: SharedLocation) -> Published:
    """Flush the index and publish its SQLite state (and, to S3, new pictures) as the new current snapshot."""
    app.index.flush()
    upload = None if _is_folder(location) else lambda: _upload_media(app, location)
    return publish_files(app.path, location, app.cfg.store.keep_seconds, upload)


def publish_files(
    index_dir: Path,
    location: SharedLocation,
    keep_seconds: float,
    upload_media: Callable[[], dict[str, str]] | None = None,
) -> Published:
    """Copy the SQLite files of ``index_dir`` into a new snapshot, then make it current and prune old ones.

    ``upload_media`` (S3) uploads the pictures and returns them by name and version for the snapshot's list.
    """
    started = time.monotonic()
    snapshot = new_id()
    previous = current(location)
    have = referenced(_info(location, previous) or {}) if previous is not None else set()
    with tempfile.TemporaryDirectory(prefix="mmrag-publish-", dir=index_dir) as tmp:
        folder = Path(tmp)
        copy_databases(index_dir, folder)
        copied = time.monotonic()
        size = sum((folder / name).stat().st_size for name in FILES)
        blocks, sent = upload_blocks(location, folder, FILES, have)
    media = upload_media() if upload_media is not None else None  # None: pictures are in the shared folder
    fault_point("publish-before-current")
    info = {
        "id": snapshot, "created": time.time(), "files": list(FILES), "blocks": blocks, "block_size": BLOCK,
        "media": media,
    }  # fmt: skip
    location.write(f"{SNAPSHOTS}{snapshot}/{INFO}", json.dumps(info).encode())
    location.write(CURRENT, snapshot.encode())
    done = time.monotonic()
    prune(location, keep_seconds)
    log.info(
        "published snapshot %s to %s (%.1f MB, %.1f MB of it new)", snapshot, location.where, size / 1e6, sent / 1e6
    )
    return Published(snapshot, size, copied - started, done - copied, sent)


def _info(location: SharedLocation, snapshot: str) -> dict[str, object] | None:
    """A snapshot's ``snapshot.json``, or None when it is gone (pruned) or unreadable."""
    raw = location.read(f"{SNAPSHOTS}{snapshot}/{INFO}")
    if raw is None:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _is_folder(location: SharedLocation) -> bool:
    return isinstance(location, FolderLocation)


def _upload_media(app: App, location: SharedLocation) -> dict[str, str]:
    """Upload pictures new or changed since the last publish and delete those gone; returns every picture
    by name with its version (size and modification time), which replicas compare with their copies."""
    media = app.media_dir
    record = app.path / UPLOADED
    uploaded: dict[str, str] = json.loads(record.read_text()) if record.is_file() else {}
    now: dict[str, str] = {}
    for folder, _dirs, files in os.walk(media):
        for file in files:
            path = Path(folder) / file
            st = path.stat()
            now[path.relative_to(media).as_posix()] = f"{st.st_size}-{st.st_mtime_ns}"
    for name, version in now.items():
        if uploaded.get(name) != version:
            location.put(media / name, MEDIA + name)
            uploaded[name] = version
            record.write_text(json.dumps(uploaded))  # an upload cut short is redone, not forgotten
    gone = sorted(uploaded.keys() - now.keys())
    if gone:
        location.delete([MEDIA + name for name in gone])
    record.write_text(json.dumps(now))
    return now


def current(location: SharedLocation) -> str | None:
    """The id of the current snapshot, or None before the first publish."""
    raw = location.read(CURRENT)
    if raw is None:
        return None
    return raw.decode().strip() or None


def prune(location: SharedLocation, keep_seconds: float) -> list[str]:
    """Delete snapshots replaced more than ``keep_seconds`` ago (never the current one); returns their ids."""
    names = location.names(SNAPSHOTS)
    ids = sorted({n[len(SNAPSHOTS) :].split("/", 1)[0] for n in names})
    now_id = current(location)
    cutoff = time.time() - keep_seconds
    dropped = []
    for older, newer in itertools.pairwise(ids):
        if older != now_id and created(newer) < cutoff:
            dropped.append(older)
    if dropped:
        location.delete([n for n in names if n[len(SNAPSHOTS) :].split("/", 1)[0] in dropped])
        kept: set[str] = set()
        for snapshot in ids:
            info = None if snapshot in dropped else _info(location, snapshot)
            if snapshot not in dropped and info is None:
                return dropped  # a kept snapshot that cannot be read: keep every block this time
            kept |= referenced(info or {})
        location.delete([n for n in location.names(BLOCKS) if n[len(BLOCKS) :] not in kept])
    return dropped


class Publisher:
    """Publishes an ingest node's runs: at the end of a run that changed something, and during a long run
    at most every ``publish_seconds`` (from the thread that writes the index, right after a flush)."""

    def __init__(self, app: App, location: SharedLocation) -> None:
        self.app = app
        self.location = location
        self.every = app.cfg.store.publish_seconds
        self._last = time.monotonic()
        self._thread = threading.get_ident()
        self._changed = False  # since the last publish
        marker = app.path / PENDING
        self._pending = marker.exists()
        marker.write_text("changes of an ingest run not yet published; the next run publishes them\n")

    def watching(self, progress: ProgressSink | None) -> ProgressSink:
        """``progress`` (if any), told of each file, with a publish after a file once the last is
        ``publish_seconds`` old (only on the thread that writes the index)."""
        return _Publishing(self, progress)

    def file_done(self, outcome: str) -> None:
        self._changed = self._changed or outcome not in ("unchanged", "failed")
        due = time.monotonic() - self._last >= self.every
        if self._changed and due and threading.get_ident() == self._thread:
            self._publish()

    def _publish(self) -> None:
        publish(self.app, self.location)
        self._last = time.monotonic()
        self._changed = False

    def finish(self, changed: bool) -> None:
        """At the end of a run: publish when it changed something, an earlier run's changes wait, or
        nothing was ever published."""
        if changed or self._pending or current(self.location) is None:
            self._publish()
        (self.app.path / PENDING).unlink(missing_ok=True)


class _Publishing:
    def __init__(self, publisher: Publisher, progress: ProgressSink | None) -> None:
        self._publisher = publisher
        self._progress = progress

    def files_found(self, total: int) -> None:
        if self._progress is not None:
            self._progress.files_found(total)

    def file_done(self, source: str, outcome: str, chunks: int) -> None:
        if self._progress is not None:
            self._progress.file_done(source, outcome, chunks)
        self._publisher.file_done(outcome)


def publisher_for(app: App) -> Publisher | None:
    """The publisher of an ingest into ``app`` (None on one machine); ``ReplicaRefused`` on a replica."""
    cfg = app.cfg
    if cfg.store.role == "replica":
        raise ReplicaRefused(replica_refusal(cfg))
    location = open_shared(cfg)
    return Publisher(app, location) if location is not None else None


@dataclass(frozen=True, slots=True)
class Fetched:
    """A snapshot copied into a replica's cache: its id and folder, and the bytes downloaded for it."""

    id: str
    folder: Path
    downloaded: int = 0


def fetch(
    location: SharedLocation,
    cache: Path,
    *,
    want: str | None = None,
    media: bool = True,
    also_held: Path | None = None,
) -> Fetched:
    """Copy the current snapshot (or ``want``) into ``cache/snapshots/<id>`` unless it is there already,
    and (unless ``media`` is off) the pictures an S3 location keeps beside it. Blocks of the snapshots in
    ``cache`` (and in ``also_held``, another replica cache) are not downloaded again.

    ``NothingPublished`` when there is none; a snapshot pruned while it was being copied is given up for
    the then current one.
    """
    for _attempt in range(3):
        snapshot = want or current(location)
        if snapshot is None:
            raise NothingPublished(
                f"nothing is published at {location.where} yet: run `mmrag ingest` on the ingest node "
                "(with the same [store] shared) first"
            )
        folder = cache / "snapshots" / snapshot
        if (folder / INFO).is_file():
            return Fetched(snapshot, folder)
        partial = cache / "snapshots" / f".{snapshot}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        info_raw = location.read(f"{SNAPSHOTS}{snapshot}/{INFO}")
        held = [*(cache / "snapshots").glob("[!.]*"), *((also_held / "snapshots").glob("[!.]*") if also_held else ())]
        downloaded = None if info_raw is None else _copy_files(location, snapshot, json.loads(info_raw), partial, held)
        if downloaded is None or info_raw is None:
            shutil.rmtree(partial, ignore_errors=True)
            want = None  # pruned meanwhile (or not complete): take the current one
            continue
        info = json.loads(info_raw)
        if media and info.get("media") is not None:
            _fetch_media(location, cache, info["media"])
        (partial / INFO).write_bytes(info_raw)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        return Fetched(snapshot, folder, downloaded)
    raise SharedUnavailable(f"the snapshots at {location.where} kept changing while being copied; try again")


def _copy_files(
    location: SharedLocation, snapshot: str, info: dict[str, object], out: Path, folders: list[Path]
) -> int | None:
    """The snapshot's SQLite files into ``out``, from blocks (those the replica holds are not downloaded)
    or, for a snapshot of whole files, whole; the bytes downloaded, or None when something is gone."""
    blocks = info.get("blocks")
    if not isinstance(blocks, dict):
        ok = all(location.get(f"{SNAPSHOTS}{snapshot}/{name}", out / name) for name in FILES)
        return sum((out / name).stat().st_size for name in FILES) if ok else None
    held = held_blocks(folders, INFO)
    downloaded = 0
    for name in FILES:
        got = assemble(location, BLOCKS, blocks.get(name, []), out / name, held)
        if got is None:
            return None
        downloaded += got
    return downloaded


def _fetch_media(location: SharedLocation, cache: Path, media: dict[str, str]) -> None:
    """Bring the replica's copy of the pictures (S3) in line with a snapshot's list."""
    folder = cache / "media"
    record = cache / "media.json"
    have: dict[str, str] = json.loads(record.read_text()) if record.is_file() else {}
    for name, version in media.items():
        if have.get(name) != version:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if location.get(MEDIA + name, target):
                have[name] = version
    for name in have.keys() - media.keys():
        (folder / name).unlink(missing_ok=True)
    record.write_text(json.dumps({n: v for n, v in have.items() if n in media}))
