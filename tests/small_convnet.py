"""A small classifier built in edgeq's IR with named layers, for the override and sensitivity tests:
input [1, 12, 12, 3] -> stem/conv (3x3, 8, RELU) -> block/dw (3x3 depthwise, RELU) -> block/project
(1x1, 16) -> pool/mean -> head/fc (10 classes)."""

from __future__ import annotations

import numpy as np

from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor

LAYERS = ("stem/conv", "block/dw", "block/project", "head/fc")


def small_convnet(seed: int = 0, broken: bool = False) -> bytes:
    """The model's .tflite bytes. block/dw's channel 0 is dead (zero weights, negative bias, RELU); `broken`
    gives every block/project output channel a weight 400x the largest on that dead input: the float model
    computes the same, but the weight's range leaves no quantization levels for the weights that matter."""
    rng = np.random.default_rng(seed)
    weights = {
        "stem/conv": rng.normal(size=(8, 3, 3, 3)) * 0.3,
        "block/dw": rng.normal(size=(1, 3, 3, 8)) * 0.4,
        "block/project": rng.normal(size=(16, 1, 1, 8)) * 0.4,
        "head/fc": rng.normal(size=(10, 16)) * 0.5,
    }
    weights["block/dw"][..., 0] = 0.0
    if broken:
        weights["block/project"][:, 0, 0, 0] = np.abs(weights["block/project"]).max() * 400.0
    tensors = [Tensor("input", (1, 12, 12, 3), "float32")]

    def add(name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        tensors.append(Tensor(name, shape, "float32" if data is None or data.dtype != np.int32 else "int32", data=data))
        return len(tensors) - 1

    def weight(layer: str) -> tuple[int, int]:
        w = weights[layer].astype(np.float32)
        channels = w.shape[3] if layer == "block/dw" else w.shape[0]
        bias = (rng.normal(size=channels) * 0.1).astype(np.float32)
        if layer == "block/dw":
            bias[0] = -1.0
        return add(f"{layer}/w", w.shape, w), add(f"{layer}/b", (channels,), bias)

    conv = {"padding": 0, "strideW": 1, "strideH": 1, "fusedActivationFunction": 1}
    conv |= {"dilationWFactor": 1, "dilationHFactor": 1}
    depthwise = {**conv, "depthMultiplier": 1}
    ops = []
    w, b = weight("stem/conv")
    stem = add("stem/conv", (1, 12, 12, 8))
    ops.append(Op("CONV_2D", [0, w, b], [stem], options=conv, options_type="Conv2DOptions"))
    w, b = weight("block/dw")
    dw = add("block/dw", (1, 12, 12, 8))
    ops.append(Op("DEPTHWISE_CONV_2D", [stem, w, b], [dw], options=depthwise, options_type="DepthwiseConv2DOptions"))
    w, b = weight("block/project")
    project = add("block/project", (1, 12, 12, 16))
    linear = {**conv, "fusedActivationFunction": 0}
    ops.append(Op("CONV_2D", [dw, w, b], [project], options=linear, options_type="Conv2DOptions"))
    axes = add("pool/axes", (2,), np.asarray([1, 2], dtype=np.int32))
    mean = add("pool/mean", (1, 16))
    ops.append(Op("MEAN", [project, axes], [mean], options={"keepDims": False}, options_type="ReducerOptions"))
    w, b = weight("head/fc")
    logits = add("head/fc", (1, 10))
    ops.append(
        Op("FULLY_CONNECTED", [mean, w, b], [logits], options={"fusedActivationFunction": 0},
           options_type="FullyConnectedOptions")
    )
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[logits]))


def images(n: int, seed: int) -> np.ndarray:
    """Smooth random images (low-frequency noise upsampled), closer to photos than white noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(n, 4, 4, 3))
    return np.repeat(np.repeat(coarse, 3, axis=1), 3, axis=2).astype(np.float32)
