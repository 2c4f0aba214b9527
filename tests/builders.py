"""Input files the tests build in ``tmp_path`` and that several test modules use (never checked in).

Import them as ``from builders import ...`` (``tests/`` is on the test path, see pyproject.toml).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

# --- an OpenDocument presentation: two slides with a title, text, a table, a chart and notes ---------

NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:chart="urn:oasis:names:tc:opendocument:xmlns:chart:1.0"'
)


def _frame(y: float, x: float, body: str, cls: str = "") -> str:
    kind = f' presentation:class="{cls}"' if cls else ""
    return f'<draw:frame svg:x="{x}cm" svg:y="{y}cm"{kind}>{body}</draw:frame>'


def _box(*paragraphs: str) -> str:
    return "<draw:text-box>" + "".join(f"<text:p>{p}</text:p>" for p in paragraphs) + "</draw:text-box>"


def _cells(*rows: tuple[str, ...]) -> str:
    body = "".join(
        "<table:table-row>"
        + "".join(f"<table:table-cell><text:p>{c}</text:p></table:table-cell>" for c in row)
        + "</table:table-row>"
        for row in rows
    )
    return f"<table:table>{body}</table:table>"


def build_odp(path: Path, *, picture: bytes = b"", encrypted: bool = False) -> Path:
    slide1 = (
        _frame(1, 1, _box("Quarterly review"), "title")
        + _frame(9, 12, _box("Closing: thanks to<text:s/>the Oslo team"))
        + _frame(4, 1, _box("Revenue grew 12 percent", "Costs<text:line-break/>fell"), "outline")
        + _frame(6, 1, _cells(("City", "Staff"), ("Lyon", "42")))
        + '<presentation:notes><draw:frame svg:y="1cm">'
        + _box("Mention the new office")
        + "</draw:frame></presentation:notes>"
    )
    slide2 = _frame(1, 1, _box("Duck survey"), "title") + _frame(4, 1, '<draw:object xlink:href="./Object 1"/>')
    if picture:
        slide2 += (
            _frame(8, 1, '<draw:image xlink:href="Pictures/duck.png"/>')[:-13]
            + "<svg:desc>A mallard on a pond</svg:desc></draw:frame>"
        )
    content = (
        f"<office:document-content {NS}><office:body><office:presentation>"
        f'<draw:page draw:name="page1">{slide1}</draw:page><draw:page draw:name="page2">{slide2}</draw:page>'
        "</office:presentation></office:body></office:document-content>"
    )
    chart = (
        f"<office:document-content {NS}><office:body><office:chart><chart:chart>"
        "<chart:title><text:p>Ducks by year</text:p></chart:title>"
        + _cells(("", "Freshwater", "Saltwater"), ("2019", "120", "80"), ("2020", "130", "95"))
        + "</chart:chart></office:chart></office:body></office:document-content>"
    )
    manifest = '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
    manifest += "<manifest:encryption-data/>" if encrypted else ""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.presentation")
        archive.writestr("META-INF/manifest.xml", manifest + "</manifest:manifest>")
        archive.writestr("content.xml", content)
        archive.writestr("Object 1/content.xml", chart)
        if picture:
            archive.writestr("Pictures/duck.png", picture)
    return path


# --- a scanned PDF: each page a picture of drawn text lines, no text layer ---------------------------


def write_scanned_pdf(path: Path, pages: Sequence[Sequence[str]]) -> Path:
    """A PDF of letter-size pages scanned at 150 dpi: each page's lines drawn into a picture (PIL)."""
    from PIL import Image, ImageDraw, ImageFont

    pictures = []
    for lines in pages:
        page = Image.new("RGB", (1275, 1650), "white")
        draw = ImageDraw.Draw(page)
        font = ImageFont.load_default(size=40)
        for i, line in enumerate(lines):
            draw.text((130, 200 + 80 * i), line, fill="black", font=font)
        pictures.append(page)
    first, *rest = pictures
    first.save(path, "PDF", resolution=150, save_all=True, append_images=rest)
    return path
