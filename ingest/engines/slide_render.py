"""Pictures of whole slides, rendered by LibreOffice when it is installed (optional, detected).

A deck is converted to PDF by ``soffice --headless`` (hidden slides included, so page n is slide n)
in a private, throw-away profile, and each page is rendered with pypdfium2 into the index's media
folder. Rendering is best effort: when LibreOffice is missing, slow or fails, or the page count does
not match the deck, the slides keep their text and the run goes on.

When: at ingest (``Rendering``, started before the deck is read) when something beyond the preview
uses the pictures (an image-text encoder embeds them, a vision LLM is sent them): the slide chunks then
carry them. Otherwise on the first preview of a slide (``SlidePictures``), because LibreOffice's
start-up costs 1-2 s per deck and the picture is only shown: those pictures live in a folder per deck
(``slide_pictures_folder``), keyed by the deck's content hash, and leave with the deck's chunks.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

RENDER_PX = 960  # long side of a stored slide picture: legible in a preview, ~100 KB as JPEG
PDF_FILTER = 'pdf:impress_pdf_Export:{"ExportHiddenSlides":{"type":"boolean","value":"true"}}'


def find_office(setting: str = "auto") -> str:
    """The LibreOffice program to render with: a path, "auto" (search PATH), or "none"/"" (off)."""
    if setting in ("", "none", "off"):
        return ""
    if setting != "auto":
        return setting if Path(setting).is_file() and os.access(setting, os.X_OK) else ""
    return shutil.which("soffice") or shutil.which("libreoffice") or ""


class Rendering:
    """A deck being converted to PDF by LibreOffice in the background; ``pictures`` waits and renders pages.

    Started before the deck's text and pictures are read, so LibreOffice's start-up and conversion run
    while the slides are parsed and their pictures OCR'd.
    """

    def __init__(self, office: str, deck: Path) -> None:
        self._deck = deck
        self._tmp = tempfile.TemporaryDirectory(prefix="mmrag-slides-")
        self._workdir = Path(self._tmp.name)
        local = self._workdir / ("deck" + deck.suffix.lower())  # a plain name: soffice names its output after it
        self._pdf = self._workdir / "deck.pdf"
        self._proc: subprocess.Popen[bytes] | None = None
        try:
            shutil.copyfile(deck, local)
            profile = (self._workdir / "profile").as_uri()
            cmd = [office, f"-env:UserInstallation={profile}", "--headless", "--norestore", "--nologo"]
            cmd += ["--convert-to", PDF_FILTER, "--outdir", str(self._workdir), str(local)]
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, cwd=self._workdir
            )
        except OSError as e:
            log.warning("cannot run LibreOffice (%s) for %s; its slides are indexed without pictures", e, deck)

    def pictures(
        self, source: str, slides: int, media_dir: Path, timeout_s: float = 120.0, version: str = ""
    ) -> dict[int, Path]:
        """Slide number -> stored picture of that slide; {} when rendering failed.

        ``slides`` is the deck's slide count (0: take the PDF's page count); ``version`` (the deck's
        content hash, when known) is part of the stored pictures' keys.
        """
        try:
            if self._proc is None or not self._converted(timeout_s):
                return {}
            return _render_pages(self._pdf, self._deck, source, slides, media_dir, version)
        finally:
            self.close()

    def _converted(self, timeout_s: float) -> bool:
        assert self._proc is not None
        try:
            _, err = self._proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)  # soffice starts helper processes: end the whole group
            self._proc.communicate()
            log.warning(
                "LibreOffice took over %.0f s to render %s; its slides are indexed without pictures",
                timeout_s,
                self._deck,
            )
            return False
        if self._proc.returncode != 0 or not self._pdf.is_file():
            log.warning("LibreOffice could not render %s (%s)", self._deck, err.decode(errors="replace").strip()[:300])
            return False
        return True

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.communicate()
        self._tmp.cleanup()


def picture_key(source: str, number: int, version: str = "") -> str:
    """The media key of slide ``number``'s picture (``thumbs.thumbnail_path`` turns it into a file name)."""
    return f"{source}\x00{version}\x00slide {number}\x00render" if version else f"{source}\x00slide {number}\x00render"


def _render_pages(
    pdf_path: Path, deck: Path, source: str, slides: int, media_dir: Path, version: str = ""
) -> dict[int, Path]:
    import pypdfium2

    from mmrag.ingest.engines.thumbs import save_thumbnail

    pdf = pypdfium2.PdfDocument(str(pdf_path))
    try:
        slides = slides or len(pdf)
        if len(pdf) != slides:
            log.warning("%s: LibreOffice rendered %d pages for %d slides; no slide pictures", deck, len(pdf), slides)
            return {}
        out: dict[int, Path] = {}
        for number in range(1, slides + 1):
            page = pdf[number - 1]
            width, height = page.get_size()
            image = page.render(scale=RENDER_PX / max(width, height, 1.0)).to_pil()
            out[number] = save_thumbnail(image, media_dir, picture_key(source, number, version), RENDER_PX)
        return out
    finally:
        pdf.close()


def slide_pictures_folder(media_dir: Path, root: str, source: str) -> Path:
    """The folder of one deck's pictures made on preview (all versions), removed with the deck's chunks."""
    import hashlib

    return media_dir / "slides" / hashlib.sha256(f"{root}\x00{source}".encode()).hexdigest()[:24]


class SlidePictures:
    """Slide pictures made on first request and kept in the media folder: the preview path.

    One rendering per deck version (concurrent requests for the same deck wait for it, and a slide
    number the deck does not have renders nothing); a deck LibreOffice cannot render is not tried
    again by this object until its content changes.
    """

    def __init__(self, office: str, media_dir: Path, timeout_s: float = 120.0) -> None:
        self.office = office
        self._media = media_dir
        self._timeout = timeout_s
        self._lock = threading.Lock()
        self._decks: dict[tuple[str, str], threading.Lock] = {}
        self._tried: set[tuple[str, str]] = set()

    def picture(self, deck: Path, root: str, source: str, version: str, number: int) -> Path | None:
        """The stored picture of slide ``number`` of ``deck`` (rendering the deck once), or None.

        ``version`` identifies the deck's content (its SHA-256): a changed deck is rendered anew.
        """
        from mmrag.ingest.engines.thumbs import thumbnail_path

        folder = slide_pictures_folder(self._media, root, source)
        stored = thumbnail_path(folder, picture_key(source, number, version))
        if stored.is_file() or not self.office:
            return stored if stored.is_file() else None
        key = (f"{root}\x00{source}", version)
        with self._lock:
            deck_lock = self._decks.setdefault(key, threading.Lock())
        with deck_lock:
            slides = slide_count(deck)
            if not stored.is_file() and key not in self._tried and 1 <= number <= slides:
                self._tried.add(key)  # once per deck version: its pictures are stored now, or it failed
                Rendering(self.office, deck).pictures(source, slides, folder, self._timeout, version)
        return stored if stored.is_file() else None


def slide_count(deck: Path) -> int:
    """How many slides a PPTX or ODP file has (hidden ones included), from its XML; 0 when unreadable."""
    import re
    import zipfile

    odp = deck.suffix.lower() == ".odp"
    part = "content.xml" if odp else "ppt/presentation.xml"
    pattern = rb"<draw:page[ >]" if odp else rb"<p:sldId[ >]"
    try:
        with zipfile.ZipFile(deck) as archive:
            return len(re.findall(pattern, archive.read(part)))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0
