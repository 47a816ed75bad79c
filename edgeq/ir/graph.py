"""edgeq's graph IR: tensors and operators of one subgraph, independent of any file format."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Quantization:
    """Affine encoding of a tensor as the file stores it: real = scale * (q - zero_point)."""

    scale: np.ndarray  # float32, one entry per channel (length 1 when per-tensor)
    zero_point: np.ndarray  # int64, same length as scale
    axis: int = 0  # quantized_dimension; meaningful only when len(scale) > 1
    block_size: int = 0  # > 0: per-block along the last axis (blockwise INT4)

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """The real values of stored integers `q` (per tensor or per channel along `axis`), in float64."""
        scale, zero = self.scale.astype(np.float64), self.zero_point.astype(np.float64)
        if scale.size > 1:
            shape = [1] * q.ndim
            shape[self.axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return (np.asarray(q).astype(np.float64) - zero) * scale


@dataclass
class Tensor:
    """A value in the graph. `data` is set for constants (weights, biases, shapes)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32, float16, int8, int16, int32, int64, uint8, bool, int4
    data: np.ndarray | None = None
    quant: Quantization | None = None
    shape_signature: tuple[int, ...] | None = None  # -1 marks a dynamic dimension

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    """An operator. Missing optional inputs are -1, as in TFLite."""

    kind: str  # builtin operator name, e.g. "CONV_2D", or "CUSTOM"
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)  # the builtin options' fields, by schema name
    options_type: str = ""  # schema name of the options table, e.g. "Conv2DOptions"
    custom_code: str = ""
    custom_options: bytes = b""
    version: int = 1

    @property
    def fused_activation(self) -> str:
        return _ACTIVATION_NAMES.get(self.options.get("fusedActivationFunction", 0), "NONE")


_ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


@dataclass
class Graph:
    """One subgraph with its tensors, operators in execution order, inputs and outputs."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    name: str = ""
    description: str = ""
    signature_key: str = ""  # the signature's name when the model has one
    signature_inputs: dict[str, int] = field(default_factory=dict)  # signature name -> tensor index
    signature_outputs: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, bytes] = field(default_factory=dict)  # model metadata by name (e.g. TFLITE_METADATA)

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def producers(self) -> dict[int, int]:
        """Tensor index -> index of the op that writes it."""
        return {t: i for i, op in enumerate(self.ops) for t in op.outputs}

    def consumers(self) -> dict[int, list[int]]:
        """Tensor index -> indices of the ops that read it."""
        out: dict[int, list[int]] = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(i)
        return out

    def activations(self) -> Iterator[int]:
        """Indices of non-constant tensors (graph inputs and op outputs)."""
        seen: set[int] = set()
        for t in self.inputs:
            seen.add(t)
            yield t
        for op in self.ops:
            for t in op.outputs:
                if t not in seen:
                    seen.add(t)
                    yield t

    def where(self, op_index: int) -> str:
        """A human locator for messages: 'op 12 (CONV_2D -> "conv1/Relu")'."""
        op = self.ops[op_index]
        out = self.tensors[op.outputs[0]].name if op.outputs else "?"
        return f'op {op_index} ({op.kind} -> "{out}")'

    def copy(self) -> Graph:
        """A deep copy whose constants are new arrays: transformations never touch the original."""
        tensors = [
            dataclasses.replace(t, data=None if t.data is None else t.data.copy(), quant=t.quant) for t in self.tensors
        ]
        ops = [
            dataclasses.replace(o, inputs=list(o.inputs), outputs=list(o.outputs), options=dict(o.options))
            for o in self.ops
        ]
        return dataclasses.replace(
            self,
            tensors=tensors,
            ops=ops,
            inputs=list(self.inputs),
            outputs=list(self.outputs),
            signature_inputs=dict(self.signature_inputs),
            signature_outputs=dict(self.signature_outputs),
            metadata=dict(self.metadata),
        )

    def drop_unused_tensors(self) -> int:
        """Remove tensors no op, input or output refers to (e.g. fp16 weights left by folding), keeping
        the order of the rest; returns how many were dropped."""
        used = set(self.inputs) | set(self.outputs)
        used |= {t for op in self.ops for t in (*op.inputs, *op.outputs) if t >= 0}
        used |= set(self.signature_inputs.values()) | set(self.signature_outputs.values())
        keep = [i for i in range(len(self.tensors)) if i in used]
        if len(keep) == len(self.tensors):
            return 0
        new_index = {old: new for new, old in enumerate(keep)}

        def remap(ts: list[int]) -> list[int]:
            return [new_index[t] if t >= 0 else t for t in ts]

        dropped = len(self.tensors) - len(keep)
        self.tensors = [self.tensors[i] for i in keep]
        for op in self.ops:
            op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        self.inputs, self.outputs = remap(self.inputs), remap(self.outputs)
        self.signature_inputs = {k: new_index[v] for k, v in self.signature_inputs.items()}
        self.signature_outputs = {k: new_index[v] for k, v in self.signature_outputs.items()}
        return dropped

    def add_tensor(self, tensor: Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1
