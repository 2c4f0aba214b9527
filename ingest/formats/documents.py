"""Ingestors for DOCX, HTML, Markdown and plain text, built on unstructured's element structure.

Chunks follow the document's headings: every chunk belongs to one section, and its locator is the
section's heading path (``Section(("Chapter 2", "Costs"))``). A DOCX that records where Word broke
its pages is cited by page instead (``Page(3)``). Every chunk text starts with a context line, the
document title and the heading path ("Handbook > Chapter 2 > Costs"), then a blank line and the body,
so that retrieval sees where a passage sits even when the passage never names it. Tables are kept
in their section as "a | b | c" rows. unstructured is imported on first use, never at import time.
"""

from __future__ import annotations

import codecs
import html
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.chunk import SECTION_SEPARATOR, Chunk, Locator, Modality, Page, Section
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats import unstructured_adapter as ua
from mmrag.ingest.formats.html_flat import TOO_DEEP, read_flat
from mmrag.ingest.text.textsplit import pack_blocks

EMPTY = "no text found (empty document)"
_SPACES = re.compile(r"\s+")
_HEADING_MAX = 100
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True, slots=True)
class Group:
    """Consecutive body texts that share a section path (and page, for paginated documents)."""

    path: tuple[str, ...]
    page: int | None
    texts: tuple[str, ...]


def clean_heading(text: str) -> str:
    """A heading as a path entry: one line, bounded, and free of the path separator."""
    text = _SPACES.sub(" ", text).strip().replace(SECTION_SEPARATOR.strip(), "›")
    return text if len(text) <= _HEADING_MAX else text[: _HEADING_MAX - 1].rstrip() + "…"


def group_blocks(
    blocks: Sequence[ua.Block],
    *,
    paged: bool,
    is_heading: Callable[[ua.Block], bool] = lambda block: True,
    rows_per_block: int = 800,
) -> list[Group]:
    """Gather body texts under their heading path, in document order.

    ``is_heading`` vetoes headings (plain text's are guesses). A heading with neither text nor
    sub-headings under it (a sign-off line, an empty chapter) joins the text before it, so no
    section is empty and no words are lost. Tables become runs of rows of about ``rows_per_block``
    characters, so that a long table is cut between rows.
    """
    groups: list[Group] = []
    stack: list[tuple[int, str]] = []
    pending: ua.Block | None = None
    page: int | None = 1 if paged else None

    def add(path: tuple[str, ...], texts: Sequence[str]) -> None:
        if groups and groups[-1].path == path and groups[-1].page == page:
            groups[-1] = Group(path, page, groups[-1].texts + tuple(texts))
        else:
            groups.append(Group(path, page, tuple(texts)))

    def orphan(heading: ua.Block) -> None:
        if groups:
            groups[-1] = Group(groups[-1].path, groups[-1].page, (*groups[-1].texts, heading.text))
        else:  # nothing before it: it sits at its parent's level (it is the top of the stack)
            add(tuple(name for _, name in stack[:-1]), [heading.text])

    for block in blocks:
        if paged and block.page is not None:
            page = block.page
        if block.kind is ua.BlockKind.HEADING and is_heading(block):
            if pending is not None and block.depth <= pending.depth:
                orphan(pending)
            while stack and stack[-1][0] >= block.depth:
                stack.pop()
            stack.append((block.depth, clean_heading(block.text)))
            pending = block
            continue
        pending = None
        path = tuple(name for _, name in stack)
        add(path, _row_runs(block.rows, rows_per_block) if block.kind is ua.BlockKind.TABLE else [block.text])
    if pending is not None:
        orphan(pending)
    return groups


def _row_runs(rows: Sequence[str], size: int) -> list[str]:
    runs: list[str] = []
    current: list[str] = []
    length = 0
    for row in rows:
        if current and length + len(row) > size:
            runs.append("\n".join(current))
            current, length = [], 0
        current.append(row)
        length += len(row) + 1
    if current:
        runs.append("\n".join(current))
    return runs


def context_line(title: str, path: Sequence[str], limit: int) -> str:
    """The context line "Title > Section > Subsection", without repeating a title that is also the first heading."""
    parts = list(path) if path and title == path[0] else [p for p in (title, *path) if p]
    line = SECTION_SEPARATOR.join(parts)
    return line if len(line) <= limit else line[: max(0, limit - 1)].rstrip() + "…"


