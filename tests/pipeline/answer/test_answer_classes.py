"""The answer a person reads, for each class of failure seen on questions nobody tuned for.

A small drive is generated here (text, mail, CSV) and ingested once with the real text model; each
test asks it the way an employee would and checks what the answer's first line says. The phrasing of
the files and questions is made up for these tests; none comes from an evaluation set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmrag.ingest.chunk import Chunk, Modality, Page, TimeSpan
from mmrag.pipeline.answer.extractive import extractive_answer, missing_terms
from mmrag.pipeline.answer.types import Answer
from mmrag.pipeline.api import ask_index, ingest, search_index
from mmrag.pipeline.app import App, open_app
from mmrag.pipeline.config import Config, load_config
from mmrag.retrieval.query import analyse
from mmrag.retrieval.store import Hit

pytestmark = pytest.mark.slow

FORM = """Volunteer Rangers in the Library - request form

Library name: ________ Contact person: ________ Phone: ________ Date requested: ________
Program requested: 1st choice ________ 2nd choice ________ Comments: ________

Requests are handled in the order they arrive, as rangers are available.
Requests should be sent three full weeks before the requested date.
Send the form by email to the park office.
"""

DIARY = """The Siege Diary of Corporal Alden, page 41

We drilled in the rain again and the river rose another foot.
The quartermaster came with the pay-rolls, and the men talked of nothing else.
A private here draws eleven dollars a month, and many a family at home depends on it.
Supper was hard bread and coffee.
"""

MAIL = """From: Dana Whitfield <dana@example.org>
To: webteam@example.org
Subject: Secure web server evaluation
Date: Tue, 4 Mar 1997 10:12:00 -0700

I am comparing secure web servers for our group and would like your experience.
We will be running the server on a Vax 4000 in the basement lab.
Any benchmarks are welcome.

-- Dana Whitfield -- Webmaster -- Example Org -- dana@example.org
"""

GARAGE = """From: Facilities <facilities@example.org>
To: all-staff@example.org
Subject: Parking garage closed for repairs
Date: Mon, 6 Jan 2025 08:00:00 +0000

The parking garage on Elm Street is closed from 13 January to 24 January while the ramps are resurfaced.
Please use the lot behind building C in the meantime.
"""

REPORT = """Nordwind Logistics annual report 2021

Revenue in 2021 was 48.2 million euros, up 6% on the year before.
The company opened a depot in Gdansk and employs 310 people.
"""

MEMO = """Maintenance note

The pump that failed in the east wing carries asset tag QX20170042; it was replaced on 3 May 2023.
"""


GRANT_FORM = """Community Grant Application GA-77

Control Number: 5521-0098

Expiration Date: 12/31/2030
Application for Community Grant GA-77

Applicant Name: ________ Organisation: ________
"""

PRINCIPLES = """Product principles

“Fast is a feature, not a luxury”

Priya Raman – 2/11/19

