"""AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"): each weight
is rounded down or up, chosen by learning, layer by layer, to reconstruct the float layer's output rather
than each weight on its own.

Per layer the rounding is floor(w / s) + h(V), h the rectified sigmoid clip(sigmoid(V) (zeta - gamma) +
gamma, 0, 1), V initialised so that h(V) equals the fractional part (round-to-nearest's neighbourhood). The
loss is || act(W x + b) - act(W~ x_q + b) ||^2 plus lambda * sum(1 - |2 h(V) - 1|^beta), beta annealed from
20 to 2 after a warm-up, which drives every h(V) to 0 or 1. x is the float model's input to the layer and
x_q the integer model's (dequantized, with every earlier layer already rounded this way), so each layer also
absorbs the error that reaches it ("asymmetric reconstruction" in the paper). Inputs are patches sampled
from calibration samples; the optimisation runs in torch on the CPU for a bounded number of steps.

The chosen integers q are stored as float weights scale * q (float32), which the renderer re-quantizes to
exactly q with the plan's scales. A layer keeps the integers it had (round-to-nearest, or what an earlier
algorithm such as GPTQ chose) where the learned ones do not reconstruct its output better, and where it has
fewer sampled rows than weights per output channel (the classifier after global pooling sees one row per
sample): there the rounding cannot be fitted without overfitting the calibration samples.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.bias_correction import evenly_spaced
from edgeq.algorithms.context import AlgorithmContext, torch_single_thread
from edgeq.algorithms.gptq import integer_view
from edgeq.algorithms.layers import Layer, activate, linear_layers, matrix, output_size, patches, weight_grid

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (paper, section 4)
ITERATIONS = 500
BATCH = 256  # rows per step
LEARNING_RATE = 0.1  # measured on int4 layers: 500 steps at 0.1 reach what 2000 at 0.01 do
REG_WEIGHT = 0.01  # lambda
WARMUP = 0.2  # share of the steps without the rounding regulariser
BETA = (20.0, 2.0)
SAMPLES = 32  # calibration samples the layer inputs are taken from
ROWS_PER_SAMPLE = 256  # output positions sampled per calibration sample


def _initial_v(fraction: np.ndarray) -> np.ndarray:
    """V with h(V) = fraction (clipped into the sigmoid's open range)."""
    p = np.clip((fraction - GAMMA) / (ZETA - GAMMA), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def rectified_sigmoid(v):
    """h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1): the soft choice between floor (0) and floor + 1."""
    import torch

    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def rounding_penalty(hs, step: int, warm: int, iterations: int):
    """The regulariser sum(1 - |2h - 1|^beta) over the soft roundings hs, beta annealed from BETA[0] to
    BETA[1] after the warm-up (0 before it): it drives every h to 0 or 1."""
    if step < warm:
        return 0.0
    beta = BETA[1] + (BETA[0] - BETA[1]) * (1 - (step - warm) / max(iterations - warm, 1))
    return sum((1 - (2 * h - 1).abs() ** beta).sum() for h in hs)


class LayerData:
    """Rows sampled from one layer's input in the float and the integer model, at the same positions."""

    def __init__(self, layer: Layer, float_maps: list[np.ndarray], quant_maps: list[np.ndarray], seed: int) -> None:
        rng = np.random.default_rng(seed)
        f_rows, q_rows = [], []
        for xf, xq in zip(float_maps, quant_maps, strict=True):
            if layer.kind == "FULLY_CONNECTED":
                positions = None
            else:
                total = int(np.prod(output_size(layer, xf.shape)))
                positions = np.sort(rng.choice(total, size=min(total, ROWS_PER_SAMPLE), replace=False))
            f_rows.append(patches(layer, xf, positions))
            q_rows.append(patches(layer, xq, positions))
        self.float_rows = np.concatenate(f_rows).astype(np.float32)
        self.quant_rows = np.concatenate(q_rows).astype(np.float32)


def reconstruct(
    layer: Layer,
    data: LayerData,
    w_float: np.ndarray,
    bias: np.ndarray | None,
    scale: np.ndarray,
    qmax: int,
    iterations: int = ITERATIONS,
    seed: int = 0,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float]:
    """Learned integers for one layer (the weight's shape), with the output reconstruction MSE (after the
    fused activation, over all sampled rows) of `start` (integers an earlier algorithm chose, e.g. GPTQ;
    round-to-nearest by default) and of the result, which is `start` unless the learned rounding is better."""
    import torch

    torch.manual_seed(seed)
    mat_f = torch.from_numpy(matrix(layer, w_float).astype(np.float32))
    s = torch.from_numpy(matrix(layer, scale).astype(np.float32))
    ratio = matrix(layer, w_float.astype(np.float64) / scale)
    floor = torch.from_numpy(np.floor(ratio).astype(np.float32))
    b = torch.zeros(mat_f.shape[0] if layer.kind != "DEPTHWISE_CONV_2D" else mat_f.shape[1])
    if bias is not None:
        b = torch.from_numpy(bias.reshape(-1).astype(np.float32))
    xf = torch.from_numpy(data.float_rows)
    xq = torch.from_numpy(data.quant_rows)

    def out(x, mat):
        y = torch.einsum("pkc,kc->pc", x, mat) if layer.kind == "DEPTHWISE_CONV_2D" else x @ mat.T
        return activate(layer.activation, y + b)

    def weights(h):
        return s * torch.clamp(floor + h, -qmax, qmax)

    with torch.no_grad():
        target = out(xf, mat_f)
        first = np.rint(ratio) if start is None else matrix(layer, start)
        initial = torch.from_numpy((first - np.floor(ratio)).astype(np.float32))

        def error(h):
            return float(torch.mean(torch.square(out(xq, weights(h)) - target)))

        start_error = error(initial)
    v = torch.nn.Parameter(torch.from_numpy(_initial_v((ratio - np.floor(ratio)).astype(np.float32))))
    optimizer = torch.optim.Adam([v], lr=LEARNING_RATE)
    rows = xq.shape[0]
    warm = int(WARMUP * iterations)
    for step in range(iterations):
        idx = torch.randint(0, rows, (min(BATCH, rows),))
        h = rectified_sigmoid(v)
        rec = torch.square(out(xq[idx], weights(h)) - target[idx]).sum(dim=1).mean()
        rec = rec + REG_WEIGHT * rounding_penalty([h], step, warm, iterations)
        optimizer.zero_grad()
        rec.backward()
        optimizer.step()
    with torch.no_grad():
        hard = (v >= 0).float()
        ada_error = error(hard)
        chosen = hard if ada_error < start_error else initial
        q = torch.clamp(floor + chosen, -qmax, qmax).numpy().astype(np.float64)
    return q.reshape(w_float.shape), start_error, min(ada_error, start_error)


def _run(ctx: AlgorithmContext) -> list[str]:
    graph = ctx.graph
    reference = ctx.float_graph or graph
    samples = evenly_spaced(ctx.samples, SAMPLES)
    layers = linear_layers(graph, ctx.plan)
    fitted, kept, skipped, gains = 0, 0, [], []
    float_maps = ctx.float_activations(sorted({layer.input for layer in layers}), samples, original=True)
    for k, layer in enumerate(tqdm(layers, desc="adaround", disable=not ctx.progress)):
        w = reference.tensors[layer.weight].data
        per_channel = int(np.prod(w.shape)) // (w.shape[3] if layer.kind == "DEPTHWISE_CONV_2D" else w.shape[0])
        # The int8 twin computes what the INT4 model does, and LiteRT runs it 30x faster (gptq.int8_twin).
        quant = integer_view(ctx).quantized_activations([layer.input], samples).get(layer.input)
        if quant is None:
            skipped.append(layer)
            continue
        data = LayerData(layer, float_maps[layer.input], quant, seed=k)
        if data.quant_rows.shape[0] < per_channel:
            skipped.append(layer)
            continue
        scale, current, qmax = weight_grid(ctx.plan, graph, layer)
        bias = None if layer.bias < 0 else reference.tensors[layer.bias].data
        q, before, ada = reconstruct(layer, data, w, bias, scale, qmax, iterations=ITERATIONS, seed=k, start=current)
        graph.tensors[layer.weight].data = (scale * q).astype(np.float32)
        fitted += 1
        kept += int(ada >= before)
        gains.append(10 * np.log10(max(before, 1e-30) / max(ada, 1e-30)))
    notes = [
        f"learned the rounding of {fitted} layers ({ITERATIONS} steps of {BATCH} rows, {SAMPLES} calibration samples);"
        f" {kept} kept their previous integers (the learned ones were not better)"
    ]
    if gains:
        notes.append(
            "layer output error vs the previous integers (round-to-nearest unless an earlier algorithm chose): "
            f"median {np.median(gains):.2f} dB lower, "
            f"least {min(gains):.2f} dB, most {max(gains):.2f} dB"
        )
    if skipped:
        notes.append(
            "kept their integers (fewer sampled rows than weights per channel, or no integer input): "
            + ", ".join(graph.where(layer.op) for layer in skipped)
        )
    return notes


run = torch_single_thread(_run)  # the registered entry point (stage "plan")
