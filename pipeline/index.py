"""Open an index folder: its Chroma collection, its manifest and the encoders that built it."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Table
from mmrag.ingest.engines.ocr_cache import FILE_NAME as OCR_CACHE_FILE
from mmrag.ingest.engines.slide_render import find_office, slide_pictures_folder
from mmrag.ingest.errors import MmragError
from mmrag.pipeline.config import Config, ConfigError
from mmrag.pipeline.models import resolve_clip, resolve_ocr, resolve_speech, resolve_text
from mmrag.pipeline.offline import apply_offline_env
from mmrag.retrieval.embed import SentenceTransformerEmbedder, TextEmbedder
from mmrag.retrieval.keyword import KeywordIndex
from mmrag.retrieval.manifest import Manifest
from mmrag.retrieval.search import Searcher
from mmrag.retrieval.store import ChunkStore, FileInfo, IndexMismatch, Vectors
from mmrag.retrieval.tables_sql import TableStore
from mmrag.retrieval.vectorize import ImageTextEncoder, Vectorizer

CHROMA_DIR = "chroma"
MANIFEST_FILE = "manifest.sqlite"
KEYWORD_FILE = "keyword.sqlite"
TABLES_FILE = "tables.sqlite"
MEDIA_DIR = "media"

# Dimensions of known text models, so that opening an index need not load the model to check its layout.
KNOWN_DIMS = {"sentence-transformers/all-MiniLM-L6-v2": 384, "sentence-transformers/all-mpnet-base-v2": 768}


TEXT_RUNTIMES = ("onnx-int8", "torch")

log = logging.getLogger(__name__)


class ModelMissing(MmragError):
    """A model a command needs is not on this machine; the message says how to provide it."""


# A file's vectors wait for others and go to the store together (a Chroma write costs ~10 ms whatever
# its size); the manifest rows of those files are written only after that write.
FLUSH_FILES = 64
FLUSH_CHUNKS = 1024


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A file's new chunks and vectors, waiting for the next write, and what to do once written."""

    root: str
    source: str
    chunks: Sequence[Chunk]
    vectors: Vectors
    info: FileInfo
    then: Callable[[], None] | None


