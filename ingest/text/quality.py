"""Whether extracted text is readable, or junk a person could not read either.

A PDF whose fonts map glyphs to private code points (a custom or missing font encoding) gives a
text layer of private-use or unassigned characters, replacement characters, control codes, or
letters that form no words ("xQzTr kWpvB"), while the page shows plain words. ``text_quality``
scores such text with two general measures, no dictionary and no language assumed:

- the share of characters that are odd code points (private use, unassigned, surrogates,
  replacement characters, control codes), and
- the share of letters that sit in word-like runs: a run of letters cased like a word (``word``,
  ``Word``, ``WORD``, or a script without case), and in Latin script with a vowel and no more than
  five consonants in a row.

Digits count as readable (a page of figures is not junk); a page that is nearly all punctuation
and symbols is junk. ``looks_garbled`` is the yes/no verdict the PDF ingestor uses.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MIN_READABLE = 0.5  # below this share of readable characters text is junk
MIN_ALNUM = 0.2  # below this share of letters and digits (over enough characters) text is junk
_MIN_SYMBOL_SOUP = 40  # characters before the letters-and-digits share is judged
_MAX_CONSONANT_RUN = 5  # "Geschäftsstelle" has five
_VOWELS = frozenset("aeiouyAEIOUY")
_ODD_CATEGORIES = frozenset({"Co", "Cn", "Cs"})
_WHITESPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c")
_PDF_HYPHEN = "\ufffe"  # PDFium's mark for a hyphen at a line end: not junk


@dataclass(frozen=True, slots=True)
class TextQuality:
    """How readable a text is: ``readable`` in [0, 1] (1.0 for text without letters, digits or odd
    code points), ``odd`` the share of odd code points, ``alnum`` the share of letters and digits,
    all over the characters that are not spaces (``chars``)."""

    readable: float
    odd: float
    alnum: float
    chars: int

    @property
    def garbled(self) -> bool:
        if self.chars == 0:
            return False
        return self.readable < MIN_READABLE or (self.chars >= _MIN_SYMBOL_SOUP and self.alnum < MIN_ALNUM)


def _is_odd(ch: str) -> bool:
    if ch == _PDF_HYPHEN:
        return False
    if ch == "\ufffd":
        return True
    category = unicodedata.category(ch)
    return category in _ODD_CATEGORIES or (category == "Cc" and ch not in _WHITESPACE_CONTROLS)


def _base(ch: str) -> str:
    return unicodedata.normalize("NFD", ch)[0]


def _latin(ch: str) -> bool:
    return _base(ch) < "\u0250"


def _cased_like_a_word(run: str) -> bool:
    if run.lower() == run.upper():  # a script without case (CJK, Arabic, Hebrew, Thai...)
        return True
    return run.islower() or run.isupper() or (run[0].isupper() and run[1:].islower())


def _spelled_like_a_word(run: str) -> bool:
    """A Latin-script run has a vowel and no long run of consonants; other scripts are not judged."""
    if not all(_latin(ch) for ch in run):
        return True
    consonants = longest = 0
    vowel = False
    for ch in run:
        if _base(ch) in _VOWELS:
            vowel, consonants = True, 0
        else:
            consonants += 1
            longest = max(longest, consonants)
    return vowel and longest <= _MAX_CONSONANT_RUN


def _word_like(run: str) -> bool:
    return _cased_like_a_word(run) and _spelled_like_a_word(run)


def _letter_runs(text: str) -> list[str]:
    runs: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch.isalpha():
            current.append(ch)
        elif current:
            runs.append("".join(current))
            current = []
    if current:
        runs.append("".join(current))
    return runs


def text_quality(text: str) -> TextQuality:
    """The readability measures of ``text`` (see the module docstring)."""
    chars = [ch for ch in text if not ch.isspace() and ch != _PDF_HYPHEN]
    if not chars:
        return TextQuality(1.0, 0.0, 0.0, 0)
    odd = sum(1 for ch in chars if _is_odd(ch))
    digits = sum(1 for ch in chars if ch.isdigit())
    words = junk_letters = 0
    for run in _letter_runs(text):
        if len(run) < 2:
            continue  # "a", "I", initials: too short to judge
        if _word_like(run):
            words += len(run)
        else:
            junk_letters += len(run)
    letters = sum(1 for ch in chars if ch.isalpha())
    good, bad = words + digits, junk_letters + odd
    readable = good / (good + bad) if good + bad else 1.0
    return TextQuality(readable, odd / len(chars), (letters + digits) / len(chars), len(chars))


def looks_garbled(text: str) -> bool:
    """Whether ``text`` is junk rather than words (an unreadable text layer); empty text is not junk."""
    return text_quality(text).garbled
