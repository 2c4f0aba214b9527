"""``mmrag mcp``: an MCP client's round trip over stdio (initialize, list tools, search, ask), tool errors that
say what to run, a protocol channel that stray output cannot corrupt, and no network."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, TextContent

from mmrag.pipeline.api import ingest
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config, load_config
from mmrag.pipeline.ingest_run import run_ingest
from mmrag.pipeline.mcp.server import build_server
from mmrag.retrieval.embed import HashEmbedder

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample-drive"
EMBEDDER = HashEmbedder(128)  # the fast index is built with it, so an in-process server must search with it
FILTERS = {"modality", "type", "folder", "glob", "after", "before"}
NETWORK_GUARD = """
import socket, sys
def _guard(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
        if event == "socket.connect" and isinstance(args[0], socket.socket) and args[0].family == socket.AF_UNIX:
            return
        sys.stderr.write(f"NETWORK ATTEMPT {event} {args[1:]!r}\\n")
        raise ConnectionRefusedError("mmrag test network guard")
sys.addaudithook(_guard)
"""


def _server(home: Path, index: Path, prelude: str = "") -> StdioServerParameters:
    """``mmrag mcp --index INDEX`` as a client launches it, inside a guard that reports any network attempt."""
    code = f"{NETWORK_GUARD}\n{prelude}\nfrom mmrag.pipeline.cli import main\nsys.exit(main(['mcp', '--index', {str(index)!r}]))"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config")}
    env.pop("MMRAG_CONFIG", None)
    return StdioServerParameters(command=sys.executable, args=["-c", code], env=env, cwd=str(home))


Session = Callable[[Client, list[Exception]], Awaitable[None]]


def _run(params: StdioServerParameters, errlog: Path, session: Session) -> str:
    """Run ``session`` against the server over stdio; returns the server's stderr, which must be quiet on the wire."""
    stray: list[Exception] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, Exception):  # a line on stdout that is not a JSON-RPC message
            stray.append(message)

    async def main(log: TextIO) -> None:
        client = Client(stdio_client(params, errlog=log), mode="legacy", message_handler=on_message)
        async with client:
            await session(client, stray)

    with errlog.open("w") as log:
        asyncio.run(asyncio.wait_for(main(log), timeout=600))
    stderr = errlog.read_text()
    assert stray == [], f"stdout carried something other than MCP messages: {stray}\n{stderr}"
    assert "NETWORK ATTEMPT" not in stderr, stderr
    return stderr


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


# --- fast: no model weights ----------------------------------------------------------------------------


def test_the_cli_lists_mcp_without_importing_the_sdk() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from mmrag.pipeline.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "assert 'mcp ' in out.getvalue(), out.getvalue()\n"
        "sys.exit(1 if {'mcp', 'mcp_types', 'pydantic', 'starlette'} & set(sys.modules) else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_tools_are_listed_and_a_missing_index_is_an_actionable_tool_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-index-here"

    async def session(client: Client, stray: list[Exception]) -> None:
        assert client.server_info is not None and client.server_info.name == "mmrag"
        assert client.instructions is not None and str(missing) in client.instructions
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"search", "ask"}
        search, ask = tools["search"], tools["ask"]
        assert search.input_schema["required"] == ["query"] and ask.input_schema["required"] == ["question"]
        assert {"query", "k", *FILTERS} == set(search.input_schema["properties"])
        assert {"question", *FILTERS} == set(ask.input_schema["properties"])
        assert search.output_schema is not None and "hits" in search.output_schema["properties"]
        assert ask.output_schema is not None and "citations" in ask.output_schema["properties"]
        assert ask.description is not None and "extractive" in ask.description and "[n]" in ask.description
        assert search.annotations is not None and search.annotations.read_only_hint

        for name, args in (("search", {"query": "travel budget"}), ("ask", {"question": "What is the budget?"})):
            result = await client.call_tool(name, args)
            assert result.is_error, result
            assert f"no index at {missing}: run `mmrag ingest PATH --index {missing}` first" in _text(result)

        bad = await client.call_tool("search", {"query": "x", "modality": ["smell"], "k": 3})
        assert bad.is_error and "modality" in _text(bad)
        # the server is still up after the errors
        assert len((await client.list_tools()).tools) == 2

    _run(_server(tmp_path, missing), tmp_path / "stderr.txt", session)
    assert not missing.exists()  # searching never creates an index


