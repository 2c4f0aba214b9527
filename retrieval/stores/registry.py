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


STORES: dict[str, StoreBackend] = {
    "chroma": StoreBackend(_open_chroma, _drop_chroma, "Chroma, embedded (a folder in the index)"),
}


def backend(kind: str) -> StoreBackend:
    """The store called ``kind``; a ``KeyError`` names the known ones (config validates before this)."""
    try:
        return STORES[kind]
    except KeyError:
        raise KeyError(f"unknown store {kind!r} (known: {', '.join(sorted(STORES))})") from None
