"""Walk the folders a user points at: every regular file, once, with its path relative to the root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.detect import is_hidden_or_system


@dataclass(frozen=True, slots=True)
class Found:
    path: Path
    source: str  # relative to the root, with forward slashes


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to ingest: a folder (complete: files missing from it leave the index) or a single file."""

    root: Path
    is_folder: bool
    only: Path | None = None


def target_for(path: Path) -> Target:
    resolved = path.expanduser().resolve()
    if resolved.is_dir():
        return Target(resolved, True)
    return Target(resolved.parent, False, resolved)


def walk(target: Target) -> Iterator[Found]:
    """Yield files in a stable order, skipping hidden and system files and never looping on symlinks."""
    if target.only is not None:
        yield Found(target.only, target.only.name)
        return
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(target.root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not is_hidden_or_system(d))
        for name in sorted(files):
            if is_hidden_or_system(name):
                continue
            path = Path(folder) / name
            rel = path.relative_to(target.root).as_posix()
            yield Found(path, rel)
