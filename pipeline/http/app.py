"""``mmrag serve``: the HTTP API (FastAPI, schema at /openapi.json) and the web page, all served locally.

Binds to localhost by default. Any other address needs a strong API token (``--token`` or
``$MMRAG_API_TOKEN``); with a token set, every ``/api`` request and the schema and docs pages must carry
``Authorization: Bearer <token>``, except media URLs that the API itself handed out signed
(``links``: one file or preview, for an hour). Before anything else, requests naming a host other
than this machine, the bind address or a configured public name are refused, and bodies are limited
as they arrive (``guards``). Files are served only from ingested roots, and only while they are the
files indexed (``files``), under the headers of ``policy``. FastAPI and uvicorn are imported only in
this module and its siblings, so ``mmrag --help`` never loads them.
"""

from __future__ import annotations

import hmac
import queue
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from mmrag.ingest.engines.slide_render import SlidePictures, find_office
from mmrag.ingest.errors import MmragError
from mmrag.ingest.filetypes import Preview
from mmrag.ingest.permissions import PUBLIC
from mmrag.pipeline.api import ask_index, index_status, search_index
from mmrag.pipeline.app import App, ReplicaRefused, media_root, replica_refusal
from mmrag.pipeline.config import LOCAL_HOSTS, Config
from mmrag.pipeline.filters import FilterError, Filters, parse_filters
from mmrag.pipeline.http.files import (
    BadRange,
    Refused,
    image_thumbnail_png,
    media_image,
    media_type,
    parse_range,
    pdf_page_png,
    read_bytes,
    served_file,
    served_path,
    slide_text,
    table_rows,
)
from mmrag.pipeline.http.guards import BodyLimit, HostAllowlist, allowed_hosts
from mmrag.pipeline.http.identity import USER_PARAM, Identities, load_identities
from mmrag.pipeline.http.links import Signer, signed_ok, signer
from mmrag.pipeline.http.payloads import citation_json, hit_json, sse_event, upload_name
from mmrag.pipeline.http.policy import API_HEADERS, COMMON_HEADERS, PAGE_HEADERS, file_headers, ingest_allowed
from mmrag.pipeline.permissions import IdentityError, principals_for_user
from mmrag.pipeline.replica import Replica
from mmrag.pipeline.worker import IndexWorker, IngestJobs, JobBusy
from mmrag.retrieval.embed import TextEmbedder
from mmrag.retrieval.store import IndexMismatch

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024  # any other request body (an ingest request is a list of paths)
MAX_K = 100
UPLOAD_SLACK = 64 * 1024  # multipart boundaries and headers around the file
STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}


def search_filters(
    modality: Annotated[list[str], Query(description="text, table, image, frame, speech, moment")] = [],  # noqa: B006 (FastAPI copies query defaults)
    folder: Annotated[list[str], Query(description="only files under this folder (relative)")] = [],  # noqa: B006
    type: Annotated[list[str], Query(description="file type: pdf, docx, ...")] = [],  # noqa: B006
    glob: Annotated[list[str], Query(description="only files matching this pattern, e.g. *.pdf")] = [],  # noqa: B006
    after: Annotated[str | None, Query(description="only files modified on or after (YYYY-MM-DD)")] = None,
    before: Annotated[str | None, Query(description="only files modified on or before (YYYY-MM-DD)")] = None,
) -> Filters:
    """The filter query parameters of every search route, parsed as the CLI parses its flags."""
    try:
        return parse_filters(modalities=modality, kinds=type, folders=folder, globs=glob, after=after, before=before)
    except FilterError as e:
        raise HTTPException(400, str(e)) from e


FilterParams = Annotated[Filters, Depends(search_filters)]


class IngestRequest(BaseModel):
    paths: list[str]


def _too_large(limit: int) -> str:
    return f"the upload is over the {limit / (1024 * 1024):g} MB limit"


def _asset(name: str) -> str:
    return resources.files("mmrag.pipeline").joinpath("web", name).read_text(encoding="utf-8")


class PermissionsUnsupported(MmragError):
    """The web server was asked to serve an index with document permissions on."""


def _replica(cfg: Config, watch: Sequence[str]) -> Replica | None:
    """The snapshot follower of an API replica (``[store] role = "replica"``), else None."""
    if cfg.store.role != "replica":
        return None
    if watch:
        raise ReplicaRefused(replica_refusal(cfg).replace("ingest runs", "--watch runs"))
    return Replica(cfg)


