"""The one door to unstructured: no telemetry, no downloads, imported once and lazily.

Importing this module is cheap and does not import unstructured (``mmrag --help`` stays fast); it
only opts out of unstructured's telemetry and usage banner, which must happen before unstructured is
first imported. The first partition imports unstructured (seconds) and makes it work offline:

unstructured 0.27.32 classifies paragraphs (narrative text vs. title) with heuristics that count
sentences and look for verbs through ``unstructured.nlp.tokenize``. Its loader ``_get_nlp`` calls
``spacy.load("en_core_web_sm")`` and, when that model is not installed (it is not on PyPI), downloads
the wheel from GitHub and installs it into site-packages at run time. That fails offline, and an
enterprise tool must not install packages behind the user's back anyway. We replace that one loader with a blank English spaCy pipeline
plus the rule-based sentencizer: sentence counts and word tokens stay exact; part-of-speech tags are
empty, so the "contains a verb" check says no. That check only decides NarrativeText vs. Text (DOCX,
HTML) or Title for short verb-less lines of plain text, which ``documents.py`` treats with care. We
use the offline pipeline even where ``en_core_web_sm`` is installed, so that a file chunks the same on
every machine. No NLTK data is used by this version of unstructured.

Elements leave this module as our own ``Block`` values; nothing of unstructured's types leaks out.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.language import Language
    from unstructured.documents.elements import Element

# Any non-empty value opts out; an empty one (``DO_NOT_TRACK=``) would not, so we fill that in too.
for _var, _value in (("DO_NOT_TRACK", "true"), ("SCARF_NO_ANALYTICS", "true"), ("UNSTRUCTURED_DISABLE_NOTICE", "1")):
    if not os.environ.get(_var, "").strip():
        os.environ[_var] = _value

# Element language metadata is not used; naming the language skips langdetect (half of HTML time).
_LANGUAGES = ["eng"]
_SPACES = re.compile(r"\s+")
_load_lock = threading.Lock()
_loaded = False


class BlockKind(StrEnum):
    HEADING = "heading"
    BODY = "body"
    TABLE = "table"


@dataclass(frozen=True, slots=True)
class Block:
    """One element of a document, as the chunker needs it.

    ``depth`` is the heading level (0 = top); ``page`` the 1-based page where the document records
    page breaks (DOCX); ``rows`` a table's rows as "a | b | c" lines.
    """

    kind: BlockKind
    text: str
    depth: int = 0
    page: int | None = None
    rows: tuple[str, ...] = ()


@functools.lru_cache(maxsize=1)
def _offline_nlp() -> Language:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def load() -> None:
    """Import unstructured's tokenizer module and swap in the offline spaCy loader (once)."""
    global _loaded
    with _load_lock:
        if _loaded:
            return
        import unstructured.nlp.tokenize as tokenize

        # The one function that reaches the network (see the module docstring).
        tokenize._get_nlp = _offline_nlp
        _loaded = True


def partition_docx(path: str) -> list[Block]:
    load()
    from unstructured.partition.docx import partition_docx as partition

    return to_blocks(partition(filename=path, languages=_LANGUAGES))


def partition_html(text: str) -> list[Block]:
    load()
    from unstructured.partition.html import partition_html as partition

    return to_blocks(partition(text=text, languages=_LANGUAGES))


def partition_md(text: str) -> list[Block]:
    load()
    from unstructured.partition.md import partition_md as partition

    return to_blocks(partition(text=text, languages=_LANGUAGES))


def partition_text(text: str) -> list[Block]:
    load()
    from unstructured.partition.text import partition_text as partition

    return to_blocks(partition(text=text, languages=_LANGUAGES))


def partition_email_body(path: str) -> list[Block]:
    """The message body (text/plain preferred, else HTML as text); attachments are not opened:
    unstructured would route them to any partitioner, including OCR models that download weights."""
    load()
    from unstructured.partition.email import partition_email as partition

    elements = partition(filename=path, content_source="text/plain", process_attachments=False, languages=_LANGUAGES)
    return to_blocks(elements)


_SKIPPED = frozenset({"PageBreak", "Header", "Footer", "PageNumber"})


def to_blocks(elements: Sequence[Element]) -> list[Block]:
    """Our blocks from unstructured elements: headings, body text and tables, with depth and page."""
    blocks: list[Block] = []
    for element in elements:
        category = element.category
        text = _SPACES.sub(" ", element.text or "").strip()
        if category in _SKIPPED:
            continue
        meta = element.metadata
        page = meta.page_number
        if category == "Table":
            rows = table_rows(meta.text_as_html) if meta.text_as_html else ()
            if rows or text:
                blocks.append(Block(BlockKind.TABLE, text, page=page, rows=rows or (text,)))
            continue
        if not text:
            continue
        if category == "Title":
            blocks.append(Block(BlockKind.HEADING, text, depth=meta.category_depth or 0, page=page))
        elif category == "ListItem":
            blocks.append(Block(BlockKind.BODY, f"- {text}", page=page))
        else:
            blocks.append(Block(BlockKind.BODY, text, page=page))
    return blocks


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._end_cell()
            if not self.rows:
                self.rows.append([])
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "tr"):
            self._end_cell()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def _end_cell(self) -> None:
        if self._cell is not None:
            self.rows[-1].append(_SPACES.sub(" ", "".join(self._cell)).strip())
            self._cell = None


def table_rows(html: str) -> tuple[str, ...]:
    """A table's rows as "a | b | c" lines.

    Empty rows and columns empty in every row (layout spacers) are dropped; other empty cells stay,
    so that a value remains under its column header.
    """
    parser = _TableParser()
    parser.feed(html)
    parser.close()
    rows = [row for row in parser.rows if any(row)]
    width = max((len(row) for row in rows), default=0)
    padded = [row + [""] * (width - len(row)) for row in rows]
    used = [col for col in range(width) if any(row[col] for row in padded)]
    lines = []
    for row in padded:
        cells = [row[col] for col in used]
        while not cells[-1]:  # trailing empty cells carry no alignment
            cells.pop()
        lines.append(" | ".join(cells))
    return tuple(lines)
