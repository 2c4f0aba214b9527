"""One ingest run: walk, detect, skip what is unchanged, ingest what is new, drop what is gone.

Bad input never stops the run: each file's failure is recorded with a reason and the run goes on.
A file's manifest row is written only after its chunks are stored (see ``retrieval.manifest``).
Files are read (``ingest_parse``) in this process or, with ``[ingest] workers`` above 1, in worker
processes (``ingest_pool``), or with ``[ingest] broker`` by ingest workers on other machines
(``ingest_celery``); either way only this process writes the index, and what it does with each file's
outcome is the same.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Protocol

from mmrag.ingest.base import IngestSettings
from mmrag.ingest.chunk import Chunk, Table
from mmrag.ingest.detect import FileKind
from mmrag.ingest.errors import IngestError
from mmrag.ingest.permissions import PathReaders
from mmrag.ingest.reader_rules import ReaderRules
from mmrag.ingest.ziplimits import ZipLimits
from mmrag.pipeline.app import App, ingest_lock, root_media_dir
from mmrag.pipeline.config import SourceConfig, fault_point
from mmrag.pipeline.ingest_parse import Budget, Outcome, Parsed, ParseJob, sha256_file
from mmrag.pipeline.ingest_pool import InlineParser, Parser, parser_for, worker_threads
from mmrag.pipeline.sources import Item, Source, SourceError, chunk_source, open_source
from mmrag.pipeline.walk import Found, Target, not_regular, policy_for, target_for, walk
from mmrag.retrieval.manifest import OK, SKIPPED, FileRecord
from mmrag.retrieval.records import NOBODY
from mmrag.retrieval.store import FileInfo

log = logging.getLogger(__name__)

UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Skipped:
    file: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


@dataclass
class IngestReport:
    ingested: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    chunks: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    unsupported: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)  # files indexed in part, and why
    permissions_changed: list[str] = field(default_factory=list)  # readers updated, nothing embedded again
    moved: list[str] = field(default_factory=list)  # "old -> new": renamed or moved, same content, not embedded again
    failed: list[Skipped] = field(default_factory=list)  # could not be read now: kept as they were, retried next run
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)  # per folder or source: what happened
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether the run changed what searches find (files in, out, moved, or readable by others)."""
        return bool(self.ingested or self.removed or self.moved or self.permissions_changed)

    def to_json(self) -> dict[str, object]:
        return {
            "ingested": len(self.ingested),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "chunks": self.chunks,
            "skipped": [s.to_json() for s in self.skipped],
            "unsupported": [s.to_json() for s in self.unsupported],
            "notes": [s.to_json() for s in self.notes],
            "ingested_files": self.ingested,
            "removed_files": self.removed,
            "permissions_changed": self.permissions_changed,
            "moved": self.moved,
            "failed": [s.to_json() for s in self.failed],
            "by_source": self.by_source,
            "seconds": round(self.seconds, 2),
        }


class ProgressSink(Protocol):
    """Receives progress events; the CLI draws a bar, the API may ignore them."""

    def files_found(self, total: int) -> None: ...

    def file_done(self, source: str, outcome: str, chunks: int) -> None: ...


class _NoProgress:
    def files_found(self, total: int) -> None:
        pass

    def file_done(self, source: str, outcome: str, chunks: int) -> None:
        pass


def _label(target: Target, found: Found) -> str:
    return found.source if target.is_folder else str(found.path)


