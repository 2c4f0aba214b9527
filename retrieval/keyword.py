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
from mmrag.ingest.permissions import DENY
from mmrag.retrieval.records import MEDIA_PREFIX, chunk_from_record, chunk_metadata, image_from_record, record_id
from mmrag.retrieval.store import FileInfo, Hit, IndexMismatch, SearchFilter

SCHEMA_VERSION = 4
# older formats this version upgrades in place: 2 -> 3 adds chunk_file; 3 -> 4 adds chunk_principal (empty:
# chunks of earlier formats never had principals)
MIGRATABLE = frozenset({2, 3})

# FTS5 indexes only its text columns, so finding a file's rows in chunk_text is a table scan.
# chunk_file maps each row (same rowid) to its file, indexed, so replacing or deleting a file's rows
# costs the same at 100 or 1,000,000 chunks.
SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_text USING fts5(
    text, title, tags,
    record_id UNINDEXED, root UNINDEXED, source UNINDEXED, modality UNINDEXED, kind UNINDEXED,
    modified UNINDEXED, meta UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS chunk_file (
    rowid INTEGER PRIMARY KEY, record_id TEXT NOT NULL, root TEXT NOT NULL, source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_file_by_source ON chunk_file(root, source);
CREATE TABLE IF NOT EXISTS chunk_principal (principal TEXT NOT NULL, rowid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunk_principal_by_name ON chunk_principal(principal, rowid);
CREATE INDEX IF NOT EXISTS chunk_principal_by_row ON chunk_principal(rowid);
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


_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,80})[\"“”]")
_NUMBER = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")
_YEAR = re.compile(r"(19|20)\d\d")
_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,9}\b")


def exact_terms(text: str) -> list[str]:
    """The parts of a query that must match literally: quoted phrases, codes, numbers, acronyms."""
    terms: list[str] = [m.strip() for m in _QUOTED.findall(text)]
    terms += _COMPOUND.findall(text)
    covered = " ".join(terms)
    # Plain years are too common to be exact evidence on their own; other numbers are not.
    terms += [n for n in _NUMBER.findall(text) if len(n) >= 2 and n not in covered and not _YEAR.fullmatch(n)]
    terms += [a for a in _ACRONYM.findall(text) if a not in covered and a.lower() not in STOPWORDS]
    seen: set[str] = set()
    return [t for t in terms if not (t.lower() in seen or seen.add(t.lower()))]  # type: ignore[func-returns-value]


def _phrase(term: str) -> str:
    return '"' + " ".join(_WORD.findall(term)) + '"'


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


# Words a person uses for a kind of value ("the UUID in the report") that the value itself lacks.
ENTITY_TAGS = (
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
        "uuid guid identifier",
    ),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "email address"),
    (re.compile(r"\bhttps?://\S+"), "url link website"),
)


def entity_tags(text: str) -> str:
    """Tag words for the kinds of values a text holds, so that naming the kind finds the value."""
    return " ".join(tags for pattern, tags in ENTITY_TAGS if pattern.search(text))


