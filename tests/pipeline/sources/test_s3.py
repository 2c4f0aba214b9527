"""The S3 source against a real S3 API (moto's server on 127.0.0.1): listing, download, failures, and
ingest runs that follow a bucket's changes without embedding moved files again."""

# ruff: noqa: F811  (the fixtures imported from s3_server come back as the tests' parameters)

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docx
import pytest
from fakes import CountingEmbedder
from index_state import index_state
from s3_server import ACCESS_KEY, SECRET_KEY, MotoServer, client, s3_bucket, s3_server  # noqa: F401

from mmrag.pipeline.api import ingest, search
from mmrag.pipeline.config import Config, SourceConfig, load_config
from mmrag.pipeline.sources import Item, SourceError, open_source
from mmrag.pipeline.sources.s3 import S3Source

Bucket = tuple[str, str, Any]

SYNCED = ("source", "sha256", "status", "chunks", "version")  # the manifest fields a re-sync must agree on


def source_for(endpoint: str, bucket: str, prefix: str = "", name: str = "bucket") -> S3Source:
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    config = SourceConfig(name, "s3", url, username=ACCESS_KEY, password=SECRET_KEY, endpoint=endpoint)
    source = open_source(config)
    assert isinstance(source, S3Source)
    return source


def put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def dead_endpoint() -> str:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- listing -----------------------------------------------------------------------------------------


def test_lists_the_files_below_the_prefix_as_a_folder_walk_would(s3_bucket: Bucket, loopback_only: None) -> None:
    endpoint, bucket, s3 = s3_bucket
    files = {
        "docs/a.txt": b"alpha",
        "docs/reports/2025/q3 summary+final.csv": b"quarter,total\nq3,12\n",
        "docs/hr/leave.docx": b"x" * 5000,
    }
    put(s3, bucket, files)
    put(
        s3,
        bucket,
        {
            "docs/": b"",  # the prefix's own folder marker
            "docs/empty-folder/": b"",
            "docs/.env": b"SECRET=1",
            "docs/.git/config": b"[core]",
            "docs/hr/~$leave.docx": b"lock",
            "docs/hr/Thumbs.db": b"thumbs",
            "docs2/not-below-the-prefix.txt": b"no",
            "other/c.txt": b"no",
        },
    )
    source = source_for(endpoint, bucket, "docs/")
    try:
        assert source.location == f"s3://{bucket}/docs"
        items = list(source.items())
    finally:
        source.close()
    assert [i.path for i in items] == ["a.txt", "hr/leave.docx", "reports/2025/q3 summary+final.csv"]
    for item in items:
        body = files[f"docs/{item.path}"]
        assert item.size == len(body)
        assert item.version == hashlib.md5(body).hexdigest()  # a single-part upload's ETag, quotes stripped
        assert abs(item.modified - time.time()) < 300
        assert item.principals is None


def test_without_a_prefix_the_whole_bucket_is_listed_and_a_new_upload_changes_the_version(s3_bucket: Bucket) -> None:
    endpoint, bucket, s3 = s3_bucket
    put(s3, bucket, {"top.txt": b"one", "deep/er/file.md": b"# two"})
    source = source_for(endpoint, bucket)
    try:
        assert source.location == f"s3://{bucket}"
        before = {i.path: i for i in source.items()}
        put(s3, bucket, {"top.txt": b"one, edited"})
        after = {i.path: i for i in source.items()}
    finally:
        source.close()
    assert sorted(before) == ["deep/er/file.md", "top.txt"]
    assert after["top.txt"].version != before["top.txt"].version and after["top.txt"].size == 11
    assert after["deep/er/file.md"] == before["deep/er/file.md"]


def test_more_than_one_page_of_keys_is_listed(s3_bucket: Bucket) -> None:
    endpoint, bucket, s3 = s3_bucket
    keys = [f"many/{n // 100:02d}/file-{n:04d}.txt" for n in range(1100)]  # S3 pages hold 1000 keys
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=key.encode()), keys))
    source = source_for(endpoint, bucket, "many")
    try:
        paths = [i.path for i in source.items()]
    finally:
        source.close()
    assert len(paths) == 1100
    assert paths == sorted(k.removeprefix("many/") for k in keys)


