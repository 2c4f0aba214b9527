"""Pick the passages that answer a question from retrieved chunks, without an LLM.

A chunk is cut into answer units: sentences of prose, lines of OCR text, and table rows paired with
their column names ("Team: Maple Leafs · Stanley Cups: 13"). Context lines (the heading path or
table name every chunk starts with) and table summaries are context, not answers. Units are scored
by meaning (sentence-embedding similarity to the question) and by the question's words they
contain, weighted by how rare each word is among the candidates, with a small preference for
better-ranked hits and, for "how many / when / which year" questions, for units holding a number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmrag.ingest.chunk import Chunk
from mmrag.retrieval.store import Hit
from mmrag.retrieval.terms import terms
from mmrag.retrieval.vectorize import Vectorizer

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[•])")
_LIST_ITEM = re.compile(r"\n(?=\s*(?:[•\-*–]|\d+[.)])\s)")
_DIGIT = re.compile(r"\d")
_NUMERIC_QUESTION = re.compile(
    r"\b(how (many|much|long|old|far)|what (year|percentage|share|price|rate|amount|number|date|time)|"
    r"which (year|page|number)|when)\b",
    re.IGNORECASE,
)
_OCR_PREFIX = "Text in image:"
MIN_UNIT_CHARS = 8
MAX_UNIT_CHARS = 400
# Units embedded per answer. Embedding every unit of 8 hits cost 0.3-0.7 s per answer; on the dev
# questions 32 (and 16) changed no answer's correctness.
EMBED_LIMIT = 32
CONTEXT_MARKERS = (" — ", " > ")


@dataclass(frozen=True, slots=True)
class Unit:
    text: str
    hit_index: int


@dataclass(frozen=True, slots=True)
class Scored:
    text: str
    hit_index: int
    score: float
    overlap: float
    similarity: float


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_units(lines: list[str], index: int) -> list[Unit]:
    header = _cells(lines[0])
    out = []
    for line in lines[1:]:
        if set(line.replace("|", "").strip()) <= set("-: "):
            continue
        cells = _cells(line)
        pairs = [f"{h}: {c}" if h and not h.startswith("column ") else c for h, c in zip(header, cells, strict=False)]
        text = " · ".join(p for p, c in zip(pairs, cells, strict=False) if c)
        if text:
            out.append(Unit(text[:MAX_UNIT_CHARS], index))
    return out


def _is_context(block: str, chunk: Chunk, first: bool) -> bool:
    if not first or "\n" in block.strip() or len(block) > 240:
        return False
    return block.strip() == chunk.title or any(m in block for m in CONTEXT_MARKERS)


def units(chunk: Chunk, index: int) -> list[Unit]:
    """The answer units of one chunk (none for table summaries)."""
    blocks = [b for b in re.split(r"\n{2,}", chunk.text) if b.strip()]
    if blocks and "table summary" in blocks[0]:
        return []
    out: list[Unit] = []
    for position, block in enumerate(blocks):
        if _is_context(block, chunk, position == 0) and len(blocks) > 1:
            continue
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and lines[0].lstrip().startswith("|"):
            out.extend(_table_units(lines, index))
            continue
        if any(line.startswith(_OCR_PREFIX) for line in lines):
            for line in lines:
                line = line.removeprefix(_OCR_PREFIX).strip()
                if len(line) >= MIN_UNIT_CHARS:
                    out.append(Unit(line[:MAX_UNIT_CHARS], index))
            continue
        for item in _LIST_ITEM.split(block):
            for sentence in _SENTENCE.split(item):
                flat = " ".join(sentence.split())
                if len(flat) >= MIN_UNIT_CHARS:
                    out.append(Unit(flat[:MAX_UNIT_CHARS], index))
    return out


def score_units(question: str, hits: Sequence[Hit], vectorizer: Vectorizer) -> list[Scored]:
    """Every answer unit of the hits, best first.

    Only the ``EMBED_LIMIT`` units that lead by the question's words (and the first unit of each hit) are
    embedded: embedding is most of an answer's time, and a unit sharing no rare word with the question
    rarely wins. The others keep their word score with no meaning score.
    """
    candidates = [u for i, hit in enumerate(hits) for u in units(hit.chunk, i)]
    if not candidates:
        return []
    asked = terms(question)
    unit_terms = [terms(u.text) for u in candidates]
    df = {t: sum(t in ut for ut in unit_terms) for t in asked}
    idf = {t: math.log((len(candidates) + 1) / (df[t] + 0.5)) for t in asked}
    total = sum(idf.values()) or 1.0
    numeric = bool(_NUMERIC_QUESTION.search(question))
    overlaps = [sum(idf[t] for t in asked & found) / total for found in unit_terms]
    bonuses = [0.1 if numeric and _DIGIT.search(u.text) else 0.0 for u in candidates]
    priors = [1.0 / (1.0 + 0.1 * u.hit_index) for u in candidates]
    chosen = _to_embed(candidates, [(0.5 * o + b) * p for o, b, p in zip(overlaps, bonuses, priors, strict=True)])
    similarity = [0.0] * len(candidates)
    if chosen:
        vectors = vectorizer.texts([candidates[i].text for i in chosen])
        for i, sim in zip(chosen, np.asarray(vectors @ vectorizer.texts([question])[0]).tolist(), strict=True):
            similarity[i] = float(sim)
    out = []
    for unit, overlap, bonus, prior, sim in zip(candidates, overlaps, bonuses, priors, similarity, strict=True):
        score = (0.5 * sim + 0.5 * overlap + bonus) * prior
        out.append(Scored(unit.text, unit.hit_index, score, overlap, sim))
    out.sort(key=lambda s: -s.score)
    return out


def _to_embed(candidates: Sequence[Unit], lexical: Sequence[float]) -> list[int]:
    """Indexes of the units worth embedding: the first of each hit, then the best by words, in order."""
    if len(candidates) <= EMBED_LIMIT:
        return list(range(len(candidates)))
    first = {u.hit_index: i for i, u in reversed(list(enumerate(candidates)))}
    chosen = set(first.values())
    for i in sorted(range(len(candidates)), key=lambda i: -lexical[i]):
        if len(chosen) >= EMBED_LIMIT:
            break
        chosen.add(i)
    return sorted(chosen)
