"""Cold start: a new ``mmrag`` process, from its start to the first answer, and ``mmrag --help``.

"Cold" is the process: the operating system's file cache is warm after the first of the runs, as
it is on a machine that used mmrag today. Each figure is the median of a few runs.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mmrag.pipeline.config import Config

QUESTION = "When does the Lisbon office open on weekdays?"
FILES = {
    "offices/lisbon.md": "# Lisbon office\n\nThe Lisbon office opens at 8:30 on weekdays and closes at 18:00.\n"
    "Visitors sign in at the front desk on the ground floor.\n",
    "offices/oslo.md": "# Oslo office\n\nThe Oslo office opens at 9:00 on weekdays. It is closed on public holidays.\n",
}


@dataclass(frozen=True, slots=True)
class ApiCalls:
    """Mean milliseconds per ``search`` through the Python API (the index kept open between calls),
    through an index the caller holds open (the CLI's warm search), and opening the index per call."""

    api_ms: float
    warm_ms: float
    reopen_ms: float
    calls: int

    def to_json(self) -> dict[str, object]:
        return {
            "api_search_ms": round(self.api_ms, 2),
            "warm_search_ms": round(self.warm_ms, 2),
            "reopen_per_call_ms": round(self.reopen_ms, 2),
            "api_vs_warm": round(self.api_ms / self.warm_ms, 2) if self.warm_ms else None,
            "calls": self.calls,
        }


@dataclass(frozen=True, slots=True)
class ColdStart:
    help_s: float
    ask_s: float | None  # None when not measured (no real text model configured)
    answered: bool
    runs: int
    api: ApiCalls | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "help_s": round(self.help_s, 3),
            "cold_start_s": None if self.ask_s is None else round(self.ask_s, 3),
            "answered": self.answered,
            "runs": self.runs,
            "python_api": None if self.api is None else self.api.to_json(),
        }


def measure_api_calls(cfg: Config, calls: int = 100) -> ApiCalls:
    """``api.search`` ``calls`` times, against the same searches on an index held open and reopened per call."""
    from mmrag.pipeline import api
    from mmrag.pipeline.app import open_app

    api.search(QUESTION, cfg, k=5)  # the first call opens the index and loads the models
    start = time.perf_counter()
    for _ in range(calls):
        api.search(QUESTION, cfg, k=5)
    api_ms = (time.perf_counter() - start) * 1000 / calls
    app = open_app(cfg, create=False)
    try:
        api.search_index(app, QUESTION, 5)
        start = time.perf_counter()
        for _ in range(calls):
            api.search_index(app, QUESTION, 5)
        warm_ms = (time.perf_counter() - start) * 1000 / calls
        reopen = max(3, calls // 10)
        start = time.perf_counter()
        for _ in range(reopen):  # what each call cost when the API opened the index (and its models) every time
            each = open_app(cfg, create=False)
            try:
                api.search_index(each, QUESTION, 5)
            finally:
                each.close()
        reopen_ms = (time.perf_counter() - start) * 1000 / reopen
    finally:
        app.close()
        api.close(cfg)
    return ApiCalls(api_ms, warm_ms, reopen_ms, calls)


def mmrag_command() -> list[str]:
    """The installed ``mmrag`` script next to this Python, else ``python -m mmrag.pipeline.cli``."""
    script = Path(sys.executable).with_name("mmrag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mmrag.pipeline.cli"]


def _median_run(cmd: Sequence[str], runs: int) -> tuple[float, str]:
    times: list[float] = []
    out = ""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        out = done.stdout
    return statistics.median(times), out


def measure_cold_start(
    cfg: Config, work: Path, *, config_file: Path | None, with_ask: bool, runs: int, note: Callable[[str], None]
) -> ColdStart:
    """Time ``mmrag --help`` and, with ``with_ask``, ``mmrag ask`` on a small index built here first."""
    base = mmrag_command()
    help_s, _ = _median_run([*base, "--help"], runs)
    if not with_ask:
        return ColdStart(help_s, None, False, runs)
    from mmrag.pipeline.api import ingest

    folder = work / "cold-drive"
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    index = work / "cold-index"
    shutil.rmtree(index, ignore_errors=True)
    note("preparing a small index for the cold-start figure")
    ingest([folder], replace(cfg, index_dir=index))
    cmd = [*base, "ask", QUESTION, "--index", str(index), "--json"]
    if config_file is not None:
        cmd += ["--config", str(config_file)]
    note(f"timing `mmrag ask` in a new process ({runs} runs)")
    ask_s, out = _median_run(cmd, runs)
    answered = not bool(json.loads(out).get("declined", True))
    note("timing 100 searches through the Python API")
    return ColdStart(help_s, ask_s, answered, runs, measure_api_calls(replace(cfg, index_dir=index)))
