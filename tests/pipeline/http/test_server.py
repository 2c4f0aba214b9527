"""The HTTP API over a small real index: search, streamed ask, ingest jobs, previews, ranges, tokens, traversal."""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from mmrag.ingest.formats import images as images_module
from mmrag.ingest.formats.images import ImageLabeler
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config, ServerConfig, load_config
from mmrag.pipeline.http import cli as server
from mmrag.pipeline.http.app import create_app
from mmrag.pipeline.http.cli import check_bind
from mmrag.pipeline.http.files import BadRange, ByteRange, parse_range
from mmrag.pipeline.ingest_run import run_ingest
from mmrag.retrieval.embed import HashEmbedder

SAMPLE_PDF = Path(__file__).resolve().parents[3] / "data" / "sample-drive" / "reports" / "multi_page.pdf"
EMBEDDER = HashEmbedder(128)  # the index is built with it, so the app must search with it
TOKEN = "s3cret-token-4f9a2c7e"
LOCAL = "http://127.0.0.1:8765"  # the Host the TestClient sends: the server answers only to its own names


def _local(app: object) -> TestClient:
    return TestClient(app, base_url=LOCAL)  # type: ignore[arg-type]


def _drive(root: Path) -> None:
    (root / "finance").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "finance" / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    (root / "finance" / "escape.txt").write_text("A file later swapped for a symlink that leaves the root.\n")
    with (root / "finance" / "teams.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["team", "city", "cups"])
        for i in range(1, 11):
            writer.writerow([f"team{i}", f"city{i}", str(i)])
    shutil.copy(SAMPLE_PDF, root / "reports" / "word-processors.pdf")
    from pptx import Presentation

    deck = Presentation()
    for title, body in (("Kick-off", "Agenda and team"), ("Quarterly revenue", "Revenue grew 12% in Q3")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(root / "reports" / "review.pptx"))
    image = Image.new("RGB", (320, 200), (30, 120, 200))
    ImageDraw.Draw(image).rectangle((40, 40, 200, 150), fill=(240, 200, 20))
    image.save(root / "reports" / "blue-chart.png")


@pytest.fixture(scope="module")
def no_labeler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fast tests do not load the ImageNet labeler even where its package is installed."""
    missing = ImageLabeler(weights=tmp_path_factory.mktemp("nolabels") / "no-such-weights.pth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(images_module, "image_labeler", lambda: missing)
        yield


def _config(home: Path, ingest_roots: tuple[Path, ...] = ()) -> Config:
    cfg = load_config(index_dir=home / "index", env={"XDG_CONFIG_HOME": str(home / "config")})
    return replace(cfg, server=ServerConfig(ingest_roots=ingest_roots))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, no_labeler: None) -> tuple[Config, Path]:
    drive = tmp_path_factory.mktemp("drive")
    _drive(drive)
    cfg = _config(tmp_path_factory.mktemp("home"))
    index = open_app(cfg, create=True, embedder=EMBEDDER)
    try:
        report = run_ingest([drive], index)
    finally:
        index.close()
    assert report.skipped == [], report.skipped
    assert len(report.ingested) == 6
    return cfg, drive.resolve()


@pytest.fixture(scope="module")
def client(built: tuple[Config, Path]) -> Iterator[TestClient]:
    with _local(create_app(built[0], embedder=EMBEDDER)) as c:
        yield c


@pytest.fixture(scope="module")
def root(built: tuple[Config, Path]) -> str:
    return str(built[1])


def _events(body: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


# --- search, ask, status -------------------------------------------------------------------------


def test_search_returns_hits_with_locators_and_preview_urls(client: TestClient, root: str) -> None:
    res = client.get("/api/search", params={"q": "travel budget 2025", "k": 5})
    assert res.status_code == 200
    hits = res.json()["hits"]
    assert hits[0]["source"] == "finance/budget.txt"
    assert set(hits[0]) >= {
        "source",
        "modality",
        "locator",
        "cite",
        "score",
        "text",
        "title",
        "root",
        "preview",
        "file",
    }
    assert hits[0]["root"] == root
    assert hits[0]["file"].startswith("/api/file?")
    pdf_hits = client.get("/api/search", params={"q": "word processors", "folder": "reports"}).json()["hits"]
    assert pdf_hits and all(h["source"].startswith("reports/") for h in pdf_hits)
    page_hit = next(h for h in pdf_hits if "page" in h["locator"])
    assert f"page={page_hit['locator']['page']}" in page_hit["preview"]


def test_search_filters_by_modality_and_rejects_unknown_ones(client: TestClient) -> None:
    hits = client.get("/api/search", params={"q": "team city cups", "modality": "table"}).json()["hits"]
    assert hits and {h["modality"] for h in hits} == {"table"}
    res = client.get("/api/search", params={"q": "x", "modality": "smell"})
    assert res.status_code == 400 and "unknown modality" in res.json()["detail"]


def test_search_takes_the_same_filters_as_the_cli(client: TestClient) -> None:
    both = client.get("/api/search", params={"q": "budget travel revenue", "k": 20}).json()["hits"]
    assert {h["source"] for h in both} >= {"finance/budget.txt", "reports/review.pptx"}
    pptx = client.get("/api/search", params={"q": "budget travel revenue", "glob": "*.pptx"}).json()["hits"]
    assert pptx and {h["source"] for h in pptx} == {"reports/review.pptx"}
    future = client.get("/api/search", params={"q": "budget", "after": "2999-01-01"}).json()["hits"]
    assert future == []
    past = client.get("/api/search", params={"q": "budget", "before": "1990-01-01", "type": "txt"}).json()["hits"]
    assert past == []
    bad = client.get("/api/search", params={"q": "budget", "after": "yesterday"})
    assert bad.status_code == 400 and "after takes a date like 2024-01-31" in bad.json()["detail"]
    asked = client.get("/api/ask", params={"q": "What is the travel budget?", "glob": "*.pptx"})
    assert "48,000" not in asked.text  # the filter reached the answer's search too


def test_ask_streams_tokens_then_the_answer_with_citations(client: TestClient) -> None:
    res = client.get("/api/ask", params={"q": "What is the travel budget for 2025?"})
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/event-stream")
    events = _events(res.text)
    names = [name for name, _ in events]
    assert names[0] == "token" and names[-1] == "answer"
    answer = events[-1][1]
    streamed = "".join(str(data["text"]) for name, data in events if name == "token")
    assert streamed == answer["answer"]
    assert "48,000" in str(answer["answer"]) and "[1]" in str(answer["answer"])
    # what the page's warning reads (test_browser): the check's findings; an extractive answer has none
    assert (answer["flagged"], answer["removed_citations"], answer["strict"]) == ([], [], False)
    citation = answer["citations"][0]  # type: ignore[index]
    assert citation["source"] == "finance/budget.txt" and citation["n"] == 1
    assert citation["file"].startswith("/api/file?") and "thumbnail" not in citation


def test_status_reports_chunks_roots_and_layout(client: TestClient, root: str) -> None:
    data = client.get("/api/status").json()
    assert data["ready"] is True and data["chunks"] > 0
    assert data["roots"] == [root]
    assert data["files"]["ok"] == 6 and data["layout"]


def test_openapi_schema_lists_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/search",
        "/api/search/image",
        "/api/ask",
        "/api/ingest",
        "/api/status",
        "/api/preview",
        "/api/file",
    } <= set(paths)


def test_page_and_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/..%2Fserver.py").status_code == 404


# --- previews --------------------------------------------------------------------------------------


def test_preview_renders_a_pdf_page_as_png(client: TestClient, root: str) -> None:
    res = client.get("/api/preview", params={"root": root, "source": "reports/word-processors.pdf", "page": 2})
    assert res.status_code == 200 and res.headers["content-type"] == "image/png"
    assert res.content.startswith(b"\x89PNG")
    missing = client.get("/api/preview", params={"root": root, "source": "reports/word-processors.pdf", "page": 99})
    assert missing.status_code == 404 and "page 99" in missing.json()["detail"]


def test_preview_shows_the_stored_image_thumbnail(client: TestClient, root: str) -> None:
    hits = client.get("/api/search", params={"q": "blue chart", "modality": "image"}).json()["hits"]
    hit = next(h for h in hits if h["source"] == "reports/blue-chart.png")
    res = client.get(hit["preview"])
    assert res.status_code == 200 and res.headers["content-type"].startswith("image/")
    escape = client.get("/api/preview", params={"root": root, "source": hit["source"], "image": "../manifest.sqlite"})
    assert escape.status_code == 403


def test_preview_returns_a_tables_cited_rows(client: TestClient, root: str) -> None:
    res = client.get("/api/preview", params={"root": root, "source": "finance/teams.csv", "rows": "3-4"})
    assert res.status_code == 200
    table = res.json()["tables"][0]
    assert table["headers"] == ["row", "team", "city", "cups"]
    assert [r[1] for r in table["rows"]] == ["team3", "team4"]


def test_preview_of_a_slide_is_its_picture_rendered_on_first_view(
    client: TestClient, built: tuple[Config, Path], root: str
) -> None:
    from mmrag.ingest.engines.slide_render import find_office

    hits = client.get("/api/search", params={"q": "quarterly revenue grew", "folder": "reports"}).json()["hits"]
    hit = next(h for h in hits if h["source"] == "reports/review.pptx" and h["locator"] == {"slide": 2})
    # no image-text encoder: ingest did not run LibreOffice; the preview asks for the slide itself
    assert "image=" not in hit["preview"] and "slide=2" in hit["preview"]
    if not find_office():
        if os.environ.get("CI"):
            pytest.fail("LibreOffice is missing in CI: ./bootstrap.sh test installs libreoffice-impress-nogui")
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-impress-nogui)")
    first = client.get(hit["preview"])
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(first.content)).size) == 960
    made = {p: p.stat().st_mtime_ns for p in (built[0].index_dir / "media").rglob("*.jpg")}
    again = client.get("/api/preview", params={"root": root, "source": "reports/review.pptx", "slide": 1})
    assert again.status_code == 200 and again.headers["content-type"] == "image/jpeg"
    assert again.content != first.content  # another slide's picture, from the same one rendering
    assert {p: p.stat().st_mtime_ns for p in made} == made  # served from the media folder, not rendered again


def test_preview_of_a_slide_without_libreoffice_is_its_text(built: tuple[Config, Path], root: str) -> None:
    from mmrag.ingest.engines.slide_render import slide_pictures_folder

    cfg = replace(built[0], models=replace(built[0].models, slide_renderer="none"))
    # pictures stored by an earlier preview would be served: this test wants none
    shutil.rmtree(slide_pictures_folder(cfg.index_dir / "media", root, "reports/review.pptx"), ignore_errors=True)
    with _local(create_app(cfg, embedder=EMBEDDER)) as plain:
        res = plain.get("/api/preview", params={"root": root, "source": "reports/review.pptx", "slide": 2})
    data = res.json()
    assert data["kind"] == "slide" and data["slide"] == 2
    assert "Revenue grew 12% in Q3" in data["text"] and "Kick-off" not in data["text"]
    assert data["image"] is None and "LibreOffice" in data["note"] and "not installed" in data["note"]


def test_register_adds_the_serve_command() -> None:
    parser = argparse.ArgumentParser(prog="mmrag")
    server.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "9000", "--token", TOKEN])
    assert (args.command, args.host, args.port, args.token) == ("serve", "0.0.0.0", 9000, TOKEN)
    defaults = parser.parse_args(["serve"])
    assert (defaults.host, defaults.port, defaults.token) == ("127.0.0.1", server.DEFAULT_PORT, None)


# --- the original file, with ranges ----------------------------------------------------------------


def test_file_range_requests(client: TestClient, root: str) -> None:
    whole = SAMPLE_PDF.read_bytes()
    size = len(whole)
    params = {"root": root, "source": "reports/word-processors.pdf"}
    full = client.get("/api/file", params=params)
    assert full.status_code == 200 and full.content == whole
    assert full.headers["accept-ranges"] == "bytes" and full.headers["content-type"] == "application/pdf"
    cases = {"bytes=0-9": (0, 9), "bytes=100-199": (100, 199), "bytes=-100": (size - 100, size - 1)}
    cases[f"bytes={size - 5}-"] = (size - 5, size - 1)
    for header, (first, last) in cases.items():
        res = client.get("/api/file", params=params, headers={"Range": header})
        assert res.status_code == 206, header
        assert res.content == whole[first : last + 1], header
        assert res.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert res.headers["content-length"] == str(last - first + 1)
    for bad in (f"bytes={size}-", "bytes=50-10", "bytes=abc", "items=0-1", "bytes=0-1,5-6", "bytes=-0"):
        res = client.get("/api/file", params=params, headers={"Range": bad})
        assert res.status_code == 416, bad
        assert res.headers["content-range"] == f"bytes */{size}"


def test_parse_range_clamps_an_end_past_the_file() -> None:
    assert parse_range("bytes=5-1000", 10) == ByteRange(5, 9)
    assert parse_range("bytes=-50", 10) == ByteRange(0, 9)
    with pytest.raises(BadRange):
        parse_range("bytes=-", 10)


# --- what is never served --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("../etc/passwd", 403),
        ("finance/../../etc/passwd", 403),
        ("/etc/passwd", 403),
        ("./finance/budget.txt", 403),
        ("finance\\..\\..\\etc\\passwd", 403),
        ("finance/missing.txt", 404),
        ("%2e%2e%2fetc%2fpasswd", 404),  # double-encoded: arrives as a literal name, not in the manifest
    ],
)
def test_traversal_attempts_are_rejected(client: TestClient, root: str, source: str, status: int) -> None:
    for path in ("/api/file", "/api/preview"):
        res = client.get(path, params={"root": root, "source": source, "page": 1})
        assert res.status_code == status, (path, source)
        assert res.json()["detail"]


def test_url_encoded_traversal_is_rejected(client: TestClient, root: str) -> None:
    raw = f"/api/file?root={quote(root, safe='')}&source=%2e%2e%2f%2e%2e%2fetc%2fpasswd"
    res = client.get(raw)
    assert res.status_code == 403 and ".." in res.json()["detail"]


def test_roots_that_were_never_ingested_are_not_served(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("not indexed")
    for root, source in ((str(tmp_path), "secret.txt"), ("/", "etc/passwd"), ("etc", "passwd")):
        res = client.get("/api/file", params={"root": root, "source": source})
        assert res.status_code in (400, 404), (root, source)


def test_a_symlink_leaving_the_root_is_refused(client: TestClient, root: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("private data outside the ingested folder")
    ingested = Path(root) / "finance" / "escape.txt"
    ingested.unlink()
    ingested.symlink_to(outside)
    res = client.get("/api/file", params={"root": root, "source": "finance/escape.txt"})
    assert res.status_code == 403 and "outside" in res.json()["detail"]
    assert b"private" not in res.content


# --- query by image and upload limits ----------------------------------------------------------------


def test_search_by_uploaded_image(client: TestClient) -> None:
    image = Image.new("RGB", (64, 48), (30, 120, 200))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    res = client.post("/api/search/image", files={"image": ("blue-chart.png", buf.getvalue(), "image/png")})
    assert res.status_code == 200, res.text
    data = res.json()
    assert "blue" in data["description"] and "chart" in data["description"]
    assert any(h["source"] == "reports/blue-chart.png" for h in data["hits"])


def test_uploads_over_the_limit_get_413(built: tuple[Config, Path]) -> None:
    with _local(create_app(built[0], embedder=EMBEDDER, max_upload_bytes=1000)) as small:
        res = small.post("/api/search/image", files={"image": ("big.png", b"\0" * 200_000, "image/png")})
        assert res.status_code == 413 and "limit" in res.json()["detail"]
        res = small.post("/api/search/image", files={"image": ("big.png", b"\0" * 5000, "image/png")})
        assert res.status_code == 413  # under the declared-length slack, caught while reading the upload
        res = small.post("/api/search/image", files={"image": ("junk.png", b"not an image", "image/png")})
        assert res.status_code == 400 and "junk.png" in res.json()["detail"]


# --- the token rule ------------------------------------------------------------------------------------


def test_a_non_local_bind_needs_a_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(server.TokenRequired, match="--token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", TOKEN)
    for host in ("127.0.0.1", "::1", "localhost"):
        check_bind(host, None)
    monkeypatch.delenv(server.TOKEN_ENV, raising=False)
    args = argparse.Namespace(host="0.0.0.0", port=0, token=None)
    assert server.run(args, load_config(index_dir=Path("unused"), env={})) == 1
    assert "without an API token" in capsys.readouterr().err


def test_with_a_token_every_api_request_needs_it(built: tuple[Config, Path]) -> None:
    with _local(create_app(built[0], token=TOKEN, embedder=EMBEDDER)) as secured:
        assert secured.get("/api/status").status_code == 401
        assert secured.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert secured.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert secured.post("/api/ingest", json={"paths": ["/"]}).status_code == 401
        assert secured.get("/").status_code == 200  # the page holds no data; it takes the token from ?token=


def test_with_a_token_media_urls_come_signed_and_stream_without_the_header(built: tuple[Config, Path]) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _local(create_app(built[0], token=TOKEN, embedder=EMBEDDER)) as secured:
        hits = secured.get("/api/search", params={"q": "word processors", "folder": "reports"}, headers=auth).json()
        hit = next(h for h in hits["hits"] if h["source"] == "reports/word-processors.pdf")
        assert "sig=" in hit["file"] and "exp=" in hit["file"] and "sig=" in hit["preview"]
        whole = SAMPLE_PDF.read_bytes()
        # an <video>/<img> element sends no header: the signed URL alone works, with Range requests
        part = secured.get(hit["file"], headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == whole[:10]
        assert secured.get(hit["preview"]).status_code == 200
        # the signature covers exactly that URL: another file, a changed expiry or another endpoint fails
        other = hit["file"].replace("word-processors.pdf", "budget.md")
        assert secured.get(other).status_code == 401
        exp = next(p for p in hit["file"].split("&") if p.startswith("exp="))
        assert secured.get(hit["file"].replace(exp, f"exp={int(exp[4:]) + 3600}")).status_code == 401
        query = hit["file"].split("?", 1)[1]
        assert secured.get("/api/status?" + query).status_code == 401
        assert secured.post(hit["file"]).status_code in (401, 405)


def test_signed_links_expire() -> None:
    from mmrag.pipeline.http.links import signed_ok, signer

    now = 1_000_000.0
    url = signer(TOKEN, lifetime_s=60, clock=lambda: now)("/api/file?root=%2Fd&source=a.mp4")
    path, query = url.split("?", 1)
    params = [tuple(p.split("=", 1)) for p in query.split("&")]
    from urllib.parse import unquote

    params = [(k, unquote(v)) for k, v in params]
    assert signed_ok(TOKEN, "GET", path, params, clock=lambda: now + 59)
    assert not signed_ok(TOKEN, "GET", path, params, clock=lambda: now + 61)
    assert not signed_ok("another-token", "GET", path, params, clock=lambda: now)
    assert signer(TOKEN)("/api/status") == "/api/status" and signer(TOKEN)("") == ""


# --- ingest jobs ---------------------------------------------------------------------------------------


def test_ingest_job_reports_progress_until_done(tmp_path: Path, no_labeler: None) -> None:
    drive = tmp_path / "drive"
    _drive(drive)
    cfg = _config(tmp_path / "home", ingest_roots=(tmp_path,))  # a fresh index: no folder is allowed by default
    with _local(create_app(cfg, embedder=EMBEDDER)) as fresh:
        assert fresh.get("/api/status").json()["ready"] is False
        assert fresh.get("/api/search", params={"q": "budget"}).status_code == 409
        res = fresh.post("/api/ingest", json={"paths": [str(drive)]})
        assert res.status_code == 202
        job = res.json()["job"]
        deadline = time.monotonic() + 120
        while (progress := fresh.get(f"/api/ingest/{job}").json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert progress["state"] == "done", progress
        assert progress["files_total"] == progress["files_done"] == 6
        assert progress["report"]["ingested"] == 6 and progress["chunks"] > 0
        hits = fresh.get("/api/search", params={"q": "travel budget"}).json()["hits"]
        assert hits[0]["source"] == "finance/budget.txt"  # the server sees what the job added
        assert fresh.get("/api/ingest/99").status_code == 404
        assert fresh.post("/api/ingest", json={"paths": ["relative/path"]}).status_code == 400
        assert fresh.post("/api/ingest", json={"paths": [str(tmp_path / "nope")]}).status_code == 400


def test_only_one_ingest_job_runs_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmrag.pipeline import worker as server_jobs
    release = threading.Event()
    monkeypatch.setattr(server_jobs.IngestJobs, "_run", lambda self, job, paths: release.wait(10))
    with _local(create_app(_config(tmp_path, ingest_roots=(tmp_path,)), embedder=EMBEDDER)) as busy:
        assert busy.post("/api/ingest", json={"paths": [str(tmp_path)]}).status_code == 202
        res = busy.post("/api/ingest", json={"paths": [str(tmp_path)]})
        assert res.status_code == 409 and "already running" in res.json()["detail"]
        release.set()


# --- a real server over HTTP -------------------------------------------------------------------------


def test_real_server_on_localhost_streams_and_seeks(
    built: tuple[Config, Path], root: str, live_server: Callable[[object], str]
) -> None:
    port = int(live_server(create_app(built[0], embedder=EMBEDDER)).rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/ask?" + urlencode({"q": "What is the travel budget for 2025?"}))
    res = conn.getresponse()
    assert res.status == 200 and res.getheader("content-type", "").startswith("text/event-stream")
    events = _events(res.read().decode())
    assert events[-1][0] == "answer" and "48,000" in str(events[-1][1]["answer"])
    query = urlencode({"root": root, "source": "reports/word-processors.pdf"})
    conn.request("GET", f"/api/file?{query}", headers={"Range": "bytes=-100"})
    res = conn.getresponse()
    body = res.read()
    assert res.status == 206 and body == SAMPLE_PDF.read_bytes()[-100:]
    conn.close()


def test_the_cli_path_does_not_import_the_web_stack() -> None:
    code = "import sys, mmrag.pipeline.cli, mmrag.pipeline.http.cli; sys.exit(1 if {'fastapi', 'uvicorn', 'starlette'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_slide_text_reads_odp_decks_as_they_were_indexed(tmp_path: Path) -> None:
    from builders import build_odp

    from mmrag.pipeline.http.files import Refused, Served, slide_text

    deck = Served(build_odp(tmp_path / "review.odp"), "odp", "")
    first = slide_text(deck, 1)
    assert first["text"].startswith("Quarterly review\nRevenue grew 12 percent")  # type: ignore[union-attr]
    assert "Notes: Mention the new office" in first["text"]  # type: ignore[operator]
    assert "| 2020 | 130 | 95 |" in slide_text(deck, 2)["text"]  # type: ignore[operator]
    with pytest.raises(Refused, match="2 slides; slide 3 does not exist"):
        slide_text(deck, 3)
    broken = tmp_path / "broken.odp"
    broken.write_bytes(b"not a zip")
    with pytest.raises(Refused, match="cannot be read: damaged ODP"):
        slide_text(Served(broken, "odp", ""), 1)
    with pytest.raises(Refused, match="pdf files have no slides"):
        slide_text(Served(broken, "pdf", ""), 1)
