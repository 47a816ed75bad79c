"""Padding positions of sequence models: activation rows that calibration statistics should not count.

A transformer fed padded token sequences computes every position, but a padding position (attention mask 0)
reaches the output through nothing: attention masks it out as a key, pooling leaves it out. Its rows are still
in every [S, F] tensor, so activation ranges, GPTQ Hessians and bias-correction means taken over all rows
describe inputs that do not matter (at 64 tokens, 75% of MiniLM's rows on short sentences are [PAD]). The
padding mask names the model input that marks real positions (non-zero) and padding (zero); statistics then
keep only the real rows of tensors laid out position by position, [S, F] or [1, S, F].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.errors import PlanError
from edgeq.ir.graph import Graph

# The input `padding_mask="auto"` takes: the name Hugging Face tokenizers and models give the mask.
AUTO_NAME = "attention_mask"
_MASK_DTYPES = ("int32", "int64", "int8", "uint8", "bool", "float32")


@dataclass(frozen=True)
class PaddingMask:
    """Which input marks the real positions, and the sequence length S it covers."""

    input: int  # position in graph.inputs (and in every calibration sample)
    name: str
    length: int

    def live(self, sample: list[np.ndarray]) -> np.ndarray:
        """bool [S]: the positions one calibration sample fills with real tokens."""
        return np.asarray(sample[self.input]).reshape(self.length) != 0

    def real_rows(self, x: np.ndarray, live: np.ndarray) -> np.ndarray:
        """The live positions' rows of x, [rows, F], when x is laid out by position; x itself otherwise."""
        if positional(x.shape, self.length):
            return x.reshape(self.length, -1)[live]
        return x

    def note(self, share: float) -> str:
        """What the plan's notes say: the mask and the share of positions it marked real in calibration."""
        return (
            f"padding mask '{self.name}': activation ranges and algorithm statistics of [S, F] tensors "
            f"(S = {self.length}) count only the {100 * share:.0f}% of positions it marks real"
        )


def positional(shape: tuple[int, ...], length: int) -> bool:
    """Whether a tensor holds one row per sequence position: [S, F] or [1, S, F] with F != S (a square
    [S, S] tensor could be laid out either way, so it counts every row)."""
    return len(shape) in (2, 3) and shape[-2] == length and shape[-1] != length and int(np.prod(shape[:-2])) == 1


def resolve_padding_mask(graph: Graph, spec: str | None) -> PaddingMask | None:
    """The padding mask `spec` names: an input tensor's or signature input's name, "auto" (the input named
    "attention_mask" if the model has one) or None (no mask)."""
    if spec is None:
        return None
    names = {graph.tensors[t].name: i for i, t in enumerate(graph.inputs)}
    for name, t in graph.signature_inputs.items():
        if t in graph.inputs:
            names.setdefault(name, graph.inputs.index(t))
    wanted = AUTO_NAME if spec == "auto" else spec
    if wanted not in names:
        if spec == "auto":
            return None
        raise PlanError(f"padding_mask={spec!r} names no model input; the inputs are {sorted(names)}")
    index = names[wanted]
    tensor = graph.tensors[graph.inputs[index]]
    shape = tuple(tensor.shape)
    if tensor.dtype not in _MASK_DTYPES or not 1 <= len(shape) <= 2 or shape[0] < 1 or int(np.prod(shape[:-1])) != 1:
        if spec == "auto":
            return None
        raise PlanError(
            f"padding mask input '{wanted}' is {tensor.dtype} {list(shape)}: it must be one sequence, [S] or "
            f"[1, S], of integers (1 real position, 0 padding)"
        )
    return PaddingMask(input=index, name=wanted, length=shape[-1])
