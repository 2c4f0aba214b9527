"""Shared fixtures: where the shared corpus is, a network guard, and small index configs."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmrag.pipeline.config import Config, load_config

pytest_plugins = ["servers"]  # real servers the tests start on 127.0.0.1 (a Chroma server)

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
SAMPLE_DRIVE = REPO / "data" / "sample-drive"

_guard = {"on": False, "attempts": []}
NETWORK_EVENTS = (
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.sendto",
)


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _guard["on"] or event not in NETWORK_EVENTS:
        return
    if event == "socket.connect":
        sock = args[0]
        if isinstance(sock, socket.socket) and sock.family == socket.AF_UNIX:
            return
    _guard["attempts"].append(f"{event} {args[1:]!r}"[:300])  # type: ignore[union-attr]
    raise ConnectionRefusedError(f"mmrag test network guard blocked {event} {args[1:]!r}")


sys.addaudithook(_audit)


_loopback = {"on": False, "attempts": []}
_LOCAL = ("127.0.0.1", "::1", "localhost")


def _loopback_audit(event: str, args: tuple[Any, ...]) -> None:
    if not _loopback["on"]:
        return
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if sock.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in _LOCAL):
            return
    elif event == "socket.getaddrinfo":
        if args[0] in _LOCAL or args[0] in (b"127.0.0.1", b"localhost"):
            return
    elif event in ("socket.gethostbyname", "socket.gethostbyaddr"):
        if args[0] in _LOCAL:  # http.server resolves its own address
            return
    elif event != "socket.sendto":
        return
    _loopback["attempts"].append(f"{event} {args[1:]!r}"[:200])  # type: ignore[attr-defined]
    raise ConnectionRefusedError(f"test guard: only 127.0.0.1 may be contacted ({event} {args[1:]!r})")


sys.addaudithook(_loopback_audit)


@pytest.fixture
def loopback_only() -> Iterator[None]:
    _loopback["attempts"] = []
    _loopback["on"] = True
    try:
        yield
    finally:
        _loopback["on"] = False
    assert _loopback["attempts"] == [], f"non-loopback network access: {_loopback['attempts']}"


@pytest.fixture
def no_network() -> Iterator[list[str]]:
    """Blocks and records every network attempt made in this process (any thread) during the test."""
    _guard["attempts"] = []
    _guard["on"] = True
    try:
        yield _guard["attempts"]  # type: ignore[misc]
    finally:
        _guard["on"] = False
    assert _guard["attempts"] == [], f"network access attempted: {_guard['attempts']}"


@pytest.fixture
def corpus() -> Path:
    if not (CORPUS / "drive").is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """A config with its own index folder and no user config file."""
    return load_config(index_dir=tmp_path / "index", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})


@pytest.fixture(autouse=True)
def _close_api_sessions() -> Iterator[None]:
    """The Python API keeps each configuration's index open; every test starts and ends with none open."""
    yield
    from mmrag.pipeline import api

    api.close()
