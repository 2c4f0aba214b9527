"""Rendered slide pictures (LibreOffice, when installed): each slide's chunk carries a picture of that slide."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, Slide
from mmrag.ingest.engines.slide_render import SlidePictures, find_office, slide_count
from mmrag.ingest.formats.slides import SlidesIngestor

OFFICE = find_office()


def _need_office() -> str:
    if not OFFICE:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice is missing in CI: ./bootstrap.sh test installs libreoffice-impress-nogui")
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-impress-nogui)")
    return OFFICE


def _deck(path: Path) -> Path:
    """Slide 1 plain, slide 2 hidden with a big red box, slide 3 with a big blue box."""
    from pptx import Presentation
    from pptx.dml.color import RGBColor
    from pptx.enum.shapes import MSO_SHAPE
    from pptx.util import Inches

    deck = Presentation()
    layout = deck.slide_layouts[5]  # title only
    for n, colour in ((1, None), (2, RGBColor(0xE0, 0x10, 0x10)), (3, RGBColor(0x10, 0x20, 0xE0))):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = f"Slide number {n}"
        if colour is not None:
            box = slide.shapes.add_shape(MSO_SHAPE.RECTANGLE, Inches(1), Inches(2), Inches(8), Inches(4.5))
            box.fill.solid()
            box.fill.fore_color.rgb = colour
    deck.slides[1]._element.set("show", "0")  # slide 2 is hidden: it must still be page 2
    deck.save(str(path))
    return path


def _share(image: Path, channel: int) -> float:
    """Share of pixels where ``channel`` clearly dominates the other two."""
    rgb = np.asarray(Image.open(image).convert("RGB"), dtype=np.int16)
    others = [c for c in range(3) if c != channel]
    strong = (rgb[..., channel] > 150) & (rgb[..., others[0]] < 90) & (rgb[..., others[1]] < 90)
    return float(strong.mean())


def test_each_slide_chunk_carries_a_picture_of_that_slide(tmp_path: Path) -> None:
    office = _need_office()
    media = tmp_path / "media"
    settings = IngestSettings(media=MediaConfig(media_dir=media, ocr_engine="", office=office))
    items = list(SlidesIngestor(settings).ingest(_deck(tmp_path / "deck.pptx"), "decks/deck.pptx"))
    text = {c.locator: c for c in items if isinstance(c, Chunk) and c.modality is Modality.TEXT}
    assert set(text) == {Slide(1), Slide(2), Slide(3)}
    assert "(hidden)" in text[Slide(2)].text
    pictures = {loc.slide: c.image for loc, c in text.items() if isinstance(loc, Slide)}
    assert all(p is not None and p.is_file() and p.parent.is_relative_to(media) for p in pictures.values())
    assert len(set(pictures.values())) == 3
    with Image.open(pictures[1]) as first:  # type: ignore[arg-type]
        assert max(first.size) == 960
    red = {n: _share(p, 0) for n, p in pictures.items() if p is not None}
    blue = {n: _share(p, 2) for n, p in pictures.items() if p is not None}
    assert red[2] > 0.2 and blue[3] > 0.2  # the hidden slide is rendered too, and in its place
    assert red[1] < 0.01 and blue[1] < 0.01 and blue[2] < 0.01 and red[3] < 0.01


def test_without_libreoffice_or_on_failure_slides_keep_their_text(tmp_path: Path) -> None:
    deck = _deck(tmp_path / "deck.pptx")
    for office in ("", str(tmp_path / "no-such-soffice")):
        settings = IngestSettings(media=MediaConfig(media_dir=tmp_path / "media", ocr_engine="", office=office))
        chunks = [c for c in SlidesIngestor(settings).ingest(deck, "deck.pptx") if isinstance(c, Chunk)]
        assert {c.locator for c in chunks if c.modality is Modality.TEXT} == {Slide(1), Slide(2), Slide(3)}
        assert all(c.image is None for c in chunks if c.modality is Modality.TEXT)
    assert find_office("none") == "" and find_office(str(tmp_path / "missing")) == ""


def test_pictures_on_first_view_are_rendered_once_per_deck_version(tmp_path: Path) -> None:
    office = _need_office()
    media = tmp_path / "media"
    deck = _deck(tmp_path / "deck.pptx")
    assert slide_count(deck) == 3
    pictures = SlidePictures(office, media)
    second = pictures.picture(deck, "/drive", "decks/deck.pptx", "v1", 2)
    assert second is not None and second.parent.is_relative_to(media)
    assert _share(second, 0) > 0.2 and _share(second, 2) < 0.01  # the hidden red slide, in its place
    made = {p: p.stat().st_mtime_ns for p in media.rglob("*.jpg")}
    assert len(made) == 3  # the whole deck was rendered by that one request
    third = SlidePictures("", media).picture(
        deck, "/drive", "decks/deck.pptx", "v1", 3
    )  # stored: no LibreOffice needed
    assert third is not None and _share(third, 2) > 0.2
    assert {p: p.stat().st_mtime_ns for p in made} == made
    changed = pictures.picture(deck, "/drive", "decks/deck.pptx", "v2", 3)  # new content hash: rendered anew
    assert changed is not None and changed != third
    assert pictures.picture(deck, "/drive", "decks/deck.pptx", "v1", 9) is None  # no such slide


def test_a_deck_that_cannot_be_rendered_is_tried_once(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake = tmp_path / "soffice"
    fake.write_text(f"#!/bin/sh\necho run >> {calls}\necho 'cannot convert' >&2\nexit 1\n")
    fake.chmod(0o755)
    deck = _deck(tmp_path / "deck.pptx")
    pictures = SlidePictures(str(fake), tmp_path / "media")
    assert pictures.picture(deck, "/drive", "deck.pptx", "v1", 1) is None
    assert pictures.picture(deck, "/drive", "deck.pptx", "v1", 2) is None
    assert pictures.picture(deck, "/drive", "deck.pptx", "v2", 9) is None  # no slide 9: nothing to render
    assert calls.read_text().count("run") == 1
    assert SlidePictures("", tmp_path / "media").picture(deck, "/drive", "deck.pptx", "v1", 1) is None
    assert slide_count(tmp_path / "calls") == 0  # not a deck


def test_slide_pictures_are_made_at_ingest_only_when_search_embeds_them(tmp_path: Path) -> None:
    from dataclasses import replace

    from mmrag.pipeline.app import Models, slide_pictures_at_ingest
    from mmrag.pipeline.config import ConfigError, load_config
    from mmrag.pipeline.models import ModelsConfig, resolve_clip

    def at_ingest(models: ModelsConfig) -> bool:
        return slide_pictures_at_ingest(models, resolve_clip(models))

    cfg = load_config(index_dir=tmp_path / "index", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    no_clip = replace(cfg.models, clip_path=str(tmp_path / "no-clip.pt"), allow_downloads=False)
    assert not at_ingest(no_clip)  # auto, no image-text encoder
    assert Models(replace(cfg, models=no_clip)).ingest_settings().media.office == ""
    weights = tmp_path / "clip.pt"
    weights.write_bytes(b"stand-in: only its presence is resolved here")
    assert at_ingest(replace(no_clip, clip_path=str(weights)))
    assert at_ingest(replace(no_clip, llm_vision=True))  # sent to a vision LLM
    assert at_ingest(replace(no_clip, slide_pictures="ingest"))
    assert not at_ingest(replace(no_clip, slide_pictures="preview"))
    config = tmp_path / "bad.toml"
    config.write_text('[models]\nslide_pictures = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"slide_pictures must be one of 'auto', 'ingest', 'preview'"):
        load_config(config_file=config, index_dir=tmp_path / "index")


def test_odp_decks_get_pictures_on_first_view_too(tmp_path: Path) -> None:
    import subprocess

    office = _need_office()
    pptx = _deck(tmp_path / "deck.pptx")
    profile = (tmp_path / "profile").as_uri()
    subprocess.run(
        [
            office,
            f"-env:UserInstallation={profile}",
            "--headless",
            "--convert-to",
            "odp",
            "--outdir",
            str(tmp_path),
            str(pptx),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    deck = tmp_path / "deck.odp"
    assert slide_count(deck) == 3
    pictures = SlidePictures(office, tmp_path / "media")
    shown = {n: pictures.picture(deck, "/drive", "deck.odp", "v1", n) for n in (1, 2, 3)}
    assert all(p is not None for p in shown.values())
    assert _share(shown[2], 0) > 0.2 and _share(shown[3], 2) > 0.2  # type: ignore[arg-type]
