"""The shared location an ingest node publishes to and API replicas read from (``[store] shared``).

A folder every machine mounts (NFS, SMB, a cluster file system) or an S3 bucket prefix
(``s3://bucket/prefix``, with ``shared_endpoint`` for an S3-compatible server and boto3's credential
chain). Both are used through the same few operations on names relative to the location, written
with ``/``. A name is written whole or not at all: a folder writes a temporary file and renames it,
S3 stores an object in one request, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from mmrag.ingest.errors import MmragError
from mmrag.pipeline.config import Config, SourceConfig


class SharedUnavailable(MmragError):
    """The shared location cannot be read or written; the message names it and what failed."""


class SharedLocation(Protocol):
    where: str  # shown in messages: the folder or s3:// URL

    def read(self, name: str) -> bytes | None:
        """The bytes stored under ``name``, or None when there is none."""
        ...

    def write(self, name: str, data: bytes) -> None: ...

    def put(self, local: Path, name: str) -> None:
        """Store a local file under ``name``."""
        ...

    def get(self, name: str, local: Path) -> bool:
        """Copy ``name`` to a local file; False when there is none."""
        ...

    def names(self, prefix: str) -> list[str]:
        """Every stored name starting with ``prefix``."""
        ...

    def delete(self, names: list[str]) -> None: ...

    def close(self) -> None:
        """Let go of what the location holds (an S3 client; nothing for a folder)."""
        ...


class FolderLocation:
    """A folder (a mount shared by every machine)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.where = str(folder)

    def _path(self, name: str) -> Path:
        return self.folder / name

    def read(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SharedUnavailable(f"cannot read {self._path(name)} ({e.strerror or e}): check [store] shared") from e

    def _atomic(self, name: str, fill: Any) -> None:
        target = self._path(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out:
                    fill(out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise SharedUnavailable(f"cannot write {target} ({e.strerror or e}): check [store] shared") from e

    def write(self, name: str, data: bytes) -> None:
        self._atomic(name, lambda out: out.write(data))

    def put(self, local: Path, name: str) -> None:
        def copy(out: Any) -> None:
            with local.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        self._atomic(name, copy)

    def get(self, name: str, local: Path) -> bool:
        try:
            shutil.copyfile(self._path(name), local)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise SharedUnavailable(f"cannot copy {self._path(name)} ({e.strerror or e}): check [store] shared") from e
        return True

    def names(self, prefix: str) -> list[str]:
        start = self._path(prefix) if prefix.endswith("/") else self._path(prefix).parent
        if not start.is_dir():
            return []
        found = []
        for folder, _dirs, files in os.walk(start):
            for file in files:
                name = (Path(folder) / file).relative_to(self.folder).as_posix()
                if name.startswith(prefix) and not file.startswith(".part-"):
                    found.append(name)
        return sorted(found)

    def delete(self, names: list[str]) -> None:
        for name in names:
            self._path(name).unlink(missing_ok=True)
        for name in {n.rsplit("/", 1)[0] for n in names if "/" in n}:
            with contextlib.suppress(OSError):
                self._path(name).rmdir()  # an emptied snapshot folder

    def close(self) -> None:
        pass


class S3Location:
    """A bucket prefix, through the S3 source's client (timeouts, retries, error words)."""

    def __init__(self, url: str, endpoint: str, region: str) -> None:
        from mmrag.pipeline.sources.s3 import S3Source

        self._source = S3Source(SourceConfig("shared", "s3", url, endpoint=endpoint, region=region))
        self.bucket, self.prefix = self._source.bucket, self._source.prefix
        self.where = url

    def _call(self, doing: str, fn: Any) -> Any:
        client = self._source.client()
        try:
            return fn(client)
        except self._source.failures() as e:
            raise SharedUnavailable(str(self._source.error(e, doing)).replace("source 'shared'", self.where)) from e

    def read(self, name: str) -> bytes | None:
        def get(client: Any) -> bytes | None:
            try:
                body = client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
            except client.exceptions.NoSuchKey:
                return None
            with body:
                data: bytes = body.read()
            return data

        result: bytes | None = self._call(f"cannot read {name}", get)
        return result

    def write(self, name: str, data: bytes) -> None:
        self._call(
            f"cannot write {name}", lambda c: c.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)
        )

    def put(self, local: Path, name: str) -> None:
        self._call(f"cannot upload {name}", lambda c: c.upload_file(str(local), self.bucket, self.prefix + name))

    def get(self, name: str, local: Path) -> bool:
        def download(client: Any) -> bool:
            try:
                client.download_file(self.bucket, self.prefix + name, str(local))
            except Exception as e:
                if "404" in str(e) or "NoSuchKey" in str(e) or "Not Found" in str(e):
                    return False
                raise
            return True

        found: bool = self._call(f"cannot download {name}", download)
        return found

    def names(self, prefix: str) -> list[str]:
        def listing(client: Any) -> list[str]:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            return sorted(e["Key"][len(self.prefix) :] for page in pages for e in page.get("Contents", ()))

        found: list[str] = self._call(f"cannot list {prefix}", listing)
        return found

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            keys = [{"Key": self.prefix + n} for n in names[start : start + 1000]]
            self._call(
                "cannot delete old snapshots",
                lambda c, k=keys: c.delete_objects(Bucket=self.bucket, Delete={"Objects": k}),
            )

    def close(self) -> None:
        self._source.close()


def open_shared(cfg: Config) -> SharedLocation | None:
    """The configured shared location, or None on a single machine (``[store] shared`` empty)."""
    shared = cfg.store.shared
    if not shared:
        return None
    if shared.startswith("s3://"):
        return S3Location(shared, cfg.store.shared_endpoint, cfg.store.shared_region)
    if "://" in shared:
        raise SharedUnavailable(f"[store] shared = {shared!r}: give a folder path or s3://bucket/prefix")
    return FolderLocation(Path(shared).expanduser())
