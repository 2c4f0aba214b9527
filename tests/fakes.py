"""Every fake the tests use, in one place: each stands in for what cannot run here or would be slow,
and speaks the real interface (an OpenAI-compatible HTTP server on 127.0.0.1 for the LLM).

Import them as ``from fakes import ...`` (``tests/`` is on the test path, see pyproject.toml).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from mmrag.ingest.engines.speech import Segment
from mmrag.retrieval.embed import HashEmbedder, Vectors

# --- embedders ---------------------------------------------------------------------------------------


class CountingEmbedder(HashEmbedder):
    """A real (hashing) embedder that records the texts it embedded (``texts`` counts them; a test may reset it)."""

    def __init__(self, dim: int = 128) -> None:
        super().__init__(dim)
        self.seen: list[str] = []
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.seen.extend(texts)
        self.texts += len(texts)
        return super().embed(texts)


# --- engines -----------------------------------------------------------------------------------------


class FakeTranscriber:
    """Returns fixed segments and records the audio it was given (``heard``: sizes, ``clips``: samples)."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.heard: list[int] = []
        self.clips: list[np.ndarray] = []

    def transcribe(self, audio: np.ndarray) -> list[Segment]:
        self.heard.append(audio.size)
        self.clips.append(np.array(audio, copy=True))
        return self.segments


class FakeOcr:
    """Reads ``text`` from every picture, or fails like a broken runtime; ``seen`` holds the pictures' shapes."""

    def __init__(self, text: str = "", fail: bool = False) -> None:
        self.text, self.fail = text, fail
        self.seen: list[tuple[int, ...]] = []

    def read(self, image: object) -> str:
        self.seen.append(tuple(np.asarray(image).shape))
        if self.fail:
            raise RuntimeError("onnxruntime exploded")
        return self.text


class FakeLabeler:
    """An ImageNet labeller that sees cats everywhere and records the thresholds it was asked for."""

    available = True

    def __init__(self) -> None:
        self.thresholds: list[float] = []

    def labels(self, image: object, top: int = 3, min_probability: float = 0.1) -> list[str]:
        self.thresholds.append(min_probability)
        return ["tabby cat", "tiger cat"]


# --- a scripted OpenAI-compatible (and Ollama) chat server on 127.0.0.1 -------------------------------

Reply = str | Callable[[dict[str, Any]], str]


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class StubLlm:
    """A scripted chat server. ``replies`` are served in order (a callable sees the request body)."""

    host: str
    port: int
    replies: list[Reply] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def next_reply(self, body: dict[str, Any]) -> str:
        reply = self.replies.pop(0) if self.replies else "(no scripted reply)"
        return reply(body) if callable(reply) else reply

    def user_prompt(self, i: int = -1) -> str:
        return message_text(self.requests[i].body["messages"][-1]["content"])

    def system_prompt(self, i: int = -1) -> str:
        return message_text(self.requests[i].body["messages"][0]["content"])


def message_text(content: str | list[dict[str, Any]]) -> str:
    """The text of a chat message's content (a string, or a list of parts)."""
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def _pieces(text: str) -> list[str]:
    return [text[i : i + 5] for i in range(0, len(text), 5)]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, content_type: str, body: bytes | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body is not None:
            self.wfile.write(body)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        stub = self.server.stub
        stub.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        reply = stub.next_reply(body)
        model = body.get("model", "")
        if self.path == "/v1/chat/completions" and not body.get("stream"):
            message = {"role": "assistant", "content": reply}
            data = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
            self._send(200, "application/json", json.dumps(data).encode())
        elif self.path == "/v1/chat/completions":
            self._send(200, "text/event-stream")
            for i, piece in enumerate([*_pieces(reply), None]):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece} if piece else {}
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None if piece else "stop"}],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
        elif self.path == "/api/chat":
            self._send(200, "application/x-ndjson")
            for piece in _pieces(reply):
                line = {"model": model, "created_at": "2025-01-01T00:00:00Z", "done": False}
                self.wfile.write(
                    (json.dumps({**line, "message": {"role": "assistant", "content": piece}}) + "\n").encode()
                )
            done = {"model": model, "created_at": "2025-01-01T00:00:00Z", "done": True, "done_reason": "stop"}
            self.wfile.write((json.dumps({**done, "message": {"role": "assistant", "content": ""}}) + "\n").encode())
        else:
            self._send(404, "application/json", b'{"error": {"message": "not found"}}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: StubLlm


@contextmanager
def stub_llm() -> Iterator[StubLlm]:
    """A scripted chat server on 127.0.0.1 (a free port) for the length of the ``with`` block."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.stub = StubLlm("127.0.0.1", httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.stub
    finally:
        httpd.shutdown()
        httpd.server_close()
