"""Writing one index: a file's chunks go to the vectors, keywords and tables together, in batches.

A file's vectors wait for other files' and go to the store in one write (a Chroma write costs ~10 ms
whatever its size); what waits for them (the manifest row, so that a crash before the write leaves the
file to be redone) runs once they are stored. ``app.open_app`` builds the parts this writes to.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mmrag.ingest.chunk import Chunk, Table
from mmrag.ingest.engines.slide_render import slide_pictures_folder
from mmrag.pipeline.config import fault_point
from mmrag.retrieval.keyword import KeywordIndex
from mmrag.retrieval.store import ChunkStore, FileInfo, Vectors
from mmrag.retrieval.tables_sql import TableStore
from mmrag.retrieval.vectorize import Vectorizer

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
    """Replaces files' chunks in every part of one index, batching the vector writes."""

    store: ChunkStore
    keyword: KeywordIndex
    tables: TableStore
    vectorizer: Vectorizer
    media_dir: Path
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
        media = self.media_dir
        old_images = [p for p in self.keyword.images(root, source) if p.is_relative_to(media)]
        self.store.delete_source(root, source)
        self._waiting = [w for w in self._waiting if (w.root, w.source) != (root, source)]  # an older version
        self.keyword.delete_source(root, source)
        self.tables.delete_source(root, source)
        if chunks and info is not None:
            self._waiting.append(_Waiting(root, source, chunks, self.vectorizer.chunks(chunks), info, then))
            self.keyword.upsert(chunks, info)
            if tables:
                self.tables.replace_source(root, source, tables, info.principals)
        elif then is not None:
            then()
        kept = {c.image for c in chunks if c.image is not None}
        for image in old_images:
            if image not in kept:
                image.unlink(missing_ok=True)
        shutil.rmtree(slide_pictures_folder(media, root, source), ignore_errors=True)
        if len(self._waiting) >= FLUSH_FILES or sum(len(w.chunks) for w in self._waiting) >= FLUSH_CHUNKS:
            self.flush()

    def move_file(
        self, root: str, source: str, new_source: str, info: FileInfo, *, then: Callable[[], None] | None = None
    ) -> bool:
        """A file renamed or moved with the same content: its chunks, vectors and tables go under the new
        name without being embedded again (its pictures stay where they are). False when nothing of it
        is stored (the caller ingests it instead)."""
        self.flush()  # its vectors may still wait
        chunks, vectors = self.store.chunks_of(root, source)
        if not chunks:
            return False
        moved = [replace(c, source=new_source) for c in chunks]
        # the old name goes first: a crash half way leaves a file the manifest still records under its
        # old name with chunks missing, which the next run's reconciliation forgets and reads again
        self.store.delete_source(root, source)
        self.keyword.delete_source(root, source)
        fault_point("move-after-delete")
        for part in (self.store, self.keyword):
            part.delete_source(root, new_source)
        self.tables.rename_source(root, source, new_source)
        self.keyword.upsert(moved, info)
        self._waiting.append(_Waiting(root, new_source, moved, vectors, info, then))
        self.flush()  # the manifest then names it under its new name before the run looks for deleted files
        shutil.rmtree(slide_pictures_folder(self.media_dir, root, source), ignore_errors=True)
        return True

    def set_principals(self, root: str, source: str, principals: Sequence[str]) -> None:
        """Record who may now read a file whose content did not change: metadata only, in every part."""
        self.store.set_principals(root, source, principals)
        self.keyword.set_principals(root, source, principals)
        self.tables.set_principals(root, source, principals)

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
        fault_point("ingest-after-store")
        for w in waiting:
            if w.then is not None:
                w.then()
