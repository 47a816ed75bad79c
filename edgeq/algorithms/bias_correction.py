"""Empirical bias correction (Nagel et al. 2019, section 4.2, measured on calibration data): rounding weights
and activations shifts the mean of each output channel; that shift, measured over calibration samples, is
subtracted from the layer's float bias. Layers are corrected in execution order, each measured on the integer
model that already carries the corrections before it, so the corrections do not double count.

The shift is taken before the fused activation: E[W_q x_q] - E[W x] per output channel, where x_q is the
layer's input as the integer model computes it (dequantized) and x the float model's, per sample from the
input averaged per kernel tap over the output positions (exact for the convolution as LiteRT pads it: the
layer is linear); the float side is the float graph as calibrated (before AdaRound replaced any weights).
Each channel's mean shift is shrunk by its standard error over the samples (`shrunk`): on EfficientNet-Lite0
about 60% of the channels' shifts are within one standard error at 32 samples, and correcting them by the
plain mean cost 0.4 dB after GPTQ (docs/BENCHMARKS.md, "Fidelity algorithms"). Blockwise INT4 weights (the
weight-only w4-blockN schemes) are corrected the same way; with a padding mask (edgeq.calibrate.padding) a
FULLY_CONNECTED's means count its real positions only (on MiniLM w4-block32 after GPTQ: mean cosine 0.9876 ->
0.9885 at 128 calibration sentences, BENCHMARKS "MiniLM").
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.layers import Layer, linear, linear_layers, matrix, output_size, padding, weight_grid
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.ir.graph import Graph
from edgeq.runtime import LiteRT

# Calibration samples measured per layer: the integer model runs once per layer over them.
SAMPLES = 32


def evenly_spaced(samples: list, n: int) -> list:
    """n samples spread over the list (all of them when there are fewer)."""
    if len(samples) <= n:
        return list(samples)
    return [samples[i] for i in np.linspace(0, len(samples) - 1, n).round().astype(int)]


def tap_means(layer: Layer, x: np.ndarray, real: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """One sample's input rows averaged over the layer's output positions: [K] (CONV_2D, FULLY_CONNECTED) or
    [kh * kw, C] (DEPTHWISE_CONV_2D), so that linear(layer, tap_means[None], matrix) is that sample's
    per-channel mean output without bias, LiteRT's zero padding included. Each tap's mean is a strided
    window of the padded input: no patches are gathered. `real` picks a FULLY_CONNECTED input's rows at
    real (not padding) positions."""
    if layer.kind == "FULLY_CONNECTED":
        x = x if real is None else real(x)
        return x.reshape(-1, x.shape[-1]).astype(np.float64).mean(axis=0)
    (oh, ow), (sy, sx) = output_size(layer, x.shape), layer.stride
    xp = np.pad(x[0].astype(np.float64), (*padding(layer, x.shape), (0, 0)))
    taps = np.empty((layer.kernel[0], layer.kernel[1], x.shape[-1]))
    for ky in range(layer.kernel[0]):
        for kx in range(layer.kernel[1]):
            y0, x0 = ky * layer.dilation[0], kx * layer.dilation[1]
            taps[ky, kx] = xp[y0 : y0 + (oh - 1) * sy + 1 : sy, x0 : x0 + (ow - 1) * sx + 1 : sx].mean(axis=(0, 1))
    return taps.reshape(-1, x.shape[-1]) if layer.kind == "DEPTHWISE_CONV_2D" else taps.reshape(-1)


def float_tap_means(
    graph: Graph, layers: list[Layer], samples: list, reals: list[Callable[[np.ndarray], np.ndarray] | None]
) -> dict[int, np.ndarray]:
    """Per layer (by op index), [samples, ...] tap means of its input in the float graph: one pass."""
    host = host_graph(graph)
    runtime = LiteRT(write_tflite(graph if host is None else host), preserve=True)
    out: dict[int, list[np.ndarray]] = {layer.op: [] for layer in layers}
    for sample, real in zip(samples, reals, strict=True):
        runtime.run(sample)
        for layer in layers:
            out[layer.op].append(tap_means(layer, runtime.tensor(layer.input), real))
    return {op: np.stack(v) for op, v in out.items()}


def shrunk(shifts: np.ndarray) -> tuple[np.ndarray, int]:
    """The correction from per-sample shifts [samples, channels]: each channel's mean, shrunk towards 0 by
    its sampling noise (m (1 - se^2 / m^2), 0 where |m| <= se, se the standard error of the mean), since a
    correction estimated from few samples adds its own error se^2 to every later input. Also how many
    channels were left at 0."""
    n = shifts.shape[0]
    m = shifts.mean(axis=0)
    if n < 2:
        return m, 0
    se2 = shifts.var(axis=0, ddof=1) / n
    factor = np.clip(1 - se2 / np.maximum(np.square(m), 1e-300), 0, 1)
    return m * factor, int(np.sum(factor == 0))


def _real_rows(ctx: AlgorithmContext, samples: list) -> list[Callable[[np.ndarray], np.ndarray] | None]:
    """Per sample, what picks an activation's rows at real positions (None: every row)."""
    mask = ctx.padding
    if mask is None:
        return [None] * len(samples)
    return [functools.partial(mask.real_rows, live=mask.live(s)) for s in samples]


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry point (stage "plan")."""
    assert ctx.plan is not None
    graph, reference = ctx.graph, ctx.float_graph or ctx.graph
    layers = [layer for layer in linear_layers(graph, ctx.plan, blocks=True) if layer.bias >= 0]
    live = ctx.live_positions(ctx.samples)
    usable = [s for i, s in enumerate(ctx.samples) if live is None or live[i].any()]  # all padding: nothing real
    samples = evenly_spaced(usable, SAMPLES)
    reals = _real_rows(ctx, samples)
    float_taps = float_tap_means(reference, layers, samples, reals)
    shifts: list[tuple[float, Layer]] = []
    zeroed = channels = 0
    for layer in tqdm(layers, desc="bias correction", disable=not ctx.progress):
        measured = ctx.quantized_activations([layer.input], samples).get(layer.input)
        if not measured:
            continue
        q_taps = np.stack([tap_means(layer, x, real) for x, real in zip(measured, reals, strict=True)])
        scale, q, _ = weight_grid(ctx.plan, graph, layer)
        w_float = matrix(layer, reference.tensors[layer.weight].data.astype(np.float64))
        per_sample = linear(layer, q_taps, matrix(layer, scale * q)) - linear(layer, float_taps[layer.op], w_float)
        shift, dropped = shrunk(per_sample)
        zeroed, channels = zeroed + dropped, channels + shift.size
        bias = graph.tensors[layer.bias]
        bias.data = (bias.data.astype(np.float64) - shift.reshape(bias.data.shape)).astype(np.float32)
        ref_bias = np.abs(reference.tensors[layer.bias].data.astype(np.float64))
        relative = np.sqrt(np.mean(np.square(shift))) / max(float(np.sqrt(np.mean(ref_bias**2))), 1e-12)
        shifts.append((float(relative), layer))
    notes = [f"corrected the biases of {len(shifts)} layers on {len(samples)} calibration samples"]
    notes.append(f"{zeroed} of {channels} channels left uncorrected (shift within its standard error)")
    if shifts:
        largest, where = max(shifts, key=lambda s: s[0])
        notes.append(
            f"RMS shift / RMS bias: median {np.median([s for s, _ in shifts]):.3g}, largest {largest:.3g} "
            f"({graph.where(where.op)})"
        )
    return notes
