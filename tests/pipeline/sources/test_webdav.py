"""The WebDAV source against a real wsgidav server: listing, downloads, refused and dead servers, and
syncing a WebDAV folder into an index (adds, edits, renames, moves, deletes, an outage)."""

# ruff: noqa: F811  (the fixtures imported from webdav_server come back as the tests' parameters)

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docx
import pytest
from fakes import CountingEmbedder
from index_state import index_state
from webdav4.client import Client
from webdav_server import WebDav, running_webdav, webdav_folder, webdav_server  # noqa: F401

from mmrag.pipeline.api import ingest, search
from mmrag.pipeline.config import Config, SourceConfig, load_config
from mmrag.pipeline.sources import Item, SourceError, open_source
from mmrag.pipeline.sources.webdav import WebDavSource

SYNCED = ("source", "sha256", "status", "chunks", "version")  # the manifest fields a re-sync must agree on


def source_for(dav: WebDav, password: str | None = None) -> WebDavSource:
    secret = dav.password if password is None else password
    source = open_source(SourceConfig("team", "webdav", dav.url, username=dav.username, password=secret))
    assert isinstance(source, WebDavSource)
    return source


def write(root: Path, path: str, text: str) -> Path:
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")
    return file


def test_lists_nested_folders_with_sizes_and_versions_and_skips_hidden(webdav_folder: WebDav) -> None:
    root = webdav_folder.root
    write(root, "a.txt", "alpha\n")
    write(root, "reports/q3.txt", "third quarter\n")
    write(root, "reports/2025/deep name ä#1?.txt", "nested and oddly named\n")
    for hidden in (".secret.txt", "~$draft.docx", "Thumbs.db", ".git/config", "reports/.cache/x.txt"):
        write(root, hidden, "hidden\n")
    os.utime(root / "a.txt", (1_700_000_000, 1_700_000_000))

    source = source_for(webdav_folder)
    try:
        items = list(source.items())
        assert [i.path for i in items] == ["a.txt", "reports/2025/deep name ä#1?.txt", "reports/q3.txt"]
        assert [i.size for i in items] == [(root / i.path).stat().st_size for i in items]
        assert all(i.version and i.principals is None for i in items)
        assert items[0].modified == 1_700_000_000
        assert source.location == webdav_folder.url

        before = {i.path: i.version for i in items}
        write(root, "a.txt", "alpha, edited\n")
        after = {i.path: i.version for i in source.items()}
        assert after["a.txt"] != before["a.txt"]
        assert after["reports/q3.txt"] == before["reports/q3.txt"]
    finally:
        source.close()


def test_credentials_in_the_url_are_used_and_kept_out_of_the_location(webdav_folder: WebDav) -> None:
    write(webdav_folder.root, "a.txt", "alpha\n")
    with_user = webdav_folder.url.replace("http://", f"http://{webdav_folder.username}:{webdav_folder.password}@")
    source = open_source(SourceConfig("team", "webdav", with_user + "/"))
    try:
        assert [i.path for i in source.items()] == ["a.txt"]
        assert source.location == webdav_folder.url
    finally:
        source.close()


def test_a_wrong_password_is_refused_without_showing_it(webdav_folder: WebDav) -> None:
    write(webdav_folder.root, "a.txt", "alpha\n")
    source = source_for(webdav_folder, password="wr0ng-Pa55word")
    try:
        with pytest.raises(SourceError) as refused:
            list(source.items())
        with pytest.raises(SourceError) as unreadable:
            source.fetch(Item("a.txt", 6, "x", 0.0), webdav_folder.root.parent / "out.txt")
    finally:
        source.close()
    for message in (str(refused.value), str(unreadable.value)):
        assert "'team'" in message and "access refused" in message and "username and password" in message
        assert "wr0ng-Pa55word" not in message and webdav_folder.password not in message
    assert "a.txt" in str(unreadable.value)


