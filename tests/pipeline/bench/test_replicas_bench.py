"""``python -m mmrag.pipeline.bench.replicas`` on a tiny synthetic index: every figure, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrag.pipeline.bench import replicas


def test_the_replica_figures_come_out_for_a_small_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replicas.main(["--size", "2000", "--queries", "5", "--cache", str(tmp_path / "cache"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["chunks"] == 2000 and figures["snapshot_mb"] > 0
    for name in ("keyword_local", "keyword_replica", "keyword_copy", "keyword_replica_half", "table_replica"):
        assert figures[name]["n"] == 10 and figures[name]["p50"] > 0
    for change in ("files_deleted_1", "files_deleted_10"):  # at this size most blocks change
        assert figures["after_change"][change]["sent_mb"] > 0 and figures["after_change"][change]["downloaded_mb"] > 0
    assert "replica refresh" in replicas.render(figures) and "then 10 more file(s) deleted" in replicas.render(figures)
