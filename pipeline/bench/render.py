"""The human-readable report of ``mmrag bench``: plain aligned tables, one section per part."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmrag.pipeline.bench.contended import BusySearch
    from mmrag.pipeline.bench.ingest import IngestFigures
    from mmrag.pipeline.bench.results import Results, Target
    from mmrag.pipeline.bench.stages import ModalityRun
    from mmrag.pipeline.bench.tier import TierResult
    from mmrag.pipeline.bench.workers import WorkersFigures

STAGE_COLUMNS = ("parse", "ocr", "transcription", "labels", "embedding", "writing")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(headers), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def _num(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def _modality_row(run: ModalityRun) -> list[str]:
    stages = dict(run.stages)
    total = run.seconds or 1.0
    if run.rtf is not None:
        amount, speed = f"{run.units:,.0f} s media", f"rtf {run.rtf:.3f}"
    else:
        amount, speed = f"{run.units:,.0f} {run.unit}", f"{run.per_s:,.2f}/s"
    slowest = f"{run.slowest[0][0]} {run.slowest[0][1]:.1f}s" if run.slowest else ""
    return [
        run.modality,
        str(run.files),
        amount,
        str(run.chunks),
        f"{run.seconds:.1f}",
        speed,
        "n/a" if run.baseline_per_s is None else f"{run.baseline_per_s:,.2f}/s",
        _num(run.speedup, 2, "x"),
        *(f"{100 * stages.get(name, 0.0) / total:.0f}%" for name in STAGE_COLUMNS),
        slowest,
    ]


def _ingest(fig: IngestFigures) -> list[str]:
    lines = [f"Ingest per modality  (corpus {fig.corpus}; models warmed up first: {fig.warmup_s:.1f} s)", ""]
    headers = [
        "modality",
        "files",
        "amount",
        "chunks",
        "mmrag s",
        "mmrag",
        "baseline",
        "speedup",
        *STAGE_COLUMNS,
        "slowest file",
    ]
    lines += table(headers, [_modality_row(r) for r in fig.runs])
    mmrag_s, baseline_s = fig.text_corpus()
    speedup = baseline_s / mmrag_s if baseline_s and mmrag_s else None
    lines.append("")
    lines.append(
        f"text corpus (pdf, docs, slides, tables): mmrag {mmrag_s:.1f} s, baseline {_num(baseline_s, 1, ' s')}, "
        f"speedup {_num(speedup, 2, 'x')}"
    )
    same = fig.text_corpus_same_work()
    if baseline_s:
        lines.append(
            f"  of which OCR of slide pictures (the baseline reads none): {same['ocr_s']:.1f} s; "
            f"speedup on the same work {_num(same['speedup_same_work'], 2, 'x')}; "
            f"embedding the same texts: {_num(same['embedding_s'], 1, ' s')} vs "
            f"{_num(same['baseline_embedding_s'], 1, ' s')} ({_num(same['embedding_speedup'], 2, 'x')})"
        )
    parsers = sorted({r.baseline_parser for r in fig.runs if r.baseline_parser})
    if parsers:
        lines.append("baseline parsers: " + "; ".join(parsers))
    hour, basis = fig.hour_of_video_min()
    lines.append(f"one hour of video: {_num(hour, 1, ' min')} (from {basis})")
    if fig.long_video is not None:
        lv = fig.long_video
        lines.append(f"long video: {lv.media_s:.0f} s looped from {lv.source}, ingested in {lv.seconds:.1f} s")
    if fig.reingest is not None:
        re = fig.reingest
        lines += [
            "",
            f"re-ingest, corpus unchanged: {re.unchanged_s:.2f} s",
            f"re-ingest, one file changed ({re.changed_file or 'none'}; {re.changed_ingested} ingested): "
            f"{re.one_changed_s:.2f} s",
        ]
    return lines


def _workers(w: WorkersFigures, ingest: IngestFigures | None) -> list[str]:
    one, many = w.one, w.many
    lines = [
        f"Parallel ingest (--workers), the whole corpus ({one.files} files, fresh indexes, each worker loading "
        "its own models): "
        f"1 worker {one.seconds:.1f} s, {many.workers} workers {many.seconds:.1f} s: "
        f"speedup {_num(w.speedup, 2, 'x')}"
        + ("" if one.chunks == many.chunks else f" (chunks {one.chunks} vs {many.chunks}!)")
    ]
    text = w.text_many
    if text is not None:
        mmrag_s, baseline_s = ingest.text_corpus() if ingest is not None else (None, None)
        line = f"  text corpus with {text.workers} workers: {text.seconds:.1f} s"
        if baseline_s:
            same = ingest.text_corpus_same_work() if ingest is not None else {}
            line += (
                f", speedup over the baseline {_num(baseline_s / text.seconds, 2, 'x')} "
                f"(1 worker: {_num(baseline_s / mmrag_s if mmrag_s else None, 2, 'x')}, "
                f"same work {_num(same.get('speedup_same_work'), 2, 'x')})"
            )
        lines.append(line)
    broker = w.broker
    if broker is None:
        lines.append(f"  distributed (--broker): {w.broker_skipped}")
    else:
        lines.append(
            f"  distributed (--broker, one ingest-worker of {broker.workers} processes through a local Redis): "
            f"{broker.seconds:.1f} s, speedup over 1 worker {_num(w.broker_speedup, 2, 'x')}"
            + ("" if broker.chunks == one.chunks else f" (chunks {broker.chunks} vs {one.chunks}!)")
        )
    return lines


def _tier_row(t: TierResult, servers: bool) -> list[str]:
    ratio = t.search.p50 / t.baseline.p50 if t.baseline.p50 else None
    server = [f"{t.server_peak_rss_mb:,.0f}" if t.store == "server" else "-"] if servers else []
    return [
        f"{t.size:,}",
        t.store,
        f"{t.search.p50:.1f}",
        f"{t.search.p95:.1f}",
        f"{t.search.p99:.1f}",
        f"{t.search_embed.p50:.1f}",
        f"{t.answer.p50:.1f}",
        f"{t.answer.p95:.1f}",
        f"{t.baseline.p50:.1f}",
        f"{t.baseline.p95:.1f}",
        _num(ratio, 1, "x"),
        f"{t.vector_only.p50:.1f}",
        f"{t.keyword_only.p50:.1f}",
        f"{t.build_s:.0f}{' (cached)' if t.cached else ''}",
        f"{t.disk_mb:,.0f}",
        f"{t.index_rss_mb:,.0f}",
        f"{t.peak_rss_mb:,.0f}",
        *server,
    ]


def _search(tiers: Sequence[TierResult]) -> list[str]:
    first = tiers[0]
    lines = [
        f"Query latency, warm, ms  ({first.queries} queries x {first.search.n // max(1, first.queries)} rounds; "
        "baseline = plain Chroma collection.query, k=10)",
        "",
    ]
    servers = any(t.store == "server" for t in tiers)
    headers = [
        "chunks",
        "store",
        "p50",
        "p95",
        "p99",
        "+embed p50",
        "+answer p50",
        "+answer p95",
        "chroma p50",
        "chroma p95",
    ]
    headers += ["ratio p50", "vector p50", "keyword p50", "build s", "disk MB", "index RSS MB", "peak RSS MB"]
    headers += ["server RSS MB"] if servers else []
    lines += table(headers, [_tier_row(t, servers) for t in tiers])
    for t in tiers:
        per_gb = t.size / (t.memory_mb() / 1000) if t.memory_mb() else None
        where = f"search process {t.peak_rss_mb:,.0f} MB"
        where += (
            f" + chroma run {t.server_peak_rss_mb:,.0f} MB (its folder {t.server_disk_mb:,.0f} MB)"
            if t.store == "server"
            else ""
        )
        lines.append(
            f"sizing, {t.size:,} chunks, {t.store} store: peak RSS {where}; {_num(per_gb, 0)} chunks per GB of RAM"
        )
    slow = [t for t in tiers if t.add_file_keywords_ms_per_chunk > 10 * max(t.add_file_vectors_ms_per_chunk, 0.1)]
    for t in tiers:
        lines.append(
            f"adding a file to the {t.size:,}-chunk index ({t.store}): vectors {t.add_file_vectors_ms_per_chunk:.1f} ms/chunk, "
            f"keywords {t.add_file_keywords_ms_per_chunk:.1f} ms/chunk"
        )
    if slow:
        lines.append("  (keyword writes grow with the index: each upsert deletes by an unindexed column)")
    from mmrag.pipeline.bench.synthetic import VISIBLE_SHARES

    for t in tiers:
        shares = ", ".join(
            f"{share}% visible p50 {getattr(t, f'visible_{share}').p50:.1f} / p95 {getattr(t, f'visible_{share}').p95:.1f}"
            for share in VISIBLE_SHARES
        )
        lines.append(
            f"with document permissions on the {t.size:,}-chunk index ({t.store}), ms: {shares} (unfiltered p50 {t.search.p50:.1f})"
        )
    return lines


def _busy(b: BusySearch) -> list[str]:
    rows = [
        ["idle", f"{b.idle.p50:.1f}", f"{b.idle.p95:.1f}"],
        [f"during an ingest (nice {b.nice})", f"{b.niced.p50:.1f}", f"{b.niced.p95:.1f}"],
        ["during an ingest (normal priority)", f"{b.normal.p50:.1f}", f"{b.normal.p95:.1f}"],
    ]
    title = (
        f"Search while an ingest runs in another process, ms ({b.queries} queries x {b.idle.n // max(1, b.queries)})"
    )
    return [title, "", *table(["search", "p50", "p95"], rows)]


def render(r: Results, goals: Sequence[Target]) -> list[str]:
    m = r.machine
    lines = [
        f"mmrag bench: {m.get('cores')} cores, {m.get('cpu')}, {m.get('memory_gb')} GB; "
        f"load average {m.get('load_avg_1m_at_start')} at start, {r.load_at_end} at end",
        "Figures from a shared or busy machine are noisy: compare the ratios to the baselines, not the absolutes.",
        "",
    ]
    if r.ingest is not None:
        lines += [*_ingest(r.ingest), ""]
    if r.workers is not None:
        lines += [*_workers(r.workers, r.ingest), ""]
    if r.small is not None:
        lines += [
            f"{r.small.files:,} small files: first ingest {r.small.first_s:.1f} s, "
            f"re-ingest unchanged {r.small.unchanged_s:.2f} s",
            "",
        ]
    if r.sync is not None:
        y = r.sync
        ratio = f" ({y.sync_s / y.walk_s:.1f}x a bare walk and stat, {y.walk_s:.2f} s)" if y.walk_s else ""
        lines += [
            f"sync of {y.items:,} unchanged files: {y.sync_s:.2f} s{ratio}; {y.unchanged:,} reported unchanged",
            "",
        ]
    if r.sync_s3 is not None:
        y = r.sync_s3
        ratio = f" ({y.sync_s / y.walk_s:.1f}x a bare paged listing, {y.walk_s:.2f} s)" if y.walk_s else ""
        lines += [
            f"sync of {y.items:,} unchanged S3 objects (moto server): {y.sync_s:.2f} s{ratio}; "
            f"{y.unchanged:,} reported unchanged",
            "",
        ]
    if r.tiers:
        lines += [*_search(r.tiers), ""]
    if r.busy is not None:
        lines += [*_busy(r.busy), ""]
    if r.cold is not None:
        ask = "not measured (needs the configured text model)" if r.cold.ask_s is None else f"{r.cold.ask_s:.2f} s"
        lines += [f"cold start: `mmrag ask` to first answer {ask}; `mmrag --help` {r.cold.help_s:.2f} s", ""]
        if r.cold.api is not None:
            a = r.cold.api
            lines += [
                f"Python API: search {a.api_ms:.1f} ms per call over {a.calls} calls (index kept open); "
                f"on an index the caller holds open {a.warm_ms:.1f} ms; opening it per call {a.reopen_ms:.1f} ms",
                "",
            ]
    rows = [[g.name, g.goal, _num(g.measured, 2), {True: "yes", False: "NO", None: "-"}[g.met]] for g in goals]
    lines += ["Targets", "", *table(["figure", "target", "measured", "met"], rows), ""]
    lines.append(f"bench took {r.seconds / 60:.1f} min")
    return lines
