"""What the answer stage returns: the answer text, its numbered citations and what the check found."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.chunk import PICTURED
from mmrag.pipeline.sources import is_remote, remote_link
from mmrag.retrieval.store import Hit

DECLINE_TEXT = "Not found in the indexed files."
EXTRACTIVE_NOTE = "Extractive answer (quoted from the indexed files; no LLM is configured):"
FALLBACK_NOTE = "Extractive answer (quoted from the indexed files):"  # a configured LLM gave none; a note says why
MAX_QUOTE_CHARS = 400


@dataclass(frozen=True, slots=True)
class Citation:
    n: int
    hit: Hit
    link: str
    quote: str = ""

    @property
    def thumbnail(self) -> str:
        """The picture to show next to an image, frame or moment citation ("" for other evidence)."""
        chunk = self.hit.chunk
        return str(chunk.image) if chunk.image is not None and chunk.modality in PICTURED else ""

    def to_json(self) -> dict[str, object]:
        chunk = self.hit.chunk
        return {
            "n": self.n,
            "source": chunk.source,
            "modality": chunk.modality.value,
            "locator": chunk.locator.to_json(),
            "cite": chunk.locator.cite(),
            "link": self.link,
            "quote": self.quote,
            "thumbnail": self.thumbnail,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    declined: bool
    extractive: bool = True
    flagged: tuple[str, ...] = ()  # sentences the citation check could not match to their evidence
    removed_citations: tuple[int, ...] = ()  # markers to evidence that was never given, removed
    notes: tuple[str, ...] = ()  # what a person should know about how this answer was made

    def to_json(self) -> dict[str, object]:
        return {
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "declined": self.declined,
            "extractive": self.extractive,
            "flagged": list(self.flagged),
            "removed_citations": list(self.removed_citations),
            "notes": list(self.notes),
        }


def link_for(hit: Hit) -> str:
    """A link a person can open: the file, with the page or the second when the format supports it."""
    if is_remote(hit.root):  # an item of a share or bucket: its URL there
        uri = remote_link(hit.root, hit.chunk.source)
    else:
        path = Path(hit.root) / hit.chunk.source if hit.root else Path(hit.chunk.source)
        uri = path.as_uri() if path.is_absolute() else str(path)
    fragment = hit.chunk.locator.fragment()
    return f"{uri}#{fragment}" if fragment else uri
