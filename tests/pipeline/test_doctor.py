"""``mmrag doctor`` and the vector index's rebuild: a healthy index passes every check; a damaged one is
named with its remedy (the store's crash or error is seen from a child process, not suffered); --repair
mends it; the vector graph is rebuilt into a fresh collection after heavy churn, with the same records."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import CountingEmbedder

from mmrag.pipeline.api import close, ingest, search
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config

pytestmark = pytest.mark.slow  # the doctor's probe opens the index with the configured (real) text model


def _drive(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    (root / "plan.md").write_text("# Roadmap\n\nShip the quantum widget by December.\n")
    (root / "leave.txt").write_text("Employees receive 27 days of annual leave.\n")
    return root


def _doctor(cfg: Config, *extra: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "mmrag.pipeline.cli", "doctor", "--index", str(cfg.index_dir), "--json", *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def _failed(report: dict[str, object]) -> set[str]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {c["check"] for c in checks if not c["ok"]}


def test_a_healthy_index_passes_and_missing_chunks_are_named_and_repaired(tmp_path: Path, cfg: Config) -> None:
    drive = _drive(tmp_path / "drive")
    ingest([drive], cfg)
    close(cfg)
    code, report = _doctor(cfg)
    assert code == 0 and report["healthy"] is True and _failed(report) == set()

    app = open_app(cfg, create=False)  # a crash between stores, as a kill at the wrong moment leaves it
    app.store.delete_source(str(drive.resolve()), "plan.md")
    app.close()
    code, report = _doctor(cfg)
    assert code == 1 and _failed(report) == {"files complete"}
    checks = {c["check"]: c for c in report["checks"]}  # type: ignore[union-attr]
    assert "plan.md" in checks["files complete"]["detail"] and "--repair" in checks["files complete"]["remedy"]

    code, report = _doctor(cfg, "--repair")
    assert code == 0 and any("forgot 1 files" in r for r in report["repairs"])  # type: ignore[union-attr]
    again = ingest([drive], cfg)
    assert again.ingested == ["plan.md"]
    assert search("quantum widget", cfg, k=1)[0].chunk.source == "plan.md"


def test_a_store_that_cannot_be_opened_is_reported_with_its_remedy(tmp_path: Path, cfg: Config) -> None:
    ingest([_drive(tmp_path / "drive")], cfg)
    close(cfg)
    database = cfg.index_dir / "chroma" / "chroma.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    code, report = _doctor(cfg)
    assert code == 1 and _failed(report) == {"store opens"}
    check = report["checks"][0]  # type: ignore[index]
    assert "--reindex" in check["remedy"]


def test_rebuild_keeps_every_record_and_churn_triggers_it(tmp_path: Path, cfg: Config) -> None:
    drive = _drive(tmp_path / "drive")
    cfg = replace(cfg, store=replace(cfg.store, rebuild_after_churn=0.5, rebuild_min_churn=1))
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    before = [(h.chunk.id, round(h.score, 4)) for h in search("annual leave days", cfg, k=3, embedder=embedder)]

    (drive / "leave.txt").write_text("Employees receive 28 days of annual leave from 2026.\n")  # 1 of 3 chunks: 33%
    first = ingest([drive], cfg, embedder=embedder)
    assert not any("rebuilt the vector index" in n.reason for n in first.notes)
    (drive / "leave.txt").write_text("Employees receive 27 days of annual leave.\n")  # 2 of 3: past half
    second = ingest([drive], cfg, embedder=embedder)
    assert any("rebuilt the vector index" in n.reason for n in second.notes)

    after = [(h.chunk.id, round(h.score, 4)) for h in search("annual leave days", cfg, k=3, embedder=embedder)]
    assert after == before  # the same records, found the same way
    close(cfg)
    app = open_app(cfg, create=False, embedder=embedder)
    try:
        assert app.store.count() == 3 and app.manifest.get_meta("store_churn") == "0"
    finally:
        app.close()
