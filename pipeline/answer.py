"""The built-in answerer that needs no LLM: it quotes the sentences that answer, each cited.

It picks sentences (or table rows, or transcript lines) from the top hits by how well they match the
question, in meaning and in words, and says plainly that the answer is extractive. When nothing
retrieved is relevant enough it declines instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrag.retrieval.keyword import STOPWORDS
from mmrag.retrieval.store import Hit
from mmrag.retrieval.vectorize import Vectorizer

DECLINE_TEXT = "Not found in the indexed files."
EXTRACTIVE_NOTE = "Extractive answer (quoted from the indexed files; no LLM is configured):"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[•])|\n{2,}|\n(?=\s*(?:[•\-*–]|\d+[.)]\s|[A-Z][^a-z\n]{0,60}$))")
_LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*")
_TABLE_ROW = re.compile(r"^\s*\|")
_WORD = re.compile(r"\w+", re.UNICODE)
MIN_SENTENCE_CHARS = 12
MAX_QUOTE_CHARS = 400


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    hit: Hit
    link: str
    quote: str = ""

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
        }


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    declined: bool
    extractive: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "declined": self.declined,
            "extractive": self.extractive,
        }


def link_for(hit: Hit) -> str:
    """A link a person can open: the file, with the page or the second when the format supports it."""
    path = Path(hit.root) / hit.chunk.source if hit.root else Path(hit.chunk.source)
    uri = path.as_uri() if path.is_absolute() else str(path)
    loc = hit.chunk.locator.to_json()
    if "page" in loc:
        return f"{uri}#page={loc['page']}"
    if "start" in loc:
        return f"{uri}#t={int(float(str(loc['start'])))}"
    return uri


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in STOPWORDS and len(w) > 1}


def split_sentences(text: str) -> list[str]:
    """Sentences of prose (line wraps inside a sentence joined), and table rows kept one per line."""
    out: list[str] = []
    for block in re.split(r"\n{2,}", text):
        if _TABLE_ROW.match(block):
            out.extend(line.strip() for line in block.splitlines())
            continue
        for piece in _SENTENCE.split(block):
            sentence = _LINE_BREAK.sub(" ", piece).strip()
            if len(sentence) >= MIN_SENTENCE_CHARS:
                out.append(sentence)
    return out


@dataclass(frozen=True, slots=True)
class _Candidate:
    sentence: str
    hit_index: int
    score: float


def _candidates(question: str, hits: Sequence[Hit], vectorizer: Vectorizer) -> list[_Candidate]:
    terms = content_words(question)
    pairs = [(i, s) for i, hit in enumerate(hits) for s in split_sentences(hit.chunk.text)]
    if not pairs:
        return []
    sentence_vecs = vectorizer.texts([s for _, s in pairs])
    query_vec = vectorizer.texts([question])[0]
    similarity = sentence_vecs @ query_vec
    out = []
    for (i, sentence), sim in zip(pairs, np.asarray(similarity).tolist(), strict=True):
        overlap = len(terms & content_words(sentence)) / max(1, len(terms))
        rank_prior = 1.0 / (1.0 + 0.15 * i)
        out.append(_Candidate(sentence, i, (0.6 * float(sim) + 0.4 * overlap) * rank_prior))
    out.sort(key=lambda c: -c.score)
    return out


def relevant(question: str, hits: Sequence[Hit], min_similarity: float) -> bool:
    """Whether the best hits plausibly answer the question (else the answer declines)."""
    if not hits:
        return False
    terms = content_words(question)
    for hit in hits[:3]:
        signals = dict(hit.signals)
        covered = len(terms & content_words(hit.chunk.text + " " + hit.chunk.title)) / max(1, len(terms))
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
    """Quote the best-matching sentences of the hits, each with a numbered citation."""
    if not relevant(question, hits, min_similarity):
        return Answer(DECLINE_TEXT, (), declined=True)
    chosen: list[_Candidate] = []
    per_hit: dict[int, int] = {}
    for cand in _candidates(question, hits, vectorizer):
        if per_hit.get(cand.hit_index, 0) >= 2 or any(cand.sentence == c.sentence for c in chosen):
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
            citations.append(Citation(numbers[place], hit, link_for(hit), cand.sentence[:MAX_QUOTE_CHARS]))
        quote = cand.sentence if len(cand.sentence) <= MAX_QUOTE_CHARS else cand.sentence[:MAX_QUOTE_CHARS] + "…"
        lines.append(f"- \u201c{quote}\u201d [{numbers[place]}]")
    return Answer("\n".join(lines), tuple(citations), declined=False)
