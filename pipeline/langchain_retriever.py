"""LangChain adapter: ``MmragRetriever`` puts an mmrag index behind LangChain's ``BaseRetriever``.

from mmrag.pipeline.langchain_retriever import MmragRetriever
retriever = MmragRetriever(index_dir=Path("my-index"), k=5, modalities=(Modality.TEXT, Modality.TABLE))
docs = retriever.invoke("carbon intensity 2022")        # or: await retriever.ainvoke(...), invoke(q, k=3)
docs[0].metadata["cite"]                                # "p. 3"

It lives in ``pipeline`` because it opens an index folder the way the command line does (config,
models, ``open_app``) and searches with the same filters (``Filters``/``search_index``); it is the
only pipeline module that imports LangChain, and nothing on ``mmrag --help``'s path imports it.

The index is opened lazily, once, on a worker thread the retriever owns; every search runs on that
thread. The index's SQLite connections may only be used from the thread that opened them, and the
stores are not meant for concurrent queries, so sync and async callers from any thread are served
one query at a time. ``close()`` (or ``with``) releases the index; a closed retriever reopens on use.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import TracebackType

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr, SkipValidation

from mmrag.ingest.chunk import Modality
from mmrag.pipeline.api import search_index
from mmrag.pipeline.app import App, open_app
from mmrag.pipeline.config import load_config
from mmrag.pipeline.filters import Filters, parse_filters
from mmrag.retrieval.embed import TextEmbedder
from mmrag.retrieval.records import record_id
from mmrag.retrieval.store import Hit
from mmrag.retrieval.vectorize import ImageTextEncoder


def hit_to_document(hit: Hit) -> Document:
    """A hit as a LangChain document: the chunk text as content, where it came from as JSON-able metadata.

    Metadata has the same keys and values as a hit in ``mmrag search --json`` (``source``, ``modality``,
    ``locator``, ``cite``, ``score``, ``title``) without the text, plus ``root`` (the ingest root the
    source is relative to) and ``image`` (the thumbnail or frame file) when the chunk has one.
    """
    metadata = {key: value for key, value in hit.to_json().items() if key != "text"}
    metadata["root"] = hit.root
    if hit.chunk.image is not None:
        metadata["image"] = str(hit.chunk.image)
    return Document(id=record_id(hit.root, hit.chunk), page_content=hit.chunk.text, metadata=metadata)


class MmragRetriever(BaseRetriever):
    """Hybrid (vector + keyword) search over an mmrag index folder, as LangChain documents.

    ``index_dir`` is a folder built by ``mmrag ingest``; models and limits come from the usual config
    (``config_file``, ``$MMRAG_CONFIG``, environment). ``k`` hits are returned (``invoke(query, k=3)``
    overrides it per call). The filter fields restrict every search like the CLI's ``--modality``,
    ``--type``, ``--folder``, ``--glob``, ``--after`` and ``--before``. ``embedder`` and ``visual``
    replace the configured encoders (tests, custom setups); they must be the ones the index was built with.
    """

    index_dir: Path
    config_file: Path | None = None
    k: int = Field(default=4, ge=1)
    modalities: tuple[Modality, ...] = ()
    kinds: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    keyword: bool = True
    embedder: SkipValidation[TextEmbedder | None] = Field(default=None, exclude=True, repr=False)
    visual: SkipValidation[ImageTextEncoder | None] = Field(default=None, exclude=True, repr=False)

    _index: App | None = PrivateAttr(default=None)
    _worker: ThreadPoolExecutor | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def filters(self) -> Filters:
        return parse_filters(
            modalities=self.modalities,
            kinds=self.kinds,
            folders=self.folders,
            globs=self.globs,
            after=self.modified_after,
            before=self.modified_before,
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return self._worker_for().submit(self._search, query, self._count(k)).result()

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        return await asyncio.wrap_future(self._worker_for().submit(self._search, query, self._count(k)))

    def _count(self, k: int | None) -> int:
        count = self.k if k is None else k
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"k must be a positive integer, got {count!r}")
        return count

    def _worker_for(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-retriever")
            return self._worker

    def _search(self, query: str, k: int) -> list[Document]:
        """Runs on the worker thread only, so the index is opened and used by that thread alone."""
        if self._index is None:
            cfg = load_config(config_file=self.config_file, index_dir=self.index_dir)
            self._index = open_app(cfg, create=False, embedder=self.embedder, visual=self.visual)
        hits = search_index(self._index, query, k, self.filters, keyword=self.keyword)
        return [hit_to_document(hit) for hit in hits]

    def _close_index(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def close(self) -> None:
        """Release the index and the worker thread; the next query opens them again."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.submit(self._close_index).result()
            worker.shutdown(wait=True)

    def __enter__(self) -> MmragRetriever:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
