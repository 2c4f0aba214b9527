"""Decide what a file is from its content first and its name second.

A drive holds files whose extension lies (a binary blob called ``report.pdf``, a PDF called
``scan.bin``). We read the first bytes: a known signature (``filetypes.FILE_TYPES``) wins over the
extension, and a file whose extension claims a binary format that its content does not match is
reported, not parsed.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.filetypes import FILE_TYPES, FileKind, Sniffed, by_extension, demuxer_for, text_kinds
from mmrag.ingest.ziplimits import MemberTooLarge, ZipLimits, read_member, zip_problem

__all__ = ["SNIFF_BYTES", "SYSTEM_NAMES", "Detection", "FileKind", "detect", "is_hidden_or_system", "media_format"]

SNIFF_BYTES = 8192

# Names a drive is full of that are never documents: OS metadata and Office lock files.
SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store", "icon\r"})


@dataclass(frozen=True, slots=True)
class Detection:
    """What a file is (a ``FileType`` kind), or why it cannot be read (``problem`` set, ``kind`` unknown)."""

    kind: str
    problem: str = ""


def is_hidden_or_system(name: str) -> bool:
    """Dotfiles, Office lock files (``~$report.docx``) and OS metadata files."""
    return name.startswith((".", "~$")) or name.lower() in SYSTEM_NAMES


_MIMETYPE_BYTES = 4096


class _Refused(Exception):
    """A ZIP container over the limits (``ziplimits``)."""


def detect(path: Path, zip_limits: ZipLimits | None = None) -> Detection:
    """Detect a file's kind from its first bytes, falling back to its extension for text formats.

    A ZIP container that would inflate past ``zip_limits`` is reported (a ZIP bomb), whatever it holds.
    """
    claimed = by_extension(path.suffix)
    by_name = claimed.kind if claimed is not None else FileKind.UNKNOWN.value
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head:
        return Detection(FileKind.UNKNOWN, "empty file (0 bytes)")
    problem = _known_problem(head)
    if problem:
        return Detection(FileKind.UNKNOWN, problem)
    sniffed = Sniffed(head, path.suffix.lower())
    if head.startswith(b"PK\x03\x04"):
        try:
            sniffed = _with_zip(sniffed, path, zip_limits or ZipLimits())
        except _Refused as e:
            return Detection(FileKind.UNKNOWN, str(e))
        except (zipfile.BadZipFile, OSError, KeyError, MemberTooLarge) as e:
            return Detection(FileKind.UNKNOWN, f"damaged ZIP container ({e})")
    for file_type in FILE_TYPES:
        if any(sig.matches(sniffed) for sig in file_type.signatures):
            return Detection(file_type.kind)
    if sniffed.is_zip:
        return Detection(FileKind.UNKNOWN, "a ZIP archive that is not an Office document (archives are not indexed)")
    if _looks_like_text(head):
        return Detection(_text_kind(head, by_name))
    if by_name in text_kinds() or claimed is None:
        what = "text" if claimed is not None else "a known format"
        return Detection(FileKind.UNKNOWN, f"binary content that is not {what}")
    return Detection(
        FileKind.UNKNOWN,
        f"named {path.suffix.lower()} but its content is not a {by_name.upper()} file "
        "(unrecognised binary data; the file is mislabelled or damaged)",
    )


def media_format(path: Path) -> str | None:
    """The PyAV format to open a recording with, from its content (None: unknown, let FFmpeg probe)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return None
    return demuxer_for(head, path.suffix)


def _known_problem(head: bytes) -> str:
    """Formats recognised only to say why they are not read."""
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        if b"E\x00n\x00c\x00r\x00y\x00p\x00t\x00e\x00d\x00P\x00a\x00c\x00k\x00a\x00g\x00e" in head:
            return "password-protected Office file (remove the password to index it)"
        return "legacy Office format (.doc/.xls/.ppt); save it as .docx/.xlsx/.pptx"
    return ""


def _with_zip(sniffed: Sniffed, path: Path, limits: ZipLimits) -> Sniffed:
    with zipfile.ZipFile(path) as archive:
        problem = zip_problem(archive, limits)
        if problem:
            raise _Refused(problem)
        names = frozenset(archive.namelist())
        raw = read_member(archive, "mimetype", _MIMETYPE_BYTES) if "mimetype" in names else b""
        mimetype = raw.decode("ascii", "replace")
    return Sniffed(sniffed.head, sniffed.suffix, True, names, mimetype)


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


def _text_kind(head: bytes, by_name: str) -> str:
    if by_name in text_kinds():
        return by_name
    start = head.lstrip()[:200].lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return FileKind.HTML
    first = head.split(b"\n", 1)[0]
    if first.split(b":", 1)[0].lower() in (b"from", b"received", b"return-path", b"mime-version", b"message-id"):
        return FileKind.EML
    return FileKind.TXT
