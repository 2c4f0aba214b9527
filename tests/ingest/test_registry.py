from __future__ import annotations

from mmrag.ingest.base import ChunkingConfig, IngestSettings
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
from mmrag.ingest.registry import ingestor_for


def test_every_supported_kind_has_its_ingestor() -> None:
    settings = IngestSettings()
    expected = {
        FileKind.PDF: PdfIngestor,
        FileKind.DOCX: DocxIngestor,
        FileKind.HTML: HtmlIngestor,
        FileKind.MD: MarkdownIngestor,
        FileKind.TXT: TextIngestor,
        FileKind.EML: EmailIngestor,
        FileKind.PPTX: SlidesIngestor,
        FileKind.ODP: OdpIngestor,
        FileKind.XLSX: TablesIngestor,
        FileKind.CSV: TablesIngestor,
        FileKind.TSV: TablesIngestor,
        FileKind.IMAGE: ImagesIngestor,
        FileKind.AUDIO: AudioIngestor,
        FileKind.VIDEO: VideoIngestor,
    }
    for kind, cls in expected.items():
        assert isinstance(ingestor_for(kind, settings), cls), kind
    assert getattr(ingestor_for(FileKind.PDF, settings), "chunking", None) == settings.chunking


def test_unknown_kinds_have_none() -> None:
    for kind in (FileKind.UNKNOWN,):
        assert ingestor_for(kind, IngestSettings()) is None


def test_instances_are_shared_per_kind_and_settings() -> None:
    small = IngestSettings(chunking=ChunkingConfig(target_chars=200, max_chars=300, overlap_chars=20))
    assert ingestor_for(FileKind.PDF, IngestSettings()) is ingestor_for(FileKind.PDF, IngestSettings())
    assert ingestor_for(FileKind.PDF, small) is not ingestor_for(FileKind.PDF, IngestSettings())
