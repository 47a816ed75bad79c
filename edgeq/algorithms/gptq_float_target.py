"""GPTQ towards the float model's output: each layer's integers minimise || Q x_q - W x ||^2, x_q the layer's
input in the integer model (every earlier layer already rounded) and x the float model's, instead of GPTQ's
|| Q x_q - W x_q ||^2. The difference is the error that reaches the layer from upstream: a layer can cancel
part of it where its inputs carry the same signal (EfficientNet-Lite0's MBConvBlock_0 depthwise filters lose
their DC gain to int8 rounding, ~0.02 on weights up to 17.7; the projection after them sees other channels
that carry the same local brightness).

|| Q X_q - W X ||^2 = || (Q - W*) X_q ||^2 + const with W* = W H_fq H_qq^-1 (H_qq = X_q^T X_q, H_fq =
X^T X_q; damped as GPTQ damps, on the correction W* - W), so this is GPTQ of the least-squares weights W* on
H_qq. A layer with fewer input rows than 8 times its inputs per output (the classifier after pooling: one row
per sample) keeps W* = W: its regression would fit the calibration samples, not the model (measured on the
test chain at INT4: 21.0 dB with the bound at 8, 19.0 at 2). Layers an earlier plan-stage algorithm already
rounded (depthwise_rounding) are kept, and a layer keeps round-to-nearest where this does not lower its
error on the calibration rows.

Measured on EfficientNet-Lite0 int8 (docs/BENCHMARKS.md, fidelity): it lowers fidelity there (9.15 dB with
depthwise_rounding and bias correction): with 1% damping W* moves far more than a rounding step from W.
"""

from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

from edgeq.algorithms import gptq
from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.layer_inputs import output_positions, patches, sample_positions
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.ir.graph import Graph
from edgeq.quant.schemes import qrange
from edgeq.runtime import LiteRT

