"""The int8 ONNX text embedder against the same model in sentence-transformers (real weights)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmrag.pipeline.app import Models
from mmrag.pipeline.config import ConfigError, ModelsConfig, load_config
from mmrag.pipeline.models import resolve_text
from mmrag.retrieval.embed import SentenceTransformerEmbedder
from mmrag.retrieval.embed_onnx import OnnxEmbedder, exported_path, unsupported

MODEL_DIR = Path(resolve_text(ModelsConfig()).location)

PASSAGES = [
    "The quarterly revenue grew by 12 percent, driven by subscriptions in Europe.",
    "Employees may carry over at most five days of unused vacation into the next year.",
    "The router's configuration page lists every interface with its VLAN and MTU.",
    "A photo of a red bicycle leaning against a brick wall.",
    "Ask not what your country can do for you; ask what you can do for your country.",
    "Stanley Cup winners by season, with the runner-up and the number of games played. " * 12,  # > 256 tokens
]
QUERIES = ["how much did revenue grow", "vacation carry over rules", "what did the president ask"]


@pytest.fixture(scope="module")
def embedders(tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxEmbedder, SentenceTransformerEmbedder]:
    cache = tmp_path_factory.mktemp("onnx-cache")
    return (
        OnnxEmbedder("minilm", MODEL_DIR, cache=cache),
        SentenceTransformerEmbedder("minilm", str(MODEL_DIR)),
    )


@pytest.mark.slow
def test_int8_vectors_stay_close_to_the_float_model_and_rank_alike(
    embedders: tuple[OnnxEmbedder, SentenceTransformerEmbedder],
) -> None:
    onnx, torch_model = embedders
    a = onnx.embed(PASSAGES + QUERIES)
    b = torch_model.embed(PASSAGES + QUERIES)
    assert a.shape == b.shape == (len(PASSAGES) + len(QUERIES), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() > 0.97, cosines  # int8 weights: about 0.99 on average
    # each query finds the same best passage with both runtimes
    qa, qb = a[len(PASSAGES) :], b[len(PASSAGES) :]
    assert list(np.argmax(qa @ a[: len(PASSAGES)].T, axis=1)) == list(np.argmax(qb @ b[: len(PASSAGES)].T, axis=1))
    assert list(np.argmax(qa @ a[: len(PASSAGES)].T, axis=1)) == [0, 1, 4]
    # batching and order do not change a text's vector
    single = onnx.embed([PASSAGES[3]])[0]
    np.testing.assert_allclose(single, a[3], atol=1e-5)
    assert onnx.name == "minilm+onnx-int8" and onnx.dim == 384


@pytest.mark.slow
def test_export_is_cached_and_queries_do_not_import_torch(
    embedders: tuple[OnnxEmbedder, SentenceTransformerEmbedder], tmp_path: Path
) -> None:
    onnx, _ = embedders
    onnx.embed(["warm"])
    path = exported_path(MODEL_DIR, onnx._cache)
    assert path.is_file() and path.stat().st_size < 40_000_000  # int8: about a quarter of the float weights
    code = (
        "import sys, pathlib\n"
        "from mmrag.retrieval.embed_onnx import OnnxEmbedder\n"
        f"e = OnnxEmbedder('m', pathlib.Path({str(MODEL_DIR)!r}), cache=pathlib.Path({str(onnx._cache)!r}))\n"
        "v = e.embed(['hello world'])\n"
        "print(v.shape[1], 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["384", "False", "False"], out.stderr
    assert "preparing" not in out.stderr  # reused, not exported again


def test_unsupported_layouts_are_named(tmp_path: Path) -> None:
    assert unsupported(tmp_path / "nope") is not None
    copy = tmp_path / "model"
    shutil.copytree(MODEL_DIR, copy, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    assert unsupported(copy) == "no model.safetensors or pytorch_model.bin"
    (copy / "model.safetensors").write_bytes(b"")
    assert unsupported(copy) is None
    pooling = copy / "1_Pooling" / "config.json"
    data = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**data, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert unsupported(copy) == "pooling is not plain mean pooling"


def test_runtime_setting_chooses_the_embedder(tmp_path: Path) -> None:
    cfg = load_config(env={"MMRAG_INDEX": str(tmp_path)})
    assert cfg.models.text_runtime == "onnx-int8"
    assert isinstance(Models(cfg).text(), OnnxEmbedder)
    torch_cfg = load_config(env={"MMRAG_INDEX": str(tmp_path), "MMRAG_TEXT_RUNTIME": "torch"})
    chosen = Models(torch_cfg).text()
    assert isinstance(chosen, SentenceTransformerEmbedder)
    assert chosen.name != Models(cfg).text().name  # the index layout records the runtime
    with pytest.raises(ConfigError, match="text_runtime"):  # refused when the config loads, not on first use
        load_config(env={"MMRAG_INDEX": str(tmp_path), "MMRAG_TEXT_RUNTIME": "gpu"})
