"""OCR engines: reading order, confidence filtering, availability, and real RapidOCR weights (slow)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mmrag.ingest.engines.ocr import (
    TesseractOcr,
    TextBox,
    _line_image,
    clear_ocr_cache,
    ocr_engine,
    parse_tesseract_tsv,
    reading_order,
)


@pytest.fixture(autouse=True)
def fresh_engines() -> Iterator[None]:
    clear_ocr_cache()
    yield
    clear_ocr_cache()


def text_image(lines: list[str], size: tuple[int, int] = (640, 200), font_px: int = 48) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_px)
    for row, line in enumerate(lines):
        draw.text((24, 24 + row * (font_px + 24)), line, fill="black", font=font)
    return image


def test_reading_order_joins_pieces_of_a_line_left_to_right_and_lines_top_to_bottom() -> None:
    boxes = [
        TextBox("Total:", 0.99, 10, 100, 80, 120),
        TextBox("4711 EUR", 0.97, 90, 102, 200, 121),
        TextBox("Invoice", 0.98, 10, 10, 120, 40),
        TextBox("noise", 0.31, 300, 10, 340, 40),
        TextBox("2024-03-14", 0.95, 130, 12, 260, 38),
    ]
    assert reading_order(boxes) == "Invoice 2024-03-14\nTotal: 4711 EUR"


def test_rotated_margin_text_comes_last_and_does_not_split_lines() -> None:
    boxes = [
        TextBox("first line", 0.9, 100, 10, 300, 30),
        TextBox("arXiv:2308.08155v2", 0.9, 5, 0, 25, 300),
        TextBox("second", 0.9, 100, 50, 180, 70),
        TextBox("line", 0.9, 190, 52, 240, 71),
    ]
    assert reading_order(boxes) == "first line\nsecond line\narXiv:2308.08155v2"


def test_tesseract_tsv_keeps_confident_words_by_line() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t640\t200\t-1\t",
        "5\t1\t1\t1\t1\t1\t24\t24\t100\t40\t96.5\tINVOICE",
        "5\t1\t1\t1\t1\t2\t140\t24\t80\t40\t91.0\t4711",
        "5\t1\t1\t1\t1\t3\t240\t24\t10\t40\t12.0\t~",
        "5\t1\t1\t1\t2\t1\t24\t90\t100\t40\t88.0\tPaid",
    ]
    assert parse_tesseract_tsv("\n".join([header, *rows])) == "INVOICE 4711\nPaid"


def test_no_engine_for_empty_unknown_or_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ocr_engine("") is None
    assert ocr_engine("tesseract") is None
    assert ocr_engine("abbyy") is None


def test_tesseract_engine_runs_the_program_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "tesseract"
    fake.write_text(
        "#!/bin/sh\n"
        '[ -f "$1" ] && [ "$2" = stdout ] && [ "$5" = tsv ] || exit 3\n'
        "printf 'level\\tpage_num\\tblock_num\\tpar_num\\tline_num\\tword_num\\tleft\\ttop\\twidth\\theight\\tconf\\ttext\\n'\n"
        "printf '5\\t1\\t1\\t1\\t1\\t1\\t0\\t0\\t9\\t9\\t93\\tHello\\n5\\t1\\t1\\t1\\t1\\t2\\t0\\t0\\t9\\t9\\t90\\tthreads=%s\\n' "
        '"$OMP_THREAD_LIMIT"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    engine = ocr_engine("tesseract", threads=1)
    assert isinstance(engine, TesseractOcr)
    assert ocr_engine("tesseract", threads=1) is engine
    pixels = np.asarray(text_image(["Hello"]))
    assert engine.read(pixels) == "Hello threads=1"
    path = tmp_path / "hello.png"
    text_image(["Hello"]).save(path)
    assert engine.read(path) == "Hello threads=1"


@pytest.mark.slow
def test_rapidocr_reads_large_printed_text(tmp_path: Path) -> None:
    engine = ocr_engine("rapidocr")
    assert engine is not None
    assert ocr_engine("rapidocr") is engine
    image = text_image(["INVOICE 4711", "Due 2024-03-14"])
    started = time.perf_counter()
    text = engine.read(np.asarray(image))
    assert time.perf_counter() - started < 30
    lines = text.splitlines()
    assert "4711" in lines[0] and "INVOICE" in lines[0].upper()
    assert "2024-03-14" in text
    path = tmp_path / "invoice.png"
    image.convert("L").save(path)  # grey file on disk: read from a path too
    assert "4711" in engine.read(path)


RECEIPT = [
    "HARBOR MARKET",
    "12 Quay Street, Portsmouth",
    "Cappuccino 2 x 3.40 6.80",
    "Blueberry muffin 2.95",
    "SUBTOTAL 11.25",
    "VAT 20% 1.88",
    "TOTAL DUE 13.13",
    "Thank you for shopping with us",
]


def receipt(font_px: int, font: str = "") -> Image.Image:
    """Small print on off-white paper, as a phone photo of a till receipt shows it."""
    face = ImageFont.truetype(font, font_px) if font else ImageFont.load_default(size=font_px)
    width = max(int(face.getlength(line)) for line in RECEIPT) + 40
    image = Image.new("RGB", (width, int(len(RECEIPT) * font_px * 1.6) + 40), (250, 248, 240))
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(RECEIPT):
        draw.text((20, 20 + row * font_px * 1.6), line, fill=(30, 30, 30), font=face)
    return image


def words_read(text: str) -> float:
    """The share of the receipt's words that came out as words (not glued to a neighbour)."""
    truth = [word for line in RECEIPT for word in line.split()]
    read = text.split()
    return sum(word in read for word in truth) / len(truth)


