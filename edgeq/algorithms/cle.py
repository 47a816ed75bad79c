"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): where a layer's output feeds
exactly one linear layer through a positively homogeneous activation, channel c of the first layer is
divided by s_c and the second layer's weights on input c multiplied by s_c, so both weight ranges become
sqrt(r1_c * r2_c) (within a factor of sqrt 2: each s_c is rounded to a power of two, so the rescale is exact
in fp32 and the float outputs stay bit-equal, barring underflow). relu(x / s) = relu(x) / s for s > 0 is what
lets the scale pass between the layers.

RELU6 is not positively homogeneous: after the rescale the clip sits at 6 * s_c in the original units, so
channels that reach 6 change in either direction (scaling down lets values in (6, 6 s) through, scaling up
clips values in (6 s, 6)). Pairs joined by RELU6 (or any other activation) are therefore skipped and
reported; the algorithm never trades the float function for a better range.

High-bias absorption is not done: edgeq's int8 activations are asymmetric, so a constant offset in a
channel costs no range, and moving it through a padded convolution would change the border values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.algorithms.context import AlgorithmContext
from edgeq.ir.graph import Graph, Op

# Activations between the two layers through which a positive per-channel scale passes exactly.
_HOMOGENEOUS = ("NONE", "RELU")
_LINEAR_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Sweeps over all pairs: a depthwise layer in a conv -> depthwise -> conv chain is equalized against both
# neighbours in turn, which converges in a few sweeps (the paper iterates until the scales stop moving).
SWEEPS = 8
# Channels whose weights are this small on either side (dead after batch-norm folding) are left alone:
# their scale would be meaningless and could push the other side's weights to huge values.
_DEAD = 1e-8


@dataclass(frozen=True)
class Pair:
    first: int  # op index producing the shared channels
    second: int  # op index consuming them
    activation: str  # fused activation of `first`


def _out_axis(op: Op) -> int:
    """The axis of a layer's weight that indexes its output channels."""
    return 3 if op.kind == "DEPTHWISE_CONV_2D" else 0


def _in_axis(op: Op) -> int:
    """The axis of a layer's weight that indexes its input channels (depthwise: the same as its outputs)."""
    return {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 1}[op.kind]


def _equalizable(graph: Graph, op: Op) -> bool:
    if op.kind not in _LINEAR_OPS or len(op.inputs) < 2 or not graph.tensors[op.inputs[1]].is_constant:
        return False
    if op.kind == "DEPTHWISE_CONV_2D" and op.options.get("depthMultiplier", 1) not in (0, 1):
        return False
    if op.kind == "FULLY_CONNECTED" and graph.tensors[op.inputs[1]].data.ndim != 2:
        return False
    return graph.tensors[op.inputs[1]].dtype == "float32"


def find_pairs(graph: Graph) -> tuple[list[Pair], list[Pair]]:
    """(pairs to equalize, pairs skipped because the activation between them is not homogeneous). A pair is
    two linear layers where the first's output is read only by the second, as its data input."""
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    usable, skipped = [], []
    for i, op in enumerate(graph.ops):
        if not _equalizable(graph, op) or not op.outputs:
            continue
        out = op.outputs[0]
        readers = consumers.get(out, [])
        if out in outputs or len(readers) != 1:
            continue
        nxt = graph.ops[readers[0]]
        if not _equalizable(graph, nxt) or nxt.inputs[0] != out or out in nxt.inputs[1:]:
            continue
        if nxt.kind == "FULLY_CONNECTED" and graph.tensors[out].shape[-1] != graph.tensors[nxt.inputs[1]].shape[1]:
            continue  # the FC flattens a spatial map: its inputs are not the producer's channels
        pair = Pair(i, readers[0], op.fused_activation)
        (usable if pair.activation in _HOMOGENEOUS else skipped).append(pair)
    return usable, skipped


def channel_ranges(w: np.ndarray, axis: int) -> np.ndarray:
    """max |w| per index of `axis` (float64)."""
    return np.max(np.abs(np.moveaxis(np.asarray(w, dtype=np.float64), axis, 0).reshape(w.shape[axis], -1)), axis=1)


def _scaled(w: np.ndarray, axis: int, factors: np.ndarray) -> np.ndarray:
    shape = [1] * w.ndim
    shape[axis] = -1
    return (np.asarray(w, dtype=np.float64) * factors.reshape(shape)).astype(np.float32)


def equalize_pair(graph: Graph, pair: Pair) -> float:
    """Equalize one pair in place; returns the largest |log2 s| applied (0 when already equal)."""
    first, second = graph.ops[pair.first], graph.ops[pair.second]
    w1, w2 = graph.tensors[first.inputs[1]], graph.tensors[second.inputs[1]]
    r1 = channel_ranges(w1.data, _out_axis(first))
    r2 = channel_ranges(w2.data, _in_axis(second))
    live = (r1 > _DEAD) & (r2 > _DEAD)
    s = np.ones_like(r1)
    s[live] = np.sqrt(r1[live] / r2[live])  # r1 / s == r2 * s == sqrt(r1 r2)
    s = np.exp2(np.round(np.log2(s)))  # powers of two: the rescale loses nothing in fp32
    if np.all(s == 1.0):
        return 0.0
    w1.data = _scaled(w1.data, _out_axis(first), 1.0 / s)
    if len(first.inputs) > 2 and first.inputs[2] >= 0 and graph.tensors[first.inputs[2]].is_constant:
        b1 = graph.tensors[first.inputs[2]]
        b1.data = (np.asarray(b1.data, dtype=np.float64) / s).astype(np.float32)
    w2.data = _scaled(w2.data, _in_axis(second), s)
    return float(np.max(np.abs(np.log2(s))))


def spread(graph: Graph, op_index: int) -> float:
    """Ratio of the largest to the median per-channel weight range of a layer (what CLE shrinks)."""
    op = graph.ops[op_index]
    r = channel_ranges(graph.tensors[op.inputs[1]].data, _out_axis(op))
    r = r[r > _DEAD]
    return float(np.max(r) / np.median(r)) if r.size else 1.0


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry point (stage "float")."""
    graph = ctx.graph
    pairs, skipped = find_pairs(graph)
    touched = sorted({p.first for p in pairs} | {p.second for p in pairs})
    before = {i: spread(graph, i) for i in touched}
    sweeps = 0
    while sweeps < SWEEPS and pairs:
        sweeps += 1
        if max(equalize_pair(graph, p) for p in pairs) == 0.0:
            break
    notes = [f"equalized {len(pairs)} layer pairs ({sweeps} sweeps)"]
    if touched:
        after = {i: spread(graph, i) for i in touched}
        notes.append(
            "per-channel weight range max/median over the equalized layers: "
            f"median {np.median(list(before.values())):.1f} -> {np.median(list(after.values())):.1f}, "
            f"worst {max(before.values()):.1f} -> {max(after.values()):.1f}"
        )
    if skipped:
        kinds = sorted({p.activation for p in skipped})
        notes.append(
            f"skipped {len(skipped)} pairs joined by {', '.join(kinds)}: not positively homogeneous, "
            f"a rescale would change the float function"
        )
    return notes
