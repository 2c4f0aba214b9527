"""What an ingest run did and where its time went: per-modality figures and the timing wrappers.

Stage times come from wrappers put around the index's writers and encoders, and around the OCR,
speech and labelling classes, for the duration of a run; "parse" is what remains (reading,
decoding, chunking). The wrappers change nothing else and are removed when the run ends.
"""

from __future__ import annotations

import importlib
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mmrag.ingest.chunk import Chunk, Slide, Table
from mmrag.ingest.detect import detect
from mmrag.ingest.filetypes import file_type
from mmrag.pipeline.app import App
from mmrag.pipeline.bench.common import StageTimer

ORDER = ("pdf", "docs", "slides", "tables", "images", "audio", "video")  # families of ``filetypes.FILE_TYPES``
UNIT = {"pdf": "pages", "docs": "files", "slides": "slides", "tables": "rows", "images": "images"}
TEXT_MODALITIES = ("pdf", "docs", "slides", "tables")
MEDIA = ("audio", "video")
# Classes whose work is a stage of its own; patched for the run, wherever they are called from.
CLASS_STAGES = (
    ("mmrag.ingest.engines.ocr", "RapidOcr", "read", "ocr"),
    ("mmrag.ingest.engines.ocr", "TesseractOcr", "read", "ocr"),
    ("mmrag.ingest.engines.speech", "FasterWhisperTranscriber", "transcribe", "transcription"),
    ("mmrag.ingest.engines.speech", "OpenAIWhisperTranscriber", "transcribe", "transcription"),
    ("mmrag.ingest.formats.images", "ImageLabeler", "labels", "labels"),
)


@dataclass(frozen=True, slots=True)
class ModalityRun:
    """One modality's ingest: how much went in, how long it took, and where the time went."""

    modality: str
    files: int
    units: float  # pages, files, slides, rows or images; media seconds for audio and video
    chunks: int
    seconds: float
    stages: tuple[tuple[str, float], ...]
    slowest: tuple[tuple[str, float], ...]
    skipped: int = 0
    baseline_seconds: float | None = None
    baseline_stages: tuple[tuple[str, float], ...] = ()
    baseline_parser: str = ""

    @property
    def unit(self) -> str:
        return UNIT.get(self.modality, "rtf")

    @property
    def per_s(self) -> float:
        """Units per second; for audio and video, media seconds per second (the inverse of the RTF)."""
        return self.units / self.seconds if self.seconds > 0 else 0.0

    @property
    def rtf(self) -> float | None:
        return self.seconds / self.units if self.unit == "rtf" and self.units > 0 else None

    @property
    def baseline_per_s(self) -> float | None:
        if self.baseline_seconds is None or self.baseline_seconds <= 0:
            return None
        return self.units / self.baseline_seconds

    @property
    def speedup(self) -> float | None:
        return self.baseline_seconds / self.seconds if self.baseline_seconds and self.seconds > 0 else None

    def to_json(self) -> dict[str, object]:
        total = self.seconds or 1.0
        out: dict[str, object] = {
            "per_s": round(self.per_s, 3),
            "unit": self.unit,
            "units": round(self.units, 2),
            "files": self.files,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 2),
            "stage_share": {name: round(s / total, 3) for name, s in self.stages},
            "stage_s": {name: round(s, 2) for name, s in self.stages},
            "slowest_files": [{"file": f, "seconds": round(s, 2)} for f, s in self.slowest],
            "skipped": self.skipped,
            "baseline_per_s": None if self.baseline_per_s is None else round(self.baseline_per_s, 3),
            "baseline": "n/a" if self.baseline_seconds is None else self.baseline_parser,
            "speedup": None if self.speedup is None else round(self.speedup, 2),
        }
        if self.rtf is not None:
            out["rtf"] = round(self.rtf, 4)
            out["media_s"] = round(self.units, 1)
        if self.baseline_seconds is not None:
            out["baseline_s"] = round(self.baseline_seconds, 2)
            out["baseline_stage_s"] = {name: round(s, 2) for name, s in self.baseline_stages}
        return out


@dataclass
class Recorder:
    """Per-file times (from the progress sink), captured chunk texts and table rows of a run."""

    texts: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0
    chunks: int = 0
    slides: set[tuple[str, int]] = field(default_factory=set)
    file_seconds: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def files_found(self, total: int) -> None:
        self._last = time.perf_counter()

    def file_done(self, source: str, outcome: str, chunks: int) -> None:
        now = time.perf_counter()
        self.file_seconds[source] = now - self._last
        self._last = now

    def saw_chunks(self, chunks: Sequence[Chunk], *_: object) -> None:
        from mmrag.retrieval.vectorize import embedding_text

        self.chunks += len(chunks)
        for chunk in chunks:
            self.texts.setdefault(chunk.source, []).append(embedding_text(chunk))
            if isinstance(chunk.locator, Slide):
                self.slides.add((chunk.source, chunk.locator.slide))

    def saw_tables(self, root: str, source: str, tables: Sequence[Table], principals: Sequence[str] = ()) -> None:
        self.rows += sum(len(t.rows) for t in tables)


@contextmanager
def instrumented(index: App, timer: StageTimer, recorder: Recorder) -> Iterator[None]:
    """Time every stage of an ingest into ``index`` and record what it wrote, for the ``with`` block."""
    with ExitStack() as stack:
        stack.enter_context(timer.patch(index.vectorizer, "chunks", "embedding", recorder.saw_chunks))
        for part, name in (
            (index.store, "upsert"),
            (index.store, "upsert_files"),
            (index.store, "delete_source"),
            (index.keyword, "upsert"),
            (index.keyword, "delete_source"),
            (index.tables, "delete_source"),
            (index.manifest, "put"),
        ):
            stack.enter_context(timer.patch(part, name, "writing"))
        stack.enter_context(timer.patch(index.tables, "replace_source", "writing", recorder.saw_tables))
        for module, cls, method, stage in CLASS_STAGES:
            owner = getattr(importlib.import_module(module), cls, None)
            if owner is not None:
                stack.enter_context(timer.patch(owner, method, stage))
        yield


def classify(corpus: Path) -> dict[str, list[tuple[Path, str]]]:
    """The corpus's files by modality, as (path, source relative to the corpus)."""
    from mmrag.pipeline.walk import target_for, walk

    out: dict[str, list[tuple[Path, str]]] = {}
    for found in walk(target_for(corpus)):
        found_type = file_type(detect(found.path).kind)
        if found_type is not None and found_type.ingestor is not None:
            out.setdefault(found_type.family, []).append((found.path, found.source))
    return out


def copy_files(files: Sequence[tuple[Path, str]], folder: Path) -> None:
    for path, source in files:
        target = folder / source
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def count_units(modality: str, files: Sequence[tuple[Path, str]], recorder: Recorder, ingested: int) -> float:
    """Pages (of the PDF files), slides with content, data rows, media seconds, or files ingested."""
    from mmrag.pipeline.bench.synthetic import media_seconds

    if modality == "pdf":
        import pypdfium2

        pages = 0
        for path, _ in files:
            document = pypdfium2.PdfDocument(str(path))
            pages += len(document)
            document.close()
        return float(pages)
    if modality == "slides":
        return float(len(recorder.slides))
    if modality == "tables":
        return float(recorder.rows)
    if modality in MEDIA:
        return sum(media_seconds(path) for path, _ in files)
    return float(ingested)
