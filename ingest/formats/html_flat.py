"""A flat reading of HTML for pages nested too deep for a tree parser.

unstructured reads HTML through lxml, whose tree stops at 256 levels: a page of 100,000 nested
``<div>``s comes back empty and its text is lost. ``read_flat`` walks the markup as a stream of tags
(the standard library's ``HTMLParser``, no tree, no recursion) and keeps paragraphs and headings,
so such a page is still indexed, and ``depth`` says how deep it went.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from mmrag.ingest.formats.unstructured_adapter import Block, BlockKind

TOO_DEEP = 200
"""Nesting (open elements) past which a page is read flat: lxml's tree stops at 256."""

_SPACES = re.compile(r"\s+")
_HEADINGS = {f"h{n}": n - 1 for n in range(1, 7)}
_BREAKS = frozenset(
    {"p", "div", "br", "li", "tr", "td", "th", "section", "article", "header", "footer", "blockquote", "pre", "table"}
)
_HIDDEN = frozenset({"script", "style", "template", "noscript", "head"})
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})


@dataclass(frozen=True, slots=True)
class FlatHtml:
    blocks: list[Block]
    depth: int  # the deepest nesting of open elements seen


class _Flat(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.depth = 0
        self.deepest = 0
        self._text: list[str] = []
        self._heading: int | None = None
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)
        if tag in _HIDDEN:
            self._hidden += 1
        if tag in _HEADINGS or tag in _BREAKS:
            self._end_block()
            if tag in _HEADINGS:
                self._heading = _HEADINGS[tag]

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.depth = max(0, self.depth - 1)
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        if tag in _HEADINGS or tag in _BREAKS:
            self._end_block()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._end_block()

    def _end_block(self) -> None:
        text = _SPACES.sub(" ", "".join(self._text)).strip()
        self._text = []
        if text:
            if self._heading is not None:
                self.blocks.append(Block(BlockKind.HEADING, text, depth=self._heading))
            else:
                self.blocks.append(Block(BlockKind.BODY, text))
        self._heading = None


def read_flat(text: str) -> FlatHtml:
    """The page's headings and paragraphs in order, read without building a tree."""
    parser = _Flat()
    parser.feed(text)
    parser.close()
    return FlatHtml(parser.blocks, parser.deepest)
