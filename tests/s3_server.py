"""A real S3 API on 127.0.0.1 for the S3 source's tests: moto in server mode (``python -m moto.server``),
a separate process speaking the S3 wire protocol, so boto3 runs its real HTTP, signing and paging code.

``s3_server`` is started once per session; ``MotoServer`` starts a private one a test may stop.
Import the fixtures into a test module with ``from s3_server import s3_bucket, s3_server  # noqa: F401``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# moto accepts any key pair; these are what the tests' own clients and configs use
ACCESS_KEY = "test"
SECRET_KEY = "secret-key-xyz"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on a free port; ``url`` once started, everything in memory."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="mmrag-moto-"))
        self._log_path = self._dir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        log = self._log_path.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self._dir), "MOTO_CALL_RESET_API": "false"},
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return self.url
            except OSError as e:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not start: {self.log()[-2000:]}") from e
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def client(endpoint: str) -> Any:
    """A plain boto3 client for the test to arrange objects with (not the code under test)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server shared by the session."""
    server = MotoServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def s3_bucket(s3_server: str) -> Iterator[tuple[str, str, Any]]:
    """A fresh, empty bucket: ``(endpoint, bucket, boto3 client)``."""
    bucket = f"mmrag-{uuid.uuid4().hex[:12]}"
    s3 = client(s3_server)
    s3.create_bucket(Bucket=bucket)
    try:
        yield s3_server, bucket, s3
    finally:
        s3.close()
