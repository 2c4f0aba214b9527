"""Ingestor for spreadsheets and delimited text: XLSX (every sheet), CSV and TSV.

Each table (a sheet, or the whole CSV) gives TABLE chunks of consecutive data rows cited as
``Rows(first, last, sheet)``, one or more summary chunks cited as ``Sheet(name)`` (the whole file,
``Section()``, for a CSV: a summary is not evidence for any particular row), and one ``Table`` item with every cell as the sheet displays it, for the SQL table store.

Rows are numbered as data rows: row 1 is the first row after the header, so row n of a CSV is
line n + 1 of the file (the convention people and the evaluation questions use). The header of a
CSV is its first non-empty row; a sheet's header is its first row that is about as wide as the
table, so that title rows above it ("Revenue and results", "In millions of CHF") become the table's
caption instead of its column names. A header that is all numbers is data: columns are then named
"column 1", "column 2"... Chunks and the ``Table`` item of a sheet also record the spreadsheet row
numbers (``extra`` "sheet_rows"), because a person opening the file sees those.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmrag.ingest.base import IngestSettings
from mmrag.ingest.chunk import Chunk, Locator, Rows, Section, Sheet, Table
from mmrag.ingest.errors import IngestError
from mmrag.ingest.text.cellformat import format_cell
from mmrag.ingest.text.tablechunks import clean_cell, header_names, looks_numeric, summary_chunks, table_chunks

log = logging.getLogger(__name__)

MAX_ROWS = 200_000
"""Data rows held from one sheet or CSV; a sheet's later rows are cut, a CSV's reach only the SQL table
store (read again, one at a time); the table's summary and the run report say so."""
MAX_COLUMNS = 512
HEADER_WINDOW = 30
NO_DATA = "no data found (every sheet is empty)"
ENCRYPTED = "password-protected workbook (remove the password to index it)"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SNIFF_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class TableData:
    """One table read from a file, before chunking: every cell as displayed, trimmed."""

    name: str | None  # the sheet name; None for a CSV
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # rows[i] is data row i + 1; blank rows are kept (all "")
    caption: str = ""  # text above the header (sheet titles, units)
    header_line: int = 0  # 1-based sheet row of the header (0: no header row, names generated)
    notes: tuple[str, ...] = ()
    more: Callable[[int], Iterator[tuple[str, ...]]] | None = None  # rows after ``rows``, read again, fit to a width


@dataclass(frozen=True, slots=True)
class TablesIngestor:
    """XLSX, CSV and TSV files: row chunks, a summary per table, and ``Table`` items for SQL."""

    settings: IngestSettings = field(default_factory=IngestSettings)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk | Table]:
        head = _head_bytes(path)
        if head.startswith(b"PK\x03\x04") or head.startswith(_OLE_MAGIC):
            title, tables = read_workbook(path)
        else:
            title, tables = "", [read_delimited(path, tab=path.suffix.lower() in (".tsv", ".tab"))]
        tables = [t for t in tables if t.rows]
        if not tables:
            raise IngestError(path, NO_DATA if head.startswith(b"PK") else "no data found (empty table)")
        stem = Path(source).stem
        seen: dict[str | None, int] = {}
        for table in tables:
            # tables side by side on one sheet share its locators: their chunks are told apart by part
            offset = seen.get(table.name, 0)
            seen[table.name] = offset + 1
            for item in table_items(source, title or stem, stem, table, self.settings):
                yield replace(item, part=item.part + 1000 * offset) if offset and isinstance(item, Chunk) else item


def table_items(
    source: str, title: str, stem: str, table: TableData, settings: IngestSettings
) -> Iterator[Chunk | Table]:
    """The chunks and the ``Table`` item of one table read from ``source``."""
    sheet = table.name
    context = f"{stem} — sheet {sheet}" if sheet is not None else stem
    whole: Locator = Sheet(sheet) if sheet is not None else Section()

    def rows_at(first: int, last_row: int) -> Locator:
        return Rows(first, last_row, sheet)

    def sheet_rows(first: int, last_row: int) -> tuple[tuple[str, str], ...]:
        if sheet is None or not table.header_line:
            return ()
        return (("sheet_rows", f"{table.header_line + first}-{table.header_line + last_row}"),)

    chunking = settings.chunking
    notes = table.notes
    embedded = table.rows
    if len(table.rows) > chunking.max_embedded_rows:  # a big table is asked in SQL: its every row is kept there
        embedded = table.rows[: chunking.max_embedded_rows]
        notes += (
            f"only the first {chunking.max_embedded_rows:,} rows have text chunks; "
            "every row is kept for table questions (raise [chunking] max_embedded_rows)",
        )
    data = table_chunks(
        source,
        title,
        table.header,
        embedded,
        rows_at,
        chunking,
        context=context,
        caption=table.caption,
        extra_for_rows=sheet_rows,
    )
    yield from data
    yield from summary_chunks(
        source,
        title,
        table.header,
        table.rows,
        whole,
        chunking,
        context=context,
        caption=table.caption,
        notes=notes,
        first_part=sum(1 for chunk in data if chunk.locator == whole),
    )
    more = table.more
    yield Table(
        source, sheet if sheet is not None else stem, table.header, table.rows, whole, first_row=1, notes=notes,
        more_rows=(lambda: more(len(table.header))) if more is not None else None,
    )  # fmt: skip


