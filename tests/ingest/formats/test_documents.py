from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_BREAK
from docx.oxml import OxmlElement

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.chunk import Chunk, Modality, Page, Section, locator_from_json
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats import unstructured_adapter as ua
from mmrag.ingest.formats.documents import (
    DocxIngestor,
    HtmlIngestor,
    MarkdownIngestor,
    TextIngestor,
    decode_text,
    group_blocks,
)

Ingestor = DocxIngestor | HtmlIngestor | MarkdownIngestor | TextIngestor


def _ingest(ingestor: Ingestor, path: Path) -> list[Chunk]:
    return list(ingestor.ingest(path, path.name))


def _only(chunks: list[Chunk], phrase: str) -> Chunk:
    found = [c for c in chunks if phrase in c.text]
    assert len(found) == 1, f"{phrase!r} in {len(found)} chunks: {[c.text for c in chunks]}"
    return found[0]


def _policy_docx(path: Path, *, rendered_page_break: bool = False) -> Path:
    document = docx.Document()
    document.add_heading("Travel Policy", level=0)
    document.add_paragraph("This policy applies to all staff.")
    document.add_heading("Chapter 2", level=1)
    document.add_paragraph("Chapter two explains what may be claimed.")
    document.add_heading("Costs", level=2)
    document.add_paragraph("Hotel costs are capped at 180 euros per night.")
    table = document.add_table(rows=3, cols=3)
    rows = [("Food", "Kinds", "Calories per portion"), ("Leaves", "Ash, Elm", "50"), ("Berries", "Blueberry", "150")]
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Chapter 3", level=1)
    paragraph = document.add_paragraph("Chapter three covers approvals.")
    if rendered_page_break:  # what Word writes where it broke the page when it last laid the document out
        paragraph.runs[0]._r.insert(0, OxmlElement("w:lastRenderedPageBreak"))
    else:
        paragraph.insert_paragraph_before("").add_run().add_break(WD_BREAK.PAGE)
    document.save(str(path))
    return path


def test_docx_sections_follow_headings(tmp_path: Path) -> None:
    chunks = _ingest(DocxIngestor(), _policy_docx(tmp_path / "policy.docx"))
    hotel = _only(chunks, "capped at 180 euros")
    assert hotel.locator == Section(("Chapter 2", "Costs"))
    assert hotel.locator.cite() == "§ Chapter 2 > Costs"
    assert hotel.text.startswith("Travel Policy > Chapter 2 > Costs\n\n")
    assert _only(chunks, "covers approvals").locator == Section(("Chapter 3",))
    assert all(c.title == "Travel Policy" and c.modality is Modality.TEXT for c in chunks)


def test_docx_table_rows_are_searchable_in_their_section(tmp_path: Path) -> None:
    chunks = _ingest(DocxIngestor(), _policy_docx(tmp_path / "policy.docx"))
    berries = _only(chunks, "Berries | Blueberry | 150")
    assert "Food | Kinds | Calories per portion" in berries.text
    assert berries.locator == Section(("Chapter 2", "Costs"))


def test_docx_with_pages_recorded_by_word_is_cited_by_page(tmp_path: Path) -> None:
    chunks = _ingest(DocxIngestor(), _policy_docx(tmp_path / "paged.docx", rendered_page_break=True))
    assert _only(chunks, "covers approvals").locator == Page(2)
    hotel = _only(chunks, "capped at 180 euros")
    assert hotel.locator == Page(1)
    assert hotel.text.startswith("Travel Policy > Chapter 2 > Costs\n\n")  # the section still shows in the text
    assert len({c.id for c in chunks}) == len(chunks)


def test_docx_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.docx"
    path.write_bytes(b"")
    with pytest.raises(IngestError) as caught:
        _ingest(DocxIngestor(), path)
    assert caught.value.reason == "no text found (empty file, 0 bytes)"


