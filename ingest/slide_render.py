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


def _to_pdf(office: str, deck: Path, workdir: Path, timeout_s: float) -> Path | None:
    profile = (workdir / "profile").as_uri()
    cmd = [office, f"-env:UserInstallation={profile}", "--headless", "--norestore", "--nologo"]
    cmd += ["--convert-to", PDF_FILTER, "--outdir", str(workdir), str(deck)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, cwd=workdir)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # soffice starts helper processes: end the whole group
        proc.communicate()
        log.warning(
            "LibreOffice took over %.0f s to render %s; its slides are indexed without pictures", timeout_s, deck
        )
        return None
    pdf = workdir / (deck.stem + ".pdf")
    if proc.returncode != 0 or not pdf.is_file():
        log.warning("LibreOffice could not render %s (%s)", deck, err.decode(errors="replace").strip()[:300])
        return None
    return pdf


def render_slides(
    office: str, deck: Path, source: str, slides: int, media_dir: Path, timeout_s: float = 120.0
) -> dict[int, Path]:
    """Slide number -> stored picture of that slide; {} when rendering is off or fails."""
    if not office or slides < 1:
        return {}
    import pypdfium2

    from mmrag.ingest.thumbs import save_thumbnail

    with tempfile.TemporaryDirectory(prefix="mmrag-slides-") as tmp:
        workdir = Path(tmp)
        local = workdir / ("deck" + deck.suffix.lower())  # a plain name: soffice names its output after it
        shutil.copyfile(deck, local)
        try:
            pdf_path = _to_pdf(office, local, workdir, timeout_s)
        except OSError as e:
            log.warning("cannot run LibreOffice (%s) for %s", e, deck)
            return {}
        if pdf_path is None:
            return {}
        pdf = pypdfium2.PdfDocument(str(pdf_path))
        try:
            if len(pdf) != slides:
                log.warning(
                    "%s: LibreOffice rendered %d pages for %d slides; no slide pictures", deck, len(pdf), slides
                )
                return {}
            out: dict[int, Path] = {}
            for number in range(1, slides + 1):
                page = pdf[number - 1]
                width, height = page.get_size()
                scale = RENDER_PX / max(width, height, 1.0)
                image = page.render(scale=scale).to_pil()
                out[number] = save_thumbnail(image, media_dir, f"{source}\x00slide {number}\x00render", RENDER_PX)
            return out
        finally:
            pdf.close()