def _head_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(8192)
    except OSError as e:
        raise IngestError(path, f"cannot read the file ({e.strerror or e})") from e


def shape_table(
    name: str | None, grid: Sequence[Sequence[str]], *, find_header: bool, notes: Sequence[str] = ()
) -> TableData:
    """A table from raw rows (each without trailing blank cells): trim, find the header, name columns.

    ``find_header`` skips title rows above a sheet's header (rows much narrower than the table);
    without it the first non-empty row is the header, as for a CSV.
    """
    end = len(grid)
    while end and not any(c.strip() for c in grid[end - 1]):
        end -= 1
    grid = grid[:end]
    filled = [i for i, row in enumerate(grid) if row]  # a blank row has no cells left
    if not filled:
        return TableData(name, (), ())
    if any(grid[i][0].strip() for i in filled):
        left = 0
    else:  # empty leading columns (a sheet that starts in column B) are dropped
        left = min(next(j for j, c in enumerate(grid[i]) if c.strip()) for i in filled)
    width = max(len(grid[i]) for i in filled) - left
    notes = list(notes)
    if width > MAX_COLUMNS:
        notes.append(f"only the first {MAX_COLUMNS} of {width} columns are indexed")
        width = MAX_COLUMNS
    rows = [
        tuple(clean_cell(c) for c in row[left : left + width]) + ("",) * max(0, width - len(row[left:])) for row in grid
    ]
    # a CSV may start with a title line above its header ("Beneficiaries by state, FY 2010")
    titled = not find_header and _title_line(rows, filled)
    header_at = _header_index(rows, filled, find_header or titled)
    caption = " · ".join(" ".join(c for c in rows[i] if c) for i in filled if i < header_at)
    rows, footnotes = _without_footnotes(rows, header_at)
    if footnotes:
        caption = " · ".join(p for p in (caption, "Notes: " + " ".join(footnotes)) if p)
    if looks_numeric(rows[header_at]) or len(filled) == 1:
        # No header row: the row is data, the columns get generated names.
        return TableData(name, header_names([""] * width), tuple(rows[header_at:]), caption, 0, tuple(notes))
    header = header_names(rows[header_at], width)
    return TableData(name, header, tuple(rows[header_at + 1 :]), caption, header_at + 1, tuple(notes))


def _title_line(rows: Sequence[Sequence[str]], filled: Sequence[int]) -> bool:
    """The first row is a title: one cell of text above rows of three or more cells."""
    if len(filled) < 3:
        return False
    first = [c for c in rows[filled[0]] if c]
    nxt = [c for c in rows[filled[1]] if c]
    return len(first) == 1 and len(nxt) >= 3 and not looks_numeric(first)


def _without_footnotes(rows: list[tuple[str, ...]], header_at: int) -> tuple[list[tuple[str, ...]], list[str]]:
    """Rows at the end of a wide table holding one long cell ("Note: figures exclude ...") are its
    footnotes, not data: they leave the rows and join the caption."""
    width = sum(1 for c in rows[header_at] if c)
    if width < 3:
        return rows, []
    end = len(rows)
    notes: list[str] = []
    while end > header_at + 2:
        cells = [c for c in rows[end - 1] if c]
        if not cells:
            end -= 1
            continue
        if len(cells) == 1 and len(cells[0]) >= 20 and not looks_numeric(cells):
            notes.insert(0, cells[0])
            end -= 1
            continue
        break
    return (rows[:end], notes) if notes else (rows, [])


