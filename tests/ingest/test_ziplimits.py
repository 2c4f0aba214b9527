"""ZIP bombs: Office files whose parts inflate to gigabytes are refused before any parser reads them."""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import replace
from pathlib import Path

import docx
import pytest
from fakes import CountingEmbedder

from mmrag.ingest.detect import detect
from mmrag.ingest.ziplimits import MemberTooLarge, ZipLimits, read_member
from mmrag.pipeline.api import ingest
from mmrag.pipeline.config import Config

MB = 1024 * 1024


def _bomb(path: Path, parts: dict[str, bytes], big: str, block: bytes, megabytes: int) -> Path:
    """A ZIP with small ``parts`` and one part ``big`` of ``megabytes`` MB of ``block`` repeated (a few
    hundred KB once compressed), written in pieces so the test never holds it in memory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
        with archive.open(big, "w", force_zip64=True) as out:
            piece = block * (MB // len(block))
            for _ in range(megabytes):
                out.write(piece)
    return path


def test_a_docx_bomb_and_an_xlsx_bomb_are_skipped_and_the_rest_is_ingested(tmp_path: Path, cfg: Config) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "notes.txt").write_text("The budget review is on Friday.\n")
    content_types = (
        b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
    )
    _bomb(drive / "bomb.docx", {"[Content_Types].xml": content_types}, "word/document.xml", b"\0", 250)
    _bomb(
        drive / "strings.xlsx",
        {"[Content_Types].xml": content_types, "xl/workbook.xml": b"<workbook/>"},
        "xl/sharedStrings.xml",
        b"<si><t>quarterly figures</t></si>",
        120,
    )
    cfg = replace(cfg, limits=replace(cfg.limits, max_inflated_mb=100.0))
    report = ingest([drive], cfg, embedder=CountingEmbedder())
    assert report.ingested == ["notes.txt"]
    reasons = {s.file: s.reason for s in report.skipped}
    assert reasons["bomb.docx"] == (
        "word/document.xml inflates to 250 MB, over the 100 MB limit (raise [limits] max_inflated_mb)"
    )
    assert reasons["strings.xlsx"] == (
        "xl/sharedStrings.xml inflates to 120 MB, over the 100 MB limit (raise [limits] max_inflated_mb)"
    )


def test_a_part_that_inflates_a_thousandfold_is_refused_under_the_size_limit(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "deck.pptx", {"ppt/presentation.xml": b"<p/>"}, "ppt/slides/slide1.xml", b"\0", 50)
    found = detect(bomb, ZipLimits(max_inflated_mb=1024))
    assert found.kind == "unknown"
    assert found.problem.startswith("ppt/slides/slide1.xml inflates to 50 MB from ")
    assert "over the 200:1 limit; a ZIP bomb?) (raise [limits] max_zip_ratio)" in found.problem
    assert detect(bomb, ZipLimits(max_ratio=10_000)).kind == "pptx"


def _lying(tmp_path: Path) -> Path:
    """A real DOCX whose document part inflates to 8 MB while its headers declare a few hundred bytes."""
    document = docx.Document()
    document.add_paragraph("padding " * 1_000_000)
    real = io.BytesIO()
    document.save(real)
    data = bytearray(real.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("word/document.xml")
        assert info.file_size > 8 * 1_000_000
    offset = 0
    while (offset := data.find(b"PK\x01\x02", offset)) != -1:  # every central directory entry of the part
        name_len = struct.unpack_from("<H", data, offset + 28)[0]
        if data[offset + 46 : offset + 46 + name_len] == b"word/document.xml":
            struct.pack_into("<I", data, offset + 24, 300)
            local = struct.unpack_from("<I", data, offset + 42)[0]
            struct.pack_into("<I", data, local + 22, 300)
        offset += 4
    path = tmp_path / "drive" / "lying.docx"
    path.parent.mkdir()
    path.write_bytes(bytes(data))
    return path


def test_a_part_that_lies_about_its_size_is_read_no_further_than_it_declares(tmp_path: Path, cfg: Config) -> None:
    lying = _lying(tmp_path)
    with zipfile.ZipFile(lying) as archive:
        with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):  # stopped at the declared 300 bytes
            archive.read("word/document.xml")
        assert read_member(archive, "[Content_Types].xml", MB).startswith(b"<?xml")
        with pytest.raises(MemberTooLarge):  # our own reads stop at their cap, whatever the part declares
            read_member(archive, "[Content_Types].xml", 100)
    report = ingest([lying.parent], cfg, embedder=CountingEmbedder())
    (skipped,) = report.skipped
    assert skipped.file == "lying.docx" and "Bad CRC-32 for file 'word/document.xml'" in skipped.reason
