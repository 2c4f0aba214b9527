"""Input builders for the ingest tests: files are generated in tmp_path, never checked in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from builders import build_pdf
from fakes import FakeTranscriber

from mmrag.ingest.engines.speech import Segment, Transcriber


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    def make(
        pages: Sequence[Sequence[str]],
        name: str = "doc.pdf",
        title: str = "",
        to_unicode: Callable[[int], int] | None = None,
    ) -> Path:
        path = tmp_path / name
        path.write_bytes(build_pdf(pages, title, to_unicode))
        return path

    return make


@pytest.fixture
def fake_speech(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[Segment]], FakeTranscriber]:
    """Makes the audio and video ingestors hear ``segments`` (when a speech model location is set)."""
    import mmrag.ingest.formats.audio as audio_module

    def install(segments: list[Segment]) -> FakeTranscriber:
        fake = FakeTranscriber(segments)

        def transcriber_for(backend: str, location: str, cpu_threads: int = 2) -> Transcriber | None:
            return fake if location else None

        monkeypatch.setattr(audio_module, "transcriber_for", transcriber_for)
        return fake

    return install
