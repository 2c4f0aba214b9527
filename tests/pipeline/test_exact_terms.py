"""The keyword side finds exact terms (codes, GUIDs) that embeddings miss: turn it off and they drop."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmrag.pipeline.api import ingest, search_index
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config

pytestmark = pytest.mark.slow

MEDIA = ("media",)  # everything but the recordings and photos: documents and tables full of numbers
EXACT = {
    "000-30653": "finance/example-10k-1p.html",
    "314b0a30-5b04-470b-b9f7-eed2c2bec74a": "research/autogen-paper.docx",
}


def _rank(hits: list[object], source: str) -> int | None:
    sources = [h.chunk.source for h in hits]  # type: ignore[attr-defined]
    return sources.index(source) + 1 if source in sources else None


def test_exact_terms_need_the_keyword_side(tmp_path: Path, corpus: Path, cfg: Config) -> None:
    drive = tmp_path / "drive"
    shutil.copytree(corpus / "drive", drive, ignore=shutil.ignore_patterns(*MEDIA))
    ingest([drive], cfg)
    index = open_app(cfg, create=False)
    try:
        for term, source in EXACT.items():
            hybrid = search_index(index, term, k=5)
            vector_only = search_index(index, term, k=5, lists=frozenset({"vector"}))  # no keyword lists, no rerank
            assert _rank(hybrid, source) == 1, term
            assert _rank(vector_only, source) != 1, f"{term}: the vector side alone found it; the test proves nothing"
    finally:
        index.close()
