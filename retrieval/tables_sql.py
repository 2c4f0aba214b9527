"""Every ingested table as a real SQL table, for exact lookups and aggregations.

Similarity search finds the chunk that mentions "Bell Wireless", but "the average close in
September" or "the three largest impairments" need arithmetic over all rows. The ingestors yield a
``Table`` item per table (a sheet, a CSV, a table on a slide or page); this store loads each into
its own SQLite table, in a database file next to the manifest and the keyword index (the same
engine, no extra dependency).

Layout, per table:

- a generated name ``t_<hash>`` (from root, source, position and name), registered in ``tables``
  with where it came from (root, source, sheet name, locator) and its columns;
- ``_row``: the 1-based data row in the source, so an answer computed in SQL cites its rows
  (``TableInfo.rows_locator``);
- one column per header cell, named from the header (lower case ASCII, ``_`` between words, a
  ``c_`` prefix before a digit, "%" spelled ``pct``, ``_2`` for a repeat): "Adj. Close*" ->
  ``adj_close``, "2019 (1)" -> ``c_2019_1``, "% CHANGE" -> ``pct_change``;
- ``_raw``: the row's cells exactly as the source displays them, as a JSON list in header order.

A value is stored as a number when its text is one ("$1,801.5" -> 1801.5, "(194)" -> -194,
"52.9%" -> 52.9: percentages keep the displayed number), as text otherwise (dates stay text, as
displayed), NULL when the cell is empty or a dash ("—", "n/a": so that AVG and COUNT skip it). Blank rows are not stored (``_row`` keeps the numbering).

Callers only read: ``query`` runs one SELECT on a separate read-only connection whose authorizer
allows nothing but reading (no writes, PRAGMA, ATTACH or temp objects) and which is stopped after
``timeout_s``. ``allowed_sources`` is the hook for document permissions: when given, only tables of
those files can be read (the registry and schema then cannot), whatever the SQL says.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.chunk import Locator, Rows, Sheet, Table, locator_from_json
from mmrag.ingest.errors import MmragError
from mmrag.ingest.permissions import visible
from mmrag.ingest.text.numbers import CURRENCY, parse_number

SqlValue = int | float | str | bytes | None
Params = Sequence[SqlValue] | Mapping[str, SqlValue]

SCHEMA = """
CREATE TABLE IF NOT EXISTS tables (
    sql_name TEXT PRIMARY KEY,
    root TEXT NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    locator_json TEXT NOT NULL,
    columns_json TEXT NOT NULL,    -- [[sql column, header text], ...] in header order
    first_row INTEGER NOT NULL,
    row_count INTEGER NOT NULL,    -- rows stored (blank rows are not)
    position INTEGER NOT NULL,     -- order of the table in its file
    principals_json TEXT NOT NULL DEFAULT '[]'  -- who may read the file (document permissions)
);
CREATE INDEX IF NOT EXISTS tables_by_source ON tables(root, source);
"""

_WORD_SEPARATORS = re.compile(r"[^a-z0-9]+")
_NAME_MAX = 60
_MAX_VALUE_BYTES = 16 * 1024 * 1024
# What a table shows for "nothing" (stored as NULL, so that AVG and COUNT skip it; _raw keeps it).
_EMPTY_MARKS = frozenset({"-", "–", "—", "n/a", "#n/a", "n.a."})
_SYMBOLS = {"%": " pct ", "#": " num ", "&": " and ", "+": " plus "}
# Words an LLM writing SQL would have to quote; a column named like one gets a trailing "_".
_KEYWORDS = frozenset(
    """
    abort action add after all alter analyze and as asc attach before begin between by case cast check
    collate column commit constraint create cross current default delete desc detach distinct drop each
    else end escape except exists explain filter from full glob group having if in index inner insert
    intersect into is isnull join key left like limit match natural no not notnull null of offset on or
    order outer over partition plan pragma primary query range recursive references regexp reindex
    release rename replace right rollback row rows savepoint select set table temp then to transaction
    trigger union unique update using vacuum values view virtual when where window with without
    """.split()  # noqa: SIM905 (a word list reads best as words)
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


class QueryError(MmragError, ValueError):
    """A query that was refused or failed; the message says why (it can be shown to a person or an LLM)."""


@dataclass(frozen=True, slots=True)
class TableInfo:
    """One SQL table and where its data came from."""

    sql_name: str
    root: str
    source: str
    name: str  # the sheet name, or the table's name in its file
    locator: Locator  # where the whole table is: Sheet, Rows (a CSV), Slide, Page, Section
    columns: tuple[str, ...]  # SQL column names in header order (besides _row and _raw)
    headers: tuple[str, ...]  # the header text of each column
    row_count: int
    first_row: int = 1

    @property
    def signature(self) -> str:
        """``t_ab12(_row, team, location, stanley_cups, _raw)``: what an SQL writer needs to know."""
        return f"{self.sql_name}(_row, {', '.join(self.columns)}, _raw)"

    def rows_locator(self, first: int, last: int | None = None) -> Locator:
        """Where data rows ``first``..``last`` (``_row`` values) are: rows of a sheet or CSV, else
        the table's own place (a slide, a page)."""
        last = first if last is None else last
        if isinstance(self.locator, Sheet):
            return Rows(first, last, self.locator.sheet)
        if isinstance(self.locator, Rows):
            return Rows(first, last, self.locator.sheet)
        return self.locator


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: tuple[tuple[SqlValue, ...], ...]
    truncated: bool = False  # more rows matched than ``max_rows``


