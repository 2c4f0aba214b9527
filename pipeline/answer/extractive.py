"""The built-in answerer that needs no LLM: it quotes the sentences that answer, each cited.

It picks sentences (or table rows, or transcript lines) from the top hits by how well they match the
question, in meaning and in words, and says plainly that the answer is extractive. When nothing
retrieved is relevant enough it declines instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.chunk import PICTURED
from mmrag.pipeline.answer.units import Scored, score_units, terms
from mmrag.retrieval.store import Hit
from mmrag.retrieval.vectorize import Vectorizer

DECLINE_TEXT = "Not found in the indexed files."
EXTRACTIVE_NOTE = "Extractive answer (quoted from the indexed files; no LLM is configured):"
MAX_QUOTE_CHARS = 400
QUOTE_FLOOR = 0.6  # quote only units scoring at least this share of the best one


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    hit: Hit
    link: str
    quote: str = ""

    @property
    def thumbnail(self) -> str:
        """The picture to show next to an image, frame or moment citation ("" for other evidence)."""
        chunk = self.hit.chunk
        return str(chunk.image) if chunk.image is not None and chunk.modality in PICTURED else ""

    def to_json(self) -> dict[str, object]:
        chunk = self.hit.chunk
        return {
            "n": self.n,
            "source": chunk.source,
            "modality": chunk.modality.value,
            "locator": chunk.locator.to_json(),
            "cite": chunk.locator.cite(),
            "link": self.link,
            "quote": self.quote,
            "thumbnail": self.thumbnail,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    declined: bool
    extractive: bool = True
    flagged: tuple[str, ...] = ()  # sentences the citation check could not match to their evidence
    removed_citations: tuple[int, ...] = ()  # markers to evidence that was never given, removed

    def to_json(self) -> dict[str, object]:
        return {
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "declined": self.declined,
            "extractive": self.extractive,
            "flagged": list(self.flagged),
            "removed_citations": list(self.removed_citations),
        }


def link_for(hit: Hit) -> str:
    """A link a person can open: the file, with the page or the second when the format supports it."""
    path = Path(hit.root) / hit.chunk.source if hit.root else Path(hit.chunk.source)
    uri = path.as_uri() if path.is_absolute() else str(path)
    fragment = hit.chunk.locator.fragment()
    return f"{uri}#{fragment}" if fragment else uri


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
