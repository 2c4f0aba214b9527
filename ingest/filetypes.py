"""Every file type mmrag reads, in one table: how it is recognised, what reads it, how it is shown.

Each ``FileType`` says which extensions it has, which content signatures prove it (``detect`` trusts
content over names), which ingestor turns it into chunks, how the web preview shows a hit in it and
which benchmark group it is timed in. Adding a format is one entry in ``FILE_TYPES`` (or a
``register`` call) plus its ingestor module in ``ingest/formats/``; detection, ingest, preview and
the benchmark then all know it. Ingestor modules are imported only when a file of their type is read.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from mmrag.ingest.base import Ingestor, IngestSettings


class FileKind(StrEnum):
    """The built-in kinds (``FileType.kind`` is a plain string, so a registered type may add its own)."""

    PDF = "pdf"
    DOCX = "docx"
    PPTX = "pptx"
    XLSX = "xlsx"
    ODP = "odp"
    HTML = "html"
    MD = "md"
    TXT = "txt"
    EML = "eml"
    CSV = "csv"
    TSV = "tsv"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    UNKNOWN = "unknown"


class Preview(StrEnum):
    """How the web preview shows a hit in a file of this type, beyond what its locator says."""

    PAGES = "pages"  # a page rendered as a picture (PDF)
    SLIDES = "slides"  # the slide's rendered picture, or its text read again by ``slide_reader``
    PICTURE = "picture"  # the file itself, scaled down
    LOCATOR = "locator"  # only the locator's own preview: table rows, a time span in a player


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What ``detect`` read of a file: its first bytes, its lower-case suffix and, for ZIP containers,
    the member names and the ``mimetype`` member (ODF)."""

    head: bytes
    suffix: str
    is_zip: bool = False
    zip_names: frozenset[str] = frozenset()
    zip_mimetype: str = ""


class Signature(Protocol):
    def matches(self, file: Sniffed) -> bool: ...


@dataclass(frozen=True, slots=True)
class Magic:
    """Bytes at an offset; ``suffixes`` limits a weak signature (BMP's ``BM``) to files named like the type.

    ``demuxer`` (on this and the other media signatures) is the FFmpeg/PyAV format that reads what the
    signature proves, so a recording is opened as what it is whatever its name (``demuxer_for``).
    """

    prefix: bytes
    offset: int = 0
    suffixes: tuple[str, ...] = ()
    demuxer: str = ""

    def matches(self, file: Sniffed) -> bool:
        if self.suffixes and file.suffix not in self.suffixes:
            return False
        return file.head[self.offset : self.offset + len(self.prefix)] == self.prefix


@dataclass(frozen=True, slots=True)
class Container:
    """A RIFF/IFF form (``RIFF....WAVE``, ``FORM....AIFF``) or an ISO-BMFF ``ftyp`` brand (MP4, M4A)."""

    chunk: bytes  # b"RIFF", b"FORM" or b"ftyp"
    forms: tuple[bytes, ...] = ()  # forms or brands that match; () = any
    not_forms: tuple[bytes, ...] = ()
    demuxer: str = ""

    def matches(self, file: Sniffed) -> bool:
        if self.chunk == b"ftyp":
            if file.head[4:8] != b"ftyp":
                return False
        elif file.head[:4] != self.chunk:
            return False
        form = file.head[8:12]
        return (not self.forms or form in self.forms) and form not in self.not_forms


@dataclass(frozen=True, slots=True)
class MpegAudio:
    """An MPEG audio frame sync (an MP3 without an ID3 tag)."""

    demuxer: str = "mp3"

    def matches(self, file: Sniffed) -> bool:
        return len(file.head) > 1 and file.head[0] == 0xFF and file.head[1] & 0xE0 == 0xE0


@dataclass(frozen=True, slots=True)
class ZipMember:
    """A ZIP container holding this member (an Office Open XML part), or whose ODF mimetype contains ``mimetype``."""

    name: str = ""
    mimetype: str = ""

    def matches(self, file: Sniffed) -> bool:
        if self.name:
            return self.name in file.zip_names
        return bool(self.mimetype) and self.mimetype in file.zip_mimetype


