"""What the server lets through: the folders that ``POST /api/ingest`` may index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmrag.pipeline.http.files import Refused


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
