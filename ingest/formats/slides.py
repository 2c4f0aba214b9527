"""Ingestor for PowerPoint decks (.pptx), on python-pptx.

A person is pointed at "slide 7 of all-hands.pptx", so everything is cited as ``Slide(n)`` (1-based,
hidden slides counted as PowerPoint counts them):

- one TEXT chunk per slide (more parts only for a slide with very long text): a context line (deck
  title and slide number), the slide title, the text of every shape in reading order (top to
  bottom, left to right; grouped shapes and placeholders included), SmartArt text, tables as
  markdown rows, chart data (title, series, categories and values) and the speaker notes;
- TABLE chunks and a ``Table`` item for every table on a slide, and a ``Table`` item for every
  chart's data (for the SQL table store);
- with a media folder: one IMAGE chunk per picture (a thumbnail written through ``thumbs``; the
  picture's text read by OCR when an engine is available), described by its alt text and the
  slide title.

The deck title is the document's title property unless it is a placeholder ("PowerPoint
Presentation"), else the first slide's title, else the file name.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmrag.ingest.base import IngestSettings
from mmrag.ingest.chunk import Chunk, Modality, Slide, Table
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.pptx_parts import CellTable, chart_data, diagram_text, graphic_kind, pptx_table
from mmrag.ingest.text.tablechunks import clean_cell, markdown_table, table_chunks
from mmrag.ingest.text.textsplit import pack_blocks

log = logging.getLogger(__name__)

NO_CONTENT = "no content found (the deck has no text, tables, charts or pictures)"
ENCRYPTED = "password-protected presentation (remove the password to index it)"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PLACEHOLDER_TITLE = re.compile(
    r"(?i)^(powerpoint[- ]?(presentation|präsentation|pr[ée]sentation)|presentation\s*\d*|slide\s*\d+|untitled.*|title)$"
)
_GENERIC_NAME = re.compile(
    r"(?i)^(picture|image|graphic|grafik|bild|imagen|photo|content placeholder|picture placeholder|図|图片)\s*\d*$"
)
_AUTO_DESCRIPTION = re.compile(r"\s*Description automatically generated.*$", re.IGNORECASE)
_RASTER = frozenset({"png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp"})
_MIN_PICTURE_PX = 48  # smaller pictures are bullets, icons and spacers
_TABLE_BLOCK_ROWS = 20
_TITLE_MAX = 150
_LINE_BAND = 137_160  # EMU (0.15 inch): boxes whose tops differ by less are side by side
_DECK_TITLE_MAX = 100
_TITLE_TYPES = frozenset({1, 3, 5})  # PP_PLACEHOLDER TITLE, CENTER_TITLE, VERTICAL_TITLE


@dataclass(frozen=True, slots=True)
class Picture:
    blob: bytes
    ext: str
    description: str  # alt text or a meaningful shape name; "" when there is none


@dataclass(frozen=True, slots=True)
class SlideContent:
    number: int
    title: str
    blocks: tuple[str, ...]  # text of the slide in reading order: shapes, tables, charts, notes
    tables: tuple[tuple[str, CellTable], ...]  # (name, cells) of tables, then of charts
    table_count: int  # how many of ``tables`` are real tables (the rest are charts' data)
    pictures: tuple[Picture, ...]
    hidden: bool = False
    title_in_blocks: bool = False  # a long title is kept whole as the first block

    def text_blocks(self) -> list[str]:
        """The title (unless it is kept as the first block already), then every block: what is indexed."""
        return ([self.title] if self.title and not self.title_in_blocks else []) + list(self.blocks)


@dataclass(frozen=True, slots=True)
class SlidesIngestor:
    """PowerPoint decks: one TEXT chunk per slide, TABLE chunks, IMAGE chunks, ``Table`` items."""

    settings: IngestSettings = field(default_factory=IngestSettings)

    def read(self, path: Path) -> tuple[str, list[SlideContent]]:
        """The deck title (may be "") and the slides of the file (``IngestError`` if unusable)."""
        return read_deck(path, pictures=self.settings.media.media_dir is not None)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk | Table]:
        media = self.settings.media.media_dir
        rendering = None
        if media is not None and self.settings.media.office:
            from mmrag.ingest.engines.slide_render import Rendering

            rendering = Rendering(self.settings.media.office, path)  # runs while the deck is read and OCR'd
        try:
            deck_title, slides = self.read(path)
            items = list(self._items(path, source, deck_title, slides))
            if rendering is None:
                yield from items
                return
            count = max((s.number for s in slides), default=0)
            assert media is not None
            pictures = rendering.pictures(source, count, media, self.settings.media.render_timeout_s)
        finally:
            if rendering is not None:
                rendering.close()
        for item in items:
            if isinstance(item, Chunk) and item.modality is Modality.TEXT and isinstance(item.locator, Slide):
                item = replace(item, image=pictures.get(item.locator.slide))
            yield item

    def _items(self, path: Path, source: str, deck_title: str, slides: list[SlideContent]) -> Iterator[Chunk | Table]:
        title = deck_title or Path(source).stem
        media = self.settings.media.media_dir
        if not any(s.blocks or s.title or s.tables or (s.pictures and media) for s in slides):
            pictures = any(s.pictures for s in slides)
            raise IngestError(
                path,
                "no text found (only pictures, and pictures are not indexed without a media folder)"
                if pictures
                else NO_CONTENT,
            )
        for slide in slides:
            yield from self._slide_items(source, title, slide)

    def _slide_items(self, source: str, title: str, slide: SlideContent) -> Iterator[Chunk | Table]:
        n = slide.number
        hidden = " (hidden)" if slide.hidden else ""
        prefix = f"{title} — slide {n}{hidden}\n\n"
        blocks = slide.text_blocks()
        chunking = self.settings.chunking
        for part, body in enumerate(pack_blocks(blocks, chunking, reserved=len(prefix))):
            yield Chunk(source, Modality.TEXT, Slide(n), prefix + body, part=part, title=title)
        table_part = 0
        for index, (name, cells) in enumerate(slide.tables):
            if index < slide.table_count:
                for chunk in table_chunks(
                    source,
                    title,
                    cells.header,
                    cells.rows,
                    lambda first, last: Slide(n),
                    chunking,
                    context=f"{title} — slide {n}",
                    caption=name,
                ):
                    yield replace(chunk, part=table_part)
                    table_part += 1
            yield Table(source, name, cells.header, cells.rows, Slide(n))
        if self.settings.media.media_dir is not None:
            yield from self._picture_chunks(source, title, slide, self.settings.media.media_dir)

    def _picture_chunks(self, source: str, title: str, slide: SlideContent, media_dir: Path) -> Iterator[Chunk]:
        part = 0
        for index, picture in enumerate(slide.pictures):
            key = f"{source}\x00slide {slide.number}\x00picture {index}"
            saved = save_picture(picture, media_dir, key, self.settings)
            if saved is None:
                continue
            image_path, text_in_image = saved
            what = picture.description or "picture"
            lines = [f"Picture on slide {slide.number}: {what}"]
            if slide.title:
                lines.append(f"Slide title: {slide.title}")
            if text_in_image:
                room = max(0, self.settings.chunking.max_chars - sum(len(line) + 1 for line in lines) - 21)
                lines.append(f"Text in the picture: {text_in_image[:room]}")
            yield Chunk(
                source, Modality.IMAGE, Slide(slide.number), "\n".join(lines), part=part, title=title, image=image_path
            )
            part += 1


def save_picture(picture: Picture, media_dir: Path, key: str, settings: IngestSettings) -> tuple[Path, str] | None:
    """Write a picture's thumbnail to ``media_dir`` and read its text; ``None`` for pictures not worth
    an IMAGE chunk (vector formats, icons, undecodable or oversized images)."""
    if picture.ext.lower() not in _RASTER:
        return None
    from PIL import Image

    from mmrag.ingest.engines import thumbs
    limit = settings.media.max_image_pixels
    try:
        with Image.open(io.BytesIO(picture.blob)) as image:
            width, height = image.size
            if min(width, height) < _MIN_PICTURE_PX or width * height > limit:
                return None
            image.load()
            path = thumbs.save_thumbnail(image, media_dir, key, settings.media.thumbnail_px)
            return path, _read_text(image, settings)
    except thumbs.DECODE_ERRORS:
        log.debug("slide picture %s cannot be decoded; skipped", key, exc_info=True)
        return None


def _read_text(image: Any, settings: IngestSettings) -> str:
    """OCR of one picture, or "" when no engine is available or it fails (OCR never fails a file)."""
    try:
        from mmrag.ingest.engines.ocr import ocr_engine
    except ImportError:
        return ""
    engine = ocr_engine(settings.media.ocr_engine, settings.media.cpu_threads, settings.media.ocr_cache)
    if engine is None:
        return ""
    import numpy as np

    from mmrag.ingest.engines.thumbs import upright_rgb

    try:
        return clean_cell(engine.read(np.asarray(upright_rgb(image), dtype=np.uint8)))
    except Exception:  # an OCR failure costs the picture's text, never the deck
        log.warning("OCR failed on a slide picture", exc_info=True)
        return ""


# --- reading a deck -------------------------------------------------------------------------


def read_deck(path: Path, *, pictures: bool = True) -> tuple[str, list[SlideContent]]:
    """The deck title (may be "") and every slide's content, or ``IngestError`` with what is wrong.

    Without ``pictures`` the pictures are listed (with their descriptions) but their bytes are not
    kept in memory.
    """
    _check_pptx(path)
    from pptx import Presentation

    try:
        deck: Any = Presentation(str(path))
        slides = [read_slide(number, slide, pictures=pictures) for number, slide in enumerate(deck.slides, start=1)]
        core_title = clean_cell(deck.core_properties.title or "")
    except IngestError:
        raise
    except Exception as e:  # python-pptx raises many types for one cause: a part it cannot parse
        raise IngestError(path, f"damaged PPTX: it cannot be read ({type(e).__name__}: {e})") from e
    if not slides:
        raise IngestError(path, "no content found (the deck has no slides)")
    if core_title and not _PLACEHOLDER_TITLE.match(core_title):
        return core_title[:_DECK_TITLE_MAX], slides
    first = slides[0]
    usable = not first.title_in_blocks and len(first.title) <= _DECK_TITLE_MAX
    return (first.title if usable else ""), slides


def _check_pptx(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
    except OSError as e:
        raise IngestError(path, f"cannot read the file ({e.strerror or e})") from e
    if head.startswith(_OLE_MAGIC):
        with path.open("rb") as handle:
            if "EncryptedPackage".encode("utf-16-le") in handle.read(1 << 20):
                raise IngestError(path, ENCRYPTED)
        raise IngestError(path, "legacy PowerPoint format (.ppt), not PPTX; save it as .pptx to index it")
    try:
        with zipfile.ZipFile(path) as archive:
            if "ppt/presentation.xml" not in archive.namelist():
                raise IngestError(path, "damaged PPTX: the main part ppt/presentation.xml is missing")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as e:
        raise IngestError(path, f"damaged PPTX: not a readable ZIP container ({e})") from e


@dataclass
class _Collector:
    blocks: list[str] = field(default_factory=list)
    tables: list[tuple[str, CellTable]] = field(default_factory=list)
    charts: list[tuple[str, CellTable]] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    keep_bytes: bool = True


def read_slide(number: int, slide: Any, *, pictures: bool = True) -> SlideContent:
    """One slide's title, text blocks in reading order, tables, charts and pictures."""
    title_shape = _title_shape(slide)
    title_text = _frame_text(title_shape.text_frame) if title_shape is not None else ""
    title = clean_cell(title_text)
    found = _Collector(keep_bytes=pictures)
    title_in_blocks = len(title) > _TITLE_MAX
    if title_in_blocks:  # a text box misused as the title: keep its lines as body text
        found.blocks.append(title_text)
        title = clean_cell(title_text.split("\n", 1)[0])[:_TITLE_MAX]
    slide_title = title or f"slide {number}"
    _walk(_reading_order(slide.shapes), found, title_shape, slide_title)
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = _frame_text(frame) if frame is not None else ""
        if notes:
            found.blocks.append(f"Notes: {notes}")
    named = list(found.tables)
    if len(named) > 1:
        named = [(f"{name} (table {i})", cells) for i, (name, cells) in enumerate(named, start=1)]
    return SlideContent(
        number=number,
        title=title,
        blocks=tuple(found.blocks),
        tables=tuple(named + found.charts),
        table_count=len(named),
        pictures=tuple(found.pictures),
        hidden=slide._element.get("show") in ("0", "false"),
        title_in_blocks=title_in_blocks,
    )


