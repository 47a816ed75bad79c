"""The linear layers (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) as matrices over input patches, shared by
the algorithms that reconstruct or correct a layer's output from its input (AdaRound, bias correction).

A layer's pre-activation output at one position is `rows @ matrix.T + bias` (depthwise: a per-channel dot
product over the kernel taps), where a row is the input patch the kernel sees there, gathered with LiteRT's
padding, stride and dilation, so the numbers match what the interpreter computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.ir.graph import Graph
from edgeq.quant.plan import QuantPlan
from edgeq.quant.schemes import qrange, quantize_array

LINEAR_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_SAME = 0  # tflite Padding enum: SAME = 0, VALID = 1


@dataclass(frozen=True)
class Layer:
    op: int
    kind: str
    input: int  # tensor indices
    output: int
    weight: int
    bias: int  # -1 when the layer has none
    activation: str  # fused activation: NONE, RELU, RELU6, ...
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    same_padding: bool = False


def linear_layers(graph: Graph, plan: QuantPlan | None = None, blocks: bool = False) -> list[Layer]:
    """Linear layers with constant float weights, in execution order; with a plan, only those whose weights
    it quantizes per channel (int8 or int4), or per block too with `blocks`."""
    out = []
    for i, op in enumerate(graph.ops):
        if op.kind not in LINEAR_OPS or len(op.inputs) < 2:
            continue
        w = graph.tensors[op.inputs[1]]
        if not w.is_constant or w.dtype != "float32" or graph.tensors[op.inputs[0]].is_constant:
            continue
        if op.kind == "DEPTHWISE_CONV_2D" and w.shape[3] != graph.tensors[op.inputs[0]].shape[3]:
            continue  # depth multiplier > 1
        if op.kind == "FULLY_CONNECTED" and w.data.ndim != 2:
            continue
        if plan is not None:
            enc = plan.tensors.get(w.name)
            if enc is None or (enc.block_size and not blocks) or enc.dtype not in ("int8", "int4"):
                continue
        bias = op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] >= 0 else -1
        if bias >= 0 and not graph.tensors[bias].is_constant:
            continue
        o = op.options
        conv = op.kind != "FULLY_CONNECTED"
        out.append(
            Layer(
                op=i,
                kind=op.kind,
                input=op.inputs[0],
                output=op.outputs[0],
                weight=op.inputs[1],
                bias=bias,
                activation=op.fused_activation,
                kernel=(w.shape[1], w.shape[2]) if conv else (1, 1),
                stride=(o.get("strideH", 1), o.get("strideW", 1)) if conv else (1, 1),
                dilation=(o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)) if conv else (1, 1),
                same_padding=conv and o.get("padding", _SAME) == _SAME,
            )
        )
    return out


def output_size(layer: Layer, x_shape: tuple[int, ...]) -> tuple[int, int]:
    """Output height and width of a convolution on an NHWC input."""
    size = []
    for d in range(2):
        n, k = x_shape[1 + d], (layer.kernel[d] - 1) * layer.dilation[d] + 1
        size.append(-(-n // layer.stride[d]) if layer.same_padding else (n - k) // layer.stride[d] + 1)
    return size[0], size[1]


def padding(layer: Layer, x_shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(top, bottom), (left, right) zero padding of a convolution on an NHWC input, as LiteRT pads."""
    pads = []
    for d, o in enumerate(output_size(layer, x_shape)):
        k = (layer.kernel[d] - 1) * layer.dilation[d] + 1
        total = max((o - 1) * layer.stride[d] + k - x_shape[1 + d], 0) if layer.same_padding else 0
        pads.append((total // 2, total - total // 2))
    return pads[0], pads[1]


def patches(layer: Layer, x: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
    """Input rows of one sample. Convolutions: x is [1, H, W, C]; `positions` are flat output positions (all
    when None); rows are [P, kh * kw * C] (CONV_2D, the order of weight.reshape(out, -1)) or [P, kh * kw, C]
    (DEPTHWISE_CONV_2D). FULLY_CONNECTED: x reshaped to [rows, inputs]."""
    if layer.kind == "FULLY_CONNECTED":
        return x.reshape(-1, x.shape[-1]) if positions is None else x.reshape(-1, x.shape[-1])[positions]
    oh, ow = output_size(layer, x.shape)
    xp = np.pad(x[0], (*padding(layer, x.shape), (0, 0)))
    if positions is None:
        positions = np.arange(oh * ow)
    oy, ox = positions // ow, positions % ow
    ky = np.arange(layer.kernel[0]) * layer.dilation[0]
    kx = np.arange(layer.kernel[1]) * layer.dilation[1]
    ys = (oy * layer.stride[0])[:, None, None] + ky[None, :, None]
    xs = (ox * layer.stride[1])[:, None, None] + kx[None, None, :]
    rows = xp[ys, xs]  # [P, kh, kw, C]
    if layer.kind == "DEPTHWISE_CONV_2D":
        return rows.reshape(rows.shape[0], -1, rows.shape[-1])
    return rows.reshape(rows.shape[0], -1)


def matrix(layer: Layer, w: np.ndarray) -> np.ndarray:
    """The weight as the patches multiply it: [out, K] (CONV_2D, FULLY_CONNECTED) or [kh * kw, C] (depthwise)."""
    if layer.kind == "DEPTHWISE_CONV_2D":
        return w.reshape(-1, w.shape[-1])
    return w.reshape(w.shape[0], -1)


def linear(layer: Layer, rows: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Pre-activation output without bias, [P, channels]."""
    if layer.kind == "DEPTHWISE_CONV_2D":
        return np.einsum("pkc,kc->pc", rows, mat)
    return rows @ mat.T


def activate(name: str, y):
    """The fused activation, on numpy arrays or torch tensors."""
    if name == "RELU":
        return y.clip(0, None)
    if name == "RELU6":
        return y.clip(0, 6)
    if name == "RELU_N1_TO_1":
        return y.clip(-1, 1)
    return y


def weight_grid(plan: QuantPlan, graph: Graph, layer: Layer) -> tuple[np.ndarray, np.ndarray, int]:
    """(per-channel or per-block scales broadcast against the weight, the plan's round-to-nearest integers,
    qmax)."""
    w = graph.tensors[layer.weight]
    enc = plan.tensors[w.name]
    scale = enc.per_element(enc.scales(), w.data.shape)
    q = quantize_array(
        w.data, enc.scales(), enc.zero_points(), enc.axis, enc.dtype, narrow=enc.narrow_range, block_size=enc.block_size
    )
    return scale, q.astype(np.float64), qrange(enc.dtype)[1]
