"""Decide what a file is from its content first and its name second.

A drive holds files whose extension lies (a binary blob called ``report.pdf``, a PDF called
``scan.bin``). We read the first bytes: a known signature wins over the extension, and a file whose
extension claims a binary format that its content does not match is reported, not parsed.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

SNIFF_BYTES = 8192


class FileKind(StrEnum):
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


EXTENSIONS: dict[str, FileKind] = {
    ".pdf": FileKind.PDF,
    ".docx": FileKind.DOCX,
    ".pptx": FileKind.PPTX,
    ".xlsx": FileKind.XLSX,
    ".xlsm": FileKind.XLSX,
    ".odp": FileKind.ODP,
    ".html": FileKind.HTML,
    ".htm": FileKind.HTML,
    ".md": FileKind.MD,
    ".markdown": FileKind.MD,
    ".txt": FileKind.TXT,
    ".text": FileKind.TXT,
    ".log": FileKind.TXT,
    ".rst": FileKind.TXT,
    ".eml": FileKind.EML,
    ".csv": FileKind.CSV,
    ".tsv": FileKind.TSV,
    ".jpg": FileKind.IMAGE,
    ".jpeg": FileKind.IMAGE,
    ".png": FileKind.IMAGE,
    ".gif": FileKind.IMAGE,
    ".tif": FileKind.IMAGE,
    ".tiff": FileKind.IMAGE,
    ".webp": FileKind.IMAGE,
    ".bmp": FileKind.IMAGE,
    ".wav": FileKind.AUDIO,
    ".mp3": FileKind.AUDIO,
    ".m4a": FileKind.AUDIO,
    ".flac": FileKind.AUDIO,
    ".ogg": FileKind.AUDIO,
    ".oga": FileKind.AUDIO,
    ".mp4": FileKind.VIDEO,
    ".m4v": FileKind.VIDEO,
    ".mov": FileKind.VIDEO,
    ".mkv": FileKind.VIDEO,
    ".avi": FileKind.VIDEO,
    ".webm": FileKind.VIDEO,
}

TEXT_KINDS = frozenset({FileKind.HTML, FileKind.MD, FileKind.TXT, FileKind.EML, FileKind.CSV, FileKind.TSV})

# Names a drive is full of that are never documents: OS metadata and Office lock files.
SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store", "icon\r"})


@dataclass(frozen=True, slots=True)
class Detection:
    """What a file is, or why it cannot be read (``problem`` set, ``kind`` UNKNOWN)."""

    kind: FileKind
    problem: str = ""


def is_hidden_or_system(name: str) -> bool:
    """Dotfiles, Office lock files (``~$report.docx``) and OS metadata files."""
    return name.startswith((".", "~$")) or name.lower() in SYSTEM_NAMES


def detect(path: Path) -> Detection:
    """Detect a file's kind from its first bytes, falling back to its extension for text formats."""
    by_name = EXTENSIONS.get(path.suffix.lower(), FileKind.UNKNOWN)
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        return Detection(FileKind.UNKNOWN, "empty file (0 bytes)")
    by_content = _sniff_binary(head, path)
    if by_content is not None:
        return by_content
    if _looks_like_text(head):
        return Detection(_text_kind(head, by_name))
    if by_name in TEXT_KINDS or by_name == FileKind.UNKNOWN:
        what = "text" if by_name in TEXT_KINDS else "a known format"
        return Detection(FileKind.UNKNOWN, f"binary content that is not {what}")
    return Detection(
        FileKind.UNKNOWN,
        f"named {path.suffix.lower()} but its content is not a {by_name.value.upper()} file "
        "(unrecognised binary data; the file is mislabelled or damaged)",
    )


def _sniff_binary(head: bytes, path: Path) -> Detection | None:
    if head.startswith(b"%PDF-"):
        return Detection(FileKind.PDF)
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(path)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        if b"E\x00n\x00c\x00r\x00y\x00p\x00t\x00e\x00d\x00P\x00a\x00c\x00k\x00a\x00g\x00e" in head:
            return Detection(FileKind.UNKNOWN, "password-protected Office file (remove the password to index it)")
        return Detection(FileKind.UNKNOWN, "legacy Office format (.doc/.xls/.ppt); save it as .docx/.xlsx/.pptx")
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n") or head[:6] in (b"GIF87a", b"GIF89a"):
        return Detection(FileKind.IMAGE)
    if head[:4] in (b"II*\x00", b"MM\x00*") or (head[:2] == b"BM" and path.suffix.lower() == ".bmp"):
        return Detection(FileKind.IMAGE)
    if head[:4] == b"RIFF":
        form = head[8:12]
        if form == b"WEBP":
            return Detection(FileKind.IMAGE)
        if form == b"WAVE":
            return Detection(FileKind.AUDIO)
        if form == b"AVI ":
            return Detection(FileKind.VIDEO)
    if head[:4] in (b"fLaC", b"OggS") or head[:3] == b"ID3" or (head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        if head[:4] == b"OggS" and path.suffix.lower() in (".ogv", ".webm"):
            return Detection(FileKind.VIDEO)
        return Detection(FileKind.AUDIO)
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return Detection(FileKind.AUDIO if brand in (b"M4A ", b"M4B ") else FileKind.VIDEO)
    if head[:4] == b"\x1aE\xdf\xa3":
        return Detection(FileKind.VIDEO)
    return None


def _sniff_zip(path: Path) -> Detection:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype").decode("ascii", "replace") if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, KeyError) as e:
        return Detection(FileKind.UNKNOWN, f"damaged ZIP container ({e})")
    if "word/document.xml" in names:
        return Detection(FileKind.DOCX)
    if "ppt/presentation.xml" in names:
        return Detection(FileKind.PPTX)
    if "xl/workbook.xml" in names:
        return Detection(FileKind.XLSX)
    if "presentation" in mimetype:
        return Detection(FileKind.ODP)
    return Detection(FileKind.UNKNOWN, "a ZIP archive that is not an Office document (archives are not indexed)")


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return head.startswith((b"\xff\xfe", b"\xfe\xff"))  # UTF-16 with BOM
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 4:  # a multibyte character cut by the sniff window
            return True
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    return controls / len(head) < 0.01


def _text_kind(head: bytes, by_name: FileKind) -> FileKind:
    if by_name in TEXT_KINDS:
        return by_name
    start = head.lstrip()[:200].lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return FileKind.HTML
    first = head.split(b"\n", 1)[0]
    if first.split(b":", 1)[0].lower() in (b"from", b"received", b"return-path", b"mime-version", b"message-id"):
        return FileKind.EML
    return FileKind.TXT
