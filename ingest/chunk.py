"""The data every other part of mmrag passes around: chunks and where they came from.

A chunk is one piece of evidence a person can be pointed at. Its locator says exactly where in the
source file it lives (a page, a slide, rows of a sheet, a span of seconds, a section). Locators are
typed; only the store adapter flattens them into scalar metadata, and it rebuilds them on the way out.
"""

from __future__ import annotations

import hashlib
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


@dataclass(frozen=True, slots=True)
class Slide:
    """A 1-based slide of a deck."""

    slide: int

    def cite(self) -> str:
        return f"slide {self.slide}"

    def to_json(self) -> dict[str, object]:
        return {"slide": self.slide}


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


@dataclass(frozen=True, slots=True)
class Sheet:
    """A whole sheet of a workbook (e.g. its summary), without a row range."""

    sheet: str

    def cite(self) -> str:
        return f"sheet {self.sheet!r}"

    def to_json(self) -> dict[str, object]:
        return {"sheet": self.sheet}


@dataclass(frozen=True, slots=True)
class TimeSpan:
    """Seconds [start, end] into an audio or video recording."""

    start: float
    end: float

    def cite(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"

    def to_json(self) -> dict[str, object]:
        return {"start": round(self.start, 2), "end": round(self.end, 2)}


@dataclass(frozen=True, slots=True)
class Section:
    """A place in an unpaginated document: its heading path (empty for the top of the file)."""

    path: tuple[str, ...] = ()

    def cite(self) -> str:
        return "§ " + " > ".join(self.path) if self.path else "whole file"

    def to_json(self) -> dict[str, object]:
        return {"section": " > ".join(self.path)} if self.path else {}


Locator = Page | Slide | Rows | Sheet | TimeSpan | Section

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
    where the whole table is (a sheet, a page, a slide, a section).
    """

    source: str
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    locator: Locator
    first_row: int = 1


class IngestError(Exception):
    """A file that cannot be ingested, with a reason a person can act on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
