"""Ingestor for OpenDocument presentations (.odp, LibreOffice Impress), on the standard library.

An ODP file is a ZIP whose ``content.xml`` lists the slides (``draw:page``) with their frames in
plain XML, so no extra dependency is needed. Everything a PPTX gives is given here too, through
``SlidesIngestor``: per slide a TEXT chunk (title, text of every frame and shape in reading order,
tables, chart data, speaker notes), TABLE chunks and ``Table`` items, and IMAGE chunks with a media
folder. A chart is an embedded object (``Object 1/content.xml``) whose local table holds its data.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.pptx_parts import CellTable, cell_table
from mmrag.ingest.formats.slides import ENCRYPTED, Picture, SlideContent, SlidesIngestor
from mmrag.ingest.text.tablechunks import clean_cell, markdown_table

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
    "xlink": "http://www.w3.org/1999/xlink",
    "dc": "http://purl.org/dc/elements/1.1/",
    "chart": "urn:oasis:names:tc:opendocument:xmlns:chart:1.0",
}
_UNITS_CM = {"cm": 1.0, "mm": 0.1, "in": 2.54, "pt": 2.54 / 72, "pc": 2.54 / 6, "px": 2.54 / 96}
_LENGTH = re.compile(r"(-?[\d.]+)\s*([a-z]*)")
_LINE_BAND_CM = 0.4
_MAX_XML_BYTES = 200 * 1024 * 1024


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{_NS[prefix]}}}{local}"


def _cm(value: str | None) -> float | None:
    found = _LENGTH.fullmatch((value or "").strip())
    if not found:
        return None
    return float(found.group(1)) * _UNITS_CM.get(found.group(2) or "cm", 1.0)


def _inline(node: ElementTree.Element) -> str:
    parts = [node.text or ""]
    for child in node:
        if child.tag in (_q("text:s"), _q("text:tab")):
            parts.append(" ")
        elif child.tag == _q("text:line-break"):
            parts.append("\n")
        else:
            parts.append(_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _text(element: ElementTree.Element) -> str:
    """The text of paragraphs and headings under ``element``, one line per paragraph."""
    lines: list[str] = []
    for paragraph in element.iter():
        if paragraph.tag in (_q("text:p"), _q("text:h")):
            lines.extend(clean_cell(line) for line in _inline(paragraph).split("\n"))
    return "\n".join(line for line in lines if line)


def _odf_table(table: ElementTree.Element) -> CellTable | None:
    rows = []
    for row in table.iter(_q("table:table-row")):
        cells = []
        for cell in row:
            if cell.tag not in (_q("table:table-cell"), _q("table:covered-table-cell")):
                continue
            repeat = min(int(cell.get(_q("table:number-columns-repeated"), "1")), 64)
            cells.extend([_text(cell).replace("\n", " ")] * repeat)
        rows.append(cells)
    return cell_table(rows)


@dataclass
class _Slide:
    blocks: list[str] = field(default_factory=list)
    tables: list[tuple[str, CellTable]] = field(default_factory=list)
    charts: list[tuple[str, CellTable]] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    title: str = ""


@dataclass(frozen=True, slots=True)
class OdpIngestor(SlidesIngestor):
    """OpenDocument presentations, cited by ``Slide(n)`` like PowerPoint decks."""

    def read(self, path: Path) -> tuple[str, list[SlideContent]]:
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                if "content.xml" not in names:
                    raise IngestError(path, "damaged ODP: the main part content.xml is missing")
                manifest = "META-INF/manifest.xml"
                if manifest in names and b"encryption-data" in archive.read(manifest):
                    raise IngestError(path, ENCRYPTED)
                if archive.getinfo("content.xml").file_size > _MAX_XML_BYTES:
                    raise IngestError(path, "ODP content too large to index (content.xml over 200 MB)")
                content = ElementTree.fromstring(archive.read("content.xml"))
                title = _meta_title(archive, names)
                slides = [
                    _read_page(number, page, archive, names)
                    for number, page in enumerate(content.iter(_q("draw:page")), start=1)
                ]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError) as e:
            raise IngestError(path, f"damaged ODP: not a readable ZIP container ({e})") from e
        except ElementTree.ParseError as e:
            raise IngestError(path, f"damaged ODP: its XML cannot be parsed ({e})") from e
        if not slides:
            raise IngestError(path, "no content found (the deck has no slides)")
        return title or slides[0].title, slides


def _meta_title(archive: zipfile.ZipFile, names: set[str]) -> str:
    if "meta.xml" not in names:
        return ""
    found = ElementTree.fromstring(archive.read("meta.xml")).find(f".//{_q('dc:title')}")
    return clean_cell(found.text or "")[:100] if found is not None and found.text else ""


def _read_page(number: int, page: ElementTree.Element, archive: zipfile.ZipFile, names: set[str]) -> SlideContent:
    slide = _Slide()
    children = [child for child in page if child.tag != _q("presentation:notes")]
    _walk(_ordered(children), slide, archive, names, number)
    notes = page.find(_q("presentation:notes"))
    if notes is not None:
        text = "\n".join(
            _text(frame) for frame in notes.iter(_q("draw:frame")) if frame.find(_q("draw:text-box")) is not None
        )
        if text.strip():
            slide.blocks.append(f"Notes: {text.strip()}")
    return SlideContent(
        number=number,
        title=slide.title,
        blocks=tuple(slide.blocks),
        tables=tuple(slide.tables + slide.charts),
        table_count=len(slide.tables),
        pictures=tuple(slide.pictures),
        hidden=page.get(_q("presentation:visibility")) == "hidden",
    )


def _ordered(shapes: list[ElementTree.Element]) -> list[ElementTree.Element]:
    """Top to bottom, then left to right (tops within a small band are one line)."""

    def top(shape: ElementTree.Element) -> float:
        return _cm(shape.get(_q("svg:y"))) or 0.0

    lines: list[list[ElementTree.Element]] = []
    for shape in sorted(shapes, key=lambda s: (top(s), _cm(s.get(_q("svg:x"))) or 0.0)):
        if lines and top(shape) - top(lines[-1][0]) <= _LINE_BAND_CM:
            lines[-1].append(shape)
        else:
            lines.append([shape])
    return [s for line in lines for s in sorted(line, key=lambda s: _cm(s.get(_q("svg:x"))) or 0.0)]


def _walk(
    shapes: list[ElementTree.Element], slide: _Slide, archive: zipfile.ZipFile, names: set[str], number: int
) -> None:
    for shape in shapes:
        if shape.tag == _q("draw:g"):
            _walk(_ordered(list(shape)), slide, archive, names, number)
            continue
        kind = shape.get(_q("presentation:class"), "")
        if kind == "title" and not slide.title:
            slide.title = clean_cell(_text(shape))
            continue
        if kind in ("page-number", "date-time", "footer", "header"):
            continue
        table = shape.find(_q("table:table"))
        chart = shape.find(_q("draw:object"))
        image = shape.find(_q("draw:image"))
        if table is not None:
            cells = _odf_table(table)
            if cells is not None:
                slide.tables.append((f"Slide table: {slide.title or f'slide {number}'}", cells))
                slide.blocks.append(markdown_table(cells.header, cells.rows))
        elif chart is not None:
            _chart(chart, slide, archive, names, number)
        elif image is not None:
            _image(shape, image, slide, archive, names)
        else:
            text = _text(shape)
            if text:
                slide.blocks.append(text)


def _chart(chart: ElementTree.Element, slide: _Slide, archive: zipfile.ZipFile, names: set[str], number: int) -> None:
    href = (chart.get(_q("xlink:href")) or "").removeprefix("./").rstrip("/")
    part = f"{href}/content.xml"
    if not href or part not in names:
        return
    root = ElementTree.fromstring(archive.read(part))
    title_element = root.find(f".//{_q('chart:title')}")
    title = _text(title_element) if title_element is not None else ""
    local = root.find(f".//{_q('table:table')}")
    cells = _odf_table(local) if local is not None else None
    if cells is None:
        return
    header = ("category", *cells.header[1:]) if cells.header and cells.header[0].startswith("column ") else cells.header
    cells = CellTable(header, cells.rows)
    label = f"Chart: {title}" if title else "Chart"
    slide.charts.append((f"{label} ({slide.title or f'slide {number}'})", cells))
    slide.blocks.append(f"{label}\n{markdown_table(cells.header, cells.rows)}")


def _image(
    frame: ElementTree.Element, image: ElementTree.Element, slide: _Slide, archive: zipfile.ZipFile, names: set[str]
) -> None:
    href = (image.get(_q("xlink:href")) or "").removeprefix("./")
    if href not in names:
        return  # a linked picture outside the file
    title = frame.find(_q("svg:title"))
    desc = frame.find(_q("svg:desc"))
    description = clean_cell(" ".join(e.text or "" for e in (desc, title) if e is not None))[:300]
    slide.pictures.append(Picture(archive.read(href), PurePosixPath(href).suffix.lstrip("."), description))
    if description:
        slide.blocks.append(f"[Picture: {description}]")
