"""The data every other part of mmrag passes around: chunks and where they came from.

A chunk is one piece of evidence a person can be pointed at. Its locator says exactly where in the
source file it lives (a page, a slide, rows of a sheet, a span of seconds, a section). Locators are
typed; only the store adapter flattens them into scalar metadata, and it rebuilds them on the way out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Modality(StrEnum):
    """What kind of evidence a chunk is. Closed set: ranking and citation code switch on it."""

    TEXT = "text"
    TABLE = "table"
    IMAGE = "image"
    FRAME = "frame"
    SPEECH = "speech"
    MOMENT = "moment"


PICTURED = frozenset({Modality.IMAGE, Modality.FRAME, Modality.MOMENT})
"""Modalities whose chunks carry a picture (``Chunk.image``) a person or a vision model can look at."""


def _clock(seconds: float) -> str:
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@dataclass(frozen=True, slots=True)
class Page:
    """A 1-based page of a paginated document (PDF, or a DOCX with page breaks)."""

    page: int

    def cite(self) -> str:
        return f"p. {self.page}"

    def to_json(self) -> dict[str, object]:
        return {"page": self.page}

    def fragment(self) -> str:
        return f"page={self.page}"

    def preview_params(self) -> dict[str, str]:
        return {"page": str(self.page)}

    def overlaps(self, wanted: Wanted) -> bool:
        return wanted.only("page") and wanted.page in (None, self.page)


@dataclass(frozen=True, slots=True)
class Slide:
    """A 1-based slide of a deck."""

    slide: int

    def cite(self) -> str:
        return f"slide {self.slide}"

    def to_json(self) -> dict[str, object]:
        return {"slide": self.slide}

    def fragment(self) -> str:
        return ""

    def preview_params(self) -> dict[str, str]:
        return {"slide": str(self.slide)}

    def overlaps(self, wanted: Wanted) -> bool:
        return wanted.only("slide") and wanted.slide in (None, self.slide)


@dataclass(frozen=True, slots=True)
class Rows:
    """1-based data rows [first, last] of a table (header excluded), on a named sheet if it has one."""

    first: int
    last: int
    sheet: str | None = None

    def cite(self) -> str:
        rows = f"row {self.first}" if self.first == self.last else f"rows {self.first}-{self.last}"
        return f"sheet {self.sheet!r}, {rows}" if self.sheet else rows

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"rows": [self.first, self.last]}
        if self.sheet is not None:
            out["sheet"] = self.sheet
        return out

    def fragment(self) -> str:
        return ""

    def preview_params(self) -> dict[str, str]:
        params = {"rows": f"{self.first}-{self.last}"}
        if self.sheet is not None:
            params["sheet"] = self.sheet
        return params

    def overlaps(self, wanted: Wanted) -> bool:
        if not wanted.only("sheet", "rows") or wanted.sheet not in (None, self.sheet):
            return False
        return wanted.rows is None or (self.first <= wanted.rows[1] and wanted.rows[0] <= self.last)


@dataclass(frozen=True, slots=True)
class Sheet:
    """A whole sheet of a workbook (e.g. its summary), without a row range."""

    sheet: str

    def cite(self) -> str:
        return f"sheet {self.sheet!r}"

    def to_json(self) -> dict[str, object]:
        return {"sheet": self.sheet}

    def fragment(self) -> str:
        return ""

    def preview_params(self) -> dict[str, str]:
        return {}  # a whole sheet (its summary) has no rows to show

    def overlaps(self, wanted: Wanted) -> bool:
        return wanted.only("sheet") and wanted.sheet in (None, self.sheet)


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """Seconds [start, end] into an audio or video recording."""

    start: float
    end: float

    def cite(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"

    def to_json(self) -> dict[str, object]:
        return {"start": round(self.start, 2), "end": round(self.end, 2)}

    def fragment(self) -> str:
        return f"t={int(round(self.start, 2))}"

    def preview_params(self) -> dict[str, str]:
        return {"start": f"{round(self.start, 2):g}"}

    def overlaps(self, wanted: Wanted) -> bool:
        if not wanted.only("span"):
            return False
        start, end = round(self.start, 2), round(self.end, 2)
        return wanted.span is None or (start <= wanted.span[1] and wanted.span[0] <= end)


@dataclass(frozen=True, slots=True)
class Section:
    """A place in an unpaginated document: its heading path (empty for the top of the file)."""

    path: tuple[str, ...] = ()

    def cite(self) -> str:
        return "§ " + " > ".join(self.path) if self.path else "whole file"

    def to_json(self) -> dict[str, object]:
        return {"section": " > ".join(self.path)} if self.path else {}

    def fragment(self) -> str:
        return ""

    def preview_params(self) -> dict[str, str]:
        return {}

    def overlaps(self, wanted: Wanted) -> bool:
        return wanted.only()


Locator = Page | Slide | Rows | Sheet | TimeSpan | Section
"""Every locator has ``cite()`` ("p. 3"), ``to_json()``, ``fragment()`` (the part of a link after ``#``:
``page=3``, ``t=92``), ``preview_params()`` (what the web preview needs to show it) and ``overlaps(wanted)``."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """Where evidence is said to be, as an evaluation question gives it; unset fields constrain nothing.

    ``span`` is seconds [start, end]; ``rows`` are 1-based data rows [first, last].
    """

    page: int | None = None
    slide: int | None = None
    sheet: str | None = None
    rows: tuple[int, int] | None = None
    span: tuple[float, float] | None = None

    @classmethod
    def from_json(cls, entry: Mapping[str, object]) -> Wanted:
        """From an evidence entry: ``{"page": 3}``, ``{"sheet": "Q3", "rows": [4, 9]}``, ``{"start": 1, "end": 9}``."""
        rows = entry.get("rows")
        span = (entry.get("start"), entry.get("end"))
        return cls(
            page=int(str(entry["page"])) if "page" in entry else None,
            slide=int(str(entry["slide"])) if "slide" in entry else None,
            sheet=str(entry["sheet"]) if "sheet" in entry else None,
            rows=(int(str(rows[0])), int(str(rows[1]))) if isinstance(rows, list | tuple) and len(rows) == 2 else None,
            span=(float(str(span[0])), float(str(span[1]))) if None not in span else None,
        )

    def only(self, *fields: str) -> bool:
        """Whether nothing but ``fields`` is constrained (a page locator cannot satisfy a wanted slide)."""
        return all(getattr(self, name) is None for name in ("page", "slide", "sheet", "rows", "span") if name not in fields)

SECTION_SEPARATOR = " > "


def locator_from_json(data: dict[str, object]) -> Locator:
    """Rebuild a locator from its JSON/metadata form (the inverse of ``to_json``)."""
    if "page" in data:
        return Page(int(str(data["page"])))
    if "slide" in data:
        return Slide(int(str(data["slide"])))
    if "rows" in data:
        rows = data["rows"]
        if not isinstance(rows, (list, tuple)) or len(rows) != 2:
            raise ValueError(f"rows must be [first, last], got {rows!r}")
        sheet = data.get("sheet")
        return Rows(int(rows[0]), int(rows[1]), None if sheet is None else str(sheet))
    if "sheet" in data:
        return Sheet(str(data["sheet"]))
    if "start" in data and "end" in data:
        return TimeSpan(float(str(data["start"])), float(str(data["end"])))
    section = data.get("section")
    if section:
        return Section(tuple(str(section).split(SECTION_SEPARATOR)))
    return Section()


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of evidence, as the user and the LLM will see it.

    ``part`` numbers chunks that share a locator (a long section split in several pieces), so that
    ``id`` is stable across re-ingests of an unchanged file and unique within it.
    """

    source: str
    modality: Modality
    locator: Locator
    text: str
    part: int = 0
    title: str = ""
    image: Path | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def id(self) -> str:
        key = f"{self.source}\x00{self.modality}\x00{self.locator!r}\x00{self.part}"
        return hashlib.sha1(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Table:
    """A table found in a file, as structured data for exact lookups and aggregations (SQL).

    Ingestors yield it next to the table's chunks. ``first_row`` is the 1-based data-row number of
    ``rows[0]`` in the source (so a row's locator is ``Rows(first_row + i, ...)``); ``locator`` says
    where the whole table is (a sheet, a page, a slide, a section). ``more_rows``, when set, reads the
    rows after ``rows`` from the file again, one at a time: a table too big to hold in memory reaches
    the SQL table store whole without being held.
    """

    source: str
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    locator: Locator
    first_row: int = 1
    notes: tuple[str, ...] = ()  # what of the table was left out (rows or columns past a limit), for the run report
    more_rows: Callable[[], Iterator[tuple[str, ...]]] | None = field(default=None, compare=False, repr=False)
