"""The manifest: what the index holds, file by file, so that re-runs are incremental and safe.

A SQLite database beside the Chroma folder. A file's row is written only after its chunks are in the
store, so a run that crashes half way leaves rows that no longer match the files on disk, and the
next run redoes exactly those files. Rows are keyed by (root, source): a root is one ingested folder
today and one connector location (an S3 prefix, a share) tomorrow.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    root TEXT NOT NULL,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,          -- 'ok' (chunks in the index) or 'skipped' (reason says why)
    reason TEXT NOT NULL DEFAULT '',
    chunks INTEGER NOT NULL DEFAULT 0,
    ingested_at REAL NOT NULL,
    principals TEXT,               -- JSON list of who may read the file; NULL = not recorded
    version TEXT NOT NULL DEFAULT '', -- a remote source's version token (ETag, mtime:size); '' for folders
    PRIMARY KEY (root, source)
);
CREATE TABLE IF NOT EXISTS roots (
    root TEXT PRIMARY KEY,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

OK = "ok"
SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class FileRecord:
    root: str
    source: str
    size: int
    mtime_ns: int
    sha256: str
    kind: str
    status: str
    reason: str = ""
    chunks: int = 0
    principals: tuple[str, ...] | None = None  # who may read it (document permissions); None = not recorded
    version: str = ""  # a remote source's version token: the item is unchanged while it is the same


class Manifest:
    """Per-file bookkeeping of one index.

    Safe to share across threads (ingest workers, the server's threads): every statement runs alone
    in autocommit mode under one lock. Several processes may open the same file (SQLite's WAL).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = _Locked(sqlite3.connect(path, isolation_level=None, check_same_thread=False), self._lock)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)").fetchall()}
        if "principals" not in columns:  # a manifest made before document permissions
            self._db.execute("ALTER TABLE files ADD COLUMN principals TEXT")
        if "version" not in columns:  # a manifest made before remote sources
            self._db.execute("ALTER TABLE files ADD COLUMN version TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self._db.close()

    def add_root(self, root: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO roots(root, added_at) VALUES (?, ?)", (root, time.time()))

    def roots(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT root FROM roots ORDER BY root").fetchall()]

    def get(self, root: str, source: str) -> FileRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE root = ? AND source = ?", (root, source)).fetchone()
        return _record(row) if row else None

    def files(self, root: str | None = None) -> Iterator[FileRecord]:
        query = f"SELECT {_COLUMNS} FROM files"
        args: tuple[str, ...] = ()
        if root is not None:
            query += " WHERE root = ?"
            args = (root,)
        rows = self._db.execute(query + " ORDER BY root, source", args).fetchall()
        for row in rows:
            yield _record(row)

    def put(self, record: FileRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO files(root, source, size, mtime_ns, sha256, kind, status, reason, chunks, "
            "ingested_at, principals, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.root,
                record.source,
                record.size,
                record.mtime_ns,
                record.sha256,
                record.kind,
                record.status,
                record.reason,
                record.chunks,
                time.time(),
                None if record.principals is None else json.dumps(list(record.principals)),
                record.version,
            ),
        )

    def put_many(self, records: Sequence[FileRecord]) -> None:
        """Several rows in one transaction (a bulk import; ``put`` writes one per statement)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for record in records:
                    self.put(record)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def set_principals(self, root: str, source: str, principals: tuple[str, ...]) -> None:
        """Record who may now read a file whose content did not change."""
        self._db.execute(
            "UPDATE files SET principals = ? WHERE root = ? AND source = ?",
            (json.dumps(list(principals)), root, source),
        )

    def touch(self, root: str, source: str, size: int, mtime_ns: int, version: str = "") -> None:
        """Record new stat data (or version token) for a file whose content hash did not change."""
        self._db.execute(
            "UPDATE files SET size = ?, mtime_ns = ?, version = ? WHERE root = ? AND source = ?",
            (size, mtime_ns, version, root, source),
        )

    def remove(self, root: str, source: str) -> None:
        self._db.execute("DELETE FROM files WHERE root = ? AND source = ?", (root, source))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def clear(self) -> None:
        self._db.execute("DELETE FROM files")

    def counts(self) -> dict[str, int]:
        out = {OK: 0, SKIPPED: 0, "chunks": 0}
        rows = self._db.execute("SELECT status, COUNT(*), SUM(chunks) FROM files GROUP BY status").fetchall()
        for status, n, chunks in rows:
            out[str(status)] = int(n)
            out["chunks"] += int(chunks or 0)
        return out


_COLUMNS = "root, source, size, mtime_ns, sha256, kind, status, reason, chunks, principals, version"


def _record(row: Sequence[Any]) -> FileRecord:
    root, source, size, mtime_ns, sha256, kind, status, reason, chunks, principals, version = row
    readers = None if principals is None else tuple(json.loads(principals))
    return FileRecord(  # built directly (no dataclasses.replace): a sync reads 100,000s of them
        root, source, size, mtime_ns, sha256, kind, status, reason, chunks, readers, str(version or "")
    )


class _Locked:
    """A connection whose statements run one at a time, each fetched whole before the lock is let go."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db = db
        self._lock = lock

    def execute(self, sql: str, args: Sequence[object] = ()) -> _Rows:
        with self._lock:
            cursor = self._db.execute(sql, args)
            return _Rows(cursor.fetchall())

    def executescript(self, script: str) -> None:
        with self._lock:
            self._db.executescript(script)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows
