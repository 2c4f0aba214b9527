from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdf
import pytest
from builders import write_scanned_pdf
from fakes import FakeOcr

import mmrag.ingest.engines.ocr as ocr_module
from mmrag.ingest.base import ChunkingConfig, IngestSettings, MediaConfig, Note
from mmrag.ingest.chunk import Chunk, Modality, Page
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.pdf import BLANK, ENCRYPTED, NO_TEXT, PdfIngestor, normalise_page_text

MakePdf = Callable[..., Path]


def _ingest(path: Path, chunking: ChunkingConfig | None = None, **media: object) -> list[Chunk]:
    return [item for item in _items(path, chunking, **media) if isinstance(item, Chunk)]


def _items(path: Path, chunking: ChunkingConfig | None = None, **media: object) -> list[Chunk | Note]:
    settings = IngestSettings(chunking or ChunkingConfig(), MediaConfig(**{"ocr_engine": "", **media}))  # type: ignore[arg-type]
    return list(PdfIngestor(settings).ingest(path, path.name))


def _page_of(chunks: list[Chunk], phrase: str) -> int:
    pages = {c.locator.page for c in chunks if phrase in c.text and isinstance(c.locator, Page)}
    assert len(pages) == 1, f"{phrase!r} found on pages {pages}"
    return pages.pop()


def test_each_phrase_is_cited_on_its_page(make_pdf: MakePdf) -> None:
    path = make_pdf([["Quarterly revenue grew 12 percent."], ["The office moves to Lyon in May."], ["Annex"]])
    chunks = _ingest(path)
    assert _page_of(chunks, "office moves to Lyon") == 2
    assert _page_of(chunks, "revenue grew 12 percent") == 1
    assert [c.locator.cite() for c in chunks] == ["p. 1", "p. 2", "p. 3"]
    assert all(c.modality is Modality.TEXT and c.source == "doc.pdf" for c in chunks)


def test_a_long_page_gives_several_parts_of_the_same_page(make_pdf: MakePdf) -> None:
    lines = [f"Line {i}: the maintenance schedule requires inspection every {i} hours." for i in range(60)]
    chunks = _ingest(make_pdf([["Cover"], lines]), ChunkingConfig(target_chars=500, max_chars=800, overlap_chars=50))
    page2 = [c for c in chunks if c.locator == Page(2)]
    assert len(page2) > 3
    assert [c.part for c in page2] == list(range(len(page2)))
    assert len({c.id for c in chunks}) == len(chunks)
    assert all(len(c.text) <= 800 for c in chunks)
    assert _page_of(chunks, "every 37 hours") == 2


def test_title_from_metadata_is_on_every_chunk(make_pdf: MakePdf) -> None:
    chunks = _ingest(make_pdf([["Body text one."], ["Body text two."]], title="Fleet Maintenance Manual"))
    assert all(c.title == "Fleet Maintenance Manual" for c in chunks)
    assert all(c.text.startswith("Fleet Maintenance Manual\n\n") for c in chunks)


def test_placeholder_titles_are_ignored(make_pdf: MakePdf) -> None:
    chunks = _ingest(make_pdf([["Body."]], title="Microsoft Word - draft3.docx"))
    assert chunks[0].title == "" and chunks[0].text == "Body."


def test_hyphenation_at_line_ends_is_joined(make_pdf: MakePdf) -> None:
    chunks = _ingest(make_pdf([["This is an exam-", "ple of hyphenation in COVID-", "19 times."]]))
    assert "an example of" in chunks[0].text
    assert "exam-" not in chunks[0].text and "\ufffe" not in chunks[0].text
    assert "COVID-19" in chunks[0].text  # not joined: the right side is not a lowercase letter


def test_normalise_page_text() -> None:
    raw = "Title  \r\nA con\ufffefirming exam-\r\nple\r\n\r\n\x04\x05 tabs\there \x01\r\nCOVID\ufffe19 soft\u00adhyphen"
    assert normalise_page_text(raw) == ["Title", "A confirming example", "tabs here", "COVID-19 softhyphen"]


def test_password_protected_pdf_says_so(make_pdf: MakePdf, tmp_path: Path) -> None:
    reader = pypdf.PdfReader(make_pdf([["Secret salaries."]]))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password="hunter2", owner_password="owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    path = tmp_path / "locked.pdf"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(IngestError) as caught:
        _ingest(path)
    assert caught.value.reason == ENCRYPTED == "password-protected PDF (remove the password to index it)"
    assert caught.value.path == str(path)


def test_truncated_pdf_says_it_is_truncated(make_pdf: MakePdf, tmp_path: Path) -> None:
    data = make_pdf([["Some text."], ["More text."]]).read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError) as caught:
        _ingest(path)
    assert caught.value.reason.startswith("truncated PDF")
    assert isinstance(caught.value.__cause__, Exception)  # raised from the library error


def test_garbage_after_a_pdf_header_is_reported_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20 + b"\n%%EOF\n")
    with pytest.raises(IngestError, match="damaged PDF"):
        _ingest(path)


def test_binary_file_named_pdf_is_not_a_pdf(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"\x00\x01\x02 binary blob " * 100)
    with pytest.raises(IngestError, match="not a PDF"):
        _ingest(path)


def test_pdf_with_blank_pages_only(make_pdf: MakePdf, fake_ocr: FakeOcr) -> None:
    with pytest.raises(IngestError) as caught:
        _ingest(make_pdf([[], []]), ocr_engine="rapidocr")
    assert caught.value.reason == BLANK == "no text: its pages are blank"
    assert fake_ocr.seen == []  # nothing drawn on a page: nothing to read


# --- pages without a readable text layer: OCR --------------------------------------------------------


def merged(first: Path, second: Path, path: Path) -> Path:
    """The pages of ``first`` then those of ``second`` in one PDF (pypdf)."""
    writer = pypdf.PdfWriter()
    for source in (first, second):
        for page in pypdf.PdfReader(source).pages:
            writer.add_page(page)
    with path.open("wb") as out:
        writer.write(out)
    return path


@pytest.fixture
def fake_ocr(monkeypatch: pytest.MonkeyPatch) -> FakeOcr:
    engine = FakeOcr("Invoice 4711 for harbour dredging\nTotal due 12,500 EUR")
    monkeypatch.setattr(ocr_module, "ocr_engine", lambda name, threads=2, cache=None: engine if name else None)
    return engine


def test_a_scanned_page_is_read_by_ocr_and_cited_by_its_page(
    tmp_path: Path, make_pdf: MakePdf, fake_ocr: FakeOcr
) -> None:
    scanned = write_scanned_pdf(tmp_path / "scan.pdf", [["Invoice 4711 for harbour dredging"]])
    path = merged(scanned, make_pdf([["Terms: payment within 30 days."]]), tmp_path / "invoice.pdf")
    chunks = _ingest(path, ocr_engine="rapidocr")
    assert [(c.locator, c.text) for c in chunks] == [
        (Page(1), "Invoice 4711 for harbour dredging\nTotal due 12,500 EUR"),
        (Page(2), "Terms: payment within 30 days."),
    ]
    assert fake_ocr.seen == [(1584, 1224, 3)]  # the scanned page only, rendered at 144 dpi


def test_a_scanned_pdf_without_ocr_says_ocr_is_off(tmp_path: Path, fake_ocr: FakeOcr) -> None:
    path = write_scanned_pdf(tmp_path / "scan.pdf", [["Minutes of the board meeting"]])
    with pytest.raises(IngestError) as caught:
        _ingest(path, ocr_engine="")
    assert caught.value.reason == NO_TEXT == "no text layer (scanned PDF), and OCR is off or unavailable (see `mmrag models`)"
    with pytest.raises(IngestError, match=r"OCR of PDF pages is off \(\[limits\] max_ocr_pages = 0\)"):
        _ingest(path, ocr_engine="rapidocr", max_ocr_pages=0)
    assert fake_ocr.seen == []


def test_a_text_layer_of_private_code_points_is_replaced_by_ocr(make_pdf: MakePdf, fake_ocr: FakeOcr) -> None:
    def private(code: int) -> int:
        return code if code == 32 else 0xE000 + code  # spaces survive, every glyph maps to the private use area

    path = make_pdf([["Invoice 4711 for harbour dredging", "Total due 12,500 EUR"]], to_unicode=private)
    (layer,) = _ingest(path, ocr_engine="")
    assert "Invoice" not in layer.text and "\ue049" in layer.text  # what the text layer says: junk
    (chunk,) = _ingest(path, ocr_engine="rapidocr")
    assert (chunk.locator, chunk.text) == (Page(1), "Invoice 4711 for harbour dredging\nTotal due 12,500 EUR")
    assert fake_ocr.seen == [(1584, 1224, 3)]


def test_good_text_pages_are_not_ocrd(make_pdf: MakePdf, fake_ocr: FakeOcr) -> None:
    chunks = _ingest(make_pdf([["Quarterly revenue grew 12 percent."], ["Das Büro zieht im Mai nach Lyon."]]), ocr_engine="rapidocr")
    assert [c.text for c in chunks] == ["Quarterly revenue grew 12 percent.", "Das Büro zieht im Mai nach Lyon."]
    assert fake_ocr.seen == []


def test_ocr_reads_at_most_max_ocr_pages_and_says_so(tmp_path: Path, fake_ocr: FakeOcr) -> None:
    path = write_scanned_pdf(tmp_path / "scan.pdf", [["One"], ["Two"], ["Three"]])
    items = _items(path, ocr_engine="rapidocr", max_ocr_pages=2)
    chunks = [i for i in items if isinstance(i, Chunk)]
    assert [c.locator for c in chunks] == [Page(1), Page(2)]
    assert [i for i in items if isinstance(i, Note)] == [
        Note("OCR read 2 of the 3 pages without a readable text layer (raise [limits] max_ocr_pages to read them all)")
    ]
    assert len(fake_ocr.seen) == 2


@pytest.mark.slow
def test_a_scanned_pdf_is_read_by_the_real_ocr(tmp_path: Path) -> None:
    if ocr_module.ocr_engine("rapidocr") is None:
        pytest.skip("RapidOCR is not installed")
    path = write_scanned_pdf(tmp_path / "minutes.pdf", [["Board meeting minutes"], ["The harbour dredging starts in May"]])
    chunks = _ingest(path, ocr_engine="rapidocr")
    assert _page_of(chunks, "harbour") == 2
    assert _page_of(chunks, "Board meeting") == 1


def test_pages_without_text_are_skipped_but_keep_numbering(make_pdf: MakePdf) -> None:
    chunks = _ingest(make_pdf([[], ["Only the second page has text."]]))
    assert [c.locator for c in chunks] == [Page(2)]


def test_one_ingestor_shared_by_threads(make_pdf: MakePdf, tmp_path: Path) -> None:
    paths = [make_pdf([[f"Document {i} page one."], [f"Document {i} page two."]], name=f"d{i}.pdf") for i in range(8)]
    ingestor = PdfIngestor()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: list(ingestor.ingest(p, p.name)), paths * 3))
    for path, chunks in zip(paths * 3, results, strict=True):
        number = path.stem[1:]
        assert [c.text for c in chunks] == [f"Document {number} page one.", f"Document {number} page two."]
