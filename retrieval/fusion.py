"""Fuse ranked lists from different searches into one ranking. Pure functions, no I/O.

Scores from different searches live on different scales (cosine similarity, BM25), so we fuse
ranks, never raw scores: reciprocal rank fusion (Cormack et al., 2009).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
