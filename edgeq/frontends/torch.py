"""PyTorch frontend: litert-torch exports the float graph; edgeq quantizes it."""

from __future__ import annotations

import inspect
import os
import tempfile
from pathlib import Path

from edgeq.errors import FrontendError
from edgeq.frontends.tflite import FloatModel, from_graph
from edgeq.ir.graph import Graph
from edgeq.ir.tflite_reader import read_tflite


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
    graph = read_tflite(data)
    _name_inputs(graph, _parameter_names(module, len(args)))
    return from_graph(graph, name or type(module).__name__)


def _parameter_names(module, count: int) -> list[str]:
    """The names of forward()'s first `count` positional parameters, or [] when it has fewer (*args)."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    try:
        params = [p.name for p in inspect.signature(module.forward).parameters.values() if p.kind in kinds]
    except (TypeError, ValueError):
        return []
    return params[:count] if len(params) >= count else []


def _name_inputs(graph: Graph, names: list[str]) -> None:
    """Inputs named after forward()'s parameters (input_ids, attention_mask) instead of litert-torch's
    args_0, args_1: what Core ML packages, apps and padding_mask="auto" see."""
    keys = [f"args_{i}" for i in range(len(names))]
    if not names or len(graph.inputs) != len(names) or [graph.signature_inputs.get(k) for k in keys] != graph.inputs:
        return
    taken = {t.name for t in graph.tensors}
    if any(n in taken for n in names):
        return
    for t, n in zip(graph.inputs, names, strict=True):
        graph.tensors[t].name = n
    graph.signature_inputs = dict(zip(names, graph.inputs, strict=True))
