"""What API replicas cost at scale: publishing a snapshot, a replica taking it up, and searching from it.

``python -m mmrag.pipeline.bench.replicas --size 100000`` uses the bench's cached synthetic index of
that many chunks (``mmrag bench`` builds it; so does this, once), adds a table store (one table of
``TABLE_ROWS`` rows per ``FILES_PER_TABLE`` files) and a manifest (a row per file), then measures:

- publish: the SQLite backup of keyword index, table store and manifest and its copy into a shared
  folder (``snapshots.publish_files``), with the bytes written;
- refresh: a replica copying that snapshot into its cache (``snapshots.fetch``) and opening it;
- then, after one file and then ten more are deleted from the keyword index, what a publish sends and a
  replica downloads (only the blocks that changed, ``snapshot_blocks``) and the seconds each takes;
- keyword search (BM25, k=50) and a table query (an aggregate over one table), p50/p95, on the
  single-machine index and on a replica: the snapshot's copy, with every keyword hit checked against
  the live vector store (``replica.LiveKeyword``: a ``chroma run`` server on a copy of the tier's vectors),
  as everyone and as a person who may read half of the drive.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mmrag.pipeline.bench.common import Latency, interleaved
from mmrag.pipeline.bench.synthetic import (
    BUILT_MARKER,
    COMMON_WORDS,
    LAYOUT,
    SYNTH_ROOT,
    build_index,
    principals_seeing,
    tier_dir,
    vocabulary,
)

TABLE_ROWS = 500
FILES_PER_TABLE = 10
K = 50
DEFAULT_CACHE = Path.home() / ".cache" / "mmrag-bench"


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _queries(keyword_db: Path, count: int, seed: int = 99) -> list[str]:
    """Three uncommon words of each of ``count`` random indexed chunks."""
    common = set(vocabulary()[:COMMON_WORDS])
    rng = np.random.default_rng(seed)
    db = sqlite3.connect(f"file:{keyword_db}?mode=ro", uri=True)
    try:
        total = int(db.execute("SELECT max(rowid) FROM chunk_text").fetchone()[0])
        out = []
        for rowid in rng.integers(1, total + 1, size=count).tolist():
            (text,) = db.execute("SELECT text FROM chunk_text WHERE rowid = ?", (rowid,)).fetchone()
            words = sorted({w.strip(".").lower() for w in str(text).split()} - common)
            out.append(" ".join(words[i] for i in rng.choice(len(words), size=3, replace=False).tolist()))
    finally:
        db.close()
    return out


def _fill_tables_and_manifest(index: Path, files: list[tuple[str, str]]) -> None:
    """A table store and a manifest the size a drive of these files would have."""
    from mmrag.ingest.chunk import Sheet, Table
    from mmrag.retrieval.manifest import OK, FileRecord, Manifest
    from mmrag.retrieval.tables_sql import TableStore

    tables = TableStore(index / "tables.sqlite")
    manifest = Manifest(index / "manifest.sqlite")
    try:
        for n, (source, principal) in enumerate(files):
            if n % FILES_PER_TABLE == 0:
                rows = tuple((f"item{r}", f"region{r % 7}", str(r * 3 % 1000)) for r in range(TABLE_ROWS))
                table = Table(source, "sales", ("item", "region", "amount"), rows, Sheet("sales"))
                tables.replace_source(SYNTH_ROOT, source, [table], (principal,))
        manifest.put_many(
            [FileRecord(SYNTH_ROOT, s, 1000, 1, f"{n:064x}", "pdf", OK, chunks=100) for n, (s, _) in enumerate(files)]
        )
    finally:
        tables.close()
        manifest.close()


def _timed(variants: dict[str, Callable[[int], object]], count: int, rounds: int = 2) -> dict[str, Latency]:
    """Latency of each variant; they alternate per query, so a load swing on a shared machine hits them alike."""
    seconds = interleaved(variants, count, warmup=5, rounds=rounds)
    return {name: Latency.of(values) for name, values in seconds.items()}


class _ChromaServer:
    """``chroma run`` on a copy of the tier's vectors, on 127.0.0.1."""

    def __init__(self, data: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        chroma = Path(sys.executable).with_name("chroma")
        self.log = (data.parent / "chroma.log").open("wb")
        self.proc = subprocess.Popen(
            [str(chroma), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chroma run did not start") from None
                time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def measure(size: int, cache: Path, queries: int, work: Path) -> dict[str, object]:
    from mmrag.pipeline.replica import LiveKeyword
    from mmrag.pipeline.shared import FolderLocation
    from mmrag.pipeline.snapshots import fetch, publish_files
    from mmrag.retrieval.keyword import KeywordIndex
    from mmrag.retrieval.manifest import Manifest
    from mmrag.retrieval.store import SearchFilter
    from mmrag.retrieval.stores.chroma import COLLECTION, ChromaStore
    from mmrag.retrieval.tables_sql import TableStore

    tier = tier_dir(cache, size)
    if not (tier / BUILT_MARKER).exists():
        _note(f"building the synthetic {size:,}-chunk index in {tier} (cached for later runs)")
        build_index(tier, size, _note)
    index = work / "ingest-node"
    index.mkdir()
    _note("copying the keyword index and the vectors, and writing tables and a manifest")
    src, dst = sqlite3.connect(tier / "keyword.sqlite"), sqlite3.connect(index / "keyword.sqlite")
    src.backup(dst)
    src.close()
    dst.close()
    db = sqlite3.connect(index / "keyword.sqlite")
    files = db.execute(
        "SELECT DISTINCT f.source, p.principal FROM chunk_file f JOIN chunk_principal p ON p.rowid = f.rowid"
    ).fetchall()
    db.close()
    _fill_tables_and_manifest(index, sorted(files))
    shutil.copytree(tier / "chroma", work / "chroma-server")
    server = _ChromaServer(work / "chroma-server")
    try:
        shared = FolderLocation(work / "shared")
        _note("publishing")
        published = publish_files(index, shared, keep_seconds=600)
        started = time.perf_counter()
        fetched = fetch(shared, work / "replica-cache")
        copied = time.perf_counter() - started
        store = ChromaStore(
            work / "unused",
            LAYOUT,
            create=False,
            collection=COLLECTION,
            client=ChromaStore.remote(server.url, headers={}, tenant="default_tenant", database="default_database"),
        )
        opened_at = time.perf_counter()
        live = LiveKeyword(fetched.folder / "keyword.sqlite", work / "media", store)
        replica_tables = TableStore(fetched.folder / "tables.sqlite")
        Manifest(fetched.folder / "manifest.sqlite").close()
        opened = time.perf_counter() - opened_at
        copy = KeywordIndex(fetched.folder / "keyword.sqlite")  # the snapshot without the live check
        local = KeywordIndex(index / "keyword.sqlite")
        local_tables = TableStore(index / "tables.sqlite")
        texts = _queries(index / "keyword.sqlite", queries)
        half = SearchFilter(principals=principals_seeing(50))
        everyone = SearchFilter()
        table = local_tables.list_tables(None)[0].sql_name
        sql = f'SELECT region, sum(amount), count(*) FROM "{table}" GROUP BY region'
        _note("timing searches")
        latencies = _timed(
            {
                "keyword_local": lambda i: local.search(texts[i], K, everyone),
                "keyword_replica": lambda i: live.search(texts[i], K, everyone),
                "keyword_copy": lambda i: copy.search(texts[i], K, everyone),
                "keyword_local_half": lambda i: local.search(texts[i], K, half),
                "keyword_replica_half": lambda i: live.search(texts[i], K, half),
                "keyword_copy_half": lambda i: copy.search(texts[i], K, half),
                "table_local": lambda i: local_tables.run(sql),
                "table_replica": lambda i: replica_tables.run(sql),
            },
            len(texts),
        )
        changes: dict[str, object] = {}
        sources = sorted({source for source, _principal in files})
        for deleted in (1, 10):  # files spread over the drive, each deleted from the keyword index
            _note(f"publishing again after {deleted} more file(s) are deleted")
            changed = KeywordIndex(index / "keyword.sqlite")
            for source in sources[len(sources) // 2 - deleted :: max(1, len(sources) // deleted)][:deleted]:
                changed.delete_source(SYNTH_ROOT, source)
            changed.close()
            republished = publish_files(index, shared, keep_seconds=600)
            started = time.perf_counter()
            refetched = fetch(shared, work / "replica-cache", want=republished.id)
            changes[f"files_deleted_{deleted}"] = {
                "sent_mb": round(republished.sent / 1e6, 2),
                "publish_s": round(republished.copy_seconds + republished.upload_seconds, 2),
                "downloaded_mb": round(refetched.downloaded / 1e6, 2),
                "refresh_s": round(time.perf_counter() - started, 2),
            }
        figures: dict[str, object] = {
            "chunks": size,
            "snapshot_mb": round(published.bytes / 1e6, 1),
            "publish_copy_s": round(published.copy_seconds, 2),
            "publish_upload_s": round(published.upload_seconds, 2),
            "refresh_copy_s": round(copied, 2),
            "refresh_open_s": round(opened, 3),
            "after_change": changes,
            **{name: latency.to_json() for name, latency in latencies.items()},
        }
        for part in (live, copy, local, replica_tables, local_tables):
            part.close()
        return figures
    finally:
        server.stop()


def _changes(figures: dict[str, object]) -> dict[str, dict[str, float]]:
    changes = figures.get("after_change")
    return changes if isinstance(changes, dict) else {}


def render(figures: dict[str, object]) -> str:
    def ms(name: str) -> str:
        value = figures[name]
        assert isinstance(value, dict)
        return f"p50 {value['p50']:.1f} ms, p95 {value['p95']:.1f} ms"

    return "\n".join(
        [
            f"API replicas at {figures['chunks']:,} chunks",
            f"  snapshot: {figures['snapshot_mb']} MB (keyword index, tables, manifest)",
            f"  publish: SQLite backup {figures['publish_copy_s']} s + copy to the shared folder "
            f"{figures['publish_upload_s']} s",
            f"  replica refresh: copy {figures['refresh_copy_s']} s + open {figures['refresh_open_s']} s",
            *(
                f"  then {name.rsplit('_', 1)[1]} more file(s) deleted: publish sends {c['sent_mb']} MB "
                f"({c['publish_s']} s), a replica downloads {c['downloaded_mb']} MB ({c['refresh_s']} s)"
                for name, c in _changes(figures).items()
            ),
            f"  keyword, k={K}: one machine {ms('keyword_local')}; replica (live-checked) {ms('keyword_replica')}",
            f"  keyword as a person reading half the drive: one machine {ms('keyword_local_half')}; "
            f"replica {ms('keyword_replica_half')}",
            f"  keyword on the snapshot's copy without the live check: {ms('keyword_copy')}; "
            f"reading half the drive {ms('keyword_copy_half')}",
            f"  table aggregate: one machine {ms('table_local')}; replica {ms('table_replica')}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmrag.pipeline.bench.replicas", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=100_000, help="chunks in the synthetic index (default 100000)")
    p.add_argument("--queries", type=int, default=50, help="queries timed (default 50, each twice)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"bench cache (default {DEFAULT_CACHE})")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmrag-bench-replicas-") as tmp:
        figures = measure(args.size, args.cache, args.queries, Path(tmp))
    sys.stdout.write((json.dumps(figures, indent=2) if args.json else render(figures)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