class _Run:
    def __init__(self, app: App, progress: ProgressSink, parser: Parser | None = None) -> None:
        self.app = app
        self.parser = parser or InlineParser()
        self.manifest = app.manifest
        self.index = app.index
        self.cfg = app.cfg
        self.progress = progress
        self.report = IngestReport()
        self.settings = app.models.ingest_settings()
        workers = app.cfg.ingest.workers
        if workers > 1:  # each worker's OCR and speech threads: the cores shared out
            media = self.settings.media
            threads = min(media.cpu_threads, worker_threads(workers))
            self.settings = replace(self.settings, media=replace(media, cpu_threads=threads))
        self._by_root: dict[str, IngestSettings] = {}
        limits = app.cfg.limits
        self.zip_limits = ZipLimits(limits.max_inflated_mb, limits.max_zip_ratio)
        self.readers = PathReaders() if app.cfg.permissions.enabled else None
        rules = app.cfg.permissions.rules_file
        self.rules = ReaderRules.load(Path(rules).expanduser()) if self.readers is not None and rules else None
        self.churn = 0  # chunks replaced or deleted in the vector store this run (see ``rebuild_if_worn``)
        self.gone: dict[str, dict[str, FileRecord]] = {}  # per root: ingested files no longer listed, by content hash
        self._downloads: Path | None = None  # this run's folder of copies of remote items (see ``item``)

    def settings_for(self, root: str) -> IngestSettings:
        """The ingest settings with pictures going to this root's own media folder."""
        found = self._by_root.get(root)
        if found is None:
            media = self.settings.media
            if media.media_dir is not None:
                media = replace(media, media_dir=root_media_dir(media.media_dir, root))
            found = self._by_root[root] = replace(self.settings, media=media)
        return found

    def file(self, target: Target, found: Found) -> None:
        root = str(target.root)
        label = _label(target, found)
        if found.problem:
            self._skip(label, found.problem)
            return
        started = time.monotonic()  # reading and hashing count towards the file's budget too
        try:
            st = found.path.stat()
        except OSError as e:
            self._skip(label, f"cannot read the file ({e.strerror or e})")
            return
        if not_regular(st.st_mode):
            self._skip(label, not_regular(st.st_mode))
            return
        limit = self.cfg.limits.max_file_mb * 1024 * 1024
        if st.st_size > limit:
            self._forget(root, found.source)
            self._skip(
                label,
                f"file is {st.st_size / 1e6:.0f} MB, over the {self.cfg.limits.max_file_mb:.0f} MB limit "
                "(raise [limits] max_file_mb to include it)",
            )
            return
        try:
            principals = self._principals(found.source, lambda: self._on_disk(found.path))
        except OSError as e:
            self._skip(label, f"cannot read the file's permissions ({e.strerror or e})")
            return
        old = self.manifest.get(root, found.source)
        if old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
            self._unchanged(label, old, principals)
            return
        job = ParseJob(
            found.path,
            found.source,
            self.settings_for(root),
            self.zip_limits,
            self.cfg.limits.file_seconds,
            # a file seen before needs no reading if its content did not change; a new one none if it is a
            # file gone from the listing, renamed (decided here once it is hashed)
            known=frozenset({old.sha256}) if old else (None if self.gone.get(root) else frozenset()),
            spent=time.monotonic() - started,
        )

        def done(parsed: Parsed) -> ParseJob | None:
            return self._file_read(root, job, parsed, label, old, st, principals)

        self.parser.submit(job, done)

    def _file_read(
        self,
        root: str,
        job: ParseJob,
        parsed: Parsed,
        label: str,
        old: FileRecord | None,
        st: os.stat_result,
        principals: tuple[str, ...] | None,
    ) -> ParseJob | None:
        """Apply what reading a file found; a job to read it after all when only its hash was wanted."""
        source = job.source
        if self._not_read(label, parsed):
            return None
        digest = parsed.digest
        if old and old.sha256 == digest:
            self.manifest.touch(root, source, st.st_size, st.st_mtime_ns)
            self._unchanged(label, old, principals)
            return None
        if old is None and self._moved(root, digest, source, label, st.st_size, st.st_mtime_ns, principals):
            return None
        if parsed.outcome is Outcome.HASHED:
            return replace(job, digest=digest, known=frozenset())
        record = FileRecord(
            root, source, st.st_size, st.st_mtime_ns, digest, str(FileKind.UNKNOWN), SKIPPED, principals=principals
        )
        self._parsed(label, record, st.st_mtime, parsed)
        return None

    def expect_gone(self, root: str, listed: set[str]) -> None:
        """Remember the ingested files of ``root`` the listing no longer has: a new file with the same
        content is one of them renamed or moved (``_moved``)."""
        self.gone[root] = {r.sha256: r for r in self.manifest.files(root) if r.source not in listed and r.status == OK}

    def _moved(
        self,
        root: str,
        digest: str,
        source: str,
        label: str,
        size: int,
        mtime_ns: int,
        principals: tuple[str, ...] | None,
        version: str = "",
    ) -> bool:
        """Move a renamed file's chunks to its new name, when one with this content has gone (no embedding)."""
        old = self.gone.get(root, {}).pop(digest, None)
        if old is None:
            return False
        readers = old.principals if principals is None else principals
        new = replace(old, source=source, size=size, mtime_ns=mtime_ns, principals=readers, version=version)

        def record() -> None:
            self.manifest.put(new)
            self.manifest.remove(root, old.source)

        info = FileInfo(root=root, kind=old.kind, modified=mtime_ns / 1e9, principals=readers or ())
        if not self.index.move_file(root, old.source, source, info, then=record):
            return False
        self.churn += old.chunks  # deleted under the old name, added under the new
        self.report.moved.append(f"{old.source} -> {label}")
        self.progress.file_done(label, "moved", 0)
        return True

    def item(self, source: Source, item: Item, readers: tuple[str, ...]) -> bool:
        """Bring one item of a remote source up to date; False when it could not be read (retried next run)."""
        root = source.location
        name = chunk_source(source.name, item.path)
        limit = self.cfg.limits.max_file_mb * 1024 * 1024
        if item.size > limit:
            self._forget(root, name)
            self._skip(
                name,
                f"file is {item.size / 1e6:.0f} MB, over the {self.cfg.limits.max_file_mb:.0f} MB limit "
                "(raise [limits] max_file_mb to include it)",
            )
            return True
        principals = self._principals(name, lambda: item.principals if item.principals is not None else readers)
        mtime_ns = int(item.modified * 1e9)
        old = self.manifest.get(root, name)
        if old and old.version and old.version == item.version and old.size == item.size:
            self._unchanged(name, old, principals)  # on the version token alone: not a byte read
            return True
        if old is None and item.content:  # renamed or moved: its digest says so, no need to download it
            same = next(
                (r for r in self.gone.get(root, {}).values() if (r.version, r.size) == (item.version, item.size)), None
            )
            if same and self._moved(root, same.sha256, name, name, item.size, mtime_ns, principals, item.version):
                return True
        folder = Path(tempfile.mkdtemp(dir=self._downloads_folder()))  # kept until the copy is read
        local = folder / (PurePosixPath(item.path).name or "item")
        queued: bool | None = None
        try:
            queued = self._fetched(source, item, name, old, local, principals, mtime_ns)
        finally:
            if queued is not True:
                shutil.rmtree(folder, ignore_errors=True)
        return queued is not False

    def _fetched(
        self,
        source: Source,
        item: Item,
        name: str,
        old: FileRecord | None,
        local: Path,
        principals: tuple[str, ...] | None,
        mtime_ns: int,
    ) -> bool | None:
        """Fetch an item into ``local``, hash it and queue its reading (True: ``local`` is removed once read);
        None when nothing more is to be done with it, False when it could not be fetched or read."""
        root = source.location
        try:
            source.fetch(item, local)  # bounded by the source's own timeouts, not the file budget
        except (SourceError, OSError) as e:
            self.failed(name, str(e))
            return False
        except Exception as e:  # a bug in a source or its library: this item fails, the run goes on
            log.exception("internal error while fetching %s", name)
            self.failed(name, f"internal error: {type(e).__name__}: {e}")
            return False
        started = time.monotonic()  # reading the copy, hashing and parsing share the budget
        try:
            digest = sha256_file(local, Budget.start(self.cfg.limits.file_seconds))
        except OSError as e:
            self.failed(name, f"cannot read the downloaded copy ({e.strerror or e})")
            return False
        except IngestError as e:
            self._skip(name, e.reason)
            return None
        if old and old.sha256 == digest:
            self.manifest.touch(root, name, item.size, mtime_ns, item.version)
            self._unchanged(name, old, principals)
            return None
        if old is None and self._moved(root, digest, name, name, item.size, mtime_ns, principals, item.version):
            return None
        record = FileRecord(
            root,
            name,
            item.size,
            mtime_ns,
            digest,
            str(FileKind.UNKNOWN),
            SKIPPED,
            principals=principals,
            version=item.version,
        )
        job = ParseJob(
            local,
            name,
            self.settings_for(root),
            self.zip_limits,
            self.cfg.limits.file_seconds,
            digest=digest,
            spent=time.monotonic() - started,
        )

        def done(parsed: Parsed) -> None:
            try:
                self._parsed(name, record, item.modified, parsed)
            finally:
                shutil.rmtree(local.parent, ignore_errors=True)

        self.parser.submit(job, done)
        return True

    def _downloads_folder(self) -> Path:
        """This run's folder for copies of remote items, inside the index (removed by ``close``)."""
        if self._downloads is None:
            downloads = self.app.path / "downloads"
            downloads.mkdir(parents=True, exist_ok=True)
            self._downloads = Path(tempfile.mkdtemp(dir=downloads))
        return self._downloads

    def close(self) -> None:
        """Stop reading (files still being read are abandoned) and remove this run's downloaded copies."""
        self.parser.close()
        if self._downloads is not None:
            shutil.rmtree(self._downloads, ignore_errors=True)
            self._downloads = None

    def _principals(self, name: str, found: Callable[[], tuple[str, ...]]) -> tuple[str, ...] | None:
        """Who may read ``name``: a matching rule of the rules file, else what the file system or source
        says (``found``, asked only then); ``NOBODY`` when no one may; None with permissions off."""
        ruled = self.rules.readers_for(name) if self.rules is not None else None
        if ruled is not None:
            return ruled or (NOBODY,)
        return (found() or (NOBODY,)) if self.readers is not None else None

    def _on_disk(self, path: Path) -> tuple[str, ...]:
        """Who the file system lets read ``path`` (asked only with permissions on)."""
        assert self.readers is not None
        return self.readers.of(path).principals()

    def failed(self, label: str, reason: str) -> None:
        log.warning("could not read %s: %s (kept as it was; retried next run)", label, reason)
        self.report.failed.append(Skipped(label, reason))
        self.progress.file_done(label, "failed", 0)

    def _not_read(self, label: str, parsed: Parsed) -> bool:
        """Report a file that could not be read (not recorded: the next run tries again); False if it was."""
        if parsed.outcome is Outcome.HASH_FAILED:
            self._skip(label, f"cannot read the file ({parsed.reason})")
        elif parsed.outcome in (Outcome.NOT_READ, Outcome.DIED):
            self._skip(label, parsed.reason)
        else:
            return False
        return True

    def _parsed(self, label: str, record: FileRecord, mtime: float, parsed: Parsed) -> None:
        """Store what reading a file found (its chunks, or why it has none) and record it in the manifest."""
        root, source = record.root, record.source
        if self._not_read(label, parsed):
            return
        kind = parsed.kind
        record = replace(record, kind=kind)
        if parsed.outcome is Outcome.UNSUPPORTED:
            self._forget(root, source)
            self.manifest.put(replace(record, status=UNSUPPORTED, reason=kind))
            self.report.unsupported.append(Skipped(label, f"{kind} files are not indexed yet"))
            self.progress.file_done(label, UNSUPPORTED, 0)
            return
        if parsed.outcome is not Outcome.PARSED:
            self._replace(root, source, [], record, label, parsed.reason)
            return
        chunks, tables = parsed.chunks, parsed.tables
        self.report.notes.extend(Skipped(label, note) for table in tables for note in table.notes)
        if not chunks:
            self._replace(root, source, [], record, label, "no content found in the file")
            return
        info = FileInfo(root=root, kind=kind, modified=mtime, principals=record.principals or ())
        self._replace(root, source, chunks, record, label, "", info, tables)
        for note in parsed.notes:
            log.warning("%s: %s", label, note.reason)
            self.report.notes.append(Skipped(label, note.reason))

    def _replace(
        self,
        root: str,
        source: str,
        chunks: Sequence[Chunk],
        record: FileRecord,
        label: str,
        reason: str,
        info: FileInfo | None = None,
        tables: Sequence[Table] = (),
    ) -> None:
        """Swap a file's old chunks for new ones (or none), then record the outcome in the manifest.

        The manifest row is written once the chunks are stored (the index may hold a few files' vectors
        back to write them together): a crash before that leaves the file to be redone by the next run.
        """
        self._churned(root, source)
        if chunks and info is not None:
            done = replace(record, status=OK, chunks=len(chunks))
            self.index.replace_file(root, source, chunks, info, tables, then=lambda: self.manifest.put(done))
            self.report.ingested.append(label)
            self.report.chunks += len(chunks)
            self.progress.file_done(label, OK, len(chunks))
        else:
            self.index.replace_file(root, source, [], None)
            self.manifest.put(replace(record, status=SKIPPED, reason=reason))
            self._skip(label, reason)

    def _unchanged(self, label: str, old: FileRecord, principals: tuple[str, ...] | None) -> None:
        if principals is not None and old.principals != principals:  # a chmod, chown or ACL change only
            if old.status == OK:
                self.index.set_principals(old.root, old.source, principals)
                self.report.permissions_changed.append(label)
            self.manifest.set_principals(old.root, old.source, principals)
        if old.status == SKIPPED:
            self._skip(label, old.reason)
        elif old.status == UNSUPPORTED:
            self.report.unsupported.append(Skipped(label, f"{old.reason} files are not indexed yet"))
            self.progress.file_done(label, UNSUPPORTED, 0)
        else:
            self.report.unchanged += 1
            self.progress.file_done(label, "unchanged", 0)

    def _skip(self, label: str, reason: str) -> None:
        log.warning("skipped %s: %s", label, reason)
        self.report.skipped.append(Skipped(label, reason))
        self.progress.file_done(label, SKIPPED, 0)

    def _churned(self, root: str, source: str) -> None:
        old = self.manifest.get(root, source)
        if old is not None and old.status == OK:
            self.churn += old.chunks

    def _forget(self, root: str, source: str) -> None:
        old = self.manifest.get(root, source)
        if old is not None and old.status == OK:
            self.churn += old.chunks
            self.index.replace_file(root, source, [], None)

    def remove_missing(self, root: str, seen: set[str]) -> None:
        for record in list(self.manifest.files(root)):
            if record.source not in seen:
                self.churn += record.chunks if record.status == OK else 0
                self.index.replace_file(root, record.source, [], None)
                self.manifest.remove(root, record.source)
                if record.status == OK:
                    self.report.removed.append(record.source)


