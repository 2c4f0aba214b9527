"""What a question says beyond its words: the kind of answer it wants, its key terms, the media it names.

Pure functions over the question text, shared by the reranker (which evidence comes first) and the
answer stage (what to answer, and when to decline). Every rule is one a person would state in general:

- a question starting "when" or "what date" asks for a date; "how many" for a count; "who" for a
  person; "where" for a place; "find the photo of ..." for an item; "which ... are" for a list;
- a year, a code (``INV-100``, ``001-37845``) or a name (``Galaxy Gaming``) in the question must be in
  the evidence that answers it: a report of another year, or another company, does not answer it;
- a question that names a kind of file ("the email", "in the slide deck", "the photo") asks about
  files of that kind.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from enum import StrEnum

from mmrag.ingest.chunk import Modality


class Wants(StrEnum):
    """The kind of answer a question asks for."""

    FIND = "find"  # an item: "find the photo of the rocket", "the video where ..."
    COUNT = "count"
    DATE = "date"
    PERSON = "person"
    PLACE = "place"
    LIST = "list"
    VALUE = "value"  # a number or amount: "how much", "what percentage", "what was the total"
    FACT = "fact"  # anything else: a name, a reason, a description


_FIND = re.compile(
    r"^\s*(?:please\s+)?(?:can you\s+|could you\s+)?(?:find|show me|locate|pull up|look up|look for|search for|"
    r"i(?:'m| am) looking for|give me|open)\b",
    re.IGNORECASE,
)
_MEDIUM = (
    r"(?:photo|photograph|picture|image|pic|portrait|screenshot|scan|drawing|diagram|video|clip|recording|footage|"
    r"audio|podcast|slide|deck|presentation|document|file|spreadsheet|email|e-mail|memo|pdf)s?"
)
_NOT_VERB = r"(?!(?:does|do|did|is|are|was|were|has|have|had|can|could|should|would|will|may|might))"
_FIND_WHERE = re.compile(
    rf"^\s*(?:where(?:'s| is| are)\s+(?:the\s+|a\s+|our\s+)?{_MEDIUM}\b|"
    rf"(?:which|what)\s+(?:{_NOT_VERB}[\w-]+\s+){{0,3}}?{_MEDIUM}\b)",
    re.IGNORECASE,
)
_COUNT = re.compile(r"\bhow many\b|\bnumber of\b|\bcount\b", re.IGNORECASE)
_DATE = re.compile(
    r"^\s*(?:when|by when|since when|until when)\b|\bwhat (?:date|day|year|month|time)\b|\bwhich (?:date|day|year|month)\b|"
    r"\bin what year\b|\bdeadline\b|\bdue date\b|\bat what (?:point|time|moment|minute)\b|\bhow far into\b",
    re.IGNORECASE,
)
_PERSON = re.compile(r"^\s*(?:who|whom|whose)\b|\bwhich (?:person|employee|author|speaker|people)\b", re.IGNORECASE)
_PLACE = re.compile(r"^\s*where\b|\bwhat (?:city|country|place|location|address)\b|\bwhich (?:city|country)\b", re.I)
_LIST = re.compile(
    r"^\s*(?:list|name (?:all|the|every))\b|\bwhich\s+\w+(?:\s+\w+)?\s+(?:are|were|have|had|do|did)\b|\bwhat are the\b|"
    r"\ball (?:the )?\w+s\b|\b(?:what|which)\s+(?:\w+\s+)?\w+s\s+(?:are|were|will|have|had|did)\b",
    re.IGNORECASE,
)
_VALUE = re.compile(
    r"\bhow (?:much|long|old|far|big|large|tall|heavy|high|fast)\b|\bwhat (?:is|was|were|are) the (?:\w+ )?"
    r"(?:total|amount|price|cost|rate|percentage|share|number|value|sum|average|balance|figure|size|count)\b|"
    r"\b(?:total|amount|price|cost|rate|percentage|percent|balance|average|sum)\b",
    re.IGNORECASE,
)

# The kind of file a question names, and what it means for the evidence. Plurals and "e-mail" included.
MEDIA_WORDS: tuple[tuple[re.Pattern[str], frozenset[str], frozenset[Modality]], ...] = (
    (
        re.compile(r"\b(?:photo(?:graph)?|picture|image|pic|snapshot|screenshot|portrait|drawing|illustration)s?\b", re.I),
        frozenset({"image"}),
        frozenset({Modality.IMAGE}),
    ),
    (re.compile(r"\bscan(?:ned)?s?\b", re.I), frozenset({"image", "pdf"}), frozenset()),
    (re.compile(r"\b(?:video|clip|footage|film|movie)s?\b", re.I), frozenset({"video"}), frozenset({Modality.FRAME, Modality.MOMENT, Modality.SPEECH})),
    (re.compile(r"\b(?:audio|voice|podcast|dictation|voicemail|recording)s?\b", re.I), frozenset({"audio", "video"}), frozenset({Modality.SPEECH, Modality.MOMENT})),
    (re.compile(r"\b(?:slides?|deck|presentation|pptx?)\b", re.I), frozenset({"pptx", "odp"}), frozenset()),
    (re.compile(r"\b(?:spreadsheet|workbook|excel|xlsx)\b", re.I), frozenset({"xlsx"}), frozenset()),
    (re.compile(r"\bcsv\b", re.I), frozenset({"csv", "tsv"}), frozenset()),
    (re.compile(r"\b(?:e-?mails?|mail|inbox|messages?)\b", re.I), frozenset({"eml"}), frozenset()),
    (re.compile(r"\bpdfs?\b", re.I), frozenset({"pdf"}), frozenset()),
    (re.compile(r"\b(?:word (?:file|document)|docx)\b", re.I), frozenset({"docx"}), frozenset()),
    (re.compile(r"\b(?:web ?page|html|wiki(?:pedia)?(?: article| page)?)\b", re.I), frozenset({"html"}), frozenset()),
)

_YEAR = re.compile(r"(?<![\d.,$€£])(?:1[5-9]|20)\d\d(?![\d.,]\d|\d)")
_YEAR_SPAN = re.compile(r"(?<!\d)((?:1[5-9]|20)\d\d)\s*[-–/]\s*(?:\d\d|(?:1[5-9]|20)\d\d)(?![-–/]?\d)")
# A code: letters and digits joined by - / . or : (INV-100, 001-37845, M32x1.5), a long digit run, or an
# identifier written with underscores (col_d, max_page_count).
_CODE = re.compile(
    r"\b(?=[\w./:-]*\d)[A-Za-z0-9]+(?:[-/.:][A-Za-z0-9]+)+\b|\b[A-Z]{1,6}\d[\w]*\b|\b\d{5,}\b"
    r"|\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b"
)
_NUMBER = re.compile(r"(?<![\w.,$€£-])\d{3,}(?![\w.,]*\d)")  # a number of three or more digits (not money)
# Quoted phrases: double quotes, or single quotes that are not apostrophes ("the 'typical' deck's").
_FISCAL = re.compile(r"\bFY\s?'?(\d{2}|\d{4})\b", re.IGNORECASE)


def _fiscal_year(digits: str) -> str:
    return digits if len(digits) == 4 else ("20" if int(digits) < 50 else "19") + digits


_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,60})[\"“”]|(?<![\w])['‘]([^'‘’]{2,60})['’](?![\w])")
_CAPITAL = re.compile(r"\b[A-Z][a-zA-Z&]+(?:['’]s)?\b")
# Capitalised words that start questions or are plain English in a question, not names.
_NOT_NAMES = frozenset(
    ["what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was", "were", "do", "does", "did", "can", "could", "would", "should", "will", "the", "a", "an", "in", "on", "of", "for", "to", "from", "by", "with", "at", "and", "or", "our", "my", "we", "i", "you", "they", "it", "this", "that", "these", "those", "there", "here", "please", "find", "show", "tell", "give", "list", "name", "get", "open", "locate", "look", "search", "according", "based", "using", "about", "if", "any", "all", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december", "q1", "q2", "q3", "q4", "fy", "ok", "yes", "no", "mr", "mrs", "ms", "dr",
     # function words and verbs a question may start with
     "up", "roughly", "approximately", "around", "exactly", "just", "between", "since", "after", "before",
     "during", "into", "over", "under", "among", "across", "other", "than", "has", "have", "had", "as",
     "per", "summarize", "summarise", "describe", "explain", "compare", "count", "say", "said", "roughly",
     "besides", "apart", "except", "also", "then", "now", "so", "but", "yet", "not", "only", "even",
     # the programs a file is made with: the medium, not what it is about
     "word", "excel", "powerpoint", "outlook", "pdf", "acrobat"]
)
_WORD = re.compile(r"[\w]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Question:
    """A question and what it asks for."""

    text: str
    wants: Wants
    asks: frozenset[Wants]  # every kind of answer asked for (``wants`` first)
    years: tuple[str, ...]  # "2023"
    codes: tuple[str, ...]  # "INV-100", "001-37845", quoted phrases
    names: tuple[str, ...]  # "Galaxy Gaming", "Contoso"
    kinds: frozenset[str]  # file kinds the question names ("eml", "pptx", ...)
    modalities: frozenset[Modality]  # modalities a named medium implies (a photo: images)

    @property
    def key_terms(self) -> tuple[str, ...]:
        """What the evidence must mention to answer this question: years, codes and names (an acronym
        alone is left out: a document may spell it out)."""
        return (*self.years, *self.codes, *(n for n in self.names if not _is_acronym(n)))


def _is_acronym(name: str) -> bool:
    return name.isupper() and " " not in name and len(name) <= 6


_ASKS = ((Wants.COUNT, _COUNT), (Wants.DATE, _DATE), (Wants.PERSON, _PERSON), (Wants.PLACE, _PLACE),
         (Wants.LIST, _LIST), (Wants.VALUE, _VALUE))  # fmt: skip


def _wants(text: str) -> tuple[Wants, frozenset[Wants]]:
    """The main kind of answer (the question's first ask) and every kind it asks for
    ("Who sent it, and in what year?": a person first, a date too)."""
    if _FIND.search(text) or _FIND_WHERE.search(text):
        return Wants.FIND, frozenset({Wants.FIND})
    found = [(m.start(), wants) for wants, pattern in _ASKS if (m := pattern.search(text))]
    if not found:
        return Wants.FACT, frozenset({Wants.FACT})
    found.sort(key=lambda f: f[0])
    return found[0][1], frozenset(w for _, w in found)


def _names(text: str, codes: tuple[str, ...]) -> tuple[str, ...]:
    """Runs of capitalised words that are not the question's own words (its first word, weekdays, ...)."""
    names: list[str] = []
    run: list[str] = []
    words = list(_CAPITAL.finditer(text))
    covered = " ".join(codes).lower()

    def close() -> None:
        if run:
            names.append(" ".join(run))
            run.clear()

    last_end = -1
    for match in words:
        owner = bool(re.search(r"['’]s$", match.group(0)))
        word = re.sub(r"['’]s$", "", match.group(0))
        plain = word.lower() in _NOT_NAMES or word.lower().removesuffix("s") in _NOT_NAMES
        acronym = word.isupper() and len(word) > 1
        if plain or word.lower() in covered or (acronym and len(word) <= 2):
            close()
            last_end = match.end()
            continue
        between = text[last_end : match.start()].strip()
        if run and (between not in ("", "&", "of", "and", "de", "van", "von", "of the") or acronym or run[-1].isupper()):
            close()
        elif run and between:
            run.append(between)
        run.append(word)
        last_end = match.end()
        if owner:  # "Chevron's Eastern Mediterranean": the owner is a name of its own
            close()
    close()
    out: list[str] = []
    for name in names:
        if name.lower() not in (n.lower() for n in out) and not (len(name) < 3 and name.isupper()):
            out.append(name)
    return tuple(out)


def analyse(text: str) -> Question:
    """What ``text`` asks for (pure; cheap enough for every query)."""
    quoted = tuple(q.strip() for pair in _QUOTED.findall(text) for q in pair if len(q.strip()) >= 3)
    spans = [m.group(0) for m in _YEAR_SPAN.finditer(text)]
    fiscal = [_fiscal_year(m.group(1)) for m in _FISCAL.finditer(text)]  # "FY09" is the year 2009
    years = tuple(dict.fromkeys([*_YEAR.findall(text), *fiscal]))
    plain = _YEAR_SPAN.sub(" ", text)  # "2021-22" is a year (2021), not a code
    codes = tuple(
        dict.fromkeys(
            c
            for c in (*quoted, *_CODE.findall(plain), *_NUMBER.findall(plain))
            if c not in years and not _YEAR.fullmatch(c) and c not in spans and not _FISCAL.fullmatch(c)
        )
    )
    kinds: set[str] = set()
    modalities: set[Modality] = set()
    for pattern, kind_set, modality_set in MEDIA_WORDS:
        if pattern.search(text):
            kinds |= kind_set
            modalities |= modality_set
    wants, asks = _wants(text)
    return Question(
        text=text,
        wants=wants,
        asks=asks,
        years=years,
        codes=codes,
        names=_names(text, codes),
        kinds=frozenset(kinds),
        modalities=frozenset(modalities),
    )


def _code_pattern(term: str) -> re.Pattern[str]:
    """A code as itself, its parts joined by any separator or none (``INV-100``: ``INV 100``, ``INV100``),
    never inside a longer code (``INV-1001``) or number (``12020`` does not mention ``2020``)."""
    parts = re.findall(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]+", term)
    body = r"[\s\-/.:_]*".join(re.escape(p) for p in parts if re.match(r"[A-Za-z\d]", p))
    left = r"(?<!\d)" if term[:1].isdigit() else r"(?<![A-Za-z\d])"
    right = r"(?!\d)" if term[-1:].isdigit() else r"(?![A-Za-z\d])"
    return re.compile(left + body + right, re.IGNORECASE)


def _folded(text: str) -> str:
    """Lower-case words between spaces; an underscore separates words ("american_tower_expenses.csv")."""
    return " " + " ".join(w.lower() for w in _WORD.findall(text.replace("_", " "))) + " "


def mentions(evidence: str, term: str) -> bool:
    """Whether ``evidence`` mentions ``term``: as whole words (case and punctuation aside), or a year or
    code as itself (``2020`` in ``FY2020``, ``INV-100`` in ``INV-100-A``)."""
    if any(ch.isdigit() for ch in term) or "_" in term:
        return _code_pattern(term).search(evidence) is not None
    words = _folded(term)
    if not words.strip():
        return False
    folded = _folded(evidence)
    if words in folded:
        return True
    wanted = [w for w in words.split() if w not in _JOINERS]
    present = set(folded.split())
    found = [w in present or _near(w, present, folded) for w in wanted]
    if all(found):
        return True
    # a name of several words, one of them found as written and the others shortened ("Huck Finn" for
    # "Huckleberry Finn", "Intl Business Machines"): a short form is the start of the word, 4+ letters
    return len(wanted) >= 2 and any(found) and all(f or _short_form(w, present) for w, f in zip(wanted, found, strict=True))


def _short_form(word: str, present: set[str]) -> bool:
    return len(word) > 5 and any(4 <= len(p) < len(word) and word.startswith(p) for p in present)


_JOINERS = frozenset({"of", "and", "the", "de", "van", "von", "of the"})


def _near(word: str, present: set[str], folded: str) -> bool:
    """A long word misspelt by speech or OCR recognition: one edit off for 7+ letters, two for 10+
    ("LibriVox" heard as "Libra-Vox"), also across a split ("libra vox"). Short names must match."""
    if len(word) < 7:
        return False
    allowed = 1 if len(word) < 10 else 2
    tokens = folded.split()
    candidates = present | {a + b for a, b in itertools.pairwise(tokens)}
    return any(abs(len(c) - len(word)) <= allowed and _distance(word, c, allowed) <= allowed for c in candidates)


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, stopping early past ``limit``."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]
