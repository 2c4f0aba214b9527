"""Small shared pieces of ``mmrag bench``: latency statistics, stage timers, the machine description.

Nothing here imports a heavy library; the measuring modules import theirs inside their functions.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

JsonValue = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of one series of timed calls, in milliseconds."""

    p50: float
    p95: float
    p99: float
    mean: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            return cls(0.0, 0.0, 0.0, 0.0, 0)
        ms = sorted(s * 1000.0 for s in seconds)
        return cls(_percentile(ms, 50), _percentile(ms, 95), _percentile(ms, 99), sum(ms) / len(ms), len(ms))

    def to_json(self) -> dict[str, float | int]:
        return {
            "p50": round(self.p50, 2),
            "p95": round(self.p95, 2),
            "p99": round(self.p99, 2),
            "mean": round(self.mean, 2),
            "n": self.n,
        }

    @classmethod
    def from_json(cls, data: dict[str, float | int]) -> Latency:
        return cls(float(data["p50"]), float(data["p95"]), float(data["p99"]), float(data["mean"]), int(data["n"]))


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an already sorted list."""
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class StageTimer:
    """Accumulates wall seconds per named stage; ``patch`` times a method of an object or class.

    Seconds of calls made on several threads at once add up (a stage can then exceed wall time).
    """

    seconds: dict[str, float] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def reset(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken

    @contextmanager
    def patch(self, owner: object, name: str, stage: str, observe: Callable[..., None] | None = None) -> Iterator[None]:
        """Wrap ``owner.name`` (an instance's or a class's method) so its calls count toward ``stage``.

        Only the outermost timed call counts, so a timed method calling another is not counted twice.
        ``observe`` sees each call's arguments (untimed). The original is restored on exit. A missing
        attribute is left alone (the code it measured has moved on).
        """
        original = getattr(owner, name, None)
        if original is None:
            yield
            return
        timer = self

        def timed(*args: object, **kwargs: object) -> object:
            if observe is not None:
                observe(*args, **kwargs)
            local = timer._local
            if getattr(local, "depth", 0):
                return original(*args, **kwargs)
            local.depth = 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                local.depth = 0
                timer.add(stage, time.perf_counter() - start)

        on_class = isinstance(owner, type)
        had_own = on_class and name in vars(owner)
        setattr(owner, name, timed)
        try:
            yield
        finally:
            if on_class and not had_own:
                delattr(owner, name)
            elif on_class:
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # the instance attribute shadowed the class method


def dir_size_mb(path: Path) -> float:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(folder) / name).stat().st_size
            except OSError:
                continue
    return total / 1e6


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server the bench starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(proc: subprocess.Popen[bytes], url: str, timeout_s: float, poll_s: float = 0.2) -> bool:
    """Wait until ``url`` answers a GET; False when the server process exits or ``timeout_s`` passes first."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(poll_s)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """Terminate a server the bench started; kill it when it does not stop within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def high_water_mb(pid: int | str) -> float | None:
    """A process's peak RSS in MB from ``/proc/PID/status`` (``VmHWM``); None where there is no such file."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident set size so far.

    Linux: ``VmHWM``, which starts afresh at ``exec`` (``ru_maxrss`` does not: a worker started by a
    big parent would report the parent's peak). Elsewhere ``ru_maxrss`` (kilobytes; bytes on macOS).
    """
    linux = high_water_mb("self")
    if linux is not None:
        return linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if platform.system() == "Darwin" else peak / 1e3


def current_rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 1e6


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, JsonValue]:
    """What the figures came from: they mean little without the machine and the load on it."""
    import psutil

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load1, load5, _ = os.getloadavg()
    return {
        "cpu": _cpu_model(),
        "cores": usable,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "chromadb": _version("chromadb"),
        "torch": _version("torch"),
        "sentence_transformers": _version("sentence-transformers"),
        "load_avg_1m_at_start": round(load1, 2),
        "load_avg_5m_at_start": round(load5, 2),
    }


def load_now() -> float:
    return round(os.getloadavg()[0], 2)


def interleaved(
    variants: dict[str, Callable[[int], object]], count: int, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each variant; variants alternate per query so load swings hit them alike."""
    for i in range(min(warmup, count)):
        for call in variants.values():
            call(i)
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for i in range(count):
            for name, call in variants.items():
                start = time.perf_counter()
                call(i)
                out[name].append(time.perf_counter() - start)
    return out
