"""Map the failures a person can fix to one clear line; anything else is a bug and keeps its traceback."""

from __future__ import annotations

from mmrag.ingest.errors import MmragError


def user_message(error: BaseException) -> str | None:
    """The line to show for a failure a person can fix (an ``MmragError`` or an OS file error), else None."""
    if isinstance(error, MmragError):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return f"{error.filename or error}: no such file or folder" if error.filename else str(error)
    if isinstance(error, PermissionError):
        return f"permission denied: {error.filename or error}"
    return None
