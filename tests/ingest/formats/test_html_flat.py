"""HTML nested far deeper than a tree parser goes is still read, with its headings."""

from __future__ import annotations

from pathlib import Path

from mmrag.ingest.chunk import Modality
from mmrag.ingest.formats.documents import HtmlIngestor
from mmrag.ingest.formats.html_flat import read_flat


def test_a_page_nested_100000_levels_deep_keeps_its_text(tmp_path: Path) -> None:
    depth = 100_000
    page = tmp_path / "deep.html"
    page.write_text(
        "<html><head><title>Deep page</title><style>p { color: red }</style></head><body>"
        "<h1>Travel policy</h1><p>Book economy class for flights under six hours.</p>"
        + "<div>" * depth
        + "<h2>Hotels</h2><p>The nightly hotel budget is 180 euros.</p>"
        + "</div>" * depth
        + "</body></html>"
    )
    chunks = list(HtmlIngestor().ingest(page, "deep.html"))
    text = "\n".join(c.text for c in chunks)
    assert "Book economy class" in text and "nightly hotel budget is 180 euros" in text
    assert "color: red" not in text
    assert all(c.modality is Modality.TEXT for c in chunks)
    assert any("Hotels" in c.text and "180 euros" in c.text for c in chunks), "the text sits under its heading"


def test_the_flat_reading_measures_depth_and_keeps_headings() -> None:
    flat = read_flat("<div><div><h2>Q3</h2><p>Revenue <b>rose</b>.</p><br>Closing line</div></div>")
    assert flat.depth == 4  # div, div, p, b
    assert [(b.kind.value, b.text, b.depth) for b in flat.blocks] == [
        ("heading", "Q3", 1),
        ("body", "Revenue rose.", 0),
        ("body", "Closing line", 0),
    ]
