"""The deterministic citation check: what it removes, flags and drops, streamed or not."""

from __future__ import annotations

import pytest

from mmrag.pipeline.answer.citations import CitationGate, check_answer, fix_markers, key_terms, markers

EVIDENCE = [
    "Revenue in Q3 2023 was $4,200,000, up 12% from Q2. Margins held at 31.5%.",
    "The Acme office in Berlin opened in 2019 with twelve staff.",
    "The loan-to-value ratio was 55.8% in 2017 (TORM annual report).",
]


def test_markers_to_evidence_never_given_are_removed_and_reported() -> None:
    assert fix_markers("Revenue grew [1][7]. Berlin [2, 9]. Staff [8].", 3) == (
        "Revenue grew [1]. Berlin [2]. Staff.",
        (7, 9, 8),
    )
    assert fix_markers("Fine [1, 2].", 3) == ("Fine [1, 2].", ())
    assert markers("a [1] b [2, 3] c [4;5] d [2019x]") == [1, 2, 3, 4, 5]


def test_key_terms_are_numbers_names_and_quotes() -> None:
    terms = key_terms('The Acme office in Berlin opened in 2019 with 12 staff, code "XJ-9" [2].')
    assert terms == ['"XJ-9"', "2019", "12", "Acme", "Berlin"]
    assert key_terms("Revenue grew strongly.") == []  # a capitalised first word is grammar, not a name
    assert key_terms("BANANA is the word.") == ["BANANA"]  # but all capitals is a name
    assert key_terms("It cost $4,200,000 in Q3.") == ["4,200,000", "Q3"]


def test_a_supported_answer_passes_unchanged() -> None:
    reply = "Revenue in Q3 2023 was $4,200,000 [1]. It rose 12% from Q2 [1]."
    checked = check_answer(reply, EVIDENCE)
    assert checked.text == reply
    assert checked.cited == (1,) and checked.flagged == () and checked.invalid == ()
    assert not checked.declined


def test_numbers_match_however_they_are_written() -> None:
    for said in ("4200000", "4,200,000", "$4,200,000"):
        assert check_answer(f"Q3 revenue was {said} [1].", EVIDENCE).flagged == (), said
    assert check_answer("The office had 12 staff [2].", EVIDENCE).flagged == ()  # "twelve" in the evidence
    assert check_answer("The ratio peaked in 2017 at 55.8 percent [3].", EVIDENCE).flagged == ()


def test_a_number_not_in_the_cited_evidence_is_flagged() -> None:
    checked = check_answer("Revenue in Q3 2023 was $5,100,000 [1]. Berlin opened in 2019 [2].", EVIDENCE)
    assert [f.sentence for f in checked.flagged] == ["Revenue in Q3 2023 was $5,100,000."]
    assert checked.flagged[0].missing == ("5,100,000",) and checked.flagged[0].cited == (1,)
    assert "$5,100,000" in checked.text  # lenient mode keeps it, flagged


def test_a_fact_from_other_evidence_than_the_cited_one_is_flagged() -> None:
    checked = check_answer("The office in Berlin opened in 2019 [1].", EVIDENCE)  # true, but [1] does not say it
    assert checked.flagged[0].missing == ("2019", "Berlin")


def test_strict_mode_drops_flagged_sentences() -> None:
    reply = "Revenue in Q3 2023 was $4,200,000 [1]. The CFO, Jane Doe, expects 20% growth [1].\n- Berlin opened in 2019 [2]."
    checked = check_answer(reply, EVIDENCE, strict=True)
    assert checked.text == "Revenue in Q3 2023 was $4,200,000 [1].\n- Berlin opened in 2019 [2]."
    assert checked.flagged[0].missing == ("20", "CFO", "Jane", "Doe")


def test_a_paragraph_citing_once_at_its_end_covers_its_sentences() -> None:
    checked = check_answer("Q3 revenue was $4,200,000. Margins held at 31.5% [1].", EVIDENCE)
    assert checked.flagged == ()
    checked = check_answer("Q3 revenue was $4,200,000 [1]. BANANA!", EVIDENCE)
    assert [f.sentence for f in checked.flagged] == ["BANANA!"]


def test_an_uncited_claim_is_flagged_but_uncited_connecting_prose_is_not() -> None:
    checked = check_answer("Here is what the files say.\nRevenue was $4,200,000.", EVIDENCE)
    assert [f.sentence for f in checked.flagged] == ["Revenue was $4,200,000."]
    assert checked.flagged[0].cited == ()


def test_the_decline_sentinel_declines() -> None:
    for reply in ("NOT_FOUND", "  **NOT_FOUND**", "NOT_FOUND. The files do not say."):
        checked = check_answer(reply, EVIDENCE, decline_token="NOT_FOUND")
        assert checked.declined and checked.text == "", reply
    assert not check_answer("NOT reported [1].", EVIDENCE, decline_token="NOT_FOUND").declined


def test_a_snake_case_column_supports_the_words_it_joins() -> None:
    """A table finding names its columns as SQL does; strict mode must not drop the answer read from it."""
    finding = "Result of a query over table 'cups':\nrow | team | stanley_cups\n3 | Maple Leafs | 13"
    checked = check_answer("The Maple Leafs have won the most Stanley Cups: 13 [1].", [finding], strict=True)
    assert checked.flagged == () and checked.text == "The Maple Leafs have won the most Stanley Cups: 13 [1]."


def test_strict_mode_that_drops_everything_declines() -> None:
    assert check_answer("It was 99 [1].", EVIDENCE, strict=True).declined


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_streaming_passes_on_exactly_the_checked_text(strict: bool, size: int) -> None:
    reply = (
        "  Revenue in Q3 2023 was $4,200,000 [1][7]. BANANA rules [1].\n\n"
        "- Berlin opened in 2019 [2, 9].\n- The ratio was 55.8% [3] [12]\n"
    )
    pieces: list[str] = []
    gate = CitationGate(EVIDENCE, strict=strict, sink=pieces.append, decline_token="NOT_FOUND")
    for start in range(0, len(reply), size):
        gate.feed(reply[start : start + size])
    checked = gate.close()
    assert "".join(pieces) == checked.text == check_answer(reply, EVIDENCE, strict=strict).text
    assert "[7]" not in checked.text and ", 9" not in checked.text and "[12]" not in checked.text
    assert checked.invalid == (7, 9, 12)
    assert ("BANANA" in checked.text) is not strict
    assert checked.text.startswith("Revenue") and checked.text.endswith("55.8% [3]")
