"""Fixtures shared by the pipeline tests: a real HTTP server on localhost."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

StartServer = Callable[[object], str]


@pytest.fixture
def live_server() -> Iterator[StartServer]:
    """Serves ASGI apps with uvicorn on 127.0.0.1 in a thread; ``start(app)`` returns the base URL.

    The listening socket is bound here and handed to uvicorn: no port can be taken between choosing and
    binding it, and this process makes no name lookup or connect, so the ``no_network`` guard stays usable.
    The servers stop when the test ends.
    """
    import uvicorn

    running: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(app: object) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))  # type: ignore[arg-type]
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the server thread stopped while starting"
            assert time.monotonic() < deadline, "the server did not start within 30 s"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(10)
        sock.close()
