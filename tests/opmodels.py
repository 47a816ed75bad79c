"""Small integer .tflite models, one builtin under test each, for checking an interpreter bit for bit against
LiteRT's reference kernels (BUILTIN_REF).

Every op gets one or more tiny float tf.function models whose variants change the integer arithmetic (strides,
padding, dilation, fused activations, broadcasting, axes, resize modes, ...), plus a few multi-op blocks. Each is
quantized by every quantizer that accepts it: TFLiteConverter full-integer PTQ (int8, int16x8),
ai-edge-quantizer's static recipes (w8a8, w8a16, and int8 activations with int4 per-channel weights in
CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED), edgeq (int8, int16x8), and legacy asymmetric uint8 (uint8
activations and per-tensor weights: the float graph with FakeQuant nodes inserted, through the TF1 converter).
A model is kept only if it holds the op under test with integer tensors and LiteRT's reference kernels run it;
refusals are cached too, so the list is the same on every run.

The spec's float .tflite itself is cached too, as quantizer FLOAT ("float"), for exporters that start from the
float model (Core ML): asked for by name only, so op_models() without quantizers lists the integer corpus. A few
specs are built as FLOAT only (ops edgeq leaves float, batch-1 twins of specs edgeq cannot calibrate).

Models are built once, deterministically, into `<repo>/.cache/opmodels/<hash of this file>/` (the base
directory is EDGEQ_OPMODELS_DIR if set), by worker processes that each import TensorFlow once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

QUANTIZERS = (
    "tflite_int8",
    "tflite_int16x8",
    "aeq_w8a8",
    "aeq_w8a16",
    "edgeq_int8",
    "edgeq_int16x8",
    "uint8",
    "int4",
)
# Not a quantizer: the float model every quantizer above starts from, listed only when asked for.
FLOAT = "float"
# Quantizers that can keep float inputs and outputs; they also build "_intio" variants of specs that ask.
_FLOAT_IO = ("tflite_int8", "tflite_int16x8", "edgeq_int8", "edgeq_int16x8")
# Ops given int4 weights (per channel) by ai-edge-quantizer under int8 activations, the ones with int4 kernels.
_INT4_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_CALIB_SAMPLES = 20


@dataclass(frozen=True)
class OpModel:
    """One cached integer model: `op` is the builtin under test, `quantizer` what made it."""

    name: str  # "<spec>.<quantizer>", e.g. "conv2d_3x3_s2_same_relu6.tflite_int8"
    op: str
    quantizer: str
    path: Path


# ---------------------------------------------------------------------------------------------------------
# Model specs


@dataclass(frozen=True)
class _Input:
    """One model input; calibration samples lie in [lo, hi] (int32 inputs are indices in [lo, hi))."""

    shape: tuple[int, ...]
    lo: float = -2.0
    hi: float = 2.0
    dtype: str = "float32"


@dataclass(frozen=True)
class _Spec:
    """A float model: body(tf, w, *inputs) returns its outputs, drawing constants from w."""

    name: str
    op: str
    inputs: tuple[_Input, ...]
    body: Callable[..., Any]
    int_io: bool = False  # also build integer-I/O variants "<name>_intio"
    # A rewrite of the converted flatbuffer where TF has no op that converts to the builtin: RESHAPE to
    # SQUEEZE or EXPAND_DIMS (the converter turns both into RESHAPE), GATHER to EMBEDDING_LOOKUP.
    rewrite: tuple[str, tuple[int, ...]] | None = None
    requantize: bool = False  # the op under test must take an integer input (QUANTIZE int -> int)
    # Built as the FLOAT model only: an op the Core ML lowering is tested on, kept out of the integer corpus
    # (which the native interpreter is held to LiteRT on, and which these specs would change).
    float_only: bool = False


class _Weights:
    """Constants of one spec, drawn in order from a generator seeded by the spec name. The last axis (the
    output channel of every TF weight layout) gets magnitudes spread over a decade, so per-channel scales
    differ."""

    def __init__(self, name: str) -> None:
        self._rng = np.random.default_rng(zlib.crc32(name.encode()))

    def __call__(self, *shape: int, scale: float = 0.3) -> np.ndarray:
        spread = self._rng.permutation(np.geomspace(0.3, 3.0, shape[-1]))
        return (self._rng.standard_normal(shape) * scale * spread).astype(np.float32)


def _x(*shape: int, lo: float = -2.0, hi: float = 2.0) -> _Input:
    return _Input(shape, lo, hi)


_ACTIVATIONS: dict[str | None, Callable[[Any, Any], Any]] = {
    None: lambda tf, y: y,
    "relu": lambda tf, y: tf.nn.relu(y),
    "relu6": lambda tf, y: tf.nn.relu6(y),
    "relu_n1_to_1": lambda tf, y: tf.clip_by_value(y, -1.0, 1.0),
}


def _unary(name: str, op: str, f: Callable[[Any, Any], Any], x: _Input, int_io: bool = False) -> _Spec:
    return _Spec(name, op, (x,), lambda tf, w, a: f(tf, a), int_io)


def _binary(
    name: str,
    op: str,
    f: Callable[[Any, Any, Any], Any],
    a: _Input,
    b: _Input,
    act: str | None = None,
    int_io: bool = False,
) -> _Spec:
    return _Spec(name, op, (a, b), lambda tf, w, x, y: _ACTIVATIONS[act](tf, f(tf, x, y)), int_io)


def _conv(
    name: str,
    shape: tuple[int, ...],
    cout: int,
    kernel: tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: str = "SAME",
    dilation: int = 1,
    act: str | None = None,
    bias: bool = True,
    int_io: bool = False,
) -> _Spec:
    def body(tf: Any, w: _Weights, x: Any) -> Any:
        y = tf.nn.conv2d(x, w(*kernel, shape[-1], cout), stride, padding, dilations=dilation)
        return _ACTIVATIONS[act](tf, y + w(cout, scale=0.5) if bias else y)

    return _Spec(name, "CONV_2D", (_x(*shape),), body, int_io)


def _depthwise(
    name: str,
    shape: tuple[int, ...],
    kernel: tuple[int, int],
    multiplier: int = 1,
    stride: int = 1,
    padding: str = "SAME",
    dilation: int = 1,
    act: str | None = None,
    int_io: bool = False,
) -> _Spec:
    def body(tf: Any, w: _Weights, x: Any) -> Any:
        y = tf.nn.depthwise_conv2d(
            x, w(*kernel, shape[-1], multiplier, scale=0.5), [1, stride, stride, 1], padding, dilations=[dilation] * 2
        )
        return _ACTIVATIONS[act](tf, y + w(shape[-1] * multiplier, scale=0.5))

    return _Spec(name, "DEPTHWISE_CONV_2D", (_x(*shape),), body, int_io)


def _transpose_conv(
    name: str,
    shape: tuple[int, ...],
    cout: int,
    kernel: int,
    stride: int,
    padding: str,
    bias: bool = False,
    act: str | None = None,
) -> _Spec:
    n, h, w_, _ = shape
    size = (h * stride, w_ * stride) if padding == "SAME" else ((h - 1) * stride + kernel, (w_ - 1) * stride + kernel)

    def body(tf: Any, w: _Weights, x: Any) -> Any:
        y = tf.nn.conv2d_transpose(x, w(kernel, kernel, cout, shape[-1]), [n, *size, cout], stride, padding)
        return _ACTIVATIONS[act](tf, y + w(cout, scale=0.5) if bias else y)

    return _Spec(name, "TRANSPOSE_CONV", (_x(*shape),), body)


def _dense(
    name: str, shape: tuple[int, ...], units: int, bias: bool = True, act: str | None = None, int_io: bool = False
) -> _Spec:
    def body(tf: Any, w: _Weights, x: Any) -> Any:
        y = tf.matmul(x, w(shape[-1], units))  # rank > 2 inputs: FULLY_CONNECTED with keep_num_dims
        return _ACTIVATIONS[act](tf, y + w(units, scale=0.5) if bias else y)

    return _Spec(name, "FULLY_CONNECTED", (_x(*shape),), body, int_io)


def _pool(
    name: str, op: str, shape: tuple[int, ...], size: int, stride: int, padding: str, act: str | None = None
) -> _Spec:
    pool = "avg_pool2d" if op == "AVERAGE_POOL_2D" else "max_pool2d"
    return _unary(
        name, op, lambda tf, x: _ACTIVATIONS[act](tf, getattr(tf.nn, pool)(x, size, stride, padding)), _x(*shape)
    )


def _reduce(name: str, op: str, shape: tuple[int, ...], axis: Sequence[int], keepdims: bool) -> _Spec:
    fn = {"MEAN": "reduce_mean", "SUM": "reduce_sum", "REDUCE_MAX": "reduce_max", "REDUCE_MIN": "reduce_min"}[op]
    return _unary(name, op, lambda tf, x: getattr(tf, fn)(x, list(axis), keepdims=keepdims), _x(*shape))


def _resize(
    name: str,
    op: str,
    shape: tuple[int, ...],
    size: tuple[int, int],
    align_corners: bool = False,
    half_pixel_centers: bool = False,
) -> _Spec:
    fn = "resize_bilinear" if op == "RESIZE_BILINEAR" else "resize_nearest_neighbor"
    return _unary(
        name,
        op,
        lambda tf, x: getattr(tf.compat.v1.image, fn)(
            x, size, align_corners=align_corners, half_pixel_centers=half_pixel_centers
        ),
        _x(*shape),
    )


def _prelu(name: str, shape: tuple[int, ...], alpha_shape: tuple[int, ...]) -> _Spec:
    """Keras' PReLU lowering, relu(x) - alpha * relu(-x), which the converter fuses into PRELU."""
    return _Spec(name, "PRELU", (_x(*shape),), lambda tf, w, x: tf.nn.relu(x) + (-w(*alpha_shape)) * tf.nn.relu(-x))


