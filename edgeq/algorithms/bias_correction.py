"""Empirical bias correction (Nagel et al. 2019, section 4.2, measured on calibration data): rounding weights
and activations shifts the mean of each output channel; that shift, measured over calibration samples, is
subtracted from the layer's float bias. Layers are corrected in execution order, each measured on the integer
model that already carries the corrections before it, so the corrections do not double count.

The shift is taken before the fused activation: E[W_q x_q] - E[W x] per output channel, where x_q is the
layer's input as the integer model computes it (dequantized) and x the float model's. Both means are exact
for the convolution as LiteRT pads it, because a convolution of the sample-mean input is the mean of the
convolutions; the float side is the float graph as calibrated (before AdaRound replaced any weights).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.layers import Layer, linear, linear_layers, matrix, patches, weight_grid
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


def float_mean_inputs(graph: Graph, tensors: list[int], samples: list) -> dict[int, np.ndarray]:
    """Mean over samples of each tensor of the float graph (float64)."""
    host = host_graph(graph)
    runtime = LiteRT(write_tflite(graph if host is None else host), preserve=True)
    sums = {t: np.zeros(graph.tensors[t].shape, np.float64) for t in tensors}
    for sample in samples:
        runtime.run(sample)
        for t in tensors:
            sums[t] += runtime.tensor(t)
    return {t: s / max(len(samples), 1) for t, s in sums.items()}


def mean_output(layer: Layer, mean_input: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-channel mean of the layer's pre-activation output without bias, from its sample-mean input."""
    return linear(layer, patches(layer, mean_input), matrix(layer, w)).mean(axis=0)


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry point (stage "plan")."""
    assert ctx.plan is not None
    graph, reference = ctx.graph, ctx.float_graph or ctx.graph
    layers = [layer for layer in linear_layers(graph, ctx.plan) if layer.bias >= 0]
    samples = evenly_spaced(ctx.samples, SAMPLES)
    float_means = float_mean_inputs(reference, sorted({layer.input for layer in layers}), samples)
    shifts: list[tuple[float, Layer]] = []
    for layer in tqdm(layers, desc="bias correction", disable=not ctx.progress):
        measured = ctx.quantized_activations([layer.input], samples).get(layer.input)
        if not measured:
            continue
        q_mean = np.mean(np.asarray(measured, dtype=np.float64), axis=0)
        scale, q, _ = weight_grid(ctx.plan, graph, layer)
        expected = mean_output(layer, float_means[layer.input], reference.tensors[layer.weight].data.astype(np.float64))
        got = mean_output(layer, q_mean, scale * q)
        shift = got - expected
        bias = graph.tensors[layer.bias]
        bias.data = (bias.data.astype(np.float64) - shift.reshape(bias.data.shape)).astype(np.float32)
        ref_bias = np.abs(reference.tensors[layer.bias].data.astype(np.float64))
        relative = np.sqrt(np.mean(np.square(shift))) / max(float(np.sqrt(np.mean(ref_bias**2))), 1e-12)
        shifts.append((float(relative), layer))
    notes = [f"corrected the biases of {len(shifts)} layers on {len(samples)} calibration samples"]
    if shifts:
        largest, where = max(shifts, key=lambda s: s[0])
        notes.append(
            f"RMS shift / RMS bias: median {np.median([s for s, _ in shifts]):.3g}, largest {largest:.3g} "
            f"({graph.where(where.op)})"
        )
    return notes
