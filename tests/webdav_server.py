"""A real WebDAV server (wsgidav, the command its package installs) on 127.0.0.1 for the WebDAV source.

Basic auth is required: one user, ``alice``, with a password that must never show up in a message.
The served folder is on disk, so a test changes files directly or through WebDAV (webdav4's client).
Import the fixtures into a test module: ``from webdav_server import webdav_folder, webdav_server  # noqa: F401``
(and ``# ruff: noqa: F811`` at its top: the fixtures come back as the tests' parameters).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmrag.pipeline.bench.common import free_port

USERNAME = "alice"
PASSWORD = "s3cret-pass"


@dataclass(frozen=True)
class WebDav:
    """A folder served over WebDAV: ``url`` (no credentials in it) shows ``root`` on disk."""

    url: str
    root: Path
    username: str
    password: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server (every folder of it): a test's way to take it down mid-run."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def folder(self, name: str) -> WebDav:
        """A subfolder of this one, created empty on disk, as its own WebDAV folder."""
        (self.root / name).mkdir(parents=True)
        return WebDav(f"{self.url}/{name}", self.root / name, self.username, self.password, self.process)


def _server_kind() -> str:
    # cheroot is wsgidav's default; uvicorn (its WSGI mode) serves as well when cheroot is not installed
    return "cheroot" if importlib.util.find_spec("cheroot") else "uvicorn"


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    request = urllib.request.Request(url + "/", method="OPTIONS")
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered (401 without credentials): it is up
        except OSError as e:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"wsgidav did not start: {log.read_text()[-2000:]}") from e
            time.sleep(0.1)


@contextmanager
def running_webdav() -> Iterator[WebDav]:
    """Start a wsgidav server serving an empty temporary folder; stop it and delete the folder after."""
    wsgidav = Path(sys.executable).with_name("wsgidav")
    if not wsgidav.exists():
        pytest.fail(f"the wsgidav command is missing beside {sys.executable}: the wsgidav package installs it")
    data = Path(tempfile.mkdtemp(prefix="mmrag-webdav-server-"))
    root = data / "root"
    root.mkdir()
    port = free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "server": _server_kind(),
        "provider_mapping": {"/": str(root)},
        "simple_dc": {"user_mapping": {"*": {USERNAME: {"password": PASSWORD}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "dir_browser": {"enable": False},
        "verbose": 3,
    }
    config_file = data / "wsgidav.json"  # beside the served folder, not in it
    config_file.write_text(json.dumps(config))
    log_path = data / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(wsgidav), "--config", str(config_file)], stdout=log, stderr=subprocess.STDOUT, cwd=data
    )
    server = WebDav(f"http://127.0.0.1:{port}", root, USERNAME, PASSWORD, process)
    try:
        _wait_until_up(server.url, process, log_path)
        yield server
    finally:
        server.stop()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def webdav_server() -> Iterator[WebDav]:
    """One wsgidav server for the test session."""
    with running_webdav() as server:
        yield server


@pytest.fixture
def webdav_folder(webdav_server: WebDav) -> WebDav:
    """An empty folder of its own on the session's server."""
    return webdav_server.folder(f"t-{uuid.uuid4().hex[:8]}")