def build_chunks(
    source: str,
    groups: Sequence[Group],
    *,
    title: str,
    chunking: ChunkingConfig,
    header: Callable[[Group], str] | None = None,
) -> list[Chunk]:
    """Chunks for the groups: a context header on each, parts numbered per locator.

    ``header`` overrides the default context line (an email puts its headers there).
    """
    chunks: list[Chunk] = []
    parts: dict[Locator, int] = {}
    for group in groups:
        locator: Locator = Page(group.page) if group.page is not None else Section(group.path)
        head = header(group) if header else context_line(title, group.path, chunking.max_chars // 4)
        prefix = f"{head}\n\n" if head else ""
        for body in pack_blocks(group.texts, chunking, reserved=len(prefix)):
            part = parts.get(locator, 0)
            parts[locator] = part + 1
            chunks.append(Chunk(source, Modality.TEXT, locator, prefix + body, part=part, title=title))
    return chunks


# ---------------------------------------------------------------------------------------------
# Reading bytes as text


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")  # ESC is common in logs (colour codes)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def decode_text(data: bytes, path: Path, *, html_charset: bool = False) -> str:
    """Decode a text file: a BOM wins, then UTF-8, then (HTML) the declared charset, then cp1252.

    Raises ``IngestError`` for content that is not text at all. Line ends become "\\n".
    """
    text: str | None = None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text = data.decode(codec, errors="replace")
            break
    if text is None:
        text = _decode_without_bom(data, html_charset)
    if text is None or len(_CONTROL.findall(text[:65536])) > len(text[:65536]) * 0.01:
        raise IngestError(path, "binary content, not text (the file is mislabelled or damaged)")
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def _decode_without_bom(data: bytes, html_charset: bool) -> str | None:
    head = data[:4096]
    if b"\x00" in head:
        # UTF-16 without a BOM has a NUL in every other byte of ASCII text; anything else is binary.
        odd, even = head[1::2].count(0), head[0::2].count(0)
        if odd > len(head) * 0.4:
            return data.decode("utf-16-le", errors="replace")
        if even > len(head) * 0.4:
            return data.decode("utf-16-be", errors="replace")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(head) if html_charset else None
    if declared is not None:
        try:
            return data.decode(declared.group(1).decode("ascii"), errors="replace")
        except LookupError:
            pass
    return data.decode("cp1252", errors="replace")


def read_nonempty(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(path, f"cannot read the file ({e.strerror or e})") from e
    if not data.strip():
        raise IngestError(path, "no text found (empty file)" if data else "no text found (empty file, 0 bytes)")
    return data


def library_error(path: Path, what: str, error: Exception) -> IngestError:
    detail = _SPACES.sub(" ", str(error)).strip()[:200]
    return IngestError(path, f"{what} ({type(error).__name__}: {detail})" if detail else f"{what}")


# ---------------------------------------------------------------------------------------------
# Ingestors


@dataclass(frozen=True, slots=True)
class DocxIngestor:
    """Word documents (.docx): sections from heading styles, pages where Word recorded them."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        read_nonempty(path)
        core_title = _check_docx(path)
        try:
            blocks = ua.partition_docx(str(path))
        except Exception as e:  # any failure of the library on this file means a damaged file
            raise library_error(path, "damaged DOCX, cannot be read", e) from e
        blocks = [*_missed_paragraphs(path, blocks), *blocks]
        paged = any(block.page is not None and block.page > 1 for block in blocks)
        title = core_title or _first_heading(blocks)
        yield from _finish(path, source, blocks, title, self.chunking, paged=paged)


@dataclass(frozen=True, slots=True)
class HtmlIngestor:
    """Web pages (.html): sections from <h1>..<h6>; the title from <title>."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        text = decode_text(read_nonempty(path), path, html_charset=True)
        flat = read_flat(text)
        if flat.depth > TOO_DEEP:  # a tree parser would lose the text (or the stack): keep the flat reading
            if not flat.blocks:
                raise IngestError(path, f"no text found (elements nested {flat.depth} levels deep)")
            blocks = flat.blocks
        else:
            try:
                blocks = ua.partition_html(text)
            except Exception as e:  # any failure of the library on this file means unusable markup
                raise library_error(path, "HTML that cannot be parsed", e) from e
        title = html_title(text) or _first_heading(blocks)
        yield from _finish(path, source, blocks, title, self.chunking, paged=False)


@dataclass(frozen=True, slots=True)
class MarkdownIngestor:
    """Markdown (.md): sections from # headings; the title from the first top-level heading."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        text = decode_text(read_nonempty(path), path)
        try:
            blocks = ua.partition_md(text)
        except Exception as e:  # any failure of the library on this file means unusable markup
            raise library_error(path, "Markdown that cannot be parsed", e) from e
        yield from _finish(path, source, blocks, _first_heading(blocks), self.chunking, paged=False)


@dataclass(frozen=True, slots=True)
class TextIngestor:
    """Plain text (.txt, .log, .rst): paragraphs, under headings when a line clearly is one."""

    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        text = decode_text(read_nonempty(path), path)
        try:
            blocks = ua.partition_text(text)
        except Exception as e:  # any failure of the library on this file means unusable text
            raise library_error(path, "text that cannot be parsed", e) from e
        yield from _finish(path, source, blocks, "", self.chunking, paged=False, is_heading=plain_text_heading)


def plain_text_heading(block: ua.Block) -> bool:
    """unstructured guesses plain-text titles from short lines; keep only ones that read as headings:
    short, with a letter, not ending like a sentence or a salutation."""
    text = block.text.strip()
    return (
        0 < len(text) <= 80 and len(text.split()) <= 10 and any(c.isalpha() for c in text) and text[-1] not in ".,;:!?"
    )


def _finish(
    path: Path,
    source: str,
    blocks: Sequence[ua.Block],
    title: str,
    chunking: ChunkingConfig,
    *,
    paged: bool,
    is_heading: Callable[[ua.Block], bool] = lambda block: True,
) -> Iterator[Chunk]:
    groups = group_blocks(blocks, paged=paged, is_heading=is_heading, rows_per_block=chunking.target_chars // 2)
    chunks = build_chunks(source, groups, title=title, chunking=chunking)
    if not chunks:
        raise IngestError(path, EMPTY)
    yield from chunks


def _first_heading(blocks: Sequence[ua.Block]) -> str:
    top = [block for block in blocks if block.kind is ua.BlockKind.HEADING]
    if not top:
        return ""
    shallowest = min(block.depth for block in top)
    return clean_heading(next(block.text for block in top if block.depth == shallowest))


_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def html_title(text: str) -> str:
    found = _TITLE.search(text[:200_000])
    return clean_heading(html.unescape(found.group(1))) if found else ""


_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MAX_DOCUMENT_XML = 64 * 1024 * 1024


def _missed_paragraphs(path: Path, blocks: Sequence[ua.Block]) -> list[ua.Block]:
    """Paragraphs the parser left out: text in content controls and text boxes (a résumé template's
    name and phone number) that unstructured skips. Read from word/document.xml in document order and
    kept when they are not in the parsed text; none when the parser already has nearly everything."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.getinfo("word/document.xml").file_size > MAX_DOCUMENT_XML:
                return []
            root = ElementTree.fromstring(archive.read("word/document.xml"))
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError, OSError):
        return []
    paragraphs: list[str] = []
    for p in root.iter(f"{_W}p"):
        text = _SPACES.sub(" ", "".join(_own_text(p))).strip()
        if text and (not paragraphs or paragraphs[-1] != text):
            paragraphs.append(text)
    parsed = _SPACES.sub(" ", " ".join([b.text for b in blocks] + [r for b in blocks for r in b.rows])).lower()
    seen: set[str] = set()
    missed = []
    for text in paragraphs:
        if text.lower() not in parsed and text not in seen:
            seen.add(text)
            missed.append(text)
    raw_words = sum(len(p.split()) for p in paragraphs)
    missed_words = sum(len(p.split()) for p in missed)
    if missed_words < max(3, 0.05 * raw_words):  # the parser has it all (wording aside)
        return []
    return [ua.Block(ua.BlockKind.BODY, "\n".join(missed), page=1)]


def _own_text(paragraph: ElementTree.Element) -> Iterator[str]:
    """The text runs of a paragraph, without those of paragraphs nested in it (a text box's)."""
    for child in paragraph:
        if child.tag == f"{_W}p":
            continue
        if child.tag == f"{_W}t":
            yield child.text or ""
        else:
            yield from _own_text(child)


def _check_docx(path: Path) -> str:
    """Reject what is not a readable DOCX with a precise reason; return the title it declares."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    if head.startswith(_OLE_MAGIC):
        if "EncryptedPackage".encode("utf-16-le") in head:
            raise IngestError(path, "password-protected Word document (remove the password to index it)")
        raise IngestError(path, "legacy Word format (.doc), not DOCX; save it as .docx to index it")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "word/document.xml" not in names:
                raise IngestError(path, "damaged DOCX: the main part word/document.xml is missing")
            if "docProps/core.xml" not in names or archive.getinfo("docProps/core.xml").file_size > 1_000_000:
                return ""
            core = archive.read("docProps/core.xml")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as e:
        raise IngestError(path, f"damaged DOCX: not a readable ZIP container ({e})") from e
    try:
        found = ElementTree.fromstring(core).find(_DC_TITLE)
    except ElementTree.ParseError:
        return ""
    return clean_heading(found.text) if found is not None and found.text and found.text.strip() else ""
