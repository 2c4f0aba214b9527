"""The one base class of mmrag's own errors.

Every failure a person can fix (a file that cannot be read, a setting that cannot be used, an index built
with other models, a model that is not on this machine, an LLM that is down) is an ``MmragError`` whose
message says what went wrong and what to do. Front-ends show ``str(error)`` as it is, with one
``isinstance`` check; any other exception is a bug and keeps its traceback. It lives in ``ingest``, the
lowest layer, so every layer can raise it.
"""

from __future__ import annotations

from pathlib import Path


class MmragError(Exception):
    """A failure a person can act on; ``str()`` is the message to show them."""


class IngestError(MmragError):
    """A file that cannot be ingested, with a reason a person can act on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
