"""The open_clip encoder with a random-init ViT-B-32: wiring, shapes, storage and ranking mechanics.

No CLIP weights exist offline, so visual quality is not tested here; what a user would notice is:
vectors of the right size and norm, a weights file that reloads to the same vectors, long texts
that do not crash, an image found as its own nearest neighbour, and clear refusals to download.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mmrag.retrieval.clip import ClipEncoder, ClipUnavailable


def picture(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, 100, 2))
        draw.rectangle((x, y, x + 40, y + 30), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


@pytest.fixture(scope="module")
def encoder() -> Iterator[ClipEncoder]:
    """One random-init ViT-B-32 for the whole module (building it takes seconds)."""
    clip = ClipEncoder.random_init_for_tests("ViT-B-32")
    _ = clip.dim
    yield clip


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, mmrag.retrieval.clip; print('torch' in sys.modules, 'open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_random_init_is_named_as_such_and_has_vit_b_32_dimension(encoder: ClipEncoder) -> None:
    assert encoder.name == "open_clip/ViT-B-32/random-init"
    assert encoder.dim == 512


def test_image_and_text_embeddings_are_normalised_float32(encoder: ClipEncoder, tmp_path: Path) -> None:
    on_disk = tmp_path / "b.png"
    picture(2).save(on_disk)
    transparent = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    images = encoder.embed_images([picture(1), on_disk, transparent])
    texts = encoder.embed_texts(["a red square", "", "quarterly revenue chart"])
    for vectors in (images, texts):
        assert vectors.shape == (3, 512) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert encoder.embed_images([]).shape == (0, 512)
    assert encoder.embed_texts([]).shape == (0, 512)


def test_texts_longer_than_77_tokens_are_cut_not_fatal(encoder: ClipEncoder) -> None:
    long_text = " ".join(f"word{i}" for i in range(500))
    vectors = encoder.embed_texts([long_text, long_text[:200]])
    assert vectors.shape == (2, 512) and np.isfinite(vectors).all()


def test_an_image_is_its_own_nearest_neighbour(encoder: ClipEncoder, tmp_path: Path) -> None:
    a, b, c = picture(10), picture(11), Image.new("RGB", (160, 120), "navy")
    index = encoder.embed_images([a, b, c])
    a_path = tmp_path / "a.png"
    a.save(a_path)  # lossless: the same pixels come back from disk
    query = encoder.embed_images([a_path])[0]
    scores = index @ query
    assert int(np.argmax(scores)) == 0
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[1] < scores[0] and scores[2] < scores[0]


@pytest.fixture(scope="module")
def tiny_model_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A two-layer open_clip architecture: the save/reload round trip of ViT-B-32 moves 600 MB."""
    import json

    import open_clip

    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
    path = tmp_path_factory.mktemp("clip-config") / "mmrag-tiny-test.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return "mmrag-tiny-test"


def test_saved_state_dict_reloads_from_its_path_with_identical_embeddings(tiny_model_name: str, tmp_path: Path) -> None:
    original = ClipEncoder.random_init_for_tests(tiny_model_name)
    weights = original.save_weights(tmp_path / "clip-tiny.pt")
    reloaded = ClipEncoder(tiny_model_name, weights=weights)
    assert reloaded.name == f"open_clip/{tiny_model_name}/clip-tiny.pt" and reloaded.dim == 32
    image, text = picture(5), ["a photo of a cat"]
    np.testing.assert_array_equal(reloaded.embed_images([image]), original.embed_images([image]))
    np.testing.assert_array_equal(reloaded.embed_texts(text), original.embed_texts(text))
    fresh = ClipEncoder.random_init_for_tests(tiny_model_name)  # a different random init: the file mattered
    assert not np.allclose(fresh.embed_texts(text), original.embed_texts(text))


def test_missing_weights_file_is_refused_clearly(tmp_path: Path) -> None:
    clip = ClipEncoder("ViT-B-32", weights=tmp_path / "nowhere" / "open_clip_model.safetensors")
    with pytest.raises(ClipUnavailable, match=r"CLIP weights file .*nowhere.* does not exist"):
        _ = clip.dim
    with pytest.raises(ValueError, match="weights is empty"):
        ClipEncoder("ViT-B-32", weights="")


def test_pretrained_tag_is_not_downloaded_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: list[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    clip = ClipEncoder("ViT-B-32", weights="laion2b_s34b_b79k")
    with pytest.raises(ClipUnavailable, match=r"not on this machine and downloads are off \(HF_HUB_OFFLINE=1\)"):
        clip.embed_texts(["anything"])
    with pytest.raises(ClipUnavailable, match="unknown pretrained tag 'no-such-tag'"):
        ClipEncoder("ViT-B-32", weights="no-such-tag").embed_texts(["anything"])
