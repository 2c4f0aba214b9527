"""A drive that fights back: special files, links out of the drive, crashes, two roots, two ingests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import CountingEmbedder
from PIL import Image

from mmrag.pipeline.api import Filters, ingest, search
from mmrag.pipeline.app import IngestRunning
from mmrag.pipeline.config import Config, IngestConfig


def test_a_named_pipe_in_the_drive_is_reported_and_the_run_finishes(tmp_path: Path, cfg: Config) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "notes.txt").write_text("The quarterly offsite is in Lisbon this year.\n")
    os.mkfifo(drive / "pipe.txt")  # opening it for reading would wait for a writer forever
    report = ingest([drive], cfg, embedder=CountingEmbedder())
    assert report.ingested == ["notes.txt"]
    reasons = {s.file: s.reason for s in report.skipped}
    assert reasons == {"pipe.txt": "not a regular file (a named pipe (FIFO)); only regular files are indexed"}


def test_links_out_of_the_drive_are_not_followed_and_links_inside_are(tmp_path: Path, cfg: Config) -> None:
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "passwd").write_text("root:x:0:0:secret bunker admin:/root:/bin/bash\n")
    (outside / "private" / "salaries.txt").write_text("The secret bunker salary table.\n")
    drive = tmp_path / "drive"
    (drive / "docs").mkdir(parents=True)
    (drive / "docs" / "policy.txt").write_text("Travel policy: book economy class.\n")
    os.symlink(outside / "passwd", drive / "passwd")
    os.symlink(outside / "private", drive / "private")
    os.symlink(drive / "docs" / "policy.txt", drive / "policy-link.txt")  # stays inside: followed
    (drive / ".archive").mkdir()  # hidden: walked only through the link to it
    (drive / ".archive" / "2019.txt").write_text("The 2019 offsite was in Porto.\n")
    os.symlink(drive / ".archive", drive / "archive")
    embedder = CountingEmbedder()
    report = ingest([drive], cfg, embedder=embedder)
    assert sorted(report.ingested) == ["archive/2019.txt", "docs/policy.txt", "policy-link.txt"]
    reasons = {s.file: s.reason for s in report.skipped}
    assert set(reasons) == {"passwd", "private"}
    assert reasons["passwd"].startswith(f"a link to a file outside the ingest folders ({outside / 'passwd'})")
    assert reasons["private"].startswith("a link to a folder outside the ingest folders")
    assert "[ingest] follow_links_outside = true" in reasons["private"]
    assert all("bunker" not in h.chunk.text for h in search("secret bunker", cfg, k=10, embedder=embedder))

    # Asked for, links out are followed.
    followed = replace(cfg, ingest=IngestConfig(follow_links_outside=True))
    again = ingest([drive], followed, embedder=embedder)
    assert sorted(again.ingested) == ["passwd", "private/salaries.txt"]


def _pictures_without_labels(cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    from mmrag.ingest.formats import images as images_module
    from mmrag.ingest.formats.images import ImageLabeler

    missing = ImageLabeler(weights=tmp_path / "no-such-weights.pth")  # no EfficientNet: these tests are about files
    monkeypatch.setattr(images_module, "image_labeler", lambda: missing)
    return replace(cfg, models=replace(cfg.models, ocr_engine="none"))


def _thumbnail_of(cfg: Config, source: str, root: Path, embedder: CountingEmbedder) -> Path:
    hits = search("picture", cfg, k=10, embedder=embedder, filters=Filters(globs=(source,)))
    found = [h.chunk.image for h in hits if h.chunk.source == source and h.root == str(root)]
    assert len(found) == 1 and found[0] is not None
    return found[0]


def test_pictures_no_chunk_points_to_are_swept_and_used_ones_stay(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _pictures_without_labels(cfg, tmp_path, monkeypatch)
    drive = tmp_path / "drive"
    (drive / "photos").mkdir(parents=True)
    Image.new("RGB", (200, 120), (200, 30, 30)).save(drive / "photos" / "red.png")
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    kept = _thumbnail_of(cfg, "photos/red.png", drive, embedder)
    media = cfg.index_dir / "media"
    # What a crash in the middle of a video leaves: frames saved, nothing recorded.
    orphans = [kept.parent / "0123456789abcdef0123456789abcdef.jpg", media / "ab" / "abcdef.jpg"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16)).save(orphan, "JPEG")
    preview = media / "slides" / ("0" * 24) / "slide.jpg"  # slide pictures made on preview are no chunk's
    preview.parent.mkdir(parents=True)
    preview.write_bytes(kept.read_bytes())

    report = ingest([drive], cfg, embedder=embedder)
    assert report.unchanged == 1
    assert [o for o in orphans if o.exists()] == []
    assert kept.is_file() and preview.is_file()
    assert _thumbnail_of(cfg, "photos/red.png", drive, embedder) == kept


def test_two_roots_with_the_same_path_keep_their_own_pictures(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _pictures_without_labels(cfg, tmp_path, monkeypatch)
    red, blue = tmp_path / "red-drive", tmp_path / "blue-drive"
    for root, colour in ((red, (220, 20, 20)), (blue, (20, 20, 220))):
        (root / "photos").mkdir(parents=True)
        Image.new("RGB", (200, 120), colour).save(root / "photos" / "a.png")
    embedder = CountingEmbedder()
    ingest([red, blue], cfg, embedder=embedder)
    red_thumb = _thumbnail_of(cfg, "photos/a.png", red, embedder)
    blue_thumb = _thumbnail_of(cfg, "photos/a.png", blue, embedder)
    assert red_thumb != blue_thumb

    (red / "photos" / "a.png").unlink()
    assert ingest([red], cfg, embedder=embedder).removed == ["photos/a.png"]
    assert not red_thumb.exists()
    assert _thumbnail_of(cfg, "photos/a.png", blue, embedder) == blue_thumb and blue_thumb.is_file()
    with Image.open(blue_thumb) as shown:
        r, _g, b = shown.convert("RGB").getpixel((5, 5))  # type: ignore[misc]
    assert b > 150 and r < 80, "the blue drive's thumbnail shows its own picture"


def test_a_second_ingest_on_one_index_is_refused_until_the_first_ends(tmp_path: Path, cfg: Config) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "notes.txt").write_text("The offsite is in Lisbon.\n")
    holder = subprocess.Popen(  # another ingest, as far as the lock can tell
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mmrag.pipeline.app import ingest_lock\n"
            "with ingest_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)",
            str(cfg.index_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(IngestRunning) as refused:
            ingest([drive], cfg, embedder=CountingEmbedder())
        assert str(refused.value) == (
            f"another ingest is running on {cfg.index_dir} (pid {holder.pid}); wait for it or stop it"
        )
        with pytest.raises(IngestRunning):
            ingest([drive], cfg, reindex=True, embedder=CountingEmbedder())
    finally:
        holder.kill()  # a crash: the kernel releases the lock
        holder.wait()
    assert ingest([drive], cfg, embedder=CountingEmbedder()).ingested == ["notes.txt"]


def test_a_table_over_the_limits_says_so_in_the_run_report_and_keeps_every_row_for_sql(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmrag.ingest.formats import tables as tables_module
    from mmrag.pipeline import render
    from mmrag.pipeline.app import open_app

    monkeypatch.setattr(tables_module, "MAX_ROWS", 300)  # 200,000 rows in real life: a small file shows the same
    drive = tmp_path / "drive"
    drive.mkdir()
    lines = [f"{i},Customer {i},{i * 3}" for i in range(1, 401)]
    (drive / "orders.csv").write_text("order,customer,total\n" + "\n".join(lines) + "\n")
    cfg = replace(cfg, chunking=replace(cfg.chunking, max_embedded_rows=50))
    embedder = CountingEmbedder()
    report = ingest([drive], cfg, embedder=embedder)
    assert report.ingested == ["orders.csv"]
    assert report.to_json()["notes"] == [
        {
            "file": "orders.csv",
            "reason": "only the first 300 data rows are held for the table's summary and text chunks; "
            "every row is kept for table questions",
        },
        {
            "file": "orders.csv",
            "reason": "only the first 50 rows have text chunks; every row is kept for table questions "
            "(raise [chunking] max_embedded_rows)",
        },
    ]
    render.ingest_report(report, cfg.index_dir)
    assert "note orders.csv: only the first 50 rows have text chunks" in capsys.readouterr().out
    app = open_app(cfg, create=False, embedder=embedder)
    try:
        (table,) = app.tables.list_tables()
        assert table.row_count == 400  # the rows past the 300 held in memory were read again, one at a time
        found = app.tables.run(f'SELECT _row, customer, total FROM "{table.sql_name}" WHERE _row IN (300, 301, 400)')
        assert found.rows == ((300, "Customer 300", 900), (301, "Customer 301", 903), (400, "Customer 400", 1200))
        row_chunks = [h.chunk for h in search("Customer", cfg, k=500, embedder=embedder) if h.chunk.locator.cite()]
    finally:
        app.close()
    cited = [c.locator for c in row_chunks if type(c.locator).__name__ == "Rows"]
    assert cited and max(loc.last for loc in cited) == 50  # type: ignore[attr-defined]