def _hard_swish(tf: Any, x: Any) -> Any:
    return x * tf.nn.relu6(x + 3.0) / 6.0  # the converter matches this to HARD_SWISH


def _layer_norm(tf: Any, w: _Weights, x: Any) -> Any:
    """Centred with SUB and squared with MUL: SQUARED_DIFFERENCE has no int16 kernel."""
    centred = x - tf.reduce_mean(x, -1, keepdims=True)
    var = tf.reduce_mean(centred * centred, -1, keepdims=True)
    width = x.shape[-1]
    return centred * tf.math.rsqrt(var + 1e-5) * (1.0 + w(width, scale=0.1)) + w(width, scale=0.1)


def _mobilenet_block(tf: Any, w: _Weights, x: Any) -> Any:
    """Inverted residual: 1x1 expand (relu6), 3x3 depthwise (relu6), squeeze-excite gate, 1x1 project, add."""
    c = x.shape[-1]
    h = tf.nn.relu6(tf.nn.conv2d(x, w(1, 1, c, 24), 1, "SAME") + w(24))
    h = tf.nn.relu6(tf.nn.depthwise_conv2d(h, w(3, 3, 24, 1), [1, 1, 1, 1], "SAME") + w(24))
    se = tf.reduce_mean(h, [1, 2], keepdims=True)
    se = tf.nn.relu(tf.nn.conv2d(se, w(1, 1, 24, 6), 1, "SAME") + w(6))
    h = h * tf.nn.relu6(tf.nn.conv2d(se, w(1, 1, 6, 24), 1, "SAME") + w(24) + 3.0) / 6.0
    return x + tf.nn.conv2d(_hard_swish(tf, h), w(1, 1, 24, c), 1, "SAME") + w(c)


def _transformer_block(tf: Any, w: _Weights, x: Any) -> Any:
    """Pre-norm attention (2 heads, BATCH_MATMUL with adj_y, softmax) and a GELU feed-forward."""
    tokens, width, heads = x.shape[1], x.shape[2], 2
    head = width // heads
    h = _layer_norm(tf, w, x)

    def split(t: Any) -> Any:
        return tf.transpose(tf.reshape(t, [1, tokens, heads, head]), [0, 2, 1, 3])

    q, k, v = (split(tf.matmul(h, w(width, width)) + w(width, scale=0.1)) for _ in range(3))
    attention = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * (1.0 / head**0.5))
    mixed = tf.reshape(tf.transpose(tf.matmul(attention, v), [0, 2, 1, 3]), [1, tokens, width])
    x = x + tf.matmul(mixed, w(width, width)) + w(width, scale=0.1)
    ff = tf.nn.gelu(tf.matmul(_layer_norm(tf, w, x), w(width, 2 * width)) + w(2 * width, scale=0.1))
    return x + tf.matmul(ff, w(2 * width, width))


def _audio_block(tf: Any, w: _Weights, x: Any) -> Any:
    """1-D convolutions over time as CONV_2D on N x 1 x T x C: strided, dilated, then pooled to a classifier."""
    h = tf.nn.relu(tf.nn.conv2d(x, w(1, 5, x.shape[-1], 8), [1, 1, 2, 1], "SAME") + w(8))
    h = tf.nn.relu(tf.nn.conv2d(h, w(1, 3, 8, 8), 1, "SAME", dilations=[1, 2]) + w(8))
    h = tf.nn.relu6(tf.nn.conv2d(h, w(1, 3, 8, 12), [1, 1, 2, 1], "VALID") + w(12))
    return tf.nn.softmax(tf.matmul(tf.reduce_mean(h, [1, 2]), w(12, 5)) + w(5))


