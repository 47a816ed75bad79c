"""GPTQ (Frantar et al. 2022): pick each weight's integer so the layer's output on the calibration inputs
stays close, not each weight alone. Columns are quantized in turn (largest Hessian diagonal first), and each
column's rounding error is spread over the columns not yet quantized through the Cholesky factor of the
inverse Hessian H = X^T X, so later columns compensate for earlier ones.

The plan's scales are kept as chosen (MSE scales for INT4, the spec's for INT8; block scales too, so the
column order is free): GPTQ only picks the integers, stored as float weights scale * (q - zero_point) that
the renderer re-quantizes to exactly q. Layers: FULLY_CONNECTED, constant BATCH_MATMUL operands, CONV_2D
(im2col patches) and DEPTHWISE_CONV_2D (one small Hessian per channel). Layer inputs come from the integer
model of the current plan, chunk by chunk in graph order, so each chunk sees the rounding already chosen
for the layers before it (sequential GPTQ); a layer keeps round-to-nearest where GPTQ does not lower its
output error on the calibration inputs.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.layer_inputs import depthwise_gram, gram, output_positions, patches, sample_positions
from edgeq.calibrate.padding import PaddingMask
from edgeq.ir.graph import Graph
from edgeq.quant.plan import Encoding, QuantPlan
from edgeq.quant.schemes import qrange

# Damping added to H's diagonal, as a share of its mean: keeps the inverse stable when inputs are correlated.
DAMP = 0.01
# Columns per lazy batch update: the rank-1 updates stay inside a block, the rest is one matrix product.
BLOCK = 128
# Rows (output positions) drawn per sample for a convolution's Hessian: bounds time on large feature maps.
ROWS_PER_SAMPLE = 1024
# Bytes of layer inputs held at once: layers are processed in chunks of at most this much (one layer at least).
CHUNK_BYTES = 1 << 30
_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")


@dataclasses.dataclass
class _Layer:
    op: int
    weight: int  # tensor index of the constant weight
    input: int  # tensor index of the activation it multiplies
    encoding: Encoding


def gptq(ctx: AlgorithmContext) -> list[str]:
    """The registered entry: inputs from the integer model (sequential), act order, 1% damping."""
    return run_gptq(ctx)


def run_gptq(
    ctx: AlgorithmContext,
    inputs: str = "quantized",
    act_order: bool = True,
    damp: float = DAMP,
    rows_per_sample: int = ROWS_PER_SAMPLE,
    chunk_bytes: int = CHUNK_BYTES,
    search: Callable[..., np.ndarray] | None = None,
) -> list[str]:
    """GPTQ over every weighted layer of the plan. `inputs`: "quantized" (the integer model's values, layers
    chosen so far included) or "float" (the original float model's). `search` (gptq_scales) may replace a
    layer's choice, and its scales in the plan: (layer, w, h, scale, zero, qmin, qmax, chosen, damp,
    act_order) -> weights, never worse per row than round to nearest at the plan's scale."""
    assert ctx.plan is not None, "GPTQ runs in the plan stage"
    if inputs not in ("quantized", "float"):
        raise ValueError(f"inputs={inputs!r}: 'quantized' or 'float'")
    graph = ctx.graph
    layers, skipped = _layers(graph, ctx.plan.tensors)
    if not layers or not ctx.samples:
        return [f"GPTQ: no layer to round ({'; '.join(skipped) or 'no weights in the plan'})"]
    originals = {layer.weight: graph.tensors[layer.weight].data for layer in layers}
    rng = np.random.default_rng(0)
    results: dict[str, list[tuple[float, float]]] = {}
    kept_rtn: list[str] = []
    live = ctx.live_positions(ctx.samples)
    bar = tqdm(total=len(layers), desc="gptq", unit="layer", disable=not ctx.progress, file=sys.stderr, leave=False)
    for chunk in _chunks(graph, layers, len(ctx.samples), chunk_bytes):
        acts = _chunk_inputs(ctx, chunk, inputs, originals)
        for k, layer in enumerate(chunk):
            h = _hessian(graph, layer, acts[layer.input], rows_per_sample, rng, ctx.padding, live)
            if all(other.input != layer.input for other in chunk[k + 1 :]):
                del acts[layer.input]
            to_matrix, from_matrix = _views(graph, layer)
            w = to_matrix(np.asarray(originals[layer.weight], dtype=np.float64))
            scale = to_matrix(layer.encoding.per_element(layer.encoding.scales(), originals[layer.weight].shape))
            zero = to_matrix(layer.encoding.per_element(layer.encoding.zero_points(), originals[layer.weight].shape))
            qmin, qmax = qrange(layer.encoding.dtype)
            if layer.encoding.narrow_range:
                qmin = -qmax
            rtn = _fake_quant(w, scale, zero, qmin, qmax)
            chosen = gptq_matrix(w, h, scale, zero, qmin, qmax, damp, act_order)
            if search is not None:
                chosen = search(layer, w, h, scale, zero, qmin, qmax, chosen, damp, act_order)
            err_rtn, err_gptq = output_error(w - rtn, h), output_error(w - chosen, h)
            kind = graph.ops[layer.op].kind
            if err_gptq >= err_rtn:
                chosen, err_gptq = rtn, err_rtn
                kept_rtn.append(graph.tensors[layer.weight].name)
            results.setdefault(kind, []).append((err_rtn, err_gptq))
            graph.tensors[layer.weight].data = from_matrix(chosen).astype(np.float32)
            bar.update(1)
    bar.close()
    return _notes(results, kept_rtn, skipped, inputs, act_order, rows_per_sample)


