from __future__ import annotations

from mmrag.ingest.base import ChunkingConfig
from mmrag.ingest.detect import FileKind
from mmrag.ingest.documents import DocxIngestor, HtmlIngestor, MarkdownIngestor, TextIngestor
from mmrag.ingest.mail import EmailIngestor
from mmrag.ingest.pdf import PdfIngestor
from mmrag.ingest.registry import ingestor_for


def test_document_kinds_have_ingestors() -> None:
    chunking = ChunkingConfig()
    expected = {
        FileKind.PDF: PdfIngestor,
        FileKind.DOCX: DocxIngestor,
        FileKind.HTML: HtmlIngestor,
        FileKind.MD: MarkdownIngestor,
        FileKind.TXT: TextIngestor,
        FileKind.EML: EmailIngestor,
    }
    for kind, cls in expected.items():
        ingestor = ingestor_for(kind, chunking)
        assert isinstance(ingestor, cls)
        assert getattr(ingestor, "chunking", None) == chunking


def test_other_kinds_are_not_indexed_yet() -> None:
    for kind in (FileKind.PPTX, FileKind.XLSX, FileKind.CSV, FileKind.IMAGE, FileKind.AUDIO, FileKind.UNKNOWN):
        assert ingestor_for(kind, ChunkingConfig()) is None


def test_instances_are_shared_per_kind_and_config() -> None:
    small = ChunkingConfig(target_chars=200, max_chars=300, overlap_chars=20)
    assert ingestor_for(FileKind.PDF, ChunkingConfig()) is ingestor_for(FileKind.PDF, ChunkingConfig())
    assert ingestor_for(FileKind.PDF, small) is not ingestor_for(FileKind.PDF, ChunkingConfig())