def _specs() -> list[_Spec]:
    image = _x(1, 8, 8, 4)
    row = _x(1, 8, 4)
    return [
        # Boundary ops: float I/O QUANTIZE/DEQUANTIZE, and an int8 -> int8 requantize in front of a
        # concatenation of differently-scaled inputs.
        _unary("quantize_dequantize_relu", "QUANTIZE", lambda tf, x: tf.nn.relu(x), image),
        _unary("dequantize_tanh", "DEQUANTIZE", lambda tf, x: tf.tanh(x), _x(1, 17)),
        _Spec(
            "requantize_concat",
            "QUANTIZE",
            (row, _x(1, 8, 4, lo=-8, hi=8)),
            lambda tf, w, a, b: tf.concat([tf.sigmoid(a), b], -1),
            int_io=True,
            requantize=True,
        ),
        # CONV_2D
        _conv("conv2d_3x3_s1_same", (1, 8, 8, 4), 8, (3, 3)),
        _conv("conv2d_3x3_s2_same_relu6", (1, 8, 8, 4), 8, (3, 3), 2, act="relu6", int_io=True),
        _conv("conv2d_3x3_s2_valid_relu", (1, 9, 9, 3), 5, (3, 3), 2, "VALID", act="relu"),
        _conv("conv2d_1x1_relu_n1_to_1", (1, 8, 8, 4), 17, (1, 1), act="relu_n1_to_1"),
        _conv("conv2d_5x3_s1x2_valid", (1, 13, 13, 5), 3, (5, 3), (1, 2), "VALID"),
        _conv("conv2d_3x3_d2_same_relu", (1, 8, 8, 4), 8, (3, 3), dilation=2, act="relu"),
        _conv("conv2d_3x3_batch2_nobias", (2, 7, 7, 3), 5, (3, 3), bias=False),
        _conv("conv2d_3x3_32x32x16_relu", (1, 32, 32, 16), 16, (3, 3), act="relu"),
        # DEPTHWISE_CONV_2D
        _depthwise("dwconv_3x3_s1_same", (1, 8, 8, 4), (3, 3)),
        _depthwise("dwconv_3x3_s2_same_relu6", (1, 8, 8, 4), (3, 3), stride=2, act="relu6", int_io=True),
        _depthwise("dwconv_3x3_m2_valid_relu", (1, 7, 7, 4), (3, 3), multiplier=2, padding="VALID", act="relu"),
        _depthwise("dwconv_3x3_m3_s2_valid", (1, 13, 13, 3), (3, 3), multiplier=3, stride=2, padding="VALID"),
        _depthwise("dwconv_5x5_d2_same", (1, 9, 9, 5), (5, 5), dilation=2),
        _depthwise("dwconv_3x3_13x13x17", (1, 13, 13, 17), (3, 3), act="relu_n1_to_1"),
        _depthwise("dwconv_3x3_32x32x16_relu6", (1, 32, 32, 16), (3, 3), act="relu6"),
        # TRANSPOSE_CONV
        _transpose_conv("transpose_conv_3x3_s2_same", (1, 8, 8, 4), 5, 3, 2, "SAME"),
        _transpose_conv("transpose_conv_2x2_s2_valid", (1, 7, 7, 3), 4, 2, 2, "VALID"),
        _transpose_conv("transpose_conv_3x3_s1_same_bias_relu", (1, 8, 8, 4), 8, 3, 1, "SAME", bias=True, act="relu"),
        _transpose_conv("transpose_conv_3x3_s2_valid_bias", (1, 5, 5, 17), 3, 3, 2, "VALID", bias=True),
        # FULLY_CONNECTED
        _dense("fc_16_10_relu", (1, 16), 10, act="relu", int_io=True),
        _dense("fc_batch3_nobias", (3, 13), 5, bias=False),
        _dense("fc_keep_num_dims", (1, 5, 16), 7),
        _dense("fc_17_33_relu6", (1, 17), 33, act="relu6"),
        _dense("fc_256_64", (1, 256), 64),
        # BATCH_MATMUL
        _binary("batch_matmul", "BATCH_MATMUL", lambda tf, a, b: tf.matmul(a, b), _x(1, 4, 6), _x(1, 6, 5)),
        _binary(
            "batch_matmul_adj_x",
            "BATCH_MATMUL",
            lambda tf, a, b: tf.matmul(a, b, transpose_a=True),
            _x(2, 6, 4),
            _x(2, 6, 5),
        ),
        _binary(
            "batch_matmul_adj_y",
            "BATCH_MATMUL",
            lambda tf, a, b: tf.matmul(a, b, transpose_b=True),
            _x(2, 4, 6),
            _x(2, 5, 6),
            int_io=True,
        ),
        _binary(
            "batch_matmul_broadcast_4d",
            "BATCH_MATMUL",
            lambda tf, a, b: tf.matmul(a, b),
            _x(2, 3, 4, 7),
            _x(1, 3, 7, 5),
        ),
        # ADD, SUB, MUL
        _binary("add", "ADD", lambda tf, a, b: a + b, image, image, int_io=True),
        _binary("add_broadcast_channel", "ADD", lambda tf, a, b: a + b, image, _x(1, 1, 1, 4, lo=-6, hi=6)),
        _binary("add_broadcast_hw_relu6", "ADD", lambda tf, a, b: a + b, image, _x(1, 8, 8, 1), act="relu6"),
        _binary("add_batch2_broadcast", "ADD", lambda tf, a, b: a + b, _x(2, 5, 3), _x(1, 5, 1, lo=-0.5, hi=0.5)),
        _binary("add_5d_broadcast", "ADD", lambda tf, a, b: a + b, _x(1, 2, 3, 4, 5), _x(1, 2, 1, 4, 1)),
        _Spec("add_const_relu", "ADD", (image,), lambda tf, w, x: tf.nn.relu(x + w(4, scale=2.0))),
        _binary("sub", "SUB", lambda tf, a, b: a - b, image, _x(1, 8, 8, 4, lo=-0.5, hi=3.0)),
        _binary("sub_broadcast_relu", "SUB", lambda tf, a, b: a - b, image, _x(1, 1, 8, 1), act="relu"),
        _binary("sub_batch2", "SUB", lambda tf, a, b: a - b, _x(2, 5, 3), _x(2, 5, 3, lo=-8, hi=8)),
        _binary("mul", "MUL", lambda tf, a, b: a * b, image, image, int_io=True),
        _binary("mul_broadcast_channel", "MUL", lambda tf, a, b: a * b, image, _x(1, 1, 1, 4, lo=0, hi=1)),
        _binary(
            "mul_broadcast_relu_n1_to_1", "MUL", lambda tf, a, b: a * b, _x(2, 5, 3), _x(1, 5, 1), act="relu_n1_to_1"
        ),
        _Spec("mul_const", "MUL", (image,), lambda tf, w, x: x * w(1, 1, 4, scale=1.0)),
        # Pooling
        _pool("avgpool_2x2_s2_valid", "AVERAGE_POOL_2D", (1, 8, 8, 4), 2, 2, "VALID"),
        _pool("avgpool_3x3_s1_same", "AVERAGE_POOL_2D", (1, 8, 8, 4), 3, 1, "SAME"),
        _pool("avgpool_3x3_s2_same_relu6", "AVERAGE_POOL_2D", (1, 13, 13, 5), 3, 2, "SAME", act="relu6"),
        _pool("maxpool_2x2_s2_valid", "MAX_POOL_2D", (1, 8, 8, 4), 2, 2, "VALID"),
        _pool("maxpool_3x3_s2_same", "MAX_POOL_2D", (1, 13, 13, 3), 3, 2, "SAME"),
        _pool("maxpool_3x3_s1_same_relu", "MAX_POOL_2D", (2, 7, 7, 5), 3, 1, "SAME", act="relu"),
        # Reductions
        _reduce("mean_hw_keepdims", "MEAN", (1, 8, 8, 4), (1, 2), True),
        _reduce("mean_hw", "MEAN", (1, 13, 13, 5), (1, 2), False),
        _reduce("mean_last_axis", "MEAN", (2, 5, 17), (-1,), False),
        _reduce("mean_axis1_keepdims", "MEAN", (1, 8, 4), (1,), True),
        _reduce("sum_last_axis_keepdims", "SUM", (1, 8, 4), (-1,), True),
        _reduce("sum_hw", "SUM", (1, 7, 7, 3), (1, 2), False),
        _reduce("sum_axis1", "SUM", (2, 5, 3), (1,), False),
        _reduce("reduce_max_last_axis", "REDUCE_MAX", (1, 8, 4), (-1,), False),
        _reduce("reduce_max_hw_keepdims", "REDUCE_MAX", (1, 8, 8, 4), (1, 2), True),
        _reduce("reduce_min_axis1", "REDUCE_MIN", (2, 5, 3), (1,), False),
        _reduce("reduce_min_last_axis_keepdims", "REDUCE_MIN", (1, 8, 4), (-1,), True),
        # Shape plumbing
        _unary("pad_hw", "PAD", lambda tf, x: tf.pad(x, [[0, 0], [1, 1], [2, 0], [0, 0]]), image),
        _unary("pad_3d", "PAD", lambda tf, x: tf.pad(x, [[0, 0], [0, 3], [1, 2]]), _x(1, 8, 4, lo=0.5, hi=3.0)),
        _unary("padv2_value", "PADV2", lambda tf, x: tf.pad(x, [[0, 0], [1, 2], [0, 0]], constant_values=0.5), row),
        _unary(
            "padv2_hw_value",
            "PADV2",
            lambda tf, x: tf.pad(x, [[0, 0], [2, 1], [1, 1], [0, 0]], constant_values=-1.0),
            image,
        ),
        _unary("reshape_flatten", "RESHAPE", lambda tf, x: tf.reshape(x, [1, 256]), image, int_io=True),
        _unary("reshape_to_4d", "RESHAPE", lambda tf, x: tf.reshape(x, [1, 4, 2, 5]), _x(1, 40)),
        _Spec(
            "squeeze_axis1",
            "SQUEEZE",
            (_x(1, 1, 8, 4),),
            lambda tf, w, x: tf.squeeze(x, [1]),
            rewrite=("SQUEEZE", (1,)),
        ),
        _Spec(
            "squeeze_two_axes",
            "SQUEEZE",
            (_x(1, 5, 1, 1),),
            lambda tf, w, x: tf.squeeze(x, [2, 3]),
            rewrite=("SQUEEZE", (2, 3)),
        ),
        _Spec(
            "expand_dims_axis2",
            "EXPAND_DIMS",
            (row,),
            lambda tf, w, x: tf.expand_dims(x, 2),
            rewrite=("EXPAND_DIMS", (2,)),
        ),
        _Spec(
            "expand_dims_negative_axis",
            "EXPAND_DIMS",
            (_x(1, 5, 3),),
            lambda tf, w, x: tf.expand_dims(x, -1),
            rewrite=("EXPAND_DIMS", (-1,)),
        ),
        _unary("transpose_0312", "TRANSPOSE", lambda tf, x: tf.transpose(x, [0, 3, 1, 2]), image),
        _unary("transpose_0213", "TRANSPOSE", lambda tf, x: tf.transpose(x, [0, 2, 1, 3]), _x(1, 5, 3, 7)),
        _unary("transpose_3d", "TRANSPOSE", lambda tf, x: tf.transpose(x, [0, 2, 1]), _x(2, 5, 3)),
        _binary("concat_channels", "CONCATENATION", lambda tf, a, b: tf.concat([a, b], -1), image, _x(1, 8, 8, 3)),
        _Spec(
            "concat_axis1_three",
            "CONCATENATION",
            (row, _x(1, 3, 4), _x(1, 5, 4, lo=-8, hi=8)),
            lambda tf, w, a, b, c: tf.concat([a, b, c], 1),
        ),
        _binary(
            "concat_mixed_scales",
            "CONCATENATION",
            lambda tf, a, b: tf.concat([tf.nn.relu(a), b * 5.0], 0),
            _x(1, 5, 3),
            _x(2, 5, 3),
        ),
        _Spec("split_channels", "SPLIT", (image,), lambda tf, w, x: tf.split(x, 2, axis=-1)),
        _Spec("split_axis1_three", "SPLIT", (_x(1, 9, 5),), lambda tf, w, x: tf.split(x, 3, axis=1)),
        _Spec("split_v_channels", "SPLIT_V", (image,), lambda tf, w, x: tf.split(x, [1, 3], axis=-1)),
        _Spec("split_v_axis1", "SPLIT_V", (_x(2, 8, 3),), lambda tf, w, x: tf.split(x, [2, 5, 1], axis=1)),
        _unary("strided_slice_step2", "STRIDED_SLICE", lambda tf, x: x[:, 1:7:2, ::2, :], image),
        _unary("strided_slice_reverse", "STRIDED_SLICE", lambda tf, x: x[:, ::-1, 1:], row),
        _unary("strided_slice_shrink_axis", "STRIDED_SLICE", lambda tf, x: x[:, 3, :, 1:3], image),
        _unary("strided_slice_masks", "STRIDED_SLICE", lambda tf, x: x[..., 2:], _x(2, 5, 7)),
        _unary("slice_3d", "SLICE", lambda tf, x: tf.slice(x, [0, 1, 1], [1, 5, 2]), row),
        _unary("slice_4d", "SLICE", lambda tf, x: tf.slice(x, [0, 2, 0, 1], [1, -1, 5, 3]), image),
        _unary("gather_axis1", "GATHER", lambda tf, x: tf.gather(x, [3, 1, 1, 7], axis=1), row),
        _unary("gather_negative_axis", "GATHER", lambda tf, x: tf.gather(x, [2, 0], axis=-1), image),
        _Spec(
            "gather_indices_input",
            "GATHER",
            (_x(1, 5, 3), _Input((1, 4), 0, 5, "int32")),
            lambda tf, w, x, i: tf.gather(x, i, axis=1),
        ),
        _Spec(
            "embedding_lookup",
            "EMBEDDING_LOOKUP",
            (_Input((6,), 0, 10, "int32"),),
            lambda tf, w, i: tf.gather(w(10, 4, scale=1.0), i),
            rewrite=("EMBEDDING_LOOKUP", ()),
        ),
        _Spec(
            "embedding_lookup_single_id",
            "EMBEDDING_LOOKUP",
            (_Input((1,), 0, 9, "int32"),),
            lambda tf, w, i: tf.gather(w(9, 5, scale=1.0), i),
            rewrite=("EMBEDDING_LOOKUP", ()),
        ),
        _Spec(
            "embedding_lookup_3d_table",
            "EMBEDDING_LOOKUP",
            (_Input((3,), 0, 7, "int32"),),
            lambda tf, w, i: tf.gather(w(7, 2, 5, scale=1.0), i),
            rewrite=("EMBEDDING_LOOKUP", ()),
        ),
        _unary("space_to_depth_2", "SPACE_TO_DEPTH", lambda tf, x: tf.nn.space_to_depth(x, 2), image),
        _unary("space_to_depth_3", "SPACE_TO_DEPTH", lambda tf, x: tf.nn.space_to_depth(x, 3), _x(1, 9, 9, 3)),
        _unary("depth_to_space_2", "DEPTH_TO_SPACE", lambda tf, x: tf.nn.depth_to_space(x, 2), image),
        _unary("depth_to_space_3", "DEPTH_TO_SPACE", lambda tf, x: tf.nn.depth_to_space(x, 3), _x(1, 3, 3, 18)),
        _binary("pack_axis1", "PACK", lambda tf, a, b: tf.stack([a, b], 1), row, row),
        _Spec(
            "pack_last_axis_three",
            "PACK",
            (_x(2, 5), _x(2, 5), _x(2, 5, lo=-6, hi=6)),
            lambda tf, w, a, b, c: tf.stack([a, b, c], -1),
        ),
        # Activations and elementwise math
        _unary("softmax", "SOFTMAX", lambda tf, x: tf.nn.softmax(x), _x(1, 10, lo=-4, hi=4), int_io=True),
        _unary("softmax_3d", "SOFTMAX", lambda tf, x: tf.nn.softmax(x), _x(1, 4, 17, lo=-8, hi=8)),
        _unary("logistic", "LOGISTIC", lambda tf, x: tf.sigmoid(x), _x(1, 8, 8, 4, lo=-6, hi=6), int_io=True),
        _unary("logistic_2d", "LOGISTIC", lambda tf, x: tf.sigmoid(x), _x(1, 33, lo=-1, hi=3)),
        _unary("tanh", "TANH", lambda tf, x: tf.tanh(x), _x(1, 8, 8, 4, lo=-3, hi=3), int_io=True),
        _unary("tanh_batch3", "TANH", lambda tf, x: tf.tanh(x), _x(3, 17, lo=-0.5, hi=1.5)),
        _unary("hard_swish", "HARD_SWISH", _hard_swish, _x(1, 8, 8, 4, lo=-5, hi=5)),
        _unary("hard_swish_2d", "HARD_SWISH", _hard_swish, _x(1, 33, lo=-1, hi=8)),
        _unary("relu", "RELU", lambda tf, x: tf.nn.relu(x), image),
        _unary("relu6", "RELU6", lambda tf, x: tf.nn.relu6(x), _x(1, 8, 8, 4, lo=-3, hi=9)),
        _unary("relu_n1_to_1", "RELU_N1_TO_1", lambda tf, x: tf.clip_by_value(x, -1.0, 1.0), image),
        _unary("leaky_relu_0.2", "LEAKY_RELU", lambda tf, x: tf.nn.leaky_relu(x, 0.2), image),
        _unary("leaky_relu_0.01", "LEAKY_RELU", lambda tf, x: tf.nn.leaky_relu(x, 0.01), _x(1, 33, lo=-6, hi=2)),
        _prelu("prelu_per_channel", (1, 8, 8, 4), (1, 1, 4)),
        _prelu("prelu_shared", (1, 5, 3, 7), (1, 1, 1)),
        _binary("maximum", "MAXIMUM", lambda tf, a, b: tf.maximum(a, b), image, image),
        _binary("maximum_broadcast", "MAXIMUM", lambda tf, a, b: tf.maximum(a, b), row, _x(1, 1, 4, lo=-1, hi=4)),
        _binary("minimum", "MINIMUM", lambda tf, a, b: tf.minimum(a, b), image, _x(1, 8, 8, 4, lo=-4, hi=1)),
        _Spec("minimum_const", "MINIMUM", (row,), lambda tf, w, x: tf.minimum(x, w(4, scale=1.0))),
        _binary(
            "squared_difference", "SQUARED_DIFFERENCE", lambda tf, a, b: tf.math.squared_difference(a, b), image, image
        ),
        _binary(
            "squared_difference_broadcast",
            "SQUARED_DIFFERENCE",
            lambda tf, a, b: tf.math.squared_difference(a, b),
            row,
            _x(1, 1, 4, lo=-1, hi=3),
        ),
        _unary("neg", "NEG", lambda tf, x: -x, image),
        _unary("abs", "ABS", lambda tf, x: tf.abs(x), _x(1, 8, 8, 4, lo=-3, hi=1)),
        _unary("rsqrt", "RSQRT", lambda tf, x: tf.math.rsqrt(x), _x(1, 8, 4, lo=0.05, hi=4.0)),
        _unary("rsqrt_of_square", "RSQRT", lambda tf, x: tf.math.rsqrt(x * x + 0.5), _x(1, 17)),
        _unary("sqrt", "SQRT", lambda tf, x: tf.sqrt(x), _x(1, 8, 4, lo=0.0, hi=9.0)),
        _unary("exp", "EXP", lambda tf, x: tf.exp(x), _x(1, 8, 4, lo=-4, hi=2)),
        _unary("gelu", "GELU", lambda tf, x: tf.nn.gelu(x), _x(1, 8, 8, 4, lo=-4, hi=4)),
        _unary("gelu_tanh_approximation", "GELU", lambda tf, x: tf.nn.gelu(x, approximate=True), _x(1, 33)),
        _unary("elu", "ELU", lambda tf, x: tf.nn.elu(x), _x(1, 8, 8, 4, lo=-4, hi=2)),
        # Resizing
        _resize("resize_bilinear_2x", "RESIZE_BILINEAR", (1, 4, 4, 3), (8, 8)),
        _resize("resize_bilinear_half_pixel", "RESIZE_BILINEAR", (1, 5, 5, 4), (13, 13), half_pixel_centers=True),
        _resize("resize_bilinear_align_corners", "RESIZE_BILINEAR", (1, 5, 7, 3), (9, 13), align_corners=True),
        _resize("resize_bilinear_down", "RESIZE_BILINEAR", (1, 13, 13, 5), (7, 7), half_pixel_centers=True),
        _resize("resize_nearest_2x", "RESIZE_NEAREST_NEIGHBOR", (1, 4, 4, 3), (8, 8)),
        _resize(
            "resize_nearest_half_pixel", "RESIZE_NEAREST_NEIGHBOR", (1, 5, 5, 4), (13, 13), half_pixel_centers=True
        ),
        _resize("resize_nearest_align_corners", "RESIZE_NEAREST_NEIGHBOR", (1, 5, 7, 3), (9, 13), align_corners=True),
        _resize("resize_nearest_down", "RESIZE_NEAREST_NEIGHBOR", (2, 13, 13, 5), (7, 7)),
        # Blocks
        _Spec("mobilenet_block", "DEPTHWISE_CONV_2D", (_x(1, 16, 16, 8),), _mobilenet_block, int_io=True),
        _Spec("transformer_block", "BATCH_MATMUL", (_x(1, 8, 16),), _transformer_block, int_io=True),
        _Spec("audio_conv1d_block", "CONV_2D", (_x(1, 1, 64, 3),), _audio_block),
        # Float only: ops edgeq leaves float (allow_float_ops) that exporters still lower, one of them behind
        # an integer op.
        _Spec(
            "fc_log_softmax",
            "LOG_SOFTMAX",
            (_x(1, 16),),
            lambda tf, w, x: tf.nn.log_softmax(tf.matmul(x, w(16, 10)) + w(10, scale=0.5)),
            float_only=True,
        ),
        _Spec(
            "reduce_prod_axis1",
            "REDUCE_PROD",
            (_x(1, 5, 3, lo=0.5, hi=1.5),),
            lambda tf, w, x: tf.reduce_prod(x, [1]),
            float_only=True,
        ),
        _Spec("tile_hw", "TILE", (_x(1, 4, 3, 2),), lambda tf, w, x: tf.tile(x, [1, 2, 3, 1]), float_only=True),
        _Spec(
            "div_broadcast",
            "DIV",
            (image, _x(1, 1, 1, 4, lo=0.5, hi=2.0)),
            lambda tf, w, a, b: a / b,
            float_only=True,
        ),
        _Spec("square", "SQUARE", (row,), lambda tf, w, x: tf.square(x), float_only=True),
        _Spec("log", "LOG", (_x(1, 8, 4, lo=0.1, hi=4.0),), lambda tf, w, x: tf.math.log(x), float_only=True),
        # Float only: batch-1 twins of specs whose fixed batch above 1 edgeq cannot calibrate, for the lowering
        # paths only those cover (transposed and broadcast BATCH_MATMUL, nearest downscaling, PACK on axis -1).
        _Spec(
            "batch_matmul_adj_x_b1",
            "BATCH_MATMUL",
            (_x(1, 6, 4), _x(1, 6, 5)),
            lambda tf, w, a, b: tf.matmul(a, b, transpose_a=True),
            float_only=True,
        ),
        _Spec(
            "batch_matmul_broadcast_4d_b1",
            "BATCH_MATMUL",
            (_x(1, 3, 4, 7), _x(1, 1, 7, 5)),
            lambda tf, w, a, b: tf.matmul(a, b),
            float_only=True,
        ),
        _Spec(
            "resize_nearest_down_b1",
            "RESIZE_NEAREST_NEIGHBOR",
            (_x(1, 13, 13, 5),),
            lambda tf, w, x: tf.compat.v1.image.resize_nearest_neighbor(x, (7, 7)),
            float_only=True,
        ),
        _Spec(
            "pack_last_axis_three_b1",
            "PACK",
            (_x(1, 5), _x(1, 5), _x(1, 5, lo=-6, hi=6)),
            lambda tf, w, a, b, c: tf.stack([a, b, c], -1),
            float_only=True,
        ),
    ]


