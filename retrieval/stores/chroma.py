"""The Chroma adapter: the only module that imports chromadb.

It flattens typed locators into scalar metadata on the way in and rebuilds them on the way out. It
always passes embeddings explicitly: Chroma's default embedding function downloads a model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.ingest.chunk import Chunk
from mmrag.ingest.permissions import DENY, PUBLIC, visible
from mmrag.retrieval.records import NOBODY, PRINCIPALS, MetaValue, chunk_from_record, chunk_metadata, record_id
from mmrag.retrieval.store import EmbeddingLayout, FileInfo, Hit, IndexMismatch, SearchFilter, StoreUnreachable, Vectors

COLLECTION = "mmrag_chunks"
LAYOUT_KEY = "mmrag_layout"
WRITE_BATCH = 2000
ID_PAGE = 10_000
OVERFETCH = 4  # with principals: the nearest 4k unfiltered first, kept when enough of them are readable
# Candidates HNSW explores per query. Chroma's default (100) equals the vector pool, and then a query
# could miss a close chunk, differently from one process to the next; 400 makes the pool near exact.
EF_SEARCH = 400
REBUILT, RETIRED = "-rebuilt", "-retired"  # a rebuild copies into NAME-rebuilt, then swaps it with NAME

log = logging.getLogger(__name__)


def where_clause(flt: SearchFilter) -> dict[str, Any] | None:
    """Translate a filter into Chroma's ``where`` syntax (``None`` when it restricts nothing)."""
    terms: list[dict[str, Any]] = []
    if flt.modalities:
        terms.append({"modality": {"$in": sorted(m.value for m in flt.modalities)}})
    if flt.kinds:
        terms.append({"kind": {"$in": sorted(flt.kinds)}})
    if flt.sources is not None:
        terms.append({"source": {"$in": sorted(flt.sources) or ["\x00none"]}})
    if flt.modified_after is not None:
        terms.append({"modified": {"$gte": flt.modified_after.timestamp()}})
    if flt.modified_before is not None:
        terms.append({"modified": {"$lte": flt.modified_before.timestamp()}})
    if flt.principals is not None:
        # $contains on a string array; $in/$eq on an array field silently match nothing (Chroma 1.5)
        allowed = [{PRINCIPALS: {"$contains": p}} for p in sorted(flt.principals or {NOBODY})]
        plain: list[dict[str, Any]] = [allowed[0] if len(allowed) == 1 else {"$or": allowed}]
        # deny entries ("!group:eng") outrank what allows: none of the asker's may be denied
        users = sorted(p for p in flt.principals if p.startswith("user:"))
        plain += [
            {PRINCIPALS: {"$not_contains": DENY + p}} for p in sorted(flt.principals) if p != PUBLIC and p not in users
        ]
        if users:  # the asker's own entry decides first: denied, or allowed whatever their groups say
            terms += [{PRINCIPALS: {"$not_contains": DENY + u}} for u in users]
            own = [{PRINCIPALS: {"$contains": u}} for u in users]
            terms.append({"$or": [*own, plain[0] if len(plain) == 1 else {"$and": plain}]})
        else:
            terms += plain
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"$and": terms}


def _settings() -> Any:
    """One set of client settings for every client of a path (Chroma refuses two different ones)."""
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


def _collection_names(client: Any) -> set[str]:
    return {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}


