from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mmrag.ingest.chunk import Chunk, Modality, Page, Rows
from mmrag.retrieval.keyword import KeywordIndex, fts_query
from mmrag.retrieval.store import FileInfo, SearchFilter

INFO_PDF = FileInfo(root="/drive", kind="pdf", modified=datetime(2024, 5, 1).timestamp())
INFO_CSV = FileInfo(root="/drive", kind="csv", modified=datetime(2020, 1, 1).timestamp())


def _index(tmp_path: Path) -> KeywordIndex:
    index = KeywordIndex(tmp_path / "kw.sqlite")
    index.upsert(
        [
            Chunk("finance/10k.pdf", Modality.TEXT, Page(1), "Commission file number 000-30653 for Galaxy Gaming"),
            Chunk("finance/10k.pdf", Modality.TEXT, Page(2), "Revenue grew in the gaming segment"),
        ],
        INFO_PDF,
    )
    index.upsert([Chunk("data/sales.csv", Modality.TABLE, Rows(3, 4), "region | sales\nEMEA | 30653")], INFO_CSV)
    return index


def test_query_keeps_compound_tokens_as_phrases() -> None:
    query = fts_query("What is the file number 000-30653?")
    assert '"000 30653"' in query
    assert '"the"' not in query and '"what"' not in query


def test_exact_code_is_found_with_its_page(tmp_path: Path) -> None:
    hits = _index(tmp_path).search("commission file number 000-30653", 5, SearchFilter())
    assert hits[0].chunk.source == "finance/10k.pdf"
    assert hits[0].chunk.locator == Page(1)


def test_filters_apply_to_keyword_search(tmp_path: Path) -> None:
    index = _index(tmp_path)
    assert {h.chunk.source for h in index.search("30653", 5, SearchFilter())} == {"finance/10k.pdf", "data/sales.csv"}
    only_tables = index.search("30653", 5, SearchFilter(modalities=frozenset({Modality.TABLE})))
    assert [h.chunk.locator for h in only_tables] == [Rows(3, 4)]
    recent = index.search("30653", 5, SearchFilter(modified_after=datetime(2023, 1, 1)))
    assert {h.chunk.source for h in recent} == {"finance/10k.pdf"}
    assert index.search("30653", 5, SearchFilter(sources=frozenset())) == []


def test_delete_source_removes_its_chunks(tmp_path: Path) -> None:
    index = _index(tmp_path)
    index.delete_source("/drive", "finance/10k.pdf")
    assert [h.chunk.source for h in index.search("30653 gaming", 5, SearchFilter())] == ["data/sales.csv"]


def test_punctuation_only_query_returns_nothing(tmp_path: Path) -> None:
    assert _index(tmp_path).search("?!", 5, SearchFilter()) == []


def test_naming_the_kind_of_value_finds_it(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "kw.sqlite")
    index.upsert(
        [
            Chunk("paper.docx", Modality.TEXT, Page(2), "We study agents. 314b0a30-5b04-470b-b9f7-eed2c2bec74a is here."),
            Chunk("other.docx", Modality.TEXT, Page(1), "We study agents and their identifiers in general."),
        ],
        INFO_PDF,
    )
    hits = index.search("which UUID is in the paper", 5, SearchFilter())
    assert hits[0].chunk.source == "paper.docx"


def test_upserting_the_same_chunk_twice_keeps_one_copy(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "kw.sqlite")
    chunk = Chunk("a.pdf", Modality.TEXT, Page(1), "quarterly widget revenue")
    index.upsert([chunk], INFO_PDF)
    index.upsert([chunk], INFO_PDF)
    assert len(index.search("widget", 10, SearchFilter())) == 1
