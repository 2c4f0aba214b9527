"""Recordings whose name lies about what they are are opened as what their content is."""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeTranscriber

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Modality
from mmrag.ingest.detect import detect, media_format
from mmrag.ingest.engines.speech import Segment
from mmrag.ingest.filetypes import ingestor_for

SR = 16_000


def id3_tag(payload: int) -> bytes:
    """An ID3v2.3 tag holding one private frame of ``payload`` bytes (a tag as a music player writes it)."""
    body = b"mmrag\0" + np.random.default_rng(7).bytes(payload)  # cover art, say: bytes of any value
    frame = b"PRIV" + struct.pack(">I", len(body)) + b"\0\0" + body
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def write_mp3(path: Path, seconds: float, *, id3: bool) -> Path:
    """A sine as MP3, starting with a 2 KB ID3 tag or with a bare MPEG frame sync."""
    import av

    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(SR * seconds)) / SR)).astype(np.float32)
    with av.open(str(path), "w", format="mp3", options={"id3v2_version": "0", "write_xing": "0"}) as out:
        stream = out.add_stream("mp3", rate=SR)
        stream.layout = "mono"
        for start in range(0, samples.size, 1152):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1152], format="flt", layout="mono")
            frame.sample_rate = SR
            frame.pts = start
            frame.time_base = Fraction(1, SR)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    if id3:  # FFmpeg, guessing from the name, took this one for a JPEG picture with no audio track
        path.write_bytes(id3_tag(2000) + path.read_bytes())
    return path


@pytest.mark.parametrize("id3", [False, True])
def test_an_mp3_named_jpg_is_transcribed(
    id3: bool, tmp_path: Path, fake_speech: Callable[[list[Segment]], FakeTranscriber]
) -> None:
    fake = fake_speech([Segment(0.0, 2.5, "The budget was approved.")])
    path = write_mp3(tmp_path / "voice-memo.jpg", 3.0, id3=id3)
    assert path.read_bytes().startswith(b"ID3") == id3
    found = detect(path)
    assert found.kind == "audio" and media_format(path) == "mp3"
    ingestor = ingestor_for(found.kind, IngestSettings(media=MediaConfig(speech_location="in-test")))
    assert ingestor is not None
    chunks = list(ingestor.ingest(path, "voice-memo.jpg"))
    assert [(c.modality, c.text) for c in chunks] == [(Modality.SPEECH, "The budget was approved.")]
    assert abs(fake.heard[0] / SR - 3.0) < 0.2, "the whole recording was decoded"
