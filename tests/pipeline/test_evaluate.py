"""``mmrag eval``'s scoring: which hit matches which evidence entry, and the answer check."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrag.ingest.chunk import Page, Rows, Section, Sheet, Slide, TimeSpan, Wanted
from mmrag.pipeline.config import Config
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
def test_a_hit_matches_evidence_when_its_place_overlaps(
    locator: object, entry: dict[str, object], expected: bool
) -> None:
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


def test_with_an_llm_the_extractive_answers_are_scored_beside_the_generated_ones(
    tmp_path: Path, cfg: Config, loopback_only: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from fakes import stub_llm

    from mmrag.pipeline.api import ingest
    from mmrag.pipeline.cli import cmd_eval

    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "pool.txt").write_text("The office hockey pool closes on Friday at noon. Entries cost five dollars.\n")
    ingest([drive], cfg)
    questions = tmp_path / "q.jsonl"
    rows = [
        {
            "id": "a",
            "question": "When does the hockey pool close?",
            "evidence": [{"file": "pool.txt"}],
            "answer": ["Friday"],
            "kind": "txt",
        },
        {
            "id": "b",
            "question": "When did the hockey pool close in 2031?",
            "evidence": [],
            "answer": [],
            "kind": "none",
        },
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with stub_llm() as stub:
        stub.replies.append("Entries cost five dollars [1].")  # a real model's wrong pick, cited
        models = replace(cfg.models, llm_base_url=stub.url, llm_model="m")
        args = argparse.Namespace(
            questions=questions, k=10, lists=None, no_keyword=False, no_answer=False, json=True, as_user=None
        )
        assert cmd_eval(args, replace(cfg, models=models)) == 0
    assert len(stub.requests) == 1  # the year nobody mentions is declined before any model call
    data = json.loads(capsys.readouterr().out)
    overall = data["overall"]
    assert overall["answer_contains"] == 0.0 and overall["declined"] == 1.0
    assert overall["extractive"] == {"answer_contains": 1.0, "none_questions": 1, "declined": 1.0}
    first = data["questions"][0]
    assert first["answer_ok"] is False and first["extractive"]["answer_ok"] is True
    assert "Friday" in first["extractive"]["answer"]
