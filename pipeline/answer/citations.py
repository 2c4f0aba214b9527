"""The deterministic citation check of generated answers.

Given the model's reply and the evidence texts it was shown (numbered 1..k), the check guarantees:

- every ``[n]`` marker left in the answer refers to evidence that was given; a marker to anything
  else (``[7]`` when 3 items were given) is removed and reported, also while the reply streams;
- every sentence that states a checkable fact (a number or identifier, a capitalised name, a quoted
  string) is compared with the evidence it cites: a term that does not appear there flags the
  sentence; a sentence with such terms that cites nothing at all is flagged too. In strict mode
  flagged sentences are dropped from the text.

A sentence without its own marker is covered by the next marker on the same line (a paragraph that
cites once at its end), else by the previous one. The check is lexical: it can prove that a figure
or a name is *absent* from the cited evidence, not that the evidence *means* what the sentence says,
and a term copied from a cited document passes even when that document is irrelevant. Citations shown
to the user are built by the caller from the evidence list only, never from the model's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mmrag.retrieval.keyword import STOPWORDS

_GROUP = r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]"
MARKER = re.compile(_GROUP)
_MARKER_WITH_SPACE = re.compile(r"[ \t]*" + _GROUP)
_SENTENCE_END = re.compile(r"[.!?]+[\"”’')\]]*(?:\s*" + _GROUP + r")*(?=\s|$)")
_LINE_PREFIX = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)]|#{1,6})\s+")
_QUOTED = re.compile(r"\"([^\"\n]{2,160})\"|“([^”\n]{2,160})”")
_NUMBERISH = re.compile(r"(?<![\w.])[$€£¥]?\w*\d\w*(?:[.,:/\-]\w+)*")
_PLAIN_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_NUMBER_WITH_UNIT = re.compile(r"(\d[\d,]*(?:\.\d+)?)([a-z]{1,3})")
_CAPITALISED = re.compile(r"(?<![\w\-])[A-Z][\w'’\-]*")
_FIRST_WORD = re.compile(r"[^\W_]")
_SPACES = re.compile(r"\s+")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"'})
_MARKER_CHARS = frozenset("0123456789,; ")
_MAX_MARKER = 40
_WORD_NUMBERS = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"),
)
# Capitalised words that are grammar or discourse, not names (mid-sentence after a colon, in titles).
_NOT_NAMES = STOPWORDS | {"yes", "however", "according", "note", "answer", "based", "both", "here", "overall"}

TokenSink = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Flag:
    """A sentence whose checkable terms are not in the evidence it cites (or that cites nothing)."""

    sentence: str
    missing: tuple[str, ...]
    cited: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Checked:
    """The answer after the check. ``text`` is exactly what was (or would have been) streamed."""

    text: str
    cited: tuple[int, ...]  # evidence numbers the text cites, in order of first appearance
    invalid: tuple[int, ...]  # marker numbers that referred to no evidence, removed
    flagged: tuple[Flag, ...]
    support: tuple[tuple[int, str], ...]  # (evidence number, a sentence citing it)
    declined: bool = False  # the reply was the decline sentinel, or strict mode left nothing


@dataclass(frozen=True, slots=True)
class _Evidence:
    text: str  # casefolded, quotes unified, whitespace collapsed
    numbers: frozenset[float]


def _normal(text: str) -> str:
    # an underscore joins words: a table finding's column stanley_cups supports "Stanley Cups"
    return _SPACES.sub(" ", text.translate(_QUOTES).replace("_", " ").casefold())


def _numbers(text: str) -> frozenset[float]:
    values = {float(m.group(0).replace(",", "")) for m in _PLAIN_NUMBER.finditer(text)}
    values.update(float(i) for i, word in enumerate(_WORD_NUMBERS) if re.search(rf"\b{word}\b", text))
    return frozenset(values)


def prepare(evidence: Sequence[str]) -> tuple[_Evidence, ...]:
    """Evidence texts in the form the check compares against (do it once per answer)."""
    out = []
    for text in evidence:
        normal = _normal(text)
        out.append(_Evidence(normal, _numbers(normal)))
    return tuple(out)


def fix_markers(text: str, count: int) -> tuple[str, tuple[int, ...]]:
    """``text`` without markers to evidence beyond 1..count (a group keeps its valid numbers).

    A marker that keeps nothing is removed with the whitespace before it. Returns the removed numbers.
    """
    removed: list[int] = []

    def fix(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]
        valid = [n for n in numbers if 1 <= n <= count]
        removed.extend(n for n in numbers if not 1 <= n <= count)
        if len(valid) == len(numbers):
            return match.group(0)
        if not valid:
            return ""
        space = match.group(0)[: match.group(0).index("[")]
        return f"{space}[{', '.join(str(n) for n in valid)}]"

    return _MARKER_WITH_SPACE.sub(fix, text), tuple(removed)


def markers(text: str) -> list[int]:
    """The numbers of every ``[n]`` / ``[n, m]`` marker in ``text``, in order."""
    return [int(n) for m in MARKER.finditer(text) for n in re.split(r"\s*[,;]\s*", m.group(1))]


def key_terms(sentence: str) -> list[str]:
    """The checkable terms of a sentence: quoted strings, numbers and identifiers, capitalised names.

    The sentence's first word is a name only when it is all capitals or mixed case ("BANANA",
    "McKinsey"): any word is capitalised there.
    """
    body = MARKER.sub(" ", _LINE_PREFIX.sub("", sentence))
    terms: list[str] = []
    for match in _QUOTED.finditer(body):
        terms.append('"' + (match.group(1) or match.group(2)).strip() + '"')
    unquoted = _QUOTED.sub(" ", body)
    for match in _NUMBERISH.finditer(unquoted):
        token = match.group(0).lstrip("$€£¥").rstrip(".,:-/")
        if token:
            terms.append(token)
    first = _FIRST_WORD.search(unquoted)
    for match in _CAPITALISED.finditer(unquoted):
        word = re.sub(r"['’]s$", "", match.group(0)).rstrip("'’-")
        if len(word) < 2 or any(ch.isdigit() for ch in word) or word.casefold() in _NOT_NAMES:
            continue
        initial = first is not None and match.start() == first.start()
        if initial and not (word.isupper() or any(ch.isupper() for ch in word[1:])):
            continue
        terms.append(word)
    return list(dict.fromkeys(terms))


def _found(term: str, evidence: Sequence[_Evidence]) -> bool:
    if term.startswith('"'):
        phrase = _normal(term.strip('"'))
        return any(phrase in e.text for e in evidence)
    normal = _normal(term)
    pattern = re.compile(r"(?<![\w])" + re.escape(normal) + r"(?![\w]|[.,]\d)")
    if any(pattern.search(e.text) for e in evidence):
        return True
    unit = _NUMBER_WITH_UNIT.fullmatch(normal)  # "4.2m", "10k", "3rd": the number is what is checked
    if unit and any(float(unit.group(1).replace(",", "")) in e.numbers for e in evidence):
        return True
    parts = re.split(r"[-/:]", term)
    if all(_PLAIN_NUMBER.fullmatch(p) for p in parts):
        return all(any(float(p.replace(",", "")) in e.numbers for e in evidence) for p in parts)
    return False


def unsupported(sentence: str, evidence: Sequence[_Evidence]) -> list[str]:
    """The key terms of ``sentence`` that appear in none of ``evidence``."""
    return [t for t in key_terms(sentence) if not _found(t, evidence)]


@dataclass(slots=True)
class _LineResult:
    text: str
    flagged: list[Flag] = field(default_factory=list)
    support: list[tuple[int, str]] = field(default_factory=list)


def _sentences(body: str) -> list[str]:
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(body):
        pieces.append(body[start : match.end()])
        start = match.end()
    if body[start:].strip():
        pieces.append(body[start:])
    elif pieces:
        pieces[-1] += body[start:]
    return pieces


def check_line(line: str, evidence: Sequence[_Evidence], *, strict: bool) -> _LineResult:
    """Check one line whose markers are already valid; in strict mode, drop its flagged sentences."""
    prefix_match = _LINE_PREFIX.match(line)
    prefix = prefix_match.group(0) if prefix_match else ""
    sentences = _sentences(line[len(prefix) :])
    own = [[n for n in markers(s) if 1 <= n <= len(evidence)] for s in sentences]
    result = _LineResult("")
    kept: list[str] = []
    for i, sentence in enumerate(sentences):
        after = [c for c in own[i + 1 :] if c]
        before = [c for c in reversed(own[:i]) if c]
        cited = own[i] or (after or before or [[]])[0]
        terms_missing = unsupported(sentence, [evidence[n - 1] for n in cited]) if cited else key_terms(sentence)
        if terms_missing:
            result.flagged.append(
                Flag(_MARKER_WITH_SPACE.sub("", sentence).strip(), tuple(terms_missing), tuple(cited))
            )
            if strict:
                continue
        result.support.extend((n, sentence.strip()) for n in cited)
        kept.append(sentence)
    body = "".join(kept).strip() if strict else "".join(kept)
    result.text = (prefix + body) if body else ""
    return result


class CitationGate:
    """Checks a reply as it streams, passing only checked text to ``sink``.

    Lenient mode passes text through as it arrives, holding back only whitespace and a marker until
    the marker is known to be valid. Strict mode passes whole lines, once each is checked. Either
    way the text passed on is ``close().text``, and a reply that starts with ``decline_token`` passes
    nothing.
    """

    def __init__(
        self, evidence: Sequence[str], *, strict: bool = False, sink: TokenSink | None = None, decline_token: str = ""
    ) -> None:
        self._evidence = prepare(evidence)
        self._count = len(evidence)
        self._strict = strict
        self._sink = sink
        self._decline = decline_token
        self._head: str | None = "" if decline_token else None  # None once the sentinel is ruled out
        self._declined = False
        self._hold = ""  # lenient: held whitespace and/or a partial marker; strict: the current line
        self._out: list[str] = []
        self._newlines = 0  # strict: line breaks owed before the next kept line
        self._invalid: list[int] = []
        self._flags: list[Flag] = []
        self._support: list[tuple[int, str]] = []

    def feed(self, text: str) -> None:
        if self._declined:
            return
        if self._head is not None:
            self._head += text
            head = self._head.lstrip(" \t\r\n*\"'`")
            if len(head) < len(self._decline) and self._decline.startswith(head):
                return
            text, self._head = self._head, None
            if head.startswith(self._decline):
                self._declined = True
                return
        emitted = len(self._out)
        if self._strict:
            self._feed_lines(text)
        else:
            for ch in text:
                self._feed_char(ch)
        if self._sink is not None and len(self._out) > emitted:
            self._sink("".join(self._out[emitted:]))

    def _emit(self, text: str) -> None:
        if text:
            self._out.append(text)

    def _feed_char(self, ch: str) -> None:
        if "[" not in self._hold:
            if ch.isspace():
                self._hold += ch if self._out else ""
            elif ch == "[":
                self._hold += ch
            else:
                self._emit(self._hold + ch)
                self._hold = ""
            return
        self._hold += ch
        if ch == "]":
            fixed, removed = fix_markers(self._hold, self._count)
            self._invalid.extend(removed)
            self._emit(fixed)
            self._hold = ""
        elif ch not in _MARKER_CHARS or len(self._hold) > _MAX_MARKER:
            held, self._hold = self._hold[:-1], ""
            self._emit(held)
            self._feed_char(ch)

    def _feed_lines(self, text: str) -> None:
        self._hold += text
        while "\n" in self._hold:
            line, self._hold = self._hold.split("\n", 1)
            self._finish_line(line)

    def _finish_line(self, line: str) -> None:
        if not line.strip():
            self._newlines = min(self._newlines + 1, 2) if self._out else 0
            return
        fixed, removed = fix_markers(line.rstrip(), self._count)
        self._invalid.extend(removed)
        result = check_line(fixed, self._evidence, strict=True)
        self._flags.extend(result.flagged)
        self._support.extend(result.support)
        if result.text:
            self._emit("\n" * max(self._newlines, 1 if self._out else 0) + result.text)
            self._newlines = 1

    def close(self) -> Checked:
        """Flush what is held and return the checked answer."""
        if self._head is not None:
            head, self._head = self._head, None
            if self._decline and head.lstrip(" \t\r\n*\"'`").startswith(self._decline):
                self._declined = True
            else:
                self.feed(head)
        if not self._declined:
            emitted = len(self._out)
            if self._strict:
                self._finish_line(self._hold)
            elif "[" in self._hold:
                self._emit(self._hold.rstrip())
            self._hold = ""
            if self._sink is not None and len(self._out) > emitted:
                self._sink("".join(self._out[emitted:]))
        text = "".join(self._out)
        if not self._strict:
            for line in text.split("\n"):
                result = check_line(line, self._evidence, strict=False)
                self._flags.extend(result.flagged)
                self._support.extend(result.support)
        cited = tuple(dict.fromkeys(n for n in markers(text) if 1 <= n <= self._count))
        return Checked(
            text=text,
            cited=cited,
            invalid=tuple(dict.fromkeys(self._invalid)),
            flagged=tuple(self._flags),
            support=tuple(self._support),
            declined=self._declined or not text.strip(),
        )


def check_answer(reply: str, evidence: Sequence[str], *, strict: bool = False, decline_token: str = "") -> Checked:
    """Check a whole reply at once (the same result a stream of it gives)."""
    gate = CitationGate(evidence, strict=strict, decline_token=decline_token)
    gate.feed(reply)
    return gate.close()
