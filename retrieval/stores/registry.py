"""Vector stores by name: ``[store] kind`` in the config picks one.

Adding a store is one module in this package (a class that follows ``store.ChunkStore``) and one
line in ``STORES``; the tests' conformance suite (``tests/retrieval/stores/test_conformance.py``)
then runs against it. Each entry imports its module only when used, so naming stores loads no
database library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmrag.retrieval.store import ChunkStore, EmbeddingLayout


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where a store keeps its chunks: ``path``, its folder inside the index (embedded stores).

    ``media_dir`` is the index's folder of thumbnails and frames: image paths inside it are stored
    relative to it, so a moved index keeps its pictures.
    """

    path: Path
    media_dir: Path | None = None
    url: str = ""  # a store server's address (chroma-http)
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request to it (a proxy checks them)
    tenant: str = "default_tenant"
    database: str = "default_database"
    collection: str = "mmrag_chunks"


@dataclass(frozen=True, slots=True)
class StoreBackend:
    """How to open a store (``create`` makes it when missing) and how to empty one whatever its layout."""

    open: Callable[[StoreLocation, EmbeddingLayout, bool], ChunkStore]
    drop: Callable[[StoreLocation], None]
    describe: str


def _open_chroma(location: StoreLocation, layout: EmbeddingLayout, create: bool) -> ChunkStore:
    from mmrag.retrieval.stores.chroma import ChromaStore

    return ChromaStore(location.path, layout, create=create, media_dir=location.media_dir)


def _drop_chroma(location: StoreLocation) -> None:
    from mmrag.retrieval.stores.chroma import ChromaStore

    ChromaStore.drop(location.path)


def _client(location: StoreLocation) -> object:
    from mmrag.retrieval.stores.chroma import ChromaStore

    if not location.url:
        raise ValueError("[store] kind = chroma-http needs [store] url (e.g. http://127.0.0.1:8000)")
    return ChromaStore.remote(
        location.url, headers=dict(location.headers), tenant=location.tenant, database=location.database
    )


def _open_chroma_http(location: StoreLocation, layout: EmbeddingLayout, create: bool) -> ChunkStore:
    from mmrag.retrieval.stores.chroma import ChromaStore

    return ChromaStore(
        None,
        layout,
        create=create,
        media_dir=location.media_dir,
        client=_client(location),
        collection=location.collection,
    )


def _drop_chroma_http(location: StoreLocation) -> None:
    from mmrag.retrieval.stores.chroma import ChromaStore

    ChromaStore.drop_collection(_client(location), location.collection)


STORES: dict[str, StoreBackend] = {
    "chroma": StoreBackend(_open_chroma, _drop_chroma, "Chroma, embedded (a folder in the index)"),
    "chroma-http": StoreBackend(_open_chroma_http, _drop_chroma_http, "Chroma server (chroma run), over HTTP"),
}


def backend(kind: str) -> StoreBackend:
    """The store called ``kind``; a ``KeyError`` names the known ones (config validates before this)."""
    try:
        return STORES[kind]
    except KeyError:
        raise KeyError(f"unknown store {kind!r} (known: {', '.join(sorted(STORES))})") from None