@functools.cache
def _spec_table() -> dict[str, _Spec]:
    specs = _specs()
    table = {s.name: s for s in specs}
    assert len(table) == len(specs), "spec names must be unique"
    return table


def _model_names(spec: _Spec, quantizer: str) -> list[str]:
    """The models a spec yields under a quantizer (none if the quantizer does not apply to its op)."""
    if (quantizer == "int4" and spec.op not in _INT4_OPS) or (spec.float_only and quantizer != FLOAT):
        return []
    names = [f"{spec.name}.{quantizer}"]
    if spec.int_io and quantizer in _FLOAT_IO:
        names.append(f"{spec.name}_intio.{quantizer}")
    return names


# ---------------------------------------------------------------------------------------------------------
# Cache and the public API


def cache_dir() -> Path:
    """Where the models live: a directory per version of this file, so edits never reuse stale models."""
    base = Path(os.environ.get("EDGEQ_OPMODELS_DIR") or REPO / ".cache" / "opmodels")
    return base / hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def op_models(quantizers: Iterable[str] | None = None, ops: Iterable[str] | None = None) -> list[OpModel]:
    """Every model for the given quantizers and ops (default: all), building the missing ones first."""
    quantizers = QUANTIZERS if quantizers is None else tuple(quantizers)
    unknown = set(quantizers) - set(_QUANTIZE)
    if unknown:
        raise ValueError(f"unknown quantizers {sorted(unknown)}; known: {', '.join(_QUANTIZE)}")
    wanted_ops = None if ops is None else set(ops)
    specs = [s for s in _spec_table().values() if wanted_ops is None or s.op in wanted_ops]
    directory = cache_dir()
    _build_missing(specs, quantizers, directory)
    models = []
    for spec in specs:
        for quantizer in quantizers:
            for name in _model_names(spec, quantizer):
                path = directory / f"{name}.tflite"
                if path.exists():
                    models.append(OpModel(name, spec.op, quantizer, path))
    return models


