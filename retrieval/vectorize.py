"""Turn chunks and queries into vectors of the index's embedding layout.

A vector has a text part (what the chunk says, from the sentence embedder) and, when an image-text
encoder is available, a visual part: the CLIP embedding of the chunk's image for images, frames and
moments, or of its text for every other chunk, so that one query vector (text part: the query's
sentence embedding; visual part: the query's CLIP text embedding) can be compared with every chunk.
Each part is L2-normalised and scaled by its weight, so a dot product is a weighted sum of the two
cosine similarities. The layout records both models: an index never mixes vectors of other models.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from mmrag.ingest.chunk import Chunk
from mmrag.retrieval.embed import TextEmbedder, Vectors
from mmrag.retrieval.store import EmbeddingLayout

MAX_EMBED_CHARS = 2000
TEXT_WEIGHT = 0.8  # squared weights sum to 1: a chunk matching in both parts scores like a unit vector
VISUAL_WEIGHT = 0.6


class ImageTextEncoder(Protocol):
    """An encoder of images and texts into one space (open_clip's ``ClipEncoder``)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_images(self, images: Sequence[Path]) -> Vectors: ...

    def embed_texts(self, texts: Sequence[str]) -> Vectors: ...


def embedding_text(chunk: Chunk) -> str:
    """What the text encoder sees: the title (if the text does not already start with it) and the text."""
    text = chunk.text[:MAX_EMBED_CHARS]
    if chunk.title and not text.startswith(chunk.title):
        return f"{chunk.title}\n{text}"
    return text


class Vectorizer:
    def __init__(self, text: TextEmbedder, visual: ImageTextEncoder | None = None) -> None:
        self._text = text
        self._visual = visual

    @property
    def layout(self) -> EmbeddingLayout:
        if self._visual is None:
            return EmbeddingLayout(text_model=self._text.name, text_dim=self._text.dim)
        return EmbeddingLayout(
            text_model=self._text.name,
            text_dim=self._text.dim,
            image_model=self._visual.name,
            image_dim=self._visual.dim,
        )

    @property
    def visual(self) -> bool:
        return self._visual is not None

    def chunks(self, chunks: Sequence[Chunk]) -> Vectors:
        text = self._text.embed([embedding_text(c) for c in chunks])
        if self._visual is None:
            return text
        visual = np.zeros((len(chunks), self._visual.dim), dtype=np.float32)
        with_image = [i for i, c in enumerate(chunks) if c.image is not None and c.image.exists()]
        without = [i for i in range(len(chunks)) if i not in set(with_image)]
        if with_image:
            visual[with_image] = self._visual.embed_images([chunks[i].image for i in with_image])  # type: ignore[misc]
        if without:
            visual[without] = self._visual.embed_texts([chunks[i].text[:MAX_EMBED_CHARS] for i in without])
        return np.hstack([TEXT_WEIGHT * text, VISUAL_WEIGHT * visual]).astype(np.float32)

    def texts(self, texts: Sequence[str]) -> Vectors:
        """Embed free texts (sentences of an answer, say) in the text part of the layout only."""
        return self._text.embed(list(texts))

    def query(self, text: str) -> Vectors:
        vector: Vectors = self._text.embed([text])[0]
        if self._visual is None:
            return vector
        visual = self._visual.embed_texts([text])[0]
        return np.concatenate([TEXT_WEIGHT * vector, VISUAL_WEIGHT * visual]).astype(np.float32)

    def image_query(self, image: Path) -> Vectors:
        """A query by example image: only the visual part is set (requires the image-text encoder)."""
        if self._visual is None:
            raise ValueError("query by image needs the image-text encoder (see `mmrag models`)")
        visual = self._visual.embed_images([image])[0]
        return np.concatenate([np.zeros(self._text.dim, dtype=np.float32), visual]).astype(np.float32)
