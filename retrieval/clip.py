"""The image-text encoder: open_clip, for finding pictures and video frames by what they show.

Images and texts map into one space, so a query ("red car in the rain") is compared with images
directly. Weights come from a local file (the usual case offline: ``open_clip_model.safetensors``
or a ``torch.save``d state dict) or an open_clip pretrained tag, which is downloaded only when
downloads are allowed; with ``HF_HUB_OFFLINE=1`` a tag is taken from the Hugging Face cache or
refused with a message that says how to provide the file. ``weights=None`` builds a randomly
initialised model: real code paths for tests, meaningless embeddings.

Importing this module imports neither torch nor open_clip; the model loads on first use, once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
RANDOM_INIT = "random-init"
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class ClipUnavailable(RuntimeError):
    """The image-text model cannot be loaded here; the message says how to provide its weights."""


@dataclass(frozen=True, slots=True)
class _Loaded:
    model: Any
    preprocess: Callable[[Any], Any]
    tokenizer: Callable[[list[str]], Any]
    dim: int


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _looks_like_path(weights: str | Path) -> bool:
    text = str(weights)
    return isinstance(weights, Path) or os.sep in text or "/" in text or text.lower().endswith(_WEIGHT_SUFFIXES)


def _cached_tag_file(open_clip: Any, model_name: str, tag: str) -> str | None:
    """The weights for a pretrained tag if they are already in the Hugging Face cache (no network)."""
    hub = str(open_clip.get_pretrained_cfg(model_name, tag).get("hf_hub", ""))
    if not hub:
        return None
    from huggingface_hub import try_to_load_from_cache

    # open_clip writes "org/repo/" for the default file name, "org/repo/file.bin" for another one
    repo_id, filename = (hub.rstrip("/"), "") if hub.endswith("/") else os.path.split(hub)
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    cache_dir = os.environ.get("HF_HUB_CACHE") or str(hf_home / "hub")
    for name in (filename,) if filename else _HUB_FILES:
        found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


class ClipEncoder:
    """An open_clip model as an image encoder and a text encoder into the same L2-normalised space.

    ``weights`` is a local weights file, an open_clip pretrained tag (e.g. ``"laion2b_s34b_b79k"``),
    or ``None`` for random initialisation (tests only). OpenAI's original weights need the
    ``-quickgelu`` variant of the model name. ``threads`` sets torch's CPU threads when the model
    loads; ``None`` leaves torch's process-wide setting alone. Safe to share between threads.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        weights: str | Path | None = None,
        device: str = "cpu",
        *,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        if weights is not None and not str(weights).strip():
            raise ValueError("weights is empty: pass a weights file, a pretrained tag, or None for random init")
        self._model_name = model_name
        self._weights = weights
        self._device = device
        self._batch_size = max(1, batch_size)
        self._threads = threads
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @classmethod
    def random_init_for_tests(cls, model_name: str = "ViT-B-32", **kwargs: Any) -> ClipEncoder:
        """A randomly initialised model: real shapes and code paths, no meaning. Never for a real index."""
        return cls(model_name, None, **kwargs)

    @property
    def name(self) -> str:
        """Identifies model and weights (stored with the index, so a change of model is noticed)."""
        if self._weights is None:
            return f"open_clip/{self._model_name}/{RANDOM_INIT}"
        if not _looks_like_path(self._weights):
            return f"open_clip/{self._model_name}/{self._weights}"
        path = Path(self._weights)
        # a Hugging Face cache path names its repo in a parent folder; the file name alone is generic
        repo = next((p.removeprefix("models--") for p in path.parts if p.startswith("models--")), "")
        return f"open_clip/{self._model_name}/{repo + '/' if repo else ''}{path.name}"

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def dim(self) -> int:
        """The embedding dimension (512 for ViT-B-32), as the loaded model reports it."""
        return self._load().dim

    def _pretrained(self, open_clip: Any) -> str | None:
        weights = self._weights
        if weights is None:
            return None
        if _looks_like_path(weights):
            path = Path(weights).expanduser()
            if not path.is_file():
                raise ClipUnavailable(
                    f"CLIP weights file {path} does not exist (set MMRAG_CLIP_WEIGHTS / [models] clip_path "
                    f"to an open_clip {self._model_name} weights file)"
                )
            return str(path)
        tag = str(weights)
        if not open_clip.get_pretrained_cfg(self._model_name, tag):
            known = ", ".join(open_clip.list_pretrained_tags_by_model(self._model_name)) or "none"
            raise ClipUnavailable(f"unknown pretrained tag {tag!r} for {self._model_name} (known: {known})")
        if _offline():
            cached = _cached_tag_file(open_clip, self._model_name, tag)
            if cached:
                return cached
            raise ClipUnavailable(
                f"open_clip {self._model_name} weights {tag!r} are not on this machine and downloads are off "
                "(HF_HUB_OFFLINE=1): copy the weights file (open_clip_model.safetensors) here and set "
                "MMRAG_CLIP_WEIGHTS=/path/to/file, or run once online"
            )
        return tag

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._build()
            return self._loaded

    def _build(self) -> _Loaded:
        import open_clip
        import torch

        if self._threads is not None:
            torch.set_num_threads(self._threads)
        pretrained = self._pretrained(open_clip)
        if pretrained is None:
            log.warning("open_clip %s with random weights: embeddings are meaningless (tests only)", self._model_name)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self._model_name, pretrained=pretrained, device=self._device
            )
            tokenizer = open_clip.get_tokenizer(self._model_name)
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            raise ClipUnavailable(f"open_clip {self._model_name} could not be loaded from {pretrained}: {e}") from e
        model.eval()
        dim = int(getattr(getattr(model, "visual", None), "output_dim", 0) or 0)
        if not dim:
            dim = int(open_clip.get_model_config(self._model_name)["embed_dim"])
        return _Loaded(model, preprocess, tokenizer, dim)

    def save_weights(self, path: Path) -> Path:
        """Write the model's state dict to ``path`` (``torch.save``); ``ClipEncoder(model_name, path)`` reloads it."""
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self._load().model.state_dict(), path)
        return path

    def embed_images(self, images: Sequence[Image.Image | Path]) -> Vectors:
        """One L2-normalised float32 row per image (a PIL image, or a path to an image file)."""
        loaded = self._load()
        if not images:
            return np.zeros((0, loaded.dim), dtype=np.float32)
        import torch

        rows = []
        for start in range(0, len(images), self._batch_size):
            batch = [loaded.preprocess(_rgb(item)) for item in images[start : start + self._batch_size]]
            with torch.inference_mode():
                features = loaded.model.encode_image(torch.stack(batch).to(self._device))
            rows.append(features.float().cpu().numpy())
        return _normalise(np.concatenate(rows))

    def embed_texts(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised float32 row per text; texts longer than the model's 77 tokens are cut."""
        loaded = self._load()
        if not texts:
            return np.zeros((0, loaded.dim), dtype=np.float32)
        import torch

        rows = []
        for start in range(0, len(texts), self._batch_size):
            tokens = loaded.tokenizer([str(t) for t in texts[start : start + self._batch_size]])
            with torch.inference_mode():
                features = loaded.model.encode_text(tokens.to(self._device))
            rows.append(features.float().cpu().numpy())
        return _normalise(np.concatenate(rows))


def _rgb(item: Image.Image | Path) -> Image.Image:
    from PIL import Image, ImageOps

    if isinstance(item, (str, Path)):
        with Image.open(item) as opened:
            item = ImageOps.exif_transpose(opened)
    if item.mode in ("RGBA", "LA", "PA") or (item.mode == "P" and "transparency" in item.info):
        rgba = item.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return item.convert("RGB")


def _normalise(matrix: npt.NDArray[Any]) -> Vectors:
    out = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    normalised: Vectors = (out / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return normalised
