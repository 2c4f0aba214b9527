from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrag.ingest.chunk import Chunk, Modality, Page, Rows, Section, Slide, TimeSpan
from mmrag.retrieval.embed import HashEmbedder
from mmrag.retrieval.store import EmbeddingLayout, FileInfo, IndexMismatch, SearchFilter
from mmrag.retrieval.stores.chroma import ChromaStore

EMBED = HashEmbedder(64)
LAYOUT = EmbeddingLayout(text_model=EMBED.name, text_dim=EMBED.dim)
INFO = FileInfo(root="/drive", kind="mixed", modified=1.7e9)

CHUNKS = [
    Chunk("finance/q3.pdf", Modality.TEXT, Page(3), "quarterly revenue rose"),
    Chunk("all-hands.pptx", Modality.TEXT, Slide(7), "hiring plan engineers"),
    Chunk("sales.xlsx", Modality.TABLE, Rows(12, 14, "2023"), "region | revenue"),
    Chunk("roadmap.mp4", Modality.SPEECH, TimeSpan(92.0, 107.0), "we will ship the roadmap"),
    Chunk("notes.md", Modality.TEXT, Section(("Plans", "Q4")), "plans for the fourth quarter", part=2, title="Notes"),
]


def _store(path: Path) -> ChromaStore:
    store = ChromaStore(path, LAYOUT)
    store.upsert(CHUNKS, EMBED.embed([c.text for c in CHUNKS]), INFO)
    return store


def test_locators_survive_the_round_trip(tmp_path: Path) -> None:
    store = _store(tmp_path)
    found = {}
    for chunk in CHUNKS:
        hit = store.query(EMBED.embed([chunk.text])[0], 1, SearchFilter())[0]
        found[chunk.source] = hit.chunk
        assert hit.root == "/drive"
    assert [found[c.source] for c in CHUNKS] == CHUNKS


def test_filter_by_modality(tmp_path: Path) -> None:
    store = _store(tmp_path)
    hits = store.query(EMBED.embed(["revenue"])[0], 10, SearchFilter(modalities=frozenset({Modality.TABLE})))
    assert [h.chunk.source for h in hits] == ["sales.xlsx"]


def test_reopen_with_other_layout_says_how_to_reindex(tmp_path: Path) -> None:
    _store(tmp_path)
    other = EmbeddingLayout(text_model="sentence-transformers/all-MiniLM-L6-v2", text_dim=384)
    with pytest.raises(IndexMismatch, match="--reindex") as info:
        ChromaStore(tmp_path, other)
    assert "hash-64" in str(info.value) and "all-MiniLM-L6-v2" in str(info.value)


def test_reopen_keeps_chunks_and_delete_source_removes_one_file(tmp_path: Path) -> None:
    _store(tmp_path)
    store = ChromaStore(tmp_path, LAYOUT)
    assert store.count() == len(CHUNKS)
    store.delete_source("/drive", "finance/q3.pdf")
    assert store.count() == len(CHUNKS) - 1
    hits = store.query(EMBED.embed(["quarterly revenue rose"])[0], 10, SearchFilter())
    assert "finance/q3.pdf" not in {h.chunk.source for h in hits}


def test_vectors_must_match_chunks(tmp_path: Path) -> None:
    store = ChromaStore(tmp_path, LAYOUT)
    with pytest.raises(ValueError, match="2 chunks but 1 vectors"):
        store.upsert(CHUNKS[:2], np.zeros((1, 64), dtype=np.float32), INFO)


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
