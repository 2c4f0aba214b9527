"""``mmrag mcp``: the index as an MCP server with two tools, ``search`` and ``ask``, for agent clients.

Each tool returns readable text (what a model reads) and structured content with an output schema (what a
program reads): the same hit and citation JSON as ``mmrag search --json`` and ``mmrag ask --json``, plus
each piece of evidence's root, absolute path and a one-line citation. The index is opened on the first
call and kept open on one worker thread (``pipeline.worker.IndexWorker``, shared with ``mmrag serve``), so the
models load once. Failures a person can fix (no index yet, an index built with other models, a missing
model) come back as tool errors whose text says what to run; the server keeps running.

The MCP SDK is imported only here; ``mcp.cli`` keeps ``mmrag --help`` from loading it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

from mmrag.ingest.chunk import Chunk, Modality
from mmrag.pipeline.answer.types import Answer, Citation, link_for
from mmrag.pipeline.api import ask_index, search_index
from mmrag.pipeline.app import App
from mmrag.pipeline.config import Config, ConfigError
from mmrag.pipeline.errors import user_message
from mmrag.pipeline.filters import Filters, parse_filters
from mmrag.pipeline.sources import is_remote, remote_link
from mmrag.pipeline.worker import IndexWorker
from mmrag.retrieval.embed import TextEmbedder
from mmrag.retrieval.store import Hit

MAX_K = 50
SNIPPET_CHARS = 300
T = TypeVar("T")

INSTRUCTIONS = (
    "Searches and answers questions over a local drive of documents, slides, spreadsheets, images, audio and "
    "video indexed by mmrag. Every result cites where it came from: the page, slide, sheet rows or the seconds "
    "of a recording. Use `search` to find evidence, `ask` for a cited answer."
)
SEARCH_DOC = (
    "Ranked evidence from the indexed files for a query (hybrid: meaning and exact words). Each hit gives the "
    "file (path relative to its ingested folder, and absolute), where in it (page, slide, sheet rows, or a "
    "time span like 00:12-00:31 of a recording), its modality, score and text. Restrict with the filters. "
    "Runs locally; nothing leaves the machine."
)
ASK_DOC = (
    "A cited answer to a question from the indexed files. The answer text carries numbered markers [n]; "
    "`citations` maps each n to its file and place (page, slide, rows or seconds) and the quoted evidence. "
    "When nothing indexed answers the question it says so (`declined`) rather than guessing. "
)
ASK_EXTRACTIVE = (
    "No LLM is configured, so the answer is extractive: the best-matching sentences, rows or transcript "
    "lines quoted verbatim, computed offline."
)
ASK_GENERATIVE = (
    "The configured LLM ({model}) writes the answer from the retrieved evidence; the question and evidence are "
    "sent to it. Sentences whose figures or names are not in their cited evidence are listed in `flagged`."
)

ModalityArg = Annotated[
    list[Modality] | None,
    Field(description="only these kinds of evidence (moment = a stretch of video with its speech and frame)"),
]
TypeArg = Annotated[list[str] | None, Field(description="only these file types, e.g. pdf, docx, xlsx, mp4")]
FolderArg = Annotated[list[str] | None, Field(description="only files under these folders (relative), e.g. reports")]
GlobArg = Annotated[list[str] | None, Field(description="only files whose relative path matches, e.g. '*.pdf'")]
AfterArg = Annotated[date | None, Field(description="only files modified on or after this date (YYYY-MM-DD)")]
BeforeArg = Annotated[date | None, Field(description="only files modified on or before this date (YYYY-MM-DD)")]


class Evidence(TypedDict):
    """Where a hit or citation came from, as every result item carries it."""

    source: str
    root: str
    path: str
    modality: str
    locator: dict[str, Any]
    cite: str
    citation: str


class SearchHit(Evidence):
    score: float
    text: str
    title: str
    link: str


class SearchResult(TypedDict):
    query: str
    hits: list[SearchHit]


class AnswerCitation(Evidence):
    n: int
    link: str
    quote: str
    thumbnail: str


class AskResult(TypedDict):
    question: str
    answer: str
    declined: bool
    extractive: bool
    flagged: list[str]
    removed_citations: list[int]
    notes: list[str]
    citations: list[AnswerCitation]


def citation_line(chunk: Chunk) -> str:
    """``reports/q3.pdf, p. 3`` or ``media/clip.mp4, 00:12-00:31``: the file and the place, as the CLI prints."""
    return f"{chunk.source}, {chunk.locator.cite()}"


def _place(hit: Hit) -> dict[str, Any]:
    chunk = hit.chunk
    if is_remote(hit.root):  # an item of a share or bucket: where it is there
        path = remote_link(hit.root, chunk.source)
    else:
        path = str(Path(hit.root) / chunk.source if hit.root else Path(chunk.source))
    return {"root": hit.root, "path": path, "citation": citation_line(chunk)}


def hit_json(hit: Hit) -> SearchHit:
    """``Hit.to_json`` (the CLI's and the HTTP API's hit) with its root, absolute path, citation and link."""
    return cast(SearchHit, {**hit.to_json(), **_place(hit), "link": link_for(hit)})


def citation_json(citation: Citation) -> AnswerCitation:
    """``Citation.to_json`` (as ``mmrag ask --json`` gives it) with its root, absolute path and citation."""
    return cast(AnswerCitation, {**citation.to_json(), **_place(citation.hit)})


def answer_json(question: str, answer: Answer) -> AskResult:
    citations = [citation_json(c) for c in answer.citations]
    return cast(AskResult, {"question": question, **answer.to_json(), "citations": citations})


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def search_text(query: str, hits: list[Hit]) -> str:
    if not hits:
        return f"No hits for {query!r} (with these filters)."
    lines = [f"{len(hits)} hits for {query!r}:"]
    for rank, hit in enumerate(hits, start=1):
        lines.append(f"{rank}. {citation_line(hit.chunk)} · {hit.chunk.modality.value} · score {hit.score:.3f}")
        lines.append(f"   {_snippet(hit.chunk.text)}")
        lines.append(f"   {link_for(hit)}")
    return "\n".join(lines)


def answer_text(answer: Answer) -> str:
    lines = [answer.text]
    lines += [f"Warning: not supported by its cited evidence: {s}" for s in answer.flagged]
    if answer.citations:
        lines += ["", "Sources:"]
        for c in answer.citations:
            lines.append(f"[{c.n}] {citation_line(c.hit.chunk)} {c.link}")
            if c.thumbnail:
                lines.append(f"    image: {c.thumbnail}")
    return "\n".join(lines)


def tool_filters(
    modality: list[Modality] | None,
    type: list[str] | None,
    folder: list[str] | None,
    glob: list[str] | None,
    after: date | None,
    before: date | None,
) -> Filters:
    """The same ``Filters`` the CLI builds from its flags (``parse_filters``)."""
    return parse_filters(modalities=modality, kinds=type, folders=folder, globs=glob, after=after, before=before)


def _version() -> str:
    try:
        return metadata.version("mmrag")
    except metadata.PackageNotFoundError:
        return ""


def build_server(cfg: Config, *, embedder: TextEmbedder | None = None) -> MCPServer:
    """The MCP server over the index at ``cfg.index_dir`` (opened on the first tool call).

    ``embedder`` replaces the configured text model (tests pass the one the index was built with).
    """
    worker = IndexWorker(cfg, embedder)

    @asynccontextmanager
    async def close_index_at_exit(_server: MCPServer) -> AsyncIterator[None]:
        try:
            yield
        finally:
            worker.reopen()  # closes the index (checkpointing its SQLite files); a later session reopens it

    server: MCPServer = MCPServer(
        "mmrag",
        version=_version(),
        instructions=INSTRUCTIONS + f" Index: {cfg.index_dir}.",
        lifespan=close_index_at_exit,
    )

    def call(fn: Callable[[App], T]) -> T:
        try:
            return worker.call(fn)
        except Exception as e:
            message = f"configuration error: {e}" if isinstance(e, ConfigError) else user_message(e)
            if message is None:
                raise  # a bug: the SDK logs its traceback to stderr and reports a generic tool error
            raise ToolError(message) from e

    def search(
        query: Annotated[str, Field(min_length=1, description="what to look for, in words")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="number of hits")] = 10,
        modality: ModalityArg = None,
        type: TypeArg = None,
        folder: FolderArg = None,
        glob: GlobArg = None,
        after: AfterArg = None,
        before: BeforeArg = None,
    ) -> Annotated[CallToolResult, SearchResult]:
        filters = tool_filters(modality, type, folder, glob, after, before)
        hits = call(lambda index: search_index(index, query, k, filters))
        structured: SearchResult = {"query": query, "hits": [hit_json(h) for h in hits]}
        return CallToolResult(
            content=[TextContent(type="text", text=search_text(query, hits))], structured_content=structured
        )

    def ask(
        question: Annotated[str, Field(min_length=1, description="the question, in words")],
        modality: ModalityArg = None,
        type: TypeArg = None,
        folder: FolderArg = None,
        glob: GlobArg = None,
        after: AfterArg = None,
        before: BeforeArg = None,
    ) -> Annotated[CallToolResult, AskResult]:
        filters = tool_filters(modality, type, folder, glob, after, before)
        answer, _hits = call(lambda index: ask_index(index, question, filters))
        return CallToolResult(
            content=[TextContent(type="text", text=answer_text(answer))],
            structured_content=answer_json(question, answer),
        )

    llm = cfg.models.llm_base_url
    ask_doc = ASK_DOC + (
        ASK_GENERATIVE.format(model=cfg.models.llm_model or "its default model") if llm else ASK_EXTRACTIVE
    )
    local = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    server.add_tool(search, title="Search the indexed files", description=SEARCH_DOC, annotations=local)
    server.add_tool(
        ask,
        title="Ask the indexed files",
        description=ask_doc,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=bool(llm)),
    )
    return server
