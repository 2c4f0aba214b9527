"""A real Chroma server (``chroma run``, the binary chromadb's wheel ships) on 127.0.0.1 for the stores that
talk to one; started once per test session, on a free port, with its data in a temporary folder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[str]:
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.fail(f"the chroma command is missing beside {sys.executable}: the chromadb package installs it")
    data = Path(tempfile.mkdtemp(prefix="mmrag-chroma-server-"))
    port = _free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                    break
            except OSError as e:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (data / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"chroma run did not start: {log_text}") from e
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
