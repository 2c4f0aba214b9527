"""The distributed ingest (``mmrag ingest --broker URL``): ``mmrag ingest-worker`` processes read the files
through a private Redis on 127.0.0.1 while the ingest process alone embeds and writes. The index is the one
a single process builds; a corrupt file and a file that kills its reader are skipped with their reasons;
a broker that cannot be reached, or one no worker serves, stops the run before anything is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from builders import build_pdf
from fakes import CountingEmbedder

from mmrag.pipeline import api
from mmrag.pipeline.app import open_app
from mmrag.pipeline.bench.common import free_port
from mmrag.pipeline.bench.distributed import RedisServer, redis_server, start_ingest_worker, stop_worker
from mmrag.pipeline.cli import main
from mmrag.pipeline.config import Config, load_config
from mmrag.retrieval.manifest import Manifest

State = tuple[set[str], dict[tuple[str, str], set[str]], list[tuple[object, ...]]]
StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A private Redis on a free 127.0.0.1 port, keeping nothing on disk."""
    if not redis_server():
        pytest.skip("redis-server is not installed (./bootstrap.sh test installs Debian's redis-server)")
    server = RedisServer(tmp_path / "redis")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def start_worker(tmp_path: Path, broker: str) -> Iterator[StartWorker]:
    """Starts ``mmrag ingest-worker`` processes on the broker; each is stopped when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(concurrency: int = 1, fault: str = "") -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "MMRAG_FAULT"}
        env |= {"XDG_CONFIG_HOME": str(tmp_path / "worker-config"), "XDG_CACHE_HOME": str(tmp_path / "worker-cache")}
        if fault:
            env["MMRAG_FAULT"] = fault  # the worker's reader dies on this file, as a segfault would kill it
        worker = start_ingest_worker(broker, concurrency, env=env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        stop_worker(worker)


def _drive(root: Path) -> Path:
    """A small mixed folder: text, Markdown, a PDF, a picture and a CSV."""
    from PIL import Image

    (root / "notes").mkdir(parents=True)
    (root / "notes" / "plan.md").write_text("# Roadmap\n\n## Q4\n\nShip the quantum widget by December.\n")
    (root / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    (root / "prices.csv").write_text("item,price\nwidget,12\ngadget,30\nsprocket,7\n")
    (root / "report.pdf").write_bytes(build_pdf([["Harbour report", "Dredging starts in May."], ["Page two."]]))
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "red.png")
    for i in range(3):
        (root / "notes" / f"minutes-{i}.txt").write_text(f"Minutes of meeting {i}: the kiln {i} was repaired.\n")
    return root


def _config(cfg: Config, index: Path, broker: str = "", wait_s: float = 60.0) -> Config:
    return replace(cfg, index_dir=index, ingest=replace(cfg.ingest, workers=1, broker=broker, broker_wait_s=wait_s))


def _ingest(cfg: Config, what: Path | str) -> api.IngestReport:
    try:
        return api.ingest([what], cfg, embedder=CountingEmbedder(64))
    finally:
        api.close(cfg)


def _state(cfg: Config) -> State:
    app = open_app(cfg, create=False, embedder=CountingEmbedder(64))
    try:
        manifest = sorted((r.root, r.source, r.sha256, r.kind, r.status, r.chunks) for r in app.manifest.files())
        return app.store.ids(), app.keyword.record_ids(), manifest
    finally:
        app.close()


def _pictures(cfg: Config) -> dict[str, bytes]:
    media = cfg.index_dir / "media"
    return {p.relative_to(media).as_posix(): p.read_bytes() for p in media.rglob("*") if p.is_file()}


def test_workers_through_a_broker_build_the_index_one_process_builds(
    tmp_path: Path, cfg: Config, broker: str, start_worker: StartWorker
) -> None:
    drive = _drive(tmp_path / "drive")
    start_worker(concurrency=2)
    one = _config(cfg, tmp_path / "one")
    spread = _config(cfg, tmp_path / "spread", broker)

    single = _ingest(one, drive)
    distributed = _ingest(spread, drive)

    assert single.skipped == [] and distributed.skipped == []
    assert sorted(distributed.ingested) == sorted(single.ingested) and len(single.ingested) == 8
    assert _state(spread) == _state(one)
    pictures = _pictures(spread)
    assert pictures and pictures == _pictures(one), "the worker's thumbnails are written to the ingest node's media"
    hits = api.search("red picture", spread, k=20, embedder=CountingEmbedder(64))
    shown = [h.chunk.image for h in hits if h.chunk.source == "red.png"]
    assert shown and shown[0] is not None and shown[0].is_file()

    (drive / "budget.txt").write_text("The travel budget for 2026 is 51,000 euros.\n")
    (drive / "prices.csv").unlink()
    again = _ingest(spread, drive)
    assert again.ingested == ["budget.txt"] and again.removed == ["prices.csv"] and again.unchanged == 6
    _ingest(one, drive)
    assert _state(spread) == _state(one)


def test_a_corrupt_file_and_a_file_that_kills_its_reader_are_skipped_and_items_of_a_source_travel_in_the_task(
    tmp_path: Path, cfg: Config, broker: str, start_worker: StartWorker
) -> None:
    drive = _drive(tmp_path / "drive")
    (drive / "broken.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    (drive / "notes" / "killer.txt").write_text("Reading this file crashes the parser.\n")
    config = tmp_path / "mmrag.toml"
    config.write_text(f'[sources.team]\nkind = "local"\nurl = "{drive}"\n')
    named = load_config(config_file=config, index_dir=tmp_path / "unused", env={})
    spread, one = _config(named, tmp_path / "spread", broker), _config(named, tmp_path / "one")
    worker = start_worker(fault="parse:team:/notes/killer.txt")

    report = _ingest(spread, "team")  # a source: each item is downloaded here and sent with its task

    skipped = {s.file: s.reason for s in report.skipped}
    assert set(skipped) == {"team:/broken.pdf", "team:/notes/killer.txt"}
    assert skipped["team:/notes/killer.txt"].startswith("the worker process reading it died (exit code 137)")
    assert skipped["team:/broken.pdf"] and "Traceback" not in skipped["team:/broken.pdf"]
    assert len(report.ingested) == 8 and report.failed == []
    assert list((spread.index_dir / "downloads").glob("*/*")) == [], "every downloaded copy is removed"

    stop_worker(worker)
    start_worker()
    again = _ingest(spread, "team")
    assert again.ingested == ["team:/notes/killer.txt"], "a file whose reader died is tried again"
    assert [s.file for s in again.skipped] == ["team:/broken.pdf"]
    _ingest(one, "team")
    assert _state(spread) == _state(one)


def test_a_broker_that_cannot_be_reached_stops_the_run_before_anything_is_written(
    tmp_path: Path, cfg: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    drive = _drive(tmp_path / "drive")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    index = tmp_path / "index"

    code = main(["ingest", str(drive), "--index", str(index), "--broker", url])

    message = capsys.readouterr().err
    assert code == 1
    assert f"cannot reach the ingest broker {url} ([ingest] broker (MMRAG_INGEST_BROKER, --broker))" in message
    assert "start Redis there" in message
    manifest = Manifest(index / "manifest.sqlite")
    try:
        assert list(manifest.files()) == [], "no file was recorded"
    finally:
        manifest.close()


def test_no_worker_on_the_broker_stops_the_run_with_a_message_after_the_wait(
    tmp_path: Path, cfg: Config, broker: str
) -> None:
    drive = _drive(tmp_path / "drive")
    spread = _config(cfg, tmp_path / "spread", broker, wait_s=1.0)

    started = time.monotonic()
    with pytest.raises(Exception, match=r"no ingest worker answered on redis://127\.0\.0\.1:\d+/0 within 1 s"):
        _ingest(spread, drive)

    assert time.monotonic() - started < 15
    assert _state(spread)[2] == []


def test_the_broker_setting_must_be_a_redis_url(tmp_path: Path) -> None:
    config = tmp_path / "mmrag.toml"
    config.write_text('[ingest]\nbroker = "amqp://guest:secret@rabbit//"\n')
    from mmrag.pipeline.config import ConfigError

    with pytest.raises(
        ConfigError, match=r"\[ingest\] broker .* must be a Redis URL .* got 'amqp://guest:\*\*\*@rabbit//'"
    ):
        load_config(config_file=config, env={})


STALLING_WORKER = """
import sys, time
from pathlib import Path
import mmrag.pipeline.ingest_parse as reading
from mmrag.pipeline.cli import main

