"""ASGI guards in front of every route: the Host allowlist (DNS rebinding) and the request body limit.

Both are plain ASGI middlewares, outside FastAPI's routing, so that they answer before a route (or
FastAPI's body parsing) sees the request: a foreign ``Host`` gets 421 before the token is even checked,
and a body is counted as it arrives, chunked or not, and answered with 413 once it passes the limit,
without reading the rest.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmrag.ingest.errors import MmragError

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


class BodyTooLarge(MmragError):
    """A request body went past the server's limit while it was being read."""


class BodyLimit:
    """Answers 413 to a request whose body is over ``limit_for(path)`` bytes, counted as it is received.

    A declared ``Content-Length`` over the limit is refused before reading anything; a chunked body is
    read only up to the limit. Whatever the route would have answered after that is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        detail = f"the request body is over the {limit / (1024 * 1024):.3g} MB limit"
        declared = _header(scope, b"content-length") or ""
        if declared.strip().isdigit() and int(declared) > limit:
            await _reply(send, 413, detail)
            return
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            if over:
                raise BodyTooLarge(detail)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(detail)
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the route's answer to a body it could not read; the 413 below replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except BodyTooLarge:
            if started:
                raise
        if over and not started:
            await _reply(send, 413, detail)
