"""Snapshots in one process: what a publish holds, when old ones go, S3 as the shared location, and what a
replica's configuration must name. The processes-on-127.0.0.1 test is ``test_replicas.py``."""

# ruff: noqa: F811  (the fixtures imported from s3_server come back as the tests' parameters)

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import CountingEmbedder
from PIL import Image
from s3_server import ACCESS_KEY, SECRET_KEY, s3_bucket, s3_server  # noqa: F401

from mmrag.pipeline import api
from mmrag.pipeline.app import CHROMA_DIR, Models
from mmrag.pipeline.config import Config, ConfigError, load_config
from mmrag.pipeline.replica import Replica
from mmrag.pipeline.shared import FolderLocation, open_shared
from mmrag.pipeline.snapshots import CURRENT, INFO, SNAPSHOTS, NothingPublished, fetch, prune
from mmrag.pipeline.worker import IndexWorker


def _drive(root: Path, files: int = 6) -> Path:
    root.mkdir()
    for n in range(files):
        (root / f"note{n}.txt").write_text(f"Note {n}: the quarterly review of project number {n} is on Monday.\n")
    return root


def _shared(cfg: Config, shared: str, **store: Any) -> Config:
    return replace(cfg, store=replace(cfg.store, shared=shared, **store))


def _ingest(cfg: Config, drive: Path) -> api.IngestReport:
    try:
        return api.ingest([drive], cfg, embedder=CountingEmbedder(64))
    finally:
        api.close(cfg)


