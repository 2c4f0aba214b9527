"""The composition root: every long-lived part of mmrag, built once from a loaded ``Config``.

``open_app(cfg)`` is the one place that decides which store, keyword index, table store, encoders,
OCR and speech engines and LLM a process uses, and builds them; ingest, search, answer and every
front-end (CLI, HTTP, MCP, LangChain, the Python API, the benchmark) receive the parts from it.
Models are resolved once per ``Models`` (``mmrag models`` shows the same resolutions) and load on
first use; several ``App``s of one process (the server's reader and its ingest job) share one
``Models``, so the encoders load once.

Folder layout of an index (``cfg.index_dir``)::

    chroma/            the vector store (``[store] kind = "chroma"``)
    keyword.sqlite     BM25 keyword index (SQLite FTS5)
    tables.sqlite      every ingested table as SQL
    manifest.sqlite    one row per ingested file
    ocr-cache.sqlite   OCR results by picture content
    reindex.pending    present while ``--reindex`` empties the index; a run that finds it finishes the job
    ingest.lock        held (``fcntl.flock``) by the one ingest or re-index running on this index
    media/             pictures: roots/<root hash>/ thumbnails, video frames and deck pictures of one ingest
                       root (``root_media_dir``), slides/ slide pictures made on preview
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.engines.ocr_cache import FILE_NAME as OCR_CACHE_FILE
from mmrag.ingest.engines.slide_render import find_office
from mmrag.ingest.errors import MmragError
from mmrag.pipeline.answer.llm import Llm, LlmSettings, backend_for, connect, retries_for
from mmrag.pipeline.config import Config, ModelsConfig, fault_point
from mmrag.pipeline.index import Index
from mmrag.pipeline.models import (
    Resolution,
    resolve_clip,
    resolve_ocr,
    resolve_photo_words,
    resolve_speech,
    resolve_text,
)
from mmrag.pipeline.offline import apply_offline_env
from mmrag.retrieval.embed import TEXT_RUNTIMES, SentenceTransformerEmbedder, TextEmbedder
from mmrag.retrieval.keyword import KeywordIndex
from mmrag.retrieval.manifest import Manifest
from mmrag.retrieval.search import Searcher
from mmrag.retrieval.store import ChunkStore, IndexMismatch
from mmrag.retrieval.stores.registry import StoreLocation, backend
from mmrag.retrieval.tables_sql import TableStore
from mmrag.retrieval.vectorize import ImageTextEncoder, Vectorizer

CHROMA_DIR = "chroma"
MANIFEST_FILE = "manifest.sqlite"
KEYWORD_FILE = "keyword.sqlite"
TABLES_FILE = "tables.sqlite"
MEDIA_DIR = "media"
LOCK_FILE = "ingest.lock"
REINDEX_MARKER = "reindex.pending"

# Dimensions of known text models, so that opening an index need not load the model to check its layout.
KNOWN_DIMS = {"sentence-transformers/all-MiniLM-L6-v2": 384, "sentence-transformers/all-mpnet-base-v2": 768}

log = logging.getLogger(__name__)


class ModelMissing(MmragError):
    """A model a command needs is not on this machine; the message says how to provide it."""


class IngestRunning(MmragError):
    """Another process (or job) is ingesting into the same index."""


class ReplicaRefused(MmragError):
    """An ingest asked of an API replica: ingest runs on the ingest node, which publishes."""


def replica_refusal(cfg: Config) -> str:
    return (
        f'this is an API replica ([store] role = "replica"): ingest runs on the ingest node, with [store] shared = '
        f'{cfg.store.shared!r} and role = "writer"; replicas pick up what it publishes within '
        f"{cfg.store.poll_seconds:g} s"
    )


@contextmanager
def ingest_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's ingest lock, or raise ``IngestRunning`` naming the process that holds it.

    An OS lock (``flock``) on ``ingest.lock``: the kernel releases it when its holder exits or is
    killed, so a crashed ingest never leaves the index locked. Searches do not take it.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise IngestRunning(
                f"another ingest is running on {index_dir} (pid {pid}); wait for it or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def ingest_running(index_dir: Path) -> bool:
    """Whether an ingest holds the index's lock now. Looked at with a shared lock held for an instant, so
    an ingest starting at that very instant may be refused once (it says so, naming the lock)."""
    try:
        fd = os.open(index_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the shared lock, when it was taken
    return False


def llm_settings(models: ModelsConfig) -> LlmSettings | None:
    """The configured LLM, or None when none is (then answers are extractive)."""
    if not models.llm_base_url:
        return None
    return LlmSettings(
        base_url=models.llm_base_url,
        model=models.llm_model,
        api_key=models.llm_api_key,
        backend=backend_for(models.llm_base_url, models.llm_backend),
        vision=models.llm_vision,
        timeout_s=models.llm_timeout_s,
        max_retries=retries_for(models.llm_base_url),
        max_tokens=models.llm_max_tokens,
    )


def slide_pictures_at_ingest(models: ModelsConfig, clip: Resolution) -> bool:
    """Whether slide pictures are rendered during ingest (else on first preview: ``slide_pictures``).

    At ingest only when something beyond the preview uses them: an image-text encoder embeds each
    slide's picture, or a vision LLM (``llm_vision``) is sent the pictures of the slides it cites.
    """
    if models.slide_pictures != "auto":
        return models.slide_pictures == "ingest"
    return models.llm_vision or clip.available


class Models:
    """The models of one configuration: resolved once, each loaded on first use, shared by every ``App``.

    ``embedder`` and ``visual`` replace the configured encoders (tests, custom setups); with an
    ``embedder`` given, no image-text encoder is used unless ``visual`` is given too.
    """

    def __init__(
        self, cfg: Config, *, embedder: TextEmbedder | None = None, visual: ImageTextEncoder | None = None
    ) -> None:
        self.cfg = cfg
        self.clip = resolve_clip(cfg.models)
        self.photo_words = resolve_photo_words(cfg.models)
        self._embedder = embedder
        self._visual = visual
        self._visual_resolved = embedder is not None or visual is not None
        self._llm: Llm | None = None
        self._llm_built = False
        self._settings: IngestSettings | None = None
        self._lock = threading.Lock()

    def text(self) -> TextEmbedder:
        """The text embedder (``ModelMissing`` when its weights are not on this machine)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = _text_embedder(self.cfg)
            return self._embedder

    def visual(self) -> ImageTextEncoder | None:
        """The image-text encoder when its weights are on this machine (or may be downloaded), else None."""
        with self._lock:
            if not self._visual_resolved:
                self._visual = _visual_encoder(self.cfg, self.clip)
                self._visual_resolved = True
            return self._visual

    def llm(self) -> Llm | None:
        """The configured chat model, or None (answers are then extractive). Nothing is sent until asked."""
        with self._lock:
            if not self._llm_built:
                settings = llm_settings(self.cfg.models)
                self._llm = connect(settings) if settings is not None else None
                self._llm_built = True
            return self._llm

    def ingest_settings(self) -> IngestSettings:
        """What ingestors need, with OCR and speech resolved to local locations ("" = unavailable)."""
        with self._lock:
            if self._settings is None:
                self._settings = _ingest_settings(self.cfg, self.clip, self.photo_words)
            return self._settings


