"""float32 kernels in edgeq's C interpreter (native/src/kernels/f32_*.c, cast.c, gather_nd.c, select_v2.c,
logical.c; float RESIZE_BILINEAR is tested in test_native_movement.py) against LiteRT's BUILTIN_REF kernels:
single-op models with broadcasting, every fused activation, strides, dilations and padding, bit for bit (GELU,
whose reference goes through Eigen, within FLOAT_TOLERANCE); then `edgeq verify` on weight-only (w4-block32)
models -- a CNN whose INT4 weights are DEQUANTIZEd into float convolutions, a transformer block -- and on an
int8 model with float overrides."""

from __future__ import annotations

import numpy as np
import pytest

import edgeq
from edgeq.errors import UnsupportedOpError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.verify.bitexact import FLOAT_TOLERANCE, verify
from edgeq.verify.native import NativeModel
from tests.test_awq import CALIB, attention_block
from tests.test_w4_conv_blockwise import _inputs as cnn_inputs
from tests.test_w4_conv_blockwise import _model as cnn_model

NONE, RELU, RELU_N1_TO_1, RELU6 = range(4)
RNG = np.random.default_rng(11)


def _graph(kind: str, inputs: list[Tensor], outputs: list[Tensor], options_type: str = "", **options) -> bytes:
    tensors = inputs + outputs
    n = len(inputs)
    op = Op(kind, list(range(n)), list(range(n, len(tensors))), options=options, options_type=options_type)
    model_inputs = [i for i, t in enumerate(inputs) if t.data is None]
    return write_tflite(Graph(tensors=tensors, ops=[op], inputs=model_inputs, outputs=list(range(n, len(tensors)))))


def _f(name: str, shape: tuple[int, ...], data: np.ndarray | None = None, dtype: str = "float32") -> Tensor:
    return Tensor(name, shape, dtype, data=None if data is None else np.asarray(data, dtype=dtype).reshape(shape))


def _samples(shapes: list[tuple[int, ...]], lo: float = -3.0, hi: float = 3.0, n: int = 3) -> list[list[np.ndarray]]:
    return [[RNG.uniform(lo, hi, size=s).astype(np.float32) for s in shapes] for _ in range(n)]


def _exact(model: bytes, inputs: list[list[np.ndarray]]) -> None:
    result = verify(model, inputs=inputs)
    assert result.bit_exact and result.passed, result.summary()
    assert result.float_tensors == len(NativeModel(model).ops) and result.float_bit_exact == result.float_tensors


BINARY = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions",
          "SQUARED_DIFFERENCE": "", "MAXIMUM": "", "MINIMUM": "", "PRELU": "", "POW": ""}


@pytest.mark.parametrize("kind", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4), (2, 3, 4)), ((2, 1, 4), (3, 1), (2, 3, 4)),
                                    ((1, 5), (4, 1, 1, 1), (4, 1, 1, 5)), ((), (3, 2), (3, 2))])
def test_binary_ops_broadcast_bit_exact(kind: str, shapes) -> None:
    a, b, out = shapes
    if kind == "PRELU":
        a = out  # LiteRT wants PRELU's input in the output's shape; alpha broadcasts
    fused = {"fusedActivationFunction": RELU6} if BINARY[kind] else {}
    model = _graph(kind, [_f("a", a), _f("b", b)], [_f("y", out)], BINARY[kind], **fused)
    lo = 0.1 if kind == "POW" else -3.0  # a negative base to a fractional power is NaN in both
    _exact(model, _samples([a, b], lo=lo))


@pytest.mark.parametrize("act", [NONE, RELU, RELU_N1_TO_1, RELU6])
def test_fused_activations(act: int) -> None:
    model = _graph("ADD", [_f("a", (4, 6)), _f("b", (6,), RNG.normal(size=6))], [_f("y", (4, 6))], "AddOptions",
                   fusedActivationFunction=act)
    _exact(model, _samples([(4, 6)]))


