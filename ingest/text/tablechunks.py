"""Turn any table (a sheet, a CSV, a table inside a DOCX, HTML page, PDF or slide) into chunks.

Pure functions, no I/O, so every ingestor that finds a table cites its rows the same way:

- ``table_chunks`` cuts the data rows into runs of about ``ChunkingConfig.target_chars`` (at most
  ``max_rows`` rows). Every chunk starts with a context line naming the table and its rows
  ("sales — sheet Q3 — rows 41-80"), repeats the header, and renders its rows as a markdown table,
  so that a chunk read alone still says which table and which columns a value belongs to.
- ``summary_chunks`` describes the whole table: its columns, how many rows, the range of every
  numeric column and examples of every text column; it answers "which columns", "how many rows",
  "what is the largest" without reading every chunk.

Row numbers are 1-based *data* rows: row 1 is the first row after the header. Blank rows keep their
number (so row n of a CSV is line n + 1 of the file) but are not rendered.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.chunk import Chunk, Locator, Modality
from mmrag.ingest.text.numbers import CURRENCY, parse_number
from mmrag.ingest.text.textsplit import pack_blocks

MAX_ROWS_PER_CHUNK = 40
CAPTION_MAX = 240
_CELL_MIN = 20
_HEADER_CELL_MIN = 8
_EXAMPLES = 8
_EXAMPLE_MAX = 40
_SPACES = re.compile(r"\s+")
_UNUSUAL_SPACE = re.compile(r"[^\S ]|  ")
# What a sheet shows for "nothing" in a numeric column; it does not make the column text.
_NULLISH = frozenset({"-", "–", "—", "n/a", "na", "n.a.", "nan", "null", "none", "#n/a", "…", "..."})

RowsLocator = Callable[[int, int], Locator]
"""Where data rows ``first``..``last`` (1-based, inclusive) of the table are."""


def clean_cell(value: str) -> str:
    """One line of text per cell: line breaks and runs of spaces become single spaces."""
    if _UNUSUAL_SPACE.search(value) is None:  # the common case, several times faster
        return value.strip()
    return _SPACES.sub(" ", value).strip()


def header_names(cells: Sequence[str], width: int | None = None) -> tuple[str, ...]:
    """Column names from a header row: blank (or merged-away) cells become "column N" (1-based)."""
    width = len(cells) if width is None else width
    names = [clean_cell(cells[i]) if i < len(cells) else "" for i in range(width)]
    return tuple(name or f"column {i}" for i, name in enumerate(names, start=1))


def looks_numeric(cells: Sequence[str]) -> bool:
    """True when every non-empty cell is a number: a row of data, not a header. A row of years
    ("", "2019", "2018") is the header of a financial table, not data."""
    numbers = [parse_number(c) for c in cells if c.strip()]
    if not numbers or any(n is None for n in numbers):
        return False
    return not all(isinstance(n, int) and 1900 <= n <= 2100 for n in numbers)


def _escape(cell: str) -> str:
    cell = clean_cell(cell)
    return cell.replace("|", "\\|") if "|" in cell else cell


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_escape(c) for c in cells) + " |"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table; rows are padded or cut to the header's width, blank rows left out."""
    lines = [markdown_row(header), _rule(len(header))]
    width = len(header)
    for row in rows:
        if any(c.strip() for c in row):
            lines.append(markdown_row(_fit(row, width)))
    return "\n".join(lines)


def _rule(width: int) -> str:
    return "|" + "---|" * width


def _fit(row: Sequence[str], width: int) -> list[str]:
    cells = list(row[:width])
    return cells + [""] * (width - len(cells))


def _rows_label(first: int, last: int) -> str:
    return f"row {first}" if first == last else f"rows {first}-{last}"


def _head(context: str, caption: str, label: str) -> str:
    caption = clean_cell(caption)
    if len(caption) > CAPTION_MAX:
        caption = caption[: CAPTION_MAX - 1].rstrip() + "…"
    first = f"{context} — {label}" if context else label
    return f"{first}\n{caption}\n\n" if caption else f"{first}\n\n"


