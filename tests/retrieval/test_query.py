"""What a question asks for, its key terms and the medium it names (general rules, generic examples)."""

from __future__ import annotations

import pytest

from mmrag.ingest.chunk import Modality
from mmrag.retrieval.query import Wants, analyse, mentions


@pytest.mark.parametrize(
    ("question", "wants"),
    [
        ("Find the photo of the red bicycle by the canal.", Wants.FIND),
        ("Show me the recording where the CFO talks about margins", Wants.FIND),
        ("Which video shows the warehouse fire drill?", Wants.FIND),
        ("Where is the slide about the hiring freeze?", Wants.FIND),
        ("How many desks does the Leeds office have?", Wants.COUNT),
        ("When is the deadline for expense claims?", Wants.DATE),
        ("At what point in the webinar does the host mention pricing?", Wants.DATE),
        ("Who signed the lease for the depot?", Wants.PERSON),
        ("Where was the noise level measured?", Wants.PLACE),
        ("Which suppliers were late in March?", Wants.LIST),
        ("How much did the catering cost?", Wants.VALUE),
        ("What is the refund policy for damaged goods?", Wants.FACT),
    ],
)
def test_the_kind_of_answer_asked_for(question: str, wants: Wants) -> None:
    assert analyse(question).wants == wants


def test_a_question_may_ask_for_two_things_the_first_leads() -> None:
    q = analyse("Who approved the budget, and in what year?")
    assert q.wants == Wants.PERSON and q.asks == {Wants.PERSON, Wants.DATE}


def test_years_codes_and_names_are_key_terms() -> None:
    q = analyse("What did Northwind Traders invoice on order PO-4471 in 2019, and is it in FY2019-20?")
    assert q.years == ("2019",)
    assert "PO-4471" in q.codes and "2019-20" not in q.codes  # a fiscal-year span is a year, not a code
    assert q.names == ("Northwind Traders",)
    assert set(q.key_terms) >= {"2019", "PO-4471", "Northwind Traders"}


def test_question_words_weekdays_and_short_acronyms_are_not_names() -> None:
    q = analyse("What did the Board of Trustees decide on Monday about the HR budget?")
    assert q.names == ("Board of Trustees",)
    assert "HR" not in q.key_terms


def test_an_acronym_alone_is_not_required_in_the_evidence() -> None:
    q = analyse("What is the NATO phonetic code for the letter B?")
    assert "NATO" in q.names and "NATO" not in q.key_terms  # a document may spell it out


def test_dates_and_money_are_not_mistaken_for_years() -> None:
    q = analyse("How much rain fell on 2012-01-04, and was it more than $2019.50?")
    assert "2012-01-04" in q.codes and q.years == ("2012",)


def test_the_medium_a_question_names() -> None:
    assert analyse("What did Alice say in her email to Bob?").kinds == {"eml"}
    assert analyse("In the quarterly deck, which slide has the org chart?").kinds == {"pptx", "odp"}
    photo = analyse("Find the picture of the loading dock")
    assert photo.kinds == {"image"} and photo.modalities == {Modality.IMAGE}
    assert analyse("What is the refund policy?").kinds == frozenset()


@pytest.mark.parametrize(
    ("evidence", "term", "found"),
    [
        ("Revenue for FY2020 rose", "2020", True),
        ("Revenue for 12020 units", "2020", False),
        ("Invoice INV-100 dated", "INV-100", True),
        ("Invoice INV 100 dated", "INV-100", True),
        ("Invoice INV-1001 dated", "INV-100", False),
        ("Galaxy Gaming, Inc. filed", "Galaxy Gaming", True),
        ("Galaxy Foods, Inc.", "Galaxy Gaming", False),
        ("This is a Libra-Vox recording", "LibriVox", True),  # a long name misheard by speech recognition
        ("Mr Smyth", "Smith", False),  # short names must match exactly
        ("CONTOSO LTD", "Contoso", True),
        ("archive/huck-finn-chapter2-scan.pdf", "Huckleberry Finn", True),  # a name shortened, one word as written
        ("Huck went out", "Huckleberry Finn", False),  # a shortened word alone is not the name
        ("Gal Gaming", "Galaxy Gaming", False),  # a short form has 4 letters or more
    ],
)
def test_mentions(evidence: str, term: str, found: bool) -> None:
    assert mentions(evidence, term) is found
