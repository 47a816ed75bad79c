"""Float .tflite frontend: read, fold fp16 weights, and refuse models that are already quantized."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from edgeq.errors import AlreadyQuantizedError
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.ir.graph import Graph
from edgeq.ir.tflite_reader import read_tflite
from edgeq.ir.tflite_schema import INTEGER_ACTIVATION_DTYPES
from edgeq.quant.op_rules import RULES


@dataclass
class FloatModel:
    """A float model ready to quantize: its graph (fp16 weights folded) and the bytes LiteRT runs."""

    graph: Graph
    tflite: bytes  # the normalised float model, as edgeq writes it
    name: str = "model"
    host_tflite: bytes = b""  # what LiteRT runs on the host: custom ops replaced by builtin stand-ins

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tflite).hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        from pathlib import Path

        from edgeq.export.atomic import write_atomic

        write_atomic(Path(path), self.tflite)


def load(source: str | os.PathLike | bytes, name: str | None = None) -> FloatModel:
    """Read a float .tflite (path or bytes) and normalise it for quantization."""
    graph = read_tflite(source)
    where = "<bytes>" if isinstance(source, bytes | bytearray) else os.fspath(source)
    return from_graph(graph, name or _stem(where), where)


def from_graph(graph: Graph, name: str, where: str = "<graph>") -> FloatModel:
    graph = graph.copy()
    _reject_quantized(graph, where)
    fold_constant_dequantize(graph)
    graph.drop_unused_tensors()
    split_shared_parameters(graph)
    _make_names_unique(graph)
    data = write_tflite(graph)
    host = host_graph(graph)
    return FloatModel(graph=graph, tflite=data, name=name, host_tflite=data if host is None else write_tflite(host))


def _stem(where: str) -> str:
    base = os.path.basename(where)
    return base[: -len(".tflite")] if base.endswith(".tflite") else (base or "model")


def _reject_quantized(graph: Graph, where: str) -> None:
    for i, op in enumerate(graph.ops):
        if op.kind == "QUANTIZE":
            raise AlreadyQuantizedError(
                f"{where}: {graph.where(i)} quantizes activations: the model is already quantized; "
                f"edgeq needs the float model it came from"
            )
    for t in graph.activations():
        tensor = graph.tensors[t]
        if tensor.dtype in INTEGER_ACTIVATION_DTYPES and tensor.quant is not None:
            raise AlreadyQuantizedError(
                f'{where}: tensor {t} "{tensor.name}" is {tensor.dtype} with scale {tensor.quant.scale[:1]}: '
                f"the model is already quantized; edgeq needs the float model it came from"
            )
    for i, op in enumerate(graph.ops):
        if op.kind == "DEQUANTIZE":
            continue
        for t in op.inputs:
            tensor = graph.tensors[t] if t >= 0 else None
            hybrid = tensor is not None and tensor.is_constant and tensor.quant is not None
            if hybrid and tensor.dtype != "float32":
                raise AlreadyQuantizedError(
                    f'{where}: {graph.where(i)} reads {tensor.dtype} weights "{tensor.name}" directly: the '
                    f"model is already (hybrid) quantized; edgeq needs the float model it came from"
                )


def fold_constant_dequantize(graph: Graph) -> int:
    """Replace DEQUANTIZE(constant fp16 or int8) by the float32 constant it computes; returns how many.

    MediaPipe and TFLiteConverter's float16 mode store weights as fp16 behind DEQUANTIZE ops, which
    calibration and weight quantization both need as plain float32 constants.
    """
    keep = []
    folded = 0
    for op in graph.ops:
        src = graph.tensors[op.inputs[0]] if op.kind == "DEQUANTIZE" and op.inputs else None
        if src is None or not src.is_constant:
            keep.append(op)
            continue
        dst = graph.tensors[op.outputs[0]]
        data = np.asarray(src.data)
        values = src.quant.dequantize(data) if src.quant is not None and src.dtype != "float16" else data
        dst.data = np.asarray(values, dtype=np.float32).reshape(dst.shape)
        dst.dtype = "float32"
        folded += 1
    graph.ops = keep
    return folded


def split_shared_parameters(graph: Graph) -> int:
    """Give every weight and bias slot its own constant tensor; returns how many copies were made.

    Converters share identical constants between ops (MediaPipe's hand landmark model feeds one bias
    tensor to two FULLY_CONNECTED ops). A bias is encoded with its op's input x weight scales, so a
    shared one would be right for only one of them.
    """
    seen: set[int] = set()
    copies = 0
    for op in graph.ops:
        rule = RULES.get(op.kind)
        if rule is None:
            continue
        slots = [pos for pos, _ in rule.weights] + ([rule.bias] if rule.bias is not None else [])
        for pos in slots:
            t = op.inputs[pos] if pos < len(op.inputs) else -1
            if t < 0 or not graph.tensors[t].is_constant:
                continue
            if t in seen:
                src = graph.tensors[t]
                copies += 1
                op.inputs[pos] = graph.add_tensor(
                    dataclasses.replace(src, name=f"{src.name}/copy{copies}", data=src.data.copy())
                )
            seen.add(t)
    return copies


def _make_names_unique(graph: Graph) -> None:
    """Plans are keyed by tensor name, so every tensor gets a distinct one."""
    seen: dict[str, int] = {}
    for t in graph.tensors:
        if t.name in seen:
            seen[t.name] += 1
            t.name = f"{t.name}#{seen[t.name]}"
        else:
            seen[t.name] = 0
