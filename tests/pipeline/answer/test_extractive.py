"""Answer units: which get embedded, and which win."""

from __future__ import annotations

import numpy as np
from fakes import CountingEmbedder

from mmrag.ingest.chunk import Chunk, Modality, Page
from mmrag.pipeline.answer.units import EMBED_LIMIT, score_units
from mmrag.retrieval.store import Hit
from mmrag.retrieval.vectorize import Vectorizer


def _hit(n: int, sentences: list[str]) -> Hit:
    chunk = Chunk(f"doc{n}.pdf", Modality.TEXT, Page(1), " ".join(sentences))
    return Hit(chunk, 1.0 - n / 100, "/drive")


def test_only_the_leading_units_are_embedded_and_the_answer_still_wins() -> None:
    filler = [f"Filler sentence number {i} talks about nothing in particular today." for i in range(12)]
    hits = [_hit(n, [f"Opening line of document {n} is here.", *filler]) for n in range(8)]
    hits[5] = _hit(5, [*filler[:6], "The Lyon office has 42 staff members.", *filler[6:]])
    embedder = CountingEmbedder(64)
    ranked = score_units("How many staff does the Lyon office have?", hits, Vectorizer(embedder))
    assert ranked[0].text == "The Lyon office has 42 staff members."
    assert len(ranked) == 8 * 13  # every unit is scored
    units_embedded = [t for t in embedder.seen if not t.startswith("How many staff")]  # the question, names left out
    assert len(units_embedded) == EMBED_LIMIT
    assert all(f"Opening line of document {n} is here." in units_embedded for n in range(8) if n != 5)
    assert [s for s in ranked if s.similarity != 0.0] and np.isfinite([s.score for s in ranked]).all()


def test_few_units_are_all_embedded() -> None:
    embedder = CountingEmbedder(64)
    ranked = score_units(
        "When was it founded?", [_hit(0, ["It was founded in 1911.", "It sells tea."])], Vectorizer(embedder)
    )
    assert {s.text for s in ranked} == {"It was founded in 1911.", "It sells tea."}
    assert len(embedder.seen) == 3  # two units and the question


def test_a_header_cell_over_two_columns_names_both_and_the_last_keeps_its_own() -> None:
    """A Word table whose first header cell is merged over two columns: the value column keeps its name."""
    from mmrag.pipeline.answer.units import units

    text = "Feeding\n\n| Food | Calories per portion\nLeaves | Ash, Elm | 50\nBerries | Blueberry, Cranberry | 150"
    found = [u.text for u in units(Chunk("duck.docx", Modality.TEXT, Page(2), text), 0)]
    assert "Food: Berries, Blueberry, Cranberry · Calories per portion: 150" in found
