"""Parallel ingest (``[ingest] workers``, ``mmrag ingest --workers N``): files are read in worker processes
while the ingest process alone embeds and writes. The index it builds is the one a single process builds;
a file that is corrupt or kills its worker is skipped with its reason and the rest is ingested; the
ingest lock still refuses a second ingest, and a killed ingest leaves no worker behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from builders import build_pdf, write_scanned_pdf
from fakes import CountingEmbedder
from index_state import index_state

from mmrag.pipeline import api
from mmrag.pipeline.app import IngestRunning
from mmrag.pipeline.config import Config

CHILD = """
import multiprocessing, sys, time
from pathlib import Path
from mmrag.pipeline import api
from mmrag.pipeline.config import load_config
from mmrag.retrieval.embed import HashEmbedder

class Stall:
    def files_found(self, total):
        pass

    def file_done(self, source, outcome, chunks):
        pids = " ".join(str(p.pid) for p in multiprocessing.active_children())
        print(f"busy {pids}", flush=True)
        time.sleep(600)

cfg = load_config(index_dir=Path(sys.argv[1]), env={"XDG_CONFIG_HOME": sys.argv[2]})
api.ingest([Path(sys.argv[3])], cfg, progress=Stall(), embedder=HashEmbedder(64))
"""


def _drive(root: Path) -> Path:
    """A mixed folder: text, Markdown, CSV, HTML, a PDF, a scanned PDF (OCR), DOCX, XLSX and a picture."""
    import docx
    import openpyxl
    from PIL import Image

    (root / "notes").mkdir(parents=True)
    (root / "notes" / "plan.md").write_text("# Roadmap\n\n## Q4\n\nShip the quantum widget by December.\n")
    (root / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    (root / "prices.csv").write_text("item,price\nwidget,12\ngadget,30\nsprocket,7\n")
    (root / "notes" / "faq.html").write_text("<html><body><h1>FAQ</h1><p>The canteen opens at 8.</p></body></html>")
    (root / "report.pdf").write_bytes(build_pdf([["Harbour report", "Dredging starts in May."], ["Page two."]]))
    write_scanned_pdf(root / "scan.pdf", [["Invoice 4711 for harbour dredging"]])
    document = docx.Document()
    document.add_heading("Safety memo", level=1)
    document.add_paragraph("Helmets are required on the quay at all times.")
    document.save(str(root / "notes" / "memo.docx"))
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Teams"
    for row in (("team", "players"), ("Otters", 11), ("Herons", 7)):
        sheet.append(row)
    book.save(root / "teams.xlsx")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "red.png")
    for i in range(6):  # enough files to keep both workers and the window busy
        (root / "notes" / f"minutes-{i}.txt").write_text(f"Minutes of meeting {i}: the kiln {i} was repaired.\n")
    return root


def _with_workers(cfg: Config, workers: int, index: Path) -> Config:
    return replace(cfg, index_dir=index, ingest=replace(cfg.ingest, workers=workers))


def _ingest(cfg: Config, drive: Path | str) -> api.IngestReport:
    try:
        return api.ingest([drive], cfg, embedder=CountingEmbedder(64))
    finally:
        api.close(cfg)


def _killed(reason: str) -> bool:
    """The skip of a file whose worker was killed: its exit status when the pool still held the dead
    process to read it from (the standard pool may have let go of it first), and that it is tried again."""
    said = re.match(r"the worker process reading it died \((exit code 137|it stopped abruptly)\)", reason)
    return said is not None and reason.endswith("it is tried again next run")


def test_two_workers_build_the_index_one_process_builds(tmp_path: Path, cfg: Config) -> None:
    drive = _drive(tmp_path / "drive")
    one = _with_workers(cfg, 1, tmp_path / "one")
    two = _with_workers(cfg, 2, tmp_path / "two")

    single = _ingest(one, drive)
    parallel = _ingest(two, drive)

    assert single.skipped == [] and parallel.skipped == []
    assert sorted(parallel.ingested) == sorted(single.ingested) and len(single.ingested) == 15
    assert parallel.chunks == single.chunks
    ids, by_file, manifest = index_state(two)
    assert (ids, by_file, manifest) == index_state(one)
    assert len(ids) == parallel.chunks and set().union(*by_file.values()) == ids
    hits = api.search("invoice 4711 harbour dredging", two, k=3, embedder=CountingEmbedder(64))
    assert hits and hits[0].chunk.source == "scan.pdf", "the scanned page was read by OCR in a worker"

    (drive / "notes" / "plan.md").rename(drive / "notes" / "roadmap.md")  # a rename: not read again
    (drive / "budget.txt").write_text("The travel budget for 2026 is 51,000 euros.\n")  # an edit
    (drive / "prices.csv").unlink()
    again = _ingest(two, drive)
    assert again.moved == ["notes/plan.md -> notes/roadmap.md"]
    assert again.ingested == ["budget.txt"] and again.removed == ["prices.csv"] and again.unchanged == 12
    _ingest(one, drive)
    assert index_state(two) == index_state(one)


def test_a_corrupt_file_and_a_file_that_kills_its_worker_are_skipped_and_the_rest_is_ingested(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    drive = _drive(tmp_path / "drive")
    (drive / "broken.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    (drive / "notes" / "killer.txt").write_text("Reading this file crashes the parser.\n")
    monkeypatch.setenv("MMRAG_FAULT", "parse:notes/killer.txt")  # its reader dies as a segfault would kill it
    two = _with_workers(cfg, 2, tmp_path / "two")

    report = _ingest(two, drive)

    skipped = {s.file: s.reason for s in report.skipped}
    assert set(skipped) == {"broken.pdf", "notes/killer.txt"}
    assert _killed(skipped["notes/killer.txt"])
    assert "broken.pdf" not in skipped["broken.pdf"] and skipped["broken.pdf"]  # a reason, not a traceback
    assert len(report.ingested) == 15, "every other file, including those in flight when the worker died"
    _ids, by_file, _manifest = index_state(two)
    assert {source for _root, source in by_file} == set(report.ingested)

    monkeypatch.delenv("MMRAG_FAULT")
    again = _ingest(two, drive)
    assert again.ingested == ["notes/killer.txt"], "a file whose reader died is tried again"
    assert [s.file for s in again.skipped] == ["broken.pdf"]


def test_the_per_file_time_budget_holds_in_workers(tmp_path: Path, cfg: Config) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "big.txt").write_text("A line of the minutes.\n" * 200_000)  # hashing it takes more than the budget
    (drive / "small.txt").write_text("The canteen opens at 8.\n")
    two = replace(_with_workers(cfg, 2, tmp_path / "two"), limits=replace(cfg.limits, file_seconds=0.000_001))

    report = _ingest(two, drive)

    assert {s.file for s in report.skipped} == {"big.txt", "small.txt"}
    assert all(s.reason.startswith("took longer than the 0 s per-file budget") for s in report.skipped)
    assert report.ingested == []


def test_a_second_ingest_is_refused_while_one_with_workers_runs_and_a_killed_one_leaves_no_worker(
    tmp_path: Path, cfg: Config
) -> None:
    drive = _drive(tmp_path / "drive")
    two = _with_workers(cfg, 2, cfg.index_dir)
    config = tmp_path / "child-config"
    (config / "mmrag").mkdir(parents=True)
    (config / "mmrag" / "config.toml").write_text("[ingest]\nworkers = 2\n")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(two.index_dir), str(config), str(drive)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[:1] == ["busy"], "the child ingest stored a file"
        workers = [int(pid) for pid in line[1:]]
        assert len(workers) == 2
        with pytest.raises(IngestRunning) as refused:
            _ingest(two, drive)
        assert f"(pid {child.pid})" in str(refused.value)
    finally:
        child.kill()  # as a crash would: no chance to stop its workers
        child.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "the workers of a killed ingest kept running"
        time.sleep(0.1)
    assert len(_ingest(two, drive).ingested) == 15


def test_items_of_a_source_are_fetched_here_and_read_by_workers(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmrag.pipeline.config import load_config

    drive = tmp_path / "drive"
    (drive / "notes").mkdir(parents=True)
    for i in range(8):
        (drive / "notes" / f"minutes-{i}.txt").write_text(f"Minutes of meeting {i}: the kiln {i} was repaired.\n")
    (drive / "prices.csv").write_text("item,price\nwidget,12\ngadget,30\n")
    (drive / "notes" / "killer.txt").write_text("Reading this file crashes the parser.\n")
    config = tmp_path / "mmrag.toml"
    config.write_text(f'[sources.team]\nkind = "local"\nurl = "{drive}"\n')
    named = load_config(config_file=config, index_dir=tmp_path / "unused", env={})
    one, two = _with_workers(named, 1, tmp_path / "one"), _with_workers(named, 2, tmp_path / "two")
    monkeypatch.setenv("MMRAG_FAULT", "parse:team:/notes/killer.txt")

    report = _ingest(two, "team")

    assert [s.file for s in report.skipped] == ["team:/notes/killer.txt"]
    assert _killed(report.skipped[0].reason)
    assert len(report.ingested) == 9 and report.failed == []
    assert list((two.index_dir / "downloads").glob("*")) == [], "every downloaded copy is removed"
    monkeypatch.delenv("MMRAG_FAULT")
    assert _ingest(two, "team").ingested == ["team:/notes/killer.txt"]
    _ingest(one, "team")
    assert index_state(two) == index_state(one)


def test_workers_must_be_at_least_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmrag.pipeline.cli import main
    from mmrag.pipeline.config import ConfigError, load_config

    with pytest.raises(SystemExit) as info:
        main(["ingest", str(tmp_path), "--workers", "0", "--index", str(tmp_path / "index")])
    assert info.value.code == 2 and "--workers: takes a whole number of at least 1, got '0'" in capsys.readouterr().err
    conf = tmp_path / "mmrag.toml"
    conf.write_text("[ingest]\nworkers = 0\n")
    with pytest.raises(ConfigError, match=r"mmrag\.toml: \[ingest\] workers must be at least 1, got 0"):
        load_config(config_file=conf, env={})
    conf.write_text("[ingest]\nworkers = 3\n")
    assert load_config(config_file=conf, env={}).ingest.workers == 3


REMEMBER = """
import sys
from pathlib import Path
from mmrag.ingest.engines.ocr_cache import OcrCache
me = int(sys.argv[2])
cache = OcrCache(Path(sys.argv[1]))
for i in range(100):
    cache.put(f"{me}-{i}", f"text {me} {i}")
    cache.get(f"{(me + 1) % 4}-{i}")
cache.close()
"""


def test_the_ocr_cache_is_shared_by_worker_processes_that_open_it_at_once(tmp_path: Path) -> None:
    """Workers of one run open the index's OCR cache (SQLite, WAL, 30 s busy timeout) together, even
    before it exists, and write to it at the same time: no write is lost and none fails."""
    from mmrag.ingest.engines.ocr_cache import OcrCache

    path = tmp_path / "ocr-cache.sqlite"
    writers = [
        subprocess.Popen([sys.executable, "-c", REMEMBER, str(path), str(me)], stderr=subprocess.PIPE, text=True)
        for me in range(4)
    ]
    for writer in writers:
        _out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    cache = OcrCache(path)
    try:
        assert len(cache) == 400 and cache.get("3-99") == "text 3 99"
    finally:
        cache.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
