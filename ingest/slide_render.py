"""Pictures of whole slides, rendered by LibreOffice when it is installed (optional, detected).

A deck is converted to PDF by ``soffice --headless`` (hidden slides included, so page n is slide n)
in a private, throw-away profile, and each page is rendered with pypdfium2 into the index's media
folder. The slide's chunks then carry that picture: the page shows it as the evidence, a
vision-capable LLM can read it, and an image-text encoder embeds it. Rendering is best effort: when
LibreOffice is missing, slow or fails, or the page count does not match the deck, the slides are
indexed without pictures and the run goes on.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
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

    def pictures(self, source: str, slides: int, media_dir: Path, timeout_s: float = 120.0) -> dict[int, Path]:
        """Slide number -> stored picture of that slide; {} when rendering failed."""
        try:
            if self._proc is None or not self._converted(timeout_s):
                return {}
            return _render_pages(self._pdf, self._deck, source, slides, media_dir)
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


def _render_pages(pdf_path: Path, deck: Path, source: str, slides: int, media_dir: Path) -> dict[int, Path]:
    import pypdfium2

    from mmrag.ingest.thumbs import save_thumbnail

    pdf = pypdfium2.PdfDocument(str(pdf_path))
    try:
        if len(pdf) != slides:
            log.warning("%s: LibreOffice rendered %d pages for %d slides; no slide pictures", deck, len(pdf), slides)
            return {}
        out: dict[int, Path] = {}
        for number in range(1, slides + 1):
            page = pdf[number - 1]
            width, height = page.get_size()
            image = page.render(scale=RENDER_PX / max(width, height, 1.0)).to_pil()
            out[number] = save_thumbnail(image, media_dir, f"{source}\x00slide {number}\x00render", RENDER_PX)
        return out
    finally:
        pdf.close()
