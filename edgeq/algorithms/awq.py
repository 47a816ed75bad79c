"""Activation-aware channel scaling (AWQ, Lin et al. 2023): before the weights are rounded, input channel c of
a FULLY_CONNECTED is multiplied by s_c in the weight and divided by s_c where the input is produced, so the
float function is unchanged while channels that carry large activations get finer weight rounding.

The rescale must be exact without new ops, so it is only applied where the producer holds per-channel
constants or weights:
- "affine": the input is MUL(y, gamma) or ADD(MUL(y, gamma), beta) with constant per-channel gamma (beta):
  a layer norm's scale and shift. gamma and beta are divided by s.
- "linear": the input comes from another FULLY_CONNECTED through RESHAPE, TRANSPOSE and the value operand of
  BATCH_MATMUL (attention's probabilities times V): each channel passes unmixed, so V's weight rows and bias
  are divided by s.
Every FULLY_CONNECTED reading the rescaled tensor shares s. Others are left: after a non-homogeneous
activation (GELU in a feed-forward's second layer) no per-channel scale passes, and where a converter folded
the layer norm's gamma into the next weights the normalised value has no per-channel constant left.

s = (mean |x| over calibration rows)^alpha, normalised to geometric mean 1 and rounded to powers of two (the
rescale is then exact in float32: the model's outputs stay bit-equal, barring under/overflow); alpha is
searched on a grid per group, minimising the group's output error ||X (W - Q(W))^T||^2 under the scheme's own
weight quantizer (blockwise INT4 with the planner's MSE block scales, or per channel); alpha = 0 (no change)
is on the grid, so a group is only rescaled where the error falls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.algorithms.context import AlgorithmContext
from edgeq.ir.graph import Graph, Op
from edgeq.quant.schemes import Scheme, fp16_bf16_ceil, qrange
from edgeq.quant.weight_scales import FP16_MIN_NORMAL, mse_scales, weight_groups

# Exponents searched for s = mean|x|^alpha; 0 keeps the layer as it is.
ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.linspace(0.0, 1.0, 11))
# Calibration rows (tokens) used for the Gram matrices and channel means: all of them up to this many a sample.
_ROWS_PER_SAMPLE = 4096


# (kind, [(constant tensor, axis) divided by s], consumer column -> producer channel), or None: no exact fold
_Fold = tuple[str, list[tuple[int, int]], np.ndarray] | None


@dataclass
class Group:
    """FULLY_CONNECTED ops reading one tensor whose channels `fold` can rescale exactly."""

    tensor: int  # the shared input tensor
    consumers: list[int]  # FULLY_CONNECTED op indices
    kind: str  # "affine" or "linear"
    scaled: list[tuple[int, int]]  # (constant tensor, axis) divided by s along `axis` (via `channel` order)
    channel: np.ndarray  # consumer input column c is producer channel channel[c]


def find_groups(graph: Graph) -> list[Group]:
    """The FULLY_CONNECTED inputs AWQ can rescale exactly, in graph order."""
    consumers = graph.consumers()
    producers = graph.producers()
    outputs = set(graph.outputs)
    groups = []
    for t in sorted({op.inputs[0] for op in graph.ops if op.kind == "FULLY_CONNECTED"}):
        readers = consumers.get(t, [])
        if t in outputs or not readers or any(not _plain_fc(graph, graph.ops[r], t) for r in readers):
            continue
        width = graph.tensors[graph.ops[readers[0]].inputs[1]].data.shape[1]
        found = _affine(graph, t, producers, consumers, width) or _linear(graph, t, producers, consumers, width)
        if found is not None:
            kind, scaled, channel = found
            groups.append(Group(t, readers, kind, scaled, channel))
    return groups


def _plain_fc(graph: Graph, op: Op, t: int) -> bool:
    """A float FULLY_CONNECTED reading t as its data input only, with a constant 2-D weight."""
    if op.kind != "FULLY_CONNECTED" or op.inputs[0] != t or t in op.inputs[1:] or len(op.inputs) < 2:
        return False
    w = graph.tensors[op.inputs[1]]
    return w.is_constant and w.dtype == "float32" and w.data.ndim == 2 and graph.tensors[t].shape[-1] == w.data.shape[1]


def _channel_constant(graph: Graph, t: int, width: int) -> bool:
    tensor = graph.tensors[t]
    shapes = ((width,), (1, width), (1, 1, width))
    return tensor.is_constant and tensor.dtype == "float32" and tensor.data.shape in shapes


def _affine(graph: Graph, t: int, producers: dict[int, int], consumers: dict[int, list[int]], width: int) -> _Fold:
    """t = MUL(y, gamma) or ADD(MUL(y, gamma), beta), gamma and beta per channel, each read only on this path."""
    if t not in producers:
        return None
    op = graph.ops[producers[t]]
    scaled = []
    if op.kind == "ADD" and op.fused_activation == "NONE":
        beta = [i for i in op.inputs if _channel_constant(graph, i, width)]
        other = [i for i in op.inputs if i not in beta]
        if len(beta) != 1 or len(other) != 1 or other[0] not in producers or len(consumers.get(other[0], [])) != 1:
            return None
        if len(consumers[beta[0]]) != 1:
            return None
        scaled.append((beta[0], -1))
        op = graph.ops[producers[other[0]]]
    if op.kind != "MUL" or op.fused_activation != "NONE":
        return None
    gamma = [i for i in op.inputs if _channel_constant(graph, i, width)]
    if len(gamma) != 1 or len(consumers[gamma[0]]) != 1 or sum(i == gamma[0] for i in op.inputs) != 1:
        return None
    return "affine", [(gamma[0], -1), *scaled], np.arange(width)


def _linear(graph: Graph, t: int, producers: dict[int, int], consumers: dict[int, list[int]], width: int) -> _Fold:
    """t reached from a FULLY_CONNECTED's output through RESHAPE / TRANSPOSE / BATCH_MATMUL value operands, each
    channel unmixed: the path is replayed on an array of channel ids."""
    path = []
    current = t
    while current in producers:
        op = graph.ops[producers[current]]
        if op.kind == "FULLY_CONNECTED":
            break
        if op.kind in ("RESHAPE", "TRANSPOSE"):
            source = op.inputs[0]
        elif op.kind == "BATCH_MATMUL":
            source = op.inputs[1]  # the value operand; the other one must not depend on it (checked below)
        else:
            return None
        if len(consumers.get(source, [])) != 1 or source in graph.outputs:
            return None
        path.append(producers[current])
        current = source
    else:
        return None
    fc = graph.ops[producers[current]]
    if current == t or not _plain_fc(graph, fc, fc.inputs[0]) or fc.fused_activation != "NONE":
        return None
    w = graph.tensors[fc.inputs[1]]
    if w.data.shape[0] != graph.tensors[current].shape[-1] or len(consumers.get(fc.inputs[1], [])) != 1:
        return None
    value_producer = producers[current]
    ids = np.broadcast_to(np.arange(w.data.shape[0]), graph.tensors[current].shape)
    for index in reversed(path):
        op = graph.ops[index]
        if op.kind == "BATCH_MATMUL" and value_producer in _ancestors(graph, op.inputs[0], producers):
            return None  # the probabilities would depend on the rescaled values
        ids = _replay(graph, op, ids)
        if ids is None:
            return None
    rows = ids.reshape(-1, width)
    if np.any(rows != rows[:1]) or np.any(rows[0] < 0):
        return None
    scaled = [(fc.inputs[1], 0)]
    if len(fc.inputs) > 2 and fc.inputs[2] >= 0:
        bias = graph.tensors[fc.inputs[2]]
        if not bias.is_constant or len(consumers.get(fc.inputs[2], [])) != 1:
            return None
        scaled.append((fc.inputs[2], 0))
    return "linear", scaled, rows[0].copy()


def _ancestors(graph: Graph, t: int, producers: dict[int, int]) -> set[int]:
    seen: set[int] = set()
    stack = [t]
    while stack:
        x = stack.pop()
        if x in producers and producers[x] not in seen:
            seen.add(producers[x])
            stack.extend(i for i in graph.ops[producers[x]].inputs if i >= 0)
    return seen


def _replay(graph: Graph, op: Op, ids: np.ndarray) -> np.ndarray | None:
    """The channel id of every element of the op's output, or None where channels mix."""
    out_shape = graph.tensors[op.outputs[0]].shape
    if op.kind == "RESHAPE":
        return ids.reshape(out_shape)
    if op.kind == "TRANSPOSE":
        return np.transpose(ids, graph.tensors[op.inputs[1]].data.astype(int).tolist())
    if op.options.get("adjY", False):  # BATCH_MATMUL value operand y [.., K, N] (adjY: [.., N, K])
        ids = np.swapaxes(ids, -1, -2)
    if np.any(ids != ids[..., :1, :]):
        return None  # the contracted axis would mix channels
    return np.broadcast_to(ids[..., :1, :], out_shape)