@dataclass
class Index:
    """Everything a command needs to read or write one index folder."""

    path: Path
    store: ChunkStore
    keyword: KeywordIndex
    tables: TableStore
    manifest: Manifest
    vectorizer: Vectorizer
    _waiting: list[_Waiting] = field(default_factory=list, repr=False)

    def replace_file(
        self,
        root: str,
        source: str,
        chunks: Sequence[Chunk],
        info: FileInfo | None,
        tables: Sequence[Table] = (),
        *,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Swap a file's chunks in every part of the index (vectors, keywords, tables) for new ones, or none.

        The new vectors may wait in memory for other files' (``flush``); ``then`` (the manifest row, so a
        crash before the write leaves the file to be redone) runs once they are stored. Pictures made from
        the old version (thumbnails, frames, slide pictures) that the new chunks do not use are deleted
        too: nothing derived from a removed or changed file stays on disk.
        """
        media = self.path / MEDIA_DIR
        old_images = [p for p in self.keyword.images(root, source) if p.is_relative_to(media)]
        self.store.delete_source(root, source)
        self._waiting = [w for w in self._waiting if (w.root, w.source) != (root, source)]  # an older version
        self.keyword.delete_source(root, source)
        self.tables.delete_source(root, source)
        if chunks and info is not None:
            self._waiting.append(_Waiting(root, source, chunks, self.vectorizer.chunks(chunks), info, then))
            self.keyword.upsert(chunks, info)
            if tables:
                self.tables.replace_source(root, source, tables)
        elif then is not None:
            then()
        kept = {c.image for c in chunks if c.image is not None}
        for image in old_images:
            if image not in kept:
                image.unlink(missing_ok=True)
        shutil.rmtree(slide_pictures_folder(media, root, source), ignore_errors=True)
        if len(self._waiting) >= FLUSH_FILES or sum(len(w.chunks) for w in self._waiting) >= FLUSH_CHUNKS:
            self.flush()

    def flush(self) -> None:
        """Write the vectors that wait, then what waited for them (manifest rows)."""
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        try:
            self.store.upsert_files([(w.chunks, w.vectors, w.info) for w in waiting])
        except BaseException:
            self._waiting = waiting + self._waiting  # not written: still waiting (and still not in the manifest)
            raise
        for w in waiting:
            if w.then is not None:
                w.then()

    def searcher(self, lists: frozenset[str] | None = None) -> Searcher:
        """The hybrid searcher; ``lists`` limits which candidate lists run (for comparisons)."""
        self.flush()
        if lists is None:
            return Searcher(self.store, self.keyword, self.vectorizer)
        return Searcher(self.store, self.keyword, self.vectorizer, lists)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.manifest.close()
            self.keyword.close()
            self.tables.close()


def text_embedder(cfg: Config) -> TextEmbedder:
    found = resolve_text(cfg.models)
    if not found.available:
        raise ModelMissing(f"no text embedding model: {found.remedy}")
    dim = KNOWN_DIMS.get(cfg.models.text_model)
    runtime = cfg.models.text_runtime
    if runtime not in TEXT_RUNTIMES:
        raise ConfigError(f"text_runtime must be one of {', '.join(TEXT_RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx-int8" and not found.download:
        from mmrag.retrieval.embed_onnx import OnnxEmbedder, unsupported

        reason = unsupported(Path(found.location))
        if reason is None:
            return OnnxEmbedder(cfg.models.text_model, Path(found.location), dim)
        log.warning("text model %s cannot run as int8 ONNX (%s); using PyTorch", cfg.models.text_model, reason)
    return SentenceTransformerEmbedder(cfg.models.text_model, found.location, dim, cfg.batch_size)


def visual_encoder(cfg: Config) -> ImageTextEncoder | None:
    """The image-text encoder when its weights are on this machine (or may be downloaded), else None."""
    found = resolve_clip(cfg.models)
    if not found.available:
        return None
    from mmrag.retrieval.clip import ClipEncoder

    weights = cfg.models.clip_pretrained if found.download else found.location
    return ClipEncoder(cfg.models.clip_model, weights, threads=None)


SLIDE_PICTURE_MODES = ("auto", "ingest", "preview")


def slide_pictures_at_ingest(cfg: Config) -> bool:
    """Whether slide pictures are rendered during ingest (else on first preview: ``slide_pictures``).

    At ingest only when something beyond the preview uses them: an image-text encoder embeds each
    slide's picture, or a vision LLM (``llm_vision``) is sent the pictures of the slides it cites.
    """
    mode = cfg.models.slide_pictures
    if mode not in SLIDE_PICTURE_MODES:
        raise ConfigError(f"slide_pictures must be one of {', '.join(SLIDE_PICTURE_MODES)}, got {mode!r}")
    if mode != "auto":
        return mode == "ingest"
    return cfg.models.llm_vision or resolve_clip(cfg.models).available


def ingest_settings(cfg: Config) -> IngestSettings:
    """What ingestors need, with model roles resolved to local locations ("" = unavailable)."""
    speech = resolve_speech(cfg.models)
    ocr = resolve_ocr(cfg.models)
    ocr_engine = "" if not ocr.available else ("tesseract" if ocr.model == "Tesseract" else "rapidocr")
    return IngestSettings(
        chunking=cfg.chunking,
        media=MediaConfig(
            media_dir=cfg.index_dir / MEDIA_DIR,
            ocr_engine=ocr_engine,
            ocr_cache=cfg.index_dir / OCR_CACHE_FILE,
            speech_backend=cfg.models.speech_backend,
            speech_location=(speech.location if not speech.download else cfg.models.speech_model)
            if speech.available
            else "",
            max_image_pixels=cfg.limits.max_image_pixels,
            office=find_office(cfg.models.slide_renderer) if slide_pictures_at_ingest(cfg) else "",
            render_timeout_s=min(120.0, cfg.limits.file_seconds),
        ),
    )


def open_index(
    cfg: Config,
    *,
    create: bool,
    embedder: TextEmbedder | None = None,
    reindex: bool = False,
    visual: ImageTextEncoder | None = None,
) -> Index:
    """Open (or create) the index at ``cfg.index_dir``.

    Raises ``IndexMismatch`` when the index was built with other models, ``ModelMissing`` when the
    configured text model cannot be found. ``reindex`` wipes the folder's chunks and manifest first.
    """
    apply_offline_env(cfg.models.allow_downloads)
    from mmrag.retrieval.stores.chroma import ChromaStore

    path = cfg.index_dir
    if not create and not (path / MANIFEST_FILE).exists():
        raise IndexMismatch(f"no index at {path}: run `mmrag ingest PATH --index {path}` first")
    if reindex and path.exists():
        ChromaStore.drop(path / CHROMA_DIR)
        shutil.rmtree(path / MEDIA_DIR, ignore_errors=True)
        for name in (MANIFEST_FILE, KEYWORD_FILE, TABLES_FILE):
            for suffix in ("", "-wal", "-shm"):
                (path / (name + suffix)).unlink(missing_ok=True)
    if embedder is None:
        embedder = text_embedder(cfg)
        visual = visual or visual_encoder(cfg)
    vectorizer = Vectorizer(embedder, visual)
    store = ChromaStore(path / CHROMA_DIR, vectorizer.layout, create=create, media_dir=path / MEDIA_DIR)
    return Index(
        path,
        store,
        KeywordIndex(path / KEYWORD_FILE, media_dir=path / MEDIA_DIR),
        TableStore(path / TABLES_FILE),
        Manifest(path / MANIFEST_FILE),
        vectorizer,
    )
