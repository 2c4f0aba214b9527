"""What one ``mmrag bench`` run measured, the targets it is held to, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmrag.pipeline.bench.cold import ColdStart
    from mmrag.pipeline.bench.contended import BusySearch
    from mmrag.pipeline.bench.ingest import IngestFigures, SmallFiles
    from mmrag.pipeline.bench.sync import SyncFigures
    from mmrag.pipeline.bench.tier import TierResult
    from mmrag.pipeline.bench.workers import WorkersFigures


@dataclass
class Results:
    machine: dict[str, float | int | str | bool | None] = field(default_factory=dict)
    ingest: IngestFigures | None = None
    workers: WorkersFigures | None = None
    small: SmallFiles | None = None
    tiers: list[TierResult] = field(default_factory=list)
    cold: ColdStart | None = None
    busy: BusySearch | None = None
    sync: SyncFigures | None = None
    sync_s3: SyncFigures | None = None
    seconds: float = 0.0
    load_at_end: float = 0.0
    complete: bool = False  # every part ran, at the default sizes: the whole-bench time is comparable


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's figures to reach, with what this run measured (None: not measured)."""

    name: str
    goal: str
    measured: float | None
    met: bool | None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "target": self.goal, "measured": _round(self.measured), "met": self.met}


def _target(name: str, goal: str, measured: float | None, limit: float, above: bool = False) -> Target:
    if measured is None:
        return Target(name, goal, None, None)
    return Target(name, goal, measured, measured >= limit if above else measured < limit)


def targets(r: Results) -> list[Target]:
    out: list[Target] = []
    if r.ingest is not None:
        mmrag_s, baseline_s = r.ingest.text_corpus()
        speedup = baseline_s / mmrag_s if baseline_s and mmrag_s else None
        out.append(_target("ingest speedup over the baseline, text corpus", ">= 3x", speedup, 3.0, above=True))
        out.append(_target("one hour of video (minutes)", "< 10", r.ingest.hour_of_video_min()[0], 10.0))
    tier = next((t for t in r.tiers if t.size == 100_000 and t.store == "local"), None)
    out.append(_target("search p50 at 100,000 chunks (ms)", "< 50", tier.search.p50 if tier else None, 50.0))
    out.append(_target("search p95 at 100,000 chunks (ms)", "< 150", tier.search.p95 if tier else None, 150.0))
    small = r.small.unchanged_s if r.small is not None and r.small.files >= 1000 else None
    out.append(_target("re-ingest of an unchanged 1,000-file folder (s)", "< 5", small, 5.0))
    synced = r.sync.sync_s if r.sync is not None and r.sync.items >= 100_000 else None
    out.append(_target("sync of an unchanged 100,000-item share (s)", "< 10", synced, 10.0))
    out.append(
        _target("whole bench, every part, default sizes (min)", "< 15", r.seconds / 60 if r.complete else None, 15)
    )
    return out


def to_json(r: Results) -> dict[str, object]:
    """The machine-readable figures (``--json``); shapes are described in docs/benchmarks.md."""
    out: dict[str, object] = {
        "search_ms": {str(t.size): t.to_json() for t in r.tiers if t.store == "local"},
        "ingest": {},
        "reingest_unchanged_s": None,
        "reingest_one_changed_s": None,
        "cold_start_s": None if r.cold is None else _round(r.cold.ask_s),
    }
    if r.ingest is not None:
        fig = r.ingest
        mmrag_s, baseline_s = fig.text_corpus()
        hour_min, basis = fig.hour_of_video_min()
        out["ingest"] = {run.modality: run.to_json() for run in fig.runs}
        out["ingest_text_corpus"] = {
            "mmrag_s": round(mmrag_s, 2),
            "baseline_s": _round(baseline_s, 2),
            "speedup": _round(baseline_s / mmrag_s if baseline_s and mmrag_s else None, 2),
            **fig.text_corpus_same_work(),
        }
        out["ingest_corpus"] = fig.corpus
        out["ingest_warmup_s"] = round(fig.warmup_s, 2)
        out["one_hour_video_min"] = _round(hour_min, 2)
        out["one_hour_video_basis"] = basis
        out["long_video"] = None if fig.long_video is None else fig.long_video.to_json()
        if fig.reingest is not None:
            out["reingest_unchanged_s"] = round(fig.reingest.unchanged_s, 3)
            out["reingest_one_changed_s"] = round(fig.reingest.one_changed_s, 3)
            out["reingest_changed_file"] = fig.reingest.changed_file
    if r.workers is not None:
        out["ingest_workers"] = r.workers.to_json(r.ingest.text_corpus()[1] if r.ingest is not None else None)
    if r.sync is not None:
        out["sync"] = r.sync.to_json()
    if r.sync_s3 is not None:
        out["sync_s3"] = r.sync_s3.to_json()
    if r.small is not None:
        out["small_files"] = {
            "files": r.small.files,
            "first_ingest_s": round(r.small.first_s, 2),
            "reingest_unchanged_s": round(r.small.unchanged_s, 3),
        }
    if r.cold is not None:
        out["cold"] = r.cold.to_json()
    server = {str(t.size): t.to_json() for t in r.tiers if t.store == "server"}
    if server:
        out["search_ms_server"] = server
    out["search_during_ingest_ms"] = None if r.busy is None else r.busy.to_json()
    out["targets"] = [t.to_json() for t in targets(r)]
    out["machine"] = {**r.machine, "load_avg_1m_at_end": r.load_at_end}
    out["bench_s"] = round(r.seconds, 1)
    return out