def _snapshot_files(folder: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Chunks per file in the keyword index, and as the manifest records them (files ingested)."""
    keyword = sqlite3.connect(folder / "keyword.sqlite")
    manifest = sqlite3.connect(folder / "manifest.sqlite")
    try:
        indexed = dict(keyword.execute("SELECT source, count(*) FROM chunk_file GROUP BY source").fetchall())
        recorded = dict(manifest.execute("SELECT source, chunks FROM files WHERE status = 'ok'").fetchall())
    finally:
        keyword.close()
        manifest.close()
    return indexed, recorded


@pytest.mark.parametrize("workers", [1, 2])
def test_a_long_ingest_publishes_along_the_way_each_snapshot_matching_its_manifest(
    tmp_path: Path, cfg: Config, workers: int
) -> None:
    shared = tmp_path / "shared"
    cfg = _shared(cfg, str(shared), publish_seconds=0.001, keep_seconds=3600.0)
    cfg = replace(cfg, ingest=replace(cfg.ingest, workers=workers))  # files read in a process pool too
    report = _ingest(cfg, _drive(tmp_path / "drive"))
    assert len(report.ingested) == 6
    ids = sorted(p.name for p in (shared / "snapshots").iterdir())
    assert len(ids) >= 3, "a publish during the run, not only at its end"
    assert (shared / CURRENT).read_text() == ids[-1]
    grew = []
    for snapshot in ids:  # each as a replica would copy it (from its blocks)
        fetched = fetch(FolderLocation(shared), tmp_path / f"cache-{snapshot}", want=snapshot)
        indexed, recorded = _snapshot_files(fetched.folder)
        assert indexed == recorded, f"snapshot {snapshot}: the keyword index and the manifest disagree"
        grew.append(len(recorded))
    assert grew == sorted(grew) and grew[-1] == 6 and grew[0] < 6

    again = _ingest(cfg, tmp_path / "drive")  # nothing changed: nothing published
    assert again.unchanged == 6 and sorted(p.name for p in (shared / "snapshots").iterdir()) == ids


def _fake_snapshot(location: FolderLocation, created: float) -> str:
    snapshot = f"{int(created * 1000):015d}-abcdef"
    location.write(f"{SNAPSHOTS}{snapshot}/keyword.sqlite", b"x")
    location.write(f"{SNAPSHOTS}{snapshot}/{INFO}", b"{}")
    return snapshot


def test_a_replaced_snapshot_stays_for_the_grace_period_and_the_current_one_always(tmp_path: Path) -> None:
    location = FolderLocation(tmp_path / "shared")
    now = time.time()
    old, replaced_long_ago, replaced_just_now, newest = (
        _fake_snapshot(location, t) for t in (now - 4000, now - 3000, now - 30, now - 10)
    )
    location.write(CURRENT, newest.encode())
    assert prune(location, keep_seconds=600) == [old]  # replaced 3000 s ago
    left = {p.name for p in (tmp_path / "shared" / "snapshots").iterdir()}
    assert left == {replaced_long_ago, replaced_just_now, newest}  # replaced 30 s and 10 s ago; the current one
    location.write(CURRENT, replaced_long_ago.encode())  # CURRENT is never pruned, whatever its age
    assert replaced_long_ago not in prune(location, keep_seconds=1)


def test_fetching_from_an_empty_shared_location_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(NothingPublished, match="run `mmrag ingest` on the ingest node"):
        fetch(FolderLocation(tmp_path / "shared"), tmp_path / "cache")


def test_a_replica_refuses_to_ingest_and_its_config_must_name_a_shared_location_and_a_server(tmp_path: Path) -> None:
    config = tmp_path / "mmrag.toml"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "MMRAG_ROLE": "replica"}
    config.write_text('[store]\nkind = "chroma-http"\nurl = "http://127.0.0.1:9"\n')
    with pytest.raises(ConfigError, match=r"needs \[store\] shared"):
        load_config(config, tmp_path / "cache", env)
    config.write_text(f'[store]\nshared = "{tmp_path / "shared"}"\n')
    with pytest.raises(ConfigError, match='kind = "chroma-http"'):
        load_config(config, tmp_path / "cache", env)
    config.write_text(f'[store]\nshared = "{tmp_path / "shared"}"\nrole = "reader"\n')
    with pytest.raises(ConfigError, match="role"):
        load_config(config, tmp_path / "cache", {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})


def test_s3_holds_the_snapshots_and_pictures_and_a_replica_follows_it(
    tmp_path: Path, cfg: Config, s3_bucket: tuple[str, str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, bucket, s3 = s3_bucket
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    drive = _drive(tmp_path / "drive", files=2)
    Image.new("RGB", (320, 200), (200, 40, 40)).save(drive / "red-poster.png")
    writer = _shared(cfg, f"s3://{bucket}/mmrag", shared_endpoint=endpoint)
    _ingest(writer, drive)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    current = s3.get_object(Bucket=bucket, Key="mmrag/CURRENT")["Body"].read().decode()
    assert f"mmrag/snapshots/{current}/{INFO}" in keys
    listed = json.loads(s3.get_object(Bucket=bucket, Key=f"mmrag/snapshots/{current}/{INFO}")["Body"].read())
    assert set(listed["blocks"]) == {"keyword.sqlite", "tables.sqlite", "manifest.sqlite"}
    assert {f"mmrag/blocks/{sha}" for order in listed["blocks"].values() for sha in order} <= keys
    pictures = [k for k in keys if k.startswith("mmrag/media/")]
    assert len(pictures) == 1 and pictures[0].endswith(".jpg")

    cache = tmp_path / "replica-cache"
    reader = replace(
        writer,
        index_dir=cache,
        store=replace(writer.store, role="replica", path=str(cfg.index_dir / CHROMA_DIR), poll_seconds=0.2),
    )
    replica = Replica(reader)
    worker = IndexWorker(reader, CountingEmbedder(64), opener=replica.open)
    try:
        hits = worker.call(lambda app: api.search_index(app, "red poster", 3))
        poster = next(h for h in hits if h.chunk.source == "red-poster.png")
        assert poster.chunk.image is not None and poster.chunk.image.is_file()
        assert poster.chunk.image.is_relative_to(cache / "media")  # the replica's copy of the picture

        (drive / "red-poster.png").unlink()
        _ingest(writer, drive)
        assert not [o for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].startswith("mmrag/media/")]
        replica.start(worker.swap)
        deadline = time.monotonic() + 10
        while replica.snapshot == current:
            assert time.monotonic() < deadline, "the replica did not take up the new snapshot"
            time.sleep(0.1)
        hits = worker.call(lambda app: api.search_index(app, "red poster", 3))
        assert "red-poster.png" not in {h.chunk.source for h in hits}
        assert not poster.chunk.image.exists()
        assert [p.name for p in (cache / "snapshots").iterdir()] == [replica.snapshot]
    finally:
        replica.stop()
        worker.shutdown()
        location = open_shared(writer)
        if location is not None:
            location.close()


def test_models_are_shared_between_snapshots(tmp_path: Path, cfg: Config) -> None:
    """A swap opens the new snapshot with the models already loaded (nothing loads twice)."""
    shared = tmp_path / "shared"
    writer = _shared(cfg, str(shared))
    _ingest(writer, _drive(tmp_path / "drive", files=1))
    reader = replace(
        writer,
        index_dir=tmp_path / "cache",
        store=replace(writer.store, role="replica", path=str(cfg.index_dir / CHROMA_DIR)),
    )
    models = Models(reader, embedder=CountingEmbedder(64))
    replica = Replica(reader)
    first = replica.open(models)
    info = json.loads((first.path / INFO).read_text())
    assert info["id"] == (shared / CURRENT).read_text() and first.media_dir == shared / "media"
    first.close()


def test_a_reader_removed_on_the_ingest_node_loses_keyword_hits_at_once_on_a_replica_not_yet_refreshed(
    tmp_path: Path, cfg: Config
) -> None:
    """The snapshot lags Chroma; the keyword hits it still gives are checked against Chroma's live readers."""
    from mmrag.pipeline.filters import Filters
    from mmrag.pipeline.http.files import Refused, served_path
    from mmrag.retrieval.keyword import KeywordIndex
    from mmrag.retrieval.store import SearchFilter

    rules = tmp_path / "readers.toml"
    rules.write_text('[[rule]]\nmatch = "**"\nreaders = ["group:finance"]\n')
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "salaries.txt").write_text("The walrus bonus pool for engineers is 80,000 euros.\n")
    writer = _shared(cfg, str(tmp_path / "shared"))
    writer = replace(writer, permissions=replace(writer.permissions, enabled=True, rules_file=str(rules)))
    _ingest(writer, drive)
    reader = replace(
        writer,
        index_dir=tmp_path / "cache",
        store=replace(writer.store, role="replica", path=str(cfg.index_dir / CHROMA_DIR)),
    )
    replica = Replica(reader)
    app = replica.open(Models(reader, embedder=CountingEmbedder(64)))
    finance = Filters(principals=frozenset({"group:finance"}))
    try:
        assert [h.chunk.source for h in api.search_index(app, "walrus bonus pool", 3, finance)] == ["salaries.txt"]

        # the ingest node records the new readers in Chroma; its snapshot has not reached the replica
        rules.write_text('[[rule]]\nmatch = "**"\nreaders = ["group:hr"]\n')
        unpublished = _shared(writer, str(tmp_path / "elsewhere"))
        assert _ingest(unpublished, drive).permissions_changed == ["salaries.txt"]

        stale = KeywordIndex(app.path / "keyword.sqlite")
        as_finance = SearchFilter(principals=frozenset({"group:finance"}))
        assert [h.chunk.source for h in stale.search("walrus bonus", 5, as_finance)] == ["salaries.txt"]
        stale.close()
        assert app.keyword.search("walrus bonus", 5, as_finance) == []
        assert api.search_index(app, "walrus bonus pool", 3, finance) == []
        hr = Filters(principals=frozenset({"group:hr"}))
        assert [h.chunk.source for h in api.search_index(app, "walrus bonus pool", 3, hr)] == ["salaries.txt"]

        # the snapshot's manifest still names finance; downloads and previews ask the live store too
        assert app.manifest.get(str(drive), "salaries.txt").principals == ("group:finance",)  # type: ignore[union-attr]
        with pytest.raises(Refused) as refused:
            served_path(app, str(drive), "salaries.txt", frozenset({"group:finance"}))
        assert refused.value.status == 404
    finally:
        app.close()


