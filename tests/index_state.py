"""What an index holds, for tests that compare two indexes (a killed run finished by the next, against a
clean run into a fresh index; two workers against one): the vector ids, the keyword ids per file and the
manifest rows, each row the fields asked for."""

from __future__ import annotations

from collections.abc import Sequence

from fakes import CountingEmbedder

from mmrag.pipeline.config import Config

State = tuple[set[str], dict[tuple[str, str], set[str]], list[tuple[object, ...]]]
FIELDS = ("root", "source", "sha256", "kind", "status", "chunks")


def index_state(cfg: Config, fields: Sequence[str] = FIELDS) -> State:
    from mmrag.pipeline.app import open_app

    app = open_app(cfg, create=False, embedder=CountingEmbedder(64))
    try:
        rows = sorted(tuple(getattr(r, f) for f in fields) for r in app.manifest.files())
        return app.store.ids(), app.keyword.record_ids(), rows
    finally:
        app.close()