def test_a_missing_folder_is_reported(webdav_folder: WebDav) -> None:
    gone = SourceConfig("team", "webdav", webdav_folder.url + "/nope", username="alice", password="s3cret-pass")
    source = open_source(gone)
    try:
        with pytest.raises(SourceError, match=r"source 'team' .*/nope\): cannot list / \(not found"):
            list(source.items())
    finally:
        source.close()


def test_fetch_writes_the_exact_bytes(webdav_folder: WebDav, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several read blocks, not a multiple of one
    (webdav_folder.root / "big #1 ü.bin").write_bytes(data)
    source = source_for(webdav_folder)
    try:
        (item,) = source.items()
        assert item.size == len(data)
        source.fetch(item, tmp_path / "copy.bin")
        assert (tmp_path / "copy.bin").read_bytes() == data

        (webdav_folder.root / "big #1 ü.bin").unlink()
        with pytest.raises(SourceError, match=r"cannot read big #1 ü\.bin \(not found"):
            source.fetch(item, tmp_path / "again.bin")
    finally:
        source.close()


def test_an_unreachable_server_fails_in_seconds() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    source = open_source(SourceConfig("team", "webdav", f"http://127.0.0.1:{port}/files", password="s3cret-pass"))
    started = time.monotonic()
    try:
        with pytest.raises(SourceError) as failed:
            list(source.items())
    finally:
        source.close()
    assert time.monotonic() - started < 15
    message = str(failed.value)
    assert message.startswith(f"source 'team' (http://127.0.0.1:{port}/files): cannot list /")
    assert "cannot connect" in message and "s3cret-pass" not in message


def test_a_server_that_stops_answering_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/files"
        source = WebDavSource(SourceConfig("team", "webdav", url), read_seconds=1)
        started = time.monotonic()
        try:
            with pytest.raises(SourceError, match="stopped answering"):
                list(source.items())
        finally:
            source.close()
    assert time.monotonic() - started < 15


ELSEWHERE = (
    b'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">'
    b"<d:response><d:href>/other/files/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/>"
    b"</d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    b"</d:multistatus>"
)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (ELSEWHERE, "does not name the folder asked for"),  # a proxy rewriting paths: not "no files"
        (b"<html>maintenance</html", "not valid WebDAV XML"),
    ],
)
def test_a_listing_that_cannot_be_trusted_is_an_error_not_an_empty_folder(body: bytes, problem: str) -> None:
    class Canned(BaseHTTPRequestHandler):
        def do_PROPFIND(self) -> None:
            self.send_response(207)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = open_source(SourceConfig("team", "webdav", f"http://127.0.0.1:{server.server_port}/files"))
    try:
        with pytest.raises(SourceError, match=f"source 'team' .*: cannot list / \\(.*{problem}"):
            list(source.items())
    finally:
        source.close()
        server.shutdown()
        server.server_close()


# --- syncing into an index ----------------------------------------------------------------------------


def make_config(tmp_path: Path, dav: WebDav) -> Config:
    toml = tmp_path / "mmrag.toml"
    toml.write_text(
        f'[sources.team]\nkind = "webdav"\nurl = "{dav.url}"\n'
        f'username = "{dav.username}"\npassword = "{dav.password}"\n',
        encoding="utf-8",
    )
    return load_config(config_file=toml, index_dir=tmp_path / "index", env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})


def make_drive(root: Path) -> None:
    write(root, "notes/budget.txt", "The travel budget for 2025 is 48,000 euros, codeword zanzibarquartz.\n")
    write(root, "notes/keep.txt", "Meeting notes about the orchard, nothing changes here.\n")
    write(root, "notes/plan.md", "# Roadmap\n\nShip the periwinklebolt widget by December.\n")
    write(root, "data/prices.csv", "item,price\nglimmerkettle,12\nteapot,30\n")
    document = docx.Document()
    document.add_heading("Leave policy", level=1)
    document.add_paragraph("Employees receive 27 days of annual leave, says the fennimore rule.")
    (root / "hr").mkdir()
    document.save(str(root / "hr" / "leave.docx"))


