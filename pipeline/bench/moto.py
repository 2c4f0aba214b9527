"""An S3 API on 127.0.0.1 for measuring and testing the S3 source: moto in server mode
(``python -m moto.server``), a separate process speaking the S3 wire protocol, everything in memory.

``mmrag bench`` lists a bucket on it; the tests start one per session (``tests/s3_server.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mmrag.pipeline.bench.common import answers, free_port, stop_process


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
        if not answers(self._proc, f"{self.url}/moto-api/", 60, poll_s=0.1):
            self.stop()
            raise RuntimeError(f"moto server did not start: {self.log()[-2000:]}")
        return self.url

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