Ingestable = Path | str | Source  # a file or folder, a configured source's name, or a source


def configured_source(app: App, name: Path | str) -> SourceConfig | None:
    """The configured source ``name`` stands for: a bare name (no ``/``) of a ``[sources.NAME]`` section,
    even when a folder here has that name too (``./NAME`` is the folder)."""
    text = str(name)
    if "/" in text:
        return None
    configured = app.cfg.source(text)
    if configured is not None and Path(text).exists():
        log.warning(
            "%s is both a configured source and a path here: ingesting the source (./%s is the path)", text, text
        )
    return configured


def run_ingest(paths: Sequence[Ingestable], app: App, progress: ProgressSink | None = None) -> IngestReport:
    """Ingest files, folders and sources into an open index; folders and sources are synced (files gone
    from them are removed). A name that is no file or folder here but a configured source
    (``[sources.NAME]``) is that source.

    One ingest at a time per index: ``IngestRunning`` when another process or job holds its lock.
    """
    opened: list[Source] = []
    resolved: list[Path | Source] = []
    for item in paths:
        if isinstance(item, (Path, str)):
            configured = configured_source(app, item)
            if configured is None:
                resolved.append(Path(item))
                continue
            item = open_source(configured)
            opened.append(item)
        resolved.append(item)
    try:
        with ingest_lock(app.path):
            from mmrag.pipeline.snapshots import publisher_for  # [store] shared: publish for API replicas

            publisher = publisher_for(app)
            try:
                report = _run_ingest(resolved, app, publisher.watching(progress) if publisher else progress)
                if publisher is not None:
                    publisher.finish(report.changed or bool(report.skipped))
            finally:
                if publisher is not None:
                    publisher.location.close()
            return report
    finally:
        for source in opened:
            source.close()