UNARY = {"RELU": (-3, 3), "RELU6": (-3, 9), "RELU_N1_TO_1": (-3, 3), "NEG": (-3, 3), "ABS": (-3, 3),
         "SQRT": (0, 50), "RSQRT": (0.01, 50), "EXP": (-90, 90), "LOG": (1e-3, 1e3), "TANH": (-12, 12),
         "LOGISTIC": (-30, 30), "HARD_SWISH": (-5, 5)}


@pytest.mark.parametrize("kind", sorted(UNARY))
def test_unary_ops_bit_exact(kind: str) -> None:
    model = _graph(kind, [_f("x", (3, 257))], [_f("y", (3, 257))])
    _exact(model, _samples([(3, 257)], *UNARY[kind]))


def test_leaky_relu_bit_exact() -> None:
    model = _graph("LEAKY_RELU", [_f("x", (2, 50))], [_f("y", (2, 50))], "LeakyReluOptions", alpha=0.17)
    _exact(model, _samples([(2, 50)]))


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_within_tolerance_of_eigen(approximate: bool) -> None:
    model = _graph("GELU", [_f("x", (4, 512))], [_f("y", (4, 512))], "GeluOptions", approximate=approximate)
    result = verify(model, inputs=_samples([(4, 512)], -8, 8))
    assert result.passed and result.integer_exact, result.summary()
    worst = max((c.relative for c in result.float_checks), default=0.0)
    assert worst <= 1e-6 < FLOAT_TOLERANCE, result.summary()


@pytest.mark.parametrize("padding,stride,dilation,act", [(0, 1, 1, RELU), (1, 2, 1, NONE), (0, 2, 2, RELU6),
                                                         (1, 1, 2, RELU_N1_TO_1)])
