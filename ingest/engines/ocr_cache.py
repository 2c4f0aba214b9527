"""OCR results remembered by picture content, so the same pixels are read once per index.

Corporate drives repeat pictures: a logo on every deck, one screenshot pasted into several
documents, the same photo copied into three folders, a deck whose text changed but whose
pictures did not. Recognition is the slowest step of ingesting those (seconds per picture), so
its result is kept in a small SQLite file in the index, keyed by the engine and a hash of the
pixels. ``--reindex`` keeps the file: a new embedding model does not change what a picture says.
The engine that consults it is ``ocr.CachedOcr``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

FILE_NAME = "ocr-cache.sqlite"
KEEP_UNUSED_S = 180 * 86400  # a result not used for this long is forgotten (a file's re-ingest uses it)
SCHEMA = """
CREATE TABLE IF NOT EXISTS ocr (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    used_at REAL NOT NULL
);
"""


def pixel_key(engine: str, image: npt.NDArray[np.uint8]) -> str:
    """The cache key of an RGB array read by ``engine``: the engine's name, the shape and the pixels."""
    digest = hashlib.sha256(f"{engine}\x00{image.shape}\x00".encode())
    digest.update(memoryview(image.tobytes()))
    return digest.hexdigest()


class OcrCache:
    """The table of remembered results; shared by threads (one lock), safe to open from several processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM ocr WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self._db.execute("UPDATE ocr SET used_at = ? WHERE key = ?", (time.time(), key))
        return None if row is None else str(row[0])

    def put(self, key: str, text: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO ocr(key, text, used_at) VALUES (?, ?, ?)", (key, text, time.time())
            )

    def prune(self, unused_for_s: float = KEEP_UNUSED_S) -> int:
        """Forget results not used for ``unused_for_s`` seconds (pictures of long-deleted files); how many."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM ocr WHERE used_at < ?", (time.time() - unused_for_s,))
            return int(cursor.rowcount)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM ocr").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
