"""Warm query latency on a synthetic index of N chunks, next to plain Chroma on the same collection.

Each tier runs in its own process (``python -m mmrag.pipeline.bench.search``) so that its peak memory
is its own and one tier's caches do not warm the next. The index is built once per size and version
under the cache folder and reused: vectors are random unit vectors (384-d, the text layout), texts
are generated (see ``bench.synthetic``), written through ``ChromaStore.upsert``. Keyword rows are
made by ``KeywordIndex.upsert`` one file at a time in a scratch table and copied over in bulk:
``upsert`` deletes each record id first and that delete scans the whole table, so writing 100,000
chunks straight through it takes hours (the cost of adding one more file to the built index is
measured and reported as ``add_file_ms_per_chunk``).

Queries are 4 words taken from indexed chunks (so keyword search and the extractive answer have
real work), embedded with the real text model; "search" times the hybrid search with the query
vector precomputed, "search_embed" includes embedding the query, "answer" is search + extractive
answer as ``mmrag ask`` runs it. The baseline is ``collection.query(query_embeddings=..., n_results=10)``.

With ``--store server`` the same figures are taken with the vectors in a private ``chroma run`` serving the
tier's folder (``bench.chroma_server``), through the HTTP client as ``[store] kind = "chroma-http"`` uses it;
the server's peak RSS and folder size come with them.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.pipeline.bench.common import Latency, current_rss_mb, dir_size_mb, interleaved, peak_rss_mb
from mmrag.pipeline.bench.synthetic import (
    BUILT_MARKER,
    COMMON_WORDS,
    DIM,
    KEYWORD_FILE,
    LAYOUT,
    MODIFIED,
    VISIBLE_SHARES,
    build_index,
    principals_seeing,
    synthetic_files,
    tier_dir,
    unit_vectors,
    vocabulary,
)
from mmrag.pipeline.bench.tier import TierResult
from mmrag.retrieval.embed import HashEmbedder, TextEmbedder, Vectors
from mmrag.retrieval.store import FileInfo, SearchFilter

SEARCH_K = 10
CANDIDATES = 50
ADDED_FILE_CHUNKS = 10
ANSWER_QUERIES = 20
STORES = ("local", "server")


@dataclass(frozen=True, slots=True)
class EmbedderSpec:
    """Which text model embeds the queries: a sentence-transformers folder, or the hash embedder (tests)."""

    name: str
    location: str = ""
    runtime: str = "onnx-int8"

    @property
    def is_hash(self) -> bool:
        return not self.location

    def load(self) -> TextEmbedder:
        if self.is_hash:
            return HashEmbedder(DIM)
        from mmrag.retrieval.embed_onnx import OnnxEmbedder, unsupported

        if self.runtime == "onnx-int8" and unsupported(Path(self.location)) is None:
            return OnnxEmbedder(self.name, Path(self.location), DIM)
        from mmrag.retrieval.embed import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(self.name, self.location, DIM)


class AlignedEmbedder:
    """Gives each benchmark query a vector near its source chunk's, as a real question's would be.

    With ``pay`` the real model still embeds every text (so the time is real) and only the query
    texts get their aligned vector; without it, nothing is embedded (the figure leaves embedding out).
    Other texts (an answer's sentences) get the model's own vectors.
    """

    def __init__(self, inner: TextEmbedder, aligned: dict[str, Vectors], *, pay: bool) -> None:
        self._inner = inner
        self._aligned = aligned
        self._pay = pay

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not self._pay and all(t in self._aligned for t in texts):
            return np.stack([self._aligned[t] for t in texts]).astype(np.float32)
        out = self._inner.embed(texts)
        for row, text in enumerate(texts):
            if text in self._aligned:
                out[row] = self._aligned[text]
        return out


def _queries(keyword_db: Path, count: int, seed: int = 99) -> list[tuple[str, str]]:
    """Four uncommon words from each of ``count`` random indexed chunks, with that chunk's record id."""
    common = set(vocabulary()[:COMMON_WORDS])
    rng = np.random.default_rng(seed)
    db = sqlite3.connect(f"file:{keyword_db}?mode=ro", uri=True)
    try:
        total = int(db.execute("SELECT max(rowid) FROM chunk_text").fetchone()[0])
        out: list[tuple[str, str]] = []
        for rowid in rng.integers(1, total + 1, size=count).tolist():
            text, record = db.execute("SELECT text, record_id FROM chunk_text WHERE rowid = ?", (rowid,)).fetchone()
            words = sorted({w.strip(".").lower() for w in str(text).split()} - common)
            picked = rng.choice(len(words), size=min(4, len(words)), replace=False).tolist()
            out.append((" ".join(words[i] for i in picked), str(record)))
    finally:
        db.close()
    return out


def _aligned_vectors(collection: Any, queries: Sequence[tuple[str, str]], seed: int = 5) -> dict[str, Vectors]:
    """Each query's vector: its source chunk's stored vector plus noise, cosine about 0.8 to it."""
    rng = np.random.default_rng(seed)
    stored = collection.get(ids=[record for _, record in queries], include=["embeddings"])
    by_id = {i: np.asarray(v, dtype=np.float32) for i, v in zip(stored["ids"], stored["embeddings"], strict=True)}
    out: dict[str, Vectors] = {}
    for text, record in queries:
        vector = by_id[record] + rng.standard_normal(DIM).astype(np.float32) * (0.75 / np.sqrt(DIM))
        out[text] = (vector / np.linalg.norm(vector)).astype(np.float32)
    return out


def _add_file_cost(store: object, keyword: object) -> tuple[float, float]:
    """ms per chunk to add one more file to the built index through the product's writers (median of 3)."""
    from mmrag.retrieval.keyword import KeywordIndex
    from mmrag.retrieval.stores.chroma import ChromaStore

    assert isinstance(store, ChromaStore) and isinstance(keyword, KeywordIndex)
    vector_ms: list[float] = []
    keyword_ms: list[float] = []
    for seed in (1, 2, 3):
        file = next(synthetic_files(ADDED_FILE_CHUNKS, ADDED_FILE_CHUNKS, seed=seed))
        info = FileInfo(root=f"/bench-added-file-{seed}", kind="pdf", modified=MODIFIED)
        vectors = unit_vectors(np.random.default_rng(seed), len(file.chunks), DIM)
        start = time.perf_counter()
        store.upsert(file.chunks, vectors, info)
        vector_ms.append((time.perf_counter() - start) * 1000 / len(file.chunks))
        start = time.perf_counter()
        keyword.upsert(file.chunks, info)
        keyword_ms.append((time.perf_counter() - start) * 1000 / len(file.chunks))
        store.delete_source(info.root, file.source)
        keyword.delete_source(info.root, file.source)
    return sorted(vector_ms)[1], sorted(keyword_ms)[1]


def _open(path: Path, size: int, rebuild: bool, note: Callable[[str], None]) -> tuple[object, object, float, bool]:
    """The tier's store and keyword index, built first when missing, stale or ``rebuild``."""
    from mmrag.retrieval.keyword import KeywordIndex
    from mmrag.retrieval.store import IndexMismatch
    from mmrag.retrieval.stores.chroma import ChromaStore

    marker = path / BUILT_MARKER
    cached = marker.exists() and not rebuild
    if cached:
        try:
            store = ChromaStore(path / "chroma", LAYOUT, create=False)
            keyword = KeywordIndex(path / KEYWORD_FILE)
            return store, keyword, float(json.loads(marker.read_text())["build_s"]), True
        except IndexMismatch:
            note(f"the cached {size:,}-chunk index was made by another version; rebuilding it")
    note(f"building the synthetic {size:,}-chunk index in {path} (cached for later runs)")
    build_s = build_index(path, size, note)
    return ChromaStore(path / "chroma", LAYOUT, create=False), KeywordIndex(path / KEYWORD_FILE), build_s, False


def _build_elsewhere(size: int, cache: Path, rebuild: bool, note: Callable[[str], None]) -> tuple[float, bool]:
    """Build (or find) the tier's index in a child process, so that this one never opens its Chroma folder
    (the server opens it next). Returns the build seconds and whether the index was cached."""
    import subprocess

    path = tier_dir(cache, size)
    marker = path / BUILT_MARKER
    if marker.exists() and not rebuild:
        return float(json.loads(marker.read_text())["build_s"]), True
    note(f"building the synthetic {size:,}-chunk index in {path} (cached for later runs)")
    cmd = [sys.executable, "-m", "mmrag.pipeline.bench.search", "--size", str(size), "--cache", str(cache)]
    subprocess.run([*cmd, "--build-only"], check=True, stdout=subprocess.DEVNULL)
    return float(json.loads(marker.read_text())["build_s"]), False


def run_tier(
    size: int,
    cache: Path,
    spec: EmbedderSpec,
    *,
    queries: int,
    rounds: int,
    rebuild: bool,
    note: Callable[[str], None],
    store_kind: str = "local",
) -> TierResult:
    """One tier's figures on the embedded store (``local``) or through a private ``chroma run`` (``server``)."""
    if store_kind == "server":
        from mmrag.pipeline.bench.chroma_server import ChromaServer

        build_s, cached = _build_elsewhere(size, cache, rebuild, note)
        path = tier_dir(cache, size)
        server = ChromaServer(path / "chroma", path.parent / f"{path.name}.server.log")
        note(f"starting chroma run on the {size:,}-chunk index")
        server.start()
        try:
            result = _measure(size, path, spec, queries, rounds, note, (build_s, cached, server.url))
            peak = server.stop()
        finally:
            server.stop()
        return replace(result, store="server", server_peak_rss_mb=peak, server_disk_mb=server.disk_mb())
    return _measure(size, tier_dir(cache, size), spec, queries, rounds, note, rebuild)


def _measure(
    size: int,
    path: Path,
    spec: EmbedderSpec,
    queries: int,
    rounds: int,
    note: Callable[[str], None],
    how: bool | tuple[float, bool, str],
) -> TierResult:
    """``how``: rebuild the embedded index first (bool), or (build s, cached, URL) of the server serving it."""
    import chromadb
    from chromadb.config import Settings

    from mmrag.pipeline.answer.extractive import extractive_answer
    from mmrag.pipeline.api import ANSWER_HITS
    from mmrag.retrieval.keyword import KeywordIndex
    from mmrag.retrieval.search import Searcher
    from mmrag.retrieval.stores.chroma import COLLECTION, ChromaStore
    from mmrag.retrieval.vectorize import Vectorizer

    embedder = spec.load()
    embedder.embed(["warm up the model"])
    rss_before = current_rss_mb()
    if isinstance(how, tuple):
        from mmrag.pipeline.bench.chroma_server import DATABASE, TENANT

        build_s, cached, url = how
        client = ChromaStore.remote(url, headers={}, tenant=TENANT, database=DATABASE)
        store: object = ChromaStore(None, LAYOUT, create=False, client=client)
        keyword: object = KeywordIndex(path / KEYWORD_FILE)
    else:
        store, keyword, build_s, cached = _open(path, size, how, note)
        client = chromadb.PersistentClient(
            path=str(path / "chroma"), settings=Settings(anonymized_telemetry=False, allow_reset=False)
        )
    assert isinstance(store, ChromaStore) and isinstance(keyword, KeywordIndex)
    collection = client.get_collection(COLLECTION, embedding_function=None)
    picked = _queries(path / KEYWORD_FILE, queries)
    texts = [text for text, _ in picked]
    aligned = _aligned_vectors(collection, picked)
    vectors = [aligned[t] for t in texts]
    embed_s = []
    for text in texts:
        start = time.perf_counter()
        embedder.embed([text])
        embed_s.append(time.perf_counter() - start)
    fast = Searcher(store, keyword, Vectorizer(AlignedEmbedder(embedder, aligned, pay=False)))
    real_vectorizer = Vectorizer(AlignedEmbedder(embedder, aligned, pay=True))
    real = Searcher(store, keyword, real_vectorizer)
    answered: set[int] = set()

    def answer(i: int) -> None:
        if not extractive_answer(texts[i], real.search(texts[i], ANSWER_HITS), real_vectorizer).declined:
            answered.add(i)

    variants: dict[str, Callable[[int], object]] = {
        "baseline": lambda i: collection.query(query_embeddings=vectors[i].reshape(1, -1), n_results=SEARCH_K),
        "search": lambda i: fast.search(texts[i], SEARCH_K),
        "vector_only": lambda i: store.query(vectors[i], CANDIDATES, SearchFilter()),
        "keyword_only": lambda i: keyword.search(texts[i], CANDIDATES, SearchFilter()),
        "search_embed": lambda i: real.search(texts[i], SEARCH_K),
    }

    def as_someone_seeing(share: int) -> Callable[[int], object]:
        flt = SearchFilter(principals=principals_seeing(share))
        return lambda i: fast.search(texts[i], SEARCH_K, flt)

    for share in VISIBLE_SHARES:  # the whole search (vector, keyword, exact lists) for one person
        variants[f"visible_{share}"] = as_someone_seeing(share)
    note(f"timing {len(texts)} queries x {rounds} rounds on {size:,} chunks")
    times = interleaved(variants, len(texts), warmup=5, rounds=rounds)
    # The answer embeds every sentence of its hits (seconds, not ms): fewer queries keep the bench short.
    times.update(interleaved({"answer": answer}, min(len(texts), ANSWER_QUERIES), warmup=2, rounds=1))
    index_rss = current_rss_mb() - rss_before
    vector_ms, keyword_ms = _add_file_cost(store, keyword)
    keyword.close()
    return TierResult(
        size=size,
        build_s=build_s,
        cached=cached,
        disk_mb=dir_size_mb(path),
        peak_rss_mb=peak_rss_mb(),
        index_rss_mb=index_rss,
        queries=len(texts),
        answered=len(answered),
        search=Latency.of(times["search"]),
        search_embed=Latency.of(times["search_embed"]),
        answer=Latency.of(times["answer"]),
        vector_only=Latency.of(times["vector_only"]),
        keyword_only=Latency.of(times["keyword_only"]),
        baseline=Latency.of(times["baseline"]),
        embed=Latency.of(embed_s),
        visible_5=Latency.of(times["visible_5"]),
        visible_50=Latency.of(times["visible_50"]),
        visible_95=Latency.of(times["visible_95"]),
        add_file_vectors_ms_per_chunk=vector_ms,
        add_file_keywords_ms_per_chunk=keyword_ms,
    )


def measure_tier(
    size: int,
    cache: Path,
    spec: EmbedderSpec,
    *,
    queries: int,
    rounds: int,
    rebuild: bool,
    store: str = "local",
    timeout_s: float = 7200,
) -> TierResult:
    """Run one tier in a fresh process and read its figures back."""
    import subprocess

    cmd = [sys.executable, "-m", "mmrag.pipeline.bench.search", "--size", str(size), "--cache", str(cache)]
    cmd += ["--store", store]
    cmd += ["--queries", str(queries), "--rounds", str(rounds), "--model-name", spec.name]
    cmd += ["--model-location", spec.location, "--model-runtime", spec.runtime] if spec.location else []
    cmd += ["--rebuild"] if rebuild else []
    done = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, timeout=timeout_s, text=True)
    return TierResult.from_wire(json.loads(done.stdout))


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """The worker process of one tier: prints the tier's figures as JSON on stdout."""
    from mmrag.pipeline.offline import apply_offline_env

    parser = argparse.ArgumentParser(prog="python -m mmrag.pipeline.bench.search")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model-name", default="hash")
    parser.add_argument("--model-location", default="")
    parser.add_argument("--model-runtime", default="onnx-int8")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--store", choices=STORES, default="local")
    parser.add_argument("--build-only", action="store_true", help="build (or keep) the tier's index, measure nothing")
    args = parser.parse_args(argv)
    apply_offline_env()
    if args.build_only:
        path = tier_dir(args.cache, args.size)
        if args.rebuild or not (path / BUILT_MARKER).exists():
            build_index(path, args.size, _note)
        return 0
    spec = EmbedderSpec(args.model_name, args.model_location, args.model_runtime)
    result = run_tier(
        args.size, args.cache, spec, queries=args.queries, rounds=args.rounds, rebuild=args.rebuild, note=_note,
        store_kind=args.store,
    )  # fmt: skip
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
