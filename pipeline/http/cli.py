"""``mmrag serve`` on the command line: its flags and the token rule, without importing the web stack.

``cli.py`` calls ``register`` while building its parser, so this module must stay light: FastAPI and
uvicorn are imported by ``run`` only when the command actually starts the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from mmrag.ingest.errors import MmragError
from mmrag.pipeline.config import LOCAL_HOSTS, Config, ConfigError, server_host
from mmrag.pipeline.http.identity import MAKE_TOKEN, MIN_TOKEN_CHARS, MIN_TOKEN_DISTINCT

TOKEN_ENV = "MMRAG_API_TOKEN"
DEFAULT_PORT = 8765


class TokenRequired(MmragError):
    """The server would be reachable from other machines without an API token, or with a guessable one."""


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without an API token, and refuse any weak token."""
    if host not in LOCAL_HOSTS and not token:
        raise TokenRequired(
            f"refusing to listen on {host} without an API token: anyone who can reach it could read the indexed "
            f'files. Pass --token "$({MAKE_TOKEN})" or set ${TOKEN_ENV}, or bind to 127.0.0.1.'
        )
    if token is not None and (len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_TOKEN_DISTINCT):
        raise TokenRequired(
            f"refusing a weak API token ({len(token)} characters, {len(set(token))} different): it must be at least "
            f"{MIN_TOKEN_CHARS} characters with {MIN_TOKEN_DISTINCT} or more different ones, so that it cannot be "
            f'guessed. Make one with `{MAKE_TOKEN}` (--token "$({MAKE_TOKEN})" or ${TOKEN_ENV}).'
        )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``mmrag serve`` to the command's subparsers (returns it so the CLI can add its common flags)."""
    p = subparsers.add_parser("serve", help="the web page and HTTP API (search, ask, ingest, previews)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument(
        "--token",
        help=f"API token, {MIN_TOKEN_CHARS}+ characters; required for a non-local --host (default: ${TOKEN_ENV})",
    )
    p.add_argument(
        "--public-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name clients use to reach the server, besides localhost and --host (repeatable; "
        "also [server] public_hosts); requests naming any other host are refused",
    )
    p.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="PATH|SOURCE",
        help="keep this folder or configured source in step in the background, as mmrag watch does (repeatable)",
    )
    return p


def run(args: argparse.Namespace, cfg: Config) -> int:
    """``mmrag serve``: 0 after a clean stop, 1 when refusing to start, 2 for a bad --public-host."""
    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(args.host, token)
    except TokenRequired as e:
        sys.stderr.write(f"mmrag serve: {e}\n")
        return 1
    try:
        public = tuple(server_host(name, "--public-host") for name in getattr(args, "public_host", []))
    except ConfigError as e:
        sys.stderr.write(f"mmrag serve: {e}\n")
        return 2
    cfg = replace(cfg, server=replace(cfg.server, public_hosts=(*cfg.server.public_hosts, *public)))
    if args.host in ("0.0.0.0", "::") and not cfg.server.public_hosts:
        sys.stderr.write(
            "mmrag serve: answering only to localhost: give every name or address clients use with --public-host "
            "NAME (or [server] public_hosts); requests naming another host get 421\n"
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    sys.stdout.write(f"mmrag: serving {cfg.index_dir} on http://{shown}:{args.port}/ (Ctrl-C to stop)\n")
    sys.stdout.flush()
    serve(cfg, args.host, args.port, token, watch=getattr(args, "watch", []))
    return 0


def serve(
    cfg: Config,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    watch: list[str] | None = None,
) -> None:  # pragma: no cover - exercised through `mmrag serve`
    """Run the server until interrupted (the web stack is imported here, when it starts)."""
    import uvicorn

    from mmrag.pipeline.http.app import create_app

    check_bind(host, token)
    app = create_app(cfg, token=token, bind_host=host, watch=watch or ())
    uvicorn.run(app, host=host, port=port, log_level="warning")
