"""Serving ingested files and evidence previews safely: only files the manifest holds, only inside their root.

A request names a file by ``root`` (an ingested folder, as the manifest records it) and ``source`` (its
path relative to that root). It is served only when the manifest holds that exact pair with status ok,
the source is a plain relative path (no ``..``, not absolute, no backslashes or NUL), and the real path,
symlinks resolved, is still inside the real root and still the file that was indexed (same size and
modification time, or else the same content hash): a link swapped in for an indexed file is not followed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mmrag.ingest import filetypes
from mmrag.ingest.chunk import Rows, Sheet
from mmrag.ingest.errors import MmragError
from mmrag.ingest.permissions import visible
from mmrag.pipeline.app import App
from mmrag.retrieval.manifest import OK, FileRecord
from mmrag.retrieval.store import Hit, SearchFilter

READ_BLOCK = 256 * 1024
PREVIEW_SCALE = 1.5  # 108 dpi: a PDF page readable on a laptop screen
MAX_PREVIEW_ROWS = 200
THUMBNAIL_PX = 800
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"})
SLIDE_NOTE = (
    "no picture of this slide: LibreOffice renders them and it is not installed"
    " (apt-get install libreoffice-impress-nogui); showing the slide's text"
)
SLIDE_FAILED_NOTE = "LibreOffice could not render this deck; showing the slide's text"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Refused(MmragError):
    """A file request that is not served; ``status`` is the HTTP status, the message the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _plain_relative(source: str) -> PurePosixPath:
    if not source:
        raise Refused(400, "source is required")
    if "\x00" in source or "\\" in source:
        raise Refused(403, "source may not contain NUL or backslash characters")
    path = PurePosixPath(source)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", source):
        raise Refused(403, "source must be a path relative to its root, not an absolute path")
    if any(part in ("..", ".") for part in source.split("/")):
        raise Refused(403, "source may not contain '..' or '.' segments")
    return path


NOT_INGESTED = "not an ingested file: only files indexed from an ingested root are served"


def served_path(index: App, root: str, source: str, principals: frozenset[str] | None = None) -> Path:
    """The real path of an ingested file, or ``Refused`` with why it is not served.

    ``principals``: with document permissions on, whoever asks; a file they may not read is refused
    exactly as a file that was never ingested is (the same 404 and message: its existence is not told).
    """
    relative = _plain_relative(source)
    if not root or not Path(root).is_absolute():
        raise Refused(400, "root must be the absolute path of an ingested folder")
    record = index.manifest.get(root, source)
    if record is None or record.status != OK:
        raise Refused(404, NOT_INGESTED)
    if principals is not None and (record.principals is None or not visible(record.principals, principals)):
        raise Refused(404, NOT_INGESTED)
    if (
        principals is not None
        and index.cfg.store.role == "replica"
        and not _live_readable(index, root, source, principals)
    ):
        raise Refused(404, NOT_INGESTED)  # a reader removed since the replica's snapshot: the live store knows
    real_root = Path(root).resolve()
    try:
        real = (real_root / relative).resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise Refused(404, f"the file is no longer on disk ({e})") from e
    if not real.is_relative_to(real_root):
        raise Refused(403, "the file resolves outside its ingested root (a symlink leaving the root)")
    if not real.is_file():
        raise Refused(404, "not a regular file")
    _check_identity(real, record)
    return real


def _live_readable(index: App, root: str, source: str, principals: frozenset[str]) -> bool:
    """Whether the vector store, live, lets one of ``principals`` read a chunk of the file (an API replica's
    manifest is a snapshot that may still name a reader removed since)."""
    return bool(index.store.present(index.store.ids(root, source), SearchFilter(principals=principals)))


@functools.lru_cache(maxsize=256)
def _content_hash(path: str, _device: int, _inode: int, _size: int, _mtime_ns: int) -> str:
    """A file's SHA-256, remembered per (path, inode, size, mtime): a player's Range requests hash once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _check_identity(real: Path, record: FileRecord) -> None:
    """Refuse a file that is not the one indexed: a symlink swapped in for it, or content changed since.

    Size and modification time are compared first; when the time differs the content hash decides (a
    copy or a ``touch`` keeps the content), so a swap to another file of the same size is caught too.
    """
    st = real.stat()
    again = f"re-ingest its folder to serve the new file (mmrag ingest {record.root})"
    if st.st_size != record.size:
        raise Refused(
            409,
            f"{record.source} is not the file that was indexed ({st.st_size} bytes now, {record.size} when "
            f"indexed; it was changed or replaced by a link to another file): {again}",
        )
    if st.st_mtime_ns == record.mtime_ns:
        return
    if _content_hash(str(real), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != record.sha256:
        raise Refused(
            409,
            f"{record.source} is not the file that was indexed (its content differs; it was changed or "
            f"replaced by a link to another file): {again}",
        )


@dataclass(frozen=True, slots=True)
class Served:
    """An ingested file as it is served: its real path, its type and its content hash (keys derived files)."""

    path: Path
    kind: str
    version: str

    @property
    def file_type(self) -> filetypes.FileType | None:
        return filetypes.file_type(self.kind)


def served_file(index: App, root: str, source: str, principals: frozenset[str] | None = None) -> Served:
    """``served_path`` with the file's type and content hash as the manifest records them."""
    path = served_path(index, root, source, principals)
    record = index.manifest.get(root, source)
    return Served(path, record.kind if record is not None else "", record.sha256 if record is not None else "")


