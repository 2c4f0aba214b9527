"""Ingest throughput per modality, stage by stage, with the baseline and re-ingest figures.

The corpus is copied into one folder per modality and each folder is ingested by the real pipeline
(``run_ingest``, default models) into one index, so each modality's time is its own. Models are
loaded first by a warm-up ingest of each modality's smallest file into a scratch index (reported as
``warmup_s``), as they would be after the first file of a long run. Stage times come from timing
wrappers put around the index's writers and encoders and around the OCR, speech and labelling
classes for the duration of the run; "parse" is what remains (reading, decoding, chunking).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mmrag.pipeline.app import App
from mmrag.pipeline.bench.common import StageTimer
from mmrag.pipeline.bench.stages import (
    ORDER,
    TEXT_MODALITIES,
    ModalityRun,
    Recorder,
    classify,
    copy_files,
    count_units,
    instrumented,
)
from mmrag.pipeline.config import Config
from mmrag.retrieval.embed import TextEmbedder

EDIT_ORDER = (".md", ".txt", ".html", ".csv")
Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LongVideo:
    """A long recording made by looping a corpus video, ingested like any other file."""

    source: str
    media_s: float
    seconds: float
    stages: tuple[tuple[str, float], ...]

    def to_json(self) -> dict[str, object]:
        return {
            "made_from": f"{self.source} looped (remuxed, not re-encoded)",
            "media_s": round(self.media_s, 1),
            "seconds": round(self.seconds, 1),
            "rtf": round(self.seconds / self.media_s, 4) if self.media_s else None,
            "stage_s": {name: round(s, 2) for name, s in self.stages},
        }


@dataclass(frozen=True, slots=True)
class Reingest:
    """Re-ingesting the corpus folders unchanged, then with one file edited."""

    unchanged_s: float
    one_changed_s: float
    changed_file: str
    changed_ingested: int


@dataclass(frozen=True, slots=True)
class SmallFiles:
    """A folder of many small text files: its first ingest and an unchanged re-ingest."""

    files: int
    first_s: float
    unchanged_s: float
    unchanged: int


@dataclass(frozen=True, slots=True)
class IngestFigures:
    corpus: str
    runs: tuple[ModalityRun, ...]
    warmup_s: float
    reingest: Reingest | None
    long_video: LongVideo | None = None

    def text_corpus(self) -> tuple[float, float | None]:
        """mmrag and baseline seconds over the text modalities (the baseline's only when it ran on all)."""
        runs = [r for r in self.runs if r.modality in TEXT_MODALITIES]
        mmrag = sum(r.seconds for r in runs)
        if not runs or any(r.baseline_seconds is None for r in runs):
            return mmrag, None
        return mmrag, sum(r.baseline_seconds or 0.0 for r in runs)

    def text_corpus_stages(self) -> tuple[dict[str, float], dict[str, float]]:
        """Seconds per stage over the text modalities, mmrag's and the baseline's."""
        mine: dict[str, float] = {}
        theirs: dict[str, float] = {}
        for run in (r for r in self.runs if r.modality in TEXT_MODALITIES):
            for totals, stages in ((mine, run.stages), (theirs, run.baseline_stages)):
                for name, seconds in stages:
                    totals[name] = totals.get(name, 0.0) + seconds
        return mine, theirs

    def text_corpus_same_work(self) -> dict[str, float | None]:
        """What the text-corpus ratio is made of: the baseline never reads pictures, so mmrag's OCR of
        slide pictures is work it does not do; and both embed the same texts with the same weights."""
        mmrag_s, baseline_s = self.text_corpus()
        mine, theirs = self.text_corpus_stages()
        ocr = mine.get("ocr", 0.0)
        same = mmrag_s - ocr
        embedding = mine.get("embedding", 0.0)
        return {
            "ocr_s": round(ocr, 2),
            "speedup_same_work": round(baseline_s / same, 2) if baseline_s and same > 0 else None,
            "embedding_s": round(embedding, 2),
            "baseline_embedding_s": round(theirs["embedding"], 2) if "embedding" in theirs else None,
            "embedding_speedup": round(theirs["embedding"] / embedding, 2)
            if embedding > 0 and "embedding" in theirs
            else None,
        }

    def hour_of_video_min(self) -> tuple[float | None, str]:
        """Minutes to ingest one hour of video, from the longest measurement available."""
        if self.long_video is not None and self.long_video.media_s > 0:
            return self.long_video.seconds / self.long_video.media_s * 60.0, "the looped long video"
        video = next((r for r in self.runs if r.modality == "video"), None)
        if video is not None and video.rtf is not None:
            return video.rtf * 60.0, "the corpus videos, short files where per-file overheads weigh more"
        return None, "no video measured"


def _stages(seconds: float, measured: dict[str, float]) -> tuple[tuple[str, float], ...]:
    parse = max(0.0, seconds - sum(measured.values()))
    return (("parse", parse), *sorted(measured.items()))


def _slowest(times: dict[str, float], n: int = 3) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(times.items(), key=lambda item: -item[1])[:n])


