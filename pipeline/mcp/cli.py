"""``mmrag mcp`` on the command line: an MCP server over stdio, without importing the MCP SDK.

``cli.py`` calls ``register`` while building its parser, so this module must stay light: the SDK (and
pydantic, starlette) are imported by ``run`` only when the command actually starts the server.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from mmrag.pipeline.config import Config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``mmrag mcp`` to the command's subparsers (returns it so the CLI can add its common flags)."""
    return subparsers.add_parser(
        "mcp",
        help="an MCP server on stdin/stdout with search and ask tools, for agent clients",
        description="Serve the index to an MCP client (Claude Desktop, an IDE agent, ...) over stdio. "
        "The client starts this command; stdout carries the protocol, logs go to stderr.",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    """``mmrag mcp``: serve until the client closes stdin; 0 after a clean stop."""
    from mmrag.pipeline.offline import apply_offline_env

    apply_offline_env(cfg.models.allow_downloads)
    # Anything printed while the SDK is imported would corrupt the protocol channel; the SDK diverts
    # fd 1 to stderr itself once it starts serving.
    with contextlib.redirect_stdout(sys.stderr):
        from mmrag.pipeline.mcp.server import build_server

        server = build_server(cfg)
    server.run("stdio")
    return 0