# --- download ----------------------------------------------------------------------------------------


def test_fetch_writes_the_exact_bytes(s3_bucket: Bucket, tmp_path: Path) -> None:
    endpoint, bucket, s3 = s3_bucket
    body = os.urandom(3 * 1024 * 1024 + 17)  # more than one download block
    put(s3, bucket, {"media/clip.bin": body, "media/tiny.txt": b"tiny"})
    source = source_for(endpoint, bucket, "media")
    try:
        items = {i.path: i for i in source.items()}
        source.fetch(items["clip.bin"], tmp_path / "clip.bin")
        source.fetch(items["tiny.txt"], tmp_path / "tiny.txt")
    finally:
        source.close()
    assert (tmp_path / "clip.bin").read_bytes() == body
    assert (tmp_path / "tiny.txt").read_bytes() == b"tiny"


def test_an_object_deleted_after_the_listing_is_a_source_error_naming_it(s3_bucket: Bucket, tmp_path: Path) -> None:
    endpoint, bucket, s3 = s3_bucket
    put(s3, bucket, {"docs/gone.txt": b"soon gone"})
    source = source_for(endpoint, bucket, "docs", name="archive")
    try:
        [item] = list(source.items())
        s3.delete_object(Bucket=bucket, Key="docs/gone.txt")
        with pytest.raises(SourceError) as raised:
            source.fetch(item, tmp_path / "gone.txt")
    finally:
        source.close()
    assert "'archive'" in str(raised.value) and "gone.txt" in str(raised.value) and "gone" in str(raised.value)


# --- failures ----------------------------------------------------------------------------------------


def test_an_unreachable_endpoint_fails_fast_without_the_secret(tmp_path: Path) -> None:
    source = source_for(dead_endpoint(), "some-bucket", "docs", name="finance")
    started = time.monotonic()
    try:
        with pytest.raises(SourceError) as listing:
            list(source.items())
        with pytest.raises(SourceError) as reading:
            source.fetch(Item("q3.pdf", 10, "etag", 0.0), tmp_path / "q3.pdf")
    finally:
        source.close()
    assert time.monotonic() - started < 15
    for raised in (listing, reading):
        message = str(raised.value)
        assert "'finance'" in message and "is the server running" in message
        assert SECRET_KEY not in message and SECRET_KEY not in repr(raised.value.__cause__)
    assert "q3.pdf" in str(reading.value)


def test_a_server_that_stops_mid_run_gives_a_source_error(tmp_path: Path) -> None:
    server = MotoServer()
    try:
        endpoint = server.start()
        s3 = client(endpoint)
        s3.create_bucket(Bucket="shortlived")
        put(s3, "shortlived", {"a.txt": b"a"})
        source = source_for(endpoint, "shortlived", name="nas")
        [item] = list(source.items())
        server.stop()
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"'nas'.*a\.txt.*cannot reach"):
            source.fetch(item, tmp_path / "a.txt")
        assert time.monotonic() - started < 15
        source.close()
    finally:
        server.cleanup()


def test_a_missing_bucket_is_named(s3_server: str) -> None:
    source = source_for(s3_server, "no-such-bucket-here", "docs", name="media")
    try:
        with pytest.raises(SourceError, match=r"'media'.*bucket 'no-such-bucket-here' does not exist"):
            list(source.items())
    finally:
        source.close()


@pytest.mark.parametrize(
    ("url", "username", "password", "problem"),
    [
        ("https://bucket/prefix", "", "", "s3://bucket/prefix"),
        ("s3:///prefix", "", "", "s3://bucket/prefix"),
        ("s3://bucket", "AKIDONLY", "", "set both username"),
        ("s3://bucket", "", "lonely-secret", "set both username"),
    ],
)
def test_bad_settings_are_named_before_any_request(url: str, username: str, password: str, problem: str) -> None:
    config = SourceConfig("cfg", "s3", url, username=username, password=password)
    with pytest.raises(SourceError, match=problem) as raised:
        open_source(config)
    assert "'cfg'" in str(raised.value) and "lonely-secret" not in str(raised.value)