class IngestBench:
    """Owns the work folder, the models and the index that the ingest figures are measured on."""

    def __init__(self, cfg: Config, work: Path, embedder: TextEmbedder | None, note: Note) -> None:
        from mmrag.pipeline.app import Models

        self.cfg = replace(cfg, index_dir=work / "index")
        self.work = work
        self.note = note
        models = Models(cfg, embedder=embedder)  # the encoders load once for every index of the run
        self.text = models.text()
        self.visual = models.visual()
        self.timer = StageTimer()
        self.folders: list[Path] = []
        self.index: App | None = None

    def open(self, folder: Path) -> App:
        from mmrag.pipeline.app import open_app

        cfg = replace(self.cfg, index_dir=folder)
        return open_app(cfg, create=True, embedder=self.text, visual=self.visual, reindex=True)

    def warm_up(self, by_modality: dict[str, list[tuple[Path, str]]]) -> float:
        """Ingest each modality's smallest file into a scratch index, so models load before timing."""
        from mmrag.pipeline.ingest_run import run_ingest

        start = time.perf_counter()
        folder = self.work / "warm"
        for modality, files in by_modality.items():
            copy_files([min(files, key=lambda f: f[0].stat().st_size)], folder / modality)
        index = self.open(self.work / "warm-index")
        try:
            run_ingest([folder], index)
        finally:
            index.close()
        return time.perf_counter() - start

    def run(self, name: str, files: Sequence[tuple[Path, str]], folder: Path) -> tuple[ModalityRun, Recorder]:
        from mmrag.pipeline.ingest_run import run_ingest

        if self.index is None:
            self.index = self.open(self.cfg.index_dir)
        copy_files(files, folder)
        recorder = Recorder()
        with instrumented(self.index, self.timer, recorder):
            report = run_ingest([folder], self.index, recorder)
        self.folders.append(folder)
        run = ModalityRun(
            modality=name,
            files=len(files),
            units=count_units(name, files, recorder, len(report.ingested)),
            chunks=report.chunks,
            seconds=report.seconds,
            stages=_stages(report.seconds, self.timer.reset()),
            slowest=_slowest(recorder.file_seconds),
            skipped=len(report.skipped),
        )
        return run, recorder

    def reingest(self) -> tuple[float, int]:
        """Seconds to re-ingest every folder ingested so far, and how many files it ingested anew."""
        from mmrag.pipeline.ingest_run import run_ingest

        assert self.index is not None
        start = time.perf_counter()
        report = run_ingest(self.folders, self.index)
        return time.perf_counter() - start, len(report.ingested)

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None


def edit_one_file(folders: Sequence[Path]) -> Path | None:
    """Append a line to one text-like file (Markdown first), as a person editing it would."""
    files = [p for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()]
    for suffix in EDIT_ORDER:
        for path in files:
            if path.suffix.lower() == suffix:
                extra = "\n2099-01-01,0,0,0,0,0\n" if suffix == ".csv" else "\n\nEdited for the benchmark.\n"
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(extra)
                return path
    return None


def measure_ingest(
    corpus: Path,
    cfg: Config,
    work: Path,
    *,
    embedder: TextEmbedder | None,
    baseline: Callable[[str], list[float]] | None,
    long_video_s: float,
    reingest: bool,
    note: Note,
) -> IngestFigures:
    """Ingest figures per modality (with the baseline when ``baseline`` encodes), then re-ingest figures."""
    by_modality = classify(corpus)
    bench = IngestBench(cfg, work, embedder, note)
    try:
        note(f"warming up the models on one file per modality ({len(by_modality)} modalities)")
        warmup_s = bench.warm_up(by_modality)
        runs: list[ModalityRun] = []
        texts: dict[str, dict[str, list[str]]] = {}
        for name in ORDER:
            if name in by_modality:
                note(f"ingesting {len(by_modality[name])} {name} file(s)")
                run, recorder = bench.run(name, by_modality[name], work / "corpus" / name)
                runs.append(run)
                texts[name] = recorder.texts
        if baseline is not None:
            runs = _with_baseline(runs, by_modality, texts, work, baseline, note)
        again = _reingest_figures(bench, note) if reingest else None
        long_video = None
        if long_video_s > 0 and "video" in by_modality:
            long_video = _long_video(bench, by_modality["video"], long_video_s, note)
    finally:
        bench.close()
    return IngestFigures(str(corpus), tuple(runs), warmup_s, again, long_video)


