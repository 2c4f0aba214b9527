"""Ingestor for PDF files, on pypdfium2 (PDFium's text layer, hundreds of pages per second).

Every page with text gives one or more TEXT chunks located at ``Page(n)`` (1-based), numbered by
``part`` within the page; a page with no text gives none. Lines of a page are kept as lines (they
are the blocks the splitter packs), whitespace is normalised and words hyphenated across a line end
are joined ("exam-" + "ple" -> "example") when both sides are lowercase letters.

PDFium is not thread-safe: all access to it in this process goes through ``PDFIUM_LOCK``, so one
``PdfIngestor`` may be shared across threads (the calls are then serialised). Documents, pages and
text pages are closed as soon as their text is read.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.chunk import Chunk, Modality, Page
from mmrag.ingest.errors import IngestError
from mmrag.ingest.text.textsplit import pack_blocks

PDFIUM_LOCK = threading.RLock()
"""Held around every PDFium call in this process (PDFium keeps global state and is not thread-safe)."""

NO_TEXT = "no text layer (scanned PDF; OCR of PDF pages is not enabled yet)"
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
class PdfIngestor:
    """PDF files: TEXT chunks per page, cited as ``Page(n)``."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        title, pages = read_pages(path)
        if not pages:
            raise IngestError(path, "PDF without pages (nothing to index)")
        if not any(pages):
            raise IngestError(path, NO_TEXT)
        prefix = f"{title}\n\n" if title and len(title) <= self.chunking.max_chars // 4 else ""
        # All pages are read before the first chunk is yielded: a file fails whole or not at all.
        for number, lines in enumerate(pages, start=1):
            for part, body in enumerate(pack_blocks(lines, self.chunking, reserved=len(prefix), separator="\n")):
                yield Chunk(source, Modality.TEXT, Page(number), prefix + body, part=part, title=title)


def read_pages(path: Path) -> tuple[str, list[list[str]]]:
    """The title and the normalised lines of every page, or ``IngestError`` with what is wrong."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            document: Any = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as e:
            raise IngestError(path, _load_reason(path, getattr(e, "err_code", None))) from e
        try:
            title = _title(_metadata(document))
            pages: list[list[str]] = []
            for index in range(len(document)):
                try:
                    pages.append(normalise_page_text(_page_text(document, index)))
                except pdfium.PdfiumError as e:
                    raise IngestError(path, f"damaged PDF: page {index + 1} cannot be read ({e})") from e
            return title, pages
        finally:
            document.close()


def _page_text(document: Any, index: int) -> str:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


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