def _text_embedder(cfg: Config) -> TextEmbedder:
    found = resolve_text(cfg.models)
    if not found.available:
        raise ModelMissing(f"no text embedding model: {found.remedy}")
    dim = KNOWN_DIMS.get(cfg.models.text_model)
    runtime = cfg.models.text_runtime
    assert runtime in TEXT_RUNTIMES  # validated when the config was loaded
    if runtime == "onnx-int8" and not found.download:
        from mmrag.retrieval.embed_onnx import OnnxEmbedder, unsupported

        reason = unsupported(Path(found.location))
        if reason is None:
            return OnnxEmbedder(cfg.models.text_model, Path(found.location), dim)
        log.warning("text model %s cannot run as int8 ONNX (%s); using PyTorch", cfg.models.text_model, reason)
    return SentenceTransformerEmbedder(cfg.models.text_model, found.location, dim, cfg.batch_size)


def _visual_encoder(cfg: Config, found: Resolution) -> ImageTextEncoder | None:
    if not found.available:
        return None
    from mmrag.retrieval.clip import ClipEncoder

    weights = cfg.models.clip_pretrained if found.download else found.location
    return ClipEncoder(cfg.models.clip_model, weights, threads=None)


def _ingest_settings(cfg: Config, clip: Resolution, photo_words: Resolution) -> IngestSettings:
    speech = resolve_speech(cfg.models)
    ocr = resolve_ocr(cfg.models)
    ocr_engine = "" if not ocr.available else ("tesseract" if ocr.model == "Tesseract" else "rapidocr")
    at_ingest = slide_pictures_at_ingest(cfg.models, clip)
    return IngestSettings(
        chunking=cfg.chunking,
        media=MediaConfig(
            media_dir=media_root(cfg),
            ocr_engine=ocr_engine,
            ocr_cache=cfg.index_dir / OCR_CACHE_FILE,
            speech_backend=cfg.models.speech_backend,
            speech_location=(speech.location if not speech.download else cfg.models.speech_model)
            if speech.available
            else "",
            max_image_pixels=cfg.limits.max_image_pixels,
            max_ocr_pages=cfg.limits.max_ocr_pages,
            wordnet_dir=photo_words.location,
            office=find_office(cfg.models.slide_renderer) if at_ingest else "",
            render_timeout_s=min(120.0, cfg.limits.file_seconds),
        ),
    )


def root_media_dir(media_dir: Path, root: str) -> Path:
    """Where pictures made from files of one ingest root go: two roots with the same relative path
    (``photos/a.png``) keep two pictures, and removing one leaves the other's."""
    return media_dir / "roots" / hashlib.sha256(root.encode("utf-8")).hexdigest()[:16]


