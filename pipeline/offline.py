"""Keep every library quiet and local: no telemetry, no hub downloads unless the config allows them.

Called once at every entry point (CLI and Python API) before any heavy library is imported, because
several of them read these variables at import time.
"""

from __future__ import annotations

import os

ALWAYS = {
    "DO_NOT_TRACK": "true",  # unstructured (and others honouring the convention)
    "SCARF_NO_ANALYTICS": "true",
    "ANONYMIZED_TELEMETRY": "False",  # chromadb
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    # onnxruntime (RapidOCR, ONNX embedders) sends 1DS telemetry on Linux too, a few seconds after its first
    # session; it reads this when imported, so it must be set before (disable_telemetry_events() does not stop it)
    "ORT_DISABLE_TELEMETRY": "1",
}

WHEN_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def apply_offline_env(allow_downloads: bool = False) -> None:
    """Set the environment so that nothing phones home and, unless allowed, nothing downloads."""
    for key, value in ALWAYS.items():
        os.environ[key] = value
    for key, value in WHEN_OFFLINE.items():
        if allow_downloads:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