def gptq_matrix(
    w: np.ndarray,
    h: np.ndarray,
    scale: np.ndarray,
    zero: np.ndarray,
    qmin: int,
    qmax: int,
    damp: float = DAMP,
    act_order: bool = True,
    block: int = BLOCK,
) -> np.ndarray:
    """GPTQ of [G, R, K] weights (G groups of R rows, each group with its own [K, K] Hessian in h [G, K, K];
    one group for dense layers, one per channel for depthwise ones) on the fixed per-element grid `scale`,
    `zero` (the same shape as w). Returns the dequantized chosen weights scale * (q - zero), float64."""
    w = np.array(w, dtype=np.float64)
    groups, _, k = w.shape
    h = np.array(h, dtype=np.float64)
    diag = np.diagonal(h, axis1=1, axis2=2).copy()
    dead = diag <= 0  # inputs that were always zero: nothing to compensate, plain rounding
    idx = np.arange(k)
    mean = np.where(dead, 0.0, diag).sum(axis=1) / np.maximum((~dead).sum(axis=1), 1)
    h[:, idx, idx] = np.where(dead, 1.0, diag + damp * np.where(mean > 0, mean, 1.0)[:, None])
    perm = np.argsort(-np.where(dead, -1.0, diag), axis=1, kind="stable") if act_order else np.tile(idx, (groups, 1))
    w = np.take_along_axis(w, perm[:, None, :], axis=2)
    scale = np.take_along_axis(np.broadcast_to(scale, w.shape), perm[:, None, :], axis=2)
    zero = np.take_along_axis(np.broadcast_to(zero, w.shape), perm[:, None, :], axis=2)
    h = np.take_along_axis(np.take_along_axis(h, perm[:, :, None], axis=1), perm[:, None, :], axis=2)
    u = _inverse_cholesky(h)
    q = np.empty_like(w)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, :, i1:i2].copy()
        e1 = np.zeros_like(w1)
        u1 = u[:, i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, :, i]
            qc = _fake_quant(col, scale[:, :, i1 + i], zero[:, :, i1 + i], qmin, qmax)
            q[:, :, i1 + i] = qc
            err = (col - qc) / u1[:, i, i][:, None]
            w1[:, :, i:] -= err[:, :, None] * u1[:, None, i, i:]
            e1[:, :, i] = err
        w[:, :, i2:] -= np.matmul(e1, u[:, i1:i2, i2:])
    out = np.empty_like(q)
    np.put_along_axis(out, perm[:, None, :], q, axis=2)
    return out


def row_errors(delta: np.ndarray, h: np.ndarray) -> np.ndarray:
    """[G, R] squared output error of each row: delta_r H_g delta_r^T = ||X_g delta_r^T||^2."""
    return np.sum(np.matmul(delta, h) * delta, axis=2)


def output_error(delta: np.ndarray, h: np.ndarray) -> float:
    """The layer's squared output error: the rows' errors summed."""
    return float(np.sum(row_errors(delta, h)))


