"""Chroma-specific behaviour; what every store must do is in ``test_conformance.py``."""

from __future__ import annotations

from pathlib import Path

from mmrag.retrieval.store import SearchFilter
from mmrag.retrieval.stores.chroma import where_clause


def test_principals_are_matched_with_contains_never_in() -> None:
    """``$in``/``$eq`` on an array field silently match nothing in Chroma 1.5; an empty set must match nothing."""
    anyone = {"$or": [{"principals": {"$contains": "PUBLIC"}}, {"principals": {"$contains": "user:alice"}}]}
    assert where_clause(SearchFilter(principals=frozenset({"user:alice", "PUBLIC"}))) == {
        "$and": [
            {"principals": {"$not_contains": "!user:alice"}},  # her own deny entry outranks all; PUBLIC is never denied
            {"$or": [{"principals": {"$contains": "user:alice"}}, anyone]},  # her own entry, or the plain rule
        ]
    }
    in_eng = where_clause(SearchFilter(principals=frozenset({"user:bo", "group:eng"})))
    assert in_eng is not None and {"principals": {"$not_contains": "!group:eng"}} in in_eng["$and"][1]["$or"][1]["$and"]
    assert where_clause(SearchFilter(principals=frozenset())) == {"principals": {"$contains": "NOBODY"}}
    assert where_clause(SearchFilter()) is None


def test_image_paths_are_stored_relative_to_the_media_folder(tmp_path: Path) -> None:
    from mmrag.retrieval.records import image_from_record, stored_image

    media = tmp_path / "index" / "media"
    inside = media / "ab" / "frame.jpg"
    assert stored_image(inside, media) == "media:ab/frame.jpg"
    assert (
        image_from_record("media:ab/frame.jpg", tmp_path / "moved" / "media")
        == tmp_path / "moved" / "media" / "ab" / "frame.jpg"
    )
    outside = tmp_path / "drive" / "photo.png"
    assert stored_image(outside, media) == str(outside)  # not ours to move: kept as it is
    assert image_from_record("/old/index/media/ab/frame.jpg", media) == Path(
        "/old/index/media/ab/frame.jpg"
    )  # older indexes
    assert image_from_record("", media) is None


def test_searches_explore_wide_in_new_and_older_indexes(tmp_path: Path) -> None:
    """Chroma's default ``ef_search`` (100) equals the vector pool; a query then missed close chunks,
    differently from one process to the next. New collections get ``EF_SEARCH``; older ones are raised."""
    import chromadb

    from mmrag.retrieval.embed import HashEmbedder
    from mmrag.retrieval.store import EmbeddingLayout
    from mmrag.retrieval.stores.chroma import COLLECTION, EF_SEARCH, LAYOUT_KEY, _settings
    from mmrag.retrieval.stores.registry import StoreLocation, backend

    layout = EmbeddingLayout(text_model=HashEmbedder(8).name, text_dim=8)
    new = backend("chroma").open(StoreLocation(tmp_path / "new", tmp_path / "media"), layout, True)
    new.close()
    old_path = tmp_path / "old"
    client = chromadb.PersistentClient(path=str(old_path), settings=_settings())
    client.create_collection(
        COLLECTION, embedding_function=None, metadata={LAYOUT_KEY: layout.to_json(), "hnsw:space": "cosine"}
    )
    assert client.get_collection(COLLECTION).configuration["hnsw"]["ef_search"] < EF_SEARCH
    backend("chroma").open(StoreLocation(old_path, tmp_path / "media"), layout, False).close()
    for path in (tmp_path / "new", old_path):
        reopened = chromadb.PersistentClient(path=str(path), settings=_settings())
        hnsw = reopened.get_collection(COLLECTION).configuration["hnsw"]
        assert hnsw["ef_search"] == EF_SEARCH and hnsw["space"] == "cosine"
