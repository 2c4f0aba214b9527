"""Chroma-specific behaviour; what every store must do is in ``test_conformance.py``."""

from __future__ import annotations

from pathlib import Path

from mmrag.retrieval.store import SearchFilter
from mmrag.retrieval.stores.chroma import where_clause


def test_principals_are_matched_with_contains_never_in() -> None:
    """``$in``/``$eq`` on an array field silently match nothing in Chroma 1.5; an empty set must match nothing."""
    assert where_clause(SearchFilter(principals=frozenset({"user:alice", "PUBLIC"}))) == {
        "$or": [{"principals": {"$contains": "PUBLIC"}}, {"principals": {"$contains": "user:alice"}}]
    }
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