def sql_value(text: str) -> SqlValue:
    """How a displayed cell is stored: a number when it is one, else the text; NULL when empty."""
    t = text.strip()
    if not t or t.strip(CURRENCY).strip().lower() in _EMPTY_MARKS:
        return None
    number = parse_number(t)
    return t if number is None else number


def column_names(headers: Sequence[str]) -> tuple[str, ...]:
    """Safe, unique SQL column names for a header row (see the module docstring)."""
    names: list[str] = []
    seen: set[str] = set()
    for index, header in enumerate(headers, start=1):
        spelled = "".join(_SYMBOLS.get(ch, ch) for ch in header)
        ascii_text = unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode("ascii").lower()
        name = _WORD_SEPARATORS.sub("_", ascii_text).strip("_")[:_NAME_MAX].rstrip("_") or f"column_{index}"
        if name[0].isdigit():
            name = "c_" + name
        if name in _KEYWORDS:
            name += "_"
        unique, n = name, 2
        while unique in seen:
            unique, n = f"{name}_{n}", n + 1
        seen.add(unique)
        names.append(unique)
    return tuple(names)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class TableStore:
    """The SQL table store of one index. Writes are serialised; every query uses its own read-only
    connection, so queries may run from any thread, also while a file is being re-loaded."""

    def __init__(self, path: Path, *, timeout_s: float = 5.0, max_rows: int = 10_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(tables)")}
        if "principals_json" not in columns:  # a store made before document permissions: no table had any
            self._db.execute("ALTER TABLE tables ADD COLUMN principals_json TEXT NOT NULL DEFAULT '[]'")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing -------------------------------------------------------------------------------

    def replace_source(
        self, root: str, source: str, tables: Sequence[Table], principals: Sequence[str] = ()
    ) -> list[TableInfo]:
        """Drop the tables of ``source`` and load ``tables`` in their place, in one transaction.

        ``principals``: who may read the file; with permission filtering on, a table is readable only
        by a query made for one of them (``run(..., principals=...)``).
        """
        readers = json.dumps(sorted(set(principals)))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._drop(root, source)
                infos = [
                    self._load(root, source, position, table, readers)
                    for position, table in enumerate(tables)
                    if table.header
                ]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return infos

    def delete_source(self, root: str, source: str) -> None:
        """Drop every table of ``source`` (the file was deleted, or is no longer indexed)."""
        self.replace_source(root, source, ())

    def rename_source(self, root: str, source: str, new_source: str) -> None:
        """A file renamed or moved with the same content: its tables keep their rows under the new name."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._drop(root, new_source)
                self._db.execute(
                    "UPDATE tables SET source = ? WHERE root = ? AND source = ?", (new_source, root, source)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _drop(self, root: str, source: str) -> None:
        names = [
            r[0] for r in self._db.execute("SELECT sql_name FROM tables WHERE root = ? AND source = ?", (root, source))
        ]
        for name in names:
            self._db.execute(f"DROP TABLE IF EXISTS {_quote(name)}")
        self._db.execute("DELETE FROM tables WHERE root = ? AND source = ?", (root, source))

    def _load(self, root: str, source: str, position: int, table: Table, readers: str) -> TableInfo:
        sql_name = self._new_name(f"{root}\x00{source}\x00{position}\x00{table.name}")
        columns = column_names(table.header)
        width = len(columns)
        definition = ", ".join(["_row INTEGER NOT NULL", *(_quote(c) for c in columns), "_raw TEXT NOT NULL"])
        self._db.execute(f"CREATE TABLE {_quote(sql_name)} ({definition})")
        placeholders = ", ".join("?" * (width + 2))
        stored = _Counted(_stored_rows(table, width))  # streamed: a big table is not copied once more
        self._db.executemany(f"INSERT INTO {_quote(sql_name)} VALUES ({placeholders})", stored)
        info = TableInfo(
            sql_name, root, source, table.name, table.locator, columns, table.header, stored.count, table.first_row
        )
        self._db.execute(
            "INSERT INTO tables(sql_name, root, source, name, locator_json, columns_json, first_row, row_count, "
            "position, principals_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sql_name,
                root,
                source,
                table.name,
                json.dumps(table.locator.to_json(), ensure_ascii=False),
                json.dumps([list(pair) for pair in zip(columns, table.header, strict=True)], ensure_ascii=False),
                table.first_row,
                stored.count,
                position,
                readers,
            ),
        )
        return info

    def _new_name(self, key: str) -> str:
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
        for length in range(10, len(digest) + 1, 2):
            name = f"t_{digest[:length]}"
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is None:
                return name
        raise RuntimeError(f"no free table name for {key!r}")  # unreachable: a digest collision

    # --- reading -------------------------------------------------------------------------------

    def list_tables(
        self, sources: set[str] | None = None, root: str | None = None, principals: frozenset[str] | None = None
    ) -> list[TableInfo]:
        """The tables in the store (of ``sources`` only, and readable by one of ``principals``, when given)."""
        query = (
            "SELECT sql_name, root, source, name, locator_json, columns_json, row_count, first_row, principals_json "
            "FROM tables"
        )
        args: tuple[str, ...] = ()
        if root is not None:
            query += " WHERE root = ?"
            args = (root,)
        with self._lock:
            found = self._db.execute(query + " ORDER BY root, source, position", args).fetchall()
        infos = []
        for sql_name, row_root, source, name, locator_json, columns_json, row_count, first_row, readers in found:
            if sources is not None and source not in sources:
                continue
            if principals is not None and not visible(json.loads(readers), principals):
                continue
            pairs = json.loads(columns_json)
            infos.append(
                TableInfo(
                    sql_name=str(sql_name),
                    root=str(row_root),
                    source=str(source),
                    name=str(name),
                    locator=locator_from_json(json.loads(locator_json)),
                    columns=tuple(str(p[0]) for p in pairs),
                    headers=tuple(str(p[1]) for p in pairs),
                    row_count=int(row_count),
                    first_row=int(first_row),
                )
            )
        return infos

    def query(
        self,
        sql: str,
        params: Params = (),
        allowed_sources: set[str] | None = None,
        principals: frozenset[str] | None = None,
    ) -> list[tuple[SqlValue, ...]]:
        """The rows of one read-only SELECT (see ``run``)."""
        return list(self.run(sql, params, allowed_sources, principals=principals).rows)

    def run(
        self,
        sql: str,
        params: Params = (),
        allowed_sources: set[str] | None = None,
        max_rows: int | None = None,
        principals: frozenset[str] | None = None,
    ) -> QueryResult:
        """Run one SELECT (or WITH ... SELECT) read-only; ``QueryError`` for anything else.

        ``allowed_sources``: when given, only tables loaded from these files may be read;
        ``principals``: when given, only tables of files one of them may read. At most ``max_rows``
        rows are returned (``truncated`` says there were more).
        """
        if not sql.strip():
            raise QueryError("empty query")
        limit = self.max_rows if max_rows is None else max_rows
        allowed = None
        if allowed_sources is not None or principals is not None:
            allowed = self._tables_of(allowed_sources, principals)
        with closing(self._reader(allowed)) as db:
            try:
                cursor = db.execute(sql, params)
                fetched = cursor.fetchmany(limit + 1)
            except (sqlite3.Warning, sqlite3.ProgrammingError) as e:
                if "one statement" in str(e):
                    raise QueryError(f"only one SELECT statement is allowed ({e})") from e
                raise QueryError(f"invalid query: {e}") from e
            except sqlite3.DatabaseError as e:
                raise QueryError(self._reason(e)) from e
            columns = tuple(d[0] for d in cursor.description or ())
        return QueryResult(columns, tuple(tuple(r) for r in fetched[:limit]), truncated=len(fetched) > limit)

    def readable_by(self, principals: frozenset[str] | None) -> TableStore:
        """The store as one of ``principals`` sees it: every listing and query is limited to the tables of
        files they may read (``None``: this store, unrestricted). Callers use it like the store itself."""
        return self if principals is None else _Scoped(self, principals)

    def _reason(self, error: sqlite3.DatabaseError) -> str:
        text = str(error)
        if "not authorized" in text or "prohibited" in text:
            return f"not allowed: only reading the indexed tables with a single SELECT is permitted ({text})"
        if "interrupted" in text:
            return f"the query took longer than {self.timeout_s:g} s and was stopped"
        if "readonly" in text:
            return f"not allowed: the table store is read-only for queries ({text})"
        return f"query failed: {text}"

    def set_principals(self, root: str, source: str, principals: Sequence[str]) -> None:
        """Record who may now read one file's tables (their content unchanged)."""
        with self._lock:
            self._db.execute(
                "UPDATE tables SET principals_json = ? WHERE root = ? AND source = ?",
                (json.dumps(sorted(set(principals))), root, source),
            )

    def _tables_of(self, sources: set[str] | None, principals: frozenset[str] | None) -> frozenset[str]:
        with self._lock:
            found = self._db.execute("SELECT sql_name, source, principals_json FROM tables").fetchall()
        return frozenset(
            str(name).lower()
            for name, source, readers in found
            if (sources is None or source in sources)
            and (principals is None or visible(json.loads(readers), principals))
        )

    def _reader(self, allowed_tables: frozenset[str] | None) -> sqlite3.Connection:
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        deadline = time.monotonic() + self.timeout_s

        def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
            if action not in _ALLOWED_ACTIONS:
                return sqlite3.SQLITE_DENY
            if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
                return sqlite3.SQLITE_DENY
            if (
                action == sqlite3.SQLITE_READ
                and allowed_tables is not None
                and (arg1 or "").lower() not in allowed_tables
            ):
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        db.set_authorizer(authorize)
        db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)  # no zeroblob(1e9) eating the memory
        db.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        return db


