"""Listing and diffing a large share with nothing changed: the cost of a sync round when nothing happened.

A tree of ``items`` small files (100 folders, kept in the bench cache) stands for a share. Its index's
manifest is filled with one row per file, as a previous sync would have left it (no chunks: what is
measured is the listing and the diff, not the search), and the sync (``run_ingest`` on the folder,
opening nothing else) is timed; so is a bare ``os.walk`` with a ``stat`` of every file in the same run,
the least any listing can cost, as the baseline.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mmrag.pipeline.config import Config

PER_FOLDER = 1000


@dataclass(frozen=True, slots=True)
class SyncFigures:
    items: int
    sync_s: float  # run_ingest over the unchanged tree
    walk_s: float  # os.walk + stat of every file: the baseline
    unchanged: int  # what the sync reported as unchanged (all of them, when it is right)

    def to_json(self) -> dict[str, object]:
        return {
            "items": self.items,
            "sync_unchanged_s": round(self.sync_s, 2),
            "walk_and_stat_s": round(self.walk_s, 2),
            "ratio_to_walk": round(self.sync_s / self.walk_s, 1) if self.walk_s else None,
            "unchanged": self.unchanged,
        }


def _tree(cache: Path, items: int) -> Path:
    tree = cache / f"sync-tree-{items}-v1"
    marker = tree / ".built"
    if not marker.exists():
        for i in range(items):
            folder = tree / f"dept_{i // PER_FOLDER:03d}"
            if i % PER_FOLDER == 0:
                folder.mkdir(parents=True, exist_ok=True)
            (folder / f"doc_{i:06d}.txt").write_text(f"Document {i}.\n")
        marker.write_text("ok")
    return tree


def measure_sync(cfg: Config, cache: Path, items: int, note: Callable[[str], None]) -> SyncFigures:
    from mmrag.ingest.detect import is_hidden_or_system
    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.ingest_run import run_ingest
    from mmrag.retrieval.embed import HashEmbedder
    from mmrag.retrieval.manifest import OK, FileRecord

    note(f"a tree of {items:,} files (kept in {cache})")
    tree = _tree(cache, items).resolve()
    start = time.perf_counter()
    listed = []
    for folder, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(files):
            if not is_hidden_or_system(name):
                path = Path(folder) / name
                listed.append((path, path.stat()))
    walk_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-sync-") as work:
        app = open_app(replace(cfg, index_dir=Path(work) / "index"), create=True, embedder=HashEmbedder(64))
        try:
            root = str(tree)
            app.manifest.add_root(root)
            app.manifest.put_many(
                [
                    FileRecord(root, p.relative_to(tree).as_posix(), st.st_size, st.st_mtime_ns, "-", "text", OK)
                    for p, st in listed
                ]
            )
            note(f"syncing the {items:,} unchanged files")
            start = time.perf_counter()
            report = run_ingest([tree], app)
            sync_s = time.perf_counter() - start
        finally:
            app.close()
    return SyncFigures(len(listed), sync_s, walk_s, report.unchanged)
