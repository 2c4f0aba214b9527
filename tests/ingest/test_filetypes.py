"""The file-type table drives everything that depends on a file's type: detection, ingest, preview, bench."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mmrag.ingest import filetypes
from mmrag.ingest.base import ChunkingConfig, IngestSettings
from mmrag.ingest.chunk import Chunk, Modality, Slide
from mmrag.ingest.detect import FileKind, detect
from mmrag.ingest.filetypes import FILE_TYPES, FileType, Magic, Preview, file_type, ingestor_for, register
from mmrag.ingest.formats.audio import AudioIngestor
from mmrag.ingest.formats.documents import DocxIngestor, HtmlIngestor, MarkdownIngestor, TextIngestor
from mmrag.ingest.formats.images import ImagesIngestor
from mmrag.ingest.formats.mail import EmailIngestor
from mmrag.ingest.formats.odp import OdpIngestor
from mmrag.ingest.formats.pdf import PdfIngestor
from mmrag.ingest.formats.slides import SlidesIngestor
from mmrag.ingest.formats.tables import TablesIngestor
from mmrag.ingest.formats.video import VideoIngestor
from mmrag.pipeline.config import Config


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
    assert getattr(ingestor_for(FileKind.PDF, settings), "settings", None) == settings  # PDFs use OCR settings too
    assert {t.kind for t in FILE_TYPES} == set(expected)


def test_unknown_kinds_have_none() -> None:
    assert ingestor_for(FileKind.UNKNOWN, IngestSettings()) is None


def test_instances_are_shared_per_kind_and_settings() -> None:
    small = IngestSettings(chunking=ChunkingConfig(target_chars=200, max_chars=300, overlap_chars=20))
    assert ingestor_for(FileKind.PDF, IngestSettings()) is ingestor_for(FileKind.PDF, IngestSettings())
    assert ingestor_for(FileKind.PDF, small) is not ingestor_for(FileKind.PDF, IngestSettings())


def test_no_extension_is_claimed_by_two_types() -> None:
    extensions = [e for t in FILE_TYPES for e in t.extensions]
    assert len(extensions) == len(set(extensions))


# --- a new format is one table entry and one ingestor ------------------------------------------------


class NotesDeck:
    """A toy format: "NOTES1" then one slide per paragraph. Ingestor and slide reader in one small class."""

    def __init__(self, settings: IngestSettings | None = None) -> None:
        self.settings = settings

    def read(self, path: Path) -> tuple[str, list[_NoteSlide]]:
        paragraphs = path.read_text(encoding="utf-8").removeprefix("NOTES1\n").split("\n\n")
        return path.stem, [_NoteSlide(n, p.strip()) for n, p in enumerate(paragraphs, start=1) if p.strip()]

    def ingest(self, path: Path, source: str) -> Iterator[Chunk]:
        for slide in self.read(path)[1]:
            yield Chunk(source, Modality.TEXT, Slide(slide.number), slide.text)


class _NoteSlide:
    def __init__(self, number: int, text: str) -> None:
        self.number = number
        self.text = text

    def text_blocks(self) -> list[str]:
        return [self.text]


@pytest.fixture
def notes_type() -> Iterator[FileType]:
    before = list(FILE_TYPES)
    entry = FileType(
        "notes", (".notes",), NotesDeck, "slides", (Magic(b"NOTES1\n"),), preview=Preview.SLIDES, slide_reader=NotesDeck
    )
    register(entry)
    yield entry
    FILE_TYPES[:] = before
    filetypes._cache.clear()


def _notes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "standup.notes"
    path.write_text("NOTES1\nThe kiln in building 4 is offline until Tuesday.\n\nBudget review moves to Friday.\n")
    (folder / "misnamed.txt").write_bytes(path.read_bytes())  # content wins over the name
    return path


def test_a_registered_type_drives_detection_ingest_preview_and_bench(
    notes_type: FileType, tmp_path: Path, cfg: Config
) -> None:
    from fastapi.testclient import TestClient

    from mmrag.pipeline.api import ingest, search
    from mmrag.pipeline.bench.stages import classify
    from mmrag.pipeline.http.app import create_app
    from mmrag.retrieval.embed import HashEmbedder

    drive = tmp_path / "drive"
    path = _notes(drive / "ops")
    assert detect(path).kind == "notes" and detect(drive / "ops" / "misnamed.txt").kind == "notes"
    assert file_type("notes") is notes_type

    embedder = HashEmbedder(64)
    cfg = replace(cfg, models=replace(cfg.models, slide_renderer="none"))
    report = ingest([drive], cfg, embedder=embedder)
    assert sorted(report.ingested) == ["ops/misnamed.txt", "ops/standup.notes"] and report.skipped == []
    hits = search("kiln building offline", cfg, k=3, embedder=embedder)
    assert hits[0].chunk.locator == Slide(1) and "kiln" in hits[0].chunk.text

    with TestClient(create_app(cfg, embedder=embedder), base_url="http://127.0.0.1:8765") as client:
        shown = client.get(
            "/api/preview", params={"root": str(drive.resolve()), "source": "ops/standup.notes", "slide": 2}
        )
        assert shown.status_code == 200 and shown.json()["text"] == "Budget review moves to Friday."

    assert [source for _, source in classify(drive)["slides"]] == ["ops/misnamed.txt", "ops/standup.notes"]


def test_aiff_recordings_are_audio(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import aifc

    path = tmp_path / "interview.aiff"
    with aifc.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x01" * 16000)
    assert detect(path).kind == FileKind.AUDIO
    assert detect(path.rename(tmp_path / "interview.bin")).kind == FileKind.AUDIO
