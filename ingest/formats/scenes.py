"""Where nothing is said in a video: the stretches without speech, and a moment per scene in them.

A transcript window locates what was said; where nothing is said (a video without speech, no
speech model, or a gap of ``SPEECH_GAP`` seconds or more between two things said) the keyframes
are the only time locators. ``silent_moments`` turns them into MOMENT chunks, one per scene:
consecutive keyframes showing the same text and labels, cited from the first one's time to the
last one's end, so "when does the logo appear" is answered 00:40-00:50, not with the whole video.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from mmrag.ingest.chunk import Chunk, Modality, TimeSpan
from mmrag.ingest.engines.speech import Segment

SPEECH_GAP = 15.0  # seconds without speech from which keyframes locate moments on their own


class Shown(Protocol):
    """A keyframe as a scene needs it (``video.Keyframe``)."""

    @property
    def time(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...
    @property
    def image(self) -> Path | None: ...
    @property
    def labels(self) -> tuple[str, ...]: ...


def silent_spans(segments: Sequence[Segment] | None, end: float, gap: float = SPEECH_GAP) -> list[tuple[float, float]]:
    """The stretches of ``[0, end]`` without speech lasting at least ``gap`` seconds (all of it when
    nothing was transcribed: no audio track, no speech model, or nothing said)."""
    if not segments:
        return [(0.0, end)]
    spans, last = [], 0.0
    for segment in sorted(segments, key=lambda s: s.start):
        if segment.start - last >= gap:
            spans.append((last, segment.start))
        last = max(last, segment.end)
    if end - last >= gap:
        spans.append((last, end))
    return spans


def within(spans: Sequence[tuple[float, float]]) -> Callable[[float], bool]:
    """Whether a time falls in one of ``spans``."""
    return lambda t: any(start <= t < end for start, end in spans)


def on_screen(frame: Shown) -> str:
    """A keyframe in words: the text read on it and what it looks like ("" when neither is known)."""
    lines = [line.strip() for line in frame.text.splitlines() if line.strip()]
    parts = ["On screen: " + " / ".join(dict.fromkeys(lines))] if lines else []
    if frame.labels:
        parts.append("Looks like: " + ", ".join(frame.labels))
    return "\n".join(parts)


def silent_moments(
    source: str, title: str, frames: Sequence[Shown], spans: Sequence[tuple[float, float]]
) -> list[Chunk]:
    """One MOMENT per scene within ``spans``; a scene with nothing to say about it gives none."""
    chunks: list[Chunk] = []
    for start, end in spans:
        scene: list[Shown] = []
        for frame in [*(f for f in frames if f.time < end and f.end > start), None]:
            if scene and (frame is None or on_screen(frame) != on_screen(scene[0])):
                text = on_screen(scene[0])
                if text:
                    span = TimeSpan(max(start, scene[0].time), min(end, scene[-1].end))
                    extra = (("frames", ",".join(f"{f.time:.2f}" for f in scene)),)
                    chunks.append(
                        Chunk(source, Modality.MOMENT, span, text, title=title, image=scene[0].image, extra=extra)
                    )
                scene = []
            if frame is not None:
                scene.append(frame)
    return chunks
