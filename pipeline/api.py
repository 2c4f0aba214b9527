"""The Python API: the same operations as the command line, returning typed results.

from mmrag.pipeline.api import ingest, search, ask
from mmrag.pipeline.config import load_config
cfg = load_config(index_dir=Path("my-index"))
report = ingest([Path("~/drive")], cfg)
hits = search("carbon intensity 2022", cfg, k=5)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmrag.pipeline.answer.extractive import Answer
from mmrag.pipeline.answer.llm import TokenSink
from mmrag.pipeline.config import Config
from mmrag.pipeline.filters import Filters, resolve_filter
from mmrag.pipeline.index import Index, open_index
from mmrag.pipeline.ingest_run import IngestReport, ProgressSink, run_ingest
from mmrag.retrieval.embed import TextEmbedder
from mmrag.retrieval.store import Hit

ANSWER_HITS = 8


def ingest(
    paths: Sequence[Path],
    cfg: Config,
    *,
    progress: ProgressSink | None = None,
    reindex: bool = False,
    embedder: TextEmbedder | None = None,
) -> IngestReport:
    index = open_index(cfg, create=True, embedder=embedder, reindex=reindex)
    try:
        return run_ingest(paths, index, cfg, progress)
    finally:
        index.close()


def search_index(
    index: Index,
    query: str,
    k: int = 10,
    filters: Filters | None = None,
    keyword: bool = True,
    lists: frozenset[str] | None = None,
) -> list[Hit]:
    flt = resolve_filter(filters or Filters(), index.manifest)
    return index.searcher(lists).search(query, k, flt, keyword=keyword)


def ask_index(
    index: Index, question: str, cfg: Config, filters: Filters | None = None, stream: TokenSink | None = None
) -> tuple[Answer, list[Hit]]:
    """Answer from the index: generative with a configured LLM, extractive (quoted, cited) otherwise."""
    from mmrag.pipeline.answer.generate import answer_question

    return answer_question(index, question, cfg, filters, stream)


def search(
    query: str, cfg: Config, k: int = 10, filters: Filters | None = None, *, embedder: TextEmbedder | None = None
) -> list[Hit]:
    index = open_index(cfg, create=False, embedder=embedder)
    try:
        return search_index(index, query, k, filters)
    finally:
        index.close()


def ask(question: str, cfg: Config, filters: Filters | None = None, *, embedder: TextEmbedder | None = None) -> Answer:
    index = open_index(cfg, create=False, embedder=embedder)
    try:
        return ask_index(index, question, cfg, filters)[0]
    finally:
        index.close()