marker, slow, real = Path(sys.argv[1]), sys.argv[2], reading.parse

def parse(job):
    if job.source == slow:
        marker.touch()  # the test kills this worker, all its processes, while it holds the file
        time.sleep(600)
    return real(job)

reading.parse = parse
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.timeout(90)  # a lost file would otherwise be waited for
def test_a_worker_machine_that_stops_while_it_holds_a_file_costs_only_that_file(
    tmp_path: Path, cfg: Config, broker: str, start_worker: StartWorker
) -> None:
    drive = _drive(tmp_path / "drive")
    (drive / "slow.txt").write_text("The reader of this file is stopped, machine and all.\n")
    marker = tmp_path / "holding"
    env = dict(
        os.environ, XDG_CONFIG_HOME=str(tmp_path / "wc"), XDG_CACHE_HOME=str(tmp_path / "cache"), C_FORCE_ROOT="1"
    )
    command = ["ingest-worker", "--broker", broker, "--concurrency", "1", "--name", "doomed"]
    doomed = subprocess.Popen(
        [sys.executable, "-c", STALLING_WORKER, str(marker), "slow.txt", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    spread = _config(cfg, tmp_path / "spread", broker)

    def kill_when_holding() -> None:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(doomed.pid, signal.SIGKILL)  # a power cut: no goodbye to the broker
        start_worker()  # another machine reads the rest

    killer = threading.Thread(target=kill_when_holding)
    killer.start()
    try:
        report = _ingest(spread, drive)
    finally:
        killer.join()
        doomed.wait()

    assert marker.exists()
    assert [s.file for s in report.skipped] == ["slow.txt"]
    assert report.skipped[0].reason.startswith("the worker process reading it died (its ingest worker doomed@")
    assert len(report.ingested) == 8
    assert _ingest(spread, drive).ingested == ["slow.txt"]


def test_an_item_of_a_source_over_the_ship_limit_is_read_by_the_ingest_process(
    tmp_path: Path, broker: str, start_worker: StartWorker
) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "memo.txt").write_text("Lunch at 12.\n")
    (drive / "big.txt").write_text("The quarterly figures are in the appendix of the harbour report.\n" * 50)
    config = tmp_path / "mmrag.toml"
    config.write_text(f'[sources.team]\nkind = "local"\nurl = "{drive}"\n[ingest]\nbroker_ship_mb = 0.001\n')
    named = _config(load_config(config_file=config, index_dir=tmp_path / "unused", env={}), tmp_path / "i", broker)
    start_worker(fault="parse:team:/big.txt")  # were it sent to the worker, its reader would die

    report = _ingest(named, "team")

    assert report.skipped == [] and sorted(report.ingested) == ["team:/big.txt", "team:/memo.txt"]


def test_the_per_file_time_budget_holds_on_the_workers(
    tmp_path: Path, cfg: Config, broker: str, start_worker: StartWorker
) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "minutes.txt").write_text("A line of the minutes.\n" * 20_000)
    (drive / "small.txt").write_text("The canteen opens at 8.\n")
    spread = _config(cfg, tmp_path / "spread", broker)
    spread = replace(spread, limits=replace(cfg.limits, file_seconds=0.000_001))
    start_worker()

    report = _ingest(spread, drive)

    assert {s.file for s in report.skipped} == {"minutes.txt", "small.txt"}
    assert all(s.reason.startswith("took longer than the 0 s per-file budget") for s in report.skipped)
    assert report.ingested == []
