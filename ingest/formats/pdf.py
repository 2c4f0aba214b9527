"""Ingestor for PDF files, on pypdfium2 (PDFium's text layer, hundreds of pages per second).

Every page with text gives one or more TEXT chunks located at ``Page(n)`` (1-based), numbered by
``part`` within the page; a page with no text gives none. Lines of a page are kept as lines (they
are the blocks the splitter packs), whitespace is normalised and words hyphenated across a line end
are joined ("exam-" + "ple" -> "example") when both sides are lowercase letters.

A page without a text layer (a scan, text drawn as outlines) or with an unreadable one (fonts whose
glyphs map to private or unassigned code points, letters that form no words: ``text.quality``) is
rendered at 144 dpi and read by the configured OCR engine (``MediaConfig.ocr_engine``, through the
index's OCR cache), at most ``MediaConfig.max_ocr_pages`` pages a file; a capped file says so in a
``Note``. OCR text replaces an unreadable layer unless it is junk too. Good pages and blank
pages (nothing drawn on them) are never OCR'd.

PDFium is not thread-safe: all access to it in this process goes through ``PDFIUM_LOCK``, so one
``PdfIngestor`` may be shared across threads (the calls are then serialised; OCR runs outside the
lock). Documents, pages and text pages are closed as soon as their text is read.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.base import IngestSettings, MediaConfig, Note
from mmrag.ingest.chunk import Chunk, Modality, Page
from mmrag.ingest.errors import IngestError
from mmrag.ingest.text.quality import text_quality
from mmrag.ingest.text.textsplit import pack_blocks

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

PDFIUM_LOCK = threading.RLock()
"""Held around every PDFium call in this process (PDFium keeps global state and is not thread-safe)."""

NO_TEXT = "no text layer (scanned PDF), and OCR is off or unavailable (see `mmrag models`)"
NO_OCR_PAGES = "no text layer (scanned PDF), and OCR of PDF pages is off ([limits] max_ocr_pages = 0)"
NOTHING_READ = "no text layer, and OCR read no text on its pages (blank or unreadable scan)"
BLANK = "no text: its pages are blank"
OCR_DPI = 144
_OCR_MAX_SIDE = 2000  # pixels; RapidOCR reads at most this size anyway (a poster page is scaled down)
ENCRYPTED = "password-protected PDF (remove the password to index it)"

# PDFium's FPDF_GetLastError codes for a failed load.
_LOAD_ERRORS = {
    2: "the file could not be opened",
    3: "damaged PDF: its structure cannot be parsed",
    4: ENCRYPTED,
    5: "PDF protected by an unsupported security handler (remove the protection to index it)",
}

# PDFium marks a hyphen it found at a line end (the line break already removed) as U+FFFE; some
# producers leave a soft hyphen or a real hyphen followed by the line break instead.
_HYPHEN_JOIN = re.compile(r"(?<=[a-z])(?:\ufffe|\u00ad\s*|-[ \t]*\n[ \t]*)(?=[a-z])")
_LEFT_HYPHEN = re.compile(r"[\ufffe\u00ad]")
# Control characters: what PDFium returns for glyphs of fonts without a Unicode map.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff\uffff]")
_INLINE_SPACE = re.compile(r"[^\S\n]+")


def normalise_page_text(raw: str) -> list[str]:
    """A page's text as clean lines: unified line ends, joined hyphenation, single spaces."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    text = _HYPHEN_JOIN.sub("", text)
    text = _LEFT_HYPHEN.sub(lambda m: "-" if m.group() == "\ufffe" else "", text)
    text = _CONTROL.sub("", text)
    lines = (_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return [line for line in lines if line]


def _title(metadata: dict[str, str]) -> str:
    """The document title from PDF metadata, unless it is a producer's placeholder."""
    title = " ".join(metadata.get("Title", "").split())
    lowered = title.lower()
    if not title or lowered in ("untitled", "title") or lowered.startswith("microsoft word - "):
        return ""
    if re.search(r"\.(docx?|pdf|pptx?|xlsx?|tex|indd|qxd)$", lowered):
        return ""
    return title[:100]


@dataclass(frozen=True, slots=True)
class PdfPage:
    """One page as read from the file: its clean lines, and whether OCR should read it instead."""

    lines: list[str]
    needs_ocr: bool = False  # no text or an unreadable text layer, and something is drawn on it
    raw: str = ""


@dataclass(frozen=True, slots=True)
class PdfIngestor:
    """PDF files: TEXT chunks per page, cited as ``Page(n)``; pages without usable text read by OCR."""

    settings: IngestSettings = field(default_factory=IngestSettings)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk | Note]:
        title, read = read_document(path)
        if not read:
            raise IngestError(path, "PDF without pages (nothing to index)")
        pages, note = self._ocr(path, read)
        if not any(pages):
            raise IngestError(path, _no_text_reason(read, self.settings.media))
        chunking = self.settings.chunking
        prefix = f"{title}\n\n" if title and len(title) <= chunking.max_chars // 4 else ""
        # All pages are read before the first chunk is yielded: a file fails whole or not at all.
        for number, lines in enumerate(pages, start=1):
            for part, body in enumerate(pack_blocks(lines, chunking, reserved=len(prefix), separator="\n")):
                yield Chunk(source, Modality.TEXT, Page(number), prefix + body, part=part, title=title)
        if note is not None:
            yield note

    def _ocr(self, path: Path, read: list[PdfPage]) -> tuple[list[list[str]], Note | None]:
        """Every page's lines, OCR's for the pages that need it (up to the cap); a ``Note`` if capped."""
        pages = [page.lines for page in read]
        wanted = [i for i, page in enumerate(read) if page.needs_ocr]
        media = self.settings.media
        engine = _engine(media) if wanted and media.max_ocr_pages > 0 else None
        if engine is None:
            return pages, None
        for index in wanted[: media.max_ocr_pages]:
            pixels = render_page(path, index)
            try:
                text = engine.read(pixels)
            except Exception:  # one page the engine chokes on keeps what its text layer has
                log.warning("%s: OCR failed on page %d", path, index + 1, exc_info=True)
                continue
            lines = normalise_page_text(text)
            if lines and (not text_quality(text).garbled or not read[index].lines):
                pages[index] = lines
        if len(wanted) <= media.max_ocr_pages:
            return pages, None
        return pages, Note(
            f"OCR read {media.max_ocr_pages} of the {len(wanted)} pages without a readable text layer "
            f"(raise [limits] max_ocr_pages to read them all)"
        )


