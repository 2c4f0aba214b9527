"""Searches keep working while an ingest and a re-index write to the same index: no errors, and every
search answers (what it finds may be the old or the new state, never a failure)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fakes import CountingEmbedder

from mmrag.pipeline.api import search_index
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config
from mmrag.pipeline.ingest_run import run_ingest


def _drive(root: Path, files: int, word: str) -> Path:
    for n in range(files):
        folder = root / f"team_{n % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"note_{n:03d}.txt").write_text(f"Note {n} of the {word} project.\n\nIts budget line is {n * 7}.\n")
    return root


def test_searches_during_an_ingest_and_a_reindex_never_fail(tmp_path: Path, cfg: Config) -> None:
    embedder = CountingEmbedder()
    drive = _drive(tmp_path / "drive", 60, "heron")
    writer = open_app(cfg, create=True, embedder=embedder)
    run_ingest([drive], writer)
    _drive(drive, 240, "osprey")  # more files, and the first 60 changed: the next run rewrites them
    reader = open_app(cfg, create=False, embedder=embedder)
    errors: list[BaseException] = []
    answered: list[float] = []
    done = threading.Event()

    def keep_searching() -> None:
        while not done.is_set():
            started = time.monotonic()
            try:
                search_index(reader, "budget line of the project", 5)
                answered.append(time.monotonic() - started)
            except BaseException as e:  # any failure is the finding
                errors.append(e)

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        report = run_ingest([drive], writer)
        writer.close()
        rebuilt = open_app(cfg, create=True, embedder=embedder, reindex=True)  # --reindex: emptied, then refilled
        run_ingest([drive], rebuilt)
        rebuilt.close()
    finally:
        done.set()
        searcher.join(timeout=60)
    reader.close()
    assert errors == [], errors[:3]
    assert len(report.ingested) == 240 and len(answered) >= 10
    final = open_app(cfg, create=False, embedder=embedder)
    try:
        assert {h.chunk.source.split("/")[0] for h in search_index(final, "osprey project", 10)} <= {
            f"team_{n}" for n in range(5)
        }
        assert final.store.count() == final.keyword.count() == sum(r.chunks for r in final.manifest.files())
    finally:
        final.close()
