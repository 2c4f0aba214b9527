"""The ingest baseline of ``mmrag bench``: what a user would write with the same libraries.

unstructured's ``partition`` reads each file (``strategy="fast"``; for PDFs that needs the heavy
``unstructured[pdf]`` extra, and without it the baseline reads pages with pypdf, as LangChain's
``PyPDFLoader`` does, and says so). The chunk texts are mmrag's own chunks of that file, so both
sides embed the same texts with the same MiniLM model; the baseline embeds them through a LangChain
``Embeddings`` wrapper that makes one model call per chunk (``embed_query``) and stores them with
``langchain_chroma.Chroma.add_texts``, one call per file.

This module is the bench's only use of LangChain and of unstructured's generic ``partition``;
the product itself reaches them through its adapters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.pipeline.bench.common import StageTimer

UNSTRUCTURED = "unstructured partition (fast)"
PYPDF_FALLBACK = "pypdf page text (unstructured[pdf] is not installed)"

Encode = Callable[[str], list[float]]


@dataclass(frozen=True, slots=True)
class BaselineRun:
    """Seconds the baseline took for one modality, split into parse, embedding and writing."""

    seconds: float
    stages: tuple[tuple[str, float], ...]
    parser: str


def _partition(path: Path) -> tuple[int, str]:
    """Partition one file the way the baseline would; returns (elements, parser used)."""
    from mmrag.ingest.formats import unstructured_adapter
    unstructured_adapter.load()  # opts out of telemetry and of unstructured's spaCy model download
    from unstructured.partition.auto import partition

    try:
        return len(partition(filename=str(path), strategy="fast")), UNSTRUCTURED
    except ImportError:
        if path.suffix.lower() != ".pdf":
            raise
    from pypdf import PdfReader

    return len([page.extract_text() for page in PdfReader(path).pages]), PYPDF_FALLBACK


def _per_chunk_embeddings(encode: Encode, timer: StageTimer) -> Any:
    """A LangChain ``Embeddings`` that embeds one text per model call, as the simplest wrapper does."""
    from langchain_core.embeddings import Embeddings

    class PerChunkEmbeddings(Embeddings):
        def embed_query(self, text: str) -> list[float]:
            start = time.perf_counter()
            try:
                return encode(text)
            finally:
                timer.add("embedding", time.perf_counter() - start)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.embed_query(t) for t in texts]

    return PerChunkEmbeddings()


def sentence_transformer_encoder(location: str) -> Encode:
    """The same MiniLM weights mmrag uses, loaded once (a user would load them once too)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(location, device="cpu")

    def encode(text: str) -> list[float]:
        return [float(x) for x in model.encode(text, normalize_embeddings=True, show_progress_bar=False)]

    return encode


class Baseline:
    """A LangChain Chroma store in ``folder``; ``ingest`` times one modality's files."""

    def __init__(self, folder: Path, encode: Encode) -> None:
        from langchain_chroma import Chroma

        self.timer = StageTimer()
        self._store = Chroma(
            collection_name="baseline",
            embedding_function=_per_chunk_embeddings(encode, self.timer),
            persist_directory=str(folder),
        )

    def warm_up(self, files: Sequence[Path]) -> None:
        """Import what the first file of each type imports, and load the model, before timing."""
        for path in files:
            _partition(path)
        self._store.add_texts(["warm up"], ids=["warm-up"])
        self._store.delete(ids=["warm-up"])
        self.timer.reset()

    def ingest(self, files: Sequence[tuple[Path, str]], texts: Mapping[str, Sequence[str]]) -> BaselineRun:
        """Parse each file, then embed and store mmrag's chunk texts of it (``texts`` by source)."""
        self.timer.reset()
        parsers: set[str] = set()
        start = time.perf_counter()
        for path, source in files:
            begin = time.perf_counter()
            _, parser = _partition(path)
            self.timer.add("parse", time.perf_counter() - begin)
            parsers.add(parser)
            chunk_texts = list(texts.get(source, ()))
            if chunk_texts:
                begin = time.perf_counter()
                embedded = self.timer.seconds.get("embedding", 0.0)
                self._store.add_texts(chunk_texts, metadatas=[{"source": source}] * len(chunk_texts))
                spent = time.perf_counter() - begin
                self.timer.add("writing", spent - (self.timer.seconds.get("embedding", 0.0) - embedded))
        seconds = time.perf_counter() - start
        stages = self.timer.reset()
        return BaselineRun(seconds, tuple(sorted(stages.items())), " + ".join(sorted(parsers)) or UNSTRUCTURED)
