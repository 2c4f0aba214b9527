"""``mmrag watch``: a new file in a watched folder is in the index within seconds of its last write,
a deleted one leaves it, and the outcome of each round is where ``mmrag status`` reads it."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from fakes import CountingEmbedder

from mmrag.pipeline.api import index_status, search_index
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config
from mmrag.pipeline.ingest_run import IngestReport
from mmrag.pipeline.watch import watch, watched

PICKUP_SECONDS = 5.0


def _next(rounds: queue.Queue[IngestReport], want: str, deadline: float) -> IngestReport:
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no round {want} in time"
        report = rounds.get(timeout=left)
        if want in report.ingested or want in report.removed:
            return report


def test_a_new_file_is_indexed_within_seconds_and_a_deleted_one_leaves(tmp_path: Path, cfg: Config) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "old.txt").write_text("The parking garage closes at midnight.\n")
    app = open_app(cfg, create=True, embedder=CountingEmbedder())
    rounds: queue.Queue[IngestReport] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(watched([drive], app), app, stop), kwargs={"on_round": rounds.put})
    thread.start()
    try:
        first = rounds.get(timeout=30)
        assert first.ingested == ["old.txt"]

        with (drive / "new.txt").open("w") as handle:  # written in two steps, as an editor saves
            handle.write("The cafeteria serves ")
            handle.flush()
            time.sleep(0.3)
            handle.write("pierogi on Thursdays.\n")
        written = time.monotonic()
        report = _next(rounds, "new.txt", written + PICKUP_SECONDS)
        assert report.ingested == ["new.txt"] and report.unchanged == 1

        (drive / "old.txt").unlink()
        gone = _next(rounds, "old.txt", time.monotonic() + PICKUP_SECONDS)
        assert gone.removed == ["old.txt"]
        state = index_status(app)["sync"]
        assert isinstance(state, dict) and state["removed"] == 1 and state["pending"] == [] and state["failures"] == []
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    hits = search_index(app, "pierogi cafeteria", 3)
    assert hits and hits[0].chunk.source == "new.txt"
    app.close()


def test_the_watch_command_starts_syncs_and_stops_on_sigterm(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "a.txt").write_text("Invoices are approved by the controller.\n")
    index = tmp_path / "index"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmrag.pipeline.cli", "watch", str(drive), "--index", str(index), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the first round: one JSON line
        assert '"ingested": 1' in line, proc.stderr.read() if proc.poll() is not None else line
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_server_keeps_a_watched_folder_in_step_and_says_when_it_last_synced(tmp_path: Path, cfg: Config) -> None:
    from fastapi.testclient import TestClient

    from mmrag.pipeline.http.app import create_app

    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "old.txt").write_text("The parking garage closes at midnight.\n")
    embedder = CountingEmbedder()
    with TestClient(create_app(cfg, embedder=embedder, watch=[str(drive)]), base_url="http://127.0.0.1") as client:

        def found(query: str) -> set[str]:
            answer = client.get("/api/search", params={"q": query})  # 409 until the first round made the index
            return {h["source"] for h in answer.json()["hits"]} if answer.status_code == 200 else set()

        deadline = time.monotonic() + 30
        while "old.txt" not in found("parking garage"):  # the first round
            assert time.monotonic() < deadline, "the first sync never showed up in searches"
            time.sleep(0.2)
        (drive / "new.txt").write_text("The cafeteria serves pierogi on Thursdays.\n")
        written = time.monotonic()
        while "new.txt" not in found("pierogi cafeteria"):
            assert time.monotonic() - written < PICKUP_SECONDS, "the new file was not searchable in time"
            time.sleep(0.2)
        state = client.get("/api/status").json()["sync"]
        assert state["failures"] == [] and state["last_sync"] >= time.time() - 60
