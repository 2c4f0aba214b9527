"""Speech: transcript windows, audio decoding with PyAV, transcriber caching, the openai-whisper backend."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from mmrag.ingest.engines.speech import (
    ChannelStats,
    FasterWhisperTranscriber,
    OpenAIWhisperTranscriber,
    Segment,
    SpeechModelError,
    decode_audio,
    ends_sentence,
    is_silent,
    speech_windows,
    transcriber_for,
)
from mmrag.ingest.errors import IngestError


def seg(start: float, end: float, text: str) -> Segment:
    return Segment(start, end, text)


def spans(windows: list[Segment]) -> list[tuple[float, float]]:
    return [(w.start, w.end) for w in windows]


def write_wav(path: Path, samples: np.ndarray, sr: int, channels: int = 1) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sr)
        out.writeframes(np.repeat(pcm, channels).tobytes())
    return path


# --- windows ---------------------------------------------------------------------------------------


def test_window_closes_at_the_first_sentence_end_past_the_minimum() -> None:
    segments = [
        seg(0, 10, "One."),
        seg(10, 20, "Two"),
        seg(20, 28, "three."),
        seg(28, 33, "Four and"),
        seg(33, 41, "five."),
    ]
    segments += [seg(41, 70, "Six is long."), seg(70, 100, "Seven.")]
    windows = speech_windows(segments, (30, 60))
    assert spans(windows) == [(0, 41), (41, 100)]
    assert windows[0].text == "One. Two three. Four and five."


def test_window_never_exceeds_the_maximum_without_a_sentence_end() -> None:
    segments = [seg(i * 10, i * 10 + 10, f"words {i}") for i in range(10)]
    windows = speech_windows(segments, (30, 60))
    assert spans(windows) == [(0, 60), (60, 100)]
    assert all(w.end - w.start <= 60 for w in windows)


def test_a_short_recording_is_one_window_with_exact_times() -> None:
    windows = speech_windows([seg(0.32, 4.5, "Hello there."), seg(5.1, 9.87, "How are you?")], (30, 60))
    assert windows == [Segment(0.32, 9.87, "Hello there. How are you?")]


def test_a_short_tail_joins_the_window_before_only_if_it_fits() -> None:
    joined = speech_windows([seg(0, 31, "Long part."), seg(31, 36, "Thanks.")], (30, 60))
    assert spans(joined) == [(0, 36)]
    apart = speech_windows([seg(0, 58, "Long part."), seg(58, 63, "Thanks.")], (30, 60))
    assert spans(apart) == [(0, 58), (58, 63)]


def test_a_segment_longer_than_the_maximum_is_a_window_of_its_own() -> None:
    windows = speech_windows([seg(0, 5, "Intro"), seg(5, 20, "very long monologue"), seg(20, 22, "end.")], (4, 10))
    assert spans(windows) == [(0, 5), (5, 20), (20, 22)]


def test_no_segments_no_windows() -> None:
    assert speech_windows([], (30, 60)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Done.", True),
        ("Really?", True),
        ('He said "stop!"', True),
        ("(as planned.)", True),
        ("and then", False),
        ("e.g", False),
    ],
)
def test_sentence_ends(text: str, expected: bool) -> None:
    assert ends_sentence(text) is expected


# --- decoding --------------------------------------------------------------------------------------


def test_decode_audio_resamples_stereo_to_16k_mono(tmp_path: Path) -> None:
    sr = 44_100
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(sr * 1.5)) / sr)
    audio = decode_audio(write_wav(tmp_path / "tone.wav", tone, sr, channels=2))
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert abs(audio.size - 24_000) < 200
    assert 0.4 < float(np.abs(audio).max()) < 0.8  # FFmpeg's stereo-to-mono downmix is -3 dB per channel


def write_stereo(path: Path, left: np.ndarray, right: np.ndarray, sr: int) -> Path:
    pcm = (np.clip(np.stack([left, right], axis=1), -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sr)
        out.writeframes(pcm.tobytes())
    return path


def two_channels() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sr = 16_000
    t = np.arange(4 * sr) / sr
    first, second = (t < 2).astype(float), (t >= 2).astype(float)

    def tone(hz: float) -> np.ndarray:
        return 0.3 * np.sin(2 * np.pi * hz * t)

    room = np.random.default_rng(3).standard_normal(t.size) * 0.1 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    return {
        "one speaker per channel, taking turns": (tone(440) * first, tone(660) * second),
        "one speaker per channel, at once": (tone(440), tone(660)),
        "the same on both": (tone(440), tone(440)),
        "panned": (tone(440), 0.4 * tone(440)),
        "left only": (tone(440), np.zeros_like(t)),
        "two microphones in one room": (room, 0.8 * np.roll(room, 300)),  # delayed: samples differ, loudness not
    }


@pytest.mark.parametrize(
    ("name", "differ"),
    [
        ("one speaker per channel, taking turns", True),
        ("one speaker per channel, at once", True),
        ("the same on both", False),
        ("panned", False),
        ("left only", False),
        ("two microphones in one room", False),
    ],
)
def test_channel_stats_tell_one_recording_from_two(tmp_path: Path, name: str, differ: bool) -> None:
    left, right = two_channels()[name]
    path = write_stereo(tmp_path / "call.wav", left, right, 16_000)
    stats = ChannelStats()
    mix = decode_audio(path, stats=stats)
    assert stats.differ() is differ
    channels = [decode_audio(path, channel=i) for i in (0, 1)]
    assert [c.size for c in channels] == [mix.size, mix.size]
    for channel, original in zip(channels, (left, right), strict=True):  # each channel is that channel
        assert float(np.sqrt(np.mean(channel**2))) == pytest.approx(float(np.sqrt(np.mean(original**2))), rel=0.15, abs=1e-4)


def test_a_mono_file_has_no_channels_to_tell_apart(tmp_path: Path) -> None:
    sr = 16_000
    path = write_wav(tmp_path / "mono.wav", 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr), sr)
    stats = ChannelStats()
    assert np.array_equal(decode_audio(path, stats=stats), decode_audio(path, channel=1))
    assert not stats.differ()


def test_decode_audio_of_a_file_without_audio_track(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "silent_film.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(5):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    with pytest.raises(IngestError) as e:
        decode_audio(path)
    assert e.value.reason == "no audio track"


def test_decode_audio_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    with pytest.raises(IngestError, match="not a readable audio or video file"):
        decode_audio(path)


def test_decode_audio_of_a_truncated_file(tmp_path: Path) -> None:
    import av

    path = tmp_path / "speech.flac"
    sr = 16_000
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=sr)
        stream.layout = "mono"
        samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr * 6) / sr) * 32767).astype(np.int16)
        for start in range(0, samples.size, 4096):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 4096], format="s16", layout="mono")
            frame.sample_rate, frame.pts = sr, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert abs(decode_audio(path).size - sr * 6) < 100
    data = path.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(IngestError, match=r"truncated audio: only \d+\.\d s of 6\.0 s"):
        decode_audio(cut)


# --- transcribers ----------------------------------------------------------------------------------


def test_transcriber_for_is_none_without_a_model_and_shared_otherwise(tmp_path: Path) -> None:
    assert transcriber_for("faster-whisper", "", 2) is None
    assert transcriber_for("espeak", str(tmp_path), 2) is None
    first = transcriber_for("faster-whisper", str(tmp_path / "model"), 2)
    assert isinstance(first, FasterWhisperTranscriber)
    assert transcriber_for("faster-whisper", str(tmp_path / "model"), 2) is first
    assert isinstance(transcriber_for("openai-whisper", str(tmp_path / "tiny.pt"), 2), OpenAIWhisperTranscriber)


def test_silence_is_not_transcribed_and_loads_nothing(tmp_path: Path) -> None:
    transcriber = FasterWhisperTranscriber(str(tmp_path / "missing-model"))
    silence = np.zeros(16_000 * 3, np.float32)
    assert is_silent(silence)
    assert transcriber.transcribe(silence) == []
    with pytest.raises(SpeechModelError, match="no faster-whisper model folder at"):
        transcriber.transcribe(np.full(16_000, 0.1, np.float32))


def test_openai_whisper_backend_runs_end_to_end_with_a_random_tiny_model() -> None:
    torch = pytest.importorskip("torch")
    whisper_model = pytest.importorskip("whisper.model")
    torch.manual_seed(0)
    dims = whisper_model.ModelDimensions(
        n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
        n_vocab=51864, n_text_ctx=64, n_text_state=64, n_text_head=2, n_text_layer=1,
    )  # fmt: skip
    model = whisper_model.Whisper(dims).eval()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16_000 * 4)).astype(np.float32)
    segments = OpenAIWhisperTranscriber(model, temperatures=(0.0,)).transcribe(
        audio
    )  # random text never passes the fallback checks
    assert isinstance(segments, list)
    assert all(isinstance(s, Segment) and 0 <= s.start <= s.end and s.text for s in segments)
