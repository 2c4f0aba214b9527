"""Which ingestor handles which kind of file: one table, extended by adding a line to it.

Constructing an ingestor is cheap (heavy libraries load on first use), and instances are cached
per kind and settings, so everything they load lazily is shared across files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from mmrag.ingest.base import Ingestor, IngestSettings
from mmrag.ingest.detect import FileKind
from mmrag.ingest.formats.audio import AudioIngestor
from mmrag.ingest.formats.documents import DocxIngestor, HtmlIngestor, MarkdownIngestor, TextIngestor
from mmrag.ingest.formats.images import ImagesIngestor
from mmrag.ingest.formats.mail import EmailIngestor
from mmrag.ingest.formats.odp import OdpIngestor
from mmrag.ingest.formats.pdf import PdfIngestor
from mmrag.ingest.formats.slides import SlidesIngestor
from mmrag.ingest.formats.tables import TablesIngestor
from mmrag.ingest.formats.video import VideoIngestor

INGESTORS: dict[FileKind, Callable[[IngestSettings], Ingestor]] = {
    FileKind.PDF: lambda s: PdfIngestor(s.chunking),
    FileKind.DOCX: lambda s: DocxIngestor(s.chunking),
    FileKind.HTML: lambda s: HtmlIngestor(s.chunking),
    FileKind.MD: lambda s: MarkdownIngestor(s.chunking),
    FileKind.TXT: lambda s: TextIngestor(s.chunking),
    FileKind.EML: lambda s: EmailIngestor(s.chunking),
    FileKind.PPTX: SlidesIngestor,
    FileKind.ODP: OdpIngestor,
    FileKind.XLSX: TablesIngestor,
    FileKind.CSV: TablesIngestor,
    FileKind.TSV: TablesIngestor,
    FileKind.IMAGE: ImagesIngestor,
    FileKind.AUDIO: AudioIngestor,
    FileKind.VIDEO: VideoIngestor,
}

_cache: dict[tuple[FileKind, IngestSettings], Ingestor] = {}
_lock = threading.Lock()


def ingestor_for(kind: FileKind, settings: IngestSettings) -> Ingestor | None:
    """The (shared) ingestor for ``kind``, or ``None`` when that kind is not indexed."""
    factory = INGESTORS.get(kind)
    if factory is None:
        return None
    with _lock:
        ingestor = _cache.get((kind, settings))
        if ingestor is None:
            ingestor = _cache[(kind, settings)] = factory(settings)
        return ingestor
