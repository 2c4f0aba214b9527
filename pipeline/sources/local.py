"""A folder on this machine (or a mounted share) as a named source: ``kind = "local"``.

Lists through the same walk as ``mmrag ingest FOLDER`` (hidden files, links out of the folder and
special files left out), with ``mtime_ns:size`` as the version token.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from mmrag.pipeline.config import SourceConfig
from mmrag.pipeline.sources import Item, SourceError
from mmrag.pipeline.walk import Target, walk


class LocalSource:
    def __init__(self, config: SourceConfig) -> None:
        self.name = config.name
        self.folder = Path(config.url).expanduser().resolve()
        self.location = str(self.folder)

    def items(self) -> Iterator[Item]:
        if not self.folder.is_dir():
            raise SourceError(f"source {self.name!r}: {self.folder} is not a folder (is the share mounted?)")
        for found in walk(Target(self.folder, True)):
            if found.problem:
                continue
            try:
                st = found.path.stat()
            except OSError:
                continue  # gone since the listing: the next run sees it as deleted
            yield Item(found.source, st.st_size, f"{st.st_mtime_ns}:{st.st_size}", st.st_mtime)

    def fetch(self, item: Item, dest: Path) -> None:
        try:
            shutil.copyfile(self.folder / item.path, dest)
        except OSError as e:
            raise SourceError(f"source {self.name!r}: cannot read {item.path} ({e.strerror or e})") from e

    def close(self) -> None:
        pass