def lower_priority(nice: int) -> None:
    """Give searches served meanwhile the CPU first: lower the calling thread's priority by ``nice``.

    Threads and processes started afterwards (model thread pools, LibreOffice) inherit it. On Linux
    the nice value is per thread, so a server's ingest thread can lower its own without its searches.
    """
    if nice <= 0 or not hasattr(os, "nice"):
        return
    try:
        os.nice(nice)
    except OSError as e:
        log.debug("could not lower the ingest's CPU priority: %s", e)


def incomplete(
    recorded: dict[tuple[str, str], FileRecord], stored: set[str], by_file: dict[tuple[str, str], set[str]]
) -> list[tuple[str, str]]:
    """The (root, source) of files recorded as ingested whose chunks are not all in the vector store
    (``stored`` ids) and the keyword index (``by_file``)."""
    return [
        key
        for key, record in recorded.items()
        if len(ids := by_file.get(key, set())) != record.chunks or not ids <= stored
    ]


def reconcile(app: App) -> list[str]:
    """Make the manifest agree with the stores after a crash, and return the files it forgot.

    A file the manifest records as ingested but whose chunks are missing from the vector store or the
    keyword index is forgotten (its remains deleted), so this run ingests it again instead of calling
    it unchanged; chunks of files the manifest does not record as ingested are deleted (vectors still
    waiting from a failed write too: their files are read again, not taken as done). Counting
    chunks is enough when nothing went wrong, so the ids are compared only when the counts differ.
    """
    recorded = {(r.root, r.source): r for r in app.manifest.files() if r.status == OK}
    expected = sum(r.chunks for r in recorded.values())
    if app.store.count() == expected and app.keyword.count() == expected:
        return []
    stored = app.store.ids()
    by_file = app.keyword.record_ids()
    forgotten = []
    for root, source in incomplete(recorded, stored, by_file):
        app.index.replace_file(root, source, [], None)
        app.manifest.remove(root, source)
        forgotten.append(source)
    for root, source in by_file.keys() - recorded.keys():
        app.index.replace_file(root, source, [], None)
    if forgotten:
        log.warning(
            "%d files recorded as indexed had chunks missing from the index; ingesting them again", len(forgotten)
        )
    return forgotten


