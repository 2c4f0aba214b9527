"""``mmrag llm serve MODEL.gguf``: a local llama.cpp server for the generative answer stage, in the foreground.

The server is llama.cpp's own (OpenAI-compatible ``/v1``: chat completions, streaming), embedded in
Python by ``xllamacpp`` (MIT, prebuilt wheels, no dependencies), which mmrag does not require: it is
imported here only, and only when ``serve`` runs, so ``mmrag --help`` never loads it. The server
listens on 127.0.0.1 by default; ``serve`` prints the two settings that point ``mmrag ask`` at it
(``MMRAG_LLM_BASE_URL``, ``MMRAG_LLM_MODEL``) and serves until Ctrl+C.

A mistake a person can fix (the file is missing or is not a GGUF, the port is taken, xllamacpp is not
installed or cannot load the model) raises ``LocalLlmError`` (an ``LlmError``, so the CLI prints its
message as one line) saying what to do. See docs/llm-local.md for measured speeds and defaults.
"""

from __future__ import annotations

import importlib
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, TextIO

from mmrag.pipeline.answer.llm import LlmError

XLLAMACPP_PIN = "xllamacpp==2026.10.11549"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
DEFAULT_CTX = 8192  # mmrag's answer prompt reached 6,151 tokens (8 items of up to 3,000 characters and a table result)
DEFAULT_MAX_TOKENS = 400  # the reply length when a request sends no max_tokens (mmrag's requests send none)
GGUF_MAGIC = b"GGUF"
_LOOPBACK = ("127.", "localhost", "::1")


class LocalLlmError(LlmError):
    """The local server cannot start for a reason a person can fix; the message says how."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``serve`` starts: one model, one request at a time (a CPU gains nothing from more)."""

    gguf: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    threads: int | None = None  # None: llama.cpp picks (the machine's cores)
    ctx: int = DEFAULT_CTX
    max_tokens: int = DEFAULT_MAX_TOKENS

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def model_name(self) -> str:
        """The name ``/v1/models`` lists (the file name without ``.gguf``); the server accepts any name."""
        return self.gguf.name[: -len(".gguf")] if self.gguf.name.lower().endswith(".gguf") else self.gguf.name


def check_gguf(path: Path) -> Path:
    """``path`` resolved, if it is a readable GGUF model file; ``LocalLlmError`` saying what is wrong otherwise."""
    path = path.expanduser()
    if not path.exists():
        raise LocalLlmError(f"{path}: no such file; give the path of a .gguf model file")
    if path.is_dir():
        raise LocalLlmError(f"{path} is a folder; give the path of a .gguf model file inside it")
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
    except OSError as e:
        raise LocalLlmError(f"{path}: cannot read it ({e.strerror or e})") from e
    if head[:4] != GGUF_MAGIC:
        if head.startswith(b"version https://git-lfs"):
            raise LocalLlmError(f"{path} is a Git LFS pointer, not the model: fetch the real file (git lfs pull)")
        raise LocalLlmError(
            f"{path} is not a GGUF model (it does not start with 'GGUF'); llama.cpp needs a .gguf file, "
            "for example a Q4_K_M quantisation of an instruct model"
        )
    return path.resolve()


def check_port(host: str, port: int) -> None:
    """``LocalLlmError`` when ``host:port`` cannot be bound (taken, or not an address of this machine)."""
    if not 0 < port < 65536:
        raise LocalLlmError(f"port {port} is not a TCP port; use 1-65535 (for example --port {DEFAULT_PORT})")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise LocalLlmError(
                f"cannot listen on {host}:{port} ({e.strerror or e}); is another server running there? "
                "Stop it or choose another port with --port"
            ) from e


def load_xllamacpp() -> ModuleType:
    """The ``xllamacpp`` module, or ``LocalLlmError`` saying how to install it."""
    try:
        return importlib.import_module("xllamacpp")
    except ImportError as e:
        raise LocalLlmError(
            f"xllamacpp is not installed ({e}); install it into mmrag's environment with: pip install {XLLAMACPP_PIN}"
        ) from e


def build_params(xlc: ModuleType, options: ServeOptions) -> Any:
    """The ``xllamacpp.CommonParams`` for ``options``."""
    params = xlc.CommonParams()
    params.model.path = str(options.gguf)
    params.hostnames = [options.host]
    params.port = options.port
    params.n_ctx = options.ctx
    params.n_parallel = 1  # one slot: the whole context for one request; others wait their turn
    params.n_predict = options.max_tokens
    if options.threads is not None:
        params.cpuparams.n_threads = options.threads
        params.cpuparams_batch.n_threads = options.threads
    params.model_alias = {options.model_name}
    params.ui = False
    return params


def settings_text(options: ServeOptions) -> str:
    """What to tell ``mmrag ask`` (and the web server) so it answers with this model."""
    return (
        f"serving {options.gguf.name} at {options.base_url} (context {options.ctx} tokens, "
        f"threads {options.threads or 'auto'}, replies up to {options.max_tokens} tokens)\n"
        "point mmrag at it (another terminal), then ask as usual:\n"
        f"  export MMRAG_LLM_BASE_URL={options.base_url}\n"
        f"  export MMRAG_LLM_MODEL={options.model_name}\n"
        "stop with Ctrl+C"
    )


def _validate(options: ServeOptions) -> None:
    if options.ctx < 512:
        raise LocalLlmError(f"a context of {options.ctx} tokens is too small for mmrag's prompts; use 4096 or more")
    if options.threads is not None and options.threads < 1:
        raise LocalLlmError(f"threads must be 1 or more (got {options.threads})")
    if options.max_tokens == 0 or options.max_tokens < -1:
        raise LocalLlmError(f"max tokens must be positive, or -1 for no limit (got {options.max_tokens})")


def serve(
    gguf: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    threads: int | None = None,
    ctx: int = DEFAULT_CTX,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve ``gguf`` on ``host:port`` until Ctrl+C (or SIGTERM, or ``stop`` is set); returns the exit code 0.

    Blocks while the model loads (seconds for a 1-2 B model), prints the settings to use, then waits.
    Raises ``LocalLlmError`` for anything a person can fix before or while starting.
    """
    out = out or sys.stdout
    options = ServeOptions(check_gguf(Path(gguf)), host, port, threads, ctx, max_tokens)
    _validate(options)
    check_port(host, port)
    xlc = load_xllamacpp()
    if not host.startswith(_LOOPBACK):
        print(f"warning: {host} is reachable from other machines and the server has no API key", file=out)
    print(f"loading {options.gguf} ...", file=out, flush=True)
    try:
        server = xlc.Server(build_params(xlc, options))
    except (RuntimeError, ValueError) as e:
        raise LocalLlmError(
            f"xllamacpp could not start a server for {options.gguf} ({e}); the log above says why "
            "(a model architecture this llama.cpp build does not know, too little memory for the context: "
            "try a smaller --ctx)"
        ) from e
    stop = stop or threading.Event()
    restore = _take_signals(stop)
    try:
        print(settings_text(options), file=out, flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the server", file=out, flush=True)
        del server  # its destructor ends llama.cpp's loop and joins its thread
        restore()
    return 0


def _take_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set ``stop`` (llama.cpp installs its own handlers, which would only stop its
    loop and leave this process waiting); returns a function that puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    return restore
