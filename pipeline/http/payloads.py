"""The API's JSON: hits and citations with the URLs of their previews and files, filters from query parameters."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

from mmrag.ingest.chunk import Modality
from mmrag.pipeline.answer.types import Citation
from mmrag.pipeline.app import App
from mmrag.pipeline.http.files import IMAGE_SUFFIXES, media_name
from mmrag.pipeline.http.links import Signer
from mmrag.retrieval.store import Hit


def preview_url(index: App, hit: Hit) -> str:
    """The preview of a hit: its stored picture when it has one, else what its locator says to show."""
    params: dict[str, str] = {"root": hit.root, "source": hit.chunk.source}
    image = media_name(index, hit)
    if image:
        params["image"] = image
    else:
        shown = hit.chunk.locator.preview_params()
        if not shown and hit.chunk.modality is not Modality.IMAGE:
            return ""
        params |= shown
    return "/api/preview?" + urlencode(params)


def file_url(hit: Hit) -> str:
    return "/api/file?" + urlencode({"root": hit.root, "source": hit.chunk.source})


def _unsigned(url: str) -> str:
    return url


def hit_json(index: App, hit: Hit, sign: Signer = _unsigned) -> dict[str, object]:
    """A hit as ``Hit.to_json`` plus its root and the URLs of its preview and original file.

    ``sign`` adds a signature to those URLs when the server has an API token (``http.links``).
    """
    return {**hit.to_json(), "root": hit.root, "preview": sign(preview_url(index, hit)), "file": sign(file_url(hit))}


def citation_json(index: App, citation: Citation, sign: Signer = _unsigned) -> dict[str, object]:
    out = citation.to_json()
    out.pop("thumbnail", None)  # a server-side path; the preview URL replaces it
    return {
        **out,
        "root": citation.hit.root,
        "preview": sign(preview_url(index, citation.hit)),
        "file": sign(file_url(citation.hit)),
    }


def upload_name(filename: str) -> str:
    """A safe local name for an upload that keeps its words (the describer reads file-name words)."""
    name = Path(filename.replace("\\", "/")).name
    stem = re.sub(r"[^\w-]+", "-", Path(name).stem).strip("-")[:100] or "query"
    suffix = Path(name).suffix.lower()
    return stem + (suffix if suffix in IMAGE_SUFFIXES else ".img")


def sse_event(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