def block_quantized(w: np.ndarray, scheme: Scheme) -> np.ndarray:
    """What the planner's weight quantizer makes of w (float64): symmetric MSE scales per block of the scheme's
    size (fp16/bf16 grid) or per output channel."""
    _, qmax = qrange(scheme.weight_dtype)
    block = scheme.block_size if scheme.block_size and w.shape[1] % scheme.block_size == 0 else 0
    groups = weight_groups(w, 0, block)
    ceil = fp16_bf16_ceil if block else (lambda s: np.asarray(s, dtype=np.float64))
    scales = mse_scales(groups, qmax, FP16_MIN_NORMAL if block else 1e-12, ceil=ceil)
    q = np.clip(np.rint(groups / scales[:, None]), -qmax, qmax) * scales[:, None]
    return q.reshape(w.shape)


def power_of_two_scales(raw: np.ndarray, live: np.ndarray) -> np.ndarray:
    """raw scales of the `live` channels normalised to geometric mean 1 and rounded to powers of two (so the
    rescale is exact in float32); other channels keep 1."""
    s = np.ones(raw.shape, dtype=np.float64)
    if live.any():
        s[live] = raw[live] / np.exp(np.mean(np.log(raw[live])))
    return np.exp2(np.round(np.log2(s)))


def channel_scales(mean_abs: np.ndarray, alpha: float) -> np.ndarray:
    """mean|x|^alpha as power-of-two scales of geometric mean 1."""
    live = mean_abs > 0
    if alpha == 0.0:
        return np.ones(mean_abs.shape, dtype=np.float64)
    return power_of_two_scales(np.power(np.where(live, mean_abs, 1.0), alpha), live)