class ChromaStore:
    """One persistent Chroma collection for every chunk of every modality."""

    def __init__(
        self,
        path: Path | None,
        layout: EmbeddingLayout,
        *,
        create: bool = True,
        media_dir: Path | None = None,
        client: Any = None,
        collection: str = COLLECTION,
    ) -> None:
        """``media_dir``: the index's folder of thumbnails and frames; image paths inside it are stored relative.

        ``client``: a Chroma client to use instead of an embedded one at ``path`` (a server's, see ``remote``);
        ``collection``: the collection's name (several indexes may share one server).
        """
        if client is None:
            import chromadb

            assert path is not None, "an embedded store needs its folder"
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=_settings())
        self._client = client
        self._name = collection
        self._collection = self._open(layout, create)
        self._layout = layout
        self._media = media_dir

    @staticmethod
    def drop(path: Path) -> None:
        """Delete every chunk stored under ``path``, whatever layout built them (``--reindex``).

        The folder is emptied through Chroma, not removed: Chroma keeps one system per path in a
        process, and a folder removed under it leaves that system writing to deleted files.
        """
        if not path.is_dir():
            return
        import chromadb

        client = chromadb.PersistentClient(path=str(path), settings=_settings())
        ChromaStore.drop_collection(client)

    @staticmethod
    def remote(url: str, *, headers: dict[str, str], tenant: str, database: str) -> Any:
        """A client of the Chroma server at ``url`` (``chroma run``); ``headers`` go with every request
        (Chroma has no authentication of its own: a proxy in front checks them)."""
        from urllib.parse import urlsplit

        import chromadb

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"[store] url must look like http://HOST:PORT, got {url!r}")
        try:
            return chromadb.HttpClient(
                host=parts.hostname,
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                headers=headers,
                tenant=tenant,
                database=database,
                settings=_settings(),
            )
        except Exception as e:  # the client checks the server at once: down, or a proxy refusing us
            text = str(e)
            if any(code in text for code in ("401", "403", "Unauthorized", "Forbidden")):
                raise StoreUnreachable(
                    f"the Chroma server at {url} refused the request (the proxy in front wants other "
                    "credentials): check [store] auth_header or MMRAG_STORE_AUTH"
                ) from e
            first = " ".join(text.split())[:200]
            raise StoreUnreachable(f"cannot use the Chroma server at {url}: {type(e).__name__}: {first}") from e

    @staticmethod
    def drop_collection(client: Any, collection: str = COLLECTION) -> None:
        """Delete a collection, whatever layout built it (``--reindex``), with what a rebuild left of it."""
        names = _collection_names(client)
        for name in (collection, f"{collection}{REBUILT}", f"{collection}{RETIRED}"):
            if name in names:
                client.delete_collection(name)

    def _open(self, layout: EmbeddingLayout, create: bool) -> Any:
        names = _collection_names(self._client)
        retired, fresh = f"{self._name}{RETIRED}", f"{self._name}{REBUILT}"
        if self._name not in names and retired in names:  # a rebuild died between its two renames
            log.warning("a rebuild of the vector index was interrupted; going on with the collection it copied from")
            self._client.get_collection(retired, embedding_function=None).modify(name=self._name)
            names = _collection_names(self._client)
        if fresh in names:  # a rebuild that never got as far as its swap
            self._client.delete_collection(fresh)
        if self._name in names:
            collection = self._client.get_collection(self._name, embedding_function=None)
            recorded = (collection.metadata or {}).get(LAYOUT_KEY)
            if recorded is None:
                raise IndexMismatch("the index has no recorded embedding layout; re-index into a new --index folder")
            built = EmbeddingLayout.from_json(str(recorded))
            if built != layout:
                raise IndexMismatch(
                    f"this index was built with {built.describe()}, but the configured models give "
                    f"{layout.describe()}. Re-index with `mmrag ingest PATH --reindex` (rebuilds this index), "
                    "or use another --index folder, or configure the models it was built with."
                )
            _search_wide(collection)
            return collection
        if not create:
            raise IndexMismatch("no index here yet: run `mmrag ingest PATH` first")
        return self._client.create_collection(
            self._name,
            embedding_function=None,
            metadata={LAYOUT_KEY: layout.to_json()},
            configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH}},
        )

    @property
    def layout(self) -> EmbeddingLayout:
        return self._layout

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors, info: FileInfo) -> None:
        self.upsert_files([(chunks, vectors, info)])

    def upsert_files(self, files: Sequence[tuple[Sequence[Chunk], Vectors, FileInfo]]) -> None:
        rows: list[tuple[str, str, dict[str, MetaValue]]] = []
        vectors: list[Vectors] = []
        for chunks, file_vectors, info in files:
            if len(chunks) != len(file_vectors):
                raise ValueError(f"{len(chunks)} chunks but {len(file_vectors)} vectors")
            rows += [(record_id(info.root, c), c.text, chunk_metadata(c, info, self._media)) for c in chunks]
            vectors.append(np.asarray(file_vectors, dtype=np.float32).reshape(len(chunks), -1))
        if not rows:
            return
        matrix = np.vstack(vectors)
        for start in range(0, len(rows), WRITE_BATCH):
            part = rows[start : start + WRITE_BATCH]
            self._collection.upsert(
                ids=[r[0] for r in part],
                embeddings=matrix[start : start + WRITE_BATCH],
                documents=[r[1] for r in part],
                metadatas=[r[2] for r in part],  # type: ignore[misc]
            )

    def delete_source(self, root: str, source: str) -> None:
        self._collection.delete(where={"$and": [{"root": root}, {"source": source}]})

    def set_principals(self, root: str, source: str, principals: Sequence[str]) -> None:
        ids = sorted(self.ids(root, source))
        readers = sorted(set(principals)) or [NOBODY]
        for start in range(0, len(ids), WRITE_BATCH):  # an update merges: only the principals change
            part = ids[start : start + WRITE_BATCH]
            self._collection.update(ids=part, metadatas=[{PRINCIPALS: readers} for _ in part])

    def chunks_of(self, root: str, source: str) -> tuple[list[Chunk], Vectors]:
        found = self._collection.get(
            where={"$and": [{"root": root}, {"source": source}]}, include=["documents", "metadatas", "embeddings"]
        )
        docs = found.get("documents") or []
        metas = found.get("metadatas") or []
        vectors = found.get("embeddings")
        chunks = [
            chunk_from_record(doc or "", dict(meta or {}), self._media) for doc, meta in zip(docs, metas, strict=True)
        ]
        matrix = np.asarray(vectors if vectors is not None and len(chunks) else [], dtype=np.float32)
        return chunks, matrix.reshape(len(chunks), -1) if chunks else np.zeros((0, self._layout.dim), np.float32)

    def query(self, vector: Vectors, k: int, flt: SearchFilter) -> list[Hit]:
        """The ``k`` nearest chunks passing ``flt``.

        With principals, the query is planned both ways: first ``OVERFETCH`` times ``k`` nearest without
        them, kept when readable (cheap, and enough when someone may read most of the drive); only when
        fewer than ``k`` survive, Chroma filters by principals itself (its cost grows with how many
        records pass, so it suits someone who may read little).
        """
        if k <= 0:
            return []
        if flt.principals is not None and flt.principals:
            wanted = k * OVERFETCH
            rows = self._rows(vector, wanted, replace(flt, principals=None))
            kept = [r for r in rows if visible(r[1].get(PRINCIPALS) or (), flt.principals)]
            if len(kept) >= k or len(rows) < wanted:  # enough readable, or every candidate was seen
                return [self._hit(*r) for r in kept[:k]]
        return [self._hit(*r) for r in self._rows(vector, k, flt)]

    def _rows(self, vector: Vectors, k: int, flt: SearchFilter) -> list[tuple[str, dict[str, Any], float]]:
        result = self._live(
            lambda c: c.query(
                query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
                n_results=k,
                where=where_clause(flt),
                include=["documents", "metadatas", "distances"],
            ),
            {},
        )
        docs = (result.get("documents") or [[]])[0]
        metas = (result.get("metadatas") or [[]])[0]
        dists = (result.get("distances") or [[]])[0]
        # a record deleted by a concurrent ingest while the query ran comes back without its metadata: gone
        return [
            (doc or "", dict(meta), float(dist)) for doc, meta, dist in zip(docs, metas, dists, strict=True) if meta
        ]

    def _hit(self, doc: str, record: dict[str, Any], dist: float) -> Hit:
        chunk = chunk_from_record(doc, record, self._media)
        return Hit(chunk, 1.0 - dist, str(record.get("root", "")), kind=str(record.get("kind", "")))

    def count(self) -> int:
        return int(self._live(lambda c: c.count(), 0))

    def _live(self, call: Any, missing: Any) -> Any:
        """``call(collection)``; when another process re-indexed or rebuilt the index meanwhile (the collection
        this store holds was deleted), the collection of the same name is taken up again and asked once
        more, or ``missing`` is the answer while there is none yet (a re-index between emptying and refilling)."""
        try:
            return call(self._collection)
        except Exception as e:
            if type(e).__name__ != "NotFoundError" and "does not exist" not in str(e):
                raise
        if self._name not in _collection_names(self._client):
            return missing
        self._collection = self._client.get_collection(self._name, embedding_function=None)
        return call(self._collection)

    def rebuild(self) -> int:
        """Copy every record into a fresh collection (its vector graph built anew) and swap it in under the
        same name; returns how many records it holds. Heavy upserting and deleting wears an HNSW graph down
        (3.5-4% of records stop finding themselves after 30 rounds); a fresh one has no such holes.

        The collection copied from is kept as NAME-retired until the next rebuild, so a process still
        holding it (a server that has not reopened the index) reads the same records meanwhile."""
        fresh_name, retired = f"{self._name}{REBUILT}", f"{self._name}{RETIRED}"
        names = _collection_names(self._client)
        for stale in (fresh_name, retired):
            if stale in names:
                self._client.delete_collection(stale)
        fresh = self._client.create_collection(
            fresh_name,
            embedding_function=None,
            metadata={LAYOUT_KEY: self._layout.to_json()},
            configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH}},
        )
        offset = 0
        while True:
            page = self._collection.get(
                include=["embeddings", "documents", "metadatas"], limit=WRITE_BATCH, offset=offset
            )
            if not page["ids"]:
                break
            fresh.add(
                ids=page["ids"], embeddings=page["embeddings"], documents=page["documents"], metadatas=page["metadatas"]
            )
            offset += len(page["ids"])
        if fresh.count() != self._collection.count():
            self._client.delete_collection(fresh_name)
            raise RuntimeError("the rebuilt vector index does not hold every record; the old one is kept")
        self._collection.modify(name=retired)
        fresh.modify(name=self._name)
        self._collection = fresh
        return int(fresh.count())

    def ids(self, root: str | None = None, source: str | None = None) -> set[str]:
        terms: list[dict[str, Any]] = []
        if root is not None:
            terms.append({"root": root})
        if source is not None:
            terms.append({"source": source})
        where = None if not terms else terms[0] if len(terms) == 1 else {"$and": terms}
        found: set[str] = set()
        offset = 0
        while True:  # in pages: one get of a million ids would hold them all in the bindings at once
            page = self._live(
                lambda c, at=offset: c.get(where=where, include=[], limit=ID_PAGE, offset=at), {"ids": []}
            )
            found.update(page["ids"])
            if len(page["ids"]) < ID_PAGE:
                return found
            offset += ID_PAGE

    def present(self, ids: set[str], flt: SearchFilter) -> set[str]:
        wanted = sorted(ids)
        found: set[str] = set()
        for start in range(0, len(wanted), ID_PAGE):
            page = self._live(
                lambda c, at=start: c.get(ids=wanted[at : at + ID_PAGE], where=where_clause(flt), include=[]),
                {"ids": []},
            )
            found.update(page["ids"])
        return found

    def files_of(self, ids: set[str]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        wanted = sorted(ids)
        for start in range(0, len(wanted), ID_PAGE):
            page = self._collection.get(ids=wanted[start : start + ID_PAGE], include=["metadatas"])
            found.update((str(m.get("root", "")), str(m.get("source", ""))) for m in page["metadatas"] or [] if m)
        return found

    def close(self) -> None:
        """Chroma keeps one system per path for the process; nothing here needs releasing."""

    def reset(self) -> None:
        """Drop every chunk (used by ``--reindex``); the collection is recreated with the current layout."""
        self._client.delete_collection(self._name)
        self._collection = self._open(self._layout, True)


def _search_wide(collection: Any) -> None:
    """Raise an older index's HNSW ``ef_search`` to ``EF_SEARCH`` (a setting Chroma lets change later)."""
    try:
        current = int(((collection.configuration or {}).get("hnsw") or {}).get("ef_search") or 0)
        if current < EF_SEARCH:
            collection.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})
    except Exception as e:  # an old or remote server that cannot change it: searches stay as they were
        log.info("could not raise ef_search of the Chroma collection: %s", e)