class KeywordIndex:
    """Full-text index of every chunk's text, with the chunk's record so hits need no second lookup."""

    def __init__(self, path: Path, media_dir: Path | None = None) -> None:
        """``media_dir``: the index's folder of thumbnails and frames; image paths inside it are stored relative."""
        self._media = media_dir
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunk_text'").fetchone()
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if exists and version != SCHEMA_VERSION and version not in MIGRATABLE:
            self._db.close()
            raise IndexMismatch(
                f"the keyword index in {path.parent} has format {version}, this mmrag uses {SCHEMA_VERSION}: "
                "re-index with `mmrag ingest PATH --reindex`"
            )
        self._db.executescript(SCHEMA)
        if exists and version == 2:
            self.rebuild_file_map()
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def rebuild_file_map(self) -> None:
        """Fill ``chunk_file`` from ``chunk_text`` in one pass (an upgrade, or rows copied in bulk)."""
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM chunk_file")
        self._db.execute(
            "INSERT INTO chunk_file(rowid, record_id, root, source) SELECT rowid, record_id, root, source FROM chunk_text"
        )
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def upsert(self, chunks: Sequence[Chunk], info: FileInfo) -> None:
        principals = sorted(set(info.principals))
        rows = []
        for chunk in chunks:
            meta = chunk_metadata(chunk, info, self._media)
            rows.append(
                (
                    chunk.text,
                    chunk.title,
                    entity_tags(chunk.text),
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
        try:
            by_file: dict[tuple[str, str], list[str]] = {}
            for r in rows:
                by_file.setdefault((str(r[4]), str(r[5])), []).append(str(r[3]))
            for (root, source), ids in by_file.items():  # rows with these record ids are replaced
                marks = ",".join("?" * len(ids))
                where = f"root = ? AND source = ? AND record_id IN ({marks})"
                self._delete_rows(f"SELECT rowid FROM chunk_file WHERE {where}", (root, source, *ids))
            for row in rows:
                cursor = self._db.execute(
                    "INSERT INTO chunk_text(text, title, tags, record_id, root, source, modality, kind, modified, meta) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                self._db.execute(
                    "INSERT INTO chunk_file(rowid, record_id, root, source) VALUES (?, ?, ?, ?)",
                    (cursor.lastrowid, row[3], row[4], row[5]),
                )
                self._db.executemany(
                    "INSERT INTO chunk_principal(principal, rowid) VALUES (?, ?)",
                    [(p, cursor.lastrowid) for p in principals],
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def images(self, root: str, source: str) -> list[Path]:
        """The stored pictures (thumbnails, frames) of a file's chunks, as the chunks point to them."""
        rows = self._db.execute(
            "SELECT meta FROM chunk_text WHERE rowid IN (SELECT rowid FROM chunk_file WHERE root = ? AND source = ?)",
            (root, source),
        ).fetchall()
        found = (image_from_record(str(json.loads(meta).get("image") or ""), self._media) for (meta,) in rows)
        return sorted({p for p in found if p is not None})

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM chunk_file").fetchone()[0])

    def record_ids(self) -> dict[tuple[str, str], set[str]]:
        """Every file's stored record ids, by (root, source): to check the other stores against."""
        found: dict[tuple[str, str], set[str]] = {}
        for record, root, source in self._db.execute("SELECT record_id, root, source FROM chunk_file"):
            found.setdefault((str(root), str(source)), set()).add(str(record))
        return found

    def media_images(self) -> set[str]:
        """Every picture inside the media folder that some chunk points to, relative to that folder."""
        rows = self._db.execute(
            "SELECT json_extract(meta, '$.image') FROM chunk_text WHERE json_extract(meta, '$.image') != ''"
        ).fetchall()
        media = self._media.resolve() if self._media is not None else None
        found: set[str] = set()
        for (value,) in rows:
            image = image_from_record(str(value or ""), media)
            if image is not None and image.is_absolute() and not str(value).startswith(MEDIA_PREFIX):
                image = image.resolve()  # an older index wrote absolute paths
            if image is not None and media is not None and image.is_relative_to(media):
                found.add(image.relative_to(media).as_posix())
        return found

    def _delete_rows(self, rowids_sql: str, args: Sequence[object]) -> None:
        """Delete the rows ``rowids_sql`` selects from every table (inside the caller's transaction)."""
        rowids = [r for (r,) in self._db.execute(rowids_sql, tuple(args)).fetchall()]
        for start in range(0, len(rowids), 500):
            part = rowids[start : start + 500]
            marks = ",".join("?" * len(part))
            for table in ("chunk_text", "chunk_file", "chunk_principal"):
                self._db.execute(f"DELETE FROM {table} WHERE rowid IN ({marks})", part)

    def delete_source(self, root: str, source: str) -> None:
        self._db.execute("BEGIN")
        try:
            self._delete_rows("SELECT rowid FROM chunk_file WHERE root = ? AND source = ?", (root, source))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def set_principals(self, root: str, source: str, principals: Sequence[str]) -> None:
        """Record who may now read one file's rows (its text unchanged)."""
        self._db.execute("BEGIN")
        try:
            rowids = [
                r
                for (r,) in self._db.execute(
                    "SELECT rowid FROM chunk_file WHERE root = ? AND source = ?", (root, source)
                ).fetchall()
            ]
            for start in range(0, len(rowids), 500):
                part = rowids[start : start + 500]
                self._db.execute(f"DELETE FROM chunk_principal WHERE rowid IN ({','.join('?' * len(part))})", part)
            self._db.executemany(
                "INSERT INTO chunk_principal(principal, rowid) VALUES (?, ?)",
                [(p, r) for r in rowids for p in sorted(set(principals))],
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def clear(self) -> None:
        for table in ("chunk_text", "chunk_file", "chunk_principal"):
            self._db.execute(f"DELETE FROM {table}")

    def rare_words(self, text: str, *, limit: int = 3, max_share: float = 0.02) -> list[str]:
        """The query's words that few chunks contain (at most ``max_share`` of them), rarest first.

        Used alone they make a candidate list of their own: in an OR of every query word, the one page
        that says "heroin" can drown under pages that say "code" and "number" often.
        """
        total = self._count()
        if total == 0:
            return []
        found: list[tuple[int, str]] = []
        seen: set[str] = set()
        for word in _WORD.findall(text):
            low = word.lower()
            if low in STOPWORDS or low in seen or len(low) < 3 or low.isdigit():
                continue
            seen.add(low)
            try:
                df = int(
                    self._db.execute(
                        "SELECT count(*) FROM chunk_text WHERE chunk_text MATCH ?", (f'"{low}"',)
                    ).fetchone()[0]
                )
            except sqlite3.OperationalError:
                continue
            if 0 < df <= max(1, total * max_share):
                found.append((df, low))
        return [w for _, w in sorted(found)[:limit]]

    def _count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM chunk_file").fetchone()[0])

    def search(self, text: str, k: int, flt: SearchFilter, *, exact: bool = False) -> list[Hit]:
        """BM25 search for the query's meaningful words, or (``exact``) only for its exact terms."""
        query = " OR ".join(_phrase(t) for t in exact_terms(text) if _WORD.search(t)) if exact else fts_query(text)
        if not query or k <= 0:
            return []
        # rowids first, text and metadata for the k best after: SQLite reads a row's selected columns
        # before it sorts, so selecting text here would read every matching chunk's text
        sql = "SELECT rowid, bm25(chunk_text, 1.0, 0.5, 0.5) AS rank FROM chunk_text WHERE chunk_text MATCH ?"
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
        if flt.principals is not None:
            # correlated EXISTS, checked per match: "rowid IN (SELECT ...)" made SQLite test every match
            # against the whole list (8.5 s instead of 15 ms at 100,000 chunks, 95% visible)
            marks = ",".join("?" * len(flt.principals)) or "NULL"
            who = "SELECT 1 FROM chunk_principal c WHERE c.rowid = chunk_text.rowid AND c.principal IN"
            # each name in the list is one seek per match in the (principal, rowid) index; past two names,
            # one seek by row and a look at its few entries is cheaper ("+" keeps SQLite off the name
            # index: timed by hand at 1,000,000 chunks, 19 names, p50 903 -> 304 ms; one name, twice as slow)
            by_row = "SELECT 1 FROM chunk_principal c WHERE c.rowid = chunk_text.rowid AND +c.principal IN"
            among = by_row if len(flt.principals) > 2 else who
            users = sorted(p for p in flt.principals if p.startswith("user:"))
            plain = f"EXISTS ({among} ({marks}))"
            args_plain: list[object] = list(sorted(flt.principals))
            if flt.principals:  # deny entries ("!group:eng") outrank what allows
                plain += f" AND NOT EXISTS ({among} ({marks}))"
                args_plain += sorted(DENY + p for p in flt.principals)
            if users:  # the asker's own entry decides first: denied, or allowed whatever their groups say
                own = ",".join("?" * len(users))
                sql += f" AND NOT EXISTS ({who} ({own})) AND (EXISTS ({who} ({own})) OR ({plain}))"
                args.extend([*(DENY + u for u in users), *users, *args_plain])
            else:
                sql += f" AND {plain}"
                args.extend(args_plain)
        sql += " ORDER BY rank LIMIT ?"
        args.append(k)
        try:
            ranked = self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []
        if not ranked:
            return []
        marks = ",".join("?" * len(ranked))
        found = {
            rowid: (doc, meta)
            for rowid, doc, meta in self._db.execute(
                f"SELECT rowid, text, meta FROM chunk_text WHERE rowid IN ({marks})", [r for r, _ in ranked]
            )
        }
        rows = [(*found[rowid], rank) for rowid, rank in ranked if rowid in found]
        hits = []
        for doc, meta_json, rank in rows:
            meta = json.loads(meta_json)
            chunk = chunk_from_record(doc, meta, self._media)
            hits.append(Hit(chunk, -float(rank), str(meta.get("root", "")), kind=str(meta.get("kind", ""))))
        return hits
