"""Asking what is said in a recorded all-hands returns the moment whose seconds contain it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmrag.ingest.chunk import Modality, TimeSpan
from mmrag.pipeline.api import ask_index, ingest
from mmrag.pipeline.app import open_app
from mmrag.pipeline.config import Config

pytestmark = pytest.mark.slow


def test_ask_about_the_all_hands_cites_the_moment(tmp_path: Path, corpus: Path, cfg: Config) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    shutil.copy(corpus / "drive" / "media" / "video" / "all_hands_q3.mp4", drive / "all_hands_q3.mp4")
    report = ingest([drive], cfg)
    assert report.ingested == ["all_hands_q3.mp4"]
    index = open_app(cfg, create=False)
    try:
        answer, hits = ask_index(index, "Which rocket carried the satellite the speaker congratulates people on?")
    finally:
        index.close()
    assert not answer.declined and "Falcon 9" in answer.text
    moments = [h for h in hits[:3] if h.chunk.modality == Modality.MOMENT]
    assert moments, [h.chunk.modality for h in hits[:3]]
    span = moments[0].chunk.locator
    # the closing words come at about 33-37 s of the 42 s recording
    assert isinstance(span, TimeSpan) and span.start <= 33.0 and span.end >= 37.0
    assert any(c.hit.chunk.source == "all_hands_q3.mp4" and "start" in c.to_json()["locator"] for c in answer.citations)