class SlideText(Protocol):
    @property
    def number(self) -> int: ...

    def text_blocks(self) -> list[str]: ...


class SlideDeck(Protocol):
    """What the slide preview needs: the deck's title and slides, read as the ingestor read them."""

    def read(self, path: Path) -> tuple[str, Sequence[SlideText]]: ...


@dataclass(frozen=True, slots=True)
class FileType:
    """One kind of file. ``ingestor`` builds its ingestor from the run's settings (``None``: recognised
    but not indexed yet); ``text`` formats are recognised by extension when their content is text;
    ``family`` is the benchmark group it is timed in (pdf, docs, slides, tables, images, audio, video)."""

    kind: str
    extensions: tuple[str, ...]
    ingestor: Callable[[IngestSettings], Ingestor] | None
    family: str
    signatures: tuple[Signature, ...] = ()
    text: bool = False
    preview: Preview = Preview.LOCATOR
    slide_reader: Callable[[], SlideDeck] | None = None


def _lazy(module: str, name: str, *, chunking_only: bool = False) -> Callable[[IngestSettings], Ingestor]:
    """A factory that imports the ingestor's module on first use (detection imports no parser)."""

    def build(settings: IngestSettings) -> Ingestor:
        cls = getattr(importlib.import_module(f"mmrag.ingest.formats.{module}"), name)
        return cls(settings.chunking) if chunking_only else cls(settings)  # type: ignore[no-any-return]

    return build


def _deck(module: str, name: str) -> Callable[[], SlideDeck]:
    def build() -> SlideDeck:
        return getattr(importlib.import_module(f"mmrag.ingest.formats.{module}"), name)()  # type: ignore[no-any-return]

    return build


_VIDEO_BRANDS_AUDIO = (b"M4A ", b"M4B ")