def test_an_ingest_on_a_replica_is_refused_before_anything_is_written(tmp_path: Path, cfg: Config) -> None:
    from mmrag.pipeline.app import ReplicaRefused, open_app
    from mmrag.retrieval.store import IndexMismatch

    cache = tmp_path / "cache"
    reader = replace(cfg, index_dir=cache, store=replace(cfg.store, shared=str(tmp_path / "shared"), role="replica"))
    with pytest.raises(ReplicaRefused, match="ingest runs on the ingest node"):
        _ingest(reader, _drive(tmp_path / "drive", files=1))
    assert not cache.exists() and not (tmp_path / "shared").exists()
    with pytest.raises(IndexMismatch, match="an API replica's cache, not an index"):
        open_app(reader, create=False)  # mmrag search / status on a replica machine


def test_a_replica_started_before_the_first_publish_serves_it_once_it_comes(tmp_path: Path, cfg: Config) -> None:
    shared = tmp_path / "shared"
    writer = _shared(cfg, str(shared))
    reader = replace(
        writer,
        index_dir=tmp_path / "cache",
        store=replace(writer.store, role="replica", path=str(cfg.index_dir / CHROMA_DIR), poll_seconds=0.1),
    )
    replica = Replica(reader)
    worker = IndexWorker(reader, CountingEmbedder(64), opener=replica.open)
    replica.start(worker.swap)
    try:
        with pytest.raises(NothingPublished, match="nothing is published at"):
            worker.call(lambda app: app.manifest.counts())
        _ingest(writer, _drive(tmp_path / "drive", files=2))
        deadline = time.monotonic() + 10
        while not replica.snapshot:
            assert time.monotonic() < deadline, "the first snapshot did not reach the replica"
            time.sleep(0.1)
        hits = worker.call(lambda app: api.search_index(app, "quarterly review project number 1", 2))
        assert hits[0].chunk.source == "note1.txt"
    finally:
        replica.stop()
        worker.shutdown()


