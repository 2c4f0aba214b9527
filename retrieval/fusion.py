"""Fuse ranked lists from different searches into one ranking. Pure functions, no I/O.

Scores from different searches live on different scales (cosine similarity, BM25), so we fuse
ranks, never raw scores: reciprocal rank fusion (Cormack et al., 2009).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mmrag.ingest.chunk import Chunk, Modality, TimeSpan

RRF_K = 60.0


@dataclass(frozen=True, slots=True)
class Fused:
    key: str
    score: float
    ranks: tuple[tuple[str, int], ...]  # (list name, 1-based rank) for every list the key appeared in


def reciprocal_rank_fusion(
    ranked: Mapping[str, Sequence[str]],
    weights: Mapping[str, float] | None = None,
    k: float = RRF_K,
) -> list[Fused]:
    """Fuse named ranked lists of keys; a key's score is sum(weight / (k + rank)) over the lists.

    Ties are broken by the best single rank, then by the key, so the order is deterministic.
    """
    scores: dict[str, float] = {}
    ranks: dict[str, list[tuple[str, int]]] = {}
    for name, keys in ranked.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            position = len(seen)
            scores[key] = scores.get(key, 0.0) + weight / (k + position)
            ranks.setdefault(key, []).append((name, position))
    fused = [Fused(key, score, tuple(ranks[key])) for key, score in scores.items()]
    fused.sort(key=lambda f: (-f.score, min(r for _, r in f.ranks), f.key))
    return fused


MOMENT_BOTH = 1.25  # what was said and what was shown both matched
MOMENT_ONE = 1.1


def _overlaps(a: TimeSpan, b: TimeSpan) -> bool:
    return a.start < b.end and b.start < a.end


def moment_bonus(fused: Sequence[Fused], chunks: Mapping[str, Chunk]) -> list[Fused]:
    """Raise moment chunks whose transcript and keyframes were both among the candidates.

    A moment joins a transcript window with the frames shown during it; when a speech chunk and a
    frame chunk of the same recording overlapping its span were also retrieved, the moment is
    evidence of both and moves up. Pure: returns a re-sorted copy.
    """
    matched: dict[str, set[Modality]] = {}
    spans = [(chunks[f.key], f.key) for f in fused if f.key in chunks]
    for chunk, _ in spans:
        if chunk.modality in (Modality.SPEECH, Modality.FRAME) and isinstance(chunk.locator, TimeSpan):
            for other, key in spans:
                if (
                    other.modality == Modality.MOMENT
                    and other.source == chunk.source
                    and isinstance(other.locator, TimeSpan)
                    and _overlaps(other.locator, chunk.locator)
                ):
                    matched.setdefault(key, set()).add(chunk.modality)
    out = []
    for item in fused:
        kinds = matched.get(item.key, set())
        factor = MOMENT_BOTH if len(kinds) == 2 else MOMENT_ONE if kinds else 1.0
        out.append(replace(item, score=item.score * factor) if factor != 1.0 else item)
    out.sort(key=lambda f: (-f.score, min(r for _, r in f.ranks), f.key))
    return out
