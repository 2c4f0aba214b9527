"""The built-in answerer that needs no LLM: the passage that answers first, then what supports it.

It works out what the question asks for (``retrieval.query.analyse``) and answers that:

- a **find** ("find the photo of ...", "the recording where ...") answers with the item: the best hit of
  the medium asked for whose description, text or transcript holds what the question describes;
- anything else answers with the one passage (a sentence, a form line, a table row, a transcript line)
  that best fits, cited, then up to two supporting quotes.

It declines, and says what it found instead, when the evidence does not hold the question's key
terms (a year, a code, a name: "the drive has the 2021 report, not 2023"), and when nothing
retrieved is close enough to the question in words or meaning. It says plainly that it is extractive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from mmrag.ingest.chunk import PICTURED, Modality
from mmrag.pipeline.answer.types import DECLINE_TEXT, EXTRACTIVE_NOTE, MAX_QUOTE_CHARS, Answer, Citation, link_for
from mmrag.pipeline.answer.units import Scored, score_units
from mmrag.retrieval.keyword import STOPWORDS
from mmrag.retrieval.query import Question, Wants, analyse, mentions
from mmrag.retrieval.store import Hit
from mmrag.retrieval.terms import stem, terms
from mmrag.retrieval.vectorize import Vectorizer

_YEAR_SPAN = re.compile(r"\b(?:1[5-9]|20)\d\d\s*[-–/]\s*\d{2,4}\b")  # "2021-22": the year 2021, not the word "22"
_SPOKEN = frozenset({Modality.SPEECH, Modality.MOMENT})
QUOTE_FLOOR = 0.6  # supporting quotes score at least this share of the answer's score
PER_PASSAGE = 3  # quotes from one passage at most (a page may hold the answer and what qualifies it)
KEY_TERM_HITS = 8  # the hits whose text the question's key terms are looked for in
# Words that name the medium or the act of finding, not what the item shows or says.
_FIND_WORDS = terms(
    "find show locate look search pull open give me the a an photo photograph picture image pic portrait "
    "screenshot scan video clip recording footage audio voice file document slide deck presentation "
    "spreadsheet sheet email message memo report every all where which that someone somebody says said "
    "talks talking mentions our we us contain contains include includes feature features has have"
)


def content_words(text: str) -> set[str]:
    """Stemmed meaningful words (shared with the unit scorer, so both agree on what matches)."""
    return terms(text)


def _covered(asked: set[str], text: str) -> float:
    found = terms(text)
    # a word of the evidence may be the start of the asked one, or the asked one the start of it
    # ("slide" of "slideshow", "scan" of "scanned"): four letters and half the word at least
    hits = sum(1 for t in asked if t in found or any(_starts(t, f) for f in found))
    return hits / max(1, len(asked))


def _starts(asked: str, found: str) -> bool:
    if len(asked) >= 4 and found.startswith(asked):
        return True
    return len(found) >= 5 and asked.startswith(found) and 2 * len(found) >= len(asked)


def _said(hit: Hit) -> str:
    return f"{hit.chunk.text}\n{hit.chunk.title}\n{hit.chunk.source}"


def focus_words(question: str, asked: Question | None = None) -> set[str]:
    """The question's meaningful words that say what it is about: not its names, years and codes (the
    gate checks those), not the medium it names or the act of asking ("find", "document", "file")."""
    asked = asked or analyse(question)
    keyed = [*asked.names, *asked.years, *asked.codes]  # the gate checks these; they say which, not what
    names = set().union(*(content_words(n) for n in keyed)) if keyed else set()
    return content_words(_YEAR_SPAN.sub(" ", question)) - names - _FIND_WORDS


def relevant(question: str, hits: Sequence[Hit], min_similarity: float) -> bool:
    """Whether the best hits plausibly answer the question (else the answer declines).

    Relevant when a top hit is close in meaning and holds at least a third of what the question is
    about (``focus_words``; all its words when it says little else), or holds three quarters of it
    whatever the vector score (half, for the best hit), or names what the question names (every name
    in it) and holds a fifth, or holds every code and quoted phrase of the question; or, below the
    first three, a hit close in meaning holds two thirds of it.
    """
    if not hits:
        return False
    question_terms = analyse(question)
    focus = focus_words(question, question_terms)
    asked = focus if len(focus) >= 2 else content_words(question)
    names = [n for n in question_terms.names if len(n) > 2]
    exact = question_terms.codes  # codes and quoted phrases: a hit that has them is the one asked about
    for position, hit in enumerate(hits[:3]):
        signals = dict(hit.signals)
        said = _said(hit)
        covered = _covered(asked, said)
        if signals.get("vector", 0.0) >= min_similarity and covered >= 0.33:  # a third
            return True
        if covered >= 0.75:
            return True
        # the thing the question is about is named in the hit: a looser match of the rest will do
        if names and all(mentions(said, n) for n in names) and (covered >= 0.2 or len(asked) <= 2):
            return True
        if exact and all(mentions(said, c) for c in exact):
            return True
        if position == 0 and covered >= 0.5:  # the best hit holds half of what is asked, whatever its vector
            return True
    for hit in hits[3:KEY_TERM_HITS]:  # further down, a hit close in meaning that holds two thirds of it
        if dict(hit.signals).get("vector", 0.0) >= min_similarity and _covered(asked, _said(hit)) >= 0.66:
            return True
    return False


def missing_terms(asked: Question, hits: Sequence[Hit]) -> list[str]:
    """The question's years, codes and names that none of the top hits mentions.

    A name is not required of a recording that is the best hit: a speaker seldom says their own name
    ("What did Kennedy ask ..." is answered by the speech itself); years and codes always are.
    """
    said = [_said(h) for h in hits[:KEY_TERM_HITS]]
    spoken = bool(hits) and hits[0].chunk.modality in _SPOKEN
    names = set(asked.names) if spoken else set()
    return [term for term in asked.key_terms if term not in names and not any(mentions(s, term) for s in said)]


def unheld_terms(asked: Question, hit: Hit) -> list[str]:
    """The question's years, or its codes, none of which this one hit mentions: with one year asked the
    hit must have it; with several (a comparison of 2009 and 2011) one of them will do; codes alike.
    (Names are checked over all the hits, not per passage: a company's filings seldom repeat its name,
    and "msft.csv" is Microsoft's.)"""
    said = _said(hit)
    unheld: list[str] = []
    for group in (asked.years, asked.codes):
        if group and not any(mentions(said, t) for t in group):
            unheld += group
    return unheld


def _naming(asked: Question, hits: Sequence[Hit]) -> set[int]:
    """The hits of the files that some passage found mentions every name of the question in (its text,
    title or file name); none when no file does, or when every file does."""
    names = [n for n in asked.names if len(n) > 2]
    files = {(h.root, h.chunk.source) for h in hits[:KEY_TERM_HITS] if all(mentions(_said(h), n) for n in names)}
    if not names:
        files = set()
    # a word of the question that only one file's name has and no other file's passage uses ("the café
    # receipt": IMG_0610_cafe_receipt.png); a word other passages use too is the topic, not the file
    top = hits[:KEY_TERM_HITS]
    named_by: dict[str, set[tuple[str, str]]] = {}
    for h in top:
        for word in terms(re.sub(r"[_\W\d]+", " ", PurePosixPath(h.chunk.source).stem)):
            named_by.setdefault(word, set()).add((h.root, h.chunk.source))
    focus = focus_words(asked.text, asked)
    said = [((h.root, h.chunk.source), terms(_said(h))) for h in top]  # each passage's words, once
    only = {
        file
        for word, found in named_by.items()
        if len(found) == 1 and word in focus
        for file in found
        if not any(other != file and word in words for other, words in said)
    }
    if len(only) == 1 and (not files or only <= files):
        files = only
    held = {i for i, h in enumerate(hits) if (h.root, h.chunk.source) in files}
    return held if held and len(held) < len(hits) else set()


def declined_for(missing: Sequence[str], hits: Sequence[Hit]) -> Answer:
    """A decline that says which of the question's terms nothing mentions, and what was found instead."""
    terms_text = " or ".join(f"“{t}”" for t in missing)
    text = f"{DECLINE_TEXT} Nothing found mentions {terms_text}."
    if hits:
        best = hits[0]
        text += f" The closest match is {best.chunk.source} ({best.chunk.locator.cite()})."
    return Answer(text, (), declined=True)


def _medium_hits(asked: Question, hits: Sequence[Hit]) -> list[Hit]:
    if not asked.kinds and not asked.modalities:
        return list(hits)
    return [
        h
        for h in hits
        if h.kind in asked.kinds
        or h.chunk.modality in asked.modalities
        or (not asked.modalities and h.chunk.modality in PICTURED)
    ]


def find_answer(question: str, asked: Question, hits: Sequence[Hit]) -> Answer:
    """The item a find-style question describes: the best hit of the medium asked for that holds what
    the question describes (by its words), or a decline that says nothing fits."""
    wanted = content_words(question) - _FIND_WORDS
    words = {w.lower() for w in re.findall(r"[A-Za-z]{7,}", question)}  # long words speech may misspell
    scored = []
    for rank, hit in enumerate(_medium_hits(asked, hits)):
        said = _said(hit)
        near = {stem(w) for w in words if mentions(said, w)}
        covered = (
            _covered(wanted - near, said) * len(wanted - near) / len(wanted) + len(wanted & near) / len(wanted)
            if wanted
            else 1.0
        )
        scored.append((covered, -rank, hit))
    scored.sort(key=lambda s: (-s[0], -s[1]))
    found = [hit for covered, _, hit in scored if covered >= 0.5]
    if not found:
        what = "item" if not asked.kinds else sorted(asked.kinds)[0]
        text = f"{DECLINE_TEXT} No {what} in the index is described that way."
        return Answer(text, (), declined=True)
    many = (
        asked.text.lower().startswith(("find every", "find all", "list all", "show all"))
        or " every " in asked.text.lower()
    )
    chosen = found[: (5 if many else 1)] + ([] if many else found[1:2])
    lines = [EXTRACTIVE_NOTE]
    citations = []
    for n, hit in enumerate(chosen, start=1):
        chunk = hit.chunk
        quote = " ".join(chunk.text.split())[:MAX_QUOTE_CHARS]
        label = "Found" if n == 1 else "Also"
        lines.append(f"{label}: {chunk.source} ({chunk.locator.cite()}) [{n}]")
        if n == 1 or many:
            lines.append(f"- \u201c{_trim(quote)}\u201d [{n}]")
        citations.append(Citation(n, hit, link_for(hit), quote))
    return Answer("\n".join(lines), tuple(citations), declined=False)


def _trim(text: str) -> str:
    return text if len(text) <= MAX_QUOTE_CHARS else text[:MAX_QUOTE_CHARS] + "…"


def extractive_answer(
    question: str,
    hits: Sequence[Hit],
    vectorizer: Vectorizer,
    *,
    max_quotes: int = 3,
    min_similarity: float = 0.3,
    asked: Question | None = None,
) -> Answer:
    """The passage that answers, cited, then up to ``max_quotes - 1`` supporting quotes; or a decline."""
    asked = asked or analyse(question)
    missing = missing_terms(asked, hits)
    if missing:
        return declined_for(missing, hits)
    if asked.wants is Wants.FIND:
        return find_answer(question, asked, hits)
    if not relevant(question, hits, min_similarity):
        return Answer(DECLINE_TEXT, (), declined=True)
    unspoken = attribute_declined(question, hits)
    if unspoken is not None:
        return unspoken
    ranked = score_units(question, hits, vectorizer, asked)
    if asked.years or asked.codes:  # the answer comes from a file that mentions them (a report's year
        # is on its cover, not on every page), not from one about another year or item
        files = {(h.root, h.chunk.source) for h in hits if not unheld_terms(asked, h)}
        holds = [i for i, h in enumerate(hits) if (h.root, h.chunk.source) in files]
        if not holds or not relevant(question, [hits[i] for i in holds], min_similarity):
            best = hits[0]
            lacking = " or ".join(f"\u201c{t}\u201d" for t in unheld_terms(asked, best)) or "what is asked"
            text = f"{DECLINE_TEXT} The closest match, {best.chunk.source} ({best.chunk.locator.cite()}), does not mention {lacking}."
            return Answer(text, (), declined=True)
        ranked = [u for u in ranked if u.hit_index in set(holds)]
    named = _naming(asked, hits)
    if named and any(u.hit_index in named for u in ranked):
        # the files the question names ("my Harbor Hotel folio"): another file's line does not answer
        ranked = [u for u in ranked if u.hit_index in named]
    chosen = _choose(ranked, max_quotes, many=asked.wants is Wants.LIST)
    if not chosen:
        return Answer(DECLINE_TEXT, (), declined=True)
    conflicts = [(c, o) for c in chosen if (o := other_qualifier(question, c.text, hits)) is not None]
    if not conflicts and (compound := other_compound(question, chosen[0].text, hits)) is not None:
        conflicts = [(chosen[0], compound)]
    if conflicts:
        unit, (found, wanted) = conflicts[0]
        near = hits[unit.hit_index].chunk
        text = (
            f"{DECLINE_TEXT} The closest match, {near.source} ({near.locator.cite()}), has “{found}”, not “{wanted}”."
        )
        return Answer(text, (), declined=True)
    numbers: dict[tuple[str, str, str], int] = {}
    citations: list[Citation] = []
    lines = [EXTRACTIVE_NOTE]
    for position, cand in enumerate(chosen):
        hit = hits[cand.hit_index]
        place = (hit.root, hit.chunk.source, repr(hit.chunk.locator))
        if place not in numbers:
            numbers[place] = len(numbers) + 1
            citations.append(Citation(numbers[place], hit, link_for(hit), cand.text[:MAX_QUOTE_CHARS]))
        quote = _trim(cand.text)
        # the answer first, on its own line; what supports it after
        lines.append(
            f"\u201c{quote}\u201d [{numbers[place]}]" if position == 0 else f"- \u201c{quote}\u201d [{numbers[place]}]"
        )
    return Answer("\n".join(lines), tuple(citations), declined=False)


# "X of Y" phrases: a role or a part named by what it is of ("head of marketing", "chapter of the report");
# the words after "of" (up to three) say what it is of
_OF_PHRASE = re.compile(r"\b([A-Za-z]{3,})\s+of\s+(?:the\s+|our\s+)?((?:[A-Za-z]{2,}\s*){1,3})", re.IGNORECASE)
# heads that count or measure ("number of columns", "percentage of users"): the line that answers seldom repeats them
_MEASURES = terms(
    "number numbers percentage percent share amount total totals count kind kinds type types part parts lot lots "
    "most many much some any all none one each rest majority half list name names value level rate size length"
)


def _of_phrases(text: str) -> list[tuple[str, set[str], str]]:
    """Each "X of Y" in ``text``: the head's stem, the stems of what it is of, and the phrase as written."""
    out = []
    for match in _OF_PHRASE.finditer(text):
        head, of = match.group(1), match.group(2)
        out.append((stem(head.lower()), terms(of), f"{head} of {of.split()[0]}"))
    return out


def other_qualifier(question: str, answer: str, hits: Sequence[Hit]) -> tuple[str, str] | None:
    """The answer line's "head of sales" and the question's "head of marketing" when the line names the same
    role or part of something else and no passage of the evidence names the one asked for: the head of sales
    does not answer who heads marketing. None when they agree ("administration of cases" for "administration
    of bankruptcy cases"), or the evidence has the asked one somewhere."""
    said = " ".join(_said(h) for h in hits[:KEY_TERM_HITS])
    evidence = _of_phrases(said)
    for head, of, asked in _of_phrases(question):
        if head in _MEASURES or not of or of <= _FIND_WORDS:
            continue
        for found_head, found_of, found in _of_phrases(answer):
            if found_head != head or not found_of or found_of & of:
                continue
            if not any(h == head and o & of for h, o, _ in evidence):
                return found, asked
    return None


# "Who was Amy Raymond's previous employer?": what is asked is the thing after a name's possessive
_POSSESSED = re.compile(
    r"^\s*(?:[Ww]ho|[Ww]hat|[Ww]hich)\s+(?:is|was|are|were)\s+((?:[A-Z][\w.&-]*\s+){0,4}[A-Z][\w.&-]*)['’]s\s+"
    r"((?:[a-z][\w-]*\s+){0,3}[a-z][\w-]*)(?=\s+(?:on|in|at|for|of|from|to|by|with|during|as|according)\b|\s*[?,.]|\s*$)"
)
_GENERIC_HEADS = terms("price prices ratio cost costs figure figures amount date day year name")


def attribute_declined(question: str, hits: Sequence[Hit]) -> Answer | None:
    """A decline for a question about a name's attribute that no passage about that name speaks of, saying
    what was found (``unmentioned_attribute``); None when the evidence speaks of it."""
    attribute = unmentioned_attribute(question, hits)
    if attribute is None or not hits:
        return None
    closest = hits[0].chunk
    text = f"{DECLINE_TEXT} The closest match, {closest.source} ({closest.locator.cite()}), says nothing of \u201c{attribute}\u201d."
    return Answer(text, (), declined=True)


def unmentioned_attribute(question: str, hits: Sequence[Hit]) -> str | None:
    """The thing a question asks a name's possessive for ("previous employer" of "Who was Amy Raymond's
    previous employer?") when no passage that names the owner mentions its head word: a document about
    the person that never speaks of an employer does not say who it was. None for measures ("share price",
    "crime rate"), which a table's column seldom spells out."""
    found = _POSSESSED.match(question)
    if found is None:
        return None
    owner, attribute = found.group(1), found.group(2)
    head = attribute.split()[-1]
    if stem(head) in _MEASURES or stem(head) in _GENERIC_HEADS or len(head) < 4:
        return None
    about = [said for said in map(_said, hits[:KEY_TERM_HITS]) if mentions(said, owner)]
    if not about or any(mentions(said, head) for said in about):
        return None
    return attribute


def other_compound(question: str, answer: str, hits: Sequence[Hit]) -> tuple[str, str] | None:
    """The answer line's "Room Charge" and the question's "room service" when the line is a bill's or form's
    item with its amount, named by the asked pair's first word with another second one, and no passage of
    the evidence names the asked pair: a room charge is not room service. None when the evidence has it."""
    item = _LINE_ITEM.match(answer)
    if item is None:
        return None
    label = item.group(1).lower()
    said = " ".join(_said(h) for h in hits[:KEY_TERM_HITS])
    for pair in _PAIR.finditer(question):
        first, second = pair.group(1), pair.group(2)
        if first in STOPWORDS or second in STOPWORDS or {stem(first), stem(second)} & (_MEASURES | _FIND_WORDS):
            continue
        found = re.search(rf"\b{re.escape(first)}\s+([a-z]{{3,}})\b", label)
        if found is None or stem(found.group(1)) == stem(second) or stem(second) in terms(label):
            continue
        if re.search(rf"\b{re.escape(first)}\W+{re.escape(stem(second))}", said, re.IGNORECASE):
            continue
        return f"{first} {found.group(1)}", f"{first} {second}"
    return None


# a bill's or form's item: its name, then its amount ("27Mar21 Room Charge 88.00", "Delivery fee $1.50")
_LINE_ITEM = re.compile(
    r"^(?:\S*\d\S*\s+)?([A-Za-z][A-Za-z'&-]*(?:\s+[A-Za-z][A-Za-z'&-]*){1,3})\s*:?\s+[$€£]?\s?-?\d[\d,]*\.\d\d\s*$"
)
# two lower-case words in a row, not part of a hyphenated word ("room service", not "food-delivery order")
_PAIR = re.compile(r"(?<![\w-])(?=([a-z]{3,})\s+([a-z]{3,})(?![\w-]))")


def _choose(ranked: Sequence[Scored], max_quotes: int, *, many: bool) -> list[Scored]:
    """The best unit, then supporting ones that score close to it (at most two per hit, no repeats)."""
    if not ranked:
        return []
    limit = max_quotes + (3 if many else 0)
    floor = ranked[0].score * QUOTE_FLOOR
    chosen: list[Scored] = []
    per_hit: dict[int, int] = {}
    for cand in ranked:
        if cand.score < floor:
            break
        if per_hit.get(cand.hit_index, 0) >= PER_PASSAGE or any(
            cand.text in c.text or c.text in cand.text for c in chosen
        ):
            continue
        chosen.append(cand)
        per_hit[cand.hit_index] = per_hit.get(cand.hit_index, 0) + 1
        if len(chosen) >= limit:
            break
    return chosen
