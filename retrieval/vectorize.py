"""Turn chunks and queries into vectors of the index's embedding layout.

Today a vector is the text embedding of what a chunk says. The layout records which models built
it, so that a second part (an image-text embedding for images and frames) can be added as a new
layout without mixing incompatible vectors in one collection.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.ingest.chunk import Chunk
from mmrag.retrieval.embed import TextEmbedder, Vectors
from mmrag.retrieval.store import EmbeddingLayout

MAX_EMBED_CHARS = 2000


def embedding_text(chunk: Chunk) -> str:
    """What the text encoder sees: the title (if the text does not already start with it) and the text."""
    text = chunk.text[:MAX_EMBED_CHARS]
    if chunk.title and not text.startswith(chunk.title):
        return f"{chunk.title}\n{text}"
    return text


class Vectorizer:
    def __init__(self, text: TextEmbedder) -> None:
        self._text = text

    @property
    def layout(self) -> EmbeddingLayout:
        return EmbeddingLayout(text_model=self._text.name, text_dim=self._text.dim)

    def chunks(self, chunks: Sequence[Chunk]) -> Vectors:
        return self._text.embed([embedding_text(c) for c in chunks])

    def texts(self, texts: Sequence[str]) -> Vectors:
        """Embed free texts (sentences of an answer, say) in the text part of the layout."""
        return self._text.embed(list(texts))

    def query(self, text: str) -> Vectors:
        vector: Vectors = self._text.embed([text])[0]
        return vector