def test_a_malformed_endpoint_is_named_when_first_used() -> None:
    config = SourceConfig("lab", "s3", "s3://bucket", username="k", password=SECRET_KEY, endpoint="minio:9000")
    source = open_source(config)
    with pytest.raises(SourceError, match=r"'lab'.*Invalid endpoint: minio:9000") as raised:
        list(source.items())
    assert SECRET_KEY not in str(raised.value)


def test_importing_the_sources_does_not_import_boto3() -> None:
    code = "import sys, mmrag.pipeline.sources, mmrag.pipeline.sources.s3; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- ingest runs -------------------------------------------------------------------------------------


def leave_docx(folder: Path) -> bytes:
    document = docx.Document()
    document.add_heading("Leave policy", level=1)
    document.add_paragraph("Employees receive 27 days of annual leave, booked through the zephyrine portal.")
    document.save(str(folder / "leave.docx"))
    return (folder / "leave.docx").read_bytes()


def drive(folder: Path) -> dict[str, bytes]:
    return {
        "docs/finance/budget.txt": b"The travel budget for 2025 is 48,000 euros, signed off by the quillfeather board.\n",
        "docs/finance/rates.csv": b"city,rate\nLisbon,142\nMarrakesh,97\nTrondheim,188\n",
        "docs/hr/leave.docx": leave_docx(folder),
        "docs/notes/plan.md": b"# Roadmap\n\nShip the obsidianwick widget by December.\n",
        "docs/old/obsolete.txt": b"The fax machine protocol uses the brambleton codebook.\n",
        "outside/ignored.txt": b"Not below the prefix: the marmalith file is never indexed.\n",
    }


def config_for(tmp_path: Path, endpoint: str, bucket: str, name: str = "s3docs") -> Config:
    toml = tmp_path / "mmrag.toml"
    toml.write_text(
        f'[sources.{name}]\nkind = "s3"\nurl = "s3://{bucket}/docs"\nendpoint = "{endpoint}"\n'
        f'username = "{ACCESS_KEY}"\npassword = "{SECRET_KEY}"\n'
    )
    return load_config(config_file=toml, index_dir=tmp_path / "index", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})


def sources_of(query: str, cfg: Config, embedder: CountingEmbedder, k: int = 10) -> list[str]:
    return [h.chunk.source for h in search(query, cfg, k=k, embedder=embedder)]


class CountingS3(S3Source):
    """The real source, counting downloads: proves an unchanged item is skipped on its ETag alone."""

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.fetched: list[str] = []

    def fetch(self, item: Item, dest: Path) -> None:
        self.fetched.append(item.path)
        super().fetch(item, dest)


