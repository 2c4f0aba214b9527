"""Document permissions through the product, with files this process owns (the leak test with real OS
users and groups is test_permissions_os.py): readers recorded at ingest, a chmod that only updates
metadata, fail-closed identities, the modes the front-ends refuse or report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import CountingEmbedder

from mmrag.pipeline.api import index_status, ingest, search
from mmrag.pipeline.app import open_app
from mmrag.pipeline.cli import main
from mmrag.pipeline.config import Config, PermissionsConfig
from mmrag.pipeline.filters import Filters
from mmrag.pipeline.permissions import current_user, principals_for_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the drive's files must be root's (CI runs as root)")
NOBODY_KNOWN = "mmrag-no-such-user"


@pytest.fixture
def drive() -> Iterator[Path]:
    """A folder everyone may pass through (pytest's own temporary folders are root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="mmrag-perm-", dir="/tmp"))
    top.chmod(0o755)
    (top / "open.txt").write_text("The canteen menu lists soup on Mondays.\n")
    (top / "secret.txt").write_text("The merger codename is bluefinch.\n")
    (top / "open.txt").chmod(0o644)
    (top / "secret.txt").chmod(0o600)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def on(cfg: Config) -> Config:
    return replace(cfg, permissions=PermissionsConfig(enabled=True))


def _permissions(cfg: Config) -> str:
    app = open_app(cfg, create=False, embedder=CountingEmbedder(64))
    try:
        return str(index_status(app)["permissions"])
    finally:
        app.close()


def _sources(cfg: Config, query: str, user: str, embedder: CountingEmbedder) -> set[str]:
    filters = Filters(principals=principals_for_user(user))
    return {h.chunk.source for h in search(query, cfg, 10, filters, embedder=embedder)}


def test_readers_come_from_the_file_modes_and_a_chmod_updates_them_without_embedding(drive: Path, on: Config) -> None:
    embedder = CountingEmbedder(64)
    ingest([drive], on, embedder=embedder)
    assert _sources(on, "merger codename canteen", NOBODY_KNOWN, embedder) == {"open.txt"}
    assert _sources(on, "merger codename canteen", current_user(), embedder) == {"open.txt", "secret.txt"}
    (drive / "secret.txt").chmod(0o644)
    (drive / "open.txt").chmod(0o600)
    embedder.texts = 0
    report = ingest([drive], on, embedder=embedder)
    assert sorted(report.permissions_changed) == ["open.txt", "secret.txt"] and report.ingested == []
    assert embedder.texts == 0  # nothing embedded again
    assert _sources(on, "merger codename canteen", NOBODY_KNOWN, embedder) == {"secret.txt"}
    assert ingest([drive], on, embedder=embedder).permissions_changed == []  # recorded: no change the next time


def test_an_index_made_with_permissions_off_hides_everything_until_the_next_ingest(
    drive: Path, cfg: Config, on: Config
) -> None:
    embedder = CountingEmbedder(64)
    ingest([drive], cfg, embedder=embedder)
    assert _sources(cfg, "merger canteen", NOBODY_KNOWN, embedder) == set()  # no readers recorded: fail closed
    assert "2 files have no readers recorded" in _permissions(on)
    ingest([drive], on, embedder=embedder)
    assert _sources(on, "merger canteen", NOBODY_KNOWN, embedder) == {"open.txt"}
    assert "no readers recorded" not in _permissions(on)


def test_an_unknown_user_holds_only_public() -> None:
    assert principals_for_user(NOBODY_KNOWN) == frozenset({"PUBLIC"})
    mine = principals_for_user(current_user())
    assert f"user:{current_user()}" in mine and "PUBLIC" in mine and any(p.startswith("group:") for p in mine)


def test_the_cli_searches_as_the_user_named(
    drive: Path, on: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "on.toml"
    config.write_text("[permissions]\nenabled = true\n")
    index = str(on.index_dir)
    assert main(["ingest", str(drive), "--index", index, "--config", str(config)]) == 0
    capsys.readouterr()
    base = ["search", "merger codename bluefinch", "--index", index, "--config", str(config), "--json"]
    assert main([*base, "--as", NOBODY_KNOWN]) == 0
    assert {h["source"] for h in json.loads(capsys.readouterr().out)["hits"]} == {"open.txt"}
    assert main(base) == 0  # by default: the user running it (root here)
    assert "secret.txt" in {h["source"] for h in json.loads(capsys.readouterr().out)["hits"]}
    assert main(["status", "--index", index, "--config", str(config), "--json", "--as", NOBODY_KNOWN]) == 0
    assert json.loads(capsys.readouterr().out)["files"]["ok"] == 1  # the counts of what they may read
    ask = ["ask", "What is the merger codename?", "--index", index, "--config", str(config), "--json"]
    assert main([*ask, "--as", NOBODY_KNOWN]) == 0
    out = capsys.readouterr().out
    assert "bluefinch" not in out and json.loads(out)["declined"]


def test_as_with_permissions_off_is_refused(drive: Path, cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    ingest([drive], cfg, embedder=CountingEmbedder(64))
    assert main(["search", "menu", "--index", str(cfg.index_dir), "--as", "someone"]) != 0
    assert "permissions are off" in capsys.readouterr().err


# --- the web server -------------------------------------------------------------------------------

SERVER_TOKEN = "5e1b2486c0ffee110f3c9a7d"
ROOTS_TOKEN = "a7d5e1b2486c0ffee11f3c90"  # a personal token of the account running the tests (reads all)
NOBODYS_TOKEN = "c0ffee110f3c9a7d5e1b2486"  # a personal token of a name no account has
HEADER = "X-Forwarded-User"


@pytest.fixture
def served(drive: Path, on: Config, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    from fastapi.testclient import TestClient

    from mmrag.pipeline.http.app import create_app

    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'[tokens]\n"{ROOTS_TOKEN}" = "{current_user()}"\n"{NOBODYS_TOKEN}" = "{NOBODY_KNOWN}"\n')
    cfg = replace(on, permissions=PermissionsConfig(enabled=True, tokens_file=str(tokens), trusted_header=HEADER))
    embedder = CountingEmbedder(64)
    ingest([drive], cfg, embedder=embedder)
    with TestClient(create_app(cfg, token=SERVER_TOKEN, embedder=embedder), base_url="http://127.0.0.1:8765") as c:
        yield c, drive


def _as(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def test_each_token_searches_as_its_person(served: tuple[Any, Path]) -> None:
    client, _ = served
    q = {"q": "merger codename bluefinch canteen"}
    nobody = client.get("/api/search", params=q, headers=_as(NOBODYS_TOKEN)).json()["hits"]
    assert {h["source"] for h in nobody} == {"open.txt"}
    mine = client.get("/api/search", params=q, headers=_as(ROOTS_TOKEN)).json()["hits"]
    assert {h["source"] for h in mine} == {"open.txt", "secret.txt"}
    proxied = client.get("/api/search", params=q, headers=_as(SERVER_TOKEN, **{HEADER: NOBODY_KNOWN})).json()["hits"]
    assert {h["source"] for h in proxied} == {"open.txt"}
    # the header from anyone but the proxy (which holds the server's token) names nobody
    spoofed = client.get("/api/search", params=q, headers=_as(NOBODYS_TOKEN, **{HEADER: current_user()})).json()
    assert {h["source"] for h in spoofed["hits"]} == {"open.txt"}
    assert client.get("/api/search", params=q, headers={HEADER: current_user()}).status_code == 401
    answer = client.get("/api/ask", params={"q": "What is the merger codename?"}, headers=_as(NOBODYS_TOKEN)).text
    assert "bluefinch" not in answer and "secret.txt" not in answer


def test_a_file_someone_may_not_read_is_answered_like_one_never_ingested(served: tuple[Any, Path]) -> None:
    client, drive = served
    secret = client.get("/api/file", params={"root": str(drive), "source": "secret.txt"}, headers=_as(NOBODYS_TOKEN))
    missing = client.get("/api/file", params={"root": str(drive), "source": "never.txt"}, headers=_as(NOBODYS_TOKEN))
    assert secret.status_code == missing.status_code == 404 and secret.json() == missing.json()
    preview = client.get(
        "/api/preview", params={"root": str(drive), "source": "secret.txt", "start": 0}, headers=_as(NOBODYS_TOKEN)
    )
    assert preview.status_code == 404
    mine = client.get("/api/file", params={"root": str(drive), "source": "secret.txt"}, headers=_as(ROOTS_TOKEN))
    assert mine.status_code == 200 and b"bluefinch" in mine.content


def test_media_links_carry_their_person_under_the_signature(served: tuple[Any, Path]) -> None:
    client, _ = served
    hits = client.get("/api/search", params={"q": "merger codename"}, headers=_as(ROOTS_TOKEN)).json()["hits"]
    link = next(h["file"] for h in hits if h["source"] == "secret.txt")
    assert "u=" in link and client.get(link).status_code == 200  # no header: the signature speaks
    other = link.replace(f"u={current_user()}", f"u={NOBODY_KNOWN}")
    assert client.get(other).status_code == 401  # another person's name breaks the signature


def test_counts_and_ingest_follow_the_person(served: tuple[Any, Path]) -> None:
    client, drive = served
    assert client.get("/api/status", headers=_as(NOBODYS_TOKEN)).json()["files"]["ok"] == 1
    assert client.get("/api/status", headers=_as(ROOTS_TOKEN)).json()["files"]["ok"] == 2
    body = {"paths": [str(drive)]}
    assert client.post("/api/ingest", json=body, headers=_as(ROOTS_TOKEN)).status_code == 403
    assert client.post("/api/ingest", json=body, headers=_as(SERVER_TOKEN)).status_code == 202


def test_the_web_server_needs_a_token_with_permissions_on(on: Config) -> None:
    from mmrag.pipeline.http.app import PermissionsUnsupported, create_app

    with pytest.raises(PermissionsUnsupported, match="needs an API token"):
        create_app(on)