def media_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class BadRange(Exception):
    """A Range header this server cannot satisfy (malformed, several ranges, or outside the file)."""


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> ByteRange:
    """One ``bytes=`` range of a file of ``size`` bytes: ``a-b``, ``a-`` or the suffix ``-n``."""
    match = _RANGE.match(header.strip())
    if match is None:
        raise BadRange(f"unsupported Range {header!r}: give one range like bytes=0-1023, bytes=1024- or bytes=-500")
    first, last = match.groups()
    if not first and not last:
        raise BadRange("empty range")
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise BadRange("empty suffix range")
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size or (last and int(last) < start):
        raise BadRange(f"range {header!r} is outside the file ({size} bytes)")
    return ByteRange(start, end)


def read_bytes(path: Path, span: ByteRange) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(span.start)
        left = span.length
        while left > 0:
            block = handle.read(min(READ_BLOCK, left))
            if not block:
                return
            left -= len(block)
            yield block


def pdf_page_png(path: Path, page: int, scale: float = PREVIEW_SCALE) -> bytes:
    """Page ``page`` (1-based) of a PDF as PNG bytes."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        if not 1 <= page <= len(pdf):
            raise Refused(404, f"the PDF has {len(pdf)} pages; page {page} does not exist")
        image = pdf[page - 1].render(scale=scale).to_pil()
    finally:
        pdf.close()
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def image_thumbnail_png(path: Path, max_px: int = THUMBNAIL_PX) -> bytes:
    """A picture scaled down to fit ``max_px`` as PNG bytes."""
    from PIL import Image

    with Image.open(path) as img:
        img.thumbnail((max_px, max_px))
        out = io.BytesIO()
        img.convert("RGB" if img.mode not in ("RGB", "RGBA", "L") else img.mode).save(out, format="PNG")
    return out.getvalue()


def media_image(index: App, name: str, of_file: tuple[str, str] | None = None) -> Path:
    """A stored thumbnail or video frame under the index's media folder (``name`` is relative to it).

    ``of_file`` (root, source): the picture must be one of that file's (document permissions: the caller
    checked that file may be read, so a picture of another file is not reached through it).
    """
    relative = _plain_relative(name)
    media = index.media_dir.resolve()
    try:
        real = (media / relative).resolve(strict=True)
    except (OSError, RuntimeError) as e:
        raise Refused(404, "no such stored image") from e
    if not real.is_relative_to(media) or real.suffix.lower() not in IMAGE_SUFFIXES or not real.is_file():
        raise Refused(403, "only stored thumbnails and frames inside the index's media folder are served")
    if of_file is not None and real not in {p.resolve() for p in index.keyword.images(*of_file)}:
        raise Refused(404, "no such stored image")
    return real


def media_name(index: App, hit: Hit) -> str:
    """The chunk's stored image relative to the media folder, or "" when it has none there."""
    image = hit.chunk.image
    if image is None:
        return ""
    media = index.media_dir.resolve()
    try:
        return Path(image).resolve().relative_to(media).as_posix()
    except ValueError:
        return ""


def table_rows(index: App, root: str, source: str, first: int, last: int, sheet: str | None) -> dict[str, object]:
    """The data rows ``first``..``last`` of the file's tables (of ``sheet`` when given), as JSON."""
    if last < first or last - first >= MAX_PREVIEW_ROWS:
        raise Refused(400, f"rows must be FIRST-LAST with at most {MAX_PREVIEW_ROWS} rows")
    tables = []
    for info in index.tables.list_tables({source}, root=root):
        if sheet is not None and isinstance(info.locator, (Sheet, Rows)) and info.locator.sheet not in (None, sheet):
            continue
        columns = ", ".join(["_row", *(_quote(c) for c in info.columns)])
        result = index.tables.run(
            f"SELECT {columns} FROM {_quote(info.sql_name)} WHERE _row BETWEEN ? AND ? ORDER BY _row",
            (first, last),
            allowed_sources={source},
        )
        if result.rows:
            tables.append(
                {
                    "name": info.name,
                    "headers": ["row", *info.headers],
                    "rows": [["" if v is None else v for v in row] for row in result.rows],
                }
            )
    return {"kind": "rows", "source": source, "rows": [first, last], "sheet": sheet, "tables": tables}


def slide_text(served: Served, slide: int, *, rendered: bool = False) -> dict[str, object]:
    """A slide's text (title, body, tables, charts, notes, as indexed) as JSON, shown when there is no picture of it.

    The deck is read again by its file type's ``slide_reader``. ``rendered``: LibreOffice was there and
    tried, so the note says rendering failed, not that it is missing.
    """
    from mmrag.ingest.errors import IngestError

    found = served.file_type
    if found is None or found.slide_reader is None:
        raise Refused(400, f"{served.kind or 'these'} files have no slides")
    try:
        _, slides = found.slide_reader().read(served.path)
    except IngestError as e:
        raise Refused(422, f"the deck cannot be read: {e.reason}") from e
    shown = next((s for s in slides if s.number == slide), None)
    if shown is None:
        raise Refused(404, f"the deck has {len(slides)} slides; slide {slide} does not exist")
    note = SLIDE_FAILED_NOTE if rendered else SLIDE_NOTE
    return {"kind": "slide", "slide": slide, "text": "\n".join(shown.text_blocks()), "image": None, "note": note}