def _run_ingest(paths: Sequence[Path | Source], app: App, progress: ProgressSink | None) -> IngestReport:
    run = _Run(app, progress or _NoProgress(), _parser(app))
    try:
        return _run_all(run, paths, app)
    finally:
        run.close()


def _parser(app: App) -> Parser:
    """Where this run reads files: ingest workers through a broker, local worker processes, or here."""
    if app.cfg.ingest.broker:
        from mmrag.pipeline.ingest_celery import parser_for_broker  # Celery only when asked for

        return parser_for_broker(app.cfg.ingest, app.path)
    return parser_for(app.cfg.ingest.workers)


def _run_all(run: _Run, paths: Sequence[Path | Source], app: App) -> IngestReport:
    sink = run.progress
    started = time.monotonic()
    repaired = reconcile(app)
    if repaired:
        run.report.notes.append(
            Skipped(
                str(app.path),
                f"{len(repaired)} files recorded as indexed had chunks missing from the index (an interrupted "
                "run?); they are ingested again",
            )
        )
    targets = [target_for(p) for p in paths if isinstance(p, Path)]
    sources = [p for p in paths if not isinstance(p, Path)]
    for target in targets:
        if not target.root.exists() or (target.only is not None and not target.only.exists()):
            raise FileNotFoundError(f"{target.only or target.root} does not exist")
    links = policy_for(targets, app.cfg.ingest.follow_links_outside)
    plan = [(t, list(walk(t, links))) for t in targets]
    listings = [(source, _listing(source)) for source in sources]
    sink.files_found(
        sum(len(files) for _, files in plan) + sum(len(i) for _, i in listings if not isinstance(i, SourceError))
    )
    for target, files in plan:
        root = str(target.root)
        before = _tally(run.report)
        listed = {f.source for f in files if not f.problem}
        if target.is_folder:
            app.manifest.add_root(root)
            run.expect_gone(root, listed)
        for found in files:
            run.file(target, found)
        run.parser.drain()  # every file of the folder stored before those gone from it are removed
        if target.is_folder:
            run.remove_missing(root, listed)
        run.report.by_source[root if target.is_folder else str(target.only)] = _counts(run.report, before, len(files))
    for source, items in listings:
        before = _tally(run.report)
        if isinstance(items, SourceError):
            run.failed(source.name, f"could not list the source: {items}")
            items = []
        else:
            _sync_source(run, source, items)
        run.report.by_source[source.name] = _counts(run.report, before, len(items))
    run.parser.drain()
    app.index.flush()
    rebuilt = rebuild_if_worn(app, run.churn)
    if rebuilt:
        run.report.notes.append(Skipped(str(app.path), rebuilt))
    sweep_media(app)
    _prune_ocr_cache(run.settings.media.ocr_cache)
    run.report.seconds = time.monotonic() - started
    return run.report


