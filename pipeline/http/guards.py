"""ASGI guards in front of every route: the Host allowlist (DNS rebinding).

A plain ASGI middleware, outside FastAPI's routing, so that it answers before a route sees the request:
a foreign ``Host`` gets 421 before the token is even checked.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


def normal_host(name: str) -> str:
    """A host name or address as compared: lower case, no brackets or trailing dot, IPv6 in short form."""
    bare = name.strip().lower().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return bare


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]`` or ``[v6]:port``), normalised."""
    header = header.strip()
    if header.startswith("["):
        return normal_host(header[1:].split("]", 1)[0])
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return normal_host(header)


def allowed_hosts(local: Iterable[str], bind: str, public: Iterable[str]) -> frozenset[str]:
    """The names a request may carry: this machine's, the bind address (unless a wildcard) and public names."""
    names = {*local, *public}
    if bind not in WILDCARD_BINDS:
        names.add(bind)
    return frozenset(normal_host(n) for n in names)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class HostAllowlist:
    """Answers 421 Misdirected Request to a request whose ``Host`` is not one of ``allowed``.

    A page on another site that rebinds its own name to 127.0.0.1 reaches this server with that name in
    ``Host``; refusing it keeps such a page from driving the API, token or not.
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"host") or ""
        if host_of(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        shown = host_of(header) or "(none)"
        await _reply(
            send,
            421,
            f"this server does not answer to the host name {shown!r} (it answers to "
            f"{', '.join(sorted(self.allowed))}); to reach it by that name, start it with --public-host {shown} "
            "or add the name to [server] public_hosts in the config",
        )
