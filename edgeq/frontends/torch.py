"""PyTorch frontend: litert-torch exports the float graph; edgeq quantizes it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgeq.errors import FrontendError
from edgeq.frontends.tflite import FloatModel, load


def from_torch(module, sample_inputs, name: str | None = None) -> FloatModel:
    """Export `module` (eval mode) traced with `sample_inputs` (a tensor or a tuple of tensors)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import litert_torch
    import torch

    args = sample_inputs if isinstance(sample_inputs, tuple) else (sample_inputs,)
    try:
        module = module.eval()
        with torch.no_grad():
            edge = litert_torch.convert(module, args)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.tflite"
            edge.export(str(path))
            data = path.read_bytes()
    except Exception as e:  # torch.export and the lowering raise many types
        raise FrontendError(f"litert-torch could not convert {type(module).__name__}: {e}") from e
    return load(data, name=name or type(module).__name__)