We keep every page under a second, because people leave slow pages and rarely come back.
"""


COUNTIES = """name,total_population,margin_of_error
"Franklin County, OH",1163414,0
"Hamilton County, OH",802374,0
"Summit County, OH",541013,0
"Lorain County, OH",301356,0
"""

ORDERS = """OrderID,Customer,Product,Quantity,TotalAmount
000775,Ines Ward,Rivers of Glass,3,45.00
000776,Tom Osei,Salt and Iron,1,19.50
000777,Mia Chen,The Quiet Orchard,4,88.00
000778,Ravi Patel,Salt and Iron,2,39.00
"""


FOLIO = """Harbor Hotel
Guest: R. Okafor Room 204
DATE DESCRIPTION CHARGES CREDITS
02May24 Room Charge 140.00
02May24 City Tax 8.40
02May24 Parking 12.00
03May24 Visa 160.40
Balance 0.00
"""

LUNCH = """Lunch order receipt
March 8, 2024 at 12:10 PM Order Details
Soup $6.50
Salad $9.25
Subtotal $15.75
Tip $2.25
Total $18.00
"""

APPLICATION = """Employment Application
Full Name: Jordan Lee Date: 01/02/2023
Position Applied for: Analyst
Phone: 555 0100
"""


def _parts_csv() -> str:
    rows = ["tag,part,site,cost"]
    rows += [f"QX2017{n:04d},valve {n},site {n % 7},{100 + n}" for n in range(100, 160)]
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("answers")
    drive = root / "drive"
    for name, text in {
        "outreach/ranger-request-form.txt": FORM,
        "archive/siege-diary-p41.txt": DIARY,
        "mail/secure-server.eml": MAIL,
        "mail/garage.eml": GARAGE,
        "finance/nordwind-annual-report-2021.txt": REPORT,
        "facilities/maintenance-note.txt": MEMO,
        "facilities/parts.csv": _parts_csv(),
        "grants/ga-77-community-grant-form.txt": GRANT_FORM,
        "data/ohio-county-population-2020.csv": COUNTIES,
        "sales/book-orders.csv": ORDERS,
        "parks/park-visitors-2022.csv": "park,visitors,rangers\nPine Lake,41250,6\nRed Cliff,18900,3\nOld Mill,9100,2\n",
        "parks/park-visitors-2023.csv": "park,visitors,rangers\nPine Lake,46830,7\nRed Cliff,17250,3\nOld Mill,9800,2\n",
        "people/leadership.txt": "Leadership team\n\nHead of Sales Ana Ruiz\nHead of Finance Ben Cole\n"
        "Head of Operations Chloe Park\n\nThe team meets every Monday.\n",
        "sales/regions.txt": "Sales regions\n\nOur Indiana and Kentucky stores report to the Louisville office; "
        "the population they serve is counted each spring.\n",
        "product/principles-note.txt": PRINCIPLES,
        "hr/applications/employment-application.txt": APPLICATION,
    }.items():
        path = drive / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    cfg: Config = load_config(index_dir=root / "index", env={"XDG_CONFIG_HOME": str(root / "config")})
    ingest([drive], cfg)
    opened = open_app(cfg, create=False)
    try:
        yield opened
    finally:
        opened.close()


def _first_line(app: App, question: str) -> str:
    answer, _ = ask_index(app, question)
    lines = answer.text.splitlines()
    return lines[1] if answer.extractive and len(lines) > 1 else answer.text


def test_a_year_the_evidence_lacks_is_declined_saying_what_was_found(app: App) -> None:
    """The maintenance note mentions 2023, the report is 2021's: no passage answers for 2023."""
    answer, _ = ask_index(app, "What was Nordwind's revenue in 2023?")
    assert answer.declined
    assert "2023" in answer.text and "nordwind-annual-report-2021.txt" in answer.text
    right = ask_index(app, "What was Nordwind's revenue in 2021?")[0]
    assert not right.declined and "48.2 million" in right.text.splitlines()[1]


def test_a_bare_code_puts_the_chunk_that_holds_it_first(app: App) -> None:
    hits = search_index(app, "QX20170042", 5)
    assert hits[0].chunk.source == "facilities/maintenance-note.txt"


def test_a_find_question_answers_with_the_item(app: App) -> None:
    answer, _ = ask_index(app, "Find the email about the parking garage being closed")
    assert not answer.declined
    assert answer.text.splitlines()[1].startswith("Found: mail/garage.eml")


def test_the_line_that_answers_comes_before_the_form_that_repeats_the_question(app: App) -> None:
    line = _first_line(app, "How far ahead of the requested date does a library have to send a ranger request?")
    assert "three full weeks" in line


def test_a_number_written_in_words_answers_how_much(app: App) -> None:
    line = _first_line(app, "In the siege diary, how much pay did a private get each month?")
    assert "eleven dollars" in line


def test_the_answer_line_need_not_repeat_the_name_the_question_gives(app: App) -> None:
    line = _first_line(app, "What machine was Dana Whitfield going to run the secure web server on?")
    assert "Vax 4000" in line


def test_a_form_line_labelled_with_what_is_asked_answers_before_the_title_line(app: App) -> None:
    line = _first_line(app, "What control number is printed on the GA-77 community grant form?")
    assert "5521-0098" in line


def test_a_row_of_another_entity_with_the_same_name_is_declined_saying_what_was_found(app: App) -> None:
    answer, _ = ask_index(app, "What's the population of Franklin County, Indiana in the county population file?")
    assert answer.declined
    assert "Franklin County, OH" in answer.text and "Indiana" in answer.text
    right = _first_line(app, "What's the population of Franklin County, Ohio in the county population file?")
    assert "1163414" in right  # the file is Ohio's: OH is Ohio there


def test_the_head_of_another_department_does_not_answer_who_heads_this_one(app: App) -> None:
    answer, _ = ask_index(app, "Who is the head of marketing on the leadership team page?")
    assert answer.declined and "head of marketing" in answer.text and "Head of" in answer.text
    assert "Ben Cole" in ask_index(app, "Who is the head of finance on the leadership team page?")[0].text


def test_a_comparison_of_two_years_kept_in_two_files_answers_for_each(app: App) -> None:
    answer, _ = ask_index(app, "How did the number of visitors at Pine Lake change between 2022 and 2023?")
    computed = [line for line in answer.text.splitlines() if line.removeprefix("- ").startswith("From the table")]
    assert len(computed) == 2, answer.text  # each year's row, computed from its own file
    assert "41250" in computed[0] and "46830" in computed[1]
    cited = {c.hit.chunk.source for c in answer.citations}
    assert {"parks/park-visitors-2022.csv", "parks/park-visitors-2023.csv"} <= cited


