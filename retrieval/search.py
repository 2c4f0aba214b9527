"""Hybrid search: vector candidates and keyword candidates, fused by rank."""

from __future__ import annotations

from dataclasses import replace

from mmrag.retrieval.fusion import reciprocal_rank_fusion
from mmrag.retrieval.keyword import KeywordIndex
from mmrag.retrieval.records import record_id
from mmrag.retrieval.store import ChunkStore, Hit, SearchFilter
from mmrag.retrieval.vectorize import Vectorizer

CANDIDATES = 50


class Searcher:
    """Runs each candidate search and fuses them; every search sees the same filter."""

    def __init__(self, store: ChunkStore, keyword: KeywordIndex | None, vectorizer: Vectorizer) -> None:
        self._store = store
        self._keyword = keyword
        self._vectorizer = vectorizer

    def search(self, query: str, k: int = 10, flt: SearchFilter | None = None, *, keyword: bool = True) -> list[Hit]:
        flt = flt or SearchFilter()
        pool = max(CANDIDATES, k)
        lists: dict[str, list[Hit]] = {"vector": self._store.query(self._vectorizer.query(query), pool, flt)}
        if keyword and self._keyword is not None:
            lists["keyword"] = self._keyword.search(query, pool, flt)
        by_id: dict[str, Hit] = {}
        signals: dict[str, dict[str, float]] = {}
        ranked: dict[str, list[str]] = {}
        for name, hits in lists.items():
            ranked[name] = []
            for hit in hits:
                key = record_id(hit.root, hit.chunk)
                by_id.setdefault(key, hit)
                signals.setdefault(key, {})[name] = hit.score
                ranked[name].append(key)
        fused = reciprocal_rank_fusion(ranked)
        best = sum(1.0 / (60.0 + 1) for _ in ranked) or 1.0
        out = []
        for item in fused[:k]:
            hit = by_id[item.key]
            out.append(replace(hit, score=item.score / best, signals=tuple(sorted(signals[item.key].items()))))
        return out