def _with_baseline(
    runs: list[ModalityRun],
    by_modality: dict[str, list[tuple[Path, str]]],
    texts: dict[str, dict[str, list[str]]],
    work: Path,
    encode: Callable[[str], list[float]],
    note: Note,
) -> list[ModalityRun]:
    from mmrag.pipeline.bench.baseline import Baseline

    baseline = Baseline(work / "baseline-chroma", encode)
    copies = {
        name: [(work / "corpus" / name / source, source) for _, source in by_modality[name]]
        for name in TEXT_MODALITIES
        if name in by_modality
    }
    baseline.warm_up([min(files, key=lambda f: f[0].stat().st_size)[0] for files in copies.values()])
    out = []
    for run in runs:
        if run.modality in copies:
            note(f"baseline: {run.modality}")
            done = baseline.ingest(copies[run.modality], texts.get(run.modality, {}))
            run = replace(run, baseline_seconds=done.seconds, baseline_stages=done.stages, baseline_parser=done.parser)
        out.append(run)
    return out


def _reingest_figures(bench: IngestBench, note: Note) -> Reingest:
    note("re-ingesting the unchanged corpus, then with one file changed")
    unchanged_s, _ = bench.reingest()
    edited = edit_one_file(bench.folders)
    changed_s, ingested = bench.reingest() if edited is not None else (0.0, 0)
    return Reingest(unchanged_s, changed_s, edited.name if edited is not None else "", ingested)


def _long_video(bench: IngestBench, videos: Sequence[tuple[Path, str]], seconds: float, note: Note) -> LongVideo:
    from mmrag.pipeline.bench.synthetic import loop_video, media_seconds

    longest = max(videos, key=lambda f: media_seconds(f[0]))[0]
    made = bench.work / "long-video-source" / f"long{longest.suffix}"
    made.parent.mkdir(parents=True, exist_ok=True)
    note(f"making a {seconds:.0f} s video by looping {longest.name}, then ingesting it")
    media_s = loop_video(longest, made, seconds)
    run, _ = bench.run("video", [(made, made.name)], bench.work / "long-video")
    return LongVideo(longest.name, media_s, run.seconds, run.stages)


def small_files_reingest(cfg: Config, cache: Path, count: int, *, rebuild: bool, note: Note) -> SmallFiles:
    """A folder of ``count`` small text files, ingested once and kept in the cache; then re-ingested unchanged.

    Both go through ``api.ingest`` (opening the index included). The hash embedder builds it: an
    unchanged re-ingest embeds nothing, so the figure is the same as with the real model.
    """
    import json

    from mmrag.pipeline.api import ingest
    from mmrag.pipeline.bench.synthetic import write_small_files
    from mmrag.retrieval.embed import HashEmbedder
    from mmrag.retrieval.store import IndexMismatch

    home = cache / f"small-files-{count}-v1"
    folder, marker = home / "drive", home / "built.json"
    small = replace(cfg, index_dir=home / "index")
    first_s = float(json.loads(marker.read_text())["first_s"]) if marker.exists() and not rebuild else None
    if first_s is None:
        shutil.rmtree(home, ignore_errors=True)
        write_small_files(folder, count)
        note(f"ingesting {count} small files (kept in {home} for later runs)")
        start = time.perf_counter()
        ingest([folder], small, embedder=HashEmbedder(384))
        first_s = time.perf_counter() - start
        marker.write_text(json.dumps({"first_s": first_s}))
    note(f"re-ingesting the {count} small files unchanged")
    start = time.perf_counter()
    try:
        report = ingest([folder], small, embedder=HashEmbedder(384))
    except IndexMismatch:  # the cached index was written by another version of mmrag
        marker.unlink()
        return small_files_reingest(cfg, cache, count, rebuild=True, note=note)
    return SmallFiles(count, first_s, time.perf_counter() - start, report.unchanged)
