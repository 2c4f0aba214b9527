"""OpenDocument presentations: cited by slide like PowerPoint decks."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from builders import build_odp

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, Slide, Table
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.odp import OdpIngestor
from mmrag.ingest.formats.slides import ENCRYPTED


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