FILE_TYPES: list[FileType] = [
    FileType(
        FileKind.PDF, (".pdf",), _lazy("pdf", "PdfIngestor"), "pdf", (Magic(b"%PDF-"),),
        preview=Preview.PAGES,
    ),
    FileType(
        FileKind.DOCX, (".docx",), _lazy("documents", "DocxIngestor", chunking_only=True), "docs",
        (ZipMember("word/document.xml"),),
    ),
    FileType(
        FileKind.PPTX, (".pptx",), _lazy("slides", "SlidesIngestor"), "slides", (ZipMember("ppt/presentation.xml"),),
        preview=Preview.SLIDES, slide_reader=_deck("slides", "SlidesIngestor"),
    ),
    FileType(
        FileKind.XLSX, (".xlsx", ".xlsm"), _lazy("tables", "TablesIngestor"), "tables", (ZipMember("xl/workbook.xml"),)
    ),
    FileType(
        FileKind.ODP, (".odp",), _lazy("odp", "OdpIngestor"), "slides", (ZipMember(mimetype="presentation"),),
        preview=Preview.SLIDES, slide_reader=_deck("odp", "OdpIngestor"),
    ),
    FileType(
        FileKind.IMAGE, (".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".webp", ".bmp"),
        _lazy("images", "ImagesIngestor"), "images",
        (
            Magic(b"\xff\xd8\xff"), Magic(b"\x89PNG\r\n\x1a\n"), Magic(b"GIF87a"), Magic(b"GIF89a"),
            Magic(b"II*\x00"), Magic(b"MM\x00*"), Magic(b"BM", suffixes=(".bmp",)), Container(b"RIFF", (b"WEBP",)),
        ),
        preview=Preview.PICTURE,
    ),
    FileType(
        FileKind.VIDEO, (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".ogv"), _lazy("video", "VideoIngestor"),
        "video",
        (
            Container(b"RIFF", (b"AVI ",), demuxer="avi"),
            Container(b"ftyp", not_forms=_VIDEO_BRANDS_AUDIO, demuxer="mp4"),
            Magic(b"\x1aE\xdf\xa3", demuxer="matroska"), Magic(b"OggS", suffixes=(".ogv", ".webm"), demuxer="ogg"),
        ),
    ),
    FileType(
        FileKind.AUDIO, (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc"),
        _lazy("audio", "AudioIngestor"), "audio",
        (
            Container(b"RIFF", (b"WAVE",), demuxer="wav"), Container(b"FORM", (b"AIFF", b"AIFC"), demuxer="aiff"),
            Magic(b"fLaC", demuxer="flac"), Magic(b"OggS", demuxer="ogg"), Magic(b"ID3", demuxer="mp3"), MpegAudio(),
            Container(b"ftyp", _VIDEO_BRANDS_AUDIO, demuxer="mp4"),
        ),
    ),
    FileType(FileKind.HTML, (".html", ".htm"), _lazy("documents", "HtmlIngestor", chunking_only=True), "docs", text=True),
    FileType(
        FileKind.MD, (".md", ".markdown"), _lazy("documents", "MarkdownIngestor", chunking_only=True), "docs", text=True
    ),
    FileType(
        FileKind.TXT, (".txt", ".text", ".log", ".rst"), _lazy("documents", "TextIngestor", chunking_only=True), "docs",
        text=True,
    ),
    FileType(FileKind.EML, (".eml",), _lazy("mail", "EmailIngestor", chunking_only=True), "docs", text=True),
    FileType(FileKind.CSV, (".csv",), _lazy("tables", "TablesIngestor"), "tables", text=True),
    FileType(FileKind.TSV, (".tsv", ".tab"), _lazy("tables", "TablesIngestor"), "tables", text=True),
]  # fmt: skip
"""In detection order: the first type with a matching signature wins (video's ``.ogv``/``.webm`` Ogg before audio's Ogg)."""

_lock = threading.Lock()


def demuxer_for(head: bytes, suffix: str) -> str | None:
    """The PyAV format of a recording from its first bytes, or None (let FFmpeg probe).

    FFmpeg guesses from the name first: an MP3 called ``.jpg`` would be opened as a picture and have
    "no audio track". Detection already knows better, so the media ingestors pass this on.
    """
    sniffed = Sniffed(head, suffix.lower())
    for file_type in FILE_TYPES:
        for signature in file_type.signatures:
            if signature.matches(sniffed):
                return getattr(signature, "demuxer", "") or None
    return None


def register(file_type: FileType) -> None:
    """Add a file type (or replace the one of the same kind): detection, ingest, preview and bench use it."""
    with _lock:
        FILE_TYPES[:] = [t for t in FILE_TYPES if t.kind != file_type.kind] + [file_type]
        _cache.clear()


def file_type(kind: str) -> FileType | None:
    """The type called ``kind`` (as ``detect`` and the manifest name it), or None."""
    return next((t for t in FILE_TYPES if t.kind == kind), None)


def by_extension(suffix: str) -> FileType | None:
    """The type a file name's suffix (``.pdf``, any case) claims, or None."""
    suffix = suffix.lower()
    return next((t for t in FILE_TYPES if suffix in t.extensions), None)


def text_kinds() -> frozenset[str]:
    return frozenset(t.kind for t in FILE_TYPES if t.text)


_cache: dict[tuple[str, IngestSettings], Ingestor] = {}


def ingestor_for(kind: str, settings: IngestSettings) -> Ingestor | None:
    """The (shared) ingestor for ``kind``, or ``None`` when that kind is not indexed.

    Instances are cached per kind and settings, so everything they load lazily (models, engines) is
    shared across files; constructing one is cheap.
    """
    found = file_type(kind)
    if found is None or found.ingestor is None:
        return None
    with _lock:
        ingestor = _cache.get((kind, settings))
        if ingestor is None:
            ingestor = _cache[(kind, settings)] = found.ingestor(settings)
        return ingestor
