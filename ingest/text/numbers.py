"""The number a table cell shows: one parser for the text a citation shows and the value SQL computes on.

Pure functions with no dependencies, so both ``ingest`` (table chunks and summaries) and ``retrieval``
(the SQL table store) use this one copy and can never disagree about what a cell means.
"""

from __future__ import annotations

import re

CURRENCY = "$€£¥₹"
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9]\d{0,17})(\.\d+)?")
_NUMBER = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?")


def _sign(t: str, negative: bool) -> tuple[str, bool]:
    if t[:1] in ("+", "-") and t:
        return t[1:].lstrip(), negative != (t[0] == "-")
    return t, negative


def parse_number(text: str) -> int | float | None:
    """The number a cell shows, or ``None``: "$1,801.5" -> 1801.5, "(194)" -> -194, "52.9%" -> 52.9.

    Percentages keep the number as displayed (not divided by 100). Text with leading zeros ("007",
    an id), dates, and a currency sign or sign alone ("$", "-") are not numbers.
    """
    t = text.strip()
    simple = _PLAIN_NUMBER.fullmatch(t)
    if simple is not None:  # the common case: no separators, symbols or signs to strip
        return float(t) if simple.group(1) else int(t)
    t, negative = _sign(t.replace("\u2212", "-"), False)
    t = t.strip(CURRENCY).strip()
    if len(t) >= 2 and t.startswith("(") and t.endswith(")"):
        negative, t = not negative, t[1:-1].strip()
    t, negative = _sign(t, negative)
    t = t.strip(CURRENCY).strip()
    if t.endswith("%"):
        t = t[:-1].rstrip()
    if not _NUMBER.fullmatch(t) or (len(t) > 1 and t[0] == "0" and t[1].isdigit()):
        return None
    plain = t.replace(",", "")
    value: int | float = int(plain) if plain.isdigit() and len(plain) < 19 else float(plain)
    return -value if negative else value
