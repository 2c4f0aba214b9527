"""``mmrag eval``'s scoring: which hit matches which evidence entry, and the answer check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrag.ingest.chunk import Page, Rows, Section, Sheet, Slide, TimeSpan, Wanted
from mmrag.pipeline.evaluate import QuestionFileError, answer_contains, first_match_rank, load_questions, matches


@pytest.mark.parametrize(
    ("locator", "entry", "expected"),
    [
        (Page(3), {"page": 3}, True),
        (Page(3), {"page": "3"}, True),
        (Page(3), {"page": 4}, False),
        (Page(3), {}, True),  # an entry without a place matches any chunk of the file
        (Page(3), {"slide": 3}, False),  # a page is not a slide
        (Slide(7), {"slide": 7}, True),
        (Slide(7), {"page": 7}, False),
        (Rows(10, 20, "Q3"), {"sheet": "Q3"}, True),
        (Rows(10, 20, "Q3"), {"sheet": "Q4"}, False),
        (Rows(10, 20, "Q3"), {"sheet": "Q3", "rows": [20, 25]}, True),  # overlapping rows
        (Rows(10, 20, "Q3"), {"sheet": "Q3", "rows": [21, 25]}, False),
        (Rows(10, 20), {"rows": [1, 10]}, True),
        (Sheet("Q3"), {"sheet": "Q3"}, True),
        (Sheet("Q3"), {"sheet": "Q3", "rows": [1, 2]}, False),  # a summary is not the rows
        (TimeSpan(30.0, 60.0), {"start": 55, "end": 70}, True),
        (TimeSpan(30.0, 60.0), {"start": 61, "end": 70}, False),
        (TimeSpan(30.0, 60.0), {"page": 1}, False),
        (Section(("Intro",)), {}, True),
        (Section(("Intro",)), {"page": 1}, False),
    ],
)
def test_a_hit_matches_evidence_when_its_place_overlaps(locator: object, entry: dict[str, object], expected: bool) -> None:
    assert matches("finance/q3.pdf", locator.to_json(), {"file": "finance/q3.pdf", **entry}) is expected  # type: ignore[attr-defined]
    assert locator.overlaps(Wanted.from_json(entry)) is expected  # type: ignore[attr-defined]


def test_the_file_must_be_the_evidence_file_or_end_with_it() -> None:
    assert matches("drive/finance/q3.pdf", {"page": 1}, {"file": "finance/q3.pdf"})
    assert not matches("finance/aq3.pdf", {"page": 1}, {"file": "q3.pdf"})
    assert not matches("finance/q3.pdf", {"page": 1}, {"file": ""})


def test_rank_is_the_first_hit_matching_any_entry() -> None:
    hits = [
        {"source": "a.pdf", "locator": {"page": 1}},
        {"source": "b.pdf", "locator": {"page": 2}},
        {"source": "c.xlsx", "locator": {"sheet": "S", "rows": [5, 9]}},
    ]
    assert first_match_rank(hits, [{"file": "c.xlsx", "sheet": "S", "rows": [9, 9]}, {"file": "b.pdf", "page": 2}]) == 2
    assert first_match_rank(hits, [{"file": "b.pdf", "page": 3}]) is None


def test_answers_match_ignoring_case_and_thousands_separators() -> None:
    assert answer_contains("Revenue was 1186 crore", ["1,186"])
    assert answer_contains("The BANKRUPTCY Reform Act", ["bankruptcy reform act"])
    assert not answer_contains("Revenue was 1186", ["1,186", "crore"])


def test_a_broken_question_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "q1", "question": "x"}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(QuestionFileError, match=r"q\.jsonl:2"):
        load_questions(path)