class _Scoped(TableStore):
    """A read-only view of a ``TableStore`` limited to what ``principals`` may read."""

    def __init__(self, store: TableStore, principals: frozenset[str]) -> None:  # shares the store's state
        self.__dict__.update(store.__dict__)
        self._principals = principals

    def list_tables(
        self, sources: set[str] | None = None, root: str | None = None, principals: frozenset[str] | None = None
    ) -> list[TableInfo]:
        return super().list_tables(sources, root, self._principals)  # the view's principals, whatever is passed

    def run(
        self,
        sql: str,
        params: Params = (),
        allowed_sources: set[str] | None = None,
        max_rows: int | None = None,
        principals: frozenset[str] | None = None,
    ) -> QueryResult:
        return super().run(sql, params, allowed_sources, max_rows, principals=self._principals)

    def replace_source(
        self, root: str, source: str, tables: Sequence[Table], principals: Sequence[str] = ()
    ) -> list[TableInfo]:
        raise QueryError("a permission-limited view of the table store is read-only")

    def close(self) -> None:
        """The view owns nothing; the store it was made from is closed by its owner."""


class _Counted:
    """An iterator that counts what it gave."""

    def __init__(self, items: Iterator[tuple[SqlValue, ...]]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[tuple[SqlValue, ...]]:
        return self

    def __next__(self) -> tuple[SqlValue, ...]:
        item = next(self._items)
        self.count += 1
        return item


def _stored_rows(table: Table, width: int) -> Iterator[tuple[SqlValue, ...]]:
    rows = itertools.chain(table.rows, table.more_rows()) if table.more_rows is not None else table.rows
    for index, row in enumerate(rows):
        cells = list(row[:width]) + [""] * (width - len(row))
        if not any(c.strip() for c in cells):
            continue
        raw = json.dumps(cells, ensure_ascii=False)
        yield (table.first_row + index, *(sql_value(c) for c in cells), raw)
