"""Where a drive's files come from: a local folder, an SMB share, a WebDAV server or an S3 bucket.

A source lists its items (a path, a size and a version token that changes whenever the content may
have: an ETag, or the modification time and size) and hands over an item's bytes. An ingest run
(``pipeline.ingest_run``) diffs the listing against the manifest, so unchanged items are skipped on
their token before a byte is read, a renamed item is matched by its content hash, and an item that
fails to download is retried by the next run (never recorded as gone).

A named source is configured in ``[sources.NAME]`` (``pipeline.config.SourceConfig``) and ingested
with ``mmrag ingest NAME``. Its chunks' sources are ``NAME:/path``, so two shares never collide, and
its index root is the source's location without credentials (``s3://bucket/prefix``,
``smb://host/share/folder``, ``https://dav.example.org/files``), from which citations link to the item.

Sources live in modules of this package and are imported only when one of their kind is opened (the
S3 one needs boto3, the SMB one smbprotocol).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from mmrag.ingest.errors import MmragError

if TYPE_CHECKING:
    from mmrag.pipeline.config import SourceConfig


class SourceError(MmragError):
    """A source that cannot be listed or read now (server down, credentials refused, item gone).

    The message names the source and the item, never a credential."""


@dataclass(frozen=True, slots=True)
class Item:
    """One file in a source."""

    path: str  # inside the source, forward slashes, no leading slash: "reports/q3.pdf"
    size: int
    version: str  # changes whenever the content may have changed: an ETag, or "mtime_ns:size"
    modified: float  # POSIX seconds
    principals: tuple[str, ...] | None = None  # who may read it, when the source says (SMB DACLs, S3 grants)
    content: bool = False  # the version is a digest of the bytes (an S3 ETag): same version and size, same file


class Source(Protocol):
    """What an ingest run needs from a source."""

    name: str  # the configured name: chunk sources are "NAME:/path"
    location: str  # the index root: where the source is, without credentials ("s3://bucket/prefix")

    def items(self) -> Iterator[Item]:
        """Every file in the source, in a stable order; ``SourceError`` when it cannot be listed.

        Hidden and system files (``ingest.detect.is_hidden_or_system``) are left out, as in a folder walk."""
        ...

    def fetch(self, item: Item, dest: Path) -> None:
        """Write the item's bytes to ``dest``; ``SourceError`` when it cannot be read now."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


KINDS = {
    "local": "mmrag.pipeline.sources.local:LocalSource",
    "s3": "mmrag.pipeline.sources.s3:S3Source",
    "webdav": "mmrag.pipeline.sources.webdav:WebDavSource",
    "smb": "mmrag.pipeline.sources.smb:SmbSource",
}


def open_source(config: SourceConfig) -> Source:
    """The source a ``[sources.NAME]`` section describes (its module imported now, not before)."""
    target = KINDS.get(config.kind)
    if target is None:
        known = ", ".join(sorted(KINDS))
        raise SourceError(f"source {config.name!r}: kind must be one of {known}, got {config.kind!r}")
    module, _, cls = target.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    source: Source = factory(config)
    return source


SEPARATOR = ":/"


def chunk_source(name: str, path: str) -> str:
    """How an item of a named source is named in the index: ``finance:/reports/q3.pdf``."""
    return f"{name}{SEPARATOR}{path.lstrip('/')}"


def item_path(source: str) -> str:
    """The item's path inside its source, from ``chunk_source``'s name (a plain path stays as it is)."""
    name, sep, path = source.partition(SEPARATOR)
    return path if sep and name and "/" not in name else source


def is_remote(root: str) -> bool:
    """Whether an index root is a remote source's location (a URL), not a folder on this machine."""
    return "://" in root


def remote_link(root: str, source: str) -> str:
    """A URL a person can open for an item of a remote source (the location, then the item's path)."""
    return f"{root.rstrip('/')}/{quote(item_path(source))}"
