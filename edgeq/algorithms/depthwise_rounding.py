"""Exact rounding for depthwise convolutions: each output channel has only kh * kw weights (9 for 3x3), so
its layer-wise quadratic objective can be minimised exactly instead of heuristically (GPTQ, AdaRound).

Per channel c, with x_q the layer's input as the integer model computes it (every earlier layer already
rounded) and x the float model's, the chosen integers q, scale s and bias shift d minimise

    E || s q . x_q + d - w . x ||^2  =  s^2 q^T C_qq q - 2 s q^T C_qf w + const   (d optimal: the mean)

over calibration patches (C: centred second moments, so the bias shift that cancels the mean error is part
of the optimum). The integer model's own error upstream is absorbed ("asymmetric" target). The search:
every floor/ceil combination of w / s (2^9 = 512 for 3x3; exact within that box), then best-improvement
moves of one weight by +-1 and of two weights by +1/-1 (the swap that keeps the filter's sum, which
dominates C_qq where neighbouring pixels are correlated) until none lowers the objective; kernels larger
than 3x3 (5x5: 2^25 combinations) start the moves from round-to-nearest. Each channel may also take a
larger scale than the plan's max|w| / qmax (up to SCALE_RANGE times it, fp16-representable like the
plan's): a coarser grid can land the filter's sum closer, and the search compares every candidate's
exact objective, round-to-nearest at the plan's scale included, so a channel never gets worse on the
calibration rows. The bias encoding follows the weight scale (input scale x weight scale).

EfficientNet-Lite0's first depthwise convolution is the layer this is for: folded 3x3 high-pass filters
(|w| up to 17.7, sums ~0.02), where int8 rounding alone takes the model from float to about 20 dB.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.bias_correction import evenly_spaced
from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.layers import Layer, linear_layers, patches
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.ir.graph import Graph
from edgeq.quant.plan import QuantPlan
from edgeq.quant.schemes import fp16_ceil, qrange
from edgeq.runtime import LiteRT

SAMPLES = 64  # calibration samples whose patches (every output position) give C_qq and C_qf
SCALE_RANGE = 1.25  # largest scale tried, as a multiple of the plan's
SCALE_STEPS = 26  # scale candidates from 1x to SCALE_RANGE x the plan's (before fp16 rounding)
EXHAUSTIVE_MAX = 10  # kernels with at most this many taps get every floor/ceil combination
MAX_MOVES = 200  # best-improvement moves per channel and scale: a bound, never reached in practice


@dataclasses.dataclass
class ChannelStats:
    """Centred second moments of one depthwise layer's patches, per channel: C_qq [C, K, K] (integer-model
    inputs), C_qf [C, K, K] (integer x float inputs), C_ff (float inputs: the output error's constant), the
    means [C, K] of both, and the row count."""

    cqq: np.ndarray
    cqf: np.ndarray
    cff: np.ndarray
    mean_q: np.ndarray
    mean_f: np.ndarray
    rows: int


def channel_stats(layer: Layer, float_maps: list[np.ndarray], quant_maps: list[np.ndarray]) -> ChannelStats:
    """C_qq, C_qf and the means over every output position of every sample (float64 sums)."""
    sqq = sqf = sff = sum_q = sum_f = None
    rows = 0
    for xf, xq in zip(float_maps, quant_maps, strict=True):
        pf = patches(layer, xf).astype(np.float32).transpose(2, 1, 0)  # [C, K, P]
        pq = patches(layer, xq).astype(np.float32).transpose(2, 1, 0)
        qq = np.matmul(pq, pq.transpose(0, 2, 1)).astype(np.float64)
        qf = np.matmul(pq, pf.transpose(0, 2, 1)).astype(np.float64)
        ff = np.matmul(pf, pf.transpose(0, 2, 1)).astype(np.float64)
        mq, mf = pq.sum(axis=2, dtype=np.float64), pf.sum(axis=2, dtype=np.float64)
        sqq, sqf, sff = (qq, qf, ff) if sqq is None else (sqq + qq, sqf + qf, sff + ff)
        sum_q, sum_f = (mq, mf) if sum_q is None else (sum_q + mq, sum_f + mf)
        rows += pf.shape[2]
    assert sqq is not None and sqf is not None and sff is not None and sum_q is not None and sum_f is not None
    mean_q, mean_f = sum_q / rows, sum_f / rows
    cqq = sqq / rows - mean_q[:, :, None] * mean_q[:, None, :]
    cqf = sqf / rows - mean_q[:, :, None] * mean_f[:, None, :]
    cff = sff / rows - mean_f[:, :, None] * mean_f[:, None, :]
    return ChannelStats(cqq=cqq, cqf=cqf, cff=cff, mean_q=mean_q, mean_f=mean_f, rows=rows)


def objective(q: np.ndarray, s: np.ndarray, cqq: np.ndarray, g: np.ndarray) -> np.ndarray:
    """s^2 q^T C_qq q - 2 s q^T g per channel (q [C, ..., K], s [C, ...]); g = C_qf w [C, K]. The output
    MSE up to a per-channel constant (the float output's variance)."""
    flat = q.reshape(q.shape[0], -1, q.shape[-1])
    quad = np.sum(np.matmul(flat, cqq) * flat, axis=-1).reshape(q.shape[:-1])
    lin = np.matmul(flat, g[:, :, None])[..., 0].reshape(q.shape[:-1])
    return s * s * quad - 2 * s * lin


def _exhaustive(ratio: np.ndarray, s: np.ndarray, cqq: np.ndarray, g: np.ndarray, qmax: int) -> np.ndarray:
    """Per channel and scale (ratio [C, S, K] = w / s), the best floor/ceil combination, [C, S, K]. With
    q = f + b (f the floor, b in {0, 1}^K), J(q) - J(f) = s^2 b^T C b + b^T (2 s^2 C f - 2 s g): the quadratic
    part of every combination is one product per channel, the linear part one per scale."""
    k = ratio.shape[-1]
    combos = np.asarray(list(itertools.product((0.0, 1.0), repeat=k)))  # [2^k, K]
    floor = np.floor(ratio)
    quad = np.sum(np.matmul(combos[None], cqq) * combos[None], axis=-1)  # [C, 2^k]
    slope = 2 * s[..., None] ** 2 * np.matmul(floor, cqq) - 2 * s[..., None] * g[:, None, :]  # [C, S, K]
    j = (s**2)[..., None] * quad[:, None, :] + slope @ combos.T  # [C, S, 2^k]
    j = np.where((floor + 1 > qmax).astype(np.float64) @ combos.T > 0, np.inf, j)  # no step past qmax
    return floor + combos[np.argmin(j, axis=-1)]


def _improve(q: np.ndarray, s: np.ndarray, cqq: np.ndarray, g: np.ndarray, qmax: int) -> np.ndarray:
    """Best-improvement local search from q [C, S, K]: one weight +-1, or one +1 and another -1, until no
    move lowers the objective (exact changes of the quadratic, so every accepted move lowers it). Only the
    (channel, scale) pairs that moved in the last step are searched again."""
    k = q.shape[-1]
    flat = q.reshape(-1, k).copy()
    channel = np.repeat(np.arange(q.shape[0]), q.shape[1])
    scales = s.reshape(-1)
    trace = np.einsum("ckk->c", cqq)
    eye = np.eye(k, dtype=bool)
    active = np.arange(flat.shape[0])
    for _ in range(MAX_MOVES):
        if active.size == 0:
            break
        c, qa, sa = cqq[channel[active]], flat[active], scales[active][:, None]
        diag = np.einsum("akk->ak", c)
        grad = 2 * sa * sa * np.einsum("akl,al->ak", c, qa) - 2 * sa * g[channel[active]]  # dJ/dq
        curv = sa * sa * diag
        up = np.where(qa + 1 <= qmax, grad + curv, np.inf)  # change of J for q_i + 1
        down = np.where(qa - 1 >= -qmax, -grad + curv, np.inf)  # for q_i - 1
        pair = diag[:, :, None] + diag[:, None, :] - 2 * c  # C_ii + C_jj - 2 C_ij
        swap = grad[:, :, None] - grad[:, None, :] + (sa * sa)[:, :, None] * pair  # q_i + 1, q_j - 1
        swap = np.where(eye | (qa[:, :, None] + 1 > qmax) | (qa[:, None, :] - 1 < -qmax), np.inf, swap)
        moves = np.concatenate([up, down, swap.reshape(len(active), -1)], axis=-1)
        best = np.argmin(moves, axis=-1)
        gain = moves[np.arange(len(active)), best]
        go = gain < -1e-12 * sa[:, 0] ** 2 * trace[channel[active]]  # below rounding noise: stop
        active, b = active[go], best[go]
        single = b < 2 * k
        i = np.where(single, b % k, (b - 2 * k) // k)
        flat[active, i] += np.where(single, np.where(b < k, 1.0, -1.0), 1.0)
        j = (b - 2 * k) % k
        flat[active[~single], j[~single]] -= 1.0
    return flat.reshape(q.shape)


def round_channels(
    w: np.ndarray, scale: np.ndarray, stats: ChannelStats, qmax: int, dtype: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integers q [C, K], scales [C] and the objective at the choice and at round-to-nearest on the plan's
    scale (both [C]), for weights w [C, K] whose plan scales are `scale` [C]."""
    factors = np.linspace(1.0, SCALE_RANGE, SCALE_STEPS)
    s = fp16_ceil(scale[:, None] * factors[None]) if dtype in ("int8", "int4") else scale[:, None] * factors[None]
    s[:, 0] = scale  # the plan's own scale, exactly
    g = np.einsum("ckl,cl->ck", stats.cqf, w)
    ratio = w[:, None, :] / s[..., None]  # [C, S, K]
    rtn = np.clip(np.round(ratio), -qmax, qmax)
    start = _exhaustive(ratio, s, stats.cqq, g, qmax) if w.shape[1] <= EXHAUSTIVE_MAX else rtn
    q = _improve(start, s, stats.cqq, g, qmax)
    j = objective(q, s, stats.cqq, g)  # [C, S]
    pick = np.argmin(j, axis=1)
    rows = np.arange(w.shape[0])
    j_rtn = objective(rtn[:, :1], s[:, :1], stats.cqq, g)[:, 0]
    return q[rows, pick], s[rows, pick], j[rows, pick], j_rtn


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry point (stage "plan")."""
    assert ctx.plan is not None
    graph, plan = ctx.graph, ctx.plan
    reference = ctx.float_graph or graph
    layers = [layer for layer in linear_layers(graph, plan) if layer.kind == "DEPTHWISE_CONV_2D"]
    if not layers or not ctx.samples:
        return ["depthwise rounding: no per-channel depthwise convolution in the plan"]
    samples = evenly_spaced(ctx.samples, SAMPLES)
    float_runtime = _float_runtime(reference)
    gains, rescaled, channels = [], 0, 0
    for layer in tqdm(layers, desc="depthwise rounding", disable=not ctx.progress):
        quant = ctx.quantized_activations([layer.input], samples).get(layer.input)
        if quant is None:
            continue
        float_maps = []
        for sample in samples:
            float_runtime.run(sample)
            float_maps.append(np.array(float_runtime.tensor(layer.input), dtype=np.float32))
        stats = channel_stats(layer, float_maps, quant)
        del quant, float_maps
        w_t = reference.tensors[layer.weight]
        w = w_t.data.astype(np.float64).reshape(-1, w_t.shape[3]).T  # [C, K]
        enc = plan.tensors[w_t.name]
        q, s, j, j_rtn = round_channels(w, enc.scales().astype(np.float64), stats, qrange(enc.dtype)[1], enc.dtype)
        # Output MSE (bias shift included) = J + w^T C_ff w.
        var_f = np.einsum("ck,ckl,cl->c", w, stats.cff, w)
        err, err_rtn = np.maximum(j + var_f, 0.0), np.maximum(j_rtn + var_f, 0.0)
        gains.append(10 * np.log10(max(float(err_rtn.sum()), 1e-30) / max(float(err.sum()), 1e-30)))
        rescaled += int(np.sum(s != enc.scales().astype(np.float64)))
        channels += s.size
        shift = np.einsum("ck,ck->c", stats.mean_f, w) - s * np.einsum("ck,ck->c", stats.mean_q, q)
        graph.tensors[layer.weight].data = (s[:, None] * q).T.reshape(w_t.shape).astype(np.float32)
        _set_scales(graph, plan, layer, s)
        if layer.bias >= 0:
            bias = reference.tensors[layer.bias].data.astype(np.float64)
            graph.tensors[layer.bias].data = (bias + shift.reshape(bias.shape)).astype(np.float32)
    notes = [f"rounded {len(gains)} depthwise layers exactly per channel on {len(samples)} calibration samples"]
    if gains:
        notes.append(
            f"layer output error vs round-to-nearest: median {np.median(gains):.2f} dB lower, least "
            f"{min(gains):.2f} dB, most {max(gains):.2f} dB; {rescaled} of {channels} channels took a larger scale"
        )
    return notes


def _set_scales(graph: Graph, plan: QuantPlan, layer: Layer, scales: np.ndarray) -> None:
    """The weight's per-channel scales, and its bias's (input scale x weight scale, as the planner derives)."""
    w_name = graph.tensors[layer.weight].name
    plan.tensors[w_name] = dataclasses.replace(plan.tensors[w_name], scale=scales.astype(np.float32).tolist())
    if layer.bias < 0:
        return
    b_name = graph.tensors[layer.bias].name
    in_scale = plan.tensors[graph.tensors[layer.input].name].scale[0]
    b_scales = np.float64(np.float32(in_scale)) * scales.astype(np.float32)
    plan.tensors[b_name] = dataclasses.replace(plan.tensors[b_name], scale=b_scales.astype(np.float32).tolist())


def _float_runtime(graph: Graph) -> LiteRT:
    host = host_graph(graph)
    return LiteRT(write_tflite(graph if host is None else host), preserve=True)