def group_error(weights: list[np.ndarray], h: np.ndarray, s: np.ndarray, scheme: Scheme) -> float:
    """Sum over the group of ||X (W - Q(W diag s) diag(1/s))^T||^2 = trace(D H D^T), D the weight error."""
    total = 0.0
    for w in weights:
        delta = w - block_quantized(w * s, scheme) / s
        total += float(np.sum((delta @ h) * delta))
    return total


def statistics(ctx: AlgorithmContext, tensors: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per tensor: Gram matrix X^T X and mean |x| per channel over the calibration rows (float model)."""
    acts = ctx.float_activations(tensors)
    out = {}
    for t, values in acts.items():
        width = values[0].shape[-1]
        h = np.zeros((width, width))
        total = np.zeros(width)
        rows = 0
        for x in values:
            x = x.reshape(-1, width)[:_ROWS_PER_SAMPLE].astype(np.float64)
            h += x.T @ x
            total += np.abs(x).sum(axis=0)
            rows += x.shape[0]
        out[t] = (h, total / max(rows, 1))
    return out


def apply(graph: Graph, group: Group, s: np.ndarray) -> None:
    """Multiply the consumers' weight columns by s and divide the producer's constants by s, in place."""
    for op_index in group.consumers:
        w = graph.tensors[graph.ops[op_index].inputs[1]]
        w.data = (w.data.astype(np.float64) * s).astype(np.float32)
    inverse = np.empty_like(s)
    inverse[group.channel] = 1.0 / s  # producer channel channel[c] feeds consumer column c
    for t, axis in group.scaled:
        tensor = graph.tensors[t]
        shape = [1] * tensor.data.ndim
        shape[axis] = -1
        tensor.data = (tensor.data.astype(np.float64) * inverse.reshape(shape)).astype(np.float32)


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry (stage "float")."""
    if ctx.scheme.weight_dtype not in ("int4", "int8"):
        return [f"AWQ: scheme {ctx.scheme.name} has float weights; nothing to do"]
    graph = ctx.graph
    groups = find_groups(graph)
    if not groups or not ctx.samples:
        return ["AWQ: no FULLY_CONNECTED input whose channels can be rescaled exactly"]
    stats = statistics(ctx, [g.tensor for g in groups])
    notes = []
    changed = 0
    for group in groups:
        h, mean_abs = stats[group.tensor]
        weights = [graph.tensors[graph.ops[i].inputs[1]].data.astype(np.float64) for i in group.consumers]
        errors = {a: group_error(weights, h, channel_scales(mean_abs, a), ctx.scheme) for a in ALPHAS}
        best = min(errors, key=lambda a: (errors[a], a))
        if best > 0.0:
            apply(graph, group, channel_scales(mean_abs, best))
            changed += 1
        names = ", ".join(graph.tensors[graph.ops[i].outputs[0]].name for i in group.consumers)
        notes.append(
            f"{group.kind} fold into {len(group.consumers)} FULLY_CONNECTED ({names}): alpha {best:.1f}, "
            f"calibration output error {100 * errors[best] / errors[0.0] if errors[0.0] else 100:.1f}% of alpha 0's"
        )
    return [f"AWQ: {changed} of {len(groups)} foldable FULLY_CONNECTED inputs rescaled", *notes]