ROWS_PER_WEIGHT = 8  # least input rows per input of a row for the regression towards the float output
_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry point (stage "plan")."""
    assert ctx.plan is not None
    graph = ctx.graph
    reference = ctx.float_graph or graph
    layers, skipped = gptq._layers(graph, ctx.plan.tensors)
    layers = [layer for layer in layers if graph.ops[layer.op].kind in _KINDS]
    kept = [x for x in layers if not np.array_equal(graph.tensors[x.weight].data, reference.tensors[x.weight].data)]
    layers = [layer for layer in layers if layer not in kept]
    if not layers or not ctx.samples:
        return ["gptq_float_target: no layer to round"]
    rng = np.random.default_rng(0)
    host = host_graph(reference)
    float_runtime = LiteRT(write_tflite(reference if host is None else host), preserve=True)
    ratios: list[float] = []
    regressed, kept_rtn = 0, []
    bar = tqdm(total=len(layers), desc="gptq (float target)", unit="layer", disable=not ctx.progress, file=sys.stderr)
    for chunk in gptq._chunks(graph, layers, len(ctx.samples), gptq.CHUNK_BYTES // 2):
        tensors = sorted({layer.input for layer in chunk})
        quant = gptq.integer_view(ctx).quantized_activations(tensors)
        floats: dict[int, list[np.ndarray]] = {t: [] for t in tensors}
        for sample in ctx.samples:
            float_runtime.run(sample)
            for t in tensors:
                floats[t].append(np.array(float_runtime.tensor(t), dtype=np.float32))
        for layer in chunk:
            h_qq, h_fq, rows = _grams(graph, layer, quant[layer.input], floats[layer.input], rng)
            to_matrix, from_matrix = gptq._views(graph, layer)
            w_ref = reference.tensors[layer.weight].data
            w = to_matrix(np.asarray(w_ref, dtype=np.float64))
            target = w
            if rows >= ROWS_PER_WEIGHT * w.shape[-1]:
                diag = np.diagonal(h_qq, axis1=1, axis2=2)
                damped = h_qq + gptq.DAMP * np.maximum(diag.mean(axis=1), 1e-30)[:, None, None] * np.eye(w.shape[-1])
                # W* = W + the ridge regression of the upstream error (X - X_q) W on X_q: damping pulls W*
                # towards W (a ridge fit of W* itself would shrink it towards 0 where inputs are correlated).
                residual = np.matmul(np.swapaxes(h_fq, 1, 2) - h_qq, np.swapaxes(w, 1, 2))
                target = w + np.swapaxes(np.linalg.solve(damped, residual), 1, 2)
                regressed += 1
            scale = to_matrix(gptq._per_element(layer.encoding, w_ref.shape, "scale"))
            zero = to_matrix(gptq._per_element(layer.encoding, w_ref.shape, "zero"))
            qmin, qmax = qrange(layer.encoding.dtype)
            if layer.encoding.narrow_range:
                qmin = -qmax
            rtn = gptq._fake_quant(w, scale, zero, qmin, qmax)
            chosen = gptq.gptq_matrix(target, h_qq, scale, zero, qmin, qmax)
            err_rtn, err = gptq.output_error(rtn - target, h_qq), gptq.output_error(chosen - target, h_qq)
            if err >= err_rtn:
                chosen = rtn
                kept_rtn.append(graph.tensors[layer.weight].name)
            elif err_rtn > 0:
                ratios.append(err / err_rtn)
            graph.tensors[layer.weight].data = from_matrix(chosen).astype(np.float32)
            bar.update(1)
        del quant, floats
    bar.close()
    notes = [
        f"rounded {len(layers)} layers towards the float output ({regressed} through the least-squares weights "
        f"W*, the rest GPTQ of W); median error vs round-to-nearest's (both towards W*): "
        f"{100 * float(np.median(ratios)) if ratios else 100:.1f}%"
    ]
    if kept:
        notes.append(f"kept the rounding of {len(kept)} layers an earlier algorithm chose")
    if kept_rtn:
        notes.append(f"round-to-nearest kept: {', '.join(kept_rtn)}")
    if skipped:
        notes.append(f"not rounded: {', '.join(skipped)}")
    return notes


def _grams(
    graph: Graph, layer: gptq._Layer, quant: list[np.ndarray], floats: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """H_qq = X_q^T X_q and H_fq = X^T X_q, [G, K, K] (G = channels for depthwise, else 1), from the same
    rows (output positions) of the integer and the float model's inputs; and the row count."""
    op = graph.ops[layer.op]
    w = graph.tensors[layer.weight].data
    h_qq = h_fq = None
    rows = 0
    for xq, xf in zip(quant, floats, strict=True):
        if op.kind == "FULLY_CONNECTED":
            pq, pf = xq.reshape(-1, w.shape[1]), xf.reshape(-1, w.shape[1])
            picked = sample_positions(pq.shape[0], gptq.ROWS_PER_SAMPLE, rng)
            pq, pf = pq[picked][None].transpose(0, 2, 1), pf[picked][None].transpose(0, 2, 1)  # [1, K, n]
        else:
            kh, kw = w.shape[1], w.shape[2]
            total = output_positions(op.options, kh, kw, xq.shape[1], xq.shape[2])
            picked = sample_positions(total, gptq.ROWS_PER_SAMPLE, rng)
            pq, pf = patches(xq, op.options, kh, kw, picked), patches(xf, op.options, kh, kw, picked)
            if op.kind == "DEPTHWISE_CONV_2D":  # [n, kh, kw, C] -> [C, K, n]
                pq = pq.reshape(pq.shape[0], kh * kw, -1).transpose(2, 1, 0)
                pf = pf.reshape(pf.shape[0], kh * kw, -1).transpose(2, 1, 0)
            else:
                pq, pf = pq.reshape(pq.shape[0], -1).T[None], pf.reshape(pf.shape[0], -1).T[None]
        pq, pf = np.ascontiguousarray(pq, dtype=np.float32), np.ascontiguousarray(pf, dtype=np.float32)
        qq = np.matmul(pq, pq.transpose(0, 2, 1)).astype(np.float64)
        fq = np.matmul(pf, pq.transpose(0, 2, 1)).astype(np.float64)
        h_qq, h_fq = (qq, fq) if h_qq is None else (h_qq + qq, h_fq + fq)
        rows += pq.shape[2]
    assert h_qq is not None and h_fq is not None
    if op.kind == "DEPTHWISE_CONV_2D":
        multiplier = w.shape[3] // quant[0].shape[-1]
        h_qq, h_fq = np.repeat(h_qq, multiplier, axis=0), np.repeat(h_fq, multiplier, axis=0)
    return h_qq, h_fq, rows
