"""The index's storage interface: what the pipeline needs from a vector store, and nothing more.

One collection holds every chunk of every modality. The store knows which embedding layout built it
and refuses to mix layouts. Stores live in ``retrieval/stores/`` and are picked by name (``[store]
kind``, see ``stores.registry``); the tests' conformance suite says what every store must do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mmrag.ingest.chunk import Chunk, Modality
from mmrag.ingest.errors import MmragError

LAYOUT_VERSION = 1


@dataclass(frozen=True, slots=True)
class EmbeddingLayout:
    """How a chunk's vector is made: which models fill which part of it, and their dimensions.

    Recorded in the collection when it is created; an index opened with a different layout is
    refused, because vectors from different models are not comparable.
    """

    text_model: str
    text_dim: int
    image_model: str = ""
    image_dim: int = 0
    version: int = LAYOUT_VERSION

    @property
    def dim(self) -> int:
        return self.text_dim + self.image_dim

    def to_json(self) -> str:
        return json.dumps(
            {
                "text_model": self.text_model,
                "text_dim": self.text_dim,
                "image_model": self.image_model,
                "image_dim": self.image_dim,
                "version": self.version,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str) -> EmbeddingLayout:
        data = json.loads(raw)
        return cls(
            text_model=str(data["text_model"]),
            text_dim=int(data["text_dim"]),
            image_model=str(data.get("image_model", "")),
            image_dim=int(data.get("image_dim", 0)),
            version=int(data.get("version", 1)),
        )

    def describe(self) -> str:
        image = f" + {self.image_model} ({self.image_dim}-d)" if self.image_model else ", no image part"
        return f"{self.text_model} ({self.text_dim}-d){image}, layout v{self.version}"


class IndexMismatch(MmragError):
    """The index was built with other models than the ones configured now."""


class StoreUnreachable(MmragError):
    """A store server that cannot be used now (down, or a proxy in front refused the credentials)."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """Per-file facts stored with each of its chunks, so filters need no join."""

    root: str
    kind: str
    modified: float  # POSIX seconds
    principals: tuple[str, ...] = ()  # who may read the file (document permissions); () = not known


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Restricts every candidate search. Empty fields mean no restriction.

    ``sources`` is resolved by the caller (from folder/glob patterns, through the manifest) into the
    exact set of sources allowed; ``None`` means all. ``principals`` is the permission seam: when set,
    only chunks whose principals include one of them are seen (an empty set sees nothing); ``None``
    means no permission filtering.
    """

    modalities: frozenset[Modality] = frozenset()
    kinds: frozenset[str] = frozenset()
    sources: frozenset[str] | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    principals: frozenset[str] | None = None

    @property
    def empty(self) -> bool:
        return (
            not self.modalities
            and not self.kinds
            and self.sources is None
            and self.modified_after is None
            and self.modified_before is None
            and self.principals is None
        )


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk found by a search, with a score where higher is better (meaning depends on the search)."""

    chunk: Chunk
    score: float
    root: str = ""
    signals: tuple[tuple[str, float], ...] = field(default=())
    kind: str = ""  # the file type ("pdf", "eml", ...), as the manifest records it

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.chunk.source,
            "modality": self.chunk.modality.value,
            "locator": self.chunk.locator.to_json(),
            "cite": self.chunk.locator.cite(),
            "score": round(self.score, 4),
            "text": self.chunk.text,
            "title": self.chunk.title,
        }


Vectors = npt.NDArray[np.float32]


class ChunkStore(Protocol):
    """What the pipeline needs from the vector store.

    Chunks are keyed by ``records.record_id`` (root + chunk id), so writing a chunk again replaces it.
    Every query applies the whole ``SearchFilter``, the principals array included. Opening a store
    built with another ``EmbeddingLayout`` raises ``IndexMismatch``; emptying one whatever its layout
    is the registry's ``drop`` (``stores.registry``).
    """

    @property
    def layout(self) -> EmbeddingLayout: ...

    def upsert_files(self, files: Sequence[tuple[Sequence[Chunk], Vectors, FileInfo]]) -> None:
        """Several files' chunks in one write (a store call costs ~10 ms whatever its size)."""
        ...

    def delete_source(self, root: str, source: str) -> None:
        """Remove every chunk of one file."""
        ...

    def set_principals(self, root: str, source: str, principals: Sequence[str]) -> None:
        """Record who may now read one file's chunks (its content unchanged: nothing is embedded again)."""
        ...

    def chunks_of(self, root: str, source: str) -> tuple[list[Chunk], Vectors]:
        """One file's stored chunks and their vectors, in the same order (to move a renamed file
        without embedding it again)."""
        ...

    def query(self, vector: Vectors, k: int, flt: SearchFilter) -> list[Hit]:
        """The ``k`` nearest chunks passing ``flt``, nearest first (score: cosine similarity)."""
        ...

    def count(self) -> int: ...

    def rebuild(self) -> int:
        """Rewrite the store's search structure from its records (after heavy churn); returns the record count."""
        ...

    def ids(self, root: str | None = None, source: str | None = None) -> set[str]:
        """The stored record ids, all or one root's or one file's (for checks and reconciliation)."""
        ...

    def present(self, ids: set[str], flt: SearchFilter) -> set[str]:
        """Those of ``ids`` the store holds and ``flt`` lets through (an API replica checks a keyword
        snapshot's hits against the live store with it)."""
        ...

    def files_of(self, ids: set[str]) -> set[tuple[str, str]]:
        """The (root, source) of the files these record ids belong to (for repairs)."""
        ...

    def close(self) -> None:
        """Release what the store holds open; a closed store is not used again."""
        ...