@pytest.mark.slow
@pytest.mark.parametrize("font_px", [12, 14, 18, 24])
def test_rapidocr_keeps_the_spaces_of_small_print(font_px: int) -> None:
    engine = ocr_engine("rapidocr")
    if engine is None:
        pytest.skip("RapidOCR is not installed")
    text = engine.read(np.asarray(receipt(font_px)))
    assert words_read(text) >= 0.85, text  # 0.04-0.68 (0.37 on average) before lines were enlarged
    assert "TOTAL DUE 13.13" in text.splitlines()


@pytest.mark.slow
def test_rapidocr_reads_small_print_in_a_large_photo() -> None:
    engine = ocr_engine("rapidocr")
    if engine is None:
        pytest.skip("RapidOCR is not installed")
    photo = Image.new("RGB", (1600, 2000), (120, 110, 100))  # the table the receipt lies on
    photo.paste(receipt(16), (500, 600))
    assert words_read(engine.read(np.asarray(photo))) >= 0.85


def test_a_small_line_is_cut_out_and_enlarged_for_the_recogniser() -> None:
    picture = np.zeros((200, 400, 3), np.uint8)
    picture[50:70, 100:300] = 255  # a 200 x 20 line
    line = _line_image(picture, [[100, 50], [300, 50], [300, 70], [100, 70]])
    assert line is not None and line.shape == (64, 640, 3)  # 20 px tall: enlarged to 64
    assert line[32, 320].tolist() == [255, 255, 255]
    tall = _line_image(picture, [[100, 0], [130, 0], [130, 100], [100, 100]])
    assert tall is not None and tall.shape == (64, 213, 3)  # vertical text turned, then enlarged
    big = _line_image(picture, [[0, 0], [400, 0], [400, 60], [0, 60]])
    assert big is not None and big.shape == (60, 400, 3)  # tall enough: left as it is
    assert _line_image(picture, [[0, 0], [2, 0], [2, 2], [0, 2]]) is None


class CountingEngine:
    """A stand-in recogniser that says how many pixels it saw, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, image: Path | np.ndarray) -> str:  # type: ignore[type-arg]
        self.calls += 1
        pixels = np.asarray(image)
        if pixels.mean() < 1:
            raise RuntimeError("cannot read a black picture")
        return f"{pixels.shape[1]}x{pixels.shape[0]} mean {pixels.mean():.1f}"


def test_results_are_remembered_by_picture_content(tmp_path: Path) -> None:
    from mmrag.ingest.engines.ocr import CachedOcr
    from mmrag.ingest.engines.ocr_cache import OcrCache

    engine = CountingEngine()
    cache = OcrCache(tmp_path / "ocr-cache.sqlite")
    cached = CachedOcr(engine, "counting 1", cache)
    grey = np.full((40, 60, 3), 128, dtype=np.uint8)
    assert cached.read(grey) == "60x40 mean 128.0"
    assert cached.read(grey.copy()) == "60x40 mean 128.0" and engine.calls == 1  # same pixels: not read again
    lighter = grey + 1
    assert cached.read(lighter) == "60x40 mean 129.0" and engine.calls == 2
    assert CachedOcr(engine, "counting 2", cache).read(grey) and engine.calls == 3  # another engine reads again
    with pytest.raises(RuntimeError):
        cached.read(np.zeros((40, 60, 3), dtype=np.uint8))
    with pytest.raises(RuntimeError):  # a failure is not remembered: it is tried again
        cached.read(np.zeros((40, 60, 3), dtype=np.uint8))
    assert engine.calls == 5 and len(cache) == 3
    cache.close()
    again = CachedOcr(engine, "counting 1", OcrCache(tmp_path / "ocr-cache.sqlite"))  # it lasts across runs
    assert again.read(grey) == "60x40 mean 128.0" and engine.calls == 5


def test_the_shared_engine_is_wrapped_only_when_a_cache_file_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mmrag.ingest.engines.ocr as ocr_module
    from mmrag.ingest.engines.ocr import CachedOcr

    engine = CountingEngine()
    monkeypatch.setattr(ocr_module, "_build", lambda name, threads: engine)
    assert ocr_engine("rapidocr", 2) is engine
    first = ocr_engine("rapidocr", 2, tmp_path / "a.sqlite")
    assert isinstance(first, CachedOcr) and first.engine is engine
    assert ocr_engine("rapidocr", 2, tmp_path / "a.sqlite") is first
    assert ocr_engine("rapidocr", 2, tmp_path / "b.sqlite") is not first


def test_results_unused_for_half_a_year_are_forgotten(tmp_path: Path) -> None:
    import sqlite3

    from mmrag.ingest.engines.ocr_cache import KEEP_UNUSED_S, OcrCache

    cache = OcrCache(tmp_path / "ocr-cache.sqlite")
    cache.put("recent", "Quarterly review")
    cache.put("stale", "A logo of a deleted deck")
    with sqlite3.connect(tmp_path / "ocr-cache.sqlite") as db:
        db.execute("UPDATE ocr SET used_at = used_at - ? WHERE key = 'stale'", (KEEP_UNUSED_S + 60,))
    assert cache.prune() == 1
    assert cache.get("recent") == "Quarterly review" and cache.get("stale") is None
    cache.close()
