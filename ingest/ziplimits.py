"""Limits on what an Office file (a ZIP container: DOCX, XLSX, PPTX, ODP) may inflate to.

A few megabytes of ZIP can hold gigabytes of XML (a "ZIP bomb"): a 2 MB DOCX whose
``word/document.xml`` inflates to 2 GB, an XLSX whose shared strings drive a parser past 6 GB of
memory. ``zip_problem`` reads only the container's directory and refuses such a file before any
parser sees it: every part's declared size counts towards ``max_inflated_mb``, and a large part that
inflates far more than XML does (``max_ratio``) is refused too. ``detect`` applies it to every ZIP,
so each ZIP-based ingestor is covered in one place.

What is declared also bounds what is read: Python's ``zipfile`` (under python-docx, openpyxl and
python-pptx) stops inflating a part at its declared size and then fails its CRC check, so a part
that lies about its size ends as a damaged file, not as memory. ``read_member`` caps our own reads.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """``[limits] max_inflated_mb`` and ``max_zip_ratio``; parts under ``ratio_from_mb`` are never refused
    for their ratio (small parts cannot exhaust anything, and tiny repetitive XML compresses very well)."""

    max_inflated_mb: float = 1024.0
    max_ratio: float = 200.0
    ratio_from_mb: float = 10.0


class MemberTooLarge(Exception):
    """A part inflated past the cap ``read_member`` was given."""


def _mb(size: int) -> str:
    return f"{size / MB:.0f}"


def zip_problem(archive: zipfile.ZipFile, limits: ZipLimits) -> str:
    """Why this container is refused ("" when its parts stay within the limits)."""
    members = archive.infolist()
    if not members:
        return ""
    total = sum(m.file_size for m in members)
    biggest = max(members, key=lambda m: m.file_size)
    limit = limits.max_inflated_mb * MB
    if total > limit:
        what = f"{biggest.filename}" if biggest.file_size > limit else f"its {len(members)} parts together"
        size = biggest.file_size if biggest.file_size > limit else total
        return (
            f"{what} inflates to {_mb(size)} MB, over the {limits.max_inflated_mb:.0f} MB limit "
            "(raise [limits] max_inflated_mb)"
        )
    for member in members:
        if member.file_size < limits.ratio_from_mb * MB:
            continue
        ratio = member.file_size / max(1, member.compress_size)
        if ratio > limits.max_ratio:
            return (
                f"{member.filename} inflates to {_mb(member.file_size)} MB from {member.compress_size / 1024:.0f} KB "
                f"({ratio:.0f}:1, over the {limits.max_ratio:.0f}:1 limit; a ZIP bomb?) (raise [limits] max_zip_ratio)"
            )
    return ""


def read_member(archive: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    """A part's bytes, inflating at most ``max_bytes`` whatever its header says (``MemberTooLarge`` past it)."""
    pieces: list[bytes] = []
    size = 0
    with archive.open(name) as handle:
        while block := handle.read(min(1 << 20, max_bytes + 1 - size)):
            pieces.append(block)
            size += len(block)
            if size > max_bytes:
                raise MemberTooLarge(f"{name} inflates to more than {max_bytes} bytes")
    return b"".join(pieces)
