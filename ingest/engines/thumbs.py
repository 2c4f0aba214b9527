"""Opening untrusted image files safely, normalising them to RGB, and writing thumbnails.

Every image mmrag decodes from a user's drive goes through ``open_image_header`` (or
``open_image_safely``): the pixel count is checked from the header before a single pixel is decoded,
so a decompression bomb (a few KB of PNG claiming 100000x100000 pixels) is refused with a message
that names the limit and how to raise it. Pillow's own bomb guard is a process-wide setting
(``Image.MAX_IMAGE_PIXELS``); it is only changed under ``_PIXELS_LOCK`` and always restored.

Thumbnails are small RGB JPEGs in the index's media folder, named by a hash of a caller's key, so
re-ingesting a file overwrites its thumbnail in place; they are written atomically (temp file, rename).
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmrag.ingest.errors import IngestError

_PIXELS_LOCK = threading.Lock()
"""Held while ``Image.MAX_IMAGE_PIXELS`` is changed, i.e. around a header parse or a huge decode."""

# What Pillow raises for files it cannot parse or decode (its plugins are not consistent).
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


def too_large(width: int, height: int, max_pixels: int) -> str:
    """The reason given for an image over the configured pixel limit."""
    return f"image is {width}×{height} pixels, over the limit of {max_pixels} (raise [limits] max_image_pixels)"


@contextmanager
def _pillow_pixel_limit(limit: int | None) -> Iterator[None]:
    with _PIXELS_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _damaged(path: Path, error: BaseException) -> IngestError:
    said = str(error).strip() or type(error).__name__
    return IngestError(path, f"damaged image ({said})")


def open_image_header(path: Path, max_pixels: int) -> Image.Image:
    """Open ``path`` reading only its header, and refuse empty or oversized images before decoding.

    The returned image is lazy (nothing decoded yet, the file still open): call ``decode_image`` on
    it, and close it (``with``) when done. Raises ``IngestError`` for unreadable headers, 0-pixel
    images and images with more than ``max_pixels`` pixels.
    """
    try:
        # Pillow's guard is off for the header parse only: our own check below gives the user an
        # actionable message with the real dimensions, which Pillow's error does not carry.
        with _pillow_pixel_limit(None):
            image = Image.open(path)
    except UnidentifiedImageError as e:
        raise IngestError(path, "damaged image (cannot identify image file)") from e
    except DECODE_ERRORS as e:
        raise _damaged(path, e) from e
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise IngestError(path, f"image is {width}×{height} pixels (empty image, nothing to index)")
    if width * height > max_pixels:
        image.close()
        raise IngestError(path, too_large(width, height, max_pixels))
    return image


def decode_image(image: Image.Image, path: Path, max_pixels: int) -> Image.Image:
    """Decode the current (first) frame of an image from ``open_image_header``; errors become ``IngestError``.

    Images above Pillow's own limit (already checked against ours) are decoded one at a time with
    Pillow's limit raised to ours: multi-frame formats re-check sizes while decoding, and decoding
    several huge images at once is what exhausts memory.
    """
    width, height = image.size
    try:
        pillow_limit = Image.MAX_IMAGE_PIXELS
        if pillow_limit is not None and width * height > pillow_limit:
            with _pillow_pixel_limit(max(max_pixels, pillow_limit)):
                image.load()
        else:
            image.load()
    except Image.DecompressionBombError as e:
        raise IngestError(path, too_large(width, height, max_pixels)) from e
    except DECODE_ERRORS as e:
        raise _damaged(path, e) from e
    return image


def open_image_safely(path: Path, max_pixels: int) -> Image.Image:
    """The first frame (page) of an image file, decoded, after the header checks of ``open_image_header``.

    Metadata (``format``, ``info``, ``getexif()``) is kept. Close the image (``with``) when done:
    multi-frame files keep their file open.
    """
    image = open_image_header(path, max_pixels)
    try:
        return decode_image(image, path, max_pixels)
    except IngestError:
        image.close()
        raise


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB version of ``image``: transparency flattened onto white, 16-bit and float data rescaled to 8 bits.

    Flattening onto white matters for OCR: black text on a transparent background would otherwise
    become black on black.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        data = np.asarray(image, dtype=np.float32)
        lo, hi = float(data.min()), float(data.max())
        scaled = (data - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(data)
        return Image.fromarray(scaled.clip(0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def upright_rgb(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (as a viewer shows it), in RGB."""
    return to_rgb(ImageOps.exif_transpose(image))


def thumbnail_path(media_dir: Path, key: str) -> Path:
    """Where the thumbnail for ``key`` lives: a hash-named JPEG, sharded by its first two hex digits."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return media_dir / digest[:2] / f"{digest}.jpg"


def save_thumbnail(image: Image.Image, media_dir: Path, key: str, max_px: int = 384) -> Path:
    """Write a JPEG thumbnail of ``image`` (longest side at most ``max_px``) for ``key``, and return its path.

    The image is turned upright (EXIF orientation) and made RGB; smaller images are not enlarged.
    The file name depends only on ``key`` (e.g. the source path), so saving the same key again
    replaces the file; the write is atomic, so readers never see half a JPEG.
    """
    if max_px < 1:
        raise ValueError(f"max_px must be positive, got {max_px}")
    thumb = upright_rgb(image)  # a new image: exif_transpose always copies
    thumb.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    target = thumbnail_path(media_dir, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".thumb-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            thumb.save(out, format="JPEG", quality=85)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


# Hue ranges in degrees for the colour names people search with; grey/black/white are found first.
_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (200, "cyan"), (260, "blue"), (290, "purple"))


def main_colours(image: Image.Image, limit: int = 3, min_share: float = 0.03) -> list[str]:
    """Basic colour names ("white", "red", "blue", ...) covering the most of ``image``, largest share first."""
    small = to_rgb(image).resize((96, 96), Image.Resampling.NEAREST)  # real pixel colours, no blends
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32).reshape(-1, 3)
    hue, sat, val = hsv[:, 0] * (360.0 / 256.0), hsv[:, 1] / 255.0, hsv[:, 2] / 255.0
    names = np.full(hue.shape, "pink", dtype=object)
    for upper, name in reversed(_HUES):
        names[hue < upper] = name
    names[hue >= 345] = "red"
    names[(names == "orange") & (val < 0.6)] = "brown"
    grey = sat < 0.18
    names[grey] = "grey"
    names[grey & (val > 0.85)] = "white"
    names[val < 0.18] = "black"
    found, counts = np.unique(names.astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    total = float(counts.sum())
    return [str(found[i]) for i in order[:limit] if counts[i] / total >= min_share]
