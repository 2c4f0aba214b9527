"""The generative answer stage: an LLM writes the answer from numbered evidence, and a deterministic
check decides what of it reaches the user.

The evidence (the top hits, and a table query's result when the question asks for a lookup or an
aggregate) is numbered [1]..[k] and quoted as data between delimiters with a per-request random
boundary; the prompts (``prompts/answer_*.md``) tell the model to treat it as data, cite it as [n],
and reply with a sentinel when it does not hold the answer. The reply then goes through
``citations.CitationGate`` (also while it streams): markers to evidence that was never given are
removed, sentences whose figures or names are not in their cited evidence are flagged (dropped in
strict mode), and the citations are built from the evidence list only, never from the model's text.

``stage.answer_from_hits`` chooses between this and the extractive answerer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from mmrag.ingest.chunk import PICTURED
from mmrag.pipeline.answer.citations import Checked, CitationGate
from mmrag.pipeline.answer.extractive import content_words, relevant
from mmrag.pipeline.answer.llm import Llm, Message, Role, TokenSink
from mmrag.pipeline.answer.types import DECLINE_TEXT, MAX_QUOTE_CHARS, Answer, Citation, link_for
from mmrag.prompts.loader import new_boundary, quote_data, render
from mmrag.retrieval.store import Hit

log = logging.getLogger(__name__)

NOT_FOUND = "NOT_FOUND"  # the reply that means "the evidence does not hold the answer" (see answer_system.md)
MAX_EVIDENCE_CHARS = 3000
MAX_IMAGES = 4
MIN_SIMILARITY = 0.3
_QUOTE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def evidence_text(hit: Hit) -> str:
    """The part of a hit's text the model sees (and its answer is checked against)."""
    text = hit.chunk.text
    return text if len(text) <= MAX_EVIDENCE_CHARS else text[:MAX_EVIDENCE_CHARS] + " …"


def evidence_block(hits: Sequence[Hit], boundary: str) -> str:
    """The numbered evidence items, each with its source and place, its text quoted as data."""
    return "\n\n".join(
        render(
            "evidence_item",
            n=str(n),
            source=_one_line(hit.chunk.source),
            place=_one_line(hit.chunk.locator.cite()),
            kind=hit.chunk.modality.value,
            data=quote_data(evidence_text(hit), boundary),
        ).strip()
        for n, hit in enumerate(hits, start=1)
    )


def build_messages(question: str, hits: Sequence[Hit], *, boundary: str, vision: bool = False) -> list[Message]:
    """The system and user messages for ``question`` over ``hits`` (images attached for vision models)."""
    system = render("answer_system", boundary=boundary, not_found=NOT_FOUND)
    user = render(
        "answer_user",
        count=str(len(hits)),
        evidence=evidence_block(hits, boundary),
        question=_one_line(question),
        not_found=NOT_FOUND,
    )
    images: list[tuple[str, Path]] = []
    if vision:
        for n, hit in enumerate(hits, start=1):
            chunk = hit.chunk
            if chunk.modality in PICTURED and chunk.image is not None and len(images) < MAX_IMAGES:
                images.append((f"Image of evidence [{n}] ({chunk.source}, {chunk.locator.cite()}):", chunk.image))
    return [Message(Role.SYSTEM, system), Message(Role.USER, user, tuple(images))]


def _checkable(hit: Hit) -> str:
    chunk = hit.chunk
    return "\n".join((evidence_text(hit), chunk.source, chunk.title, chunk.locator.cite()))


def _quote(hit: Hit, sentences: Sequence[str]) -> str:
    """The piece of the evidence that best matches what the answer says with it."""
    said = content_words(" ".join(sentences))
    pieces = [p.strip() for p in _QUOTE_SPLIT.split(evidence_text(hit)) if p.strip()]
    if not pieces:
        return ""
    best = max(pieces, key=lambda p: len(said & content_words(p)))
    return best if len(best) <= MAX_QUOTE_CHARS else best[:MAX_QUOTE_CHARS] + "…"


def _declined(stream: TokenSink | None) -> Answer:
    if stream is not None:
        stream(DECLINE_TEXT)
    return Answer(DECLINE_TEXT, (), declined=True, extractive=False)


def _answer(checked: Checked, hits: Sequence[Hit]) -> Answer:
    support: dict[int, list[str]] = {}
    for n, sentence in checked.support:
        support.setdefault(n, []).append(sentence)
    citations = tuple(
        Citation(n, hits[n - 1], link_for(hits[n - 1]), _quote(hits[n - 1], support.get(n, [])))
        for n in sorted(checked.cited)
    )
    return Answer(
        checked.text,
        citations,
        declined=False,
        extractive=False,
        flagged=tuple(f.sentence for f in checked.flagged),
        removed_citations=checked.invalid,
    )


def generative_answer(
    question: str,
    hits: Sequence[Hit],
    llm: Llm,
    *,
    stream: TokenSink | None = None,
    strict: bool = False,
    min_similarity: float = MIN_SIMILARITY,
) -> Answer:
    """Ask ``llm`` to answer from ``hits`` and return the checked answer (``extractive=False``).

    With ``stream``, the checked text is passed to it as it arrives; the pieces add up to
    ``Answer.text`` (or to the decline text). Declines without calling the model when retrieval found
    nothing relevant, and when the model says the evidence does not hold the answer.
    """
    if not relevant(question, hits, min_similarity):
        return _declined(stream)
    boundary = new_boundary()
    messages = build_messages(question, hits, boundary=boundary, vision=llm.vision)
    gate = CitationGate([_checkable(h) for h in hits], strict=strict, sink=stream, decline_token=NOT_FOUND)
    if stream is None:
        gate.feed(llm.chat(messages))
    else:
        llm.chat(messages, stream=gate.feed)
    checked = gate.close()
    for flag in checked.flagged:
        log.info("flagged (not in cited evidence %s: %s): %s", list(flag.cited), ", ".join(flag.missing), flag.sentence)
    if checked.invalid:
        log.info("removed citations to evidence that was never given: %s", list(checked.invalid))
    if checked.declined:
        return _declined(stream)
    return _answer(checked, hits)
