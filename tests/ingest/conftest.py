"""Input builders for the ingest tests: files are generated in tmp_path, never checked in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fakes import FakeTranscriber

from mmrag.ingest.engines.speech import Segment, Transcriber


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _to_unicode_cmap(code_points: Callable[[int], int]) -> str:
    """A ToUnicode CMap stream saying that byte code ``c`` stands for ``code_points(c)``."""
    pairs = "\n".join(f"<{c:02X}> <{code_points(c):04X}>" for c in range(32, 127))
    body = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Junk def /CMapType 2 def\n"
        "1 begincodespacerange <00> <FF> endcodespacerange\n"
        f"95 beginbfchar\n{pairs}\nendbfchar\nendcmap CMapName currentdict /CMap defineresource pop end end"
    )
    return f"<< /Length {len(body)} >>\nstream\n{body}\nendstream"


def build_pdf(
    pages: Sequence[Sequence[str]], title: str = "", to_unicode: Callable[[int], int] | None = None
) -> bytes:
    """A minimal valid PDF: one page per entry, each line drawn in Helvetica; [] is a page without text.

    ``to_unicode`` gives the font a ToUnicode map (byte code -> code point): the glyphs drawn stay
    Helvetica's, but text extraction returns what the map says (a broken font encoding).
    """
    objects: list[str] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append("<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in page_ids)}] /Count {len(pages)} >>")
    cmap = f" /ToUnicode {4 + 2 * len(pages)} 0 R" if to_unicode else ""
    objects.append(f"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica{cmap} >>")
    for index, lines in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content_id} 0 R >>"
        )
        body = "BT /F1 11 Tf 14 TL 50 750 Td " + " ".join(f"{_pdf_string(line)} Tj T*" for line in lines) + " ET"
        stream = body if lines else ""
        objects.append(f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream")
    if to_unicode:
        objects.append(_to_unicode_cmap(to_unicode))
    info_id = 0
    if title:
        objects.append(f"<< /Title {_pdf_string(title)} >>")
        info_id = len(objects)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    info = f" /Info {info_id} 0 R" if info_id else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    def make(
        pages: Sequence[Sequence[str]],
        name: str = "doc.pdf",
        title: str = "",
        to_unicode: Callable[[int], int] | None = None,
    ) -> Path:
        path = tmp_path / name
        path.write_bytes(build_pdf(pages, title, to_unicode))
        return path

    return make


@pytest.fixture
def fake_speech(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[Segment]], FakeTranscriber]:
    """Makes the audio and video ingestors hear ``segments`` (when a speech model location is set)."""
    import mmrag.ingest.formats.audio as audio_module

    def install(segments: list[Segment]) -> FakeTranscriber:
        fake = FakeTranscriber(segments)

        def transcriber_for(backend: str, location: str, cpu_threads: int = 2) -> Transcriber | None:
            return fake if location else None

        monkeypatch.setattr(audio_module, "transcriber_for", transcriber_for)
        return fake

    return install
