"""Walk the folders a user points at: every regular file, once, with its path relative to the root.

What cannot be read as a file is reported, not opened: a named pipe, a socket or a device would block
or never end, and a symbolic link that leads out of every ingest root would index files the user did
not point at (``/etc/passwd``). Such entries come out as ``Found`` with a ``problem``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.detect import is_hidden_or_system

FOLLOW_SETTING = "[ingest] follow_links_outside = true"


@dataclass(frozen=True, slots=True)
class Found:
    path: Path
    source: str  # relative to the root, with forward slashes
    problem: str = ""  # why this entry is not read (not a regular file, a link out of the roots)


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


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """Which symbolic links are followed: those whose target stays inside one of ``roots``, or all."""

    roots: tuple[Path, ...] = ()
    follow_outside: bool = False

    def refuses(self, link: Path) -> str:
        """Why ``link`` is not followed ("" when it is, or is no link)."""
        if self.follow_outside or not link.is_symlink():
            return ""
        real = Path(os.path.realpath(link))
        if any(real.is_relative_to(root) for root in self.roots):
            return ""
        what = "folder" if real.is_dir() else "file"
        return f"a link to a {what} outside the ingest folders ({real}); not followed (set {FOLLOW_SETTING})"


def policy_for(targets: Sequence[Target], follow_outside: bool) -> LinkPolicy:
    return LinkPolicy(tuple(t.root for t in targets), follow_outside)


def not_regular(mode: int) -> str:
    """Why a file of this mode is not read ("" for a regular file)."""
    if stat.S_ISREG(mode):
        return ""
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"))
    what = next((name for test, name in kinds if test(mode)), "a device" if stat.S_ISBLK(mode) else "special")
    return f"not a regular file ({what}); only regular files are indexed"


def walk(target: Target, links: LinkPolicy | None = None) -> Iterator[Found]:
    """Yield files in a stable order, skipping hidden and system files and never looping on symlinks.

    Links out of the roots of ``links`` (by default: this target's root) and entries that are not
    regular files are yielded with their ``problem`` instead of being followed or opened.
    """
    links = links or LinkPolicy((target.root,))
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
        kept = []
        for name in sorted(d for d in dirs if not is_hidden_or_system(d)):
            path = Path(folder) / name
            refused = links.refuses(path)
            if refused:
                yield Found(path, path.relative_to(target.root).as_posix(), refused)
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if is_hidden_or_system(name):
                continue
            path = Path(folder) / name
            yield Found(path, path.relative_to(target.root).as_posix(), _problem(path, links))


def _problem(path: Path, links: LinkPolicy) -> str:
    refused = links.refuses(path)
    if refused:
        return refused
    try:
        return not_regular(path.stat().st_mode)
    except OSError:
        return ""  # a broken link or a vanished file: reading it reports why