def sources_of(query: str, cfg: Config, embedder: CountingEmbedder) -> list[str]:
    return [hit.chunk.source for hit in search(query, cfg, k=10, embedder=embedder)]


class CountingFetches(WebDavSource):
    """The real source, counting the items it downloads."""

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self.fetched: list[str] = []

    def fetch(self, item: Item, dest: Path) -> None:
        self.fetched.append(item.path)
        super().fetch(item, dest)


def test_a_webdav_folder_syncs_into_the_index(webdav_folder: WebDav, tmp_path: Path) -> None:
    root = webdav_folder.root
    make_drive(root)
    cfg = make_config(tmp_path, webdav_folder)
    embedder = CountingEmbedder()

    first = ingest(["team"], cfg, embedder=embedder)
    assert sorted(first.ingested) == [
        "team:/data/prices.csv",
        "team:/hr/leave.docx",
        "team:/notes/budget.txt",
        "team:/notes/keep.txt",
        "team:/notes/plan.md",
    ]
    assert first.failed == [] and first.skipped == [] and first.by_source["team"]["listed"] == 5
    (hit,) = search("zanzibarquartz", cfg, k=1, embedder=embedder)
    assert hit.chunk.source == "team:/notes/budget.txt" and hit.root == webdav_folder.url
    assert "team:/hr/leave.docx" in sources_of("fennimore annual leave", cfg, embedder)

    # Through WebDAV where the server does the work (MOVE, DELETE), on disk where an editor would.
    client = Client(webdav_folder.url, auth=(webdav_folder.username, webdav_folder.password))
    try:
        write(root, "notes/new.txt", "A new memo about the quokkaline project.\n")
        write(root, "notes/budget.txt", "The travel budget for 2026 is 51,000 euros, codeword marmotfjord now.\n")
        client.move("data/prices.csv", "data/prices-2025.csv")
        client.mkdir("archive")
        client.move("hr/leave.docx", "archive/leave.docx")
        client.remove("notes/plan.md")
    finally:
        client.http.close()
    embedder.seen.clear()

    second = ingest(["team"], cfg, embedder=embedder)
    assert sorted(second.ingested) == ["team:/notes/budget.txt", "team:/notes/new.txt"]
    assert sorted(second.moved) == [
        "team:/data/prices.csv -> team:/data/prices-2025.csv",
        "team:/hr/leave.docx -> team:/archive/leave.docx",
    ]
    assert second.removed == ["team:/notes/plan.md"]
    assert second.unchanged == 1 and second.failed == []
    assert second.by_source["team"] == {
        "listed": 5,
        "ingested": 2,
        "unchanged": 1,
        "moved": 2,
        "removed": 1,
        "failed": 0,
        "skipped": 0,
        "unsupported": 0,
    }
    embedded = " ".join(embedder.seen)
    assert "quokkaline" in embedded and "marmotfjord" in embedded
    assert "fennimore" not in embedded and "glimmerkettle" not in embedded  # moved, not embedded again

    assert sources_of("quokkaline memo", cfg, embedder)[0] == "team:/notes/new.txt"
    assert "team:/archive/leave.docx" in sources_of("fennimore annual leave", cfg, embedder)
    assert "team:/data/prices-2025.csv" in sources_of("glimmerkettle price", cfg, embedder)
    every = {
        s for q in ("fennimore", "glimmerkettle", "periwinklebolt", "budget") for s in sources_of(q, cfg, embedder)
    }
    assert not every & {"team:/hr/leave.docx", "team:/data/prices.csv", "team:/notes/plan.md"}
    assert not any("zanzibarquartz" in h.chunk.text for h in search("zanzibarquartz", cfg, k=10, embedder=embedder))

    # Nothing changed: every item is settled on its version token, not a byte downloaded.
    counting = CountingFetches(cfg.source("team") or pytest.fail("no [sources.team]"))
    embedder.texts = 0
    try:
        third = ingest([counting], cfg, embedder=embedder)
    finally:
        counting.close()
    assert third.unchanged == 5 and third.ingested == [] and third.moved == [] and third.removed == []
    assert counting.fetched == [] and embedder.texts == 0