def test_stray_output_of_libraries_goes_to_stderr_not_the_protocol_channel(tmp_path: Path) -> None:
    # Model loaders and native code print to stdout; here the index opener does, at the Python and the fd level.
    prelude = (
        "import os\n"
        "from mmrag.pipeline import worker as server_jobs\n"
        "from mmrag.retrieval.store import IndexMismatch\n"
        "def noisy_open(*args, **kwargs):\n"
        "    print('python-level chatter', flush=True)\n"
        "    os.write(1, b'fd-level chatter\\n')\n"
        "    raise IndexMismatch('opened noisily')\n"
        "server_jobs.open_app = noisy_open\n"
    )

    async def session(client: Client, stray: list[Exception]) -> None:
        result = await client.call_tool("search", {"query": "anything"})
        assert result.is_error and "opened noisily" in _text(result)

    stderr = _run(_server(tmp_path, tmp_path / "index", prelude), tmp_path / "stderr.txt", session)
    assert "python-level chatter" in stderr and "fd-level chatter" in stderr


def _drive(root: Path) -> None:
    (root / "finance").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "finance" / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    with (root / "finance" / "teams.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["team", "city", "cups"])
        for i in range(1, 11):
            writer.writerow([f"team{i}", f"city{i}", str(i)])
    shutil.copy(SAMPLE / "reports" / "multi_page.pdf", root / "reports" / "word-processors.pdf")


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    """A small index built with a hash embedder (no model weights), and the drive it was built from."""
    drive = tmp_path_factory.mktemp("drive")
    _drive(drive)
    home = tmp_path_factory.mktemp("home")
    cfg = load_config(index_dir=home / "index", env={"XDG_CONFIG_HOME": str(home / "config")})
    index = open_app(cfg, create=True, embedder=EMBEDDER)
    try:
        report = run_ingest([drive], index)
    finally:
        index.close()
    assert report.skipped == [] and len(report.ingested) == 3
    return cfg, drive.resolve()


def _in_process(cfg: Config, calls: Callable[[Client], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with Client(build_server(cfg, embedder=EMBEDDER)) as client:
            return await calls(client)

    return asyncio.run(main())


def test_search_returns_hits_with_citations_paths_and_links(hashed: tuple[Config, Path], no_network: list[str]) -> None:
    cfg, drive = hashed
    result = _in_process(cfg, lambda c: c.call_tool("search", {"query": "IBM electric typewriter", "k": 3}))
    assert not result.is_error, _text(result)
    hits = result.structured_content["hits"]
    assert 1 <= len(hits) <= 3
    top = hits[0]
    assert top["source"] == "reports/word-processors.pdf" and top["locator"] == {"page": 1}
    assert top["cite"] == "p. 1" and top["citation"] == "reports/word-processors.pdf, p. 1"
    assert top["modality"] == "text" and isinstance(top["score"], float) and "typewriter" in top["text"]
    assert top["root"] == str(drive) and Path(top["path"]) == drive / "reports" / "word-processors.pdf"
    assert top["link"].endswith("#page=1")
    assert "1. reports/word-processors.pdf, p. 1" in _text(result)


def test_search_filters_by_folder_type_and_modality(hashed: tuple[Config, Path], no_network: list[str]) -> None:
    async def calls(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("search", {"query": "budget teams typewriter", "folder": ["finance"]}),
            await client.call_tool("search", {"query": "budget teams typewriter", "type": [".CSV"]}),
            await client.call_tool("search", {"query": "budget teams typewriter", "modality": ["table"]}),
            await client.call_tool("search", {"query": "budget", "before": "2000-01-01"}),
        ]

    folder, kind, modality, old = _in_process(hashed[0], calls)
    assert {h["source"] for h in folder.structured_content["hits"]} <= {"finance/budget.txt", "finance/teams.csv"}
    assert {h["source"] for h in kind.structured_content["hits"]} == {"finance/teams.csv"}
    assert {h["modality"] for h in modality.structured_content["hits"]} == {"table"}
    assert old.structured_content["hits"] == [] and "No hits" in _text(old)


def test_ask_answers_with_numbered_citations_that_map_to_evidence(
    hashed: tuple[Config, Path], no_network: list[str]
) -> None:
    question = "What is the travel budget for 2025?"
    result = _in_process(hashed[0], lambda c: c.call_tool("ask", {"question": question}))
    assert not result.is_error, _text(result)
    data = result.structured_content
    assert data["question"] == question and data["declined"] is False and data["extractive"] is True
    assert "48,000" in data["answer"]
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", data["answer"])}
    assert markers and markers == {c["n"] for c in data["citations"]}
    cited = data["citations"][0]
    assert cited["source"] == "finance/budget.txt" and cited["citation"].startswith("finance/budget.txt, ")
    assert "48,000" in cited["quote"] and Path(cited["path"]).is_file()
    assert "Sources:\n[1] finance/budget.txt" in _text(result)


def test_an_index_built_with_other_models_says_how_to_fix_it(hashed: tuple[Config, Path], tmp_path: Path) -> None:
    # Over stdio the server uses the configured text model, not the hash embedder the index was built with.
    async def session(client: Client, stray: list[Exception]) -> None:
        result = await client.call_tool("search", {"query": "budget"})
        assert result.is_error and "--reindex" in _text(result), _text(result)

    _run(_server(tmp_path, hashed[0].index_dir), tmp_path / "stderr.txt", session)


# --- slow: real models over stdio ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sample-home")
    cfg = load_config(index_dir=home / "index", env={"XDG_CONFIG_HOME": str(home / "config")})
    report = ingest([SAMPLE], cfg)
    assert report.skipped == [] and "media/jfk_clip.mp4" in report.ingested
    return cfg.index_dir


@pytest.mark.slow
def test_round_trip_over_stdio_with_real_models(sample_index: Path, tmp_path: Path) -> None:
    async def session(client: Client, stray: list[Exception]) -> None:
        assert {t.name for t in (await client.list_tools()).tools} == {"search", "ask"}

        speech = await client.call_tool("search", {"query": "ask not what your country can do for you", "k": 5})
        assert not speech.is_error, _text(speech)
        clip = [h for h in speech.structured_content["hits"] if h["source"] == "media/jfk_clip.mp4"]
        assert clip and clip[0] is speech.structured_content["hits"][0]
        assert clip[0]["modality"] in ("moment", "speech") and clip[0]["locator"]["start"] == 0.0
        assert clip[0]["locator"]["end"] > 5 and clip[0]["citation"] == "media/jfk_clip.mp4, 00:00-00:10"
        assert "1. media/jfk_clip.mp4, 00:00-00:10" in _text(speech)

        rows = await client.call_tool("search", {"query": "Maple Leafs Stanley Cups", "type": ["xlsx"], "k": 3})
        hits = rows.structured_content["hits"]
        assert hits and {h["source"] for h in hits} == {"data/stanley-cups.xlsx"}
        assert any("rows" in h["locator"] and "Maple Leafs" in h["text"] for h in hits)

        answer = await client.call_tool("ask", {"question": "What did Kennedy ask his fellow Americans?"})
        data = answer.structured_content
        assert not answer.is_error and data["declined"] is False
        assert "what you can do for your country" in data["answer"]
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", data["answer"])}
        assert markers and markers == {c["n"] for c in data["citations"]}
        first = data["citations"][0]
        assert first["source"] == "media/jfk_clip.mp4" and first["link"].endswith("#t=0")
        assert first["citation"] == "media/jfk_clip.mp4, 00:00-00:10"

        table = await client.call_tool("ask", {"question": "Which team won the most Stanley Cups?"})
        assert "Maple Leafs" in table.structured_content["answer"]
        assert {c["source"] for c in table.structured_content["citations"]} == {"data/stanley-cups.xlsx"}

    _run(_server(tmp_path, sample_index), tmp_path / "stderr.txt", session)
