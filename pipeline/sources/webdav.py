"""A folder on a WebDAV server (Nextcloud, ownCloud, Apache mod_dav, SharePoint) as a named source:
``kind = "webdav"``, ``url = "https://dav.example.org/files/team"``.

Lists one folder at a time with PROPFIND ``Depth: 1`` (many servers refuse ``Depth: infinity``) and
takes a file's ETag as its version token, or its last-modified time and size when the server sends
none. WebDAV has no portable way to say who may read a file, so items carry no principals: the
source's ``readers`` setting applies.

The requests go through webdav4's HTTP client (httpx) and its multistatus parser, imported when a
source is opened. Request URLs are built here, percent-encoded, because webdav4's own path joining
rejects names holding ``?`` or ``#``. Basic-auth credentials come from the config (or the URL's
user part) and never appear in the location, a message or a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from mmrag.ingest.detect import is_hidden_or_system
from mmrag.pipeline.config import SourceConfig
from mmrag.pipeline.sources import Item, SourceError

CONNECT_SECONDS = 5.0  # a dead or unreachable server fails in seconds
READ_SECONDS = 30.0  # the longest wait for the next bytes of an answer (a big folder's listing)
BLOCK = 1 << 20

# Only the properties the listing needs: the server need not compute quotas or lock state.
PROPFIND_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:"><d:prop>'
    "<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/>"
    "</d:prop></d:propfind>"
)


class WebDavSource:
    def __init__(self, config: SourceConfig, read_seconds: float = READ_SECONDS) -> None:
        import httpx
        from webdav4.http import Client

        self.name = config.name
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(
                f"source {self.name!r}: url must be http(s)://host[:port]/folder, got a {parts.scheme!r} URL"
            )
        user, _, secret = parts.netloc.rpartition("@")[0].partition(":")
        host = parts.netloc.rpartition("@")[2]
        self._folder = unquote(parts.path).rstrip("/")  # decoded, as the server's hrefs are once parsed
        self._origin = f"{parts.scheme}://{host}"
        self.location = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        username = config.username or unquote(user)
        password = config.password or unquote(secret)
        self._secrets = [s for s in (password, quote(password, safe="")) if s]
        self._httpx: Any = httpx
        self._http: Any = Client(
            auth=(username, password) if username or password else None,
            timeout=httpx.Timeout(read_seconds, connect=CONNECT_SECONDS),
            follow_redirects=True,
        )

    def items(self) -> Iterator[Item]:
        """Every file under the folder, sorted by path.

        The whole tree is listed before the first item is yielded: a listing that fails half-way
        raises ``SourceError`` instead of passing for a folder whose other files were deleted."""
        found: list[Item] = []
        folders = [""]
        while folders:
            folder = folders.pop()
            files, subfolders = self._list(folder)
            found.extend(files)
            folders.extend(subfolders)
        found.sort(key=lambda item: item.path)
        yield from found

    def fetch(self, item: Item, dest: Path) -> None:
        try:
            with self._http.stream("GET", self._url(item.path)) as response:
                self._check(response, f"read {item.path}")
                with dest.open("wb") as out:
                    for block in response.iter_bytes(BLOCK):
                        out.write(block)
        except self._httpx.HTTPError as e:
            raise self._error(f"read {item.path}", self._transport_reason(e)) from e

    def close(self) -> None:
        self._http.close()

    def _list(self, folder: str) -> tuple[list[Item], list[str]]:
        """The files and the (not hidden) subfolders of one folder, by PROPFIND ``Depth: 1``."""
        from webdav4.multistatus import parse_multistatus_response

        what = f"list {folder or '/'}"
        try:
            response = self._http.request(
                "PROPFIND",
                self._url(folder, collection=True),
                headers={"Depth": "1", "Content-Type": "application/xml"},
                content=PROPFIND_BODY,
            )
            self._check(response, what)
            if response.status_code != 207:
                raise self._error(what, f"the server answered {response.status_code}, not a WebDAV listing")
            entries = parse_multistatus_response(response).responses.values()
        except self._httpx.HTTPError as e:
            raise self._error(what, self._transport_reason(e)) from e
        except (ValueError, SyntaxError, AssertionError) as e:  # ParseError is a SyntaxError; webdav4 asserts hrefs
            raise self._error(what, f"the server's listing is not valid WebDAV XML ({type(e).__name__})") from e
        files: list[Item] = []
        subfolders: list[str] = []
        named_itself = False
        within = f"{folder}/" if folder else ""
        for entry in entries:
            path = self._relative(entry.path_norm)
            if path == folder:
                named_itself = True
                continue
            if path is None or not path.startswith(within) or is_hidden_or_system(path.rpartition("/")[2]):
                continue
            props = entry.properties
            if props.collection:
                subfolders.append(path)
            else:
                files.append(self._item(path, props))
        if not named_itself:
            # Its hrefs are under another path (a proxy rewriting them?): an empty listing taken at
            # its word would remove every item of the source from the index.
            raise self._error(what, "the server's listing does not name the folder asked for under the url's path")
        return files, subfolders

    def _item(self, path: str, props: Any) -> Item:
        size = props.content_length or 0
        modified = props.modified.timestamp() if props.modified is not None else 0.0
        version = props.etag or f"{int(modified * 1e9)}:{size}"
        return Item(path, size, version, modified)

    def _relative(self, href_path: str) -> str | None:
        """An href's path inside the configured folder ("" for the folder), None when outside it."""
        path = unquote(href_path).rstrip("/")
        if path == self._folder:
            return ""
        if not path.startswith(self._folder + "/"):
            return None
        return path[len(self._folder) + 1 :]

    def _url(self, path: str, collection: bool = False) -> str:
        full = f"{self._folder}/{path}".rstrip("/") if path else self._folder
        return self._origin + quote(full + ("/" if collection else ""), safe="/")

    def _check(self, response: Any, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            reason = "access refused: the server did not accept the username and password"
        elif status == 403:
            reason = "access refused (403 Forbidden): the account may not read it"
        elif status == 404:
            reason = "not found (404)"
        else:
            reason = f"the server answered {status} {response.reason_phrase}".rstrip()
        raise self._error(what, reason)

    def _transport_reason(self, e: Exception) -> str:
        if isinstance(e, self._httpx.ConnectTimeout):
            return f"no connection within {CONNECT_SECONDS:.0f} s: is the server up and reachable?"
        if isinstance(e, self._httpx.TimeoutException):
            return "the server stopped answering (timed out)"
        if isinstance(e, self._httpx.ConnectError):
            return f"cannot connect: {str(e) or type(e).__name__}; is the server up?"
        return f"the connection failed: {type(e).__name__}: {e}"

    def _error(self, what: str, reason: str) -> SourceError:
        message = f"source {self.name!r} ({self.location}): cannot {what} ({reason})"
        for secret in self._secrets:
            message = message.replace(secret, "***")  # a server or library may echo what it was sent
        return SourceError(message)