class DeletesAfterListing(WebDavSource):
    """Lists, then has one file deleted on the server before it is downloaded."""

    def __init__(self, config: SourceConfig, victim: Path) -> None:
        super().__init__(config)
        self.victim = victim

    def items(self) -> Iterator[Item]:
        listed = list(super().items())
        self.victim.unlink()
        yield from listed


def test_an_item_gone_before_its_download_is_retried_not_removed(webdav_folder: WebDav, tmp_path: Path) -> None:
    make_drive(webdav_folder.root)
    cfg = make_config(tmp_path, webdav_folder)
    embedder = CountingEmbedder()
    ingest(["team"], cfg, embedder=embedder)
    budget = write(webdav_folder.root, "notes/budget.txt", "Budget revised: 52,000 euros, codeword ottervane.\n")

    racing = DeletesAfterListing(cfg.source("team") or pytest.fail("no [sources.team]"), budget)
    try:
        report = ingest([racing], cfg, embedder=embedder)
    finally:
        racing.close()
    (failure,) = report.failed
    assert failure.file == "team:/notes/budget.txt" and "not found" in failure.reason
    assert report.removed == [] and report.unchanged == 4
    assert "team:/notes/budget.txt" in sources_of("zanzibarquartz", cfg, embedder)  # the old text stays

    assert ingest(["team"], cfg, embedder=embedder).removed == ["team:/notes/budget.txt"]


def test_a_server_that_went_down_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    with running_webdav() as server:
        dav = server.folder("drive")
        make_drive(dav.root)
        cfg = make_config(tmp_path, dav)
        embedder = CountingEmbedder()
        assert len(ingest(["team"], cfg, embedder=embedder).ingested) == 5
        server.stop()

        started = time.monotonic()
        report = ingest(["team"], cfg, embedder=embedder)
        assert time.monotonic() - started < 15
    (failure,) = report.failed
    assert failure.file == "team" and "could not list the source" in failure.reason
    assert "cannot connect" in failure.reason and dav.password not in failure.reason
    assert report.removed == [] and report.ingested == [] and report.by_source["team"]["listed"] == 0
    assert sources_of("zanzibarquartz", cfg, embedder)[0] == "team:/notes/budget.txt"
    assert "team:/hr/leave.docx" in sources_of("fennimore annual leave", cfg, embedder)


# --- a server that goes away, a sync that is killed ---------------------------------------------------


class StopsAfter(WebDavSource):
    """The real source, whose server is stopped right after the first item it hands over."""

    def __init__(self, config: SourceConfig, server: WebDav) -> None:
        super().__init__(config)
        self.server = server
        self.fetched: list[str] = []

    def fetch(self, item: Item, dest: Path) -> None:
        self.fetched.append(item.path)
        super().fetch(item, dest)
        self.server.stop()