def test_ingest_follows_the_bucket_and_moves_without_embedding_again(s3_bucket: Bucket, tmp_path: Path) -> None:
    endpoint, bucket, s3 = s3_bucket
    put(s3, bucket, drive(tmp_path))
    cfg = config_for(tmp_path, endpoint, bucket)
    embedder = CountingEmbedder()

    first = ingest(["s3docs"], cfg, embedder=embedder)
    assert sorted(first.ingested) == [
        "s3docs:/finance/budget.txt",
        "s3docs:/finance/rates.csv",
        "s3docs:/hr/leave.docx",
        "s3docs:/notes/plan.md",
        "s3docs:/old/obsolete.txt",
    ]
    assert first.failed == [] and first.skipped == [] and first.chunks >= 5
    assert first.by_source["s3docs"]["ingested"] == 5
    assert sources_of("quillfeather board", cfg, embedder, k=1) == ["s3docs:/finance/budget.txt"]
    assert sources_of("zephyrine portal", cfg, embedder, k=1) == ["s3docs:/hr/leave.docx"]
    assert "s3docs:/outside/ignored.txt" not in sources_of("marmalith", cfg, embedder)

    put(s3, bucket, {"docs/notes/new.txt": b"The cafeteria now serves tamarillo soup on Fridays.\n"})
    put(
        s3,
        bucket,
        {"docs/finance/budget.txt": b"The travel budget for 2026 is 51,000 euros, per the quillfeather board.\n"},
    )
    for old, new in (
        ("docs/notes/plan.md", "docs/notes/roadmap.md"),
        ("docs/hr/leave.docx", "docs/policies/leave.docx"),
    ):
        s3.copy_object(Bucket=bucket, Key=new, CopySource={"Bucket": bucket, "Key": old})
        s3.delete_object(Bucket=bucket, Key=old)
    s3.delete_object(Bucket=bucket, Key="docs/old/obsolete.txt")
    embedder.seen.clear()

    second = ingest(["s3docs"], cfg, embedder=embedder)
    assert sorted(second.ingested) == ["s3docs:/finance/budget.txt", "s3docs:/notes/new.txt"]
    assert sorted(second.moved) == [
        "s3docs:/hr/leave.docx -> s3docs:/policies/leave.docx",
        "s3docs:/notes/plan.md -> s3docs:/notes/roadmap.md",
    ]
    assert second.removed == ["s3docs:/old/obsolete.txt"]
    assert second.unchanged == 1 and second.failed == []
    embedded = " ".join(embedder.seen)
    assert "tamarillo" in embedded and "51,000" in embedded
    assert "zephyrine" not in embedded and "obsidianwick" not in embedded  # moved: chunks kept, not embedded again

    assert sources_of("zephyrine portal", cfg, embedder, k=1) == ["s3docs:/policies/leave.docx"]
    assert sources_of("obsidianwick widget", cfg, embedder, k=1) == ["s3docs:/notes/roadmap.md"]
    assert sources_of("tamarillo soup", cfg, embedder, k=1) == ["s3docs:/notes/new.txt"]
    everything = search("budget board codebook fax widget leave soup", cfg, k=50, embedder=embedder)
    assert not any("brambleton" in h.chunk.text or "48,000" in h.chunk.text for h in everything)
    assert {h.chunk.source for h in everything} <= {
        "s3docs:/finance/budget.txt",
        "s3docs:/finance/rates.csv",
        "s3docs:/policies/leave.docx",
        "s3docs:/notes/roadmap.md",
        "s3docs:/notes/new.txt",
    }

    configured = cfg.source("s3docs")
    assert configured is not None
    counting = CountingS3(configured)
    embedder.texts = 0
    try:
        third = ingest([counting], cfg, embedder=embedder)
    finally:
        counting.close()
    assert third.ingested == [] and third.moved == [] and third.removed == [] and third.failed == []
    assert third.unchanged == 5 and counting.fetched == [] and embedder.texts == 0


def test_a_sync_while_the_server_is_down_changes_nothing(tmp_path: Path) -> None:
    server = MotoServer()
    try:
        endpoint = server.start()
        s3 = client(endpoint)
        s3.create_bucket(Bucket="flaky")
        put(s3, "flaky", drive(tmp_path))
        cfg = config_for(tmp_path, endpoint, "flaky", name="flaky")
        embedder = CountingEmbedder()
        first = ingest(["flaky"], cfg, embedder=embedder)
        assert len(first.ingested) == 5
        before = {q: sources_of(q, cfg, embedder, k=1) for q in ("quillfeather", "zephyrine", "brambleton")}

        server.stop()
        embedder.texts = 0
        started = time.monotonic()
        down = ingest(["flaky"], cfg, embedder=embedder)
        assert time.monotonic() - started < 30
        assert down.ingested == [] and down.removed == [] and down.moved == [] and embedder.texts == 0
        [failure] = down.failed
        assert (
            failure.file == "flaky" and "could not list" in failure.reason and "is the server running" in failure.reason
        )
        assert SECRET_KEY not in failure.reason
        assert {q: sources_of(q, cfg, embedder, k=1) for q in before} == before
        assert before["zephyrine"] == ["flaky:/hr/leave.docx"]
    finally:
        server.cleanup()


