"""Listing and diffing a large share with nothing changed: the cost of a sync round when nothing happened.

A tree of ``items`` small files (100 folders, kept in the bench cache) stands for a local or mounted
share, and a bucket on a moto S3 server on 127.0.0.1 for an S3 one. Each index's
manifest is filled with one row per file, as a previous sync would have left it (no chunks: what is
measured is the listing and the diff, not the search), and the sync (``run_ingest`` on the folder,
opening nothing else) is timed; so is the least any listing can cost, in the same run, as the baseline:
a bare ``os.walk`` with a ``stat`` of every file, and a bare paged ``list_objects_v2`` of the bucket.
Filling moto takes about 4 ms per object, so the bucket is smaller by default (``--sync-s3-items``).
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


def measure_s3_sync(cfg: Config, items: int, note: Callable[[str], None]) -> SyncFigures:
    """The unchanged-sync figure for an S3 bucket of ``items`` objects on a moto server started here."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from mmrag.pipeline.app import open_app
    from mmrag.pipeline.bench.moto import MotoServer
    from mmrag.pipeline.config import SourceConfig
    from mmrag.pipeline.ingest_run import run_ingest
    from mmrag.pipeline.sources import chunk_source
    from mmrag.pipeline.sources.s3 import S3Source
    from mmrag.retrieval.embed import HashEmbedder
    from mmrag.retrieval.manifest import OK, FileRecord

    server = MotoServer()
    endpoint = server.start()
    try:
        keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench-secret"}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
        s3.create_bucket(Bucket="bench-share")
        note(f"putting {items:,} objects into a moto S3 server")
        with ThreadPoolExecutor(8) as pool:
            body = "Document {}.\n"
            list(pool.map(lambda i: s3.put_object(
                Bucket="bench-share", Key=f"dept_{i // PER_FOLDER:03d}/doc_{i:06d}.txt", Body=body.format(i).encode()
            ), range(items)))  # fmt: skip
        start = time.perf_counter()
        listed = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench-share"):
            listed += len(page.get("Contents", []))
        walk_s = time.perf_counter() - start
        config = SourceConfig("bench", "s3", "s3://bench-share", "bench", "bench-secret", endpoint=endpoint)
        source = S3Source(config)
        with tempfile.TemporaryDirectory(prefix="mmrag-bench-s3sync-") as work:
            app = open_app(replace(cfg, index_dir=Path(work) / "index"), create=True, embedder=HashEmbedder(64))
            try:
                root = source.location
                app.manifest.add_root(root)
                app.manifest.put_many([
                    FileRecord(root, chunk_source("bench", it.path), it.size, int(it.modified * 1e9), "-", "text", OK,
                               version=it.version)
                    for it in source.items()
                ])  # fmt: skip
                note(f"syncing the {listed:,} unchanged objects")
                start = time.perf_counter()
                report = run_ingest([source], app)
                sync_s = time.perf_counter() - start
            finally:
                app.close()
                source.close()
    finally:
        server.cleanup()
    return SyncFigures(listed, sync_s, walk_s, report.unchanged)
