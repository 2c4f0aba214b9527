"""Ingestor for videos (MP4, MOV, MKV, AVI, WebM): what was shown, what was said, and both together.

- FRAME chunks: keyframes, located at ``TimeSpan(t, next keyframe or end)``, with the frame as a
  JPEG under ``media_dir`` and its text "Frame at mm:ss" plus the text read in it (OCR).
- SPEECH chunks: the audio track's transcript windows, exactly as for audio files.
- MOMENT chunks: one per transcript window, joining what was said with the text on screen during
  it; its image is the keyframe on screen at the window's middle, so a visual encoder embeds it.
  Where nothing is said (a video without speech, or a long gap in it: ``scenes.SPEECH_GAP``),
  one MOMENT per scene instead: from a keyframe to the next one that shows something else,
  with the text read on screen and what the frame looks like (ImageNet labels), so "when does the
  logo appear" is cited 00:40-00:50, not the whole video.

Frames are decoded with PyAV, which measured 2-3x faster here than OpenCV's ``grab()`` on H.264
(multi-threaded decoding, and non-reference frames skipped: they are never needed for sampling).
Every ``SAMPLE_STEP`` seconds a frame is scaled down to a small image, and
``KeyframeSelector`` decides from those alone which frames to keep: scene cuts (most pixels and
colours change at once; a camera pan changes pixels, not colours), content changes
that have settled (a new slide or bullet, a page scrolled), and at least one frame every
``keyframe_max_interval`` seconds unless it is a near-duplicate of the last one (dHash). Where
nothing is said, the frames are the only time locators, so there a periodic frame is a duplicate
only when almost no pixel changed (a caption too small for the other tests still counts).
Only kept frames are converted at full size.

OCR of one frame costs about as much CPU as decoding a minute of 720p video (~1.2 s), so
``OcrBudget`` lets a long video read about one frame per ``OCR_EVERY`` seconds, favouring frames
where the picture changed over the periodic ones; frames over the budget keep their image and time.
Measured on a 1-hour 720p30 H.264 slide video, 2 shared cores: ~9 minutes in all (frames 110 s,
OCR 250 s for 127 frames, transcription 170 s).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, TimeSpan
from mmrag.ingest.detect import media_format
from mmrag.ingest.engines.speech import Segment, speech_windows
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats.audio import AudioIngestor, speech_chunks, transcribe_segments
from mmrag.ingest.formats.scenes import silent_moments, silent_spans, within

log = logging.getLogger(__name__)

GrayArray = npt.NDArray[np.uint8]

NO_FRAMES = "no video frames could be decoded (damaged file or unsupported codec)"
SAMPLE_STEP = 0.5  # seconds between the frames compared for changes
_SMALL_WIDTH = 160  # width of the grey image frames are compared at
_PIXEL_DELTA = 24  # grey levels a pixel must move to count as changed (above compression noise)
_CUT_SHARE = 0.3  # share of pixels changed since the previous sample, and
_CUT_COLOURS = 0.3  # share of the colour histogram moved since then: a cut (a camera pan moves few colours)
_CHANGE_SHARE = 0.005  # share of pixels changed since the last keyframe and now steady: new content
_STILL_SHARE = 0.02  # at most this share moving between two samples: the picture has settled
_MIN_CUT_GAP = 1.0  # seconds since the last keyframe before a cut or a change counts:
_MIN_CHANGE_GAP = 2.0  # against strobes, fades and a fidgeting speaker
_NEAR_DUPLICATE_BITS = 6  # dHash Hamming distance at or under which a periodic frame repeats the last
_SILENT_SAME_SHARE = 0.001  # where nothing is said, a periodic frame with fewer pixels changed repeats the last
_OCR_MAX_SIDE = 1600
OCR_FIRST = 8  # frames any video may read
OCR_EVERY = 30.0  # seconds of video that earn one more OCR read


class Reason(StrEnum):
    """Why a frame was kept."""

    FIRST = "first"
    CUT = "cut"
    CHANGE = "change"
    DUE = "due"


@dataclass(frozen=True, slots=True, eq=False)
class Sample:
    """A sampled frame as the selector sees it: its time, a small grey image and colour histogram, the frame."""

    time: float
    gray: GrayArray
    hist: npt.NDArray[np.float32]
    frame: object = None

    @classmethod
    def of(cls, time: float, rgb: npt.NDArray[np.uint8], frame: object = None) -> Sample:
        """A sample from a small RGB rendering of the frame (a few thousand pixels)."""
        import cv2

        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        counts = np.asarray(cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]), np.float32)
        gray = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
        hist = (counts.reshape(-1) / max(1.0, float(counts.sum()))).astype(np.float32)
        return cls(time, gray, hist, frame)

    def dhash(self) -> int:
        import cv2

        small = cv2.resize(self.gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
        bits = (small[:, 1:] > small[:, :-1]).reshape(-1)
        return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def _changed(a: GrayArray, b: GrayArray) -> npt.NDArray[np.bool_]:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)) > _PIXEL_DELTA


class KeyframeSelector:
    """Decides, one sample at a time, which sampled frames become keyframes (a pure state machine).

    ``offer`` returns the sample to keep and why, or ``None``. A settled change keeps the *previous*
    sample, the first one that showed the new content; the others keep the sample just offered.
    """

    def __init__(self, max_interval: float, silent: Callable[[float], bool] | None = None) -> None:
        self.max_interval = max_interval
        self.silent = silent  # whether nothing is said at a time (then periodic frames are compared finely)
        self._kept: Sample | None = None
        self._kept_hash = 0
        self._previous: Sample | None = None

    def offer(self, sample: Sample) -> tuple[Sample, Reason] | None:
        kept, previous = self._kept, self._previous
        self._previous = sample
        if kept is None or previous is None or kept.gray.shape != sample.gray.shape:
            return self._keep(sample, Reason.FIRST)
        moving = _changed(sample.gray, previous.gray)
        since_kept = _changed(sample.gray, kept.gray)
        colours = 0.5 * float(np.abs(sample.hist - previous.hist).sum())
        cut = colours >= _CUT_COLOURS and min(float(moving.mean()), float(since_kept.mean())) >= _CUT_SHARE
        if cut and sample.time - kept.time >= _MIN_CUT_GAP:
            return self._keep(sample, Reason.CUT)
        steady_change = float((since_kept & ~moving).mean())
        if (
            steady_change >= _CHANGE_SHARE
            and float(moving.mean()) < _STILL_SHARE
            and previous.time - kept.time >= _MIN_CHANGE_GAP
        ):
            return self._keep(previous, Reason.CHANGE)
        if sample.time - kept.time >= self.max_interval and not self._repeats_kept(sample, since_kept):
            return self._keep(sample, Reason.DUE)
        return None

    def _repeats_kept(self, sample: Sample, since_kept: npt.NDArray[np.bool_]) -> bool:
        if bin(sample.dhash() ^ self._kept_hash).count("1") > _NEAR_DUPLICATE_BITS:
            return False
        return self.silent is None or not self.silent(sample.time) or float(since_kept.mean()) < _SILENT_SAME_SHARE

    def _keep(self, sample: Sample, reason: Reason) -> tuple[Sample, Reason]:
        self._kept, self._kept_hash = sample, sample.dhash()
        return sample, reason


class OcrBudget:
    """How many keyframes may be read: ``first`` at once, one more per ``every`` seconds of video.

    Periodic (DUE) frames only read while a spare read is left for the next change of picture.
    """

    def __init__(self, first: int = OCR_FIRST, every: float = OCR_EVERY) -> None:
        self.first, self.every = first, every
        self._used = 0

    def take(self, time: float, reason: Reason) -> bool:
        left = self.first + int(max(0.0, time) / self.every) - self._used
        if left >= (2 if reason == Reason.DUE else 1):
            self._used += 1
            return True
        return False


@dataclass(frozen=True, slots=True)
class Keyframe:
    """A kept frame: shown from ``time`` until ``end``, the text read in it, its image file, and
    (where nothing is said) what it looks like."""

    time: float
    end: float
    text: str = ""
    image: Path | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tracks:
    """Which kinds of track a media file has (a video track means real video, not cover art)."""

    video: bool
    audio: bool


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` past an hour), as citations show times."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _open(path: Path) -> Any:
    import av

    try:
        return av.open(str(path), format=media_format(path))
    except (av.FFmpegError, ValueError, OSError) as e:
        raise IngestError(path, f"not a readable video file (damaged, truncated or not media: {e})") from e


def _video_stream(container: Any) -> Any:
    for stream in container.streams.video:
        if not stream.disposition & 0x400:  # AV_DISPOSITION_ATTACHED_PIC: cover art, not video
            return stream
    return None


def probe_tracks(path: Path, max_pixels: int) -> Tracks:
    """Which tracks ``path`` has; ``IngestError`` if it is not media or its frames are over ``max_pixels``."""
    container = _open(path)
    try:
        stream = _video_stream(container)
        if stream is not None:
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > max_pixels:
                raise IngestError(
                    path,
                    f"video frames are {width}×{height} pixels, over the limit of {max_pixels} "
                    "(raise [limits] max_image_pixels)",
                )
        return Tracks(video=stream is not None, audio=bool(container.streams.audio))
    finally:
        container.close()


def read_keyframes(
    path: Path, source: str, media: MediaConfig, silent: Callable[[float], bool] | None = None
) -> Iterator[Keyframe]:
    """The keyframes of ``path``'s video track, each as soon as the next one (or the end) is known.

    ``silent`` says where nothing is said: there frames are kept more finely and labelled.
    """
    import av

    from mmrag.ingest.engines.ocr import ocr_engine

    engine = ocr_engine(media.ocr_engine, media.cpu_threads)
    selector, budget = KeyframeSelector(media.keyframe_max_interval, silent), OcrBudget()
    pending: tuple[float, str, Path | None, tuple[str, ...]] | None = None
    container = _open(path)
    try:
        stream = _video_stream(container)
        if stream is None:
            raise IngestError(path, NO_FRAMES)
        context = stream.codec_context
        if context is None:
            raise IngestError(path, f"{NO_FRAMES}: no decoder for this video codec")
        context.thread_type, context.thread_count = "AUTO", max(1, media.cpu_threads)
        context.skip_frame = "NONREF"
        rate = float(stream.average_rate or 25)
        announced = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        origin = max(0.0, float(container.start_time or 0) / 1_000_000)  # times count from the file's start
        decoded = packets = bad = 0
        next_sample, last_time = 0.0, 0.0
        for packet in container.demux(stream):
            packets += 1
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                bad += 1
                log.debug("%s: skipped an undecodable video packet: %s", path, e)
                continue
            for frame in frames:
                time = max(0.0, float(frame.time) - origin) if frame.time is not None else decoded / rate
                decoded += 1
                last_time = max(last_time, time)
                if time + 1e-6 < next_sample:
                    continue
                next_sample = (int(time / SAMPLE_STEP + 1e-6) + 1) * SAMPLE_STEP
                small = frame.to_ndarray(
                    format="rgb24", width=_SMALL_WIDTH, height=_small_height(frame), interpolation="AREA"
                )
                chosen = selector.offer(Sample.of(time, small, frame))
                if chosen is None:
                    continue
                kept, reason = chosen
                read = engine is not None and budget.take(kept.time, reason)
                label = silent is not None and silent(kept.time)
                text, image, labels = _keep_frame(
                    kept.frame, kept.time, source, media, engine if read else None, path, label
                )
                if pending is not None:
                    yield Keyframe(pending[0], kept.time, *pending[1:])
                pending = (kept.time, text, image, labels)
    except av.FFmpegError as e:
        raise IngestError(path, f"damaged video track ({e})") from e
    finally:
        container.close()
    if pending is None or (packets and bad > packets // 2):
        raise IngestError(path, NO_FRAMES)
    end = last_time + 1.0 / rate
    if announced is not None and announced >= 2.0 and end < 0.8 * announced:
        raise IngestError(
            path,
            f"truncated video: only {end:.1f} s of {announced:.1f} s could be decoded (incomplete download or copy?)",
        )
    yield Keyframe(pending[0], max(end, pending[0]), *pending[1:])


def _small_height(frame: Any) -> int:
    return max(8, min(4 * _SMALL_WIDTH, round(_SMALL_WIDTH * int(frame.height) / max(1, int(frame.width)))))


def _keep_frame(
    frame: Any, time: float, source: str, media: MediaConfig, engine: Any, path: Path, label: bool = False
) -> tuple[str, Path | None, tuple[str, ...]]:
    """Read the text in a kept frame (when ``engine`` is given), save its JPEG, label it (with
    ``label``, when the labeler is installed); all optional."""
    labeler = _labeler() if label else None
    if engine is None and media.media_dir is None and labeler is None:
        return "", None, ()
    scale = min(1.0, _OCR_MAX_SIDE / max(frame.width, frame.height, 1))
    rgb = frame.to_ndarray(
        format="rgb24", width=max(1, round(frame.width * scale)), height=max(1, round(frame.height * scale))
    )
    text = ""
    if engine is not None:
        try:
            text = engine.read(rgb).strip()
        except Exception:  # one frame the OCR engine chokes on must not lose the video
            log.warning("%s: OCR failed on the frame at %s", path, clock(time), exc_info=True)
    labels = _labels(labeler, rgb, text, media.wordnet_dir) if labeler is not None else ()
    image = None
    if media.media_dir is not None:
        from PIL import Image

        from mmrag.ingest.engines.thumbs import save_thumbnail

        key = f"{source}\x00frame\x00{time:.3f}"
        image = save_thumbnail(Image.fromarray(rgb, "RGB"), media.media_dir, key, media.thumbnail_px)
    return text, image, labels


def _labels(labeler: Any, rgb: npt.NDArray[np.uint8], text: str, wordnet_dir: str) -> tuple[str, ...]:
    """What the frame looks like, then what that is a kind of (as for photos: a frame that is mostly
    text keeps only confident labels)."""
    from PIL import Image

    from mmrag.ingest.formats.images import label_kinds

    labels = labeler.labels(Image.fromarray(rgb, "RGB"), min_probability=0.5 if len(text.split()) >= 5 else 0.1)
    return (*labels, *label_kinds(labels, wordnet_dir))


def _labeler() -> Any:
    """The photo labeler when it is installed, else None."""
    from mmrag.ingest.formats import images

    labeler = images.image_labeler()
    return labeler if labeler.available else None


def frame_chunk(source: str, title: str, frame: Keyframe) -> Chunk:
    """A keyframe as evidence: "Frame at mm:ss" and the text read in it, cited by the seconds it is on screen."""
    text = f"Frame at {clock(frame.time)}" + (f"\n{frame.text}" if frame.text else "")
    return Chunk(source, Modality.FRAME, TimeSpan(frame.time, frame.end), text, title=title, image=frame.image)


def frames_during(window: Segment, frames: Sequence[Keyframe]) -> list[Keyframe]:
    """The keyframes on screen during ``window``: at least 1 s of it (or half of a short one), else the most."""

    def overlap(f: Keyframe) -> float:
        return min(f.end, window.end) - max(f.time, window.start)

    needed = min(1.0, (window.end - window.start) / 2)
    shown = [f for f in frames if overlap(f) >= needed and overlap(f) > 0]
    if not shown and frames:
        shown = [max(frames, key=overlap)]
    return shown


def moment_chunk(source: str, title: str, window: Segment, frames: Sequence[Keyframe]) -> Chunk:
    """What was said during ``window`` with the text on screen meanwhile, pictured by the middle frame."""
    shown = frames_during(window, frames)
    lines: list[str] = []
    for frame in shown:
        lines.extend(line for line in frame.text.splitlines() if line.strip() and line not in lines)
    text = window.text + ("\n\nOn screen: " + " / ".join(lines) if lines else "")
    middle = (window.start + window.end) / 2
    pictured = next((f for f in shown if f.time <= middle < f.end), None) or min(
        shown, key=lambda f: abs(f.time - middle), default=None
    )
    return Chunk(
        source,
        Modality.MOMENT,
        TimeSpan(window.start, window.end),
        text,
        title=title,
        image=pictured.image if pictured else None,
        extra=(("frames", ",".join(f"{f.time:.2f}" for f in shown)),),
    )


@dataclass(frozen=True, slots=True)
class VideoIngestor:
    """Video files: FRAME chunks (keyframes), SPEECH chunks (transcript windows), MOMENT chunks (both)."""

    settings: IngestSettings = field(default_factory=IngestSettings)

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        media = self.settings.media
        tracks = probe_tracks(path, media.max_image_pixels)
        if not tracks.video:
            if not tracks.audio:
                raise IngestError(path, "no video or audio track (nothing to index)")
            yield from AudioIngestor(self.settings).ingest(path, source)  # an audio-only file named .mp4/.webm
            return
        title = path.stem
        segments = transcribe_segments(path, media) if tracks.audio else None
        # where nothing is said is known before the frames are read: there they are kept more finely
        frames: list[Keyframe] = []
        for frame in read_keyframes(path, source, media, within(silent_spans(segments, float("inf")))):
            frames.append(frame)
            yield frame_chunk(source, title, frame)
        windows = speech_windows(segments, media.speech_window) if segments else []
        if windows:
            yield from speech_chunks(source, title, windows)
            for window in windows:
                yield moment_chunk(source, title, window, frames)
        yield from silent_moments(source, title, frames, silent_spans(segments, frames[-1].end))