def test_docx_valid_but_without_text(tmp_path: Path) -> None:
    path = tmp_path / "blank.docx"
    docx.Document().save(str(path))
    with pytest.raises(IngestError) as caught:
        _ingest(DocxIngestor(), path)
    assert caught.value.reason == "no text found (empty document)"


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(_policy_docx(tmp_path / "ok.docx").read_bytes()[:3000])
    with pytest.raises(IngestError, match=r"^.*damaged DOCX: not a readable ZIP container") as caught:
        _ingest(DocxIngestor(), path)
    assert isinstance(caught.value.__cause__, zipfile.BadZipFile)


def test_docx_zip_without_document_part(tmp_path: Path) -> None:
    path = tmp_path / "parts.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    with pytest.raises(IngestError) as caught:
        _ingest(DocxIngestor(), path)
    assert caught.value.reason == "damaged DOCX: the main part word/document.xml is missing"


def test_docx_with_broken_xml(tmp_path: Path) -> None:
    source = _policy_docx(tmp_path / "ok.docx")
    path = tmp_path / "badxml.docx"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            new.writestr(item, data[: len(data) // 2] if item.filename == "word/document.xml" else data)
    with pytest.raises(IngestError, match="damaged DOCX, cannot be read"):
        _ingest(DocxIngestor(), path)


def test_legacy_or_encrypted_office_file_named_docx(tmp_path: Path) -> None:
    path = tmp_path / "old.docx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600 + "EncryptedPackage".encode("utf-16-le"))
    with pytest.raises(IngestError, match="password-protected Word document"):
        _ingest(DocxIngestor(), path)


HTML = """<!DOCTYPE html><html><head><title>Duck facts &amp; figures</title></head><body>
<h1>Ducks</h1><p>Ducks are waterbirds.</p>
<h2>Names</h2><p>A male duck is called a drake and a female duck is called a hen.</p>
<h2>Diet</h2><table><tr><th>Food</th><th>Share</th></tr><tr><td>Plants</td><td>60%</td></tr></table>
</body></html>"""


def test_html_title_sections_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "ducks.html"
    path.write_text(HTML, encoding="utf-8")
    chunks = _ingest(HtmlIngestor(), path)
    drake = _only(chunks, "called a drake")
    assert drake.locator == Section(("Ducks", "Names"))
    assert drake.title == "Duck facts & figures"
    assert drake.text.startswith("Duck facts & figures > Ducks > Names\n\n")
    assert _only(chunks, "Plants | 60%").locator == Section(("Ducks", "Diet"))


def test_html_in_a_declared_legacy_charset(tmp_path: Path) -> None:
    path = tmp_path / "latin.html"
    page = '<html><head><meta charset="iso-8859-15"><title>Café</title></head><body><p>Prix: 5 €</p></body></html>'
    path.write_bytes(page.encode("iso-8859-15"))
    chunks = _ingest(HtmlIngestor(), path)
    assert chunks[0].title == "Café" and "Prix: 5 €" in chunks[0].text


def test_markdown_heading_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text(
        "# Runbook\n\nIntro.\n\n## Restore\n\n### Database\n\nRun `restore.sh` as root.\n", encoding="utf-8"
    )
    chunks = _ingest(MarkdownIngestor(), path)
    restore = _only(chunks, "restore.sh")
    assert restore.locator == Section(("Runbook", "Restore", "Database"))
    assert restore.title == "Runbook"
    assert restore.text.startswith("Runbook > Restore > Database\n\n")  # the title is not repeated


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8-sig", b""), ("utf-16", b""), ("cp1252", b""), ("utf-16-le", b"")],
)
def test_text_encodings_are_detected(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(prefix + "Déjà vu: the café bill was 12 € on Tuesday.\r\n".encode(encoding))
    chunks = _ingest(TextIngestor(), path)
    assert chunks[0].text == "Déjà vu: the café bill was 12 € on Tuesday."
    assert chunks[0].locator == Section()


def test_text_headings_only_when_a_line_reads_as_one(tmp_path: Path) -> None:
    path = tmp_path / "minutes.txt"
    path.write_text(
        "Budget Review\n\nThe committee approved the budget for 2025 after a long debate.\n\n"
        "We met on Monday.\n\nThanks,\n\nAlice\n",
        encoding="utf-8",
    )
    chunks = _ingest(TextIngestor(), path)
    assert _only(chunks, "approved the budget").locator == Section(("Budget Review",))
    assert all(c.locator in (Section(("Budget Review",)), Section()) for c in chunks)
    assert "Alice" in "".join(c.text for c in chunks)


def test_binary_file_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(IngestError) as caught:
        _ingest(TextIngestor(), path)
    assert caught.value.reason == "binary content, not text (the file is mislabelled or damaged)"


def test_whitespace_only_text_file(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text(" \n\n\t\n", encoding="utf-8")
    with pytest.raises(IngestError, match="no text found"):
        _ingest(TextIngestor(), path)


def test_long_section_is_split_with_parts(tmp_path: Path) -> None:
    path = tmp_path / "long.md"
    body = "\n\n".join(f"Paragraph {i} describes step {i} of the procedure in some detail." for i in range(80))
    path.write_text(f"# Manual\n\n## Steps\n\n{body}\n", encoding="utf-8")
    chunking = ChunkingConfig(target_chars=400, max_chars=600, overlap_chars=50)
    chunks = _ingest(MarkdownIngestor(chunking), path)
    assert len(chunks) > 5
    assert [c.part for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= 600 and c.locator == Section(("Manual", "Steps")) for c in chunks)


def test_headings_with_the_separator_survive_the_metadata_round_trip() -> None:
    blocks = [ua.Block(ua.BlockKind.HEADING, "Input > Output"), ua.Block(ua.BlockKind.BODY, "text")]
    (group,) = group_blocks(blocks, paged=False)
    section = Section(group.path)
    assert locator_from_json(section.to_json()) == section


def test_empty_headings_join_the_text_before_them() -> None:
    blocks = [
        ua.Block(ua.BlockKind.HEADING, "A"),
        ua.Block(ua.BlockKind.BODY, "alpha"),
        ua.Block(ua.BlockKind.HEADING, "Empty"),
        ua.Block(ua.BlockKind.HEADING, "B"),
        ua.Block(ua.BlockKind.HEADING, "B1", depth=1),
        ua.Block(ua.BlockKind.BODY, "beta"),
        ua.Block(ua.BlockKind.HEADING, "Trailing"),
    ]
    groups = group_blocks(blocks, paged=False)
    assert [(g.path, g.texts) for g in groups] == [(("A",), ("alpha", "Empty")), (("B", "B1"), ("beta", "Trailing"))]


def test_decode_text_prefers_bom_then_utf8(tmp_path: Path) -> None:
    where = tmp_path / "x.txt"
    assert decode_text("é".encode("utf-16"), where) == "é"
    assert decode_text(b"\xef\xbb\xbfhi", where) == "hi"
    assert decode_text("naïve".encode(), where) == "naïve"
    assert decode_text("naïve".encode("cp1252"), where) == "naïve"


def test_log_with_colour_codes_is_text(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    lines = [f"\x1b[32mINFO\x1b[0m request {i} served in {i * 3} ms" for i in range(50)]
    path.write_text("\n".join([*lines, "\x1b[31mERROR\x1b[0m disk quota exceeded on /srv"]), encoding="utf-8")
    chunks = _ingest(TextIngestor(), path)
    assert any("ERROR disk quota exceeded on /srv" in c.text for c in chunks)
    assert not any("\x1b" in c.text for c in chunks)


def test_text_in_content_controls_and_text_boxes_is_indexed(tmp_path: Path) -> None:
    """Templates (a résumé, a form) keep their filled-in text in content controls the parser skips."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_heading("Objective", level=1)
    document.add_paragraph("To build reliable pipelines.")
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    controls = "".join(
        f"<w:sdt {w}><w:sdtContent><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:sdtContent></w:sdt>"
        for text in ("Jane Roe", "Phone 555-0100", "Lead data engineer at Northwind")
    )
    for element in parse_xml(f"<w:body {w}>{controls}</w:body>"):
        document.element.body.insert(0, element)
    path = tmp_path / "resume.docx"
    document.save(str(path))
    text = "\n".join(c.text for c in DocxIngestor().ingest(path, "resume.docx"))
    assert "Phone 555-0100" in text and "Jane Roe" in text and "Northwind" in text
    assert text.count("To build reliable pipelines.") == 1  # what the parser read is not repeated
