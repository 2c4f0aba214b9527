"""What every vector store must do, run against every store in ``retrieval.stores.registry.STORES``.

A new store passes this suite before it is used: the pipeline relies on nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from mmrag.ingest.chunk import Chunk, Modality, Page, Rows, Section, Slide, TimeSpan
from mmrag.retrieval.embed import HashEmbedder
from mmrag.retrieval.records import record_id
from mmrag.retrieval.store import ChunkStore, EmbeddingLayout, FileInfo, IndexMismatch, SearchFilter
from mmrag.retrieval.stores.registry import STORES, StoreLocation, backend

EMBED = HashEmbedder(64)
LAYOUT = EmbeddingLayout(text_model=EMBED.name, text_dim=EMBED.dim)
OLD, NEW = 1.6e9, 1.7e9
FINANCE = FileInfo(root="/drive", kind="pdf", modified=OLD, principals=("group:finance",))
SLIDES = FileInfo(root="/drive", kind="pptx", modified=NEW, principals=("PUBLIC",))
MEDIA = FileInfo(root="/drive", kind="mixed", modified=NEW, principals=("user:alice", "group:video"))
OTHER_ROOT = FileInfo(root="/share", kind="pdf", modified=NEW)

FILES: list[tuple[list[Chunk], FileInfo]] = [
    ([Chunk("finance/q3.pdf", Modality.TEXT, Page(3), "quarterly revenue rose")], FINANCE),
    ([Chunk("all-hands.pptx", Modality.TEXT, Slide(7), "hiring plan engineers")], SLIDES),
    (
        [
            Chunk("sales.xlsx", Modality.TABLE, Rows(12, 14, "2023"), "region | revenue"),
            Chunk("roadmap.mp4", Modality.SPEECH, TimeSpan(92.0, 107.0), "we will ship the roadmap"),
            Chunk("notes.md", Modality.TEXT, Section(("Plans", "Q4")), "plans for the fourth quarter", 2, "Notes"),
        ],
        MEDIA,
    ),
    ([Chunk("finance/q3.pdf", Modality.TEXT, Page(3), "the other share's quarterly revenue")], OTHER_ROOT),
]
ALL = [c for chunks, _ in FILES for c in chunks]

Opener = Callable[..., ChunkStore]


@pytest.fixture(params=sorted(STORES))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    kind = str(request.param)
    location = StoreLocation(tmp_path / "store", tmp_path / "media")
    if kind == "chroma-http":  # a real server; each test its own collection
        url = request.getfixturevalue("chroma_server")
        location = replace(location, url=url, collection=f"t{uuid.uuid4().hex[:12]}")

    def opener(layout: EmbeddingLayout = LAYOUT, *, create: bool = True, fill: bool = False) -> ChunkStore:
        store = backend(kind).open(location, layout, create)
        if fill:
            store.upsert_files([(chunks, EMBED.embed([c.text for c in chunks]), info) for chunks, info in FILES])
        return store

    opener.kind = kind  # type: ignore[attr-defined]
    opener.location = location  # type: ignore[attr-defined]
    return opener


def _sources(store: ChunkStore, text: str, flt: SearchFilter, k: int = 10) -> list[str]:
    return [f"{h.root}:{h.chunk.source}" for h in store.query(EMBED.embed([text])[0], k, flt)]


def test_upsert_count_ids_and_locators_round_trip(open_store: Opener) -> None:
    store = open_store(fill=True)
    assert store.layout == LAYOUT and store.count() == len(ALL)
    assert store.ids() == {record_id(info.root, c) for chunks, info in FILES for c in chunks}
    assert store.ids(root="/share") == {record_id("/share", FILES[3][0][0])}
    assert store.ids(root="/drive", source="finance/q3.pdf") == {record_id("/drive", FILES[0][0][0])}
    for chunks, info in FILES:
        for chunk in chunks:
            best = store.query(EMBED.embed([chunk.text])[0], 1, SearchFilter())[0]
            assert (best.chunk, best.root) == (chunk, info.root)
            assert best.score == pytest.approx(1.0, abs=1e-3)  # cosine similarity to itself


def test_writing_a_chunk_again_replaces_it(open_store: Opener) -> None:
    store = open_store(fill=True)
    chunks, info = FILES[1]
    store.upsert_files([(chunks, EMBED.embed([c.text for c in chunks]), info)])
    assert store.count() == len(ALL)


def test_replacing_a_files_chunks(open_store: Opener) -> None:
    store = open_store(fill=True)
    store.delete_source("/drive", "all-hands.pptx")
    new = [Chunk("all-hands.pptx", Modality.TEXT, Slide(1), "welcome to the offsite")]
    store.upsert_files([(new, EMBED.embed([new[0].text]), SLIDES)])
    assert store.ids(source="all-hands.pptx") == {record_id("/drive", new[0])}
    assert (
        store.query(EMBED.embed(["hiring plan engineers"])[0], 10, SearchFilter(kinds=frozenset({"pptx"})))[0].chunk
        == new[0]
    )


def test_delete_removes_one_file_of_one_root_only(open_store: Opener) -> None:
    store = open_store(fill=True)
    store.delete_source("/drive", "finance/q3.pdf")
    assert store.count() == len(ALL) - 1
    assert _sources(store, "quarterly revenue", SearchFilter(kinds=frozenset({"pdf"}))) == ["/share:finance/q3.pdf"]


def test_every_filter_field_restricts_the_query(open_store: Opener) -> None:
    store = open_store(fill=True)
    q = "revenue quarter plan roadmap"
    assert set(_sources(store, q, SearchFilter(modalities=frozenset({Modality.TABLE})))) == {"/drive:sales.xlsx"}
    assert set(_sources(store, q, SearchFilter(kinds=frozenset({"pptx"})))) == {"/drive:all-hands.pptx"}
    assert set(_sources(store, q, SearchFilter(sources=frozenset({"notes.md"})))) == {"/drive:notes.md"}
    assert _sources(store, q, SearchFilter(sources=frozenset())) == []  # an empty set allows nothing
    after = datetime.fromtimestamp((OLD + NEW) / 2)
    assert "/drive:finance/q3.pdf" not in _sources(store, q, SearchFilter(modified_after=after))
    assert set(_sources(store, q, SearchFilter(modified_before=after))) == {"/drive:finance/q3.pdf"}
    both = SearchFilter(modalities=frozenset({Modality.TEXT}), kinds=frozenset({"mixed"}))
    assert set(_sources(store, q, both)) == {"/drive:notes.md"}


def test_the_principals_array_filters_with_any_of_the_allowed(open_store: Opener) -> None:
    store = open_store(fill=True)
    q = "revenue quarter plan roadmap hiring"

    def seen(*principals: str) -> set[str]:
        return set(_sources(store, q, SearchFilter(principals=frozenset(principals))))

    assert seen("group:finance") == {"/drive:finance/q3.pdf"}
    assert seen("PUBLIC", "user:alice") == {
        "/drive:all-hands.pptx",
        "/drive:sales.xlsx",
        "/drive:roadmap.mp4",
        "/drive:notes.md",
    }
    assert seen("group:video") == seen("user:alice")  # any entry of the array matches
    assert seen("user:bob") == set()
    assert seen() == set()  # nobody: nothing, never everything
    assert "/share:finance/q3.pdf" not in seen("PUBLIC", "group:finance")  # a chunk without principals is never seen
    assert "/share:finance/q3.pdf" in _sources(store, q, SearchFilter())  # ... unless permissions are off


def test_a_deny_entry_outranks_what_allows(open_store: Opener) -> None:
    store = open_store()
    open_but_hr = FileInfo(root="/drive", kind="txt", modified=NEW, principals=("PUBLIC", "!group:hr"))
    chunks = [Chunk("memo.txt", Modality.TEXT, Section(), "the memo everyone but hr may read")]
    store.upsert_files([(chunks, EMBED.embed([c.text for c in chunks]), open_but_hr)])
    flt = SearchFilter(principals=frozenset({"PUBLIC", "user:bob", "group:hr"}))
    assert _sources(store, "memo", flt) == []
    assert _sources(store, "memo", SearchFilter(principals=frozenset({"PUBLIC", "user:ann"}))) == ["/drive:memo.txt"]


def test_the_nearest_readable_chunks_come_whether_few_or_most_are_readable(open_store: Opener) -> None:
    store = open_store()
    chunks = [
        Chunk(f"notes/n{i:02d}.txt", Modality.TEXT, Section(), f"note number {i} about budgets") for i in range(60)
    ]
    vectors = EMBED.embed([c.text for c in chunks])
    store.upsert_files(
        [
            ([c], vectors[i : i + 1], FileInfo("/drive", "txt", NEW, ("group:few",) if i % 20 == 0 else ("PUBLIC",)))
            for i, c in enumerate(chunks)
        ]
    )
    query = EMBED.embed(["note number 7 about budgets"])[0]
    few = [h.chunk.source for h in store.query(query, 3, SearchFilter(principals=frozenset({"group:few"})))]
    assert sorted(few) == ["notes/n00.txt", "notes/n20.txt", "notes/n40.txt"]  # 3 of 60: found all the same
    most = store.query(query, 5, SearchFilter(principals=frozenset({"PUBLIC"})))
    everyone = [h for h in store.query(query, 10, SearchFilter()) if h.chunk.source not in few][:5]
    assert [h.chunk.source for h in most] == [h.chunk.source for h in everyone]  # the nearest readable, in order


def test_present_keeps_the_ids_stored_and_readable_under_the_filter(open_store: Opener) -> None:
    store = open_store(fill=True)
    finance, slides = record_id("/drive", FILES[0][0][0]), record_id("/drive", FILES[1][0][0])
    asked = {finance, slides, "/drive::never-stored"}
    assert store.present(asked, SearchFilter()) == {finance, slides}
    assert store.present(asked, SearchFilter(principals=frozenset({"PUBLIC"}))) == {slides}
    assert store.present(asked, SearchFilter(principals=frozenset({"group:finance", "PUBLIC"}))) == {finance, slides}
    store.delete_source("/drive", "all-hands.pptx")
    assert store.present(asked, SearchFilter()) == {finance}
    assert store.present(set(), SearchFilter()) == set()


def test_new_principals_replace_the_old_and_nothing_else(open_store: Opener) -> None:
    store = open_store(fill=True)
    ids = store.ids("/drive", "sales.xlsx")
    store.set_principals("/drive", "notes.md", ("group:finance",))
    flt = SearchFilter(principals=frozenset({"group:finance"}))
    assert set(_sources(store, "plans quarter revenue", flt)) == {"/drive:finance/q3.pdf", "/drive:notes.md"}
    assert "/drive:notes.md" not in _sources(store, "plans quarter", SearchFilter(principals=frozenset({"user:alice"})))
    assert "/drive:sales.xlsx" in _sources(store, "region revenue", SearchFilter(principals=frozenset({"user:alice"})))
    [hit] = [h for h in store.query(EMBED.embed(["plans"])[0], 10, flt) if h.chunk.source == "notes.md"]
    assert hit.chunk.locator == Section(("Plans", "Q4")) and hit.chunk.title == "Notes"  # the rest kept
    assert store.ids("/drive", "sales.xlsx") == ids
    store.set_principals("/drive", "notes.md", ())
    assert "/drive:notes.md" not in _sources(store, "plans", SearchFilter(principals=frozenset({"group:finance"})))


def test_reopen_after_close_keeps_chunks_and_refuses_another_layout(open_store: Opener) -> None:
    open_store(fill=True).close()
    again = open_store(create=False)
    assert again.count() == len(ALL)
    again.close()
    other = EmbeddingLayout(text_model="sentence-transformers/all-MiniLM-L6-v2", text_dim=384)
    with pytest.raises(IndexMismatch, match="--reindex") as info:
        open_store(other)
    assert "hash-64" in str(info.value) and "all-MiniLM-L6-v2" in str(info.value)


def test_a_missing_store_is_not_created_unless_asked(open_store: Opener) -> None:
    with pytest.raises(IndexMismatch, match="mmrag ingest"):
        open_store(create=False)


def test_drop_empties_the_store_whatever_layout_built_it(open_store: Opener) -> None:
    open_store(fill=True).close()
    backend(open_store.kind).drop(open_store.location)  # type: ignore[attr-defined]
    other = EmbeddingLayout(text_model="another-model", text_dim=32)
    fresh = open_store(other)
    assert fresh.count() == 0 and fresh.layout == other


def test_vectors_must_match_chunks(open_store: Opener) -> None:
    store = open_store()
    with pytest.raises(ValueError, match="2 chunks but 1 vectors"):
        store.upsert_files([(ALL[:2], np.zeros((1, 64), dtype=np.float32), MEDIA)])


def test_pictures_inside_the_media_folder_are_stored_relative_to_it(open_store: Opener, tmp_path: Path) -> None:
    store = open_store()
    frame = Chunk("clip.mp4", Modality.FRAME, TimeSpan(1.0, 1.0), "a frame", image=tmp_path / "media" / "ab" / "f.jpg")
    store.upsert_files([([frame], EMBED.embed([frame.text]), MEDIA)])
    assert store.query(EMBED.embed(["a frame"])[0], 1, SearchFilter())[0].chunk.image == frame.image
