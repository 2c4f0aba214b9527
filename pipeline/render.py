"""Human-readable output for the CLI (rich on stderr for progress, stdout for results)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from mmrag.pipeline.answer.types import Answer
    from mmrag.pipeline.ingest_run import IngestReport
    from mmrag.pipeline.models import Resolution
    from mmrag.retrieval.store import Hit

out = Console(soft_wrap=True)
err = Console(stderr=True)


def notice(text: str) -> None:
    err.print(f"[yellow]note:[/yellow] {escape(text)}", soft_wrap=True)


class IngestProgress:
    """A progress bar of files, with the running chunk count; silent when stderr is not a terminal."""

    def __init__(self, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[chunks]} chunks · {task.fields[current]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not enabled or not sys.stderr.isatty(),
        )
        self._task = self._progress.add_task("ingest", total=None, chunks=0, current="")
        self._chunks = 0

    def __enter__(self) -> IngestProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()

    def files_found(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def file_done(self, source: str, outcome: str, chunks: int) -> None:
        self._chunks += chunks
        shown = source if len(source) <= 40 else "…" + source[-39:]
        self._progress.update(self._task, advance=1, chunks=self._chunks, current=shown)


def ingest_report(report: IngestReport, index: Path) -> None:
    out.print(
        f"[bold]ingested[/bold] {len(report.ingested)} · [bold]unchanged[/bold] {report.unchanged} · "
        f"[bold]removed[/bold] {len(report.removed)} · [bold]skipped[/bold] {len(report.skipped)} · "
        f"[bold]unsupported[/bold] {len(report.unsupported)} · [bold]moved[/bold] {len(report.moved)} · "
        f"[bold]failed[/bold] {len(report.failed)} · {report.chunks} chunks written "
        f"in {report.seconds:.1f} s → {escape(str(index))}"
    )
    if len(report.by_source) > 1 or any(not name.startswith("/") for name in report.by_source):
        for name, counts in report.by_source.items():
            shown = " · ".join(f"{k} {v}" for k, v in counts.items() if v or k == "listed")
            out.print(f"  [bold]{escape(name)}[/bold]: {shown}")
    if not report.ingested and report.unchanged:
        out.print("nothing changed since the last run: no file was re-embedded")
    for item in report.skipped:
        out.print(f"  [red]skipped[/red] {escape(item.file)}: {escape(item.reason)}")
    for item in report.notes:
        out.print(f"  [yellow]note[/yellow] {escape(item.file)}: {escape(item.reason)}")
    for item in report.unsupported:
        out.print(f"  [dim]unsupported {escape(item.file)}: {escape(item.reason)}[/dim]")
    for source in report.removed:
        out.print(f"  [yellow]removed[/yellow] {escape(source)} (no longer on disk)")
    for item in report.failed:
        out.print(f"  [red]failed[/red] {escape(item.file)}: {escape(item.reason)} (kept as it was; tried again next run)")
    for move in report.moved:
        out.print(f"  [cyan]moved[/cyan] {escape(move)} (renamed; nothing re-embedded)")
    for source in report.permissions_changed:
        out.print(f"  [cyan]readers changed[/cyan] {escape(source)} (permissions updated; nothing re-embedded)")


def _snippet(text: str, width: int = 220) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def hits(query: str, found: Sequence[Hit]) -> None:
    if not found:
        out.print(f"no hits for {query!r}")
        return
    for rank, hit in enumerate(found, start=1):
        chunk = hit.chunk
        out.print(
            f"[bold]{rank:>2}.[/bold] [cyan]{escape(chunk.source)}[/cyan] · {escape(chunk.locator.cite())} · "
            f"{chunk.modality.value} · score {hit.score:.3f}"
        )
        out.print(f"    {escape(_snippet(chunk.text))}", highlight=False)


class AnswerStream:
    """Prints an answer's text as it arrives (the question first)."""

    def __init__(self, question: str) -> None:
        self._started = False
        self._question = question

    def __call__(self, text: str) -> None:
        if not self._started:
            out.print(f"[bold]Q:[/bold] {escape(self._question)}")
            self._started = True
        out.file.write(text)
        out.file.flush()


def answer(question: str, result: Answer, streamed: bool = False) -> None:
    if streamed:
        out.print()
    else:
        out.print(f"[bold]Q:[/bold] {escape(question)}")
        out.print(escape(result.text), highlight=False)
    for sentence in result.flagged:
        out.print(f"[yellow]warning:[/yellow] not supported by its cited evidence: {escape(sentence)}")
    for note in result.notes:
        out.print(f"[yellow]note:[/yellow] {escape(note)}")
    if result.citations:
        out.print()
        for c in result.citations:
            chunk = c.hit.chunk
            line = f"  [{c.n}] [cyan]{escape(chunk.source)}[/cyan], {escape(chunk.locator.cite())}  [dim]{escape(c.link)}[/dim]"
            out.print(line)
            if c.thumbnail:
                out.print(f"       [dim]image: {escape(c.thumbnail)}[/dim]")


def models(found: Sequence[Resolution], allow_downloads: bool) -> None:
    mode = "downloads allowed" if allow_downloads else "offline: nothing is downloaded"
    out.print(f"[bold]mmrag models[/bold] ({mode})")
    for r in found:
        status = "[green]ready  [/green]" if r.available else "[red]MISSING[/red]"
        out.print(f"{r.role.value:<19} {status} {escape(r.model)}")
        if r.available:
            where = f"{r.found_by}: {r.location}" if r.location else r.found_by
            out.print(f"{'':<27} [dim]{escape(where)}[/dim]", soft_wrap=True)
        if r.remedy:
            out.print(f"{'':<27} [yellow]{escape(r.remedy)}[/yellow]", soft_wrap=True)


def status(data: dict[str, Any]) -> None:
    for key, value in data.items():
        out.print(f"[bold]{key}[/bold]: {escape(str(value))}")


def evaluation(data: dict[str, Any]) -> None:
    columns = ("questions", "hit@1", "hit@5", "mrr@10", "answer_contains", "declined")
    beside = "extractive" in data["overall"]  # an LLM answered; the extractive figures follow
    extra = ("extractive contains", "extractive declined") if beside else ()
    out.print(f"{'kind':<10}" + "".join(f"{c:>16}" for c in columns) + "".join(f"{c:>21}" for c in extra))
    rows = [("overall", data["overall"]), *data["by_kind"].items()]
    for name, tally in rows:
        cells = "".join(f"{tally.get(c, ''):>16}" for c in columns)
        if beside:
            ext = tally.get("extractive", {})
            cells += "".join(f"{ext.get(c, ''):>21}" for c in ("answer_contains", "declined"))
        out.print(f"{name:<10}{cells}", highlight=False)
    missed = [q for q in data["questions"] if q.get("rank") is None and q.get("kind") != "none"]
    if missed:
        out.print("not found in the top hits: " + ", ".join(str(q["id"]) for q in missed))
