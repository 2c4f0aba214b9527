"""A private Chroma server for the server-store search figure: ``chroma run`` (the binary chromadb's wheel
installs beside Python) on a free 127.0.0.1 port, serving an index folder the bench built.

Chroma 1.x's embedded client and its server keep the same files, so ``chroma run --path`` serves the
persisted synthetic index as it is (no reload through HTTP). Only one of the two may have the folder
open at a time: the bench builds the index in another process and starts the server after it exits.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from mmrag.pipeline.bench.common import answers, dir_size_mb, free_port, high_water_mb, stop_process

TENANT = "default_tenant"
DATABASE = "default_database"  # where the embedded client keeps its collections too


class ChromaServer:
    """``chroma run --path FOLDER`` on a free port; ``url`` once started, its peak memory before ``stop``."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300) -> str:
        """Start the server and wait until it answers (a big index takes a while to open)."""
        chroma = Path(sys.executable).with_name("chroma")
        if not chroma.exists():
            raise RuntimeError(
                f"the chroma command is missing beside {sys.executable}: the chromadb package installs it"
            )
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(chroma), "run", "--path", str(self.folder), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not answers(self._proc, f"{self.url}/api/v2/heartbeat", timeout_s):
            text = self.log()[-2000:]
            self.stop()
            raise RuntimeError(f"chroma run did not start: {text}")
        return self.url

    def peak_rss_mb(self) -> float:
        """The server's resident-memory high-water mark so far (Linux ``VmHWM``; 0.0 where unreadable)."""
        return (high_water_mb(self._proc.pid) or 0.0) if self._proc is not None else 0.0

    def stop(self) -> float:
        """Stop the server; returns its peak RSS in MB (``VmHWM``, else the children's ``ru_maxrss``)."""
        if self._proc is None:
            return 0.0
        peak = self.peak_rss_mb()
        stop_process(self._proc, timeout_s=30)
        self._proc = None
        if not peak:  # not Linux: the largest child reaped so far (the bench's only long-lived child)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / (1e6 if sys.platform == "darwin" else 1e3)
        return peak

    def disk_mb(self) -> float:
        return dir_size_mb(self.folder)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
