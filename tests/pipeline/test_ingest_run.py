"""End-to-end ingest behaviour on a small generated drive: incremental runs and bad input."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import docx
import pytest
from fakes import CountingEmbedder

from mmrag.pipeline.api import Filters, ingest, search
from mmrag.pipeline.config import Config

SAMPLE_PDF = Path(__file__).resolve().parents[2] / "data" / "sample-drive" / "reports" / "multi_page.pdf"


def make_drive(root: Path) -> Path:
    (root / "finance").mkdir(parents=True)
    (root / "hr").mkdir()
    (root / "notes").mkdir()
    (root / "finance" / "budget.txt").write_text("The travel budget for 2025 is 48,000 euros, approved in March.\n")
    (root / "notes" / "plan.md").write_text("# Roadmap\n\n## Q4\n\nShip the quantum widget by December.\n")
    (root / "notes" / "page.html").write_text(
        "<html><head><title>Wiki</title></head><body><h1>Ducks</h1><p>A male duck is called a drake.</p></body></html>"
    )
    document = docx.Document()
    document.add_heading("Leave policy", level=1)
    document.add_paragraph("Employees receive 27 days of annual leave.")
    document.save(str(root / "hr" / "leave.docx"))
    shutil.copy(SAMPLE_PDF, root / "finance" / "history.pdf")
    return root


def test_incremental_runs_reembed_only_what_changed(tmp_path: Path, cfg: Config) -> None:
    drive = make_drive(tmp_path / "drive")
    embedder = CountingEmbedder()
    first = ingest([drive], cfg, embedder=embedder)
    assert sorted(first.ingested) == [
        "finance/budget.txt",
        "finance/history.pdf",
        "hr/leave.docx",
        "notes/page.html",
        "notes/plan.md",
    ]
    assert first.skipped == [] and first.chunks > 5

    embedder.texts = 0
    second = ingest([drive], cfg, embedder=embedder)
    assert second.ingested == [] and second.unchanged == 5 and embedder.texts == 0

    # Same content, new mtime: recognised by content hash, nothing re-embedded.
    os.utime(drive / "notes" / "plan.md", (1e9, 1e9))
    assert ingest([drive], cfg, embedder=embedder).unchanged == 5 and embedder.texts == 0

    (drive / "finance" / "budget.txt").write_text("The travel budget for 2026 is 51,000 euros.\n")
    third = ingest([drive], cfg, embedder=embedder)
    assert third.ingested == ["finance/budget.txt"] and third.unchanged == 4
    hits = search("travel budget euros", cfg, k=3, embedder=embedder)
    assert hits[0].chunk.source == "finance/budget.txt" and "51,000" in hits[0].chunk.text
    assert not any("48,000" in h.chunk.text for h in search("48,000", cfg, k=10, embedder=embedder))

    (drive / "hr" / "leave.docx").unlink()
    fourth = ingest([drive], cfg, embedder=embedder)
    assert fourth.removed == ["hr/leave.docx"]
    assert all(h.chunk.source != "hr/leave.docx" for h in search("annual leave days", cfg, k=10, embedder=embedder))


def test_bad_files_are_reported_and_the_rest_is_searchable(tmp_path: Path, cfg: Config) -> None:
    drive = make_drive(tmp_path / "drive")
    data = SAMPLE_PDF.read_bytes()
    (drive / "finance" / "corrupt.pdf").write_bytes(data[: len(data) // 3])
    (drive / "hr" / "empty.docx").write_bytes(b"")
    (drive / "finance" / "blob.pdf").write_bytes(os.urandom(4096).replace(b"%PDF", b"0000"))
    (drive / "archive.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    embedder = CountingEmbedder()
    report = ingest([drive], cfg, embedder=embedder)
    reasons = {s.file: s.reason for s in report.skipped}
    assert set(reasons) == {"finance/corrupt.pdf", "hr/empty.docx", "finance/blob.pdf", "archive.zip"}
    assert reasons["hr/empty.docx"] == "empty file (0 bytes)"
    assert "named .pdf but its content is not a PDF" in reasons["finance/blob.pdf"]
    assert "PDF" in reasons["finance/corrupt.pdf"] or "damaged" in reasons["finance/corrupt.pdf"]
    assert len(report.ingested) == 5
    for source, query in [
        ("finance/budget.txt", "travel budget"),
        ("notes/plan.md", "quantum widget"),
        ("notes/page.html", "male duck drake"),
        ("hr/leave.docx", "annual leave"),
        ("finance/history.pdf", "typewriter patented Sholes"),
    ]:
        assert search(query, cfg, k=3, embedder=embedder)[0].chunk.source == source, query

    # A second run reports the same bad files again (they are still not indexed) without re-reading them.
    again = ingest([drive], cfg, embedder=embedder)
    assert {s.file for s in again.skipped} == set(reasons) and again.unchanged == 5


def test_pdf_hits_carry_their_page(tmp_path: Path, cfg: Config) -> None:
    drive = make_drive(tmp_path / "drive")
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    hit = search("Google Docs 2006 cloud-based collaboration", cfg, k=1, embedder=embedder)[0]
    assert hit.chunk.source == "finance/history.pdf"
    assert hit.to_json()["locator"] == {"page": 2}


def test_filters_by_folder_glob_and_type(tmp_path: Path, cfg: Config) -> None:
    drive = make_drive(tmp_path / "drive")
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    in_notes = search("budget duck leave widget", cfg, k=20, filters=Filters(folders=("notes",)), embedder=embedder)
    assert {h.chunk.source for h in in_notes} == {"notes/plan.md", "notes/page.html"}
    only_md = search("budget duck leave widget", cfg, k=20, filters=Filters(globs=("*.md",)), embedder=embedder)
    assert {h.chunk.source for h in only_md} == {"notes/plan.md"}
    only_docx = search(
        "budget duck leave widget", cfg, k=20, filters=Filters(kinds=frozenset({"docx"})), embedder=embedder
    )
    assert {h.chunk.source for h in only_docx} == {"hr/leave.docx"}


def test_missing_path_is_an_error(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(FileNotFoundError):
        ingest([tmp_path / "nope"], cfg, embedder=CountingEmbedder())


def test_a_moved_index_still_finds_its_thumbnails(tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from PIL import Image

    from mmrag.ingest.formats import images as images_module
    from mmrag.ingest.formats.images import ImageLabeler

    missing = ImageLabeler(weights=tmp_path / "no-such-weights.pth")  # no EfficientNet: this test is about paths
    monkeypatch.setattr(images_module, "image_labeler", lambda: missing)
    drive = tmp_path / "drive"
    (drive / "photos").mkdir(parents=True)
    Image.new("RGB", (320, 200), (200, 30, 30)).save(drive / "photos" / "red-banner.png")
    cfg = replace(cfg, models=replace(cfg.models, ocr_engine="none"))
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    moved = tmp_path / "elsewhere" / "index"
    moved.parent.mkdir()
    shutil.move(str(cfg.index_dir), moved)
    from mmrag.pipeline.api import search_index
    from mmrag.pipeline.app import open_app

    index = open_app(replace(cfg, index_dir=moved), create=False, embedder=embedder)
    try:  # each store (Chroma's vectors, the keyword index) gives the chunk back with its picture
        hits = [search_index(index, "red banner", 1, lists=frozenset({name}))[0] for name in ("vector", "keyword")]
    finally:
        index.close()
    for hit in hits:
        assert hit.chunk.source == "photos/red-banner.png"
        assert hit.chunk.image is not None and hit.chunk.image.is_file()
        assert hit.chunk.image.is_relative_to(moved / "media")


def test_a_picture_is_read_once_per_index_even_across_decks_and_reindex(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    import numpy as np
    from PIL import Image
    from pptx import Presentation
    from pptx.util import Inches

    import mmrag.ingest.engines.ocr as ocr_module

    class Recogniser:
        def __init__(self) -> None:
            self.calls = 0

        def read(self, image: object) -> str:
            self.calls += 1
            return "Logo of Acme Widgets" if np.asarray(image).mean() > 100 else "Revenue chart 2024"

    recogniser = Recogniser()
    ocr_module.clear_ocr_cache()
    monkeypatch.setattr(ocr_module, "_build", lambda name, threads: recogniser)
    logo, chart = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (300, 120), (230, 230, 230)).save(logo, "PNG")
    Image.new("RGB", (300, 120), (20, 40, 90)).save(chart, "PNG")
    drive = tmp_path / "drive"
    drive.mkdir()
    for name, pictures in (("sales.pptx", (logo, chart)), ("all-hands.pptx", (logo,))):
        deck = Presentation()
        for picture in pictures:
            slide = deck.slides.add_slide(deck.slide_layouts[5])
            slide.shapes.title.text = f"{name} slide"
            slide.shapes.add_picture(io.BytesIO(picture.getvalue()), Inches(1), Inches(1.5), Inches(4))
        deck.save(str(drive / name))
    embedder = CountingEmbedder()
    try:
        ingest([drive], cfg, embedder=embedder)
        assert recogniser.calls == 2  # the logo on both decks is read once
        hits = search("Acme Widgets logo", cfg, k=5, embedder=embedder)
        assert {h.chunk.source for h in hits if "Acme Widgets" in h.chunk.text} == {"sales.pptx", "all-hands.pptx"}
        ingest([drive], cfg, embedder=embedder, reindex=True)  # a new embedding model: pictures say the same
        assert recogniser.calls == 2
        assert (cfg.index_dir / "ocr-cache.sqlite").is_file()
    finally:
        ocr_module.clear_ocr_cache()


def test_scanned_pdf_pages_are_read_by_ocr_up_to_the_limit_and_the_report_says_so(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from builders import write_scanned_pdf

    import mmrag.ingest.engines.ocr as ocr_module

    class Recogniser:  # reads the pages in order
        def __init__(self) -> None:
            self.seen: list[object] = []

        def read(self, image: object) -> str:
            self.seen.append(image)
            return ["Harbour dredging invoice 4711", "Second page", "Third page"][len(self.seen) - 1]

    recogniser = Recogniser()
    ocr_module.clear_ocr_cache()
    monkeypatch.setattr(ocr_module, "_build", lambda name, threads: recogniser)
    drive = tmp_path / "drive"
    drive.mkdir()
    write_scanned_pdf(drive / "scan.pdf", [["Harbour dredging invoice 4711"], ["Second page"], ["Third page"]])
    cfg = replace(cfg, limits=replace(cfg.limits, max_ocr_pages=2))
    embedder = CountingEmbedder()
    try:
        report = ingest([drive], cfg, embedder=embedder)
        assert report.ingested == ["scan.pdf"] and report.skipped == []
        assert [(n.file, n.reason) for n in report.notes] == [
            (
                "scan.pdf",
                "OCR read 2 of the 3 pages without a readable text layer (raise [limits] max_ocr_pages to read them all)",
            )
        ]
        assert report.to_json()["notes"] == [n.to_json() for n in report.notes]
        hits = search("harbour dredging invoice", cfg, k=3, embedder=embedder)
        assert hits[0].chunk.source == "scan.pdf" and hits[0].chunk.locator.cite() == "p. 1"
        assert len(recogniser.seen) == 2
        ingest([drive], cfg, embedder=embedder, reindex=True)
        assert len(recogniser.seen) == 2  # rendered pages are remembered in the index's OCR cache
    finally:
        ocr_module.clear_ocr_cache()


def test_pictures_made_from_a_changed_or_deleted_file_leave_the_index(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    from dataclasses import replace

    from PIL import Image
    from pptx import Presentation
    from pptx.util import Inches

    from mmrag.ingest.engines.slide_render import slide_pictures_folder
    from mmrag.ingest.formats import images as images_module
    from mmrag.ingest.formats.images import ImageLabeler

    missing = ImageLabeler(weights=tmp_path / "no-such-weights.pth")
    monkeypatch.setattr(images_module, "image_labeler", lambda: missing)
    cfg = replace(cfg, models=replace(cfg.models, ocr_engine="none"))
    drive = tmp_path / "drive"
    drive.mkdir()
    Image.new("RGB", (300, 200), (10, 120, 10)).save(drive / "green.png")
    Image.new("RGB", (300, 200), (10, 10, 120)).save(drive / "blue.png")

    def deck(with_picture: bool) -> None:
        made = Presentation()
        slide = made.slides.add_slide(made.slide_layouts[5])
        slide.shapes.title.text = "Offsite plan" if with_picture else "Offsite plan, revised"
        if with_picture:
            png = io.BytesIO()
            Image.new("RGB", (300, 200), (200, 200, 20)).save(png, "PNG")
            slide.shapes.add_picture(png, Inches(1), Inches(1.5), Inches(4))
        made.save(str(drive / "plan.pptx"))

    deck(with_picture=True)
    embedder = CountingEmbedder()
    ingest([drive], cfg, embedder=embedder)
    media = cfg.index_dir / "media"
    first = set(media.rglob("*.jpg"))
    assert len(first) == 3  # two image thumbnails, one slide picture
    previews = slide_pictures_folder(media, str(drive.resolve()), "plan.pptx")
    previews.mkdir(parents=True)
    (previews / "old-version-slide-1.jpg").write_bytes(b"a picture made by a preview")

    deck(with_picture=False)  # the picture is gone from the deck
    (drive / "blue.png").unlink()
    report = ingest([drive], cfg, embedder=embedder)
    assert report.removed == ["blue.png"]
    left = set(media.rglob("*.jpg"))
    assert len(left) == 1 and left < first  # only green.png's thumbnail: unchanged, kept
    assert not previews.exists()


def test_a_failed_vector_write_leaves_its_files_to_the_next_run(
    tmp_path: Path, cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmrag.pipeline.app import open_app
    from mmrag.retrieval.manifest import OK
    from mmrag.retrieval.stores.chroma import ChromaStore

    drive = tmp_path / "drive"
    drive.mkdir()
    for n in range(5):
        (drive / f"note{n}.txt").write_text(f"Meeting note {n}: the badger project needs {n + 3} more engineers.\n")
    embedder = CountingEmbedder()
    real = ChromaStore.upsert_files

    def disk_full(self: ChromaStore, files: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ChromaStore, "upsert_files", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ingest([drive], cfg, embedder=embedder)
    index = open_app(cfg, create=False, embedder=embedder)
    try:  # vectors never written: no file is recorded as done, so none is taken as unchanged later
        assert [r for r in index.manifest.files() if r.status == OK] == []
    finally:
        index.close()
    monkeypatch.setattr(ChromaStore, "upsert_files", real)
    report = ingest([drive], cfg, embedder=embedder)
    assert len(report.ingested) == 5 and report.unchanged == 0
    hits = search("badger project engineers", cfg, k=5, embedder=embedder)
    assert {h.chunk.source for h in hits} == {f"note{n}.txt" for n in range(5)}


def test_files_wait_to_be_written_together_and_are_searchable_at_the_end(tmp_path: Path, cfg: Config) -> None:
    from mmrag.pipeline import index as index_module
    from mmrag.retrieval.stores.chroma import ChromaStore

    drive = tmp_path / "drive"
    drive.mkdir()
    for n in range(10):
        (drive / f"memo{n}.txt").write_text(f"Memo {n} about the walrus budget.\n")
    writes: list[int] = []
    real = ChromaStore.upsert_files

    def counting(self: ChromaStore, files: Sequence[object]) -> None:
        writes.append(len(files))
        real(self, files)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ChromaStore, "upsert_files", counting)
        mp.setattr(index_module, "FLUSH_FILES", 4)
        embedder = CountingEmbedder()
        ingest([drive], cfg, embedder=embedder)
    assert writes == [4, 4, 2]  # ten files in three writes
    assert len(search("walrus budget memo", cfg, k=10, embedder=embedder)) == 10


def test_a_newer_version_of_a_waiting_file_replaces_it_before_the_write(cfg: Config) -> None:
    from mmrag.ingest.chunk import Chunk, Modality, Page
    from mmrag.pipeline.app import open_app
    from mmrag.retrieval.store import FileInfo

    embedder = CountingEmbedder()
    index = open_app(cfg, create=True, embedder=embedder)
    done: list[str] = []
    info = FileInfo(root="/drive", kind="text", modified=0.0)
    try:
        chunk = Chunk("a.txt", Modality.TEXT, Page(1), "first version")
        index.index.replace_file("/drive", "a.txt", [chunk], info, then=lambda: done.append("first"))
        index.index.replace_file("/drive", "a.txt", [], None, then=lambda: done.append("skipped"))
        index.index.flush()
        assert done == ["skipped"] and index.store.count() == 0  # the older version was never written
        newer = Chunk("a.txt", Modality.TEXT, Page(1), "second version")
        index.index.replace_file("/drive", "a.txt", [newer], info, then=lambda: done.append("second"))
        assert done == ["skipped"]  # waits for the write
    finally:
        index.close()  # closing writes what waits
    assert done == ["skipped", "second"]
