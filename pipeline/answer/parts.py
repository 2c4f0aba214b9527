"""Questions about two things at once, answered part by part: "what did the café receipt and the food order
come to together?" adds the two amounts; "which is bigger: the amount due on INV-100 or the total of the
training statement?" compares them. Each part is asked on its own over the same evidence, and the
combined figure is given first, then each part's line with its citation.

A question that splits, but whose parts do not each give an amount from a file of their own, is left to
the ordinary answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mmrag.pipeline.answer.types import EXTRACTIVE_NOTE, Answer, Citation
from mmrag.retrieval.store import Hit

_TOGETHER = r"(?:together|combined|altogether|in all|in total|between them)"
# "What did A and B come to together?", "How much did A and B cost combined?"
_SUM = re.compile(
    rf"^\s*(?P<pre>(?:what|how much)\s+(?:did|do|does|were|was|are|is)\s+)(?P<a>.+?)\s+and\s+(?P<b>.+?)\s+"
    rf"(?P<post>(?:come|came|cost|add|amount|total|bring|run)\b.*?)\s*{_TOGETHER}\s*\??\s*$",
    re.IGNORECASE,
)
_BIGGER = r"bigger|larger|higher|greater|more|costlier"
_SMALLER = r"smaller|lower|less|cheaper"
# "Which is bigger: A or B?", "Which was higher, A or B?"
_COMPARE = re.compile(
    rf"^\s*which\s+(?:one\s+)?(?:is|was|were|are)\s+(?P<how>{_BIGGER}|{_SMALLER})\s*[:,]?\s*(?P<a>.+?)\s+or\s+(?P<b>.+?)\s*\??\s*$",
    re.IGNORECASE,
)
_AMOUNT = re.compile(r"(?<![\w.])[$€£]?\s?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d\d)(?![\d.])")


@dataclass(frozen=True, slots=True)
class Parts:
    how: str  # "sum", "max" or "min"
    questions: tuple[str, str]


def split_parts(question: str) -> Parts | None:
    """The two questions a question about two things asks, and how their answers combine; None otherwise."""
    found = _SUM.match(question)
    if found:
        pre, post = found.group("pre"), found.group("post").rstrip()
        return Parts("sum", (f"{pre}{found.group('a')} {post}?", f"{pre}{found.group('b')} {post}?"))
    found = _COMPARE.match(question)
    if found:
        word = found.group("how").lower()
        how = "min" if re.fullmatch(_SMALLER, word) else "max"
        ask = "What was the total of {}?" if word in ("cheaper", "costlier") else "What is {}?"  # a price compared
        return Parts(how, (ask.format(found.group("a")), ask.format(found.group("b"))))
    return None


def _amount(answer: Answer) -> tuple[str, float, Citation] | None:
    """The amount the answer's first line gives (an amount with cents or thousands), with its citation."""
    lines = answer.text.splitlines()
    if answer.declined or not answer.citations or len(lines) < 2:
        return None
    amounts = _AMOUNT.findall(lines[1])
    if not amounts:
        return None
    written = amounts[-1]
    return written, float(written.replace(",", "")), answer.citations[0]


def answer_parts(question: str, hits: Sequence[Hit], answer: Callable[[str], Answer]) -> Answer | None:
    """The combined answer to a question about two things, each part answered by ``answer``; None when the
    question is not about two things or a part gives no amount of its own file."""
    parts = split_parts(question)
    if parts is None:
        return None
    found = [_amount(answer(q)) for q in parts.questions]
    if any(f is None for f in found):
        return None
    (a_text, a, a_cite), (b_text, b, b_cite) = (f for f in found if f is not None)
    if (a_cite.hit.root, a_cite.hit.chunk.source) == (b_cite.hit.root, b_cite.hit.chunk.source):
        return None  # both parts read off one file: not two things found
    first = Citation(1, a_cite.hit, a_cite.link, a_cite.quote)
    second = Citation(2, b_cite.hit, b_cite.link, b_cite.quote)
    if parts.how == "sum":
        total = a + b
        lead = f"Together: {total:,.2f} ({a_text} [1] + {b_text} [2])"
    else:
        pick_first = (a >= b) if parts.how == "max" else (a <= b)
        word = "bigger" if parts.how == "max" else "smaller"
        lead = (
            f"The {word} is {a_text} [1] (against {b_text} [2])"
            if pick_first
            else f"The {word} is {b_text} [2] (against {a_text} [1])"
        )
    lines = [EXTRACTIVE_NOTE, lead, f"- \u201c{a_cite.quote}\u201d [1]", f"- \u201c{b_cite.quote}\u201d [2]"]
    return Answer("\n".join(lines), (first, second), declined=False)
