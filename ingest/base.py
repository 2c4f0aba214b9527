"""The one protocol every ingestor follows, and the small config they share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mmrag.ingest.chunk import Chunk


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    """How text is cut into chunks: a target size in characters and an overlap between pieces."""

    target_chars: int = 1000
    max_chars: int = 1600
    overlap_chars: int = 150


class Ingestor(Protocol):
    """Turns one file into chunks.

    ``path`` is the file on disk; ``source`` is its path relative to the ingest root, which every
    chunk carries. Raises ``IngestError`` for input it cannot use (corrupt, encrypted, empty...).
    Constructing an ingestor is cheap; anything heavy loads lazily on first use.
    """

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]: ...
