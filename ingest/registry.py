"""Which ingestor handles which kind of file: one table, extended by adding a line to it.

Constructing an ingestor is cheap (heavy libraries load on first use), and instances are cached
per kind and chunking config, so everything they load lazily is shared across files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from mmrag.ingest.base import ChunkingConfig, Ingestor
from mmrag.ingest.detect import FileKind
from mmrag.ingest.documents import DocxIngestor, HtmlIngestor, MarkdownIngestor, TextIngestor
from mmrag.ingest.mail import EmailIngestor
from mmrag.ingest.pdf import PdfIngestor

INGESTORS: dict[FileKind, Callable[[ChunkingConfig], Ingestor]] = {
    FileKind.PDF: PdfIngestor,
    FileKind.DOCX: DocxIngestor,
    FileKind.HTML: HtmlIngestor,
    FileKind.MD: MarkdownIngestor,
    FileKind.TXT: TextIngestor,
    FileKind.EML: EmailIngestor,
}

_cache: dict[tuple[FileKind, ChunkingConfig], Ingestor] = {}
_lock = threading.Lock()


def ingestor_for(kind: FileKind, chunking: ChunkingConfig) -> Ingestor | None:
    """The (shared) ingestor for ``kind``, or ``None`` when that kind is not indexed yet."""
    factory = INGESTORS.get(kind)
    if factory is None:
        return None
    with _lock:
        ingestor = _cache.get((kind, chunking))
        if ingestor is None:
            ingestor = _cache[(kind, chunking)] = factory(chunking)
        return ingestor