def test_a_question_asking_for_two_things_of_one_row_shows_the_row(app: App) -> None:
    line = _first_line(app, "Which book was on order 000777 and what was the order total?")
    assert "The Quiet Orchard" in line and "88" in line


def test_a_label_counts_when_all_of_it_was_asked_and_a_value_follows() -> None:
    from mmrag.pipeline.answer.units import LABELLED, _labelled
    from mmrag.retrieval.terms import terms

    asked = terms("What control number is printed on the GA-77 community grant form?")
    document = terms("grants/ga-77-community-grant-form.txt")
    assert _labelled("Version 3 Control Number: 5521-0098", asked, document) == LABELLED
    assert _labelled("Funding Opportunity Number: MBL-424", asked, document) == 0.0  # "Funding ..." was not asked
    assert _labelled("Control Number: ________", asked, document) == 0.0  # a blank to fill in
    assert _labelled("Grant: GA-77", asked, document) == 0.0  # the document's own name
    assert _labelled("Control Number: 11 · Site: north", asked, document) == 0.0  # a table row: every row has it


def test_a_line_that_only_repeats_the_question_is_not_the_answer(app: App) -> None:
    line = _first_line(app, "Who wrote the note saying 'fast is a feature, not a luxury'?")
    assert "Priya Raman" in line


def _hit(modality: Modality, text: str) -> Hit:
    locator = TimeSpan(0.0, 10.0) if modality is not Modality.TEXT else Page(1)
    return Hit(Chunk("media/jfk.mp4" if modality is not Modality.TEXT else "a.pdf", modality, locator, text), 0.9, "/d")


def test_a_speaker_need_not_say_their_own_name_but_a_page_must_name_it() -> None:
    asked = analyse("What did Whitfield ask the crowd in 1997?")
    speech = _hit(Modality.SPEECH, "In 1997 I ask you all to vote.")
    page = _hit(Modality.TEXT, "In 1997 I ask you all to vote.")
    assert missing_terms(asked, [speech]) == []
    assert missing_terms(asked, [page]) == ["Whitfield"]
    assert missing_terms(analyse("What did Whitfield ask the crowd in 2001?"), [speech]) == [
        "2001"
    ]  # years stay required


def _photo(name: str, text: str) -> Hit:
    """A hit on a photographed receipt: its text is read by OCR line by line."""
    return Hit(
        Chunk(f"finance/receipts/{name}.png", Modality.IMAGE, Page(1), f"{name}\nText in image: {text}"), 0.9, "/d"
    )


def _answer_line(app: App, question: str, hits: list[Hit]) -> Answer:
    return extractive_answer(question, hits, app.vectorizer)


def test_a_total_with_no_total_label_is_the_amount_the_items_add_up_to(app: App) -> None:
    hits = [_photo("harbor-hotel-folio", FOLIO), _photo("lunch-order", LUNCH)]
    answer = _answer_line(app, "What was the total on my Harbor Hotel folio?", hits)
    assert "160.40" in answer.text.splitlines()[1]


def test_the_date_that_names_the_receipt_is_not_the_answer(app: App) -> None:
    answer = _answer_line(
        app, "What did the lunch order from March 8, 2024 come to in total?", [_photo("lunch-order", LUNCH)]
    )
    line = answer.text.splitlines()[1]
    assert "18.00" in line and "12:10" not in line


def test_an_item_of_another_name_does_not_answer_for_the_one_asked(app: App) -> None:
    hits = [_photo("harbor-hotel-folio", FOLIO)]
    answer = _answer_line(app, "How much did Harbor Hotel charge for room service?", hits)
    assert answer.declined and "room charge" in answer.text and "room service" in answer.text
    assert "140.00" in _answer_line(app, "How much was the room charge at Harbor Hotel?", hits).text.splitlines()[1]


def test_what_no_passage_about_the_person_speaks_of_is_declined(app: App) -> None:
    answer, _ = ask_index(app, "Who was Jordan Lee's previous employer on the application?")
    assert answer.declined and "previous employer" in answer.text
    assert "555 0100" in _first_line(app, "What is Jordan Lee's phone on the application?")


def test_amounts_that_add_up_to_a_later_one_make_it_a_total() -> None:
    from mmrag.pipeline.answer.units import totals

    assert totals(FOLIO) == {"160.40"}
    assert totals("Coffee 3.00\nMuffin 2.50\nPaid 9.99\n") == set()  # nothing adds up to it
    assert totals("Fee 5.00\nFee again 5.00\n") == set()  # one line is not a sum


