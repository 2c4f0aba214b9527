"""Signed media links: with an API token set, a preview or file URL in an API answer carries its own
short-lived signature, so that ``<img>``, ``<video>`` and ``<audio>`` can load it (and seek with
Range requests) without an ``Authorization`` header, which those elements cannot send.

A signature is an HMAC-SHA256, keyed by the API token, over the URL's path, its query (without
``sig``) and its expiry (``exp``, Unix seconds). It grants one GET of exactly that URL: another file,
page or root breaks it, and it stops working at ``exp``. Only the media endpoints accept one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

SIGNED_PATHS = frozenset({"/api/file", "/api/preview"})
LIFETIME_S = 3600

Signer = Callable[[str], str]


def _canonical(path: str, params: Sequence[tuple[str, str]]) -> bytes:
    return (path + "?" + urlencode(sorted((k, v) for k, v in params if k != "sig"))).encode()


def _signature(token: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    return hmac.new(token.encode(), _canonical(path, params), hashlib.sha256).hexdigest()


def signer(token: str, lifetime_s: float = LIFETIME_S, clock: Callable[[], float] = time.time) -> Signer:
    """A function that adds ``exp`` and ``sig`` to a media URL ("" and other URLs pass unchanged)."""

    def sign(url: str) -> str:
        parts = urlsplit(url)
        if parts.path not in SIGNED_PATHS:
            return url
        params = [*parse_qsl(parts.query, keep_blank_values=True), ("exp", str(int(clock() + lifetime_s)))]
        return parts.path + "?" + urlencode([*params, ("sig", _signature(token, parts.path, params))])

    return sign


def signed_ok(
    token: str, method: str, path: str, params: Sequence[tuple[str, str]], clock: Callable[[], float] = time.time
) -> bool:
    """Whether a request is a GET of a media URL with a valid, unexpired signature."""
    if method not in ("GET", "HEAD") or path not in SIGNED_PATHS:
        return False
    found: Mapping[str, str] = dict(params)
    given, expires = found.get("sig", ""), found.get("exp", "")
    if not given or not expires.isdigit() or int(expires) < clock():
        return False
    if sum(1 for k, _ in params if k in ("sig", "exp")) != 2:
        return False
    return hmac.compare_digest(given, _signature(token, path, params))
