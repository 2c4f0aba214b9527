"""What a hostile page or client cannot do to ``mmrag serve``: rebind its name, ingest any folder, run script
from an original file, swap an indexed file for a link, send an endless body, guess the token, read the schema."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config, ServerConfig, load_config
from mmrag.pipeline.http import cli as server_cli
from mmrag.pipeline.http.app import create_app
from mmrag.pipeline.http.guards import host_of
from mmrag.pipeline.ingest_run import run_ingest
from mmrag.retrieval.embed import HashEmbedder

EMBEDDER = HashEmbedder(64)
SAMPLE_PDF = Path(__file__).resolve().parents[3] / "data" / "sample-drive" / "reports" / "multi_page.pdf"
LOCAL = "http://127.0.0.1:8765"
TOKEN = "0f3c9a7d5e1b2486c0ffee11"
PLAN = "The launch plan: ship in May.\n"
SECRET = "Password: hunter2 ".ljust(len(PLAN) - 1, "*") + "\n"  # the same size as PLAN
ROGUE_HTML = "<html><body><p>Quarterly notes</p><script>fetch('/api/search?q=salary')</script></body></html>\n"


def _drive(root: Path) -> None:
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "plan.txt").write_text(PLAN)
    (root / "notes" / "other.txt").write_text("Another note about the office move.\n")
    (root / "notes" / "touched.txt").write_text("A note whose time changes but not its words.\n")
    (root / "notes" / ".secret.txt").write_text(SECRET)  # hidden: never indexed
    (root / "pages").mkdir()
    (root / "pages" / "notes.html").write_text(ROGUE_HTML)
    shutil.copy(SAMPLE_PDF, root / "pages" / "report.pdf")


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Config, Path]:
    drive = (tmp_path / "drive").resolve()
    _drive(drive)
    cfg = load_config(index_dir=tmp_path / "index", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    index = open_app(cfg, create=True, embedder=EMBEDDER)
    try:
        report = run_ingest([drive], index)
    finally:
        index.close()
    assert sorted(report.ingested) == [
        "notes/other.txt",
        "notes/plan.txt",
        "notes/touched.txt",
        "pages/notes.html",
        "pages/report.pdf",
    ]
    return cfg, drive


@pytest.fixture
def client(indexed: tuple[Config, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(indexed[0], embedder=EMBEDDER), base_url=LOCAL) as c:
        yield c


def _file(client: TestClient, drive: Path, source: str) -> object:
    return client.get("/api/file", params={"root": str(drive), "source": source})


# --- 1. DNS rebinding and the folders ingest may take -----------------------------------------------


def test_a_rebinding_host_gets_421_and_starts_no_job(indexed: tuple[Config, Path], client: TestClient) -> None:
    drive = indexed[1]
    rebound = {"Host": "rebind.attacker.example:8765"}  # what a page on a rebound name sends
    res = client.post("/api/ingest", json={"paths": [str(drive)]}, headers=rebound)
    assert res.status_code == 421
    assert "rebind.attacker.example" in res.json()["detail"] and "--public-host" in res.json()["detail"]
    params = {"root": str(drive), "source": "notes/plan.txt"}
    assert client.get("/api/file", params=params, headers=rebound).status_code == 421
    assert client.get("/", headers=rebound).status_code == 421
    assert client.get("/api/ingest/1").status_code == 404  # no ingest job was started
    for host in ("localhost:8765", "127.0.0.1", "[::1]:8765", "LOCALHOST."):
        assert client.get("/api/status", headers={"Host": host}).status_code == 200, host


def test_a_rebinding_request_over_real_http_is_refused(
    indexed: tuple[Config, Path], live_server: Callable[[object], str]
) -> None:
    cfg, drive = indexed
    app = create_app(cfg, embedder=EMBEDDER)
    port = int(live_server(app).rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"paths": [str(drive)]})
    conn.request("POST", "/api/ingest", body, {"Host": f"evil.example:{port}", "Content-Type": "application/json"})
    res = conn.getresponse()
    assert res.status == 421 and b"evil.example" in res.read()
    conn.close()
    assert app.state.jobs.get("1") is None


def test_public_host_names_are_answered(indexed: tuple[Config, Path]) -> None:
    cfg, _ = indexed
    by_flag = create_app(cfg, embedder=EMBEDDER, public_hosts=["files.example.org"])
    with TestClient(by_flag, base_url="http://files.example.org") as named:
        assert named.get("/api/status").status_code == 200
        assert named.get("/api/status", headers={"Host": "other.example.org"}).status_code == 421
    by_config = replace(cfg, server=ServerConfig(public_hosts=("192.168.1.20",)))
    with TestClient(create_app(by_config, embedder=EMBEDDER, bind_host="10.0.0.5"), base_url=LOCAL) as lan:
        assert lan.get("/api/status", headers={"Host": "192.168.1.20:8765"}).status_code == 200
        assert lan.get("/api/status", headers={"Host": "10.0.0.5:8765"}).status_code == 200  # the bind address
        assert lan.get("/api/status", headers={"Host": "10.0.0.6:8765"}).status_code == 421


def test_host_header_forms() -> None:
    assert host_of("Example.ORG:8765") == "example.org"
    assert host_of("[::1]:8765") == "::1" and host_of("[0:0::1]") == "::1" and host_of("::1") == "::1"
    assert host_of("") == ""


def test_serve_takes_public_host_flags(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="mmrag")
    server_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--public-host", "Files.Example.org", "--public-host", "10.1.2.3"])
    started: list[Config] = []
    monkeypatch.setattr(server_cli, "serve", lambda cfg, host, port, token, watch=None: started.append(cfg))
    monkeypatch.delenv(server_cli.TOKEN_ENV, raising=False)
    assert server_cli.run(args, load_config(index_dir=Path("unused"), env={})) == 0
    assert started[0].server.public_hosts == ("files.example.org", "10.1.2.3")
    wildcard = parser.parse_args(["serve", "--host", "0.0.0.0", "--token", TOKEN])
    assert server_cli.run(wildcard, load_config(index_dir=Path("unused"), env={})) == 0
    assert "--public-host NAME" in capsys.readouterr().err  # binding everywhere, say how clients get answered
    bad = parser.parse_args(["serve", "--public-host", "http://files.example.org:8765/"])
    assert server_cli.run(bad, load_config(index_dir=Path("unused"), env={})) == 2
    assert "not a host name or address" in capsys.readouterr().err


def test_ingest_outside_the_allowed_roots_is_refused(
    indexed: tuple[Config, Path], client: TestClient, tmp_path: Path
) -> None:
    cfg, drive = indexed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.txt").write_text("not for the index")
    for path in (elsewhere, tmp_path / "no-such-folder", Path("/etc")):  # refused before it is even looked up
        res = client.post("/api/ingest", json={"paths": [str(path)]})
        assert res.status_code == 403, path
        detail = res.json()["detail"]
        assert "outside the folders this server may ingest" in detail and str(drive) in detail
        assert "[server] ingest_roots" in detail and f"mmrag ingest {path}" in detail
    (drive / "notes" / "link-out").symlink_to(elsewhere)  # a link inside the root leading out of it
    assert client.post("/api/ingest", json={"paths": [str(drive / "notes" / "link-out")]}).status_code == 403
    assert client.get("/api/ingest/1").status_code == 404  # none of them started a job
    res = client.post("/api/ingest", json={"paths": [str(drive / "pages")]})  # inside an indexed root
    assert res.status_code == 202
    _wait(client, res.json()["job"])
    configured = replace(cfg, server=ServerConfig(ingest_roots=(elsewhere,)))
    with TestClient(create_app(configured, embedder=EMBEDDER), base_url=LOCAL) as narrowed:
        assert narrowed.post("/api/ingest", json={"paths": [str(drive)]}).status_code == 403  # config replaces
        res = narrowed.post("/api/ingest", json={"paths": [str(elsewhere)]})
        assert res.status_code == 202
        _wait(narrowed, res.json()["job"])


def _wait(client: TestClient, job: str) -> None:
    deadline = time.monotonic() + 60
    while client.get(f"/api/ingest/{job}").json()["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_fresh_index_allows_no_ingest_over_http_until_told(tmp_path: Path) -> None:
    cfg = load_config(index_dir=tmp_path / "index", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    with TestClient(create_app(cfg, embedder=EMBEDDER), base_url=LOCAL) as fresh:
        res = fresh.post("/api/ingest", json={"paths": [str(tmp_path)]})
        assert res.status_code == 403 and "none yet" in res.json()["detail"]


# --- 2. originals never run script on the server's origin ---------------------------------------------


def test_an_html_original_comes_as_a_sandboxed_attachment(client: TestClient, indexed: tuple[Config, Path]) -> None:
    res = _file(client, indexed[1], "pages/notes.html")
    assert res.status_code == 200 and res.content == ROGUE_HTML.encode()  # type: ignore[attr-defined]
    headers = res.headers  # type: ignore[attr-defined]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith("attachment;") and 'filename="notes.html"' in headers[
        "content-disposition"
    ]
    csp = headers["content-security-policy"]
    assert "sandbox" in csp.split(";")[0] and "default-src 'none'" in csp


def test_viewable_originals_stay_inline_under_a_restrictive_policy(
    client: TestClient, indexed: tuple[Config, Path]
) -> None:
    pdf = _file(client, indexed[1], "pages/report.pdf").headers  # type: ignore[attr-defined]
    assert pdf["content-disposition"] == "inline" and pdf["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in pdf["content-security-policy"]
    text = _file(client, indexed[1], "notes/plan.txt").headers  # type: ignore[attr-defined]
    assert text["content-disposition"] == "inline" and text["content-security-policy"].startswith("sandbox")
    ranged = client.get(
        "/api/file", params={"root": str(indexed[1]), "source": "pages/report.pdf"}, headers={"Range": "bytes=0-9"}
    )
    assert ranged.status_code == 206 and ranged.headers["x-content-type-options"] == "nosniff"


def test_the_page_and_the_api_send_security_headers(client: TestClient) -> None:
    page = client.get("/").headers
    csp = page["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert page["x-content-type-options"] == "nosniff" and page["referrer-policy"] == "no-referrer"
    assert client.get("/static/app.js").headers["content-security-policy"] == csp
    api = client.get("/api/status").headers
    assert api["x-content-type-options"] == "nosniff" and "default-src 'none'" in api["content-security-policy"]
    missing = client.get("/api/file", params={"root": "/", "source": "etc/passwd"}).headers
    assert missing["x-content-type-options"] == "nosniff"


# --- 3. a file swapped after indexing is not served -----------------------------------------------------


def test_a_file_swapped_for_a_link_to_an_unindexed_file_is_refused(
    client: TestClient, indexed: tuple[Config, Path]
) -> None:
    drive = indexed[1]
    plan = drive / "notes" / "plan.txt"
    assert _file(client, drive, "notes/plan.txt").content == PLAN.encode()  # type: ignore[attr-defined]
    plan.unlink()
    plan.symlink_to(drive / "notes" / ".secret.txt")  # same size as the indexed file, another content
    for path in ("/api/file", "/api/preview"):
        res = client.get(path, params={"root": str(drive), "source": "notes/plan.txt", "start": 0})
        assert res.status_code == 409, path
        assert "not the file that was indexed" in res.json()["detail"] and "mmrag ingest" in res.json()["detail"]
        assert b"hunter2" not in res.content
    plan.unlink()
    plan.symlink_to(drive / "notes" / "other.txt")  # another size
    res = _file(client, drive, "notes/plan.txt")
    assert res.status_code == 409 and "bytes now" in res.json()["detail"]  # type: ignore[attr-defined]
    assert _file(client, drive, "notes/other.txt").status_code == 200  # type: ignore[attr-defined]
    touched = drive / "notes" / "touched.txt"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new time, the same words: still served
    assert _file(client, drive, "notes/touched.txt").content == touched.read_bytes()  # type: ignore[attr-defined]


# --- 4. bodies, tokens and the schema -------------------------------------------------------------------


def _chunked_until_answered(
    port: int, path: str, total: int, content_type: str, chunk: int = 64 * 1024, head: bytes = b""
) -> tuple[int, bytes, int]:
    """POSTs ``head`` and then up to ``total`` bytes as chunks and never ends the body; returns (status, body,
    bytes sent).

    The answer is read on another thread while the body is still being sent: a server that answers early
    and closes makes the kernel reset the connection, which would drop an answer not read yet.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    answer: list[tuple[int, bytes]] = []

    def read() -> None:
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer.append((response.status, response.read()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    piece = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
    try:
        if head:
            sock.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
        while sent < total and not answer:
            sock.sendall(piece)
            sent += chunk
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: what the test expects
    reader.join(30)
    sock.close()
    assert answer, "no answer from the server"
    return answer[0][0], answer[0][1], sent


def test_a_chunked_body_over_the_limit_gets_413_without_being_read(
    indexed: tuple[Config, Path], live_server: Callable[[object], str]
) -> None:
    from mmrag.pipeline.http.app import MAX_JSON_BYTES

    base = live_server(create_app(indexed[0], embedder=EMBEDDER, max_upload_bytes=1000))
    port = int(base.rsplit(":", 1)[1])
    # the body never ends: a server that reads it whole would wait for the rest and time out
    status, body, sent = _chunked_until_answered(port, "/api/ingest", MAX_JSON_BYTES + 256 * 1024, "application/json")
    assert status == 413 and b"limit" in body
    form = "multipart/form-data; boundary=never-comes"
    part = (  # a well-formed upload whose picture never ends: the parser reads on until the limit stops it
        b"--never-comes\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
        b"Content-Type: image/png\r\n\r\n"
    )
    status, body, sent = _chunked_until_answered(port, "/api/search/image", 50 * 1024 * 1024, form, head=part)
    assert status == 413 and b"limit" in body
    assert sent < 50 * 1024 * 1024  # the server stopped reading long before the 50 MB were sent
    # a declared length over the limit is refused before reading: the answer comes with no body byte sent
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        f"POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_JSON_BYTES + 1}\r\n\r\n".encode()
    )
    response = http.client.HTTPResponse(sock)
    response.begin()
    assert response.status == 413
    sock.close()


def test_a_short_or_repetitive_token_is_refused() -> None:
    for weak in ("x", "s3cret", "aaaaaaaaaaaaaaaaaaaa", "abababababababababab"):
        with pytest.raises(server_cli.TokenRequired, match="openssl rand -hex 16"):
            server_cli.check_bind("0.0.0.0", weak)
        with pytest.raises(server_cli.TokenRequired, match="weak API token"):
            server_cli.check_bind("127.0.0.1", weak)
    server_cli.check_bind("0.0.0.0", TOKEN)


def test_with_a_token_the_schema_and_docs_need_it(indexed: tuple[Config, Path]) -> None:
    with TestClient(create_app(indexed[0], token=TOKEN, embedder=EMBEDDER), base_url=LOCAL) as secured:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert secured.get(path).status_code == 401, path
        res = secured.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 200 and "/api/search" in res.json()["paths"]
    with TestClient(create_app(indexed[0], embedder=EMBEDDER), base_url=LOCAL) as local:
        assert local.get("/openapi.json").status_code == 200  # no token set: this machine only, as the API