def side_by_side(grid: Sequence[Sequence[str]]) -> list[list[list[str]]]:
    """A sheet's grid cut into tables that sit side by side: separated by columns empty in every row, and
    not lined up (their first or last rows differ; a spacer column inside one table leaves the rows lined
    up). Each keeps its own header and rows; a sheet with one table comes back whole."""
    width = max((len(row) for row in grid), default=0)
    if width < 3:
        return [list(map(list, grid))]
    used = [any(j < len(row) and row[j].strip() for row in grid) for j in range(width)]
    blocks: list[tuple[int, int]] = []
    start = None
    for j, filled in enumerate([*used, False]):
        if filled and start is None:
            start = j
        elif not filled and start is not None:
            blocks.append((start, j))
            start = None
    if len(blocks) < 2 or any(b - a < 2 for a, b in blocks):
        return [list(map(list, grid))]
    row_sets = []
    for a, b in blocks:  # each block's rows of two or more cells (titles and notes aside)
        rows = {i for i, row in enumerate(grid) if sum(1 for c in row[a:b] if c.strip()) >= 2}
        if not rows:
            return [list(map(list, grid))]
        row_sets.append(rows)
    shared = len(set.intersection(*row_sets)) / len(set.union(*row_sets))
    labelled = all(_text_column(grid, a, rows) for (a, _), rows in zip(blocks, row_sets, strict=True))
    if shared >= 0.6 and not labelled:  # the same rows, continued past a spacer column: one table
        return [list(map(list, grid))]
    out = []
    for a, b in blocks:
        part = [[c for c in row[a:b]] for row in grid]
        for row in part:
            while row and not row[-1].strip():
                row.pop()
        out.append(part)
    return out


def _text_column(grid: Sequence[Sequence[str]], column: int, rows: set[int]) -> bool:
    """Whether a block's first column names its rows (mostly text, not numbers)."""
    cells = [
        cell
        for i in sorted(rows)[1:]
        if column < len(grid[i]) and (cell := grid[i][column].strip()) and cell.lower() not in _NOTHING
    ]
    return bool(cells) and sum(not looks_numeric([c]) for c in cells) >= 0.8 * len(cells)


_NOTHING = frozenset({"-", "–", "—", "n/a", "na", "n.a.", "…", "..."})  # what a sheet shows for no value


