from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mmrag.ingest.chunk import Chunk, Modality, Page, Rows
from mmrag.retrieval.keyword import SCHEMA_VERSION, KeywordIndex, fts_query
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
            Chunk(
                "paper.docx", Modality.TEXT, Page(2), "We study agents. 314b0a30-5b04-470b-b9f7-eed2c2bec74a is here."
            ),
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


def _rows(db_path: Path) -> tuple[int, int]:
    import sqlite3

    db = sqlite3.connect(db_path)
    try:
        return (
            int(db.execute("SELECT count(*) FROM chunk_text").fetchone()[0]),
            int(db.execute("SELECT count(*) FROM chunk_file").fetchone()[0]),
        )
    finally:
        db.close()


def test_file_map_stays_in_step_and_deletes_use_its_index(tmp_path: Path) -> None:
    index = _index(tmp_path)
    db_path = tmp_path / "kw.sqlite"
    assert _rows(db_path) == (3, 3)
    # re-upserting a file's chunk replaces its row (same record id), never duplicates it
    index.upsert([Chunk("finance/10k.pdf", Modality.TEXT, Page(2), "Revenue fell in the gaming segment")], INFO_PDF)
    assert _rows(db_path) == (3, 3)
    assert [h.chunk.text for h in index.search("revenue", 5, SearchFilter())] == ["Revenue fell in the gaming segment"]
    index.delete_source("/drive", "finance/10k.pdf")
    assert _rows(db_path) == (1, 1)
    assert index.search("galaxy gaming", 5, SearchFilter()) == []
    assert [h.chunk.source for h in index.search("EMEA", 5, SearchFilter())] == ["data/sales.csv"]
    plan = " ".join(
        str(row)
        for row in index._db.execute(
            "EXPLAIN QUERY PLAN SELECT rowid FROM chunk_file WHERE root = ? AND source = ?", ("/drive", "x")
        )
    )
    assert "chunk_file_by_source" in plan
    index.clear()
    assert _rows(db_path) == (0, 0)


def test_a_format_2_keyword_index_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    db_path = tmp_path / "kw.sqlite"
    old = sqlite3.connect(db_path, isolation_level=None)
    old.execute(
        "CREATE VIRTUAL TABLE chunk_text USING fts5(text, title, tags, record_id UNINDEXED, root UNINDEXED, "
        "source UNINDEXED, modality UNINDEXED, kind UNINDEXED, modified UNINDEXED, meta UNINDEXED, "
        "tokenize = 'unicode61 remove_diacritics 2')"
    )
    fresh = _index(tmp_path / "v3")
    rows = list(
        fresh._db.execute(
            "SELECT text, title, tags, record_id, root, source, modality, kind, modified, meta FROM chunk_text"
        )
    )
    fresh.close()
    old.executemany("INSERT INTO chunk_text VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    old.execute("PRAGMA user_version = 2")
    old.close()
    upgraded = KeywordIndex(db_path)
    assert int(upgraded._db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION == 4
    assert _rows(db_path) == (3, 3)
    upgraded.delete_source("/drive", "data/sales.csv")
    assert _rows(db_path) == (2, 2)
    assert upgraded.search("commission file number 000-30653", 5, SearchFilter())[0].chunk.locator == Page(1)


def test_a_format_3_keyword_index_is_upgraded_in_place_and_finds_its_chunks(tmp_path: Path) -> None:
    import sqlite3

    db_path = tmp_path / "kw.sqlite"
    _index(tmp_path).close()
    old = sqlite3.connect(db_path, isolation_level=None)
    old.execute("DROP TABLE chunk_principal")  # what a format-3 index lacks
    old.execute("PRAGMA user_version = 3")
    old.close()
    upgraded = KeywordIndex(db_path)
    assert int(upgraded._db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
    assert upgraded.search("commission file number 000-30653", 5, SearchFilter())[0].chunk.locator == Page(1)
    # chunks of earlier formats carry no principals: with permission filtering on they are not seen (fail closed)
    assert upgraded.search("commission file number 000-30653", 5, SearchFilter(principals=frozenset({"PUBLIC"}))) == []


def test_principals_limit_keyword_hits_and_leave_with_the_file(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "kw.sqlite")
    secret = FileInfo(root="/drive", kind="txt", modified=0.0, principals=("group:legal", "user:ann"))
    public = FileInfo(root="/drive", kind="txt", modified=0.0, principals=("PUBLIC",))
    index.upsert([Chunk("legal/merger.txt", Modality.TEXT, Page(1), "Project Falcon merger terms")], secret)
    index.upsert([Chunk("news.txt", Modality.TEXT, Page(1), "Falcon launch party on Friday")], public)

    def seen(*principals: str) -> list[str]:
        return [h.chunk.source for h in index.search("falcon", 5, SearchFilter(principals=frozenset(principals)))]

    assert sorted(seen("user:ann")) == ["legal/merger.txt"] and seen("PUBLIC") == ["news.txt"]
    assert sorted(seen("group:legal", "PUBLIC")) == ["legal/merger.txt", "news.txt"]
    assert seen() == [] and seen("user:bob") == []
    assert len(index.search("falcon", 5, SearchFilter())) == 2  # permissions off
    index.delete_source("/drive", "legal/merger.txt")
    assert seen("user:ann") == []
    assert index._db.execute("SELECT COUNT(*) FROM chunk_principal").fetchone()[0] == 1  # no orphan rows
    index.close()


def test_a_long_list_of_principals_sees_what_a_short_one_does(tmp_path: Path) -> None:
    """Past two names the permission check takes another index (a plan choice): the same rules hold."""
    index = KeywordIndex(tmp_path / "kw.sqlite")
    files = {
        "eng.txt": ("group:eng",),
        "eng-not-contractors.txt": ("group:eng", "!group:contractors"),
        "zed-despite-contractors.txt": ("user:zed", "!group:contractors"),
        "zed-denied.txt": ("group:eng", "!user:zed"),
        "sales.txt": ("group:sales",),
    }
    for source, principals in files.items():
        info = FileInfo(root="/drive", kind="txt", modified=0.0, principals=principals)
        index.upsert([Chunk(source, Modality.TEXT, Page(1), f"Heron budget notes in {source}")], info)
    padding = tuple(f"group:unrelated{n}" for n in range(6))

    def seen(*principals: str) -> set[str]:
        hits = index.search("heron budget", 10, SearchFilter(principals=frozenset(principals)))
        return {h.chunk.source for h in hits}

    for extra in ((), padding):
        assert seen("group:eng", *extra) == {"eng.txt", "eng-not-contractors.txt", "zed-denied.txt"}
        assert seen("group:eng", "group:contractors", *extra) == {"eng.txt", "zed-denied.txt"}
        assert seen("user:zed", "group:eng", "group:contractors", *extra) == {"eng.txt", "zed-despite-contractors.txt"}
        assert seen("group:sales", *extra) == {"sales.txt"}
    assert seen(*padding) == set()
    index.close()