def _inverse_cholesky(h: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor U of H^-1 (H^-1 = U^T U), per group; more damping if H is too ill-conditioned."""
    k = h.shape[-1]
    eye = np.eye(k)
    extra = 0.0
    for _ in range(8):
        try:
            hd = h + extra * np.mean(np.diagonal(h, axis1=1, axis2=2), axis=1)[:, None, None] * eye
            return np.swapaxes(np.linalg.cholesky(np.linalg.inv(hd)), 1, 2)
        except np.linalg.LinAlgError:
            extra = 0.01 if extra == 0.0 else extra * 10
    raise np.linalg.LinAlgError("GPTQ: the Hessian stays singular after damping")


def _fake_quant(w: np.ndarray, scale: np.ndarray, zero: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """scale * (clip(round(w / scale) + zero) - zero): as quantize_array rounds (half to even)."""
    q = np.clip(np.round(w / scale) + zero, qmin, qmax)
    return scale * (q - zero)


def _views(
    graph: Graph, layer: _Layer
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Maps between the weight's stored layout and GPTQ's [G, R, K] (K: the inputs a row multiplies)."""
    op = graph.ops[layer.op]
    shape = graph.tensors[layer.weight].data.shape
    if op.kind == "DEPTHWISE_CONV_2D":  # [1, kh, kw, C] -> [C, 1, kh*kw]
        k = shape[1] * shape[2]
        return (lambda a: a.reshape(k, shape[3]).T[:, None, :], lambda m: m[:, 0, :].T.reshape(shape))
    if op.kind == "BATCH_MATMUL" and not op.options.get("adjY", False):  # y [.., K, N]: rows are y's columns
        k, n = shape[-2], shape[-1]
        return (lambda a: a.reshape(k, n).T[None], lambda m: m[0].T.reshape(shape))
    rows = shape[0] if op.kind != "BATCH_MATMUL" else shape[-2]  # CONV [out, kh, kw, in], FC [out, in], y^T
    return (lambda a: a.reshape(rows, -1)[None], lambda m: m[0].reshape(shape))


def _layers(graph: Graph, encodings: dict[str, Encoding]) -> tuple[list[_Layer], list[str]]:
    """Weighted ops whose constant weight the plan encodes, in graph order; and why others were left."""
    uses: dict[int, int] = {}
    for op in graph.ops:
        for t in set(op.inputs):
            if t >= 0:
                uses[t] = uses.get(t, 0) + 1
    layers, skipped = [], []
    for i, op in enumerate(graph.ops):
        if op.kind not in _KINDS or len(op.inputs) < 2:
            continue
        x, w = op.inputs[0], op.inputs[1]
        tensor = graph.tensors[w]
        if not tensor.is_constant or graph.tensors[x].is_constant or tensor.dtype != "float32":
            continue
        enc = encodings.get(tensor.name)
        if enc is None:
            continue
        if op.kind == "BATCH_MATMUL" and (tensor.data.ndim < 2 or np.prod(tensor.data.shape[:-2]) != 1):
            skipped.append(f"'{tensor.name}' (batched constant operand)")
        elif uses[w] > 1:
            skipped.append(f"'{tensor.name}' (shared by {uses[w]} ops)")
        else:
            layers.append(_Layer(op=i, weight=w, input=x, encoding=enc))
    return layers, skipped


def _chunks(graph: Graph, layers: list[_Layer], samples: int, budget: int) -> list[list[_Layer]]:
    """Consecutive layers whose inputs over all samples fit in `budget` bytes (a chunk holds one at least)."""
    chunks: list[list[_Layer]] = []
    held: set[int] = set()
    size = 0
    for layer in layers:
        extra = 0 if layer.input in held else 4 * samples * int(np.prod(graph.tensors[layer.input].shape))
        if chunks and size + extra <= budget:
            chunks[-1].append(layer)
        else:
            chunks.append([layer])
            held, size = set(), 0
            extra = 4 * samples * int(np.prod(graph.tensors[layer.input].shape))
        held.add(layer.input)
        size += extra
    return chunks


def _chunk_inputs(
    ctx: AlgorithmContext, chunk: list[_Layer], inputs: str, originals: dict[int, np.ndarray]
) -> dict[int, list[np.ndarray]]:
    """The chunk's layer inputs over every calibration sample: from the integer model of the weights chosen
    so far, or from the original float model (tensors the integer model does not hold come from the float)."""
    tensors = sorted({layer.input for layer in chunk})
    acts: dict[int, list[np.ndarray]] = {}
    if inputs == "quantized":
        acts = integer_view(ctx).quantized_activations(tensors)
    missing = [t for t in tensors if t not in acts]
    if missing:
        current = {t: ctx.graph.tensors[t].data for t in originals}
        for t, data in originals.items():
            ctx.graph.tensors[t].data = data
        try:
            acts.update(ctx.float_activations(missing))
        finally:
            for t, data in current.items():
                ctx.graph.tensors[t].data = data
    return acts


def integer_view(ctx: AlgorithmContext) -> AlgorithmContext:
    """The context's integer model, quicker to run on the host (see int8_twin)."""
    assert ctx.plan is not None
    graph, plan = int8_twin(ctx.graph, ctx.plan)
    return dataclasses.replace(ctx, graph=graph, plan=plan)


def int8_twin(graph: Graph, plan: QuantPlan) -> tuple[Graph, QuantPlan]:
    """The same integer model with per-channel INT4 weights as int8 encodings of the same integers (weights
    rounded and clipped to the INT4 grid, same scales, listed in plan.weights): it computes what the INT4
    model computes, and LiteRT runs it far faster, its INT4 convolutions unpacking their weights on every
    invoke (measured on EfficientNet-Lite0: 0.9 s an inference against 0.03 s for int8)."""
    plan = copy.deepcopy(plan)
    graph = graph.copy()
    by_name = {t.name: t for t in graph.tensors}
    for name, enc in list(plan.tensors.items()):
        tensor = by_name.get(name)
        if enc.dtype != "int4" or enc.block_size or tensor is None or not tensor.is_constant:
            continue
        _, qmax = qrange("int4")
        data = plan.weights.get(name, tensor.data)
        shape = data.shape
        tensor.data = _fake_quant(
            np.asarray(data, dtype=np.float64),
            enc.per_element(enc.scales(), shape),
            enc.per_element(enc.zero_points(), shape),
            -qmax if enc.narrow_range else -qmax - 1,
            qmax,
        ).astype(np.float32)
        plan.weights[name] = tensor.data
        plan.tensors[name] = dataclasses.replace(enc, dtype="int8")
    return graph, plan


def _hessian(
    graph: Graph,
    layer: _Layer,
    values: list[np.ndarray],
    limit: int,
    rng: np.random.Generator,
    padding: PaddingMask | None = None,
    live: list[np.ndarray] | None = None,
) -> np.ndarray:
    """[G, K, K] Gram matrix of the layer's input rows over the samples (G = 1 but for depthwise); a dense
    layer's rows at padding positions left out when there is a padding mask."""
    op = graph.ops[layer.op]
    w = graph.tensors[layer.weight].data
    total = None
    for i, x in enumerate(values):
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            kh, kw = w.shape[1], w.shape[2]
            picked = sample_positions(output_positions(op.options, kh, kw, x.shape[1], x.shape[2]), limit, rng)
            p = patches(x, op.options, kh, kw, picked)
            if op.kind == "CONV_2D":
                g = gram(p.reshape(p.shape[0], -1))[None]
            else:
                g = depthwise_gram(p, w.shape[3] // x.shape[-1])
        else:
            rows = np.swapaxes(x, -1, -2) if op.kind == "BATCH_MATMUL" and op.options.get("adjX", False) else x
            if padding is not None and live is not None:
                rows = padding.real_rows(rows, live[i])
            k = w.shape[1] if op.kind == "FULLY_CONNECTED" else w.shape[-1 if op.options.get("adjY") else -2]
            rows = rows.reshape(-1, k)
            g = gram(rows[sample_positions(rows.shape[0], limit, rng)])[None]
        total = g if total is None else total + g
    assert total is not None
    return total


def _notes(
    results: dict[str, list[tuple[float, float]]],
    kept_rtn: list[str],
    skipped: list[str],
    inputs: str,
    act_order: bool,
    rows: int,
) -> list[str]:
    notes = []
    for kind, pairs in sorted(results.items()):
        rtn = sum(r for r, _ in pairs)
        ours = sum(g for _, g in pairs)
        ratios = [g / r for r, g in pairs if r > 0]
        notes.append(
            f"{kind}: {len(pairs)} layers, calibration output error {100 * ours / rtn if rtn else 100:.1f}% of "
            f"round-to-nearest's in total (median layer {100 * float(np.median(ratios)) if ratios else 100:.1f}%)"
        )
    notes.append(
        f"inputs from the {'integer model, chunk by chunk' if inputs == 'quantized' else 'float model'}; "
        f"{'act order' if act_order else 'natural order'}; convolution Hessians from up to {rows} positions a sample"
    )
    if kept_rtn:
        notes.append(f"round-to-nearest kept where GPTQ did not lower the error: {', '.join(kept_rtn)}")
    if skipped:
        notes.append(f"not rounded by GPTQ: {', '.join(skipped)}")
    return notes
