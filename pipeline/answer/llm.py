"""Chat LLM backends, through LangChain, behind one small interface.

``connect(settings)`` returns an ``Llm``: any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp's
server, LM Studio, Ollama's ``/v1``) through ``langchain-openai``, or Ollama's native API through
``langchain-ollama`` when the base URL starts with ``ollama://`` or the backend is set to ``ollama``.
The rest of mmrag sees only ``Message`` in and text out, optionally streamed token by token, so a
test can plug in any LangChain chat model (``LangChainLlm(FakeListChatModel(...))``).

LangChain is imported here only, and only when a model is built: ``mmrag --help`` never loads it.
Failures a person can fix (the server is down, the key is refused, the model is unknown) become an
``LlmError`` whose message names the endpoint; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mmrag.ingest.errors import MmragError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel, LanguageModelInput
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable

log = logging.getLogger(__name__)

TokenSink = Callable[[str], None]
OPENAI, OLLAMA = "openai", "ollama"
OLLAMA_SCHEME = "ollama://"
OLLAMA_DEFAULT = "http://127.0.0.1:11434"
NO_KEY = "not-set"  # local servers ignore the key, but the OpenAI client insists on one
MAX_IMAGE_BYTES = 5 * 1024 * 1024
_IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


class LlmError(MmragError):
    """The LLM could not answer for a reason a person can fix; the message names the endpoint."""


class LlmUnavailable(LlmError):
    """The endpoint cannot be reached (down, wrong address, or too slow)."""


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """How to reach one chat model. ``backend`` is ``openai`` (any OpenAI-compatible API) or ``ollama``."""

    base_url: str
    model: str = ""
    api_key: str = ""
    backend: str = OPENAI
    vision: bool = False
    timeout_s: float = 60.0
    max_retries: int = 1
    temperature: float = 0.0
    max_tokens: int = 512  # the longest reply of an answer; a query asks for less (``chat(..., max_tokens=)``)

    @property
    def endpoint(self) -> str:
        """The URL requests go to, as a person would check it."""
        if self.backend == OLLAMA:
            return ollama_host(self.base_url)
        return self.base_url


def ollama_host(base_url: str) -> str:
    """``ollama://host:port`` (or a plain http URL) as the http address of Ollama's native API."""
    if base_url.startswith(OLLAMA_SCHEME):
        rest = base_url[len(OLLAMA_SCHEME) :].strip("/")
        return f"http://{rest}" if rest else OLLAMA_DEFAULT
    return base_url.rstrip("/") or OLLAMA_DEFAULT


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``images`` are (label, file) pairs sent as image parts to vision models only."""

    role: Role
    text: str
    images: tuple[tuple[str, Path], ...] = ()


class Llm(Protocol):
    """What the answer stage needs from a chat model."""

    @property
    def endpoint(self) -> str: ...

    @property
    def vision(self) -> bool: ...

    def chat(self, messages: Sequence[Message], stream: TokenSink | None = None, *, max_tokens: int | None = None) -> str:
        """The model's reply, at most ``max_tokens`` long (else the configured limit); with ``stream``,
        each piece of text is passed to it as it arrives."""
        ...


class LangChainLlm:
    """An ``Llm`` over any LangChain chat model."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        endpoint: str = "",
        vision: bool = False,
        name: str = "",
        max_tokens: int | None = None,
        limit_key: str = "max_tokens",
    ) -> None:
        """``max_tokens`` bounds every reply, so that a model never writes until the server's own cap.
        It is sent as ``limit_key``: ``num_predict`` for Ollama's API; for OpenAI-compatible servers the
        classic ``max_tokens`` field, which llama.cpp, vLLM, LM Studio and Ollama's ``/v1`` all read
        (LangChain would send only the newer ``max_completion_tokens``)."""
        self._model = model
        self._endpoint = endpoint or type(model).__name__
        self._vision = vision
        self._name = name
        self._max_tokens = max_tokens
        self._limit_key = limit_key

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def vision(self) -> bool:
        return self._vision

    def chat(self, messages: Sequence[Message], stream: TokenSink | None = None, *, max_tokens: int | None = None) -> str:
        converted = [self._convert(m) for m in messages]
        limit = max_tokens or self._max_tokens
        model: Runnable[LanguageModelInput, BaseMessage] = self._model
        if limit and self._limit_key == "max_tokens":
            model = self._model.bind(extra_body={"max_tokens": limit})
        elif limit:  # Ollama reads the limit from the model's own options
            model = self._model.model_copy(update={self._limit_key: limit})
        try:
            if stream is None:
                return model.invoke(converted).text
            pieces = []
            for chunk in model.stream(converted):
                text = chunk.text
                if text:
                    pieces.append(text)
                    stream(text)
            return "".join(pieces)
        except Exception as e:
            error = _translate(e, self._endpoint, self._name)
            if error is None:
                raise
            raise error from e

    def _convert(self, message: Message) -> BaseMessage:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        if message.role is Role.SYSTEM:
            return SystemMessage(content=message.text)
        if message.role is Role.ASSISTANT:
            return AIMessage(content=message.text)
        parts = _image_parts(message.images) if self._vision else []
        if not parts:
            return HumanMessage(content=message.text)
        return HumanMessage(content=[{"type": "text", "text": message.text}, *parts])