def test_the_doctor_tells_a_running_ingest_from_one_cut_short_before_publishing(tmp_path: Path, cfg: Config) -> None:
    from mmrag.pipeline.app import ingest_lock
    from mmrag.pipeline.doctor import snapshot_checks
    from mmrag.pipeline.snapshots import PENDING

    assert snapshot_checks(cfg) == []  # one machine: nothing published, nothing to look at
    cfg = _shared(cfg, str(tmp_path / "shared"))
    [nothing] = snapshot_checks(cfg)
    assert not nothing.ok and "nothing is published" in nothing.detail and "--repair" in nothing.remedy
    _ingest(cfg, _drive(tmp_path / "drive"))
    [published] = snapshot_checks(cfg)
    assert published.ok and "every change is published" in published.detail

    (cfg.index_dir / PENDING).write_text("a run's changes\n")  # as an ingest leaves it while it runs
    with ingest_lock(cfg.index_dir):
        [running] = snapshot_checks(cfg)
    assert running.ok and "an ingest is running" in running.detail
    [cut] = snapshot_checks(cfg)  # the same marker with no ingest holding the lock: a run cut short
    assert not cut.ok and "cut short" in cut.detail

    replica = replace(cfg, store=replace(cfg.store, role="replica"), index_dir=tmp_path / "cache")
    [seen] = snapshot_checks(replica)
    assert seen.ok and "does not hold it yet" in seen.detail
    unreachable = replace(cfg, store=replace(cfg.store, shared="ftp://nowhere/x"))
    [bad] = snapshot_checks(unreachable)
    assert not bad.ok and "ftp://nowhere/x" in bad.detail