def test_a_source_that_cannot_be_listed_is_counted_as_failed_in_its_own_report(tmp_path: Path) -> None:
    cfg = config_for(tmp_path, dead_endpoint(), "any-bucket", name="offline")
    report = ingest(["offline"], cfg, embedder=CountingEmbedder())
    assert [f.file for f in report.failed] == ["offline"]
    assert report.by_source["offline"] == {
        "listed": 0,
        "ingested": 0,
        "unchanged": 0,
        "moved": 0,
        "removed": 0,
        "failed": 1,
        "skipped": 0,
        "unsupported": 0,
    }


# --- grants ------------------------------------------------------------------------------------------


def test_object_grants_are_the_items_readers_when_asked_for(s3_bucket: Bucket, tmp_path: Path) -> None:
    endpoint, bucket, s3 = s3_bucket
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"The vault word is heliotrope.\n")
    s3.put_object(Bucket=bucket, Key="open.txt", Body=b"The lobby opens at eight.\n", ACL="public-read")
    s3.put_object(
        Bucket=bucket, Key="staff.txt", Body=b"Staff parking is on level two.\n",
        GrantRead='uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers"',
    )  # fmt: skip
    owner = s3.get_object_acl(Bucket=bucket, Key="private.txt")["Owner"]
    mine = f"user:{owner['DisplayName']}" if owner.get("DisplayName") else f"s3:{owner['ID']}"

    plain = source_for(endpoint, bucket)
    assert all(i.principals is None for i in plain.items())  # not asked for: one request per object saved
    plain.close()
    config = SourceConfig("bucket", "s3", f"s3://{bucket}", ACCESS_KEY, SECRET_KEY, endpoint=endpoint, grants=True)
    granted = {i.path: i.principals for i in S3Source(config).items()}
    assert granted["private.txt"] == (mine,)
    assert granted["open.txt"] is not None and "PUBLIC" in granted["open.txt"]
    assert granted["staff.txt"] is not None and "PUBLIC" in granted["staff.txt"]

    toml = tmp_path / "mmrag.toml"
    toml.write_text(
        f'[permissions]\nenabled = true\n[sources.vault]\nkind = "s3"\nurl = "s3://{bucket}"\nendpoint = "{endpoint}"\n'
        f'username = "{ACCESS_KEY}"\npassword = "{SECRET_KEY}"\ngrants = true\n'
    )
    cfg = load_config(config_file=toml, index_dir=tmp_path / "index", env={})
    embedder = CountingEmbedder()
    ingest(["vault"], cfg, embedder=embedder)
    from mmrag.pipeline.api import Filters

    def seen(query: str, *principals: str) -> set[str]:
        hits = search(query, cfg, k=5, filters=Filters(principals=frozenset(principals)), embedder=embedder)
        return {h.chunk.source for h in hits}

    assert "vault:/private.txt" not in seen("vault word heliotrope", "PUBLIC", "user:someone")
    assert "vault:/private.txt" in seen("vault word heliotrope", "PUBLIC", mine)
    assert "vault:/open.txt" in seen("lobby opens", "PUBLIC", "user:someone")


# --- a server that goes away, a sync that is killed ------------------------------------------------


class StopsAfter(S3Source):
    """The real source, whose server is stopped right after the first item it hands over."""

    def __init__(self, config: SourceConfig, server: MotoServer) -> None:
        super().__init__(config)
        self.server = server

    def fetch(self, item: Item, dest: Path) -> None:
        super().fetch(item, dest)
        self.server.stop()