def table_chunks(
    source: str,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    locator_for_rows: RowsLocator,
    config: ChunkingConfig,
    *,
    first_row: int = 1,
    context: str = "",
    caption: str = "",
    max_rows: int = MAX_ROWS_PER_CHUNK,
    extra_for_rows: Callable[[int, int], tuple[tuple[str, str], ...]] | None = None,
) -> list[Chunk]:
    """TABLE chunks of consecutive data rows, each with the context line and the header repeated.

    ``rows[i]`` is data row ``first_row + i``; ``locator_for_rows(first, last)`` gives a chunk's
    locator (``Rows(first, last, sheet)`` for a sheet, ``Page(3)`` for a table on a page: chunks
    that share a locator are numbered by ``part``). ``context`` names the table ("sales — sheet
    Q3"); ``caption`` is text that belongs to the table (a title above it, units). A run holds
    about ``config.target_chars`` characters and at most ``max_rows`` rows; a single row longer than
    ``config.max_chars`` has its cells shortened in the chunk (the ``Table`` item keeps them whole).
    """
    width = len(header)
    if width == 0:
        return []
    shown_header = list(header)
    if len(markdown_row(shown_header)) > config.max_chars // 2:  # a very wide table: the header must leave room
        shown_header = _shorten(header, max(_HEADER_CELL_MIN, (config.max_chars // 2) // width - 3))
    header_md = markdown_row(shown_header) + "\n" + _rule(width)
    numbered = [(first_row + i, _fit(row, width)) for i, row in enumerate(rows) if any(c.strip() for c in row)]
    runs: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    size = 0
    fixed = len(_head(context, caption, _rows_label(first_row, first_row + len(rows)))) + len(header_md) + 1
    for number, cells in numbered:
        line = markdown_row(cells)
        if fixed + len(line) > config.max_chars:
            line = markdown_row(_shorten(cells, max(_CELL_MIN, (config.max_chars - fixed) // width - 3)))
        if current and (fixed + size + len(line) + 1 > config.target_chars or len(current) >= max_rows):
            runs.append(current)
            current, size = [], 0
        current.append((number, line))
        size += len(line) + 1
    if current:
        runs.append(current)
    chunks: list[Chunk] = []
    parts: Counter[Locator] = Counter()
    for run in runs:
        first, last = run[0][0], run[-1][0]
        locator = locator_for_rows(first, last)
        body = header_md + "\n" + "\n".join(line for _, line in run)
        text = _head(context, caption, _rows_label(first, last)) + body
        extra = extra_for_rows(first, last) if extra_for_rows else ()
        chunks.append(Chunk(source, Modality.TABLE, locator, text, part=parts[locator], title=title, extra=extra))
        parts[locator] += 1
    return chunks


def _shorten(cells: Sequence[str], limit: int) -> list[str]:
    out = []
    for cell in cells:
        cell = clean_cell(cell)
        out.append(cell if len(cell) <= limit else cell[: limit - 1].rstrip() + "…")
    return out


def describe_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """One line per column: the range of a numeric column, distinct values of a text column."""
    lines: list[str] = []
    for index, name in enumerate(header):
        values = [cell for row in rows if index < len(row) and (cell := row[index].strip())]
        if not values:
            lines.append(f"- {name}: empty")
            continue
        numbers = [(parse_number(v), v) for v in values if v.strip(CURRENCY).strip().lower() not in _NULLISH]
        parsed = [(n, v) for n, v in numbers if n is not None]
        # A stray repeated header or footnote does not make a column of figures a text column.
        if parsed and len(parsed) >= 0.8 * len(numbers):
            low = min(parsed, key=lambda item: item[0])
            high = max(parsed, key=lambda item: item[0])
            others = [v for n, v in numbers if n is None]
            also = f"; also text: {', '.join(_clip(v) for v in dict.fromkeys(others))}" if others else ""
            lines.append(f"- {name}: numbers from {low[1]} to {high[1]} ({len(parsed)} values{also})")
            continue
        counts = Counter(values)
        listed = ", ".join(_clip(v) + (f" (×{n})" if n > 1 else "") for v, n in counts.most_common(_EXAMPLES))
        if len(counts) <= _EXAMPLES:
            lines.append(f"- {name}: {len(counts)} distinct values: {listed}")
        else:
            ends = f"first {_clip(values[0])}, last {_clip(values[-1])}; " if len(counts) == len(values) else ""
            lines.append(f"- {name}: {len(counts)} distinct values, {ends}e.g. {listed}")
    return lines


def _clip(value: str) -> str:
    return value if len(value) <= _EXAMPLE_MAX else value[: _EXAMPLE_MAX - 1].rstrip() + "…"


def summary_chunks(
    source: str,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    locator: Locator,
    config: ChunkingConfig,
    *,
    first_row: int = 1,
    context: str = "",
    caption: str = "",
    notes: Sequence[str] = (),
    first_part: int = 0,
) -> list[Chunk]:
    """TABLE chunks describing the whole table (usually one; a very wide table needs more).

    ``first_part`` is the first ``part`` number to use, for when a data chunk already has
    ``locator`` (a short CSV whose one data chunk is ``Rows(1, n)`` too).
    """
    filled = sum(1 for row in rows if any(c.strip() for c in row))
    last = first_row + len(rows) - 1
    span = f" (rows {first_row}-{last})" if rows else ""
    lines = [
        f"Columns ({len(header)}): " + ", ".join(header),
        f"Data rows: {filled}{span}",
        *describe_columns(header, rows),
        *(f"Note: {note}" for note in notes),
    ]
    head = _head(context, caption, "table summary")
    bodies = pack_blocks(lines, config, reserved=len(head), separator="\n")
    return [
        Chunk(source, Modality.TABLE, locator, head + body, part=first_part + i, title=title)
        for i, body in enumerate(bodies)
    ]
