"""The Python API: the same operations as the command line, returning typed results.

    from mmrag.pipeline.api import ask, ingest, search
    from mmrag.pipeline.config import load_config
    cfg = load_config(index_dir=Path("my-index"))
    report = ingest([Path("~/drive")], cfg)
    hits = search("carbon intensity 2022", cfg, k=5)

The index of a configuration is opened on the first call and kept open for the next ones, so the
models load once and every later ``search`` costs what a warm search costs. Calls from several
threads take turns. ``close()`` releases what is open (do it after another process re-ingested the
index, so the next call sees its work); ``Session`` is the same for one configuration, explicitly.

``search_index`` and ``ask_index`` are the same operations on an ``App`` a caller opened itself
(``app.open_app``): the CLI, the web server, MCP and the benchmark use them.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from types import TracebackType

from mmrag.ingest.permissions import visible
from mmrag.pipeline.answer.llm import TokenSink
from mmrag.pipeline.answer.stage import answer_from_hits
from mmrag.pipeline.answer.tables import table_evidence
from mmrag.pipeline.answer.types import Answer
from mmrag.pipeline.app import App, open_app
from mmrag.pipeline.config import Config
from mmrag.pipeline.filters import Filters, resolve_filter
from mmrag.pipeline.ingest_run import Ingestable, IngestReport, ProgressSink, run_ingest
from mmrag.pipeline.permissions import asker, scoped
from mmrag.pipeline.watch import sync_state
from mmrag.retrieval.embed import TextEmbedder
from mmrag.retrieval.manifest import OK, SKIPPED
from mmrag.retrieval.query import analyse
from mmrag.retrieval.store import Hit

__all__ = [
    "ANSWER_HITS",
    "Filters",
    "Session",
    "answer_hits",
    "ask",
    "ask_index",
    "close",
    "index_status",
    "ingest",
    "search",
    "search_index",
]

ANSWER_HITS = 8


def search_index(
    app: App,
    query: str,
    k: int = 10,
    filters: Filters | None = None,
    keyword: bool = True,
    lists: frozenset[str] | None = None,
    computed: bool = True,
) -> list[Hit]:
    """Ranked hits for ``query`` in an open index (``lists`` limits the candidate lists, for comparisons).

    ``computed``: a table question's computed rows lead (``computed_row``); the answer stage computes its own.

    With document permissions on, only what ``filters.principals`` (by default this process's user) may read.
    """
    flt = resolve_filter(scoped(app.cfg, filters), app.manifest)
    hits = app.searcher(lists).search(query, k, flt, keyword=keyword)
    if computed and lists is None:
        row = computed_row(app, query, hits, flt.principals)
        if row is not None:
            hits = [row, *hits][:k]
    return hits


def is_computed(hit: Hit) -> bool:
    """Whether a hit is rows a table computation found (not a stored chunk)."""
    return "sql" in dict(hit.signals)


COMPUTED_MAX_ROWS = 3  # a computed answer that points at a few rows (a maximum, a lookup) leads the hits


def computed_row(app: App, query: str, hits: Sequence[Hit], principals: frozenset[str] | None) -> Hit | None:
    """The rows that answer a table question, computed over the hits' tables: "which state had the most X" asks
    for the row with the maximum, which no text match ranks first. Only a confident plan's single value over
    at most ``COMPUTED_MAX_ROWS`` rows counts (no model is asked); ``None`` otherwise."""
    finding = table_evidence(query, hits, app.tables.readable_by(principals), None, app.vectorizer.texts)
    if finding is None or finding.empty or not finding.value:
        return None
    kinds = analyse(query).kinds  # "in the survey slides": the rows of a workbook are not what is asked for
    if kinds and not any(finding.hit.chunk.source.lower().endswith(f".{kind}") for kind in kinds):
        return None
    rows = finding.hit.chunk.locator.to_json().get("rows")
    if not isinstance(rows, list) or len(rows) != 2 or int(rows[1]) - int(rows[0]) >= COMPUTED_MAX_ROWS:
        return None
    return finding.hit


def answer_hits(
    app: App,
    question: str,
    hits: Sequence[Hit],
    stream: TokenSink | None = None,
    principals: frozenset[str] | None = None,
    extractive: bool = False,
) -> Answer:
    """The answer to ``question`` from hits already retrieved (``mmrag eval`` searches once for both scores);
    ``extractive`` leaves a configured LLM out. With document permissions on, ``principals`` defaults to
    this process's user's, like the search's."""
    if principals is None and app.cfg.permissions.enabled:
        principals = asker(app.cfg)
    return answer_from_hits(
        question,
        hits,
        tables=app.tables,
        vectorizer=app.vectorizer,
        llm=None if extractive else app.models.llm(),
        strict=app.cfg.models.llm_strict_citations,
        stream=stream,
        principals=principals,
        sql_max_tokens=app.cfg.models.llm_sql_max_tokens,
    )


def ask_index(
    app: App, question: str, filters: Filters | None = None, stream: TokenSink | None = None
) -> tuple[Answer, list[Hit]]:
    """Answer from an open index: generative with a configured LLM, extractive (quoted, cited) otherwise.

    Returns the answer and the evidence it was drawn from: the search hits, preceded by what the answer
    cites beyond them (the rows a table computation used); with ``stream``, the answer's text is passed to it.
    """
    filters = scoped(app.cfg, filters)
    hits = search_index(app, question, ANSWER_HITS, filters, computed=False)  # the answer computes its own
    answer = answer_hits(app, question, hits, stream, filters.principals)
    shown = {(h.root, h.chunk.id) for h in hits}
    computed = [c.hit for c in answer.citations if (c.hit.root, c.hit.chunk.id) not in shown]
    return answer, [*computed, *hits]


def index_status(app: App, principals: frozenset[str] | None = None) -> dict[str, object]:
    """What an open index holds: chunks, files by status, ingested roots and the embedding layout.

    ``principals``: with document permissions on, the counts are of the files they may read only.
    """
    if principals is None:
        chunks, files = app.store.count(), app.manifest.counts()
    else:
        files = {OK: 0, SKIPPED: 0, "chunks": 0}
        for record in app.manifest.files():
            if record.principals is not None and visible(record.principals, principals):
                files[record.status] = files.get(record.status, 0) + 1
                files["chunks"] += record.chunks
        chunks = files["chunks"]
    return {
        "index": str(app.path),
        "layout": app.store.layout.describe(),
        "chunks": chunks,
        "roots": app.manifest.roots(),
        "files": files,
        "permissions": _permissions_status(app),
        **({"sync": synced} if (synced := sync_state(app)) is not None else {}),
    }


def _permissions_status(app: App) -> str:
    if not app.cfg.permissions.enabled:
        return "off (single-user mode: whoever opens the index sees all of it)"
    unknown = sum(1 for f in app.manifest.files() if f.principals is None)
    note = f"; {unknown} files have no readers recorded and are hidden until the next ingest" if unknown else ""
    rules = f"; rules in {app.cfg.permissions.rules_file} come first" if app.cfg.permissions.rules_file else ""
    return f"on (each file's readers from its POSIX modes and ACLs at ingest{rules}){note}"


class Session:
    """One configuration's index, opened on first use and kept open until ``close`` (or ``with`` ends).

    ``embedder`` replaces the configured text model (it must be the one the index was built with).
    """

    def __init__(self, cfg: Config, *, embedder: TextEmbedder | None = None) -> None:
        self.cfg = cfg
        self.embedder = embedder
        self._app: App | None = None
        self._lock = threading.RLock()

    def _open(self, *, create: bool = False, reindex: bool = False) -> App:
        if reindex and self._app is not None:
            self._app.close()
            self._app = None
        if self._app is None:
            self._app = open_app(self.cfg, create=create or reindex, embedder=self.embedder, reindex=reindex)
        return self._app

    def ingest(
        self, paths: Sequence[Ingestable], *, progress: ProgressSink | None = None, reindex: bool = False
    ) -> IngestReport:
        """Index files, folders and sources (by name or object; folders and sources are synced: files
        gone from them leave the index)."""
        with self._lock:
            return run_ingest(paths, self._open(create=True, reindex=reindex), progress)

    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        with self._lock:
            return search_index(self._open(), query, k, filters)

    def ask(self, question: str, filters: Filters | None = None, stream: TokenSink | None = None) -> Answer:
        with self._lock:
            return ask_index(self._open(), question, filters, stream)[0]

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                app, self._app = self._app, None
                app.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


_sessions: dict[tuple[Config, int], Session] = {}
_sessions_lock = threading.Lock()


def _session(cfg: Config, embedder: TextEmbedder | None) -> Session:
    key = (cfg, id(embedder))  # the session holds the embedder, so its id is not reused while cached
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = Session(cfg, embedder=embedder)
        return session


def ingest(
    paths: Sequence[Ingestable],
    cfg: Config,
    *,
    progress: ProgressSink | None = None,
    reindex: bool = False,
    embedder: TextEmbedder | None = None,
) -> IngestReport:
    """Index files, folders and configured sources (by name) into ``cfg.index_dir`` (re-runs are
    incremental; ``reindex`` rebuilds)."""
    return _session(cfg, embedder).ingest(paths, progress=progress, reindex=reindex)


def search(
    query: str, cfg: Config, k: int = 10, filters: Filters | None = None, *, embedder: TextEmbedder | None = None
) -> list[Hit]:
    """The ``k`` best hits for ``query`` (hybrid, joint over every modality)."""
    return _session(cfg, embedder).search(query, k, filters)


def ask(question: str, cfg: Config, filters: Filters | None = None, *, embedder: TextEmbedder | None = None) -> Answer:
    """A cited answer to ``question``, or a decline when nothing indexed answers it."""
    return _session(cfg, embedder).ask(question, filters)


def close(cfg: Config | None = None) -> None:
    """Release the open index of ``cfg`` (or of every configuration); the next call opens it again."""
    with _sessions_lock:
        chosen = [key for key in _sessions if cfg is None or key[0] == cfg]
        sessions = [_sessions.pop(key) for key in chosen]
    for session in sessions:
        session.close()


atexit.register(close)
