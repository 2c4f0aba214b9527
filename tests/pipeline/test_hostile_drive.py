"""A drive that fights back: special files, links out of the drive, crashes, two roots, two ingests."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from fakes import CountingEmbedder

from mmrag.pipeline.api import ingest, search
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
