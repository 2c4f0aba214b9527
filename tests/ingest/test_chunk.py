from __future__ import annotations

import pytest

from mmrag.ingest.chunk import Chunk, Modality, Page, Rows, Section, Sheet, Slide, TimeSpan, locator_from_json


@pytest.mark.parametrize(
    ("locator", "cite", "as_json"),
    [
        (Page(3), "p. 3", {"page": 3}),
        (Slide(7), "slide 7", {"slide": 7}),
        (Rows(12, 14, "Sales"), "sheet 'Sales', rows 12-14", {"rows": [12, 14], "sheet": "Sales"}),
        (Rows(4, 4), "row 4", {"rows": [4, 4]}),
        (Sheet("Index"), "sheet 'Index'", {"sheet": "Index"}),
        (TimeSpan(92.0, 107.5), "01:32-01:47", {"start": 92.0, "end": 107.5}),
        (TimeSpan(3700, 3725), "1:01:40-1:02:05", {"start": 3700, "end": 3725}),
        (Section(("Costs", "Travel")), "§ Costs > Travel", {"section": "Costs > Travel"}),
        (Section(), "whole file", {}),
    ],
)
def test_locator_cites_and_round_trips(locator: object, cite: str, as_json: dict[str, object]) -> None:
    assert locator.cite() == cite  # type: ignore[attr-defined]
    assert locator.to_json() == as_json  # type: ignore[attr-defined]
    assert locator_from_json(as_json) == locator


def test_chunk_id_is_stable_and_distinguishes_parts() -> None:
    a = Chunk("finance/q3.pdf", Modality.TEXT, Page(3), "text")
    same = Chunk("finance/q3.pdf", Modality.TEXT, Page(3), "other text, same place")
    second_part = Chunk("finance/q3.pdf", Modality.TEXT, Page(3), "text", part=1)
    other_page = Chunk("finance/q3.pdf", Modality.TEXT, Page(4), "text")
    assert a.id == same.id
    assert len({a.id, second_part.id, other_page.id}) == 3


def test_rows_locator_rejects_malformed_rows() -> None:
    with pytest.raises(ValueError, match="rows must be"):
        locator_from_json({"rows": [1]})
