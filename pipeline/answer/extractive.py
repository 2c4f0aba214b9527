"""The built-in answerer that needs no LLM: it quotes the sentences that answer, each cited.

It picks sentences (or table rows, or transcript lines) from the top hits by how well they match the
question, in meaning and in words, and says plainly that the answer is extractive. When nothing
retrieved is relevant enough it declines instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.pipeline.answer.types import DECLINE_TEXT, EXTRACTIVE_NOTE, MAX_QUOTE_CHARS, Answer, Citation, link_for
from mmrag.pipeline.answer.units import Scored, score_units, terms
from mmrag.retrieval.store import Hit
from mmrag.retrieval.vectorize import Vectorizer

QUOTE_FLOOR = 0.6  # quote only units scoring at least this share of the best one


def content_words(text: str) -> set[str]:
    """Stemmed meaningful words (shared with the unit scorer, so both agree on what matches)."""
    return terms(text)


def _covered(asked: set[str], text: str) -> float:
    found = terms(text)
    hits = sum(1 for t in asked if t in found or any(len(t) >= 4 and f.startswith(t) for f in found))
    return hits / max(1, len(asked))


def relevant(question: str, hits: Sequence[Hit], min_similarity: float) -> bool:
    """Whether the best hits plausibly answer the question (else the answer declines).

    Relevant when a top hit is close in meaning and holds at least a third of the question's
    meaningful words, or holds three quarters of them whatever the vector score.
    """
    if not hits:
        return False
    asked = content_words(question)
    for hit in hits[:3]:
        signals = dict(hit.signals)
        covered = _covered(asked, hit.chunk.text + " " + hit.chunk.title + " " + hit.chunk.source)
        if signals.get("vector", 0.0) >= min_similarity and covered >= 0.34:
            return True
        if covered >= 0.75:
            return True
    return False


def extractive_answer(
    question: str,
    hits: Sequence[Hit],
    vectorizer: Vectorizer,
    *,
    max_quotes: int = 3,
    min_similarity: float = 0.3,
) -> Answer:
    """Quote the best-matching sentences, rows or lines of the hits, each with a numbered citation."""
    if not relevant(question, hits, min_similarity):
        return Answer(DECLINE_TEXT, (), declined=True)
    chosen: list[Scored] = []
    per_hit: dict[int, int] = {}
    ranked = score_units(question, hits, vectorizer)
    floor = ranked[0].score * QUOTE_FLOOR if ranked else 0.0
    for cand in ranked:
        if cand.score < floor:
            break
        if per_hit.get(cand.hit_index, 0) >= 2 or any(cand.text == c.text for c in chosen):
            continue
        chosen.append(cand)
        per_hit[cand.hit_index] = per_hit.get(cand.hit_index, 0) + 1
        if len(chosen) >= max_quotes:
            break
    numbers: dict[tuple[str, str, str], int] = {}
    citations: list[Citation] = []
    lines = [EXTRACTIVE_NOTE]
    for cand in chosen:
        hit = hits[cand.hit_index]
        place = (hit.root, hit.chunk.source, repr(hit.chunk.locator))
        if place not in numbers:
            numbers[place] = len(numbers) + 1
            citations.append(Citation(numbers[place], hit, link_for(hit), cand.text[:MAX_QUOTE_CHARS]))
        quote = cand.text if len(cand.text) <= MAX_QUOTE_CHARS else cand.text[:MAX_QUOTE_CHARS] + "…"
        lines.append(f"- \u201c{quote}\u201d [{numbers[place]}]")
    return Answer("\n".join(lines), tuple(citations), declined=False)