def spec_names() -> list[str]:
    """Every spec's name, in corpus order, without building anything (to parametrize tests by model)."""
    return list(_spec_table())


def calibration(spec: str) -> list[list[np.ndarray]]:
    """The seeded calibration samples of a spec (by name, "<spec>" of "<spec>.<quantizer>"), one array per
    input each: what every quantizer here calibrated on, for tests that quantize a FLOAT model themselves."""
    return _calibration(_spec_table()[spec])


def skipped(quantizers: Iterable[str] | None = None, ops: Iterable[str] | None = None) -> dict[str, str]:
    """Why each refused (spec, quantizer) combination was dropped, by model name (after op_models built them)."""
    quantizers = QUANTIZERS if quantizers is None else tuple(quantizers)
    wanted_ops = None if ops is None else set(ops)
    reasons = {}
    for spec in _spec_table().values():
        if wanted_ops is not None and spec.op not in wanted_ops:
            continue
        for quantizer in quantizers:
            for name in _model_names(spec, quantizer):
                path = cache_dir() / f"{name}.skip"
                if path.exists():
                    reasons[name] = path.read_text()
    return reasons


def _build_missing(specs: list[_Spec], quantizers: Sequence[str], directory: Path) -> None:
    """Build every (spec, quantizer) with neither a model nor a recorded refusal, in worker processes."""
    todo: dict[str, list[str]] = {}
    for spec in specs:
        for quantizer in quantizers:
            names = _model_names(spec, quantizer)
            if any(not (directory / f"{n}.tflite").exists() and not (directory / f"{n}.skip").exists() for n in names):
                todo.setdefault(spec.name, []).append(quantizer)
    if not todo:
        return
    directory.mkdir(parents=True, exist_ok=True)
    # Worker processes, each importing TensorFlow once for its share, the largest specs dealt out first.
    # Fresh interpreters rather than multiprocessing: TensorFlow is not fork-safe, and spawn would re-run
    # the caller's main module. Their output is the converters' C++ logging, kept only to report a crash.
    order = sorted(todo, key=lambda n: -sum(np.prod(i.shape) for i in _spec_table()[n].inputs))
    workers = max(1, min(os.cpu_count() or 1, 4, len(order)))
    failed = []
    with contextlib.ExitStack() as stack:
        running = []
        for k in range(workers):
            jobs = [f"{name}={','.join(todo[name])}" for name in order[k::workers]]
            log = stack.enter_context(tempfile.TemporaryFile())
            command = [sys.executable, __file__, "--build", str(directory), *jobs]
            running.append((subprocess.Popen(command, stdout=log, stderr=log, cwd=REPO), log))
        for process, log in running:
            if process.wait() != 0:
                log.seek(0)
                failed.append(log.read().decode(errors="replace")[-3000:])
    if failed:
        raise RuntimeError("building op models failed:\n" + "\n".join(failed))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------
