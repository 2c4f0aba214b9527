"""Query by example image (``mmrag search --image FILE``): what looks like it, and what talks about it.

Two candidate searches, fused by rank:

- **visual**: the image's embedding from the image-text encoder against the visual part of image,
  frame and moment chunks (``Vectorizer.image_query``). Only when the index has that encoder.
- **description**: the image described in words by the same offline describer the images ingestor
  uses (file-name words, EXIF/XMP title and keywords, ImageNet labels, the text in it by OCR), run as
  an ordinary hybrid text query over every modality, so a photo of a whiteboard finds the minutes
  that quote it and a screenshot of an invoice finds the invoice.

Without the image-text encoder only the description runs; ``image_search_notices`` says so, and how
to turn visual similarity on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mmrag.ingest.base import IngestSettings
from mmrag.ingest.chunk import PICTURED
from mmrag.ingest.errors import IngestError, MmragError
from mmrag.ingest.formats.images import ImagesIngestor
from mmrag.pipeline.app import App
from mmrag.pipeline.filters import Filters, resolve_filter
from mmrag.pipeline.permissions import scoped
from mmrag.retrieval.search import fuse
from mmrag.retrieval.store import Hit, SearchFilter

CANDIDATES = 50  # per search, before fusion
MAX_DESCRIPTION_CHARS = 2000  # the text embedder reads far less; the keyword side needs no more
IMAGE_QUERY_WEIGHTS = {"visual": 1.0, "description": 1.0}  # looks like it, and is described like it


class ImageQueryError(MmragError):
    """The query image cannot be used (not an image, damaged, too large); the message says which and why."""


def describe_image(image: Path, settings: IngestSettings | None = None) -> str:
    """The image in words, as the images ingestor would index it, without its format/size/colour line.

    That last line ("PNG image, 800×600 pixels; main colours white, black.") describes every picture
    alike and would pull in other images by their boilerplate rather than by what they show.
    Raises ``FileNotFoundError`` for a missing file and ``ImageQueryError`` for an unusable one.
    """
    if not image.is_file():
        raise FileNotFoundError(2, "no such file", str(image))
    settings = settings or IngestSettings()
    ingestor = ImagesIngestor(replace(settings, media=replace(settings.media, media_dir=None)))  # no thumbnail
    try:
        chunks = list(ingestor.ingest(image, image.name))
    except IngestError as e:
        raise ImageQueryError(f"cannot use {image} as a query image: {e.reason}") from e
    if not chunks:
        return ""
    chunk = chunks[0]
    lines = chunk.text.splitlines()
    format_name = dict(chunk.extra).get("format", "")
    if lines and format_name and lines[-1].startswith(f"{format_name} image, "):
        lines = lines[:-1]
    return "\n".join(lines).strip()[:MAX_DESCRIPTION_CHARS]


def image_search_notices(app: App, description: str) -> list[str]:
    """What a person should know about a query by image, one line each (empty when both searches ran).

    Says when visual similarity is off and how to turn it on, and when nothing in the image could be
    put into words (then, without visual similarity, there is nothing to search with).
    """
    notices = []
    if not app.vectorizer.visual:
        remedy = app.models.clip.remedy.removeprefix("visual search is off. ") or "see `mmrag models`"
        if remedy[1:2].islower():  # "Put the weights..." reads on after the colon; "MMRAG_CLIP_WEIGHTS ..." stays
            remedy = remedy[0].lower() + remedy[1:]
        notices.append(
            "visual similarity is off (no image-text encoder): the image is matched by its description only "
            f"(text in it, labels, metadata, file name). To turn it on: {remedy}"
        )
    if not description.strip():
        notices.append("nothing in the image could be put into words (no text, labels, metadata or file-name words)")
    return notices


def _visual_filter(flt: SearchFilter) -> SearchFilter | None:
    """The user's filter narrowed to visual chunks, or ``None`` when it allows none of them."""
    allowed = PICTURED & flt.modalities if flt.modalities else PICTURED
    return replace(flt, modalities=allowed) if allowed else None


def search_by_image(
    app: App,
    image: Path,
    k: int = 10,
    filters: Filters | None = None,
    *,
    settings: IngestSettings | None = None,
    description: str | None = None,
    keyword: bool = True,
) -> list[Hit]:
    """Hits for an example image: nearest images/frames/moments fused with hits for its description.

    ``settings`` chooses the describer's OCR engine and pixel limit (``app.models.ingest_settings()``).
    ``description``, when the caller already has it (to show it), must come from ``describe_image`` on
    the same file: describing is also what refuses a missing, broken or oversized image. Each hit's
    ``signals`` holds its score in each search it came from (``visual``: cosine similarity;
    ``description``: the hybrid text search's score); ``score`` is the fused rank score, 1.0 for first
    in every search that ran.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if description is None:
        description = describe_image(image, settings or app.models.ingest_settings())
    flt = resolve_filter(scoped(app.cfg, filters), app.manifest)
    pool = max(CANDIDATES, k)
    lists: dict[str, list[Hit]] = {}
    visual_flt = _visual_filter(flt)
    if app.vectorizer.visual and visual_flt is not None:
        lists["visual"] = app.store.query(app.vectorizer.image_query(image), pool, visual_flt)
    if description.strip():
        lists["description"] = app.searcher().search(description, pool, flt, keyword=keyword)
    return fuse(lists, k, IMAGE_QUERY_WEIGHTS)