def _engine(media: MediaConfig) -> Any:
    from mmrag.ingest.engines.ocr import ocr_engine

    return ocr_engine(media.ocr_engine, media.cpu_threads, media.ocr_cache)


def _no_text_reason(read: list[PdfPage], media: MediaConfig) -> str:
    if not any(page.needs_ocr for page in read):
        return BLANK
    if media.max_ocr_pages <= 0:
        return NO_OCR_PAGES
    return NOTHING_READ if _engine(media) is not None else NO_TEXT


def read_pages(path: Path) -> tuple[str, list[list[str]]]:
    """The title and the normalised lines of every page (its text layer), or ``IngestError`` with what is wrong."""
    title, pages = read_document(path)
    return title, [page.lines for page in pages]


def read_document(path: Path) -> tuple[str, list[PdfPage]]:
    """The title and every page's text layer, each page marked when OCR should read it instead."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            document: Any = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as e:
            raise IngestError(path, _load_reason(path, getattr(e, "err_code", None))) from e
        try:
            title = _title(_metadata(document))
            pages: list[PdfPage] = []
            for index in range(len(document)):
                try:
                    pages.append(_read_page(document, index))
                except pdfium.PdfiumError as e:
                    raise IngestError(path, f"damaged PDF: page {index + 1} cannot be read ({e})") from e
            return title, pages
        finally:
            document.close()


def _read_page(document: Any, index: int) -> PdfPage:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            raw = str(textpage.get_text_range())
        finally:
            textpage.close()
        lines = normalise_page_text(raw)
        unreadable = not lines or text_quality(raw).garbled
        drawn = unreadable and next(iter(page.get_objects(max_depth=1)), None) is not None
        return PdfPage(lines, needs_ocr=drawn, raw=raw)
    finally:
        page.close()


def render_page(path: Path, index: int, dpi: int = OCR_DPI) -> npt.NDArray[np.uint8]:
    """Page ``index`` (0-based) as RGB pixels at ``dpi`` (smaller for pages over ``_OCR_MAX_SIDE`` pixels)."""
    import numpy as np
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            document: Any = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as e:
            raise IngestError(path, _load_reason(path, getattr(e, "err_code", None))) from e
        try:
            page = document[index]
            try:
                width, height = page.get_size()
                scale = min(dpi / 72, _OCR_MAX_SIDE / max(width, height, 1.0))
                bitmap = page.render(scale=scale, rev_byteorder=True)
                try:
                    pixels = np.array(bitmap.to_numpy()[:, :, :3], dtype=np.uint8)
                finally:
                    bitmap.close()
            finally:
                page.close()
        finally:
            document.close()
    return pixels


def _metadata(document: Any) -> dict[str, str]:
    try:
        return {str(k): str(v) for k, v in document.get_metadata_dict().items()}
    except Exception:  # metadata is optional; a broken info dictionary must not lose the text
        return {}


def _load_reason(path: Path, code: int | None) -> str:
    if code == 3:
        try:
            with path.open("rb") as handle:
                head = handle.read(1024)
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - 2048))
                tail = handle.read()
        except OSError:
            head = tail = b""
        if not head.lstrip().startswith(b"%PDF-"):
            return "not a PDF: the content does not start with a PDF header (mislabelled or damaged file)"
        if b"%%EOF" not in tail:
            return "truncated PDF: the end of the file is missing (incomplete download or copy)"
    return _LOAD_ERRORS.get(code or 0, f"damaged PDF: PDFium could not load it (error code {code})")
