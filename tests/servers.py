"""A real Chroma server (``chroma run``, the binary chromadb's wheel ships) on 127.0.0.1 for the stores that
talk to one; started once per test session, on a free port, with its data in a temporary folder."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.pipeline.bench.chroma_server import ChromaServer
from mmrag.pipeline.bench.common import free_port, stop_process


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[str]:
    data = Path(tempfile.mkdtemp(prefix="mmrag-chroma-server-"))
    server = ChromaServer(data / "db", data / "server.log")
    try:
        yield server.start(timeout_s=60)
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


PROXY_TOKEN = "proxy-token-5f1c9e2a7b"


@pytest.fixture(scope="session")
def chroma_behind_proxy(chroma_server: str) -> Iterator[str]:
    """The supported deployment of a Chroma server (Chroma 1.x checks no credentials): the server on a
    private address, a reverse proxy in front that lets through only requests carrying the token. Debian's
    nginx (installed by ``./bootstrap.sh test``) on a free port, forwarding to ``chroma_server``."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed (./bootstrap.sh test installs it): the token proxy cannot be started")
    work = Path(tempfile.mkdtemp(prefix="mmrag-nginx-"))
    port = free_port()
    upstream = chroma_server.removeprefix("http://")
    temps = "\n".join(
        f"  {kind}_temp_path {work}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (work / "nginx.conf").write_text(
        f"""daemon off;
master_process off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{}}
http {{
  access_log off;
{temps}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      if ($http_authorization != "Bearer {PROXY_TOKEN}") {{ return 401; }}
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      client_max_body_size 0;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen([nginx, "-p", str(work), "-c", str(work / "nginx.conf")], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(
                f"{url}/api/v2/heartbeat", headers={"Authorization": f"Bearer {PROXY_TOKEN}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2):
                    break
            except OSError as e:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {(work / 'error.log').read_text()[-2000:]}") from e
                time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)
