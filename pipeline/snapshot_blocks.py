"""A snapshot's files as content-addressed blocks, so a publish sends, and a replica fetches, only what
changed since the snapshot before it.

SQLite's backup API copies a database page by page into the same page numbers, so two snapshots of an
index that changed a little are the same file in most places. Each file is cut into ``BLOCK`` pieces
named by their SHA-256 (``blocks/<sha>`` in the shared location); a snapshot's ``snapshot.json`` lists
each file's blocks in order. A publish uploads the blocks the current snapshot does not already
reference; a replica assembles a file from the blocks of the snapshot it holds (each one checked against
its hash: the copy it serves from may have been touched since) and downloads only the others. Blocks no
kept snapshot references are deleted when old snapshots are pruned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mmrag.pipeline.shared import SharedLocation

BLOCK = 1 << 18  # 256 KiB: a few blocks per small change; about 8,000 per million chunks
BLOCKS = "blocks/"


def _pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while piece := f.read(BLOCK):
            yield piece


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(
    location: SharedLocation, folder: Path, names: Iterable[str], have: set[str]
) -> tuple[dict[str, list[str]], int]:
    """Store the blocks of ``folder/name`` for each name that ``have`` (blocks already stored) lacks;
    returns each file's blocks in order, and the bytes sent."""
    files: dict[str, list[str]] = {}
    sent = 0
    stored = set(have)
    for name in names:
        order = files[name] = []
        for piece in _pieces(folder / name):
            sha = _sha(piece)
            order.append(sha)
            if sha not in stored:
                location.write(BLOCKS + sha, piece)
                stored.add(sha)
                sent += len(piece)
    return files, sent


def referenced(info: dict[str, object]) -> set[str]:
    """The blocks a snapshot's ``snapshot.json`` lists (none for a snapshot of whole files)."""
    blocks = info.get("blocks")
    if not isinstance(blocks, dict):
        return set()
    return {sha for order in blocks.values() for sha in order}


@dataclass(frozen=True, slots=True)
class _Held:
    path: Path
    offset: int


def held_blocks(snapshots: Iterable[Path], info_name: str) -> dict[str, _Held]:
    """Blocks found in snapshot folders a replica already holds, by hash (as their ``snapshot.json`` lists
    them; read back and checked before use)."""
    found: dict[str, _Held] = {}
    for folder in snapshots:
        try:
            info = json.loads((folder / info_name).read_text())
        except (OSError, ValueError):
            continue
        blocks = info.get("blocks")
        size = int(info.get("block_size") or 0)
        if not isinstance(blocks, dict) or size != BLOCK:
            continue
        for name, order in blocks.items():
            for n, sha in enumerate(order):
                found.setdefault(sha, _Held(folder / name, n * BLOCK))
    return found


def assemble(location: SharedLocation, prefix: str, order: list[str], out: Path, held: dict[str, _Held]) -> int | None:
    """Write the file made of ``order``'s blocks to ``out``: each from a held copy when its bytes still
    have that hash, else from ``location``. Returns the bytes downloaded, or None when a block is gone
    (its snapshot was pruned meanwhile) or does not match its hash."""
    fetched = 0
    with out.open("wb") as dst:
        for sha in order:
            piece = _read_held(held.get(sha))
            if piece is None or _sha(piece) != sha:
                piece = location.read(prefix + sha)
                if piece is None or _sha(piece) != sha:
                    return None
                fetched += len(piece)
            dst.write(piece)
    return fetched


def _read_held(held: _Held | None) -> bytes | None:
    if held is None:
        return None
    try:
        with held.path.open("rb") as f:
            f.seek(held.offset)
            return f.read(BLOCK)
    except OSError:
        return None
