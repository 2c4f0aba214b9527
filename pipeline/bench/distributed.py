"""The distributed ingest's servers for the bench (and the tests): a private Redis on a free 127.0.0.1 port,
keeping nothing on disk, and ``mmrag ingest-worker`` processes reading files through it.

The bench's figure: the corpus read by one ``mmrag ingest-worker --concurrency N`` on this machine,
set beside the same corpus with ``--workers 1`` and ``--workers N`` (``workers.py``). The worker is
started, and answers, before the timed run, as a worker machine that is already running would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from mmrag.pipeline.bench.common import free_port, stop_process


def redis_server() -> str:
    """The redis-server command, or "" when it is not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else ""


class RedisServer:
    """``redis-server`` on a free 127.0.0.1 port, keeping nothing on disk; ``url`` once started."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10) -> str:
        command = redis_server()
        if not command:
            raise RuntimeError("redis-server is not installed (./bootstrap.sh test installs Debian's redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._proc = subprocess.Popen([command, *options, "--dir", str(self.folder)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self.url
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None


def start_ingest_worker(
    broker: str,
    concurrency: int,
    *,
    env: dict[str, str] | None = None,
    config: Path | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``mmrag ingest-worker`` in its own process, its output in ``log`` (else its standard error is the
    caller's). The broker is private to the caller, so a worker run as root (CI) is allowed (``C_FORCE_ROOT``)."""
    command = [sys.executable, "-m", "mmrag.pipeline.cli", "ingest-worker", "--broker", broker]
    command += ["--concurrency", str(concurrency)]
    if config is not None:
        command += ["--config", str(config)]
    environment = {**(env or os.environ), "C_FORCE_ROOT": "1"}
    if log is None:  # its messages go where the caller's do
        return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    with log.open("wb") as out:
        return subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT)


def wait_for_workers(broker: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    """Wait until a worker answers on ``broker``; ``RuntimeError`` when ``proc`` exits or time runs out."""
    from mmrag.pipeline.ingest_worker import celery_app

    app = celery_app(broker)
    deadline = time.monotonic() + timeout_s
    try:
        while not app.control.inspect(timeout=1.0).stats():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mmrag ingest-worker did not answer on {broker} (exit status {proc.poll()})")
    finally:
        app.close()


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """A warm shutdown (the worker stops its children), killed when it takes over 20 s."""
    stop_process(proc, timeout_s=20)
