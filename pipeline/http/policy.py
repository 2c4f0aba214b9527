"""What the server lets through: the security headers of each kind of response, and the folders that
``POST /api/ingest`` may index.

Originals from the drive are not trusted content: an HTML, SVG or XML file served inline on the page's
origin could run script that reads the API. Only types a browser shows without running anything in the
document (PDF, raster images, audio, video, plain text) are served inline; everything else is an
attachment, and every original is sandboxed by its Content-Security-Policy and never MIME-sniffed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from mmrag.pipeline.http.files import Refused

# The page: its own scripts, styles, API and media only; images and players may show blobs the page fetched.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# JSON answers and rendered previews: nothing in them may load or run anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
# An original shown inline (a PDF in the browser's viewer, a picture, a player): no script, no framing.
INLINE_FILE_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"
# Any other original: an opaque-origin sandbox where nothing loads, should a browser show it after all.
SANDBOX_FILE_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE_HEADERS = {**COMMON_HEADERS, "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}
API_HEADERS = {**COMMON_HEADERS, "Content-Security-Policy": API_CSP}
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
INLINE_OTHER = frozenset({"application/pdf", "text/plain"})


def shown_inline(content_type: str) -> bool:
    """Whether an original of this type may open in the browser (SVG is an image that runs script: no)."""
    return (
        content_type in INLINE_IMAGES
        or content_type in INLINE_OTHER
        or content_type.startswith(("audio/", "video/"))
    )


def file_headers(path: Path, content_type: str) -> dict[str, str]:
    """The headers of an original file: inline under a CSP for viewable types, else a sandboxed attachment."""
    if shown_inline(content_type):
        csp = SANDBOX_FILE_CSP if content_type == "text/plain" else INLINE_FILE_CSP
        return {**COMMON_HEADERS, "Content-Security-Policy": csp, "Content-Disposition": "inline"}
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in path.name)
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(path.name, safe='')}"
    return {**COMMON_HEADERS, "Content-Security-Policy": SANDBOX_FILE_CSP, "Content-Disposition": disposition}


def ingest_allowed(paths: Sequence[Path], roots: Sequence[Path], configured: bool) -> None:
    """Refuse (403) a path outside every allowed root; ``configured``: the roots come from [server] ingest_roots.

    Paths and roots are compared after resolving symlinks, so a link cannot lead an ingest elsewhere.
    """
    real_roots = [r.resolve() for r in roots]
    for path in paths:
        real = path.resolve()
        if any(real.is_relative_to(root) for root in real_roots):
            continue
        where = ", ".join(str(r) for r in roots) if roots else "none yet"
        source = "[server] ingest_roots" if configured else "the folders already in the index"
        raise Refused(
            403,
            f"{path} is outside the folders this server may ingest ({source}: {where}). Ingest it on the "
            f"server's machine with `mmrag ingest {path}`, or add a folder holding it to [server] ingest_roots "
            "in the config and restart `mmrag serve`",
        )
