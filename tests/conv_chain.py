"""A small conv -> depthwise -> conv -> conv -> mean -> dense float graph with uneven per-channel weight ranges
(as batch-norm folding leaves them), for the fidelity algorithms' tests."""

from __future__ import annotations

import numpy as np

from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor

_ACT = {"NONE": 0, "RELU": 1, "RELU6": 3}


def conv_chain(seed: int = 0, first_activation: str = "RELU", size: int = 12) -> bytes:
    """input [1, size, size, 4] -> CONV_2D 3x3 (8, `first_activation`) -> DEPTHWISE 3x3 stride 2 (RELU) ->
    CONV_2D 1x1 (12, NONE) -> CONV_2D 1x1 (16, RELU6) -> MEAN over H, W -> FULLY_CONNECTED (10)."""
    rng = np.random.default_rng(seed)

    def uneven(shape: tuple[int, ...], axis: int) -> np.ndarray:
        w = rng.normal(size=shape) * 0.4
        spread = np.exp(rng.normal(size=shape[axis]) * 1.2)
        bshape = [1] * len(shape)
        bshape[axis] = -1
        return (w * spread.reshape(bshape)).astype(np.float32)

    half = size // 2
    tensors: list[Tensor] = [Tensor("input", (1, size, size, 4), "float32")]
    ops: list[Op] = []

    def const(name: str, data: np.ndarray) -> int:
        tensors.append(Tensor(name, tuple(data.shape), "float32", data=data))
        return len(tensors) - 1

    def act(name: str, shape: tuple[int, ...]) -> int:
        tensors.append(Tensor(name, shape, "float32"))
        return len(tensors) - 1

    def bias(name: str, n: int) -> int:
        return const(name, (rng.normal(size=n) * 0.3).astype(np.float32))

    def conv(x: int, w: np.ndarray, name: str, out_shape: tuple[int, ...], activation: str, stride: int = 1) -> int:
        wi, bi = const(f"{name}/w", w), bias(f"{name}/b", w.shape[0])
        y = act(name, out_shape)
        options = {"padding": 0, "strideW": stride, "strideH": stride, "fusedActivationFunction": _ACT[activation],
                   "dilationWFactor": 1, "dilationHFactor": 1}
        ops.append(Op("CONV_2D", [x, wi, bi], [y], options=options, options_type="Conv2DOptions"))
        return y

    x = conv(0, uneven((8, 3, 3, 4), 0), "conv1", (1, size, size, 8), first_activation)
    wd, bd = const("dw/w", uneven((1, 3, 3, 8), 3)), bias("dw/b", 8)
    y = act("dw", (1, half, half, 8))
    ops.append(Op("DEPTHWISE_CONV_2D", [x, wd, bd], [y], options={
        "padding": 0, "strideW": 2, "strideH": 2, "depthMultiplier": 1, "fusedActivationFunction": 1,
        "dilationWFactor": 1, "dilationHFactor": 1}, options_type="DepthwiseConv2DOptions"))
    y = conv(y, uneven((12, 1, 1, 8), 0), "project", (1, half, half, 12), "NONE")
    y = conv(y, uneven((16, 1, 1, 12), 0), "expand", (1, half, half, 16), "RELU6")
    axes = const("axes", np.array([1, 2], dtype=np.int32))
    tensors[axes].dtype = "int32"
    m = act("mean", (1, 16))
    ops.append(Op("MEAN", [y, axes], [m], options={"keepDims": False}, options_type="ReducerOptions"))
    wf, bf = const("fc/w", uneven((10, 16), 0)), bias("fc/b", 10)
    out = act("logits", (1, 10))
    ops.append(Op("FULLY_CONNECTED", [m, wf, bf], [out], options={"fusedActivationFunction": 0},
                  options_type="FullyConnectedOptions"))
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[out]))


def inputs(n: int, seed: int = 1, size: int = 12) -> np.ndarray:
    """n smooth-ish input images [n, size, size, 4] (a random field blurred, so neighbours correlate)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, size + 2, size + 2, 4))
    x = (x[:, :-2, :-2] + x[:, 1:-1, 1:-1] + x[:, 2:, 2:]) / 2
    return x.astype(np.float32)
