"""Turn a local sentence-transformers (BERT-style) folder into an int8 ONNX encoder file.

This runs once per model and machine, from local weights only (nothing is downloaded), and needs
torch, transformers and onnx; afterwards encoding needs only onnxruntime, tokenizers and numpy.
Weights are quantised to int8 per output channel (onnxruntime's dynamic quantisation), which keeps
embeddings within about 0.99 cosine of the float model and makes them 2-3x faster to compute on a CPU.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17


def _sensitive_nodes(model: Path) -> list[str]:
    """The feed-forward output projections stay float: quantising them costs the most accuracy.

    Measured on MiniLM-L6: every matrix in int8 gives vectors at 0.992 mean cosine to the float
    model's, these six kept in float 0.997 (a third of the error), for about 1.5x the int8 time.
    """
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    return [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
    ]


def export_int8(model_dir: Path, target: Path) -> None:
    """Write the int8 ONNX transformer of ``model_dir`` (its token states, before pooling) to ``target``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter warnings about BERT's Python control flow
        _export(model_dir, target)


def _export(model_dir: Path, target: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    base = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    class TokenStates(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state  # type: ignore[no-any-return]

    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "token_states")}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        plain = Path(scratch) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                TokenStates(base),
                (sample, sample, torch.zeros_like(sample)),
                str(plain),
                input_names=list(INPUTS),
                output_names=["token_states"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        quantised = Path(scratch) / "model-int8.onnx"
        quantize_dynamic(
            str(plain),
            str(quantised),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=_sensitive_nodes(plain),
        )
        os.replace(quantised, target)  # atomic: a parallel worker sees the whole file or none