GIVE_UP_AFTER = 5  # consecutive items a source failed to hand over: it has stopped answering


def _listing(source: Source) -> list[Item] | SourceError:
    """Every item of ``source``, or why it cannot be listed now (nothing of it is then removed or changed)."""
    try:
        return list(source.items())
    except SourceError as e:
        return e
    except Exception as e:  # a bug in a source or its library: this source fails, the run goes on
        log.exception("internal error while listing source %s", source.name)
        return SourceError(f"internal error: {type(e).__name__}: {e}")


def _sync_source(run: _Run, source: Source, items: Sequence[Item]) -> None:
    root = source.location
    app = run.app
    app.manifest.add_root(root)
    listed = {chunk_source(source.name, item.path) for item in items}
    run.expect_gone(root, listed)
    configured = app.cfg.source(source.name)
    readers = configured.readers if configured is not None else ()
    failures = 0
    unread = 0
    for position, item in enumerate(items):
        if failures >= GIVE_UP_AFTER:
            rest = len(items) - position
            run.failed(
                source.name, f"stopped after {failures} items in a row could not be read; {rest} items not tried"
            )
            run.parser.drain()
            return  # nothing is removed either: the next run lists it again
        read = run.item(source, item, readers)
        failures = 0 if read else failures + 1
        unread += 0 if read else 1
        fault_point("sync-after-item")
    run.parser.drain()
    if unread:  # an item not read may be a file renamed: its old name stays until a run reads it
        gone = len(run.gone.get(root, {}))
        if gone:
            run.report.notes.append(
                Skipped(
                    source.name,
                    f"{gone} {'item' if gone == 1 else 'items'} no longer listed "
                    f"{'stays' if gone == 1 else 'stay'} in the index until a run reads every item",
                )
            )
        return
    run.remove_missing(root, listed)