def create_app(
    cfg: Config,
    *,
    token: str | None = None,
    embedder: TextEmbedder | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    bind_host: str = "127.0.0.1",
    public_hosts: Sequence[str] = (),
    watch: Sequence[str] = (),
) -> FastAPI:
    """The API and web page over the index at ``cfg.index_dir``.

    ``embedder`` replaces the configured text model (tests pass the one the index was built with).
    Requests are answered only when their ``Host`` is this machine, ``bind_host``, or one of
    ``public_hosts`` and ``[server] public_hosts``. ``watch``: folders and source names kept in step in the
    background (``pipeline.watch.BackgroundSync``); its last round is in ``/api/status``.
    """
    permissions = cfg.permissions.enabled
    identities = load_identities(cfg) if permissions else Identities()
    if permissions and not token:  # media links name their asker under a signature keyed by the token
        raise PermissionsUnsupported(
            "with [permissions] enabled, mmrag serve needs an API token (--token or $MMRAG_API_TOKEN): it signs "
            "the media links it hands each person. People sign in with their own tokens ([permissions] "
            "tokens_file) or through a proxy that sets [permissions] trusted_header."
        )
    replica = _replica(cfg, watch)
    worker = IndexWorker(cfg, embedder, opener=replica.open if replica is not None else None)
    jobs = IngestJobs(worker)
    app = FastAPI(
        title="mmrag",
        summary="Search and ask a drive of documents, slides, tables, images, audio and video, with citations.",
        version="1",
    )
    app.state.worker = worker
    app.state.jobs = jobs
    slide_pictures = SlidePictures(
        find_office(cfg.models.slide_renderer), media_root(cfg), min(120.0, cfg.limits.file_seconds)
    )
    if replica is not None:
        app.router.add_event_handler("startup", lambda: replica.start(worker.swap))
        app.router.add_event_handler("shutdown", replica.stop)
    if watch:
        from mmrag.pipeline.watch import BackgroundSync

        syncing = BackgroundSync(worker, watch)
        app.state.sync = syncing
        app.router.add_event_handler("startup", syncing.start)
        app.router.add_event_handler("shutdown", syncing.shutdown)  # before the worker it reopens stops
    app.router.add_event_handler("shutdown", worker.shutdown)

    sign = signer(token) if token else (lambda url: url)
    docs_paths = {p for p in (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url) if p}

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        response: Response | None = None
        if token and (path.startswith("/api/") or path in docs_paths):
            given = request.headers.get("authorization", "")
            media = signed_ok(token, request.method, path, request.query_params.multi_items())
            server = hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
            personal = permissions and identities.knows(given)
            if not media and not server and not personal:
                response = JSONResponse({"detail": "missing or wrong API token (Authorization: Bearer ...)"}, 401)
            proxied = permissions and bool(identities.header) and bool(request.headers.get(identities.header))
            request.state.admin = server and not proxied  # the server's own token, for nobody else
            if response is None and permissions:
                if media:
                    user = request.query_params.get(USER_PARAM) or None
                else:
                    header = request.headers.get(identities.header) if identities.header else None
                    user = identities.user(given, header, token)
                try:
                    request.state.user = user
                    request.state.principals = principals_for_user(user) if user else frozenset({PUBLIC})
                except IdentityError as e:
                    response = JSONResponse({"detail": str(e)}, 503)
        if response is None:
            response = await call_next(request)
        if path == "/" or path.startswith("/static/"):
            extra = PAGE_HEADERS
        elif path in docs_paths:
            extra = COMMON_HEADERS  # Swagger UI and ReDoc load their own scripts and styles
        else:
            extra = API_HEADERS
        for name, value in extra.items():
            response.headers.setdefault(name, value)
        return response

    def asked_as(request: Request, filters: Filters) -> Filters:
        """The filters made for whoever asks (document permissions); unchanged when permissions are off."""
        return replace(filters, principals=request.state.principals) if permissions else filters

    def principals_of(request: Request) -> frozenset[str] | None:
        return request.state.principals if permissions else None

    def signed_for(request: Request) -> Signer:
        """Media links for whoever asks: with permissions on, the user is part of what the signature covers."""
        user = getattr(request.state, "user", None) if permissions else None
        if not user:
            return sign
        return lambda url: sign(url + ("&" if "?" in url else "?") + urlencode({USER_PARAM: user})) if url else url

    def body_limit(path: str) -> int:
        return max_upload_bytes + UPLOAD_SLACK if path == "/api/search/image" else MAX_JSON_BYTES

    app.add_middleware(BodyLimit, limit_for=body_limit)
    public = (*cfg.server.public_hosts, *public_hosts)
    app.add_middleware(HostAllowlist, allowed=allowed_hosts(LOCAL_HOSTS, bind_host, public))

    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, exc.status)

    @app.exception_handler(IndexMismatch)
    async def no_index(_request: Request, exc: IndexMismatch) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 409)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_asset("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such asset")
        return Response(_asset(name), media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})

    @app.get("/api/status")
    def status(request: Request) -> dict[str, object]:
        """What the index holds: chunks, files by status, ingested roots and the embedding layout."""
        try:
            found = worker.call(lambda index: {"ready": True, **index_status(index, principals_of(request))})
            return {**found, "snapshot": replica.snapshot} if replica is not None else found
        except IndexMismatch as e:
            return {"ready": False, "index": str(cfg.index_dir), "detail": str(e), "chunks": 0, "roots": []}

    @app.get("/api/search")
    def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, description="the query")],
        filters: FilterParams,
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    ) -> dict[str, object]:
        """Ranked evidence for a query, with a preview URL and file URL per hit."""
        mine, links = asked_as(request, filters), signed_for(request)
        return worker.call(
            lambda index: {"query": q, "hits": [hit_json(index, h, links) for h in search_index(index, q, k, mine)]}
        )

    @app.post("/api/search/image")
    def search_image(
        request: Request,
        image: Annotated[UploadFile, File(description="the example picture")],
        filters: FilterParams,
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    ) -> dict[str, object]:
        """Images and frames like an uploaded picture, and text about what it shows."""
        from mmrag.pipeline.image_query import (
            ImageQueryError,
            describe_image,
            image_search_notices,
            search_by_image,
        )

        with tempfile.TemporaryDirectory(prefix="mmrag-upload-") as tmp:
            path = Path(tmp) / upload_name(image.filename or "")
            size = 0
            with path.open("wb") as out:
                while block := image.file.read(1 << 20):
                    size += len(block)
                    if size > max_upload_bytes:
                        raise HTTPException(413, _too_large(max_upload_bytes))
                    out.write(block)
            try:
                description = describe_image(path, worker.models.ingest_settings())
            except ImageQueryError as e:
                raise HTTPException(400, str(e).replace(str(path), image.filename or "the upload")) from e

            def run(index: App) -> dict[str, object]:
                hits = search_by_image(index, path, k, asked_as(request, filters), description=description)
                return {
                    "description": description,
                    "notices": image_search_notices(index, description),
                    "hits": [hit_json(index, h, signed_for(request)) for h in hits],
                }

            return worker.call(run)

    @app.get("/api/ask", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
    def ask(
        request: Request,
        q: Annotated[str, Query(min_length=1, description="the question")],
        filters: FilterParams,
    ) -> StreamingResponse:
        """The answer as Server-Sent Events: ``token`` (text pieces), then ``answer`` (with citations) or ``error``."""
        events: queue.Queue[str | None] = queue.Queue()
        mine, links = asked_as(request, filters), signed_for(request)

        def run(index: App) -> None:
            try:
                answer, hits = ask_index(index, q, mine, stream=lambda t: events.put(sse_event("token", {"text": t})))
                data = {
                    "question": q,
                    **answer.to_json(),
                    # flagged sentences were dropped from the text (strict), not only reported
                    "strict": not answer.extractive and cfg.models.llm_strict_citations,
                    "citations": [citation_json(index, c, links) for c in answer.citations],
                    "hits": [hit_json(index, h, links) for h in hits],
                }
                events.put(sse_event("answer", data))
            except Exception as e:  # the stream has started: the client learns of the failure as an event
                from mmrag.pipeline.errors import user_message

                events.put(sse_event("error", {"detail": user_message(e) or f"{type(e).__name__}: {e}"}))
            finally:
                events.put(None)

        worker.submit(run)

        def stream() -> Iterator[str]:
            while (event := events.get()) is not None:
                yield event

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def ingest_roots() -> tuple[list[Path], bool]:
        if cfg.server.ingest_roots:
            return list(cfg.server.ingest_roots), True
        try:
            return [Path(r) for r in worker.call(lambda index: index.manifest.roots())], False
        except IndexMismatch:
            return [], False

    @app.post("/api/ingest", status_code=202)
    def start_ingest(body: IngestRequest, request: Request) -> dict[str, str]:
        """Start indexing files and folders in the background (one job at a time; 409 while one runs)."""
        if replica is not None:
            raise HTTPException(409, replica_refusal(cfg))
        if permissions and not getattr(request.state, "admin", False):
            raise HTTPException(403, "with document permissions on, only the server's own token may start an ingest")
        if not body.paths:
            raise HTTPException(400, "give at least one path")
        paths = [Path(p).expanduser() for p in body.paths]
        for path in paths:
            if not path.is_absolute():
                raise HTTPException(400, f"{path} is not an absolute path on the server")
        ingest_allowed(paths, *ingest_roots())
        for path in paths:
            if not path.exists():
                raise HTTPException(400, f"{path} does not exist on the server")
        try:
            job = jobs.start(paths)
        except JobBusy as e:
            raise HTTPException(409, str(e)) from e
        return {"job": job.id}

    @app.get("/api/ingest/{job_id}")
    def ingest_progress(job_id: str) -> dict[str, object]:
        """Progress of an ingest job: files_total, files_done, chunks, current, state and, when done, report."""
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no ingest job {job_id}")
        return job.to_json()

    @app.get("/api/preview", response_model=None)
    def preview(
        request: Request,
        root: str,
        source: str,
        page: int | None = None,
        slide: int | None = None,
        rows: Annotated[str | None, Query(pattern=r"^\d+-\d+$")] = None,
        sheet: str | None = None,
        start: float | None = None,
        image: str | None = None,
    ) -> Response | dict[str, object]:
        """Evidence to show: a PDF page, a slide picture or a thumbnail as an image; a table's cited rows or a slide's text as JSON."""

        principals = principals_of(request)
        if slide is not None and image is None:
            served = worker.call(lambda index: served_file(index, root, source, principals))
            if served.file_type is None or served.file_type.preview is not Preview.SLIDES:
                raise Refused(400, f"{served.kind} files have no slides")
            # outside the index worker: a first rendering runs LibreOffice for a second or two
            picture = slide_pictures.picture(served.path, root, source, served.version, slide)
            if picture is not None:
                return Response(picture.read_bytes(), media_type="image/jpeg")
            return slide_text(served, slide, rendered=bool(slide_pictures.office))

        def run(index: App) -> Response | dict[str, object]:
            served = served_file(index, root, source, principals)
            path, shown_as = served.path, served.file_type.preview if served.file_type else Preview.LOCATOR
            if image is not None:
                stored = media_image(index, image, (root, source) if principals is not None else None)
                return Response(stored.read_bytes(), media_type=media_type(stored))
            if page is not None:
                if shown_as is not Preview.PAGES:
                    return {
                        "kind": "page",
                        "page": page,
                        "note": f"page images are not rendered for {served.kind} files",
                    }
                return Response(pdf_page_png(path, page), media_type="image/png")
            if rows is not None:
                first, last = (int(x) for x in rows.split("-"))
                return table_rows(index, root, source, first, last, sheet)
            if start is not None:
                return {
                    "kind": "media",
                    "start": start,
                    "file": signed_for(request)("/api/file?" + urlencode({"root": root, "source": source})),
                }
            if shown_as is Preview.PICTURE:
                return Response(image_thumbnail_png(path), media_type="image/png")
            raise Refused(400, "say what to preview: page, slide, rows, start or image")

        return worker.call(run)

    @app.get("/api/file", response_model=None, responses={206: {"description": "Partial content"}})
    def original(root: str, source: str, request: Request) -> Response:
        """The original file, with HTTP Range support so audio and video can seek."""
        principals = principals_of(request)
        path = worker.call(lambda index: served_path(index, root, source, principals))
        size = path.stat().st_size
        headers = {"Accept-Ranges": "bytes", **file_headers(path, media_type(path))}
        wanted = request.headers.get("range")
        if wanted is None:
            span = parse_range("bytes=0-", size) if size else None
            headers["Content-Length"] = str(size)
            body = read_bytes(path, span) if span else iter(())
            return StreamingResponse(body, 200, headers, media_type=media_type(path))
        try:
            span = parse_range(wanted, size)
        except BadRange as e:
            return JSONResponse({"detail": str(e)}, 416, {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
        headers["Content-Range"] = f"bytes {span.start}-{span.end}/{size}"
        headers["Content-Length"] = str(span.length)
        return StreamingResponse(read_bytes(path, span), 206, headers, media_type=media_type(path))

    return app