# Building one spec (in a worker)


@dataclass
class _Built:
    """A spec's float function traced once, its calibration samples and its float .tflite with a signature."""

    spec: _Spec
    concrete: Any  # the frozen tf ConcreteFunction
    calib: list[list[np.ndarray]]
    float_tflite: bytes
    input_names: list[str]


def _build_spec(name: str, quantizers: tuple[str, ...], directory: str) -> None:
    """Build every model of one spec under the given quantizers, writing each .tflite or a .skip reason."""
    built = _trace(_spec_table()[name])
    for quantizer in quantizers:
        for model_name in _model_names(built.spec, quantizer):
            int_io = model_name.split(".")[0].endswith("_intio")
            try:
                data = _QUANTIZE[quantizer](built, int_io)
                _check(data, built.spec, quantizer)
            except Exception as e:  # a refusal is a result: recorded so the list stays the same on every run
                first_line = (str(e).strip().splitlines() or [""])[0]
                _write_atomic(Path(directory) / f"{model_name}.skip", f"{type(e).__name__}: {first_line}".encode())
                continue
            _write_atomic(Path(directory) / f"{model_name}.tflite", data)


def _trace(spec: _Spec) -> _Built:
    tf = _tf()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    weights = _Weights(spec.name)
    signature = [tf.TensorSpec(i.shape, getattr(tf, i.dtype)) for i in spec.inputs]
    fn = tf.function(lambda *xs: spec.body(tf, weights, *xs), input_signature=signature)
    concrete = convert_variables_to_constants_v2(fn.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    float_tflite = _rewrite(converter.convert(), spec)
    float_tflite, names = _with_signature(float_tflite)
    return _Built(spec, concrete, _calibration(spec), float_tflite, names)


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    return tf


def _calibration(spec: _Spec) -> list[list[np.ndarray]]:
    """Seeded samples within each input's range: uniform, clipped normal, and ramps that reach both ends."""
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()) + 1)
    samples = []
    for k in range(_CALIB_SAMPLES):
        sample = []
        for i in spec.inputs:
            if i.dtype == "int32":
                sample.append(rng.integers(int(i.lo), int(i.hi), i.shape).astype(np.int32))
                continue
            size = int(np.prod(i.shape))
            if k % 3 == 0:
                x = rng.uniform(i.lo, i.hi, size)
            elif k % 3 == 1:
                x = np.clip(rng.normal((i.lo + i.hi) / 2, (i.hi - i.lo) / 6, size), i.lo, i.hi)
            else:
                x = np.roll(np.linspace(i.lo, i.hi, size), k)
            sample.append(x.reshape(i.shape).astype(np.float32))
        samples.append(sample)
    return samples


# ---------------------------------------------------------------------------------------------------------
# Quantizers: each takes the traced spec and whether inputs and outputs are integer, returns .tflite bytes


def _tflite_ptq(activations: str) -> Callable[[_Built, bool], bytes]:
    def convert(built: _Built, int_io: bool) -> bytes:
        tf = _tf()
        converter = tf.lite.TFLiteConverter.from_concrete_functions([built.concrete])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(built.calib)
        ops = tf.lite.OpsSet
        converter.target_spec.supported_ops = [
            ops.TFLITE_BUILTINS_INT8
            if activations == "int8"
            else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        if int_io:
            converter.inference_input_type = converter.inference_output_type = getattr(tf, activations)
        return _rewrite(converter.convert(), built.spec)

    return convert


def _aeq_recipe(activation_bits: int, weight_bits: int = 8) -> list[dict]:
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_bits, 8)
    if weight_bits != 8:
        for op in _INT4_OPS:
            # Its policy allows int4 weights with integer activations for CONV_2D and FULLY_CONNECTED only;
            # LiteRT's reference DEPTHWISE_CONV_2D takes them too, so that one skips the policy check.
            config = qtyping.OpQuantizationConfig(
                activation_tensor_config=qtyping.TensorQuantizationConfig(activation_bits, symmetric=False),
                weight_tensor_config=qtyping.TensorQuantizationConfig(
                    weight_bits, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE
                ),
                compute_precision=qtyping.ComputePrecision.INTEGER,
                skip_checks=op == "DEPTHWISE_CONV_2D",
            )
            manager.add_quantization_config(".*", getattr(qtyping.TFLOperationName, op), config)
    return manager.get_quantization_recipe()


def _aeq(activation_bits: int, weight_bits: int = 8) -> Callable[[_Built, bool], bytes]:
    def convert(built: _Built, int_io: bool) -> bytes:
        from ai_edge_quantizer import quantizer

        qt = quantizer.Quantizer(built.float_tflite)
        qt.load_quantization_recipe(_aeq_recipe(activation_bits, weight_bits))
        samples = [dict(zip(built.input_names, sample, strict=True)) for sample in built.calib]
        return bytes(qt.quantize(qt.calibrate({"serving_default": samples})).quantized_model)

    return convert


def _edgeq(scheme: str) -> Callable[[_Built, bool], bytes]:
    def convert(built: _Built, int_io: bool) -> bytes:
        import edgeq

        # edgeq takes batch-first arrays and feeds sample k as x[k:k+1] reshaped to the input's shape.
        stacked = [np.stack([s[i] for s in built.calib]) for i in range(len(built.spec.inputs))]
        calib = edgeq.calibration.arrays(*(x[:, 0] if x.shape[1] == 1 else x for x in stacked))
        io = ("int8" if scheme == "int8" else "int16") if int_io else "float32"
        return edgeq.quantize(edgeq.load(built.float_tflite), calib, scheme=scheme, io=io, progress=False).tflite

    return convert


