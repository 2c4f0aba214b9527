from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mmrag.ingest.detect import FileKind, detect, is_hidden_or_system


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in names:
            z.writestr(name, "<x/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("a.pdf", b"%PDF-1.7\n...", FileKind.PDF),
        ("scan.bin", b"%PDF-1.4\n...", FileKind.PDF),  # content wins over a wrong extension
        ("a.docx", _zip(["word/document.xml", "[Content_Types].xml"]), FileKind.DOCX),
        ("a.pptx", _zip(["ppt/presentation.xml"]), FileKind.PPTX),
        ("a.xlsx", _zip(["xl/workbook.xml"]), FileKind.XLSX),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, FileKind.IMAGE),
        ("photo.dat", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, FileKind.IMAGE),
        ("a.wav", b"RIFF\x00\x00\x00\x00WAVEfmt ", FileKind.AUDIO),
        ("a.flac", b"fLaC\x00\x00", FileKind.AUDIO),
        ("a.mp4", b"\x00\x00\x00\x18ftypmp42\x00\x00", FileKind.VIDEO),
        ("a.m4a", b"\x00\x00\x00\x18ftypM4A \x00\x00", FileKind.AUDIO),
        ("notes.md", b"# Title\n\ntext", FileKind.MD),
        ("page.txt", b"plain words", FileKind.TXT),
        ("noext", b"<!DOCTYPE html><html><body>x</body></html>", FileKind.HTML),
        ("message", b"From: alice@example.com\nSubject: hi\n\nbody", FileKind.EML),
        ("data.csv", b"a,b\n1,2\n", FileKind.CSV),
    ],
)
def test_detects_kind_from_content(tmp_path: Path, name: str, data: bytes, kind: FileKind) -> None:
    found = detect(_write(tmp_path / name, data))
    assert found.kind == kind
    assert found.problem == ""


def test_binary_named_pdf_is_reported_as_mislabelled(tmp_path: Path) -> None:
    found = detect(_write(tmp_path / "report.pdf", bytes(range(256)) * 8))
    assert found.kind == FileKind.UNKNOWN
    assert "named .pdf but its content is not a PDF" in found.problem


def test_empty_file_is_reported(tmp_path: Path) -> None:
    assert detect(_write(tmp_path / "empty.docx", b"")).problem == "empty file (0 bytes)"


def test_zip_that_is_not_office_is_reported(tmp_path: Path) -> None:
    found = detect(_write(tmp_path / "archive.docx", _zip(["readme.txt"])))
    assert "ZIP archive that is not an Office document" in found.problem


def test_encrypted_office_file_is_reported(tmp_path: Path) -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100 + "EncryptedPackage".encode("utf-16-le")
    assert "password-protected" in detect(_write(tmp_path / "secret.xlsx", ole)).problem


@pytest.mark.parametrize("name", [".hidden.pdf", "~$report.docx", "Thumbs.db", ".DS_Store", "desktop.ini"])
def test_hidden_and_system_files(name: str) -> None:
    assert is_hidden_or_system(name)


def test_ordinary_names_are_not_hidden() -> None:
    assert not is_hidden_or_system("report.pdf")