def media_root(cfg: Config) -> Path:
    """Where the index's pictures live: ``media/`` in the index folder, or in the shared folder when the
    index is published to one (``[store] shared``), so every replica serves the same files."""
    shared = cfg.store.shared
    if shared and "://" not in shared:
        return Path(shared).expanduser() / MEDIA_DIR
    return cfg.index_dir / MEDIA_DIR


def store_location(cfg: Config, media_dir: Path | None = None) -> StoreLocation:
    path = Path(cfg.store.path).expanduser() if cfg.store.path else cfg.index_dir / CHROMA_DIR
    name, _, value = cfg.store.auth_header.partition(":")
    headers = ((name.strip(), value.strip()),) if name.strip() and value.strip() else ()
    return StoreLocation(
        path=path,
        media_dir=media_dir or media_root(cfg),
        url=cfg.store.url,
        headers=headers,
        tenant=cfg.store.tenant,
        database=cfg.store.database,
        collection=cfg.store.collection,
    )


@dataclass
class App:
    """One open index and the models that read and write it. Use it from one thread at a time
    (``lock`` serialises callers that share it), and ``close`` it when done."""

    cfg: Config
    models: Models
    store: ChunkStore
    keyword: KeywordIndex
    tables: TableStore
    manifest: Manifest
    vectorizer: Vectorizer
    index: Index
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def path(self) -> Path:
        return self.cfg.index_dir

    @property
    def media_dir(self) -> Path:
        return self.index.media_dir

    def searcher(self, lists: frozenset[str] | None = None) -> Searcher:
        """The hybrid searcher; ``lists`` limits which candidate lists run (for comparisons)."""
        self.index.flush()
        if lists is None:
            return Searcher(self.store, self.keyword, self.vectorizer)
        return Searcher(self.store, self.keyword, self.vectorizer, lists)

    def close(self) -> None:
        try:
            self.index.flush()
        finally:
            self.manifest.close()
            self.keyword.close()
            self.tables.close()
            self.store.close()


def _wipe(cfg: Config) -> None:
    """Empty the index folder for ``--reindex``: every chunk, picture and record (the OCR cache stays).

    Safe to kill at any point: the marker is written first and removed last, and an ingest that finds
    it starts by finishing the wipe. The manifest goes before what it vouches for, so no moment has a
    manifest saying "ok" about chunks that are gone (every later run would call them unchanged).
    """
    path = cfg.index_dir
    marker = path / REINDEX_MARKER
    with marker.open("w") as out:
        out.write("an interrupted --reindex; the next ingest finishes emptying this index\n")
        out.flush()
        os.fsync(out.fileno())
    fault_point("reindex-after-mark")
    for name in (MANIFEST_FILE, KEYWORD_FILE, TABLES_FILE):
        for suffix in ("", "-wal", "-shm"):
            (path / (name + suffix)).unlink(missing_ok=True)
        if name == MANIFEST_FILE:
            fault_point("reindex-after-manifest")
    backend(cfg.store.kind).drop(store_location(cfg))
    fault_point("reindex-after-drop")
    shutil.rmtree(media_root(cfg), ignore_errors=True)
    fault_point("reindex-after-media")
    marker.unlink()


def open_app(
    cfg: Config,
    *,
    create: bool,
    models: Models | None = None,
    embedder: TextEmbedder | None = None,
    visual: ImageTextEncoder | None = None,
    reindex: bool = False,
    media_dir: Path | None = None,
) -> App:
    """Open (or, with ``create``, make) the index at ``cfg.index_dir`` with its models.

    Raises ``IndexMismatch`` when the index was built with other models (or does not exist and
    ``create`` is off), ``ModelMissing`` when the configured text model cannot be found. ``reindex``
    empties the index first. ``models`` shares already-resolved models with another ``App``. ``media_dir``
    replaces where pictures are found (a replica's copy of published ones; default ``media_root``).
    """
    apply_offline_env(cfg.models.allow_downloads)
    if create and cfg.store.role == "replica":  # its index folder is a cache of published snapshots
        raise ReplicaRefused(replica_refusal(cfg))
    path = cfg.index_dir
    if not create and not (path / MANIFEST_FILE).exists():
        if cfg.store.role == "replica":
            raise IndexMismatch(
                f"{path} is an API replica's cache, not an index: search and ask through its server (mmrag serve "
                "copies the published snapshots into it), or on the ingest node"
            )
        raise IndexMismatch(f"no index at {path}: run `mmrag ingest PATH --index {path}` first")
    if path.exists() and (reindex or (create and (path / REINDEX_MARKER).exists())):
        with ingest_lock(path):
            _wipe(cfg)
    models = models or Models(cfg, embedder=embedder, visual=visual)
    vectorizer = Vectorizer(models.text(), models.visual())
    media = media_dir or media_root(cfg)
    store = backend(cfg.store.kind).open(store_location(cfg, media), vectorizer.layout, create)
    keyword = KeywordIndex(path / KEYWORD_FILE, media_dir=media)
    tables = TableStore(path / TABLES_FILE)
    manifest = Manifest(path / MANIFEST_FILE)
    return App(
        cfg, models, store, keyword, tables, manifest, vectorizer, Index(store, keyword, tables, vectorizer, media)
    )
