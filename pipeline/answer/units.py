"""Pick the passages that answer a question from retrieved chunks, without an LLM.

A chunk is cut into answer units: sentences of prose, the lines of forms, invoices and OCR text
(where a value sits on its own line: "AMOUNT DUE $610.00", "Attachments: test.txt"), and table rows
paired with their column names ("Team: Maple Leafs · Stanley Cups: 13"). Context lines (the heading
path or table name every chunk starts with) and table summaries are context, not answers.

Units are scored by meaning (sentence-embedding similarity to the question) and by the question's
words they hold, each weighted by how rare it is among the candidates, and by what the question asks
for (``retrieval.query``): a unit that holds a date for a "when" question, a number for a "how many",
a name for a "who"; that mentions the question's years, codes and names (and not another year
instead); and that says something the question does not already say (a title line that repeats the
question's words answers nothing). Better-ranked hits are slightly preferred.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmrag.ingest.chunk import Chunk, Slide
from mmrag.retrieval.query import Question, Wants, analyse, mentions
from mmrag.retrieval.store import Hit
from mmrag.retrieval.terms import terms
from mmrag.retrieval.vectorize import Vectorizer

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[•“])")
_LIST_ITEM = re.compile(r"\n(?=\s*(?:[•\-*–]|\d+[.)])\s)")
_DIGIT = re.compile(r"\d")
_MONTHS = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
_CALENDAR = (  # a day, a year or a time of day
    rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}\b|\b\d{{1,2}}\s+(?:{_MONTHS})\b|\b\d{{1,4}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b|"
    rf"\b(?:1[5-9]|20)\d\d\b|\b\d{{1,2}}:\d\d(?:\s*[ap]m\b)?|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b"
)
_DATE = re.compile(rf"{_CALENDAR}|\b\d+\s+(?:days?|weeks?|months?|years?|hours?|minutes?)\b", re.IGNORECASE)
_ON_CALENDAR = re.compile(_CALENDAR, re.IGNORECASE)
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|"
    r"million|billion|dozen|half|twice"
)
_NUMBER_WORD = re.compile(rf"\b(?:{_NUMBER_WORDS})\b", re.IGNORECASE)  # "thirteen dollars", "two full weeks"
_SPAN_IN_WORDS = re.compile(
    rf"\b(?:{_NUMBER_WORDS}|a|an|several|few)\s+(?:\w+\s+)?(?:days?|weeks?|months?|years?|hours?|minutes?)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?<!\d)(?:1[5-9]|20)\d\d(?!\d)")
# A whole date ("March 12, 2024", "10 June 2019", "6/10/2019"): in a question that does not ask for a date
# it says which document (the receipt of that day), like a name, not what the answer line holds
_FULL_DATE = re.compile(
    rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+(?:1[5-9]|20)\d\d)?\b|"
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\.?(?:,?\s+(?:1[5-9]|20)\d\d)?\b|"
    rf"\b\d{{1,4}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")
_OCR_PREFIX = "Text in image:"
_URL = re.compile(r"https?://\S+|www\.\S+")
_WHAT = re.compile(r"\s*(?:what|which)\b", re.IGNORECASE)
# A specific thing named inside a line: a capitalised word after its first word ("a Vax 4000"), or a
# token with a digit ("RFC 2069", "v2.1").
_SPECIFIC = re.compile(r"(?<=\w[\s,;:(])(?!I\b)[A-Z][\w-]*(?![\w-]*:)|\b\w*\d[\w.-]*")  # a "Label:" is not one
_HEADER = re.compile(
    r"^(?:Subject|From|To|Cc|Bcc|Date|Sent|Reply-To|Return-Path|Received|Message-ID|Organization):", re.IGNORECASE
)
# "Label: value" inside a line (forms, invoices, draft announcements): a colon with a value after it
_LABEL_COLON = re.compile(r"\s*:\s+(?=[^\s_]*[A-Za-z0-9])")  # a value follows, not a blank to fill in
_LABEL_AMOUNT = re.compile(
    r"^([A-Za-z][A-Za-z'/&-]*(?:\s+[A-Za-z][A-Za-z'/&-]*){0,3})\s*:?\s+[$€£]?\s?-?\d[\d,]*(?:\.\d+)?%?\s*(?:[A-Z]{3})?$"
)
_MONEY = re.compile(r"(?<![\d.])-?\d{1,3}(?:,\d{3})*\.\d\d(?![\d.])|(?<![\d.,])-?\d+\.\d\d(?![\d.])")
_TOTAL_ASKED = re.compile(
    r"\b(?:total|totals|altogether|in all|sum|come to|came to|comes to|add up|added up)\b", re.IGNORECASE
)
MAX_SUMMED_LINES = 30
_RECORD_END = re.compile(r"(?<=\d)[ \t]*\n(?=[ \t]*[A-Z0-9$€£])")
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]*")  # a word a label may continue with (not a value such as "00.txt")
_DESCRIPTOR = re.compile(r"^(?:Looks like|Main colours?|[A-Z]{3,4} image, \d+)", re.IGNORECASE)
MIN_UNIT_CHARS = 8
MAX_UNIT_CHARS = 400
SHORT_LINES = 60  # a block whose median line is shorter is a form, a list or a column: lines are units too
# Units embedded per answer. Embedding every unit of 8 hits cost 0.3-0.7 s per answer; on the dev
# questions 32 (and 16) changed no answer's correctness.
EMBED_LIMIT = 48
CONTEXT_MARKERS = (" — ", " > ")

# How much each signal counts (round numbers, set once): meaning and rare words carry the score,
# what the question asks for and its key terms adjust it.
SIMILARITY, OVERLAP = 0.5, 0.5
FITS = 0.15  # the unit holds the kind of answer asked for (a date, a number, a name)
KEY_TERMS = 0.2  # share of the question's years, codes and names the unit or its chunk mentions
OTHER_YEAR = 0.15  # penalty: the unit names another year than the one asked for, and not that one
RESTATES = 0.2  # penalty: the unit adds (almost) nothing to the question's own words
DESCRIPTOR = 0.15  # penalty: a picture's "Looks like ..." or format line answers only a find
LINKS = 0.2  # penalty: a unit that is mostly web addresses
LONG, LONG_UNIT = 0.15, 250  # penalty, growing past LONG_UNIT characters
HEADER = 0.3  # penalty: a message's header lines say who wrote when, about what; not what it says
LABELLED = 0.2  # a form's "Label: value" whose label is what the question asks for ("OMB Number: 4040-0004")
SUMMED = 0.2  # an amount that is the sum of the amounts listed above it, when a total is asked for
SENDER = 0.3  # a message's From line, when the question asks who sent, wrote or forwarded it
ECHO = 0.3  # penalty, on top of RESTATES: a unit with no word the question does not have answers nothing
DOCUMENT_WORD = 0.25  # weight of a question word that names the document rather than what is asked


@dataclass(frozen=True, slots=True)
class Unit:
    text: str
    hit_index: int


@dataclass(frozen=True, slots=True)
class Scored:
    text: str
    hit_index: int
    score: float
    overlap: float
    similarity: float


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_units(lines: list[str], index: int) -> list[Unit]:
    header = _cells(lines[0])
    out = []
    for line in lines[1:]:
        if set(line.replace("|", "").strip()) <= set("-: "):
            continue
        cells = _cells(line)
        if 1 <= len(header) < len(cells):  # a header cell spans several columns (merged in the source):
            # the first one does ("Food" over "Berries | Blueberry, Strawberry"), the last keep their own
            extra = len(cells) - len(header)
            cells = [", ".join(c for c in cells[: extra + 1] if c), *cells[extra + 1 :]]
        pairs = [f"{h}: {c}" if h and not h.startswith("column ") else c for h, c in zip(header, cells, strict=False)]
        text = " · ".join(p for p, c in zip(pairs, cells, strict=False) if c)
        if text:
            out.append(Unit(text[:MAX_UNIT_CHARS], index))
    return out


def _is_context(block: str, chunk: Chunk, first: bool) -> bool:
    if not first or "\n" in block.strip() or len(block) > 240:
        return False
    return block.strip() == chunk.title or any(m in block for m in CONTEXT_MARKERS)


def _line_units(lines: list[str], index: int) -> list[Unit]:
    """Each short line, and each short line with the next (a label above its value: "Total", "$610.00")."""
    out = []
    flat = [" ".join(line.split()) for line in lines]
    for i, line in enumerate(flat):
        if len(line) >= MIN_UNIT_CHARS:
            out.append(Unit(line[:MAX_UNIT_CHARS], index))
        ends_with_value = _MONEY.search(line[-12:]) is not None  # "Subtotal $48.68": a record, not a label
        if (
            i + 1 < len(flat)
            and len(line) < 40
            and flat[i + 1]
            and not line.endswith((".", "!", "?"))
            and not ends_with_value
        ):
            joined = f"{line} {flat[i + 1]}"
            if len(joined) >= MIN_UNIT_CHARS:
                out.append(Unit(joined[:MAX_UNIT_CHARS], index))
    return out


def _sentence_units(block: str, index: int) -> list[Unit]:
    out = []
    for item in _LIST_ITEM.split(block):
        for sentence in _SENTENCE.split(item):
            flat = " ".join(sentence.split())
            if len(flat) >= MIN_UNIT_CHARS:
                out.append(Unit(flat[:MAX_UNIT_CHARS], index))
    return out


def units(chunk: Chunk, index: int) -> list[Unit]:
    """The answer units of one chunk (none for table summaries)."""
    blocks = [b for b in re.split(r"\n{2,}", chunk.text) if b.strip()]
    if blocks and "table summary" in blocks[0]:
        return []
    out: list[Unit] = []
    for position, block in enumerate(blocks):
        if _is_context(block, chunk, position == 0) and len(blocks) > 1:
            continue
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and lines[0].lstrip().startswith("|"):
            out.extend(_table_units(lines, index))
            continue
        if any(line.startswith(_OCR_PREFIX) for line in lines):
            out.extend(_line_units([line.removeprefix(_OCR_PREFIX).strip() for line in lines], index))
            continue
        # a form's, a list's or a column's lines; a slide's lines are its points, however long
        short = len(lines) >= 2 and (
            isinstance(chunk.locator, Slide) or statistics.median(len(line) for line in lines) < SHORT_LINES
        )
        # a bill's or a list's line that ends with its amount or number is a record of its own: a sentence
        # does not run on into the next line ("Soup $6.50" / "Salad $9.25"), as wrapped prose does
        records = _RECORD_END.split(block) if short else [block]
        sentences = [u for record in records for u in _sentence_units(record, index)]
        if short:
            seen = {u.text for u in sentences}
            sentences += [u for u in _line_units(lines, index) if u.text not in seen]
        out.extend(sentences)
    return out


def fits(text: str, wants: frozenset[Wants], question: str) -> bool:
    """Whether ``text`` holds the kind of answer asked for: a date, a number, a name not in the question."""
    if wants & {Wants.DATE} and (_DATE.search(text) or _SPAN_IN_WORDS.search(text)):
        return True
    if wants & {Wants.COUNT, Wants.VALUE}:
        # an amount or a count, not the day or time a line is dated with ("March 12, 2024 at 5:55 PM")
        counted = text if Wants.DATE in wants else _ON_CALENDAR.sub(" ", text)
        if _DIGIT.search(counted) or _NUMBER_WORD.search(counted):
            return True
    if wants & {Wants.PERSON, Wants.PLACE}:
        asked = question.lower()
        return any(name.lower() not in asked for name in _CAPITALISED.findall(text))
    if Wants.FACT in wants and _WHAT.match(question):  # "what machine ...": the answer names a thing
        asked = question.lower()
        return any(t.lower() not in asked for t in _SPECIFIC.findall(text))
    return False


def score_units(
    question: str, hits: Sequence[Hit], vectorizer: Vectorizer, asked: Question | None = None
) -> list[Scored]:
    """Every answer unit of the hits, best first.

    Only the ``EMBED_LIMIT`` units that lead by the question's words (and the first unit of each hit) are
    embedded: embedding is most of an answer's time, and a unit sharing no rare word with the question
    rarely wins. The others keep their word score with no meaning score.
    """
    asked = asked or analyse(question)
    candidates = [u for i, hit in enumerate(hits) for u in units(hit.chunk, i)]
    if not candidates:
        return []
    words = terms(question)
    unit_terms = [terms(u.text) for u in candidates]
    df = {t: sum(t in ut for ut in unit_terms) for t in words}
    idf = {t: math.log((len(candidates) + 1) / (df[t] + 0.5)) for t in words}
    total = math.fsum(idf.values()) or 1.0  # fsum: exact, so the order of a set never changes a score
    # Words that pick the document (its names, years and codes; words of its title or file name) say
    # little about which of its lines answers: the header line that repeats them is not the answer.
    keyed = set().union(*(terms(k) for k in asked.key_terms)) if asked.key_terms else set()
    keyed |= terms(" ".join(_dates(question, asked)))
    document = [keyed | terms(f"{h.chunk.title} {h.chunk.source}") for h in hits]
    overlaps = [
        math.fsum(idf[t] * (DOCUMENT_WORD if t in document[u.hit_index] else 1.0) for t in words & found) / total
        for u, found in zip(candidates, unit_terms, strict=True)
    ]
    total_asked = _TOTAL_ASKED.search(question) is not None
    summed = [totals(h.chunk.text) if total_asked else set() for h in hits]
    sender = [_sender(question, h.chunk.text) for h in hits]  # what a From line of each passage counts
    labels = words | {"total"} if total_asked else words  # "what did it come to" asks for the line labelled total
    adjust = [
        _adjust(u, found, words, asked, hits)
        + _labelled(u.text, labels, document[u.hit_index])
        + (SUMMED if summed[u.hit_index] & set(_MONEY.findall(u.text)) else 0.0)
        + (sender[u.hit_index] if _FROM.search(u.text) else 0.0)
        for u, found in zip(candidates, unit_terms, strict=True)
    ]
    priors = [1.0 / (1.0 + 0.1 * u.hit_index) for u in candidates]
    lexical = [(OVERLAP * o + a) * p for o, a, p in zip(overlaps, adjust, priors, strict=True)]
    chosen = _to_embed(candidates, lexical)
    similarity = [0.0] * len(candidates)
    if chosen:
        vectors = vectorizer.texts([candidates[i].text for i in chosen])
        asking = vectorizer.texts([_without_names(question, asked)])[0]
        for i, sim in zip(chosen, np.asarray(vectors @ asking).tolist(), strict=True):
            similarity[i] = float(sim)
    out = []
    for unit, overlap, extra, prior, sim in zip(candidates, overlaps, adjust, priors, similarity, strict=True):
        score = (SIMILARITY * sim + OVERLAP * overlap + extra) * prior
        out.append(Scored(unit.text, unit.hit_index, score, overlap, sim))
    out.sort(key=lambda s: -s.score)
    return out


def _dates(question: str, asked: Question) -> list[str]:
    """The whole dates a question gives to say which document it means (none when it asks for a date)."""
    return [] if Wants.DATE in asked.asks else _FULL_DATE.findall(question)


def _amount(text: str) -> float:
    return float(text.replace(",", ""))


def totals(text: str) -> set[str]:
    """The amounts in ``text`` that are the sum of the amounts on the lines just above them: a bill's
    total when no line says "total" (a folio's payment line, "104.92" under charges that add up to it).
    Each line counts with its last amount; a sum takes two lines or more."""
    amounts = [(found[-1], _amount(found[-1])) for line in text.splitlines() if (found := _MONEY.findall(line))]
    out = set()
    for i, (written, value) in enumerate(amounts):
        running = 0.0
        for j in range(i - 1, max(-1, i - 1 - MAX_SUMMED_LINES), -1):
            running += amounts[j][1]
            if i - j >= 2 and abs(running - value) < 0.005 and value != 0:
                out.add(written)
                break
    return out


def _without_names(question: str, asked: Question) -> str:
    """The question without the names and dates it gives: they pick the document (``KEY_TERMS`` checks
    them), and compared by meaning they make every line that repeats them (a mail header, a signature,
    a receipt's date line) look like the answer."""
    text = question
    for date in _dates(question, asked):
        text = text.replace(date, " ")
    for name in asked.names:
        text = re.sub(rf"\b{re.escape(name)}(?:['’]s)?\b", " ", text)
    text = " ".join(text.split())
    return text if len(terms(text)) >= 2 else question


def _labelled(text: str, words: set[str], document: set[str]) -> float:
    """``LABELLED`` when a "Label: value" in the unit is labelled with what the question asks for: the
    label's words are all the question's, not only the ones naming the document, and a value follows.
    Table rows ("Team: Otters · Players: 11") are left out: every row of a table has the same labels."""
    if " · " in text:
        return 0.0
    plain = _LABEL_AMOUNT.match(text)  # a receipt's or invoice's line: "Total $61.48", "AMOUNT DUE 610.00"
    if plain:
        label = terms(plain.group(1))
        if label and label <= words and not label <= document:
            return LABELLED
    for colon in _LABEL_COLON.finditer(text):
        before = text[: colon.start()].split()[-5:]  # a label is a few words: try the last one, two, ...
        for n in range(1, min(4, len(before)) + 1):
            if n < len(before) and _PLAIN_WORD.fullmatch(before[-n - 1]):
                continue  # the label goes on to the left ("Funding Opportunity Number"): not all of it was asked
            label = terms(" ".join(before[-n:]))
            if label and label <= words and not label <= document:
                return LABELLED
    return 0.0


def _adjust(unit: Unit, found: set[str], words: set[str], asked: Question, hits: Sequence[Hit]) -> float:
    """What the question asks for, beyond its words: the kind of answer, its key terms, something new."""
    extra = FITS if fits(unit.text, asked.asks, asked.text) else 0.0
    keys = asked.key_terms
    if keys:
        # years and codes must be on the line (a table row of 2021 is not the 2022 one); a name counts
        # half when only its chunk has it (an email names its writer once, not on the line that answers)
        chunk = hits[unit.hit_index].chunk
        context = f"{chunk.title}\n{chunk.source}\n{unit.text}"
        names = set(asked.names)
        dated = " ".join(_dates(asked.text, asked))  # a year of the date that names the document: its chunk has it
        held = [
            1.0
            if mentions(context, k) or (mentions(dated, k) and mentions(chunk.text, k))
            else 0.5
            if k in names and mentions(chunk.text, k)
            else 0.0
            for k in keys
        ]
        extra += KEY_TERMS * math.fsum(held) / len(keys)
    if asked.years:
        named = set(_YEAR.findall(unit.text))
        if named and not named & set(asked.years):
            extra -= OTHER_YEAR
    if found and len(found - words) <= len(found) // 5:  # one new word on a short line may be the answer
        extra -= RESTATES
        if not found - words and not _DIGIT.search(unit.text) and asked.wants is not Wants.FIND:
            extra -= ECHO  # the question's own words (its quoted phrase, its title): no answer in it
    if asked.wants is not Wants.FIND and _DESCRIPTOR.match(unit.text):
        extra -= DESCRIPTOR
    if _HEADER.match(unit.text) and not asked.asks & {Wants.PERSON, Wants.DATE, Wants.PLACE, Wants.FIND}:
        extra -= HEADER
    if unit.text.rstrip().endswith(":"):  # a form's label with nothing filled in after it
        extra -= RESTATES
    if len(unit.text) > LONG_UNIT:  # an answer is a sentence or a line, not a page run together
        extra -= LONG * min(1.0, (len(unit.text) - LONG_UNIT) / LONG_UNIT)
    links = sum(len(m) for m in _URL.findall(unit.text))
    if links > 0.4 * len(unit.text):  # a list of links is where to read more, not an answer
        extra -= LINKS
    return extra


_WHO_SENT = re.compile(r"\bwho\s+(?:\w+\s+)?(sent|wrote|emailed|mailed|posted|forwarded|fwd)\b", re.IGNORECASE)
_FORWARD = re.compile(r"^Subject:\s*\[?(?:fwd?|fw)\b", re.IGNORECASE | re.MULTILINE)
_FROM = re.compile(r"(?:^|\s)From:\s+\S", re.IGNORECASE)


def _sender(question: str, chunk: str) -> float:
    """``SENDER`` for a From line of ``chunk`` when the question asks who sent or wrote the message; who
    forwarded it is the sender of the message whose subject says it is forwarded, not of the one it carries."""
    asked = _WHO_SENT.search(question)
    if asked is None:
        return 0.0
    if asked.group(1).lower() in ("forwarded", "fwd"):
        return SENDER if _FORWARD.search(chunk) else 0.0
    return SENDER


def _to_embed(candidates: Sequence[Unit], lexical: Sequence[float]) -> list[int]:
    """Indexes of the units worth embedding: the first of each hit, then the best by words, in order."""
    if len(candidates) <= EMBED_LIMIT:
        return list(range(len(candidates)))
    first = {u.hit_index: i for i, u in reversed(list(enumerate(candidates)))}
    chosen = set(first.values())
    for i in sorted(range(len(candidates)), key=lambda i: -lexical[i]):
        if len(chosen) >= EMBED_LIMIT:
            break
        chosen.add(i)
    return sorted(chosen)
