"""An S3 API on 127.0.0.1 for measuring and testing the S3 source: moto in server mode
(``python -m moto.server``), a separate process speaking the S3 wire protocol, everything in memory.

``mmrag bench`` lists a bucket on it; the tests start one per session (``tests/s3_server.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mmrag.pipeline.bench.common import free_port


class MotoServer:
    """``python -m moto.server`` on a free port; ``url`` once started, everything in memory."""

    def __init__(self) -> None:
        self.port = free_port()
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