def test_a_word_of_the_evidence_that_starts_the_asked_one_counts_for_relevance() -> None:
    from mmrag.pipeline.answer.extractive import relevant

    frame = _hit(Modality.MOMENT, "On screen: The Harbor Seven outboard motor brochure")
    frame = Hit(
        Chunk("media/video/narrated-slides.mp4", Modality.MOMENT, TimeSpan(0.0, 7.0), frame.chunk.text), 0.9, "/d"
    )
    assert relevant("Which motor is on screen in the narrated slideshow video?", [frame], 0.99)
    assert not relevant(
        "Which motor is on screen in the narrated slideshow video?",
        [_hit(Modality.TEXT, "Quarterly sales rose.")],
        0.99,
    )


def test_a_question_about_two_bills_adds_or_compares_their_totals(app: App) -> None:
    from mmrag.pipeline.answer.parts import answer_parts, split_parts

    hits = [_photo("lunch-order-receipt", LUNCH), _photo("harbor-hotel-folio", FOLIO)]

    def each(part: str) -> Answer:
        return extractive_answer(part, hits, app.vectorizer)

    both = answer_parts("What did the Harbor Hotel folio and the lunch order come to together?", hits, each)
    assert both is not None and both.text.splitlines()[1].startswith("Together: 178.40")
    assert {c.hit.chunk.source for c in both.citations} == {h.chunk.source for h in hits}
    bigger = answer_parts(
        "Which is bigger: the total of the lunch order or the total of the Harbor Hotel folio?", hits, each
    )
    assert bigger is not None and bigger.text.splitlines()[1].startswith("The bigger is 160.40")
    smaller = answer_parts("Which was cheaper, the lunch order or the Harbor Hotel folio?", hits, each)
    assert smaller is not None and smaller.text.splitlines()[1].startswith("The smaller is 18.00")
    assert split_parts("What did the team and the board decide?") is None  # two subjects, nothing to add up
    one_file = [_photo("lunch-order-receipt", LUNCH)]
    assert answer_parts("What did the soup and the salad come to together?", one_file, each) is None  # one bill's lines


def test_accents_do_not_keep_a_word_from_its_plain_spelling() -> None:
    from mmrag.retrieval.terms import terms

    assert terms("café résumé") == terms("cafe resume")


def test_a_slide_line_is_a_point_of_its_own_however_long_the_others() -> None:
    from mmrag.ingest.chunk import Slide
    from mmrag.pipeline.answer.units import units

    text = (
        "Deck — slide 2\n\nRestarting the service\n\n"
        "The service restarts by itself after a failed health check in most of the deployments we run\n"
        "Manually restarted by sending a signal to the main process from the operator's console:\n"
        "systemctl restart billing (Linux)\n"
        "net stop billing followed by net start billing on the Windows hosts in the old data centre\n"
    )
    found = {u.text for u in units(Chunk("deck.pptx", Modality.TEXT, Slide(2), text), 0)}
    assert "systemctl restart billing (Linux)" in found
    page = {u.text for u in units(Chunk("notes.pdf", Modality.TEXT, Page(2), text), 0)}
    assert "systemctl restart billing (Linux)" not in page  # prose lines of a page run on


FORWARD = """Subject: Fwd: FYI
From: Lena Park <lena@example.org>
To: all-staff@example.org
Date: Tue, 7 Jan 2025 09:00:00 +0000

Passing this on for anyone who missed it.
"""

FORWARDED = """Subject: Parking garage closed
From: Facilities <facilities@example.org>
Date: Mon, 6 Jan 2025 08:00:00 +0000

The parking garage on Elm Street is closed from 13 January while the ramps are resurfaced.
"""


def test_who_forwarded_a_message_is_the_sender_of_the_forward(app: App) -> None:
    from mmrag.ingest.chunk import Section

    hits = [
        Hit(Chunk("mail/fwd.eml", Modality.TEXT, Section(("attachment",)), FORWARDED), 0.9, "/d"),
        Hit(Chunk("mail/fwd.eml", Modality.TEXT, Section(()), FORWARD), 0.8, "/d"),
    ]
    answer = extractive_answer("Who forwarded the parking garage notice?", hits, app.vectorizer)
    assert "Lena Park" in answer.text.splitlines()[1]
    sent = extractive_answer("Who sent the parking garage notice?", hits[:1], app.vectorizer)
    assert "Facilities" in sent.text.splitlines()[1]


def test_a_time_adjective_is_its_period() -> None:
    from mmrag.retrieval.terms import terms

    assert "day" in terms("daily traffic") and "year" in terms("annual report") and "month" in terms("monthly fee")


def test_a_cell_of_alternatives_is_named_in_short() -> None:
    from mmrag.pipeline.answer.table_query import _alternatives_named

    folded = " what is the maximum length of the applicant entity name field "
    assert _alternatives_named("APPLICANT NAME / ENTITY NAME", folded)
    assert not _alternatives_named("APPLICANT NAME / ENTITY CODE", folded)  # no shared last word
    assert not _alternatives_named("FATHER'S NAME", folded)
