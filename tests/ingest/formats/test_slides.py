"""PowerPoint decks: every phrase, table cell, chart value and picture is cited by its slide."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mmrag.ingest.base import ChunkingConfig, IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, Slide, Table
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.slides import ENCRYPTED, NO_CONTENT, SlidesIngestor

DRIVE = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "drive"
NO_OCR = IngestSettings(media=MediaConfig(ocr_engine=""))


def _png(width: int = 200, height: int = 120, text: str = "") -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, 60, 60), fill="red")
    if text:
        draw.text((20, height // 3), text, fill="black", font=ImageFont.load_default(size=height // 4))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def build_deck(path: Path, *, core_title: str = "Quarterly All-Hands", picture_text: str = "") -> Path:
    from pptx import Presentation
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = core_title
    first = deck.slides.add_slide(deck.slide_layouts[0])
    first.shapes.title.text = "Company update Q3"
    first.placeholders[1].text = "Revenue grew 12 percent"

    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Offices"
    # Added bottom-right first: reading order must still put the top-left box first.
    second.shapes.add_textbox(Inches(5), Inches(5), Inches(3), Inches(1)).text_frame.text = "Closing remarks"
    second.shapes.add_textbox(Inches(0.5), Inches(1.5), Inches(3), Inches(1)).text_frame.text = "Opening remarks"
    group = second.shapes.add_group_shape()
    group.shapes.add_textbox(
        Inches(0.5), Inches(2.6), Inches(3), Inches(0.5)
    ).text_frame.text = "Grouped note: badge renewal"
    table = second.shapes.add_table(3, 3, Inches(0.5), Inches(3.2), Inches(6), Inches(1.2)).table
    for r, row in enumerate([("City", "Staff", "Opened"), ("Lyon", "42", "2019"), ("Oslo", "17", "2021")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    # Side by side, the right one a hair higher: still read left to right.
    second.shapes.add_textbox(Inches(5), Inches(4.5), Inches(3), Inches(0.4)).text_frame.text = "Right column"
    second.shapes.add_textbox(Inches(0.5), Inches(4.55), Inches(3), Inches(0.4)).text_frame.text = "Left column"
    second.notes_slide.notes_text_frame.text = "Remember to thank the Lyon office"

    third = deck.slides.add_slide(deck.slide_layouts[5])
    third.shapes.title.text = "Quarterly Duck Survey"
    data = CategoryChartData()  # type: ignore[no-untyped-call]
    data.categories = ["2019", "2020", "2021"]
    data.add_series("Freshwater Ducks", (120, 130, 150))  # type: ignore[no-untyped-call]
    data.add_series("Saltwater Ducks", (80, 95, 110))  # type: ignore[no-untyped-call]
    chart = third.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1.5), Inches(6), Inches(4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Wild Duck Observations"

    fourth = deck.slides.add_slide(deck.slide_layouts[5])
    fourth.shapes.title.text = "Team offsite"
    blob = _png(480, 120, picture_text) if picture_text else _png()
    picture = fourth.shapes.add_picture(io.BytesIO(blob), Inches(1), Inches(1.5), Inches(4))
    picture._element.nvPicPr.cNvPr.set("descr", "The team on the beach in Nice")
    fourth.shapes.add_picture(io.BytesIO(_png(16, 16)), Inches(8), Inches(0.2))  # an icon: not an image chunk

    deck.slides.add_slide(deck.slide_layouts[6])  # blank: no chunk
    deck.save(str(path))
    return path


def _ingest(path: Path, settings: IngestSettings = NO_OCR) -> list[Chunk | Table]:
    return list(SlidesIngestor(settings).ingest(path, path.name))


def _chunks(items: list[Chunk | Table], modality: Modality = Modality.TEXT) -> list[Chunk]:
    return [i for i in items if isinstance(i, Chunk) and i.modality is modality]


def _slide_of(chunks: list[Chunk], phrase: str) -> int:
    slides = {c.locator.slide for c in chunks if phrase in c.text and isinstance(c.locator, Slide)}
    assert len(slides) == 1, f"{phrase!r} found on slides {slides}"
    return slides.pop()


@pytest.fixture
def deck(tmp_path: Path) -> Path:
    return build_deck(tmp_path / "all-hands.pptx")


def test_each_phrase_is_cited_on_its_slide(deck: Path) -> None:
    text = _chunks(_ingest(deck))
    assert [c.locator for c in text] == [Slide(1), Slide(2), Slide(3), Slide(4)]  # the blank slide has none
    assert _slide_of(text, "Revenue grew 12 percent") == 1
    assert _slide_of(text, "Grouped note: badge renewal") == 2
    assert _slide_of(text, "Notes: Remember to thank the Lyon office") == 2
    assert _slide_of(text, "[Picture: The team on the beach in Nice]") == 4
    assert all(c.title == "Quarterly All-Hands" and c.source == "all-hands.pptx" for c in text)
    assert text[0].text.startswith("Quarterly All-Hands — slide 1\n\nCompany update Q3\n")


def test_text_follows_reading_order(deck: Path) -> None:
    slide2 = _chunks(_ingest(deck))[1].text
    order = ["Offices", "Opening remarks", "Grouped note", "| City | Staff | Opened |", "Left column", "Right column"]
    order += ["Closing remarks", "Notes:"]
    positions = [slide2.index(phrase) for phrase in order]
    assert positions == sorted(positions)
    assert "| Lyon | 42 | 2019 |" in slide2


def test_chart_values_are_in_the_slide_text(deck: Path) -> None:
    slide3 = _chunks(_ingest(deck))[2]
    assert slide3.locator == Slide(3)
    assert "Chart: Wild Duck Observations" in slide3.text
    assert "| category | Freshwater Ducks | Saltwater Ducks |" in slide3.text
    assert "| 2020 | 130 | 95 |" in slide3.text


def test_tables_and_charts_become_table_items(deck: Path) -> None:
    items = _ingest(deck)
    found = [i for i in items if isinstance(i, Table)]
    assert [(t.locator, t.header) for t in found] == [
        (Slide(2), ("City", "Staff", "Opened")),
        (Slide(3), ("category", "Freshwater Ducks", "Saltwater Ducks")),
    ]
    assert found[0].rows == (("Lyon", "42", "2019"), ("Oslo", "17", "2021"))
    assert found[1].rows[1] == ("2020", "130", "95")
    tables = _chunks(items, Modality.TABLE)
    assert len(tables) == 1 and tables[0].locator == Slide(2)
    assert "| Oslo | 17 | 2021 |" in tables[0].text and tables[0].text.startswith("Quarterly All-Hands — slide 2")


def test_pictures_become_image_chunks_with_a_media_folder(deck: Path, tmp_path: Path) -> None:
    assert _chunks(_ingest(deck), Modality.IMAGE) == []  # no media folder: no image chunks
    media = tmp_path / "media"
    settings = IngestSettings(media=MediaConfig(media_dir=media, ocr_engine=""))
    (picture,) = _chunks(_ingest(deck, settings), Modality.IMAGE)  # the 16 px icon is left out
    assert picture.locator == Slide(4)
    assert picture.text == "Picture on slide 4: The team on the beach in Nice\nSlide title: Team offsite"
    assert picture.image is not None and picture.image.is_file() and media in picture.image.parents
    again = _chunks(_ingest(deck, settings), Modality.IMAGE)
    assert [c.image for c in again] == [picture.image] and [c.id for c in again] == [picture.id]


@pytest.mark.slow
def test_text_in_a_slide_picture_is_read_by_ocr(tmp_path: Path) -> None:
    from mmrag.ingest.engines.ocr import ocr_engine

    if ocr_engine("rapidocr") is None:
        pytest.skip("RapidOCR is not installed")
    path = build_deck(tmp_path / "ocr.pptx", picture_text="INVOICE 4711")
    settings = IngestSettings(media=MediaConfig(media_dir=tmp_path / "media", ocr_engine="rapidocr"))
    (picture,) = _chunks(_ingest(path, settings), Modality.IMAGE)
    assert "Text in the picture:" in picture.text and "4711" in picture.text


def add_smartart(slide: Any, texts: list[str]) -> None:
    """A SmartArt graphic frame whose diagram data part holds ``texts`` (what PowerPoint writes, minimally)."""
    from lxml import etree
    from pptx.opc.package import Part
    from pptx.opc.packuri import PackURI

    a = "http://schemas.openxmlformats.org/drawingml/2006/main"
    dgm = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
    r = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    points = "".join(
        f'<dgm:pt modelId="{i + 1}"><dgm:t><a:bodyPr/><a:p><a:r><a:t>{t}</a:t></a:r></a:p></dgm:t></dgm:pt>'
        for i, t in enumerate(texts)
    )
    data = (
        f'<dgm:dataModel xmlns:dgm="{dgm}" xmlns:a="{a}"><dgm:ptLst>'
        f'<dgm:pt modelId="0" type="doc"><dgm:t><a:p><a:r><a:t>ignored</a:t></a:r></a:p></dgm:t></dgm:pt>'
        f"{points}</dgm:ptLst></dgm:dataModel>"
    )
    part = Part(
        PackURI("/ppt/diagrams/data1.xml"),
        "application/vnd.openxmlformats-officedocument.drawingml.diagramData+xml",
        slide.part.package,
        data.encode(),
    )
    rel_id = slide.part.relate_to(
        part, "http://schemas.openxmlformats.org/officeDocument/2006/relationships/diagramData"
    )
    frame = etree.fromstring(
        f'<p:graphicFrame xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="{a}" '
        f'xmlns:r="{r}"><p:nvGraphicFramePr><p:cNvPr id="99" name="Diagram 1"/><p:cNvGraphicFramePr/><p:nvPr/>'
        f'</p:nvGraphicFramePr><p:xfrm><a:off x="914400" y="4114800"/><a:ext cx="6000000" cy="1000000"/></p:xfrm>'
        f'<a:graphic><a:graphicData uri="{dgm}"><dgm:relIds xmlns:dgm="{dgm}" r:dm="{rel_id}" r:lo="" r:qs="" r:cs=""/>'
        f"</a:graphicData></a:graphic></p:graphicFrame>"
    )
    slide.shapes._spTree.append(frame)


def test_smartart_text_is_read(tmp_path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Hiring process"
    add_smartart(slide, ["Apply online", "Phone screen", "Onsite interview"])
    deck.save(str(tmp_path / "process.pptx"))
    (chunk,) = _chunks(_ingest(tmp_path / "process.pptx"))
    assert chunk.text.endswith("Hiring process\n\nApply online\nPhone screen\nOnsite interview")


def test_deck_title_falls_back_to_the_first_slide_title(tmp_path: Path) -> None:
    path = build_deck(tmp_path / "deck.pptx", core_title="PowerPoint Presentation")
    assert {c.title for c in _chunks(_ingest(path))} == {"Company update Q3"}


def test_a_slide_with_very_long_text_gives_several_parts(tmp_path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])
    frame = slide.shapes.add_textbox(Inches(1), Inches(1), Inches(8), Inches(5)).text_frame
    frame.text = "\n".join(f"Point {i}: the maintenance window moves to Sunday night." for i in range(80))
    deck.save(str(tmp_path / "long.pptx"))
    chunks = _chunks(_ingest(tmp_path / "long.pptx"))
    assert len(chunks) > 1 and {c.locator for c in chunks} == {Slide(1)}
    assert [c.part for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= ChunkingConfig().max_chars for c in chunks)
    assert chunks[0].title == "long"  # no title anywhere: the file name


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 300 + "EncryptedPackage".encode("utf-16-le"), ENCRYPTED),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 300,
            "legacy PowerPoint format (.ppt), not PPTX; save it as .pptx to index it",
        ),
        (b"PK\x03\x04 cut short", "damaged PPTX: not a readable ZIP container (File is not a zip file)"),
    ],
)
def test_unusable_decks_are_reported(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "board.pptx"
    path.write_bytes(content)
    with pytest.raises(IngestError) as error:
        _ingest(path)
    assert error.value.reason == reason and error.value.path == str(path)


def test_a_zip_that_is_not_a_deck_and_an_empty_deck_are_reported(tmp_path: Path) -> None:
    from pptx import Presentation

    other = tmp_path / "notes.pptx"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    with pytest.raises(IngestError, match=r"damaged PPTX: the main part ppt/presentation\.xml is missing"):
        _ingest(other)
    empty = Presentation()
    empty.slides.add_slide(empty.slide_layouts[6])
    empty.save(str(tmp_path / "empty.pptx"))
    with pytest.raises(IngestError) as error:
        _ingest(tmp_path / "empty.pptx")
    assert error.value.reason == NO_CONTENT


# --- the shared corpus ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_decks() -> dict[str, list[Chunk | Table]]:
    if not DRIVE.is_dir():
        pytest.skip(f"shared corpus not found at {DRIVE}")
    ingestor = SlidesIngestor(NO_OCR)
    return {
        p.relative_to(DRIVE).as_posix(): list(ingestor.ingest(p, p.relative_to(DRIVE).as_posix()))
        for p in sorted(DRIVE.rglob("*.pptx"))
    }


def test_every_corpus_deck_ingests(corpus_decks: dict[str, list[Chunk | Table]]) -> None:
    assert len(corpus_decks) >= 3
    for source, items in corpus_decks.items():
        chunks = [i for i in items if isinstance(i, Chunk)]
        assert chunks, source
        assert len({c.id for c in chunks}) == len(chunks), f"duplicate chunk ids in {source}"
        assert all(len(c.text) <= ChunkingConfig().max_chars for c in chunks), source


@pytest.mark.parametrize(
    ("source", "phrase", "slide"),
    [
        ("marketing/pptx_chart.pptx", "| 2020 | 130 | 95 |", 1),  # saltwater ducks observed in 2020
        ("marketing/pptx_chart.pptx", "| category | Freshwater Ducks | Saltwater Ducks |", 1),
        ("marketing/pptx_chart.pptx", "Chart: Wild Duck Observations by Year", 1),
        ("research/autogen-slides.pptx", "Chart: a3f6004b-6f4f-4ea8-bee3-3741f4dc385f", 4),
        ("research/autogen-slides.pptx", "| 7 | 8 | 9 | 1b92870d-e3b5-4e65-8153-919f4ff45592 | 11 | 12 |", 3),
        ("research/autogen-slides.pptx", "This is a nested shape with content in 2 shapes", 5),
        ("research/autogen-slides.pptx", "04191ea8-5c73-4215-a1d3-1cfb43aaaf12", 2),
        ("engineering/science-exploration-1p.pptx", "Code 670: Heliophysics Science Division", 1),
    ],
)
def test_corpus_phrases_are_on_their_slides(
    corpus_decks: dict[str, list[Chunk | Table]], source: str, phrase: str, slide: int
) -> None:
    assert _slide_of(_chunks(corpus_decks[source]), phrase) == slide


def test_corpus_chart_data_is_a_table(corpus_decks: dict[str, list[Chunk | Table]]) -> None:
    charts = [t for t in corpus_decks["marketing/pptx_chart.pptx"] if isinstance(t, Table)]
    assert [t.locator for t in charts] == [Slide(1), Slide(2)]
    assert charts[0].header == ("category", "Freshwater Ducks", "Saltwater Ducks")
    assert ("2020", "130", "95") in charts[0].rows


def build_picture_placeholder_deck(path: Path) -> Path:
    """A slide on a layout whose only placeholder is a picture placeholder without an index (as some
    templates and exports write it: ``<p:ph type="pic"/>``), filled with a photo, plus a caption box."""
    import copy

    from pptx import Presentation
    from pptx.enum.shapes import PP_PLACEHOLDER
    from pptx.util import Inches

    deck = Presentation()
    photo_layout = deck.slide_layouts[6]  # blank, given a picture placeholder below
    template = next(p for p in deck.slide_layouts[8].placeholders if p.placeholder_format.type == PP_PLACEHOLDER.PICTURE)
    element = copy.deepcopy(template._element)
    element.ph.attrib.pop("idx")
    photo_layout.shapes._spTree.append(element)
    slide = deck.slides.add_slide(photo_layout)
    placeholder = next(p for p in slide.placeholders if p.placeholder_format.type == PP_PLACEHOLDER.PICTURE)
    placeholder.insert_picture(io.BytesIO(_png(320, 200)))
    box = slide.shapes.add_textbox(Inches(1), Inches(6), Inches(6), Inches(1))
    box.text_frame.text = "Otters counted at the north pier"
    second = deck.slides.add_slide(deck.slide_layouts[8])  # the template's own picture-with-caption layout
    second.shapes.title.text = "Harbour seals"
    for shape in second.placeholders:
        if shape.placeholder_format.type == PP_PLACEHOLDER.PICTURE:
            shape.insert_picture(io.BytesIO(_png(300, 180)))
    deck.save(str(path))
    return path


def test_a_filled_picture_placeholder_is_read_as_a_picture(tmp_path: Path) -> None:
    from pptx import Presentation
    from pptx.shapes.placeholder import PlaceholderPicture

    path = build_picture_placeholder_deck(tmp_path / "wildlife.pptx")
    assert isinstance(Presentation(str(path)).slides[0].shapes.title, PlaceholderPicture)  # the trap python-pptx sets
    media = tmp_path / "media"
    items = _ingest(path, IngestSettings(media=MediaConfig(media_dir=media, ocr_engine="")))
    assert _slide_of(_chunks(items), "Otters counted at the north pier") == 1
    assert _slide_of(_chunks(items), "Harbour seals") == 2
    pictures = _chunks(items, Modality.IMAGE)
    assert [p.locator for p in pictures] == [Slide(1), Slide(2)]
    assert all(p.image is not None and p.image.is_file() and media in p.image.parents for p in pictures)
    assert pictures[1].text.splitlines()[1] == "Slide title: Harbour seals"