# TF ops through which the converter carries the input's encoding (or, for the fixed-range activations,
# imposes its own): no FakeQuant after them, as none would be in a model trained with quantization.
_SAME_RANGE_TF_OPS = frozenset(
    {
        *("MaxPool", "AvgPool", "Reshape", "Squeeze", "ExpandDims", "Transpose", "StridedSlice", "Slice"),
        *("GatherV2", "Pad", "PadV2", "MirrorPad", "ResizeBilinear", "ResizeNearestNeighbor", "SpaceToDepth"),
        *("DepthToSpace", "SpaceToBatchND", "BatchToSpaceND", "Max", "Min", "Split", "SplitV", "Identity"),
        *("Softmax", "Sigmoid", "Tanh", "Pack"),
    }
)
# TF op -> index of its weight input, which gets a FakeQuant over the weight's own range.
_WEIGHT_INPUT = {
    "Conv2D": 1,
    "DepthwiseConv2dNative": 1,
    "MatMul": 1,
    "BatchMatMulV2": 1,
    "Conv2DBackpropInput": 1,
    "GatherV2": 0,
}
_FUSED_ACTIVATIONS = frozenset({"Relu", "Relu6"})
_CLAMPS = frozenset({"Minimum", "Maximum"})  # with a constant bound: clip_by_value, fused as RELU_N1_TO_1


def _uint8(built: _Built, int_io: bool) -> bytes:
    """Legacy asymmetric uint8: the frozen float graph with FakeQuantWithMinMaxArgs after each activation
    (ranges from the calibration samples) and on each weight, converted by the TF1 converter with
    inference_type uint8, as quantization-aware-trained TF1 models were."""
    tf = _tf()
    tf1 = tf.compat.v1
    graph_def = built.concrete.graph.as_graph_def()
    inputs = [t.name for t in built.concrete.inputs]
    outputs = [t.name for t in built.concrete.outputs]
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    observed = [t for op in graph.get_operations() for t in op.outputs if _fake_quant_after(t)]
    with tf1.Session(graph=graph) as session:
        values = [session.run(observed, dict(zip(inputs, sample, strict=True))) for sample in built.calib]
    ranges = {
        t.name: (min(0.0, min(float(v[i].min()) for v in values)), max(0.0, max(float(v[i].max()) for v in values)))
        for i, t in enumerate(observed)
    }
    for op in graph.get_operations():
        if op.type in _WEIGHT_INPUT:
            weight = op.inputs[_WEIGHT_INPUT[op.type]]
            if weight.op.type == "Const":
                value = tf.make_ndarray(weight.op.get_attr("value"))
                ranges[weight.name] = (min(0.0, float(value.min())), max(0.0, float(value.max())))
    for tensor_name, (lo, hi) in ranges.items():
        _insert_fake_quant(graph_def, tensor_name, lo, hi)
    stats = {}
    for t, i in zip(built.concrete.inputs, built.spec.inputs, strict=True):
        lo, hi = min(0.0, i.lo), max(0.0, i.hi)  # the converter wants stats for index inputs too; it ignores them
        stats[t.name.split(":")[0]] = (-lo * 255 / (hi - lo), 255 / (hi - lo))
    quantized = tf.Graph()
    with quantized.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        with tf1.Session(graph=quantized) as session:
            converter = tf1.lite.TFLiteConverter.from_session(
                session,
                [quantized.get_tensor_by_name(n) for n in inputs],
                [quantized.get_tensor_by_name(n) for n in outputs],
            )
            converter.inference_type = tf.uint8
            converter.quantized_input_stats = stats
            return _rewrite(converter.convert(), built.spec)


def _fake_quant_after(t: Any) -> bool:
    """Whether an activation gets a FakeQuant: float outputs of computing ops, except where the converter
    fuses the next op (bias add after a weighted op, relu, relu6, a clamp) or carries the range through."""
    op = t.op
    if t.dtype.name != "float32" or op.type in ("Const", "Placeholder") or op.type in _SAME_RANGE_TF_OPS:
        return False
    consumers = t.consumers()
    if _inside_prelu(t):
        return False
    if len(consumers) == 1:
        nxt = consumers[0]
        if nxt.type in _FUSED_ACTIVATIONS or (nxt.type in _CLAMPS and any(i.op.type == "Const" for i in nxt.inputs)):
            return False
        if op.type in _WEIGHT_INPUT and op.type != "GatherV2":
            if nxt.type == "BatchToSpaceND":  # a dilated depthwise convolution, folded back into one op
                return False
            if nxt.type in ("AddV2", "Add", "BiasAdd"):
                return not any(i.op.type == "Const" for i in nxt.inputs)
    return True


def _inside_prelu(t: Any) -> bool:
    """Whether t is an inner tensor of relu(x) + (-alpha) * relu(-x), which the converter fuses into PRELU."""
    op, consumers = t.op, t.consumers()
    if op.type == "Relu":
        return bool(consumers) and all(c.type in ("Mul", "AddV2") for c in consumers)
    if op.type == "Mul" and {i.op.type for i in op.inputs} == {"Relu", "Const"}:
        return all(c.type == "AddV2" for c in consumers)
    return False


def _insert_fake_quant(graph_def: Any, tensor: str, lo: float, hi: float) -> None:
    """Route every consumer of `tensor` through a new FakeQuantWithMinMaxArgs node over [lo, hi]."""
    node, _, index = tensor.partition(":")
    fq = graph_def.node.add()
    fq.name = f"{node}/fake_quant_{index}"
    fq.op = "FakeQuantWithMinMaxArgs"
    fq.input.append(node if index == "0" else tensor)
    fq.attr["min"].f = lo
    fq.attr["max"].f = hi
    fq.attr["num_bits"].i = 8
    references = {tensor, node} if index == "0" else {tensor}
    for n in graph_def.node:
        if n is fq:
            continue
        for k, name in enumerate(n.input):
            if name in references:
                n.input[k] = fq.name


_QUANTIZE: dict[str, Callable[[_Built, bool], bytes]] = {
    "tflite_int8": _tflite_ptq("int8"),
    "tflite_int16x8": _tflite_ptq("int16"),
    "aeq_w8a8": _aeq(8),
    "aeq_w8a16": _aeq(16),
    "edgeq_int8": _edgeq("int8"),
    "edgeq_int16x8": _edgeq("int16x8"),
    "uint8": _uint8,
    "int4": _aeq(8, weight_bits=4),
    FLOAT: lambda built, int_io: built.float_tflite,
}


# ---------------------------------------------------------------------------------------------------------
# Flatbuffer edits and checks


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _unpack(data: bytes) -> Any:
    return _schema().ModelT.InitFromPackedBuf(data, 0)


def _pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _builtin(model: Any, op: Any) -> str:
    schema = _schema()
    code = model.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)  # codes < 127 are kept in both fields
    return next(k for k, v in vars(schema.BuiltinOperator).items() if v == number and not k.startswith("_"))


