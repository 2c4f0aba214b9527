"""Cut a document's text blocks into chunk-sized pieces.

Pure functions, no I/O: ingestors turn a file into blocks (paragraphs, lines of a page, table
rows) and call ``pack_blocks``. Blocks are packed whole up to about ``target_chars``; a chunk never
exceeds ``max_chars``. Only a block longer than that is cut, at sentence ends (or, for a sentence
that is itself too long, between words), and only those pieces overlap by up to ``overlap_chars``
so that a fact straddling the cut is still whole in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mmrag.ingest.base import ChunkingConfig

# The space after a sentence end: . ! ? … or a CJK full stop, optionally closed by a quote or bracket.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…。！？])|(?<=[.!?…。！？][\"'”’)\]]))\s+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Limits:
    target: int
    hard: int
    overlap: int


def _limits(config: ChunkingConfig, reserved: int) -> _Limits:
    # A context prefix (title, section path) takes ``reserved`` characters of every chunk; never
    # let it squeeze the body below a quarter of the configured maximum.
    hard = max(config.max_chars - reserved, config.max_chars // 4, 1)
    target = min(max(config.target_chars - reserved, config.target_chars // 2, 1), hard)
    overlap = max(0, min(config.overlap_chars, target // 2))
    return _Limits(target, hard, overlap)


def pack_blocks(
    blocks: Iterable[str],
    config: ChunkingConfig,
    *,
    reserved: int = 0,
    separator: str = "\n\n",
) -> list[str]:
    """Pack text blocks into chunk texts of about ``target_chars``, none longer than ``max_chars``.

    ``reserved`` is the length of a prefix the caller will put in front of every chunk (it is
    subtracted from both sizes). ``separator`` joins blocks inside one chunk ("\\n" for lines of a
    page, "\\n\\n" for paragraphs). Empty blocks are dropped; the result is empty when all are.
    """
    lim = _limits(config, reserved)
    chunks: list[str] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            chunks.append(separator.join(current))
        current, size = [], 0

    for raw in blocks:
        block = raw.strip()
        if not block:
            continue
        pieces = [block] if len(block) <= lim.hard else split_long_block(block, lim.target, lim.hard, lim.overlap)
        if len(pieces) > 1:
            flush()
            chunks.extend(pieces[:-1])
            block = pieces[-1]
        grown = size + len(separator) + len(block) if current else len(block)
        fits_target = grown <= lim.target
        # Past the target only to avoid leaving a small orphan chunk behind.
        fits_hard = grown <= lim.hard and size < lim.target // 2
        if current and not (fits_target or fits_hard):
            flush()
            grown = len(block)
        current.append(block)
        size = grown
    if current and chunks and size < lim.target // 4:
        merged = chunks[-1] + separator + separator.join(current)
        if len(merged) <= lim.hard:
            chunks[-1] = merged
            current = []
    flush()
    return chunks


def split_long_block(text: str, target: int, hard: int, overlap: int) -> list[str]:
    """Cut one over-long block into pieces of about ``target`` (at most ``hard``) characters.

    Cuts fall at sentence ends; a sentence longer than ``hard`` is cut between words, and a word
    longer than that (a URL, base64) is cut anywhere. Consecutive pieces share up to ``overlap``
    characters: the last whole sentences (or words) of the previous piece.
    """
    units = _units(_SPACES.sub(" ", text).strip(), target, hard)
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    has_new = False
    for unit in units:
        grown = size + 1 + len(unit) if current else len(unit)
        if has_new and grown > target:
            pieces.append(" ".join(current))
            tail = overlap_tail(pieces[-1], overlap)
            current = [tail] if tail and len(tail) + 1 + len(unit) <= hard else []
            size = len(tail) if current else 0
            has_new = False
            grown = size + 1 + len(unit) if current else len(unit)
        current.append(unit)
        size = grown
        has_new = True
    if has_new:
        pieces.append(" ".join(current))
    return pieces


def overlap_tail(text: str, overlap: int) -> str:
    """The end of ``text`` to repeat at the start of the next piece: whole sentences if they fit
    in ``overlap`` characters, else whole words, else nothing."""
    if overlap <= 0 or not text:
        return ""
    if len(text) <= overlap:
        return text
    window = text[-overlap:]
    boundary = _SENTENCE_END.search(window)
    if boundary is not None:
        return window[boundary.end() :].strip()
    space = window.find(" ")
    return window[space + 1 :].strip() if space >= 0 else ""


def _units(text: str, target: int, hard: int) -> list[str]:
    """Sentences of ``text``; a sentence over ``hard`` becomes word runs of about ``target``."""
    units: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        if len(sentence) <= hard:
            units.append(sentence)
        else:
            units.extend(_word_runs(sentence, target, hard))
    return units


def _word_runs(sentence: str, target: int, hard: int) -> list[str]:
    runs: list[str] = []
    current = ""
    for word in sentence.split(" "):
        while len(word) > hard:
            if current:
                runs.append(current)
                current = ""
            runs.append(word[:hard])
            word = word[hard:]
        if current and len(current) + 1 + len(word) > target:
            runs.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    if current:
        runs.append(current)
    return runs
