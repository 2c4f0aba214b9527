"""Input files the tests build in ``tmp_path`` and that several test modules use (never checked in).

Import them as ``from builders import ...`` (``tests/`` is on the test path, see pyproject.toml).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
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


# --- a PDF with a text layer, written out by hand ---------------------------------------------------


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _to_unicode_cmap(code_points: Callable[[int], int]) -> str:
    """A ToUnicode CMap stream saying that byte code ``c`` stands for ``code_points(c)``."""
    pairs = "\n".join(f"<{c:02X}> <{code_points(c):04X}>" for c in range(32, 127))
    body = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Junk def /CMapType 2 def\n"
        "1 begincodespacerange <00> <FF> endcodespacerange\n"
        f"95 beginbfchar\n{pairs}\nendbfchar\nendcmap CMapName currentdict /CMap defineresource pop end end"
    )
    return f"<< /Length {len(body)} >>\nstream\n{body}\nendstream"


def build_pdf(pages: Sequence[Sequence[str]], title: str = "", to_unicode: Callable[[int], int] | None = None) -> bytes:
    """A minimal valid PDF: one page per entry, each line drawn in Helvetica; [] is a page without text.

    ``to_unicode`` gives the font a ToUnicode map (byte code -> code point): the glyphs drawn stay
    Helvetica's, but text extraction returns what the map says (a broken font encoding).
    """
    objects: list[str] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append("<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in page_ids)}] /Count {len(pages)} >>")
    cmap = f" /ToUnicode {4 + 2 * len(pages)} 0 R" if to_unicode else ""
    objects.append(f"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica{cmap} >>")
    for index, lines in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {content_id} 0 R >>"
        )
        body = "BT /F1 11 Tf 14 TL 50 750 Td " + " ".join(f"{_pdf_string(line)} Tj T*" for line in lines) + " ET"
        stream = body if lines else ""
        objects.append(f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream")
    if to_unicode:
        objects.append(_to_unicode_cmap(to_unicode))
    info_id = 0
    if title:
        objects.append(f"<< /Title {_pdf_string(title)} >>")
        info_id = len(objects)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    info = f" /Info {info_id} 0 R" if info_id else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