def _opcode(model: Any, name: str) -> int:
    """Index of the operator code for builtin `name` (version 1), appended if the model has none."""
    schema = _schema()
    number = getattr(schema.BuiltinOperator, name)
    for k, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == number:
            return k
    code = schema.OperatorCodeT()
    code.builtinCode = number
    code.deprecatedBuiltinCode = min(number, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _rewrite(data: bytes, spec: _Spec) -> bytes:
    """Turn the spec's RESHAPE into SQUEEZE or EXPAND_DIMS, or its axis-0 GATHER into EMBEDDING_LOOKUP: the
    same computation under the builtin that TF's converter never emits for it."""
    if spec.rewrite is None:
        return data
    schema = _schema()
    target, axes = spec.rewrite
    model = _unpack(data)
    graph = model.subgraphs[0]
    source = "GATHER" if target == "EMBEDDING_LOOKUP" else "RESHAPE"
    found = [op for op in graph.operators if _builtin(model, op) == source]
    if len(found) != 1:
        raise ValueError(f"{spec.name}: expected one {source} to rewrite, found {len(found)}")
    op = found[0]
    op.opcodeIndex = _opcode(model, target)
    if target == "SQUEEZE":
        op.inputs = op.inputs[:1]
        op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
        op.builtinOptions = schema.SqueezeOptionsT()
        op.builtinOptions.squeezeDims = list(axes)
    elif target == "EXPAND_DIMS":
        buffer = schema.BufferT()
        buffer.data = np.asarray(axes, dtype=np.int32).tobytes()
        model.buffers.append(buffer)
        axis = schema.TensorT()
        axis.name, axis.shape, axis.type, axis.buffer = (
            b"expand_dims_axis",
            [],
            schema.TensorType.INT32,
            len(model.buffers) - 1,
        )
        graph.tensors.append(axis)
        op.inputs = [op.inputs[0], len(graph.tensors) - 1]
        op.builtinOptionsType = schema.BuiltinOptions.ExpandDimsOptions
        op.builtinOptions = schema.ExpandDimsOptionsT()
    else:
        op.inputs = [op.inputs[1], op.inputs[0]]
        op.builtinOptionsType = schema.BuiltinOptions.NONE
        op.builtinOptions = None
    return _pack(model)


def _with_signature(data: bytes) -> tuple[bytes, list[str]]:
    """The model with a "serving_default" signature over its inputs and outputs (ai-edge-quantizer calibrates
    through signatures), and the input names."""
    schema = _schema()
    model = _unpack(data)
    graph = model.subgraphs[0]
    signature = schema.SignatureDefT()
    signature.signatureKey = "serving_default"
    signature.subgraphIndex = 0

    def tensor_map(index: int) -> Any:
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = graph.tensors[index].name, index
        return entry

    signature.inputs = [tensor_map(i) for i in graph.inputs]
    signature.outputs = [tensor_map(i) for i in graph.outputs]
    model.signatureDefs = [signature]
    return _pack(model), [graph.tensors[i].name.decode() for i in graph.inputs]


_INTEGER_TYPES = {"INT8", "INT16", "UINT8", "INT4"}
_REQUIRED_TYPE = {
    "uint8": "UINT8",
    "int4": "INT4",
    "tflite_int16x8": "INT16",
    "aeq_w8a16": "INT16",
    "edgeq_int16x8": "INT16",
}


def _check(data: bytes, spec: _Spec, quantizer: str) -> None:
    """The op under test is there with integer tensors (of the quantizer's own type where it has one), and
    LiteRT's reference kernels load and run the model."""
    if quantizer == FLOAT:
        _check_float(data, spec)
        return
    schema = _schema()
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = _unpack(data)
    graph = model.subgraphs[0]
    required = _REQUIRED_TYPE.get(quantizer)

    def integer(op: Any) -> bool:
        if spec.requantize and names[graph.tensors[op.inputs[0]].type] not in _INTEGER_TYPES:
            return False
        types = {names[graph.tensors[t].type] for t in [*op.inputs, *op.outputs] if t >= 0}
        return bool(types & _INTEGER_TYPES) and (required is None or required in types)

    kinds = [_builtin(model, op) for op in graph.operators]
    if not any(kind == spec.op and integer(op) for kind, op in zip(kinds, graph.operators, strict=True)):
        present = spec.op in kinds
        raise ValueError(f"{spec.op} {'is not integer' if present else 'is missing'} ({' '.join(kinds)})")
    _run_once(data)


def _check_float(data: bytes, spec: _Spec) -> None:
    """The float model holds the op under test (QUANTIZE and DEQUANTIZE exist only once a model is quantized:
    their specs keep the float computation around them) and LiteRT's default kernels run it: those are the
    float reference of exporters that start from it, and BUILTIN_REF lacks some float kernels (ELU)."""
    model = _unpack(data)
    kinds = [_builtin(model, op) for op in model.subgraphs[0].operators]
    if spec.op not in kinds and spec.op not in ("QUANTIZE", "DEQUANTIZE"):
        raise ValueError(f"{spec.op} is missing ({' '.join(kinds)})")
    _run_once(data, reference=False)


def _run_once(data: bytes, reference: bool = True) -> None:
    """Run the model once on random inputs, with the BUILTIN_REF kernels (or LiteRT's default ones)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    interpreter = Interpreter(model_content=data, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), random_inputs(data, 0), strict=True):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()


# ---------------------------------------------------------------------------------------------------------
# Inputs


_NUMPY_TYPES = {
    "FLOAT32": np.float32,
    "INT8": np.int8,
    "INT16": np.int16,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
}


def random_inputs(model_bytes: bytes, seed: int) -> list[np.ndarray]:
    """One array per model input, in its stored dtype. Integer inputs are uniform over the whole type with
    both extremes present; float inputs feeding a QUANTIZE cover its representable range and 10% beyond (so
    the quantized values hit both ends); index inputs stay within the table they index. Inputs of SQRT and
    RSQRT start at zero and one step above it: LiteRT fails the invoke on values outside their domain."""
    schema = _schema()
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = _unpack(model_bytes)
    graph = model.subgraphs[0]
    rng = np.random.default_rng(seed)
    arrays = []
    for index in graph.inputs:
        tensor = graph.tensors[index]
        dtype = _NUMPY_TYPES[names[tensor.type]]
        shape = tuple(int(d) for d in tensor.shape)
        floor = _domain_floor(model, index)
        if dtype in (np.int32, np.int64):
            arrays.append(rng.integers(0, _index_bound(model, index), shape).astype(dtype))
        elif dtype == np.float32:
            lo, hi, scale = _float_range(model, index)
            margin = 0.1 * (hi - lo)
            lo = lo - margin if floor is None else floor * scale
            arrays.append(rng.uniform(lo, hi + margin, shape).astype(np.float32))
        else:
            info = np.iinfo(dtype)
            q = tensor.quantization
            zero = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
            lo = int(info.min) if floor is None else zero + floor
            x = rng.integers(lo, int(info.max) + 1, shape, dtype=np.int64)
            flat = x.reshape(-1)
            flat[: min(2, flat.size)] = [lo, info.max][: min(2, flat.size)]
            arrays.append(x.astype(dtype))
    return arrays


def _consumers(model: Any, tensor: int) -> Iterator[tuple[str, Any, int]]:
    graph = model.subgraphs[0]
    for op in graph.operators:
        for position, t in enumerate(op.inputs):
            if t == tensor:
                yield _builtin(model, op), op, position


def _float_range(model: Any, tensor: int) -> tuple[float, float, float]:
    """The real range the QUANTIZE behind a float input can represent, and its scale."""
    graph = model.subgraphs[0]
    for kind, op, _ in _consumers(model, tensor):
        q = graph.tensors[op.outputs[0]].quantization
        if kind == "QUANTIZE" and q is not None and q.scale is not None and len(q.scale):
            schema = _schema()
            names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
            info = np.iinfo(_NUMPY_TYPES[names[graph.tensors[op.outputs[0]].type]])
            scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
            return (info.min - zero) * scale, (info.max - zero) * scale, scale
    return -4.0, 4.0, 1.0


def _domain_floor(model: Any, tensor: int) -> int | None:
    """Quantization steps above zero where an input's values must start: 0 for SQRT, 1 for RSQRT (directly or
    behind the input's QUANTIZE); None if unrestricted."""
    floors = {"SQRT": 0, "RSQRT": 1}
    for kind, op, _ in _consumers(model, tensor):
        if kind in floors:
            return floors[kind]
        if kind == "QUANTIZE":
            for after, _, _ in _consumers(model, op.outputs[0]):
                if after in floors:
                    return floors[after]
    return None


def _index_bound(model: Any, tensor: int) -> int:
    """The size of the axis an index input selects from (GATHER's axis, EMBEDDING_LOOKUP's rows)."""
    graph = model.subgraphs[0]
    for kind, op, position in _consumers(model, tensor):
        if kind == "GATHER" and position == 1:
            table = graph.tensors[op.inputs[0]].shape
            axis = op.builtinOptions.axis if op.builtinOptions is not None else 0
            return int(table[axis % len(table)])
        if kind == "EMBEDDING_LOOKUP" and position == 0:
            return int(graph.tensors[op.inputs[1]].shape[0])
    return 2


def _worker(argv: list[str]) -> None:
    """`opmodels.py --build DIR spec=quantizer,... ...`: the worker process _build_missing starts."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(REPO))  # edgeq
    directory = argv[1]
    for job in argv[2:]:
        name, _, quantizers = job.partition("=")
        _build_spec(name, tuple(quantizers.split(",")), directory)


if __name__ == "__main__":
    _worker(sys.argv[1:])
