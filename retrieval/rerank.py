"""Reranking the fused top hits by what the question says beyond its words. Pure: no I/O, no model.

Fusion (``search.fuse``) ranks by how each candidate search placed a chunk. Over its top
``RERANK_DEPTH`` this stage adds what a person reading the question would check first, using only
what the hits already carry:

- **rare words**: how much of the question's vocabulary the chunk holds, each word weighted by how
  rare it is among the candidates (the one page that says "heroin" beats pages that say "DEA" often);
- **key terms**: the years, codes and names the question gives (``query.analyse``) must be in the
  evidence: a chunk holding all of them moves up, one holding none moves down;
- **the medium named**: a question about "the email" or "the slide deck" prefers chunks of that kind;
- **summaries are not answers**: a table's summary chunk (columns, ranges, examples) gives way to the
  table's rows for a question that asks for a value, unless the question is about the table's shape.

The weights are round numbers set once for every corpus; ``WEIGHTS`` documents them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mmrag.ingest.chunk import Modality
from mmrag.retrieval.query import Question, Wants, mentions
from mmrag.retrieval.store import Hit
from mmrag.retrieval.terms import terms

RERANK_DEPTH = 30


@dataclass(frozen=True, slots=True)
class Weights:
    fused: float = 1.0  # the fused rank score (0..1)
    rare_words: float = 0.6  # idf-weighted share of the question's words the chunk holds (0..1)
    key_terms: float = 0.6  # share of the question's years, codes and names the chunk mentions (0..1)
    medium: float = 0.25  # the chunk is of the kind of file the question names
    summary: float = 0.3  # penalty: a table summary for a question that asks for a value


WEIGHTS = Weights()
_SHAPE = re.compile(r"\b(?:columns?|fields?|rows?|headers?|how many (?:entries|records|lines))\b", re.IGNORECASE)
_VALUES = frozenset({Wants.VALUE, Wants.COUNT, Wants.DATE, Wants.PERSON, Wants.PLACE, Wants.FACT, Wants.LIST})


def is_summary(hit: Hit) -> bool:
    """A table's summary chunk (its columns, ranges and examples), not rows."""
    if hit.chunk.modality is not Modality.TABLE:
        return False
    first = hit.chunk.text.split("\n", 1)[0]
    return "table summary" in first


def _said(hit: Hit) -> str:
    chunk = hit.chunk
    return f"{chunk.title}\n{chunk.source}\n{chunk.text}"


def features(question: Question, hits: Sequence[Hit]) -> list[dict[str, float]]:
    """The reranking signals of each hit (0..1 each), for inspection and for ``rerank``."""
    asked = terms(question.text)
    held = [terms(_said(h)) for h in hits]
    n = len(hits)
    df = {t: sum(t in h for h in held) for t in asked}
    idf = {t: math.log((n + 1) / (d + 0.5)) for t, d in df.items() if d}  # a word no candidate holds ranks none
    total = math.fsum(max(0.0, v) for v in idf.values()) or 1.0
    keys = question.key_terms
    out = []
    for hit, words in zip(hits, held, strict=True):
        said = _said(hit)
        f = {
            "fused": hit.score,
            "rare_words": math.fsum(max(0.0, idf[t]) for t in idf.keys() & words) / total,
            "key_terms": (sum(mentions(said, term) for term in keys) / len(keys)) if keys else 0.0,
            "medium": float(
                bool(question.kinds and hit.kind in question.kinds)
                or bool(question.modalities and hit.chunk.modality in question.modalities)
            ),
            "summary": float(is_summary(hit) and question.wants in _VALUES and not _SHAPE.search(question.text)),
        }
        out.append(f)
    return out


def rerank(question: Question, hits: Sequence[Hit], k: int, weights: Weights = WEIGHTS) -> list[Hit]:
    """The ``k`` best of ``hits`` (fused, best first) after weighing the signals above.

    A hit's ``signals`` gain ``rerank`` (its new score); ``score`` stays the fused score so that
    callers comparing with fusion alone see the same numbers. Ties keep the fused order.
    """
    top = list(hits[:RERANK_DEPTH])
    if len(top) < 2:
        return top[:k]
    scored = []
    for position, (hit, f) in enumerate(zip(top, features(question, top), strict=True)):
        value = (
            weights.fused * f["fused"]
            + weights.rare_words * f["rare_words"]
            + weights.key_terms * f["key_terms"]
            + weights.medium * f["medium"]
            - weights.summary * f["summary"]
        )
        scored.append((value, position, hit))
    scored.sort(key=lambda s: (-s[0], s[1]))
    best = scored[0][0] or 1.0
    return [
        replace(hit, signals=(*hit.signals, ("rerank", round(value / best, 4)))) for value, _, hit in scored[:k]
    ]