def test_conv_2d_bit_exact(padding: int, stride: int, dilation: int, act: int) -> None:
    h, w, cin, cout, k = 11, 9, 5, 7, 3
    eff = (k - 1) * dilation + 1
    oh, ow = ((h + stride - 1) // stride, (w + stride - 1) // stride) if padding == 0 else (
        (h - eff + stride) // stride, (w - eff + stride) // stride)
    model = _graph("CONV_2D", [_f("x", (2, h, w, cin)), _f("w", (cout, k, k, cin), RNG.normal(size=(cout, k, k, cin))),
                               _f("b", (cout,), RNG.normal(size=cout))], [_f("y", (2, oh, ow, cout))], "Conv2DOptions",
                   padding=padding, strideW=stride, strideH=stride, fusedActivationFunction=act,
                   dilationWFactor=dilation, dilationHFactor=dilation)  # fmt: skip
    _exact(model, _samples([(2, h, w, cin)]))


@pytest.mark.parametrize("multiplier,stride,act", [(1, 1, RELU6), (2, 2, NONE), (3, 1, RELU)])
def test_depthwise_conv_2d_bit_exact(multiplier: int, stride: int, act: int) -> None:
    h, w, cin, k = 10, 7, 4, 3
    cout = cin * multiplier
    oh, ow = (h + stride - 1) // stride, (w + stride - 1) // stride
    weights = RNG.normal(size=(1, k, k, cout))
    model = _graph("DEPTHWISE_CONV_2D", [_f("x", (1, h, w, cin)), _f("w", (1, k, k, cout), weights),
                                         _f("b", (cout,), RNG.normal(size=cout))], [_f("y", (1, oh, ow, cout))],
                   "DepthwiseConv2DOptions", padding=0, strideW=stride, strideH=stride, depthMultiplier=multiplier,
                   fusedActivationFunction=act, dilationWFactor=1, dilationHFactor=1)  # fmt: skip
    _exact(model, _samples([(1, h, w, cin)]))


@pytest.mark.parametrize("keep,act", [(False, NONE), (True, RELU)])
def test_fully_connected_bit_exact(keep: bool, act: int) -> None:
    out = (2, 3, 6) if keep else (6, 6)
    model = _graph("FULLY_CONNECTED", [_f("x", (2, 3, 40)), _f("w", (6, 40), RNG.normal(size=(6, 40))),
                                       _f("b", (6,), RNG.normal(size=6))], [_f("y", out)], "FullyConnectedOptions",
                   fusedActivationFunction=act, keepNumDims=keep)  # fmt: skip
    _exact(model, _samples([(2, 3, 40)]))


@pytest.mark.parametrize("lhs,rhs,out,adj_x,adj_y", [((2, 4, 6), (2, 6, 5), (2, 4, 5), False, False),
                                                     ((3, 1, 6, 4), (2, 5, 6), (3, 2, 4, 5), True, True),
                                                     ((4, 6), (2, 3, 6, 5), (2, 3, 4, 5), False, False)])
def test_batch_matmul_broadcast_and_adjoints_bit_exact(lhs, rhs, out, adj_x: bool, adj_y: bool) -> None:
    model = _graph("BATCH_MATMUL", [_f("a", lhs), _f("b", rhs)], [_f("y", out)], "BatchMatMulOptions", adjX=adj_x,
                   adjY=adj_y)
    _exact(model, _samples([lhs, rhs]))


@pytest.mark.parametrize("kind", ["MEAN", "SUM", "REDUCE_MAX"])
@pytest.mark.parametrize("axes,keep", [([1, 2], True), ([-1], False), ([0, 2], False)])
def test_reductions_bit_exact(kind: str, axes: list[int], keep: bool) -> None:
    shape = (2, 9, 7, 5)
    resolved = {a % 4 for a in axes}
    out = tuple(1 if i in resolved else d for i, d in enumerate(shape)) if keep else tuple(
        d for i, d in enumerate(shape) if i not in resolved)
    model = _graph(kind, [_f("x", shape), _f("axes", (len(axes),), axes, "int32")], [_f("y", out)], "ReducerOptions",
                   keepDims=keep)
    _exact(model, _samples([shape], -50, 50))


@pytest.mark.parametrize("beta", [1.0, 0.37])
def test_softmax_bit_exact(beta: float) -> None:
    model = _graph("SOFTMAX", [_f("x", (3, 4, 77))], [_f("y", (3, 4, 77))], "SoftmaxOptions", beta=beta)
    _exact(model, _samples([(3, 4, 77)], -20, 20))


@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("padding,stride,act", [(0, 2, NONE), (1, 1, RELU6), (0, 3, RELU)])
def test_pools_bit_exact(kind: str, padding: int, stride: int, act: int) -> None:
    h, w, c, k = 13, 10, 6, 3
    oh, ow = ((h + stride - 1) // stride, (w + stride - 1) // stride) if padding == 0 else (
        (h - k + stride) // stride, (w - k + stride) // stride)
    model = _graph(kind, [_f("x", (2, h, w, c))], [_f("y", (2, oh, ow, c))], "Pool2DOptions", padding=padding,
                   strideW=stride, strideH=stride, filterWidth=k, filterHeight=k, fusedActivationFunction=act)
    _exact(model, _samples([(2, h, w, c)]))


def test_cast_gather_nd_select_and_logical_and_bit_exact() -> None:
    ids = [RNG.integers(-1000, 1000, size=(3, 4)).astype(np.int32) for _ in range(2)]
    to_float = _graph("CAST", [_f("i", (3, 4), dtype="int32")], [_f("f", (3, 4))])
    assert verify(to_float, inputs=[[i] for i in ids]).bit_exact
    floats = _samples([(3, 4)], -1e6, 1e6)
    assert verify(_graph("CAST", [_f("f", (3, 4))], [_f("i", (3, 4), dtype="int32")]), inputs=floats).bit_exact
    table = RNG.normal(size=(5, 4, 3)).astype(np.float32)
    index = [[[RNG.integers(0, 5), RNG.integers(0, 4)] for _ in range(6)]]
    gather = _graph("GATHER_ND", [_f("p", (5, 4, 3), table), _f("i", (1, 6, 2), index, "int32")], [_f("y", (1, 6, 3))])
    assert np.array_equal(edgeq.run(gather, [])[0], table[tuple(np.asarray(index)[0].T)][None])
    masks = [[RNG.integers(0, 2, size=s).astype(np.bool_) for s in ((2, 1, 4), (3, 1))] for _ in range(3)]
    assert verify(_graph("LOGICAL_AND", [_f("a", (2, 1, 4), dtype="bool"), _f("b", (3, 1), dtype="bool")],
                         [_f("y", (2, 3, 4), dtype="bool")]), inputs=masks).bit_exact
    select = _graph("SELECT_V2", [_f("c", (2, 1, 4), dtype="bool"), _f("x", (3, 1)), _f("y", (4,))],
                    [_f("o", (2, 3, 4))])
    feeds = [[m[0], *s] for m, s in zip(masks, _samples([(3, 1), (4,)]), strict=True)]
    assert verify(select, inputs=feeds).bit_exact


def test_ops_without_a_float_kernel_keep_their_refusal() -> None:
    with pytest.raises(UnsupportedOpError, match=r"op 0 \(ELU\).*FLOAT32"):
        NativeModel(_graph("ELU", [_f("x", (2, 8))], [_f("y", (2, 8))]))


# ---------------------------------------------------------------------------------------------------------
# Whole models through `edgeq verify`


def test_verify_w4_cnn_dequantize_into_float_convolutions() -> None:
    qm = edgeq.quantize(edgeq.load(cnn_model()), edgeq.calibration.arrays(cnn_inputs(4)[:, 0]), scheme="w4-block32",
                        progress=False)
    ops = {op.name for op in NativeModel(qm.tflite).ops}
    assert {"DEQUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D"} <= ops
    result = verify(qm.tflite, inputs=[[x] for x in cnn_inputs(3, seed=7)[:, 0]])
    assert result.bit_exact and result.passed, result.summary()
    assert result.float_tensors > 0 and result.float_bit_exact == result.float_tensors


def test_verify_w4_transformer_block() -> None:
    qm = edgeq.quantize(edgeq.load(attention_block()), edgeq.calibration.arrays(np.concatenate(CALIB[:8])),
                        scheme="w4-block32", allow_float_ops=True, progress=False)
    ops = {op.name for op in NativeModel(qm.tflite).ops}
    assert {"BATCH_MATMUL", "SOFTMAX", "GELU", "FULLY_CONNECTED"} <= ops
    result = verify(qm.tflite, inputs=[[x] for x in CALIB[8:11]])
    assert result.passed and result.integer_exact, result.summary()
    # Only GELU (Eigen in REF) may differ; every other float tensor is bit-exact.
    assert {c.op for c in result.float_checks} <= {"GELU"}, result.summary()
    assert all(c.relative <= 1e-6 for c in result.float_checks), result.summary()


def test_verify_int8_with_float_overrides() -> None:
    model = edgeq.load(attention_block())
    names = [model.graph.tensors[op.outputs[0]].name for op in model.graph.ops if op.kind in ("SOFTMAX", "MUL")]
    calib = edgeq.calibration.arrays(np.concatenate(CALIB[:16]))
    qm = edgeq.quantize(model, calib, scheme="int8", allow_float_ops=True, overrides={name: "float" for name in names},
                        progress=False)
    native = NativeModel(qm.tflite)
    kinds = {(op.name, native.tensors[op.inputs[0]].type) for op in native.ops}
    assert ("SOFTMAX", "FLOAT32") in kinds and ("QUANTIZE", "FLOAT32") in kinds and ("FULLY_CONNECTED", "INT8") in kinds
    result = verify(qm.tflite, inputs=[[x] for x in CALIB[16:19]])
    assert result.passed and result.integer_exact and result.integer_tensors > 0 and result.float_tensors > 0, (
        result.summary())
