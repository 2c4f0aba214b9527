"""A kill at any point of a re-index or an ingest leaves an index that the next normal ingest makes
equal to a clean one: the same chunk ids in the vector store and the keyword index, the same manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import CountingEmbedder
from index_state import index_state

from mmrag.pipeline import api
from mmrag.pipeline.config import Config
from mmrag.retrieval.stores.registry import backend

CHILD = """
import sys
from pathlib import Path
from mmrag.pipeline import api
from mmrag.pipeline.config import load_config
from mmrag.retrieval.embed import HashEmbedder
cfg = load_config(index_dir=Path(sys.argv[1]), env={"XDG_CONFIG_HOME": sys.argv[2]})
api.ingest([Path(sys.argv[3])], cfg, reindex=sys.argv[4] == "reindex", embedder=HashEmbedder(64))
"""


def _drive(root: Path) -> Path:
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "plan.md").write_text("# Roadmap\n\nShip the quantum widget by December.\n")
    (root / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros.\n")
    (root / "prices.csv").write_text("item,price\nwidget,12\ngadget,30\n")
    return root


def _ingest(cfg: Config, drive: Path) -> api.IngestReport:
    try:
        return api.ingest([drive], cfg, embedder=CountingEmbedder(64))
    finally:
        api.close(cfg)


def _killed(cfg: Config, drive: Path, point: str, mode: str) -> None:
    env = {**os.environ, "MMRAG_FAULT": point}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(cfg.index_dir), str(cfg.index_dir.parent / "config"), str(drive), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 137, f"no crash at {point}: {done.stderr[-2000:]}"


@pytest.fixture
def clean(tmp_path: Path, cfg: Config) -> tuple[Path, object]:
    drive = _drive(tmp_path / "drive")
    reference = replace(cfg, index_dir=tmp_path / "clean-index")
    _ingest(reference, drive)
    return drive, index_state(reference)


@pytest.mark.parametrize(
    "point", ["reindex-after-mark", "reindex-after-manifest", "reindex-after-drop", "reindex-after-media"]
)
def test_a_reindex_killed_at_any_point_is_finished_by_the_next_ingest(
    point: str, cfg: Config, clean: tuple[Path, object]
) -> None:
    drive, expected = clean
    _ingest(cfg, drive)
    _killed(cfg, drive, point, "reindex")
    report = _ingest(cfg, drive)
    assert sorted(report.ingested) == ["budget.txt", "notes/plan.md", "prices.csv"], "every file is indexed again"
    assert index_state(cfg) == expected
    assert not (cfg.index_dir / "reindex.pending").exists()


def test_an_ingest_killed_between_the_vector_write_and_the_manifest_is_redone(
    cfg: Config, clean: tuple[Path, object]
) -> None:
    drive, expected = clean
    _killed(cfg, drive, "ingest-after-store", "ingest")
    _ingest(cfg, drive)
    assert index_state(cfg) == expected


def test_files_recorded_as_indexed_whose_chunks_are_gone_are_ingested_again(
    cfg: Config, clean: tuple[Path, object]
) -> None:
    drive, expected = clean
    _ingest(cfg, drive)
    from mmrag.pipeline.app import store_location

    backend(cfg.store.kind).drop(store_location(cfg))  # what the old --reindex left after a kill
    report = _ingest(cfg, drive)
    assert sorted(report.ingested) == ["budget.txt", "notes/plan.md", "prices.csv"]
    assert [n.reason for n in report.notes] == [
        "3 files recorded as indexed had chunks missing from the index (an interrupted run?); they are ingested again"
    ]
    assert index_state(cfg) == expected


SOURCE_CHILD = """
import sys
from pathlib import Path
from mmrag.pipeline import api
from mmrag.pipeline.config import load_config
from mmrag.retrieval.embed import HashEmbedder
cfg = load_config(config_file=Path(sys.argv[2]), index_dir=Path(sys.argv[1]), env={})
api.ingest(["team"], cfg, embedder=HashEmbedder(64))
"""


def _source_config(tmp_path: Path, drive: Path, index: Path) -> Config:
    from mmrag.pipeline.config import load_config

    config = tmp_path / "sources.toml"
    config.write_text(f'[sources.team]\nkind = "local"\nurl = "{drive}"\n')
    return load_config(config_file=config, index_dir=index, env={})


@pytest.mark.parametrize("point", ["sync-after-item", "move-after-delete"])
def test_a_sync_killed_mid_run_is_finished_by_the_next_one_as_a_clean_sync_would_be(tmp_path: Path, point: str) -> None:
    drive = _drive(tmp_path / "drive")
    cfg = _source_config(tmp_path, drive, tmp_path / "index")
    api.ingest(["team"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)
    (drive / "notes" / "plan.md").rename(drive / "notes" / "roadmap.md")  # a move
    (drive / "budget.txt").write_text("The travel budget for 2026 is 51,000 euros.\n")  # an edit
    (drive / "prices.csv").unlink()  # a deletion
    (drive / "new.txt").write_text("The cafeteria opens at 7:45.\n")  # an addition

    done = subprocess.run(
        [sys.executable, "-c", SOURCE_CHILD, str(cfg.index_dir), str(tmp_path / "sources.toml")],
        env={**os.environ, "MMRAG_FAULT": point}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 137, f"no crash at {point}: {done.stderr[-2000:]}"
    api.ingest(["team"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)

    clean = _source_config(tmp_path, drive, tmp_path / "clean-index")
    api.ingest(["team"], clean, embedder=CountingEmbedder(64))
    api.close(clean)
    assert index_state(cfg) == index_state(clean)
