"""The one protocol every ingestor follows, and the small frozen configs they share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mmrag.ingest.chunk import Chunk, Table


@dataclass(frozen=True, slots=True)
class ChunkingConfig:
    """How text is cut into chunks: a target size in characters and an overlap between pieces."""

    target_chars: int = 1000
    max_chars: int = 1600
    overlap_chars: int = 150
    max_embedded_rows: int = 20_000  # rows of one table given row chunks; all of them go to the SQL table store


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """What media ingestors need beyond chunking: where to write derived images, which models to use.

    ``media_dir`` is a folder inside the index where thumbnails and video frames are written (chunk
    ``image`` paths point there); ``None`` means do not write any. Model locations are resolved by
    the pipeline (``mmrag models``); an empty location means the role is unavailable and the
    ingestor must still produce what it can without it.
    """

    media_dir: Path | None = None
    ocr_engine: str = "rapidocr"  # "rapidocr", "tesseract" or "" (no OCR)
    ocr_cache: Path | None = None  # a file remembering OCR results by picture content; None = no cache
    speech_backend: str = "faster-whisper"  # or "openai-whisper"
    speech_location: str = ""  # a model folder/file; "" = no speech model available
    max_image_pixels: int = 120_000_000
    max_ocr_pages: int = 50  # pages of one PDF read by OCR (no or unreadable text layer); 0 = none
    thumbnail_px: int = 384
    keyframe_max_interval: float = 10.0  # seconds between keyframes even without a scene change
    speech_window: tuple[float, float] = (30.0, 60.0)  # transcript chunk length, min and max seconds
    cpu_threads: int = 2
    wordnet_dir: str = "/usr/share/wordnet"  # WordNet 3.0 (Debian wordnet-base): photo labels in plain words; "" = none
    office: str = ""  # LibreOffice program that renders slide pictures; "" = none (slides keep their text)
    render_timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class IngestSettings:
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    media: MediaConfig = field(default_factory=MediaConfig)


@dataclass(frozen=True, slots=True)
class Note:
    """Something a person should know about a file that was indexed, e.g. only in part ("OCR read 50
    of 80 scanned pages: raise [limits] max_ocr_pages"). Yielded next to chunks; the run reports it."""

    reason: str


class Ingestor(Protocol):
    """Turns one file into chunks.

    ``path`` is the file on disk; ``source`` is its path relative to the ingest root, which every
    chunk carries. Raises ``IngestError`` for input it cannot use (corrupt, encrypted, empty...).
    Constructing an ingestor is cheap; anything heavy loads lazily on first use. Ingestors of
    tabular content also yield ``Table`` items, which the pipeline loads into the SQL table store;
    a ``Note`` says what a person should know about a file indexed in part.
    """

    def ingest(self, path: Path, source: str) -> Iterator[Chunk | Table | Note]: ...
