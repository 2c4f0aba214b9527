"""Hybrid search: candidate lists from vectors, keywords and exact terms, fused by rank.

Candidate lists:
- ``vector``: nearest chunks of any modality to the query vector;
- ``keyword``: BM25 over every chunk's text (all meaningful query words);
- ``exact``: BM25 restricted to the query's exact terms (codes, numbers, dates, quoted phrases,
  acronyms), present only when the query has such terms: an identifier should win even when its
  chunk shares few other words with the question;
- one list per non-text modality (the vector list regrouped, plus dedicated nearest-neighbour
  queries for visual modalities when the index has an image part), at a lower weight: a table row,
  a frame or a transcript window competes with prose by rank within its own kind, not by raw
  scores that run higher or lower per modality.
The fused order comes from ``fusion.reciprocal_rank_fusion``; moment chunks whose transcript and
keyframes both matched get a bonus (``fusion.moment_bonus``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from mmrag.ingest.chunk import PICTURED, Modality
from mmrag.retrieval.fusion import Fused, moment_bonus, reciprocal_rank_fusion
from mmrag.retrieval.keyword import KeywordIndex, exact_terms
from mmrag.retrieval.query import analyse
from mmrag.retrieval.records import record_id
from mmrag.retrieval.rerank import RERANK_DEPTH, rerank
from mmrag.retrieval.store import ChunkStore, Hit, SearchFilter
from mmrag.retrieval.vectorize import Vectorizer

VECTOR_POOL = 100
KEYWORD_POOL = 50
EXACT_POOL = 5
RARE_POOL = 10
MODALITY_POOL = 5
WEIGHTS = {"vector": 1.0, "keyword": 1.0, "exact": 1.0, "rare": 0.5}
MODALITY_WEIGHT = 0.3
ALL_LISTS = frozenset({"vector", "keyword", "exact", "rare", "modality", "rerank"})  # "rerank": the stage after fusion
# One worker: keyword searches of every Searcher in the process run there, one at a time, so a
# keyword index's SQLite connection is never used by two threads at once.
_KEYWORD_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-keyword")


class Searcher:
    """Runs each candidate search and fuses them; every search sees the same filter."""

    def __init__(
        self,
        store: ChunkStore,
        keyword: KeywordIndex | None,
        vectorizer: Vectorizer,
        lists: frozenset[str] = ALL_LISTS,
    ) -> None:
        self._store = store
        self._keyword = keyword
        self._vectorizer = vectorizer
        self._lists = lists  # which candidate lists run (all by default; fewer for comparisons)

    def _keyword_lists(self, query: str, k: int, flt: SearchFilter, use: frozenset[str]) -> dict[str, list[Hit]]:
        lists: dict[str, list[Hit]] = {}
        if self._keyword is None:
            return lists
        if "keyword" in use:
            lists["keyword"] = self._keyword.search(query, max(KEYWORD_POOL, k), flt)
        if "exact" in use and exact_terms(query):
            lists["exact"] = self._keyword.search(query, EXACT_POOL, flt, exact=True)
        if "rare" in use:
            rare = self._keyword.rare_words(query)
            if rare:
                lists["rare"] = self._keyword.search(" ".join(rare), RARE_POOL, flt)
        return lists

    def candidates(self, query: str, k: int, flt: SearchFilter, *, keyword: bool = True) -> dict[str, list[Hit]]:
        """Every candidate list for a query, by name.

        The keyword searches (SQLite, which releases the GIL) run on a worker thread while this thread
        embeds the query and searches the vectors; the keyword index is only ever used by one thread
        at a time.
        """
        use = self._lists if keyword else self._lists - {"keyword", "exact", "rare"}
        pending = _KEYWORD_POOL.submit(self._keyword_lists, query, k, flt, use)
        lists: dict[str, list[Hit]] = {}
        vector: list[Hit] = []
        query_vector = None
        try:
            if "vector" in use or "modality" in use:
                query_vector = self._vectorizer.query(query)
                vector = self._store.query(query_vector, max(VECTOR_POOL, k), flt)
        finally:
            lists.update(pending.result())
        if "vector" in use:
            lists = {"vector": vector, **lists}
        if "modality" not in use or query_vector is None:
            return lists
        for modality in Modality:
            if modality == Modality.TEXT or (flt.modalities and modality not in flt.modalities):
                continue
            if self._vectorizer.visual and modality in PICTURED:
                own = replace(flt, modalities=frozenset({modality}))
                lists[f"modality:{modality}"] = self._store.query(query_vector, MODALITY_POOL, own)
            else:
                same = [h for h in vector if h.chunk.modality == modality][:MODALITY_POOL]
                if same:
                    lists[f"modality:{modality}"] = same
        return lists

    def search(self, query: str, k: int = 10, flt: SearchFilter | None = None, *, keyword: bool = True) -> list[Hit]:
        flt = flt or SearchFilter()
        if "rerank" not in self._lists:
            return fuse(self.candidates(query, k, flt, keyword=keyword), k)
        fused = fuse(self.candidates(query, max(k, RERANK_DEPTH), flt, keyword=keyword), max(k, RERANK_DEPTH))
        return rerank(analyse(query), fused, k)


def fuse(lists: dict[str, list[Hit]], k: int, weights: dict[str, float] | None = None) -> list[Hit]:
    """One ranked list from named candidate lists (pure: no I/O).

    ``weights`` per list name default to ``WEIGHTS`` (and ``MODALITY_WEIGHT`` for other names).
    """
    by_id: dict[str, Hit] = {}
    signals: dict[str, dict[str, float]] = {}
    ranked: dict[str, list[str]] = {}
    for name, hits in lists.items():
        ranked[name] = []
        for hit in hits:
            key = record_id(hit.root, hit.chunk)
            by_id.setdefault(key, hit)
            signals.setdefault(key, {}).setdefault(name.split(":")[0], hit.score)
            ranked[name].append(key)
    weights = {name: (weights or WEIGHTS).get(name, MODALITY_WEIGHT) for name in ranked}
    fused = moment_bonus(reciprocal_rank_fusion(ranked, weights), {key: hit.chunk for key, hit in by_id.items()})
    best = _best_possible(weights)
    return [_scored(by_id[f.key], f, best, signals[f.key]) for f in fused[:k]]


def _best_possible(weights: dict[str, float]) -> float:
    top = sorted(weights.values(), reverse=True)
    return sum(top[:3]) / 61.0 or 1.0


def _scored(hit: Hit, fused: Fused, best: float, signals: dict[str, float]) -> Hit:
    return replace(hit, score=min(1.0, fused.score / best), signals=tuple(sorted(signals.items())))