def test_a_server_that_goes_away_mid_sync_leaves_the_index_as_it_was_plus_what_completed(tmp_path: Path) -> None:
    with running_webdav() as server:  # its own server: stopping it must not take the session's down
        dav = server.folder("drive")
        make_drive(dav.root)
        cfg = make_config(tmp_path, dav)
        embedder = CountingEmbedder()
        assert len(ingest(["team"], cfg, embedder=embedder).ingested) == 5
        for i in range(3):
            write(dav.root, f"new/n{i}.txt", f"New note {i} names the word larkspur{i}.\n")
        write(dav.root, "notes/budget.txt", "The travel budget for 2026 is 51,000 euros, codeword marmotfjord now.\n")

        source = StopsAfter(cfg.source("team") or pytest.fail("no [sources.team]"), server)
        try:
            started = time.monotonic()
            report = ingest([source], cfg, embedder=embedder)
            assert time.monotonic() - started < 15
        finally:
            source.close()
        assert server.process.poll() is not None  # it did go away mid-sync
    assert source.fetched == ["new/n0.txt", "new/n1.txt", "new/n2.txt", "notes/budget.txt"]
    assert report.ingested == ["team:/new/n0.txt"]  # what completed before the server went
    assert [f.file for f in report.failed] == ["team:/new/n1.txt", "team:/new/n2.txt", "team:/notes/budget.txt"]
    assert all("cannot connect" in f.reason and dav.password not in f.reason for f in report.failed)
    assert report.removed == [] and report.moved == [] and report.unchanged == 4  # the rest kept for the next run
    assert sources_of("larkspur0", cfg, embedder)[0] == "team:/new/n0.txt"
    assert not {"team:/new/n1.txt", "team:/new/n2.txt"} & set(sources_of("larkspur1 larkspur2", cfg, embedder))
    assert sources_of("zanzibarquartz", cfg, embedder)[0] == "team:/notes/budget.txt"  # the old text stays
    assert not any("marmotfjord" in h.chunk.text for h in search("marmotfjord", cfg, k=10, embedder=embedder))
    assert "team:/hr/leave.docx" in sources_of("fennimore annual leave", cfg, embedder)
    assert "team:/notes/plan.md" in sources_of("periwinklebolt widget", cfg, embedder)
    assert "team:/data/prices.csv" in sources_of("glimmerkettle price", cfg, embedder)


KILLED_SYNC = """
import sys
from pathlib import Path
from mmrag.pipeline import api
from mmrag.pipeline.config import load_config
from mmrag.retrieval.embed import HashEmbedder
cfg = load_config(config_file=Path(sys.argv[1]) / "mmrag.toml", index_dir=Path(sys.argv[2]), env={})
api.ingest(["team"], cfg, embedder=HashEmbedder(64))
"""


def test_a_sync_killed_mid_run_is_finished_by_the_next_one_as_a_clean_sync_would_be(
    webdav_folder: WebDav, tmp_path: Path
) -> None:
    from dataclasses import replace

    from mmrag.pipeline import api

    root = webdav_folder.root
    make_drive(root)
    cfg = make_config(tmp_path, webdav_folder)
    api.ingest(["team"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)
    # data/prices.csv is listed first: the killed run writes its new text, then dies before the rest.
    write(root, "data/prices.csv", "item,price\nglimmerkettle,14\nteapot,33\nsugar bowl,9\n")  # another size
    write(root, "notes/new.txt", "A new memo about the quokkaline project.\n")
    client = Client(webdav_folder.url, auth=(webdav_folder.username, webdav_folder.password))
    try:
        client.move("notes/plan.md", "notes/roadmap.md")  # same bytes, a new name
        client.remove("notes/keep.txt")
    finally:
        client.http.close()

    done = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, str(tmp_path), str(cfg.index_dir)],
        env={**os.environ, "MMRAG_FAULT": "sync-after-item"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 137, done.stderr[-2000:]
    killed = index_state(cfg, SYNCED)
    finished = api.ingest(["team"], cfg, embedder=CountingEmbedder(64))
    api.close(cfg)
    assert finished.failed == [] and finished.removed == ["team:/notes/keep.txt"]
    assert finished.moved == ["team:/notes/plan.md -> team:/notes/roadmap.md"]

    clean = replace(cfg, index_dir=tmp_path / "clean-index")
    api.ingest(["team"], clean, embedder=CountingEmbedder(64))
    api.close(clean)
    assert index_state(cfg, SYNCED) == index_state(clean, SYNCED)
    assert killed != index_state(clean, SYNCED)  # the kill left work undone that the next sync did