def _databases(index: Path, rows: int) -> None:
    """Three SQLite files under the snapshot's names, the keyword one holding ``rows`` rows of 2 KB."""
    for name in ("keyword.sqlite", "tables.sqlite", "manifest.sqlite"):
        db = sqlite3.connect(index / name)
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
        if name == "keyword.sqlite":
            db.executemany(
                "INSERT INTO t (body) VALUES (?)", ((f"row {n} " + "lorem ipsum " * 170,) for n in range(rows))
            )
        db.commit()
        db.close()


def _rows(folder: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(folder / "keyword.sqlite")
    try:
        return db.execute("SELECT id, body FROM t ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_small_change_publishes_and_fetches_a_few_blocks_not_the_whole_index(tmp_path: Path) -> None:
    from mmrag.pipeline.snapshot_blocks import BLOCK, BLOCKS
    from mmrag.pipeline.snapshots import publish_files

    index, cache = tmp_path / "index", tmp_path / "replica"
    index.mkdir()
    _databases(index, rows=10_000)  # about 20 MB
    location = FolderLocation(tmp_path / "shared")
    first = publish_files(index, location, keep_seconds=0.0)
    assert first.bytes > 15 * BLOCK and first.sent > 0.9 * first.bytes  # everything is new
    one = fetch(location, cache)
    assert one.downloaded >= first.sent and _rows(one.folder) == _rows(index)

    db = sqlite3.connect(index / "keyword.sqlite")
    db.execute("UPDATE t SET body = 'changed' WHERE id = 5000")
    db.execute("INSERT INTO t (body) VALUES ('a new row')")
    db.commit()
    db.close()
    second = publish_files(index, location, keep_seconds=0.0)
    assert second.sent <= 4 * BLOCK < second.bytes / 4, "only the blocks that changed are sent"
    two = fetch(location, cache, want=second.id)
    assert two.downloaded <= 4 * BLOCK, "a replica downloads only what its snapshot lacks"
    assert _rows(two.folder) == _rows(index)
    elsewhere = fetch(location, tmp_path / "doctor-copy", want=second.id, also_held=cache)  # as the doctor does
    assert elsewhere.downloaded == 0 and _rows(elsewhere.folder) == _rows(index)

    # the first snapshot is pruned with the blocks only it listed; the current one keeps all of its own
    assert not (tmp_path / "shared" / SNAPSHOTS / first.id).exists()
    info = json.loads((tmp_path / "shared" / SNAPSHOTS / second.id / INFO).read_text())
    listed = {sha for order in info["blocks"].values() for sha in order}
    assert {n[len(BLOCKS) :] for n in location.names(BLOCKS)} == listed

    # a held copy that changed since (its server opened it) is not trusted: the blocks are downloaded
    shutil.rmtree(one.folder)  # as the replica drops the snapshot it no longer serves
    with (two.folder / "keyword.sqlite").open("r+b") as f:
        f.seek(3 * BLOCK)
        f.write(b"\0" * 100)
    db = sqlite3.connect(index / "keyword.sqlite")
    db.execute("INSERT INTO t (body) VALUES ('another row')")
    db.commit()
    db.close()
    third = publish_files(index, location, keep_seconds=0.0)
    three = fetch(location, cache, want=third.id)
    assert BLOCK <= three.downloaded <= 5 * BLOCK and _rows(three.folder) == _rows(index)


def test_a_snapshot_of_whole_files_from_an_earlier_version_is_still_fetched(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    _databases(index, rows=10)
    location = FolderLocation(tmp_path / "shared")
    snapshot = "000000000000001-abcdef"
    for name in ("keyword.sqlite", "tables.sqlite", "manifest.sqlite"):
        location.put(index / name, f"{SNAPSHOTS}{snapshot}/{name}")
    location.write(f"{SNAPSHOTS}{snapshot}/{INFO}", json.dumps({"id": snapshot, "media": None}).encode())
    location.write(CURRENT, snapshot.encode())
    fetched = fetch(location, tmp_path / "cache")
    assert fetched.id == snapshot and _rows(fetched.folder) == _rows(index)
