"""How a chunk is written down in a store: a stable record id and flat scalar metadata.

Shared by every store that keeps chunks (Chroma, the keyword index), so they agree on ids and on how
typed locators are flattened and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mmrag.ingest.chunk import Chunk, Modality, locator_from_json
from mmrag.retrieval.store import FileInfo


def root_key(root: str) -> str:
    return hashlib.sha1(root.encode("utf-8")).hexdigest()[:10]


def record_id(root: str, chunk: Chunk) -> str:
    """The stored id: the chunk's own id qualified by its root, so two roots never collide."""
    return f"{root_key(root)}:{chunk.id}"


PRINCIPALS = "principals"
NOBODY = "NOBODY"  # the principal no one holds: a store cannot keep an empty array, and a filter with no
# principal must still be a filter (that matches nothing)
MetaValue = str | int | float | bool | list[str]

MEDIA_PREFIX = "media:"  # an image path stored relative to the index's media folder


def stored_image(image: Path, media_dir: Path | None) -> str:
    """How an image path is written down: relative to ``media_dir`` when inside it, so an index folder
    can be moved, copied or mounted elsewhere and its thumbnails and frames still resolve."""
    if media_dir is not None:
        try:
            return MEDIA_PREFIX + Path(image).resolve().relative_to(media_dir.resolve()).as_posix()
        except ValueError:
            pass
    return str(image)


def image_from_record(value: str, media_dir: Path | None) -> Path | None:
    """The image path back from ``stored_image`` (absolute paths of older indexes are taken as they are)."""
    if not value:
        return None
    if value.startswith(MEDIA_PREFIX):
        relative = value[len(MEDIA_PREFIX) :]
        return (media_dir / relative) if media_dir is not None else Path(relative)
    return Path(value)


def chunk_metadata(chunk: Chunk, info: FileInfo, media_dir: Path | None = None) -> dict[str, MetaValue]:
    """A chunk's flat metadata; ``principals`` is a string array (Chroma filters it with ``$contains``)."""
    meta: dict[str, MetaValue] = {
        "source": chunk.source,
        "root": info.root,
        "modality": chunk.modality.value,
        "kind": info.kind,
        "modified": info.modified,
        "part": chunk.part,
        "title": chunk.title,
        "locator": json.dumps(chunk.locator.to_json(), sort_keys=True),
    }
    loc = chunk.locator.to_json()
    for key in ("page", "slide", "sheet"):
        if key in loc:
            meta[f"loc_{key}"] = loc[key]  # type: ignore[assignment]
    if "start" in loc:
        meta["loc_start"] = float(loc["start"])  # type: ignore[arg-type]
        meta["loc_end"] = float(loc["end"])  # type: ignore[arg-type]
    if chunk.image is not None:
        meta["image"] = stored_image(chunk.image, media_dir)
    if info.principals:
        meta[PRINCIPALS] = sorted(set(info.principals))
    for key, value in chunk.extra:
        meta[f"x_{key}"] = value
    return meta


def chunk_from_record(document: str, meta: dict[str, Any], media_dir: Path | None = None) -> Chunk:
    extra = tuple(sorted((k[2:], str(v)) for k, v in meta.items() if k.startswith("x_")))
    return Chunk(
        source=str(meta["source"]),
        modality=Modality(str(meta["modality"])),
        locator=locator_from_json(json.loads(str(meta["locator"]))),
        text=document,
        part=int(meta.get("part", 0)),
        title=str(meta.get("title", "")),
        image=image_from_record(str(meta.get("image") or ""), media_dir),
        extra=extra,
    )