def _title_shape(slide: Any) -> Any:
    """The slide's title placeholder, or None. python-pptx takes the placeholder of index 0 for the
    title, but a placeholder without an index (a layout's picture placeholder, ``<p:ph type="pic"/>``)
    has index 0 too: only one that holds text can be the title."""
    found = slide.shapes.title
    if found is not None and getattr(found, "has_text_frame", False):
        return found
    for shape in slide.placeholders:
        kind = shape.placeholder_format.type
        if kind is not None and int(kind) in _TITLE_TYPES and getattr(shape, "has_text_frame", False):
            return shape
    return None


def _reading_order(shapes: Any) -> list[Any]:
    """Shapes top to bottom, then left to right; tops within a small band count as one line."""
    shapes = list(shapes)
    placed = sorted((s for s in shapes if s.top is not None), key=lambda s: (s.top, s.left or 0))
    lines: list[list[Any]] = []
    for shape in placed:
        if lines and shape.top - lines[-1][0].top <= _LINE_BAND:
            lines[-1].append(shape)
        else:
            lines.append([shape])
    ordered = [s for line in lines for s in sorted(line, key=lambda s: s.left or 0)]
    return ordered + [s for s in shapes if s.top is None]


def _walk(shapes: list[Any], found: _Collector, title_shape: Any, slide_title: str) -> None:
    from pptx.shapes.graphfrm import GraphicFrame

    for shape in shapes:
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue  # the title is the first block already
        if shape.shape_type is not None and int(shape.shape_type) == 6:  # MSO_SHAPE_TYPE.GROUP
            _walk(_reading_order(shape.shapes), found, None, slide_title)
            continue
        if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = _frame_text(shape.text_frame)
            if text:
                found.blocks.append(text)
        if isinstance(shape, GraphicFrame):
            _graphic(shape, found, slide_title)
        picture = _picture(shape, found.keep_bytes)
        if picture is not None:
            found.pictures.append(picture)
            if picture.description:
                found.blocks.append(f"[Picture: {picture.description}]")