def _image_parts(images: Sequence[tuple[str, Path]]) -> list[str | dict[str, object]]:
    parts: list[str | dict[str, object]] = []
    for label, path in images:
        mime = _IMAGE_TYPES.get(path.suffix.lower())
        try:
            size = path.stat().st_size
        except OSError:
            log.info("image %s for %s is missing; sending its text only", path, label)
            continue
        if mime is None or size > MAX_IMAGE_BYTES:
            log.info("image %s for %s is not sent (type %s, %d bytes)", path, label, mime, size)
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append({"type": "text", "text": label})
        parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
    return parts


def _ollama(settings: LlmSettings) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    return ChatOllama(
        base_url=settings.endpoint,
        model=settings.model,
        temperature=settings.temperature,
        client_kwargs={"timeout": settings.timeout_s, "headers": headers},
    )


def _openai(settings: LlmSettings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key or NO_KEY,  # type: ignore[arg-type]  # pydantic coerces str to SecretStr
        model=settings.model,
        temperature=settings.temperature,
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
    )


BACKENDS: dict[str, Callable[[LlmSettings], BaseChatModel]] = {OPENAI: _openai, OLLAMA: _ollama}
"""Chat backends by name (``[models] llm_backend``): a new one is a function building a LangChain chat
model from ``LlmSettings`` and one line here. Config validates ``llm_backend`` against these names."""


def is_local(base_url: str) -> bool:
    """Whether ``base_url`` is a server on this machine (127.x, localhost, ::1)."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


def retries_for(base_url: str) -> int:
    """How often to resend a request that failed or timed out: never to a local server (one slot: a resend
    queues behind the request it is still computing), once to a remote one."""
    return 0 if is_local(base_url) else 1


def backend_for(base_url: str, backend: str = "") -> str:
    """The backend to use: the one named, else ``ollama`` for an ``ollama://`` URL, else ``openai``."""
    name = backend.strip().lower()
    if name:
        return name
    return OLLAMA if base_url.startswith(OLLAMA_SCHEME) else OPENAI


def connect(settings: LlmSettings) -> LangChainLlm:
    """Build the chat model for ``settings`` (nothing is sent until the first ``chat``)."""
    build = BACKENDS.get(settings.backend)
    if build is None:
        raise LlmError(f"unknown LLM backend {settings.backend!r} (use one of {', '.join(sorted(BACKENDS))})")
    key = "num_predict" if settings.backend == OLLAMA else "max_tokens"
    return LangChainLlm(
        build(settings),
        endpoint=settings.endpoint,
        vision=settings.vision,
        name=settings.model,
        max_tokens=settings.max_tokens,
        limit_key=key,
    )


def _translate(error: Exception, endpoint: str, model: str) -> LlmError | None:
    """A fixable failure as an ``LlmError`` naming the endpoint; None for anything else (a bug)."""
    import httpx
    from langchain_core import exceptions as lc

    where = f"the LLM at {endpoint}"
    named = f"model {model!r}" if model else "the server's default model"
    if isinstance(error, lc.ModelTimeoutError | httpx.TimeoutException | TimeoutError):
        return LlmUnavailable(
            f"{where} did not answer in time ({error}); check that the server is up and not overloaded"
        )
    if isinstance(error, lc.ModelConnectionError | httpx.TransportError | ConnectionError):
        return LlmUnavailable(
            f"cannot reach {where} ({error}); start the server or fix MMRAG_LLM_BASE_URL / [models] llm_base_url"
        )
    if isinstance(error, lc.ModelAuthenticationError | lc.ModelPermissionDeniedError):
        return LlmError(f"{where} refused the API key ({error}); set MMRAG_LLM_API_KEY / [models] llm_api_key")
    if isinstance(error, lc.ModelNotFoundError):
        return LlmError(f"{where} has no {named} ({error}); set MMRAG_LLM_MODEL / [models] llm_model")
    if isinstance(error, lc.ModelError):
        return LlmError(f"{where} failed: {error}")
    if type(error).__module__.startswith("ollama"):  # ollama.ResponseError: the server answered with an error
        return LlmError(f"{where} failed for {named}: {error}")
    return None
