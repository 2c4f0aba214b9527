"""Every PDF, DOCX, HTML, Markdown and e-mail file of the shared corpus ingests, and known facts land
in the chunk (and page) a person would be pointed to."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.ingest.base import ChunkingConfig, IngestSettings
from mmrag.ingest.chunk import Chunk, Page
from mmrag.ingest.detect import FileKind, detect
from mmrag.ingest.filetypes import ingestor_for

KINDS = {FileKind.PDF, FileKind.DOCX, FileKind.HTML, FileKind.MD, FileKind.EML}

# file, phrase, page (None: the file is not paginated, or pages are not asserted)
FACTS = [
    ("finance/example-10k-1p.html", "000-30653", None),
    ("legal/handbook-1p.docx", "Bankruptcy Reform Act of 1978", None),
    ("research/multi_page.pdf", "Christopher Latham Sholes", 1),
    ("mail/eml_with_attachment.eml", "test.txt", None),
    ("engineering/redp5110_sampled.pdf", "$145", 5),
    ("research/autogen-paper.docx", "314b0a30-5b04-470b-b9f7-eed2c2bec74a", None),
    ("hr/word_sample.docx", "Berries | Blueberry, Strawberry, Cranberry | 150", None),
    ("finance/chevron-page.pdf", "carbon intensity", 1),
    ("research/2305.03393v1-pg9.pdf", "AMD EPYC 7763", 1),
    ("marketing/microsoft-wikipedia.html", "Xenix", None),
    ("mail/family-day.eml", "face painting", None),
    ("mail/mime-different-plain-html.eml", "Ray Tomlinson", None),
]


@pytest.fixture(scope="module")
def corpus_chunks() -> dict[str, list[Chunk]]:
    drive = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "drive"
    if not drive.is_dir():
        pytest.skip(f"shared corpus not found at {drive} (it sits next to the repository checkout)")
    out: dict[str, list[Chunk]] = {}
    for path in sorted(p for p in drive.rglob("*") if p.is_file()):
        kind = detect(path).kind
        if kind not in KINDS:
            continue
        ingestor = ingestor_for(kind, IngestSettings())
        assert ingestor is not None
        source = path.relative_to(drive).as_posix()
        out[source] = [item for item in ingestor.ingest(path, source) if isinstance(item, Chunk)]
    return out


@pytest.mark.slow
def test_every_document_of_the_corpus_ingests(corpus_chunks: dict[str, list[Chunk]]) -> None:
    assert len(corpus_chunks) >= 20
    for source, chunks in corpus_chunks.items():
        assert chunks, source
        assert len({c.id for c in chunks}) == len(chunks), f"duplicate chunk ids in {source}"
        assert all(c.source == source and c.text.strip() for c in chunks)
        assert all(len(c.text) <= ChunkingConfig().max_chars for c in chunks), source


@pytest.mark.slow
@pytest.mark.parametrize(("source", "phrase", "page"), FACTS)
def test_known_facts_are_in_the_right_chunk(
    corpus_chunks: dict[str, list[Chunk]], source: str, phrase: str, page: int | None
) -> None:
    hits = [c for c in corpus_chunks[source] if phrase in c.text]
    assert hits, f"{phrase!r} not found in any chunk of {source}"
    if page is not None:
        assert {c.locator for c in hits} == {Page(page)}


@pytest.mark.slow
def test_email_chunk_carries_headers_and_attachment_names(corpus_chunks: dict[str, list[Chunk]]) -> None:
    body = corpus_chunks["mail/eml_with_attachment.eml"][0]
    assert body.title == "Email with Attachment"
    for line in (
        "From: Alice Example <alice@example.com>",
        "To: Bob Example <bob@example.com>",
        "Attachments: test.txt",
    ):
        assert line in body.text
    attachment = corpus_chunks["mail/eml_with_attachment.eml"][1]
    assert attachment.locator.cite() == "§ attachment: test.txt"
    assert "This is a test attachment file." in attachment.text
