"""An API replica (``[store] role = "replica"``): ``mmrag serve`` holding no state of record.

Its index folder (``--index``) is only a cache. It copies the snapshot the ingest node published last
(``pipeline.snapshots``) into it, opens it, and every ``poll_seconds`` looks for a newer one, copies
it beside the open one and swaps it in on the server's index thread between two requests. Vectors
come live from the Chroma server; pictures from the shared folder (or the cache's copy of an S3
location's).

The keyword index of a snapshot lags the vectors by up to one publish: a file deleted, or a reader
removed, on the ingest node is gone from Chroma at once but still in the snapshot. So every keyword
hit is checked against the live store with the asker's filter (``LiveKeyword``): one that Chroma no
longer holds, or no longer lets this asker read, is dropped. Tables, the manifest (file downloads,
previews) and status counts follow at the next snapshot: within ``publish_seconds`` of the change
(or the end of its ingest run, when shorter) plus ``poll_seconds``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mmrag.pipeline.app import App, Models, media_root, open_app
from mmrag.pipeline.config import Config
from mmrag.pipeline.shared import SharedLocation, open_shared
from mmrag.pipeline.snapshots import Fetched, current, fetch
from mmrag.retrieval.keyword import KeywordIndex
from mmrag.retrieval.records import record_id
from mmrag.retrieval.store import ChunkStore, Hit, SearchFilter

log = logging.getLogger(__name__)


class LiveKeyword(KeywordIndex):
    """A snapshot's keyword index whose hits are only those the live vector store still holds and lets
    the asker read (one id lookup in the store per keyword search)."""

    def __init__(self, path: Path, media_dir: Path, store: ChunkStore) -> None:
        super().__init__(path, media_dir=media_dir)
        self._store = store

    def search(self, text: str, k: int, flt: SearchFilter, *, exact: bool = False) -> list[Hit]:
        hits = super().search(text, k, flt, exact=exact)
        if not hits:
            return hits
        live = self._store.present({record_id(h.root, h.chunk) for h in hits}, flt)
        return [h for h in hits if record_id(h.root, h.chunk) in live]


class Replica:
    """Follows the published snapshots for one server: ``open`` gives the index of the newest copied one."""

    def __init__(self, cfg: Config, location: SharedLocation | None = None) -> None:
        found = location or open_shared(cfg)
        assert found is not None  # a replica's config names a shared location (checked when it loads)
        self.cfg = cfg
        self.location = found
        self.cache = cfg.index_dir
        self.media = media_root(cfg)
        self._fetched: Fetched | None = None  # the newest copy
        self._serving = ""  # the snapshot the open index is
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def snapshot(self) -> str:
        """The id of the snapshot searches are answered from ("" before the first is opened)."""
        return self._serving

    def open(self, models: Models) -> App:
        """The index of the newest copied snapshot, copied first if need be (on the server's index thread)."""
        with self._lock:
            if self._fetched is None:
                self._fetched = fetch(self.location, self.cache)
                self._drop_others()
            fetched = self._fetched
        app = open_app(replace(self.cfg, index_dir=fetched.folder), create=False, models=models, media_dir=self.media)
        app.keyword.close()
        app.keyword = app.index.keyword = LiveKeyword(fetched.folder / "keyword.sqlite", self.media, app.store)
        self._serving = fetched.id
        return app

    def refresh(self) -> bool:
        """Copy a newer snapshot when there is one; True when the next ``open`` gives it (the caller then
        reopens the index)."""
        newest = current(self.location)
        with self._lock:  # one copy at a time: the first ``open`` may be copying the same snapshot
            if newest is None or (self._fetched is not None and newest == self._fetched.id):
                return False
            self._fetched = fetch(self.location, self.cache, want=newest)
        return True

    def _drop_others(self) -> None:
        """Delete copies of snapshots other than the one in use (after a swap closed the old one)."""
        keep = self._fetched.folder.name if self._fetched is not None else ""
        for folder in (self.cache / "snapshots").iterdir():
            if folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)

    def start(self, swap: Callable[[], None]) -> None:
        """Look for a newer snapshot every ``poll_seconds`` in a background thread; ``swap`` (the worker's)
        closes the open index and opens the new one between two requests."""

        def follow() -> None:
            while not self._stop.wait(self.cfg.store.poll_seconds):
                try:
                    if self.refresh():
                        swap()
                        with self._lock:
                            self._drop_others()
                        log.info("now serving snapshot %s", self.snapshot)
                except Exception as e:  # the shared location or the server may come back: keep polling
                    log.warning("could not take up a newer snapshot from %s: %s", self.location.where, e)

        self._thread = threading.Thread(target=follow, name="mmrag-replica-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.location.close()
