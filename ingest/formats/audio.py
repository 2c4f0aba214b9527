"""Ingestor for recordings (WAV, MP3, M4A, FLAC, OGG): what was said, cited by its seconds.

The whole file is transcribed with the configured Whisper backend (a two-channel recording whose
channels hold different speakers, such as a call, channel by channel: each segment then starts
with "[channel 1]" or "[channel 2]", merged in time order), and the segments are grouped
into transcript windows (``MediaConfig.speech_window``, cut at sentence ends). Each window is one
SPEECH chunk located at ``TimeSpan(first segment start, last segment end)``; its text is the plain
transcript (the citation already shows the span, and times in the text would only blur its
embedding). The video ingestor uses the same functions for a video's audio track.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, TimeSpan
from mmrag.ingest.engines.speech import (
    ChannelStats,
    Segment,
    SpeechModelError,
    Transcriber,
    decode_audio,
    speech_windows,
    transcriber_for,
)
from mmrag.ingest.errors import IngestError

NO_MODEL = "no speech model available (see `mmrag models`)"
NO_SPEECH = "no speech found (silent or music-only audio)"


def transcribe_file(path: Path, media: MediaConfig) -> list[Segment] | None:
    """The transcript windows of ``path``'s first audio track; ``None`` when no speech model is configured.

    Raises ``IngestError`` for a file without audio track or with undecodable audio, and when the
    configured model cannot be loaded (the reason then says where it was looked for).
    """
    segments = transcribe_segments(path, media)
    return None if segments is None else speech_windows(segments, media.speech_window)


def transcribe_segments(path: Path, media: MediaConfig) -> list[Segment] | None:
    """What was said in ``path``'s first audio track, segment by segment (``transcribe_file``'s input).

    Two channels with different speakers are transcribed one by one, their segments marked with
    the channel and merged by time; any other track is transcribed as one mix.
    """
    transcriber = transcriber_for(media.speech_backend, media.speech_location, media.cpu_threads)
    if transcriber is None:
        return None
    stats = ChannelStats()
    audio = decode_audio(path, stats=stats)
    try:
        if not stats.differ():
            return transcriber.transcribe(audio)
        del audio  # the channels are decoded one at a time: no more memory than the mix
        return _per_channel(path, transcriber)
    except SpeechModelError as e:
        raise IngestError(path, f"{e} (see `mmrag models`)") from e


def _per_channel(path: Path, transcriber: Transcriber) -> list[Segment]:
    marked = []
    for channel in (0, 1):
        for segment in transcriber.transcribe(decode_audio(path, channel=channel)):
            marked.append(Segment(segment.start, segment.end, f"[channel {channel + 1}] {segment.text}"))
    return sorted(marked, key=lambda s: (s.start, s.end))


def speech_chunks(source: str, title: str, windows: list[Segment]) -> list[Chunk]:
    """One SPEECH chunk per transcript window, located at the window's exact seconds."""
    return [Chunk(source, Modality.SPEECH, TimeSpan(w.start, w.end), w.text, title=title) for w in windows]


@dataclass(frozen=True, slots=True)
class AudioIngestor:
    """Audio files: SPEECH chunks, one per transcript window, cited as ``TimeSpan(start, end)``."""

    settings: IngestSettings = field(default_factory=IngestSettings)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        windows = transcribe_file(path, self.settings.media)
        if windows is None:
            raise IngestError(path, NO_MODEL)
        if not windows:
            raise IngestError(path, NO_SPEECH)
        yield from speech_chunks(source, path.stem, windows)
