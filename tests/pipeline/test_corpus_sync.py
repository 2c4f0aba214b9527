"""Acceptance on the shared corpus: incremental re-runs and bad files, through the real CLI and models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import docx
import pytest

from mmrag.pipeline.cli import main

pytestmark = pytest.mark.slow


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_corpus_twice_then_touch_then_delete_then_bad_files(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str], no_network: list[str]
) -> None:
    drive = tmp_path / "drive"
    shutil.copytree(corpus / "drive", drive)
    index = str(tmp_path / "index")

    first = _run(capsys, "ingest", str(drive), "--index", index, "--json")
    total = int(str(first["ingested"]))
    assert total >= 24 and first["skipped"] == [] and first["removed"] == 0

    main(["ingest", str(drive), "--index", index])
    assert "nothing changed since the last run: no file was re-embedded" in capsys.readouterr().out
    second = _run(capsys, "ingest", str(drive), "--index", index, "--json")
    assert second["ingested"] == 0 and second["chunks"] == 0 and second["unchanged"] == total

    mail = drive / "mail" / "family-day.eml"
    mail.write_text(
        mail.read_text().replace("funnel cake and more.", "funnel cake and more. The raffle prize is a kayak.", 1)
    )
    third = _run(capsys, "ingest", str(drive), "--index", index, "--json")
    assert third["ingested_files"] == ["mail/family-day.eml"] and third["unchanged"] == total - 1
    hits = _run(capsys, "search", "raffle prize kayak", "--index", index, "--k", "1", "--json")["hits"]
    assert hits[0]["source"] == "mail/family-day.eml"  # type: ignore[index]

    (drive / "legal" / "handbook-1p.docx").unlink()
    fourth = _run(capsys, "ingest", str(drive), "--index", index, "--json")
    assert fourth["removed_files"] == ["legal/handbook-1p.docx"]
    hits = _run(capsys, "search", "bankruptcy judge administration", "--index", index, "--k", "10", "--json")["hits"]
    assert all(h["source"] != "legal/handbook-1p.docx" for h in hits)  # type: ignore[union-attr]

    pdf = (drive / "finance" / "reliance.pdf").read_bytes()
    (drive / "finance" / "corrupt.pdf").write_bytes(pdf[: len(pdf) // 2])
    empty = docx.Document()
    empty.save(str(drive / "hr" / "empty.docx"))
    (drive / "finance" / "binary.pdf").write_bytes(os.urandom(8192).replace(b"%PDF", b"####"))
    fifth = _run(capsys, "ingest", str(drive), "--index", index, "--json")
    reasons = {s["file"]: s["reason"] for s in fifth["skipped"]}  # type: ignore[union-attr]
    assert set(reasons) == {"finance/corrupt.pdf", "hr/empty.docx", "finance/binary.pdf"}
    assert all(reasons.values())
    assert fifth["unchanged"] == total - 1

    # every other file is still searchable: each indexed source is found by a search restricted to it
    status = _run(capsys, "status", "--index", index, "--json")
    assert status["files"]["ok"] == total - 1  # type: ignore[index]
    for fact, source in [
        ("000-30653", "finance/example-10k-1p.html"),
        ("Christopher Latham Sholes typewriter", "research/multi_page.pdf"),
        ("314b0a30-5b04-470b-b9f7-eed2c2bec74a", "research/autogen-paper.docx"),
        ("face painting petting zoo", "mail/family-day.eml"),
    ]:
        hits = _run(capsys, "search", fact, "--index", index, "--k", "5", "--json")["hits"]
        assert source in [h["source"] for h in hits], fact  # type: ignore[union-attr]
