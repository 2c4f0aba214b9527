"""Query by example image: visual neighbours (random-init CLIP: mechanics only) and the description path (OCR)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Modality
from mmrag.ingest.formats import images as images_module
from mmrag.ingest.formats.images import ImageLabeler
from mmrag.pipeline.api import Filters
from mmrag.pipeline.app import App, open_app
from mmrag.pipeline.config import Config, load_config
from mmrag.pipeline.image_query import ImageQueryError, describe_image, image_search_notices, search_by_image
from mmrag.pipeline.ingest_run import run_ingest
from mmrag.retrieval.clip import ClipEncoder
from mmrag.retrieval.embed import HashEmbedder

NO_OCR = IngestSettings(media=MediaConfig(ocr_engine=""))


@pytest.fixture
def no_labeler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fast tests do not load the ImageNet labeler even where its package is installed."""
    missing = ImageLabeler(weights=tmp_path / "no-such-weights.pth")
    monkeypatch.setattr(images_module, "image_labeler", lambda: missing)


def picture(seed: int, size: tuple[int, int] = (240, 180)) -> Image.Image:
    """A plain background with coloured boxes: every seed a clearly different picture, no text in it."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = int(rng.integers(0, size[0] - 60)), int(rng.integers(0, size[1] - 40))
        draw.rectangle((x, y, x + 60, y + 40), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


def text_picture(text: str, size: tuple[int, int] = (900, 260)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((40, 70), text, fill="black", font=ImageFont.load_default(size=96))
    return image


def write_drive(root: Path, photos: bool = True) -> Path:
    (root / "docs").mkdir(parents=True)
    if photos:
        (root / "photos").mkdir()
        for seed in range(5):
            picture(seed).save(root / "photos" / f"IMG_{1000 + seed}.png")  # camera names: no words to match
    (root / "docs" / "invoices.txt").write_text("Invoice 4711 from Acme Office Supplies: 12 chairs, due 30 June.\n")
    (root / "docs" / "travel.txt").write_text("Travel policy: book trains for trips under 500 kilometres.\n")
    (root / "docs" / "ducks.txt").write_text("A male duck is called a drake.\n")
    return root


def tiny_clip(folder: Path) -> ClipEncoder:
    """A random-init two-layer open_clip: the real code paths at a fraction of ViT-B-32's seconds."""
    import json

    import open_clip

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
    path = folder / "mmrag-tiny-query-test.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return ClipEncoder.random_init_for_tests("mmrag-tiny-query-test")


@pytest.fixture(scope="module")
def clip_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """Five pictures and three texts, indexed with a random-init CLIP; no OCR or labels (nothing to read)."""
    root = tmp_path_factory.mktemp("clip")
    cfg = load_config(index_dir=root / "index", env={"XDG_CONFIG_HOME": str(root / "config")})
    clip = tiny_clip(root)
    index = open_app(cfg, create=True, embedder=HashEmbedder(), visual=clip)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(images_module, "image_labeler", lambda: ImageLabeler(weights=root / "none.pth"))
            patch.setattr(images_module, "ocr_engine", lambda *_: None)
            report = run_ingest([write_drive(root / "drive")], index)
        assert report.skipped == [] and len(report.ingested) == 8
        yield index
    finally:
        index.close()


def test_an_indexed_image_is_its_own_nearest_image(clip_index: App, no_labeler: None) -> None:
    query = clip_index.path.parent / "drive" / "photos" / "IMG_1003.png"
    assert describe_image(query, NO_OCR) == ""  # nothing in words: only the visual search can rank it
    assert image_search_notices(clip_index, "") == [
        "nothing in the image could be put into words (no text, labels, metadata or file-name words)"
    ]
    hits = search_by_image(clip_index, query, k=5, settings=NO_OCR)
    assert [h.chunk.modality for h in hits] == [Modality.IMAGE] * 5  # visual candidates are images only
    assert hits[0].chunk.source == "photos/IMG_1003.png"
    assert hits[0].score == pytest.approx(1.0) and dict(hits[0].signals)["visual"] > dict(hits[1].signals)["visual"]


def test_filters_apply_to_the_visual_search(clip_index: App, no_labeler: None) -> None:
    query = clip_index.path.parent / "drive" / "photos" / "IMG_1003.png"
    others = Filters(globs=("photos/IMG_100[0-2].png",))
    assert {h.chunk.source for h in search_by_image(clip_index, query, 10, others, settings=NO_OCR)} == {
        "photos/IMG_1000.png",
        "photos/IMG_1001.png",
        "photos/IMG_1002.png",
    }
    text_only = Filters(modalities=frozenset({Modality.TEXT}))
    assert search_by_image(clip_index, query, 10, text_only, settings=NO_OCR) == []


def test_without_clip_one_notice_names_the_remedy(
    cfg: Config, clip_index: App, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))  # no CLIP weights, whatever the machine
    assert image_search_notices(clip_index, "eiffel tower") == []
    index = open_app(cfg, create=True, embedder=HashEmbedder())
    try:
        notices = image_search_notices(index, "eiffel tower")
    finally:
        index.close()
    assert len(notices) == 1 and "visual similarity is off" in notices[0]
    assert "To turn it on: put the weights file" in notices[0] and "MMRAG_CLIP_WEIGHTS" in notices[0]


def test_unusable_query_images_are_clear_errors(tmp_path: Path, no_labeler: None) -> None:
    with pytest.raises(FileNotFoundError):
        describe_image(tmp_path / "missing.png", NO_OCR)
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture")
    with pytest.raises(ImageQueryError, match=r"cannot use .*notes\.png as a query image"):
        describe_image(fake, NO_OCR)


def test_description_keeps_meaningful_words_and_drops_the_size_line(tmp_path: Path, no_labeler: None) -> None:
    path = tmp_path / "eiffel-tower-night.png"
    picture(1).save(path)
    assert describe_image(path, NO_OCR) == "eiffel tower night"


@pytest.mark.slow
def test_a_photo_of_an_invoice_number_finds_the_invoice_without_clip(cfg: Config, tmp_path: Path) -> None:
    index = open_app(cfg, create=True, embedder=HashEmbedder())
    try:
        report = run_ingest([write_drive(tmp_path / "drive", photos=False)], index)
        assert report.skipped == []
        query = tmp_path / "IMG_2024.png"
        text_picture("INVOICE 4711").save(query)
        description = describe_image(query)
        assert "4711" in description and "INVOICE" in description.upper()
        hits = search_by_image(index, query, k=3, description=description)
    finally:
        index.close()
    assert hits[0].chunk.source == "docs/invoices.txt"
    assert [name for name, _ in hits[0].signals] == ["description"]