def _graphic(shape: Any, found: _Collector, slide_title: str) -> None:
    kind = graphic_kind(shape)
    if kind == "table":
        cells = pptx_table(shape)
        if cells is not None:
            found.tables.append((f"Slide table: {slide_title}", cells))
            found.blocks.extend(_table_blocks(cells))
    elif kind == "chart":
        data = chart_data(shape.chart._chartSpace)
        if data is not None:
            label = f"Chart: {data.title}" if data.title else "Chart"
            found.charts.append((f"{label} ({slide_title})", data.table))
            found.blocks.extend(f"{label}\n{block}" for block in _table_blocks(data.table))
    elif kind == "diagram":
        lines = diagram_text(shape)
        if lines:
            found.blocks.append("\n".join(lines))


def _table_blocks(cells: CellTable) -> list[str]:
    """A table as markdown blocks of at most ``_TABLE_BLOCK_ROWS`` rows, each with the header."""
    rows = cells.rows
    if not rows:
        return [markdown_table(cells.header, [])]
    return [
        markdown_table(cells.header, rows[i : i + _TABLE_BLOCK_ROWS]) for i in range(0, len(rows), _TABLE_BLOCK_ROWS)
    ]


def _frame_text(frame: Any) -> str:
    lines = []
    for paragraph in frame.paragraphs:
        for line in paragraph.text.replace("\v", "\n").split("\n"):  # \v: a line break inside a paragraph
            line = clean_cell(line)
            if line:
                lines.append(line)
    return "\n".join(lines)


def _picture(shape: Any, keep_bytes: bool) -> Picture | None:
    try:
        image = shape.image
    except (AttributeError, KeyError, ValueError):
        return None  # not a picture, or a linked picture without embedded bytes
    element = shape._element
    c_nv_pr = next(element.iter("{http://schemas.openxmlformats.org/presentationml/2006/main}cNvPr"), None)
    description = ""
    if c_nv_pr is not None:
        description = clean_cell(_AUTO_DESCRIPTION.sub("", c_nv_pr.get("descr") or "") or c_nv_pr.get("title") or "")
    if not description:
        name = clean_cell(str(shape.name or ""))
        description = "" if _GENERIC_NAME.match(name) else name
    return Picture(bytes(image.blob) if keep_bytes else b"", str(image.ext), description[:300])
