"""OpenDocument presentations: cited by slide like PowerPoint decks."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, Slide, Table
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.odp import OdpIngestor
from mmrag.ingest.formats.slides import ENCRYPTED

NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:chart="urn:oasis:names:tc:opendocument:xmlns:chart:1.0"'
)


def _frame(y: float, x: float, body: str, cls: str = "") -> str:
    kind = f' presentation:class="{cls}"' if cls else ""
    return f'<draw:frame svg:x="{x}cm" svg:y="{y}cm"{kind}>{body}</draw:frame>'


def _box(*paragraphs: str) -> str:
    return "<draw:text-box>" + "".join(f"<text:p>{p}</text:p>" for p in paragraphs) + "</draw:text-box>"


def _cells(*rows: tuple[str, ...]) -> str:
    body = "".join(
        "<table:table-row>"
        + "".join(f"<table:table-cell><text:p>{c}</text:p></table:table-cell>" for c in row)
        + "</table:table-row>"
        for row in rows
    )
    return f"<table:table>{body}</table:table>"


def build_odp(path: Path, *, picture: bytes = b"", encrypted: bool = False) -> Path:
    slide1 = (
        _frame(1, 1, _box("Quarterly review"), "title")
        + _frame(9, 12, _box("Closing: thanks to<text:s/>the Oslo team"))
        + _frame(4, 1, _box("Revenue grew 12 percent", "Costs<text:line-break/>fell"), "outline")
        + _frame(6, 1, _cells(("City", "Staff"), ("Lyon", "42")))
        + '<presentation:notes><draw:frame svg:y="1cm">'
        + _box("Mention the new office")
        + "</draw:frame></presentation:notes>"
    )
    slide2 = _frame(1, 1, _box("Duck survey"), "title") + _frame(4, 1, '<draw:object xlink:href="./Object 1"/>')
    if picture:
        slide2 += (
            _frame(8, 1, '<draw:image xlink:href="Pictures/duck.png"/>')[:-13]
            + "<svg:desc>A mallard on a pond</svg:desc></draw:frame>"
        )
    content = (
        f"<office:document-content {NS}><office:body><office:presentation>"
        f'<draw:page draw:name="page1">{slide1}</draw:page><draw:page draw:name="page2">{slide2}</draw:page>'
        "</office:presentation></office:body></office:document-content>"
    )
    chart = (
        f"<office:document-content {NS}><office:body><office:chart><chart:chart>"
        "<chart:title><text:p>Ducks by year</text:p></chart:title>"
        + _cells(("", "Freshwater", "Saltwater"), ("2019", "120", "80"), ("2020", "130", "95"))
        + "</chart:chart></office:chart></office:body></office:document-content>"
    )
    manifest = '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
    manifest += "<manifest:encryption-data/>" if encrypted else ""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.presentation")
        archive.writestr("META-INF/manifest.xml", manifest + "</manifest:manifest>")
        archive.writestr("content.xml", content)
        archive.writestr("Object 1/content.xml", chart)
        if picture:
            archive.writestr("Pictures/duck.png", picture)
    return path


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (120, 90), "green").save(out, format="PNG")
    return out.getvalue()


def _ingest(path: Path, settings: IngestSettings | None = None) -> list[Chunk | Table]:
    return list(OdpIngestor(settings or IngestSettings(media=MediaConfig(ocr_engine=""))).ingest(path, path.name))


def test_slides_text_tables_charts_and_notes(tmp_path: Path) -> None:
    items = _ingest(build_odp(tmp_path / "review.odp"))
    text = [i for i in items if isinstance(i, Chunk) and i.modality is Modality.TEXT]
    assert [c.locator for c in text] == [Slide(1), Slide(2)]
    first = text[0].text
    assert first.startswith("Quarterly review — slide 1\n\nQuarterly review\n\nRevenue grew 12 percent\nCosts\nfell")
    order = ["Revenue grew", "| City | Staff |", "| Lyon | 42 |", "Closing: thanks to the Oslo team", "Notes: Mention"]
    assert [first.index(p) for p in order] == sorted(first.index(p) for p in order)
    assert "Chart: Ducks by year\n| category | Freshwater | Saltwater |" in text[1].text
    assert "| 2020 | 130 | 95 |" in text[1].text
    tables = [i for i in items if isinstance(i, Table)]
    assert [(t.locator, t.header) for t in tables] == [
        (Slide(1), ("City", "Staff")),
        (Slide(2), ("category", "Freshwater", "Saltwater")),
    ]


def test_pictures_with_a_media_folder(tmp_path: Path) -> None:
    path = build_odp(tmp_path / "ducks.odp", picture=_png())
    settings = IngestSettings(media=MediaConfig(media_dir=tmp_path / "media", ocr_engine=""))
    images = [i for i in _ingest(path, settings) if isinstance(i, Chunk) and i.modality is Modality.IMAGE]
    assert [(c.locator, c.text) for c in images] == [
        (Slide(2), "Picture on slide 2: A mallard on a pond\nSlide title: Duck survey")
    ]
    assert images[0].image is not None and images[0].image.is_file()


def test_unusable_odp_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as error:
        _ingest(build_odp(tmp_path / "secret.odp", encrypted=True))
    assert error.value.reason == ENCRYPTED
    broken = tmp_path / "broken.odp"
    broken.write_bytes(b"PK\x03\x04 nope")
    with pytest.raises(IngestError, match="damaged ODP: not a readable ZIP container"):
        _ingest(broken)