def _tally(report: IngestReport) -> tuple[int, ...]:
    return (
        len(report.ingested),
        report.unchanged,
        len(report.moved),
        len(report.removed),
        len(report.failed),
        len(report.skipped),
        len(report.unsupported),
    )


def _counts(report: IngestReport, before: tuple[int, ...], listed: int) -> dict[str, int]:
    names = ("ingested", "unchanged", "moved", "removed", "failed", "skipped", "unsupported")
    return {"listed": listed} | {n: a - b for n, a, b in zip(names, _tally(report), before, strict=True)}


CHURN = "store_churn"  # the manifest's count of chunks replaced or deleted since the last rebuild


def rebuild_if_worn(app: App, churn: int) -> str:
    """Add this run's ``churn`` to the count since the last rebuild, and rebuild the vector index into a
    fresh collection when it reaches ``[store] rebuild_after_churn`` times the chunks held (at least
    ``rebuild_min_churn``): deleted and replaced records leave holes in its graph that cost recall.
    Returns a note for the report when it rebuilt ("" otherwise)."""
    total = int(app.manifest.get_meta(CHURN) or 0) + churn
    ratio, least = app.cfg.store.rebuild_after_churn, app.cfg.store.rebuild_min_churn
    held = app.store.count()
    note = ""
    if ratio > 0 and held and total >= max(least, ratio * held):
        started = time.monotonic()
        app.store.rebuild()
        note = (
            f"rebuilt the vector index ({held:,} chunks, {time.monotonic() - started:.1f} s) after {total:,} chunks "
            "were replaced or deleted since the last rebuild"
        )
        log.info(note)
        total = 0
    app.manifest.set_meta(CHURN, str(total))
    return note


_SWEPT = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tmp"})
_KEPT_FOLDERS = frozenset({"slides"})  # slide pictures made on preview: no chunk points to them


def sweep_media(app: App, *, dry_run: bool = False) -> int:
    """Delete pictures in the media folder that no chunk points to, and return how many (``dry_run``:
    only count them).

    Pictures are written while a file is read, before its chunks are stored: a crash, a file deleted
    mid-read or a file that fails after its frames were saved leaves pictures nothing records.
    """
    media = app.media_dir.resolve() if app.media_dir.exists() else None
    if media is None:
        return 0
    used = app.keyword.media_images()
    dropped = 0
    for folder, dirs, files in os.walk(media):
        here = Path(folder)
        if here == media:
            dirs[:] = [d for d in dirs if d not in _KEPT_FOLDERS]
        for name in files:
            path = here / name
            if path.suffix.lower() in _SWEPT and path.relative_to(media).as_posix() not in used:
                if not dry_run:
                    path.unlink(missing_ok=True)
                dropped += 1
    if dropped and not dry_run:
        log.info("removed %d pictures no chunk points to from %s", dropped, media)
    return dropped


def _prune_ocr_cache(path: Path | None) -> None:
    """Keep the OCR cache from growing without bound: results unused for half a year are dropped."""
    if path is None or not path.is_file():
        return
    from mmrag.ingest.engines.ocr_cache import OcrCache

    cache = OcrCache(path)
    try:
        dropped = cache.prune()
        if dropped:
            log.info("forgot %d OCR results unused for half a year (%s)", dropped, path)
    finally:
        cache.close()
