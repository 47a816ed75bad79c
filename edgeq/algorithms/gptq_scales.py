"""GPTQ with each output channel's INT4 scale searched jointly with its rounding, on the layer's output.

The planner picks a per-channel INT4 scale by weight MSE (edgeq.quant.weight_scales), before GPTQ and blind
to the inputs. Here every channel's scale is chosen by what GPTQ then reaches at it: GPTQ's rows are
independent given the Hessian H (a row's error is spread over that row's later columns only), so GPTQ is run
once per candidate scale (clipping ratios of max|w| / qmax, as the planner searches) and each row keeps the
scale whose rounding gives the least output error ||X (w - q)||^2 = d H d^T on the calibration inputs.
Round to nearest and GPTQ at the plan's scale are candidates too, so no row gets worse than either.

Scales stay what the planner could store: fp16-representable (rounded up) and never below its floor (the
least output multiplier and the bias headroom of edgeq.quant.planner). The bias encoding follows the weight
scale (input scale x weight scale). Per-channel INT4 weights only; other encodings keep GPTQ as it is.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeq.algorithms import gptq as base
from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.gptq import row_errors
from edgeq.quant.planner import _BIAS_HEADROOM, _MIN_OUTPUT_MULTIPLIER
from edgeq.quant.schemes import fp16_ceil

# Clipping ratios of max|w| / qmax tried per channel (the planner's weight-MSE search spans 1.0 to 0.5).
RATIOS: tuple[float, ...] = tuple(float(r) for r in np.linspace(1.0, 0.4, 13))


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry (stage "plan"): GPTQ as `gptq` runs it, scales searched per INT4 channel."""
    searched: list[int] = [0, 0]  # channels given another scale, channels searched
    notes = base.run_gptq(ctx, search=lambda *a: _search(ctx, searched, *a))
    notes.append(
        f"INT4 scales searched with the rounding ({len(RATIOS)} clipping ratios of max|w|/qmax): "
        f"{searched[0]} of {searched[1]} channels took a scale other than the plan's"
    )
    return notes


def search_rows(
    w: np.ndarray,
    h: np.ndarray,
    scale: np.ndarray,
    floor: np.ndarray,
    qmax: int,
    chosen: np.ndarray,
    damp: float = base.DAMP,
    act_order: bool = True,
    ratios: tuple[float, ...] = RATIOS,
) -> tuple[np.ndarray, np.ndarray]:
    """For [G, R, K] weights with per-row scales `scale` [G, R, K] (constant along K) and GPTQ's choice at
    them (`chosen`), the weights and [G, R] scales of the best candidate per row: round to nearest at the
    plan's scale, `chosen`, then GPTQ at each ratio's scale (kept only where strictly better)."""
    zero = np.zeros_like(w)
    rtn = base._fake_quant(w, scale, zero, -qmax, qmax)
    best, best_scale = rtn, scale[:, :, 0].copy()
    best_err = row_errors(w - rtn, h)
    amax = np.max(np.abs(w), axis=2)
    candidates = [(scale[:, :, 0], chosen)]
    for r in ratios:
        s = fp16_ceil(np.maximum(r * amax / qmax, floor))
        s = np.where(s > 0, s, scale[:, :, 0])
        full = np.broadcast_to(s[:, :, None], w.shape)
        candidates.append((s, base.gptq_matrix(w, h, full, zero, -qmax, qmax, damp, act_order)))
    for s, q in candidates:
        err = row_errors(w - q, h)
        better = err < best_err
        best = np.where(better[:, :, None], q, best)
        best_scale = np.where(better, s, best_scale)
        best_err = np.where(better, err, best_err)
    return best, best_scale


def _search(
    ctx: AlgorithmContext,
    searched: list[int],
    layer: base._Layer,
    w: np.ndarray,
    h: np.ndarray,
    scale: np.ndarray,
    zero: np.ndarray,
    qmin: int,
    qmax: int,
    chosen: np.ndarray,
    damp: float,
    act_order: bool,
) -> np.ndarray:
    """run_gptq's hook: the searched weights of one layer; the plan takes the new scales (weight and bias)."""
    assert ctx.plan is not None
    enc = layer.encoding
    if enc.dtype != "int4" or enc.block_size or np.any(zero != 0) or qmin != -qmax:
        return chosen
    graph, plan = ctx.graph, ctx.plan
    op = graph.ops[layer.op]
    bias = op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] >= 0 else -1
    in_scale = float(plan.tensors[graph.tensors[layer.input].name].scale[0])
    out_scale = float(plan.tensors[graph.tensors[op.outputs[0]].name].scale[0])
    floor = np.full(scale.shape[:2], _MIN_OUTPUT_MULTIPLIER * out_scale / in_scale)
    if bias >= 0:
        b = np.abs(np.asarray(graph.tensors[bias].data, dtype=np.float64)).reshape(floor.shape)
        floor = np.maximum(floor, b / (in_scale * (2**31 - 1) * _BIAS_HEADROOM))
    best, best_scale = search_rows(w, h, scale, floor, qmax, chosen, damp, act_order)
    old = scale[:, :, 0].reshape(-1)
    new = best_scale.reshape(-1)  # [G, R] in channel order: conv/FC rows (G = 1), depthwise groups (R = 1)
    searched[0] += int(np.sum(new != old))
    searched[1] += new.size
    w_name = graph.tensors[layer.weight].name
    plan.tensors[w_name] = dataclasses.replace(plan.tensors[w_name], scale=[float(s) for s in new])
    if bias >= 0:
        b_name = graph.tensors[bias].name
        b_scales = (np.float64(np.float32(in_scale)) * new.astype(np.float32)).astype(np.float32)
        plan.tensors[b_name] = dataclasses.replace(plan.tensors[b_name], scale=[float(s) for s in b_scales])
    return best
