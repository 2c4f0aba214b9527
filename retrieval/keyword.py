"""Keyword search next to the vectors: SQLite FTS5 with BM25 ranking.

Open-source Chroma has no BM25, and embeddings blur exact strings (a file number, a GUID, a product
code). FTS5 ships with Python's sqlite3, needs no server, and its unicode61 tokenizer splits
"000-30653" into adjacent tokens that a phrase query finds again. It lives in the index folder and is
written in step with the Chroma collection by the same ingest code path.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from mmrag.ingest.chunk import Chunk
from mmrag.retrieval.records import chunk_from_record, chunk_metadata, record_id
from mmrag.retrieval.store import FileInfo, Hit, SearchFilter

SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_text USING fts5(
    text, title,
    record_id UNINDEXED, root UNINDEXED, source UNINDEXED, modality UNINDEXED, kind UNINDEXED,
    modified UNINDEXED, meta UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);
"""

# Function words that carry no meaning for ranking; dropped from OR queries (kept inside phrases).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "per",
        "that",
        "the",
        "their",
        "there",
        "these",
        "this",
        "those",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "about",
        "after",
        "before",
        "than",
        "then",
        "them",
        "they",
        "we",
        "he",
        "she",
        "his",
        "her",
        "all",
        "any",
        "each",
        "many",
        "much",
        "more",
        "most",
        "some",
        "such",
        "only",
        "own",
        "same",
        "so",
        "too",
        "very",
        "just",
        "also",
        "not",
        "no",
        "nor",
        "if",
        "while",
        "during",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)
_COMPOUND = re.compile(r"\w+(?:[-./:]\w+)+", re.UNICODE)


def fts_query(text: str) -> str:
    """Build an FTS5 query: every meaningful word OR-ed, plus exact phrases for compound tokens."""
    parts: list[str] = []
    for compound in _COMPOUND.findall(text):
        words = _WORD.findall(compound)
        parts.append('"' + " ".join(words) + '"')
    seen: set[str] = set()
    for word in _WORD.findall(text):
        low = word.lower()
        if low in STOPWORDS or low in seen or (len(low) < 2 and not low.isdigit()):
            continue
        seen.add(low)
        parts.append(f'"{low}"')
    return " OR ".join(parts)


class KeywordIndex:
    """Full-text index of every chunk's text, with the chunk's record so hits need no second lookup."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def upsert(self, chunks: Sequence[Chunk], info: FileInfo) -> None:
        rows = []
        for chunk in chunks:
            meta = chunk_metadata(chunk, info)
            rows.append(
                (
                    chunk.text,
                    chunk.title,
                    record_id(info.root, chunk),
                    info.root,
                    chunk.source,
                    chunk.modality.value,
                    info.kind,
                    info.modified,
                    json.dumps(meta),
                )
            )
        self._db.execute("BEGIN")
        self._db.executemany("DELETE FROM chunk_text WHERE record_id = ?", [(r[2],) for r in rows])
        self._db.executemany(
            "INSERT INTO chunk_text(text, title, record_id, root, source, modality, kind, modified, meta) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._db.execute("COMMIT")

    def delete_source(self, root: str, source: str) -> None:
        self._db.execute("DELETE FROM chunk_text WHERE root = ? AND source = ?", (root, source))

    def clear(self) -> None:
        self._db.execute("DELETE FROM chunk_text")

    def search(self, text: str, k: int, flt: SearchFilter) -> list[Hit]:
        query = fts_query(text)
        if not query or k <= 0:
            return []
        sql = "SELECT text, meta, bm25(chunk_text, 1.0, 0.5) AS rank FROM chunk_text WHERE chunk_text MATCH ?"
        args: list[object] = [query]
        if flt.modalities:
            sql += f" AND modality IN ({','.join('?' * len(flt.modalities))})"
            args.extend(sorted(m.value for m in flt.modalities))
        if flt.kinds:
            sql += f" AND kind IN ({','.join('?' * len(flt.kinds))})"
            args.extend(sorted(flt.kinds))
        if flt.sources is not None:
            sql += f" AND source IN ({','.join('?' * len(flt.sources))})" if flt.sources else " AND 0"
            args.extend(sorted(flt.sources))
        if flt.modified_after is not None:
            sql += " AND modified >= ?"
            args.append(flt.modified_after.timestamp())
        if flt.modified_before is not None:
            sql += " AND modified <= ?"
            args.append(flt.modified_before.timestamp())
        sql += " ORDER BY rank LIMIT ?"
        args.append(k)
        try:
            rows = self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []
        hits = []
        for doc, meta_json, rank in rows:
            meta = json.loads(meta_json)
            hits.append(Hit(chunk_from_record(doc, meta), -float(rank), str(meta.get("root", ""))))
        return hits