def _header_index(rows: Sequence[Sequence[str]], filled: Sequence[int], find_header: bool) -> int:
    if not find_header:
        return filled[0]
    window = filled[:HEADER_WINDOW]
    counts = {i: sum(1 for c in rows[i] if c) for i in window}
    widest = max(counts.values())
    need = max(2, -(-widest // 2)) if widest >= 2 else 1
    return next(i for i in window if counts[i] >= need)


# --- XLSX -----------------------------------------------------------------------------------


def read_workbook(path: Path) -> tuple[str, list[TableData]]:
    """The workbook's title and one table per worksheet (chartsheets have no cells and are skipped)."""
    _check_workbook(path)
    import openpyxl

    try:
        workbook: Any = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for one cause: a file it cannot parse
        raise IngestError(path, f"damaged workbook: it cannot be opened ({type(e).__name__}: {e})") from e
    try:
        title = clean_cell(str(workbook.properties.title or "")) if workbook.properties else ""
        tables: list[TableData] = []
        for worksheet in workbook.worksheets:
            try:
                grid, notes = _sheet_grid(worksheet)
            except Exception as e:  # a damaged sheet part fails the file: no half-indexed workbook
                raise IngestError(path, f"damaged workbook: sheet {worksheet.title!r} cannot be read ({e})") from e
            parts = side_by_side(grid)
            for number, part in enumerate(parts, start=1):
                table = shape_table(str(worksheet.title), part, find_header=True, notes=notes)
                if len(parts) > 1:  # which of the tables on the sheet: named by its first columns
                    where = f"table {number} of {len(parts)} on the sheet ({', '.join(table.header[:3])})"
                    table = replace(table, caption=" · ".join(p for p in (table.caption, where) if p))
                tables.append(table)
        return title[:100], tables
    finally:
        workbook.close()


def _sheet_grid(worksheet: Any) -> tuple[list[list[str]], list[str]]:
    if hasattr(worksheet, "reset_dimensions"):
        worksheet.reset_dimensions()  # stored dimensions are often wrong; read what is there
    grid: list[list[str]] = []
    notes: list[str] = []
    for number, row in enumerate(worksheet.iter_rows(), start=1):
        if number > MAX_ROWS + HEADER_WINDOW:
            notes.append(
                f"reading stopped at sheet row {number - 1} (limit {MAX_ROWS:,} rows); later rows are not indexed"
            )
            break
        cells = [
            format_cell(cell.value, cell.number_format or "General") if cell.value is not None else "" for cell in row
        ]
        while cells and not cells[-1].strip():
            cells.pop()
        grid.append(cells)
    return grid, notes


def _check_workbook(path: Path) -> None:
    head = _head_bytes(path)
    if head.startswith(_OLE_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in head or _ole_has_stream(path, "EncryptedPackage"):
            raise IngestError(path, ENCRYPTED)
        raise IngestError(path, "legacy Excel format (.xls), not XLSX; save it as .xlsx to index it")
    try:
        with zipfile.ZipFile(path) as archive:
            if "xl/workbook.xml" not in archive.namelist():
                raise IngestError(path, "damaged workbook: the main part xl/workbook.xml is missing")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError) as e:
        raise IngestError(path, f"damaged workbook: not a readable ZIP container ({e})") from e


def _ole_has_stream(path: Path, name: str) -> bool:
    """Whether an OLE container names ``name`` anywhere in its first megabyte (its directory)."""
    with path.open("rb") as handle:
        return name.encode("utf-16-le") in handle.read(1 << 20)


# --- CSV / TSV ------------------------------------------------------------------------------


def read_delimited(path: Path, *, tab: bool = False) -> TableData:
    """A CSV or TSV file as one table: encoding and delimiter are detected, the header is line 1."""
    for encoding in _encodings(path):
        try:
            with _open_text(path, encoding) as handle:
                return _read_rows(path, handle, tab, encoding)
        except UnicodeDecodeError:
            continue
        except OSError as e:
            raise IngestError(path, f"cannot read the file ({e.strerror or e})") from e
    raise IngestError(path, "text in an unknown encoding (not UTF-8, UTF-16 or Windows-1252)")


def _open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    return path.open("r", encoding=encoding, newline="", errors="strict" if encoding != "cp1252" else "replace")


def _encodings(path: Path) -> list[str]:
    head = _head_bytes(path)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return ["utf-16"]
    return ["utf-8-sig", "cp1252"]


def _read_rows(path: Path, handle: io.TextIOBase, tab: bool, encoding: str) -> TableData:
    """The table, holding at most ``MAX_ROWS`` data rows in memory; the rest is read again for SQL."""
    sample = handle.read(_SNIFF_CHARS)
    handle.seek(0)
    delimiter = "\t" if tab else _sniff_delimiter(sample)
    reader = csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    grid: list[list[str]] = []
    notes: list[str] = []
    started = False
    taken = 0  # records read into ``grid`` or skipped before the header
    try:
        for record in reader:
            started = started or any(c.strip() for c in record)
            if started and len(grid) > MAX_ROWS:
                notes.append(
                    f"only the first {MAX_ROWS:,} data rows are held for the table's summary and text chunks; "
                    "every row is kept for table questions"
                )
                break
            taken += 1
            if not started:
                continue  # blank lines before the header are not rows
            while record and not record[-1].strip():
                record.pop()
            grid.append(record)
    except csv.Error as e:
        raise IngestError(path, f"malformed CSV near line {reader.line_num}: {e}") from e
    table = shape_table(None, grid, find_header=False, notes=notes)
    if not notes:
        return table
    filled = [row for row in grid if row]
    left = 0 if any(row[0].strip() for row in filled) else min(_first_filled(row) for row in filled)
    return replace(table, more=_RestOfFile(path, encoding, delimiter, taken, left))


def _first_filled(row: Sequence[str]) -> int:
    return next(j for j, c in enumerate(row) if c.strip())


@dataclass(frozen=True, slots=True)
class _RestOfFile:
    """The data rows of a CSV after the first ``skip`` records, read again and fit as ``shape_table`` fit
    the rows held in memory (``left`` empty leading columns dropped, cut or padded to the width)."""

    path: Path
    encoding: str
    delimiter: str
    skip: int
    left: int

    def __call__(self, width: int) -> Iterator[tuple[str, ...]]:
        try:
            with _open_text(self.path, self.encoding) as handle:
                reader = csv.reader(handle, delimiter=self.delimiter, quotechar='"', doublequote=True, strict=False)
                for record in itertools.islice(reader, self.skip, None):
                    cells = [clean_cell(c) for c in record[self.left : self.left + width]]
                    yield tuple(cells) + ("",) * (width - len(cells))
        except (OSError, UnicodeDecodeError, csv.Error) as e:  # changed since it was read: keep what was stored
            log.warning("%s: stopped reading rows for the table store (%s)", self.path, e)


def _sniff_delimiter(sample: str) -> str:
    lines = [line for line in itertools.islice(_lines(sample), 50) if line.strip()]
    if not lines:
        return ","
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
        delimiter = str(dialect.delimiter)
    except csv.Error:
        delimiter = ""
    if delimiter and delimiter in lines[0]:
        return delimiter
    counts = {d: lines[0].count(d) for d in ",;\t|"}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _lines(sample: str) -> Iterable[str]:
    lines = sample.splitlines()
    return lines[:-1] if len(lines) > 1 and not sample.endswith(("\n", "\r")) else lines