def test_a_server_that_goes_away_mid_sync_leaves_the_index_as_it_was_plus_what_completed(tmp_path: Path) -> None:
    server = MotoServer()
    try:
        endpoint = server.start()
        s3 = client(endpoint)
        s3.create_bucket(Bucket="vanishing")
        put(s3, "vanishing", drive(tmp_path))
        cfg = config_for(tmp_path, endpoint, "vanishing", name="vanishing")
        embedder = CountingEmbedder()
        ingest(["vanishing"], cfg, embedder=embedder)
        put(
            s3,
            "vanishing",
            {f"docs/new/n{i}.txt": f"New note {i} names the word larkspur{i}.\n".encode() for i in range(3)},
        )
        configured = cfg.source("vanishing")
        assert configured is not None
        source = StopsAfter(configured, server)
        try:
            report = ingest([source], cfg, embedder=embedder)
        finally:
            source.close()
        assert report.ingested == ["vanishing:/new/n0.txt"]  # what completed before the server went
        assert len(report.failed) == 2 and report.removed == []  # the others are kept for the next run
        assert sources_of("larkspur0", cfg, embedder, k=1) == ["vanishing:/new/n0.txt"]
        assert sources_of("quillfeather board", cfg, embedder, k=1) == ["vanishing:/finance/budget.txt"]
    finally:
        server.cleanup()


KILLED_SYNC = """
import sys
from pathlib import Path
from mmrag.pipeline import api
from mmrag.pipeline.config import load_config
from mmrag.retrieval.embed import HashEmbedder
cfg = load_config(config_file=Path(sys.argv[1]) / "mmrag.toml", index_dir=Path(sys.argv[2]), env={})
api.ingest(["s3docs"], cfg, embedder=HashEmbedder(64))
"""


def test_a_sync_killed_mid_run_is_finished_by_the_next_one_as_a_clean_sync_would_be(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    from dataclasses import replace

    from mmrag.pipeline import api

    endpoint, bucket, s3 = s3_bucket
    put(s3, bucket, drive(tmp_path))
    cfg = config_for(tmp_path, endpoint, bucket)
    api.ingest(["s3docs"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)
    put(
        s3,
        bucket,
        {"docs/notes/new.txt": b"The cafeteria opens at 7:45.\n", "docs/finance/budget.txt": b"Now 51,000.\n"},
    )
    s3.copy_object(
        Bucket=bucket, Key="docs/notes/roadmap.md", CopySource={"Bucket": bucket, "Key": "docs/notes/plan.md"}
    )
    s3.delete_object(Bucket=bucket, Key="docs/notes/plan.md")
    s3.delete_object(Bucket=bucket, Key="docs/old/obsolete.txt")

    done = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, str(tmp_path), str(cfg.index_dir)],
        env={**os.environ, "MMRAG_FAULT": "sync-after-item"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 137, done.stderr[-2000:]
    api.ingest(["s3docs"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)

    clean = replace(cfg, index_dir=tmp_path / "clean-index")
    api.ingest(["s3docs"], clean, embedder=CountingEmbedder(64))
    api.close(clean)
    assert index_state(cfg, SYNCED) == index_state(clean, SYNCED)


def test_a_renamed_object_is_matched_on_its_etag_without_downloading_it(s3_bucket: Bucket, tmp_path: Path) -> None:
    endpoint, bucket, s3 = s3_bucket
    put(s3, bucket, {"docs/a.txt": b"The vault word is heliotrope.\n", "docs/b.txt": b"The lobby opens at eight.\n"})
    cfg = config_for(tmp_path, endpoint, bucket)
    embedder = CountingEmbedder()
    ingest(["s3docs"], cfg, embedder=embedder)
    s3.copy_object(Bucket=bucket, Key="docs/archive/a.txt", CopySource={"Bucket": bucket, "Key": "docs/a.txt"})
    s3.delete_object(Bucket=bucket, Key="docs/a.txt")
    configured = cfg.source("s3docs")
    assert configured is not None
    counting = CountingS3(configured)
    embedder.texts = 0
    try:
        report = ingest([counting], cfg, embedder=embedder)
    finally:
        counting.close()
    assert report.moved == ["s3docs:/a.txt -> s3docs:/archive/a.txt"]
    assert counting.fetched == [] and embedder.texts == 0  # neither downloaded nor embedded
    assert sources_of("vault word heliotrope", cfg, embedder, k=1) == ["s3docs:/archive/a.txt"]
