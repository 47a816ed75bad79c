"""Pooling and reductions in edgeq's C interpreter (native/src/kernels/average_pool_2d.c, max_pool_2d.c,
mean.c, sum.c, reduce_max.c, reduce_min.c, reduce_prod.c) against LiteRT's BUILTIN_REF kernels, bit for bit:
every model of the op-model corpus (tests/opmodels.py) for these ops, then single-op models written here for
what converters never emit -- odd shapes and windows, scales and zero points at the ends of their ranges,
negative and repeated axes, reductions to a scalar, int32/int64, saturating inputs -- and the models edgeq
must refuse, with the reason."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.verify.bitexact import verify
from edgeq.verify.native import NativeModel

OPS = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN")
INT16_QUANTIZERS = ("tflite_int16x8", "aeq_w8a16", "edgeq_int16x8")

# ---------------------------------------------------------------------------------------------------------
# The op-model corpus


@pytest.fixture(scope="module")
def corpus():
    try:
        from tests.opmodels import op_models
    except ImportError:
        pytest.skip("tests/opmodels.py (the op-model corpus) is not in this checkout")
    return op_models(ops=OPS)


@pytest.mark.parametrize("op", OPS)
def test_corpus_models_are_bit_exact(corpus, op: str) -> None:
    models = [m for m in corpus if m.op == op]
    assert models, f"the corpus has no {op} model"
    failures = []
    for m in models:
        if op == "SUM" and m.quantizer in INT16_QUANTIZERS:
            # LiteRT's reference SUM reads int16 tensors as uint8 and leaves half the output bytes unwritten:
            # there is no defined result to match, so edgeq refuses the op.
            with pytest.raises(UnsupportedOpError, match="int16 SUM"):
                NativeModel(m.path)
            continue
        result = verify(m.path, samples=4)
        if not result.bit_exact:
            failures.append(f"{m.name}: {result.summary()}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------------------------------------
# Single-op models

_TYPES = {
    np.int8: schema.TensorType.INT8,
    np.uint8: schema.TensorType.UINT8,
    np.int16: schema.TensorType.INT16,
    np.int32: schema.TensorType.INT32,
    np.int64: schema.TensorType.INT64,
}
SAME, VALID = schema.Padding.SAME, schema.Padding.VALID
NONE, RELU, RELU_N1_TO_1, RELU6, TANH = 0, 1, 2, 3, 4


def _tensor(name, shape, dtype, q=None, data=None) -> dict:
    return {"name": name, "shape": list(shape), "dtype": dtype, "q": q, "data": data}


def _single_op(builtin: int, inputs: list[dict], output: dict, options_type: int, options) -> bytes:
    """One op; inputs with data are constants, the others model inputs."""
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes = [code]
    sub = schema.SubGraphT()
    sub.tensors = []
    for t in [*inputs, output]:
        tt = schema.TensorT()
        tt.name, tt.shape, tt.type, tt.buffer = t["name"], t["shape"], _TYPES[t["dtype"]], 0
        if t["data"] is not None:
            buffer = schema.BufferT()
            buffer.data = np.ascontiguousarray(t["data"], dtype=t["dtype"]).reshape(-1).view(np.uint8)
            tt.buffer = len(model.buffers)
            model.buffers.append(buffer)
        if t["q"] is not None:
            q = schema.QuantizationParametersT()
            q.scale = [float(t["q"][0])]
            q.zeroPoint = [int(t["q"][1])]
            tt.quantization = q
        sub.tensors.append(tt)
    sub.inputs = [i for i, t in enumerate(inputs) if t["data"] is None]
    sub.outputs = [len(inputs)]
    op = schema.OperatorT()
    op.opcodeIndex = 0
    op.inputs = list(range(len(inputs)))
    op.outputs = [len(inputs)]
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    sub.operators = [op]
    model.subgraphs = [sub]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _pool(kind, shape, dtype, filt, stride, padding, act=NONE, in_q=(0.05, 0), out_q=None, out_shape=None) -> bytes:
    options = schema.Pool2DOptionsT()
    options.padding, options.fusedActivationFunction = padding, act
    options.strideH, options.strideW = stride
    options.filterHeight, options.filterWidth = filt
    n, h, w, c = shape
    if out_shape is None:
        if padding == SAME:
            out_shape = (n, -(-h // stride[0]), -(-w // stride[1]), c)
        else:
            out_shape = (n, (h - filt[0]) // stride[0] + 1, (w - filt[1]) // stride[1] + 1, c)
    builtin = schema.BuiltinOperator.AVERAGE_POOL_2D if kind == "avg" else schema.BuiltinOperator.MAX_POOL_2D
    return _single_op(builtin, [_tensor("x", shape, dtype, in_q)], _tensor("y", out_shape, dtype, out_q or in_q),
                      schema.BuiltinOptions.Pool2DOptions, options)


_REDUCERS = {"mean": schema.BuiltinOperator.MEAN, "sum": schema.BuiltinOperator.SUM,
             "max": schema.BuiltinOperator.REDUCE_MAX, "min": schema.BuiltinOperator.REDUCE_MIN,
             "prod": schema.BuiltinOperator.REDUCE_PROD}


def _reduce(kind, shape, dtype, axes, keep_dims, in_q=(0.05, 0), out_q="same", out_shape=None, data=None,
            axes_dtype=np.int32) -> bytes:
    options = schema.ReducerOptionsT()
    options.keepDims = keep_dims
    resolved = {a + len(shape) if a < 0 else a for a in axes}
    if out_shape is None:
        out_shape = [1 if i in resolved else d for i, d in enumerate(shape) if keep_dims or i not in resolved]
    inputs = [_tensor("x", shape, dtype, in_q, data), _tensor("axes", [len(axes)], axes_dtype, None, np.array(axes))]
    output = _tensor("y", out_shape, dtype, in_q if out_q == "same" else out_q)
    return _single_op(_REDUCERS[kind], inputs, output, schema.BuiltinOptions.ReducerOptions, options)


def _assert_bit_exact(model: bytes, samples: int = 4, inputs=None) -> None:
    result = verify(model, samples=samples, inputs=inputs)
    assert result.bit_exact, result.summary()


POOLS = {
    "avg_int8_2x2_s2_valid": lambda: _pool("avg", (1, 8, 8, 4), np.int8, (2, 2), (2, 2), VALID, in_q=(0.05, -3)),
    "avg_int8_3x2_s2x3_same_relu6": lambda: _pool("avg", (2, 13, 11, 5), np.int8, (3, 2), (2, 3), SAME, RELU6,
                                                  in_q=(0.02, -9)),
    "avg_int8_window_larger_than_image": lambda: _pool("avg", (1, 3, 3, 2), np.int8, (9, 9), (2, 2), SAME,
                                                       in_q=(0.1, 5)),
    "avg_int8_stride_beyond_filter": lambda: _pool("avg", (1, 10, 10, 3), np.int8, (3, 3), (5, 5), SAME, TANH),
    # LiteRT carries the input's values over whatever the output's scale says (it only DCHECKs them equal).
    "avg_int8_other_output_scale": lambda: _pool("avg", (1, 7, 9, 3), np.int8, (4, 5), (3, 2), SAME,
                                                 in_q=(0.05, 4), out_q=(0.08, -4)),
    "avg_int8_relu6_narrow_output": lambda: _pool("avg", (1, 6, 6, 2), np.int8, (2, 2), (1, 1), SAME, RELU6,
                                                  in_q=(0.01, 0), out_q=(0.01, -100)),
    "avg_uint8_4x5_s3x2_same_relu": lambda: _pool("avg", (1, 7, 9, 3), np.uint8, (4, 5), (3, 2), SAME, RELU,
                                                  in_q=(0.05, 128)),
    "avg_uint8_stride_4x3_valid": lambda: _pool("avg", (2, 9, 9, 3), np.uint8, (2, 2), (4, 3), VALID,
                                                in_q=(0.1, 5)),
    "avg_int16_3x3_same": lambda: _pool("avg", (1, 8, 8, 4), np.int16, (3, 3), (1, 1), SAME, in_q=(0.001, 0)),
    "avg_int16_global_64x64": lambda: _pool("avg", (1, 64, 64, 3), np.int16, (64, 64), (1, 1), VALID,
                                            in_q=(0.001, 0)),
    "avg_int16_1x1": lambda: _pool("avg", (3, 1, 9, 7), np.int16, (1, 1), (1, 1), VALID, in_q=(0.1, 0)),
    "max_int8_3x3_s2_same": lambda: _pool("max", (1, 13, 13, 3), np.int8, (3, 3), (2, 2), SAME, in_q=(0.05, 7)),
    "max_int8_1x3_s1x2_same_relu6": lambda: _pool("max", (3, 1, 9, 7), np.int8, (1, 3), (1, 2), SAME, RELU6),
    "max_int8_window_larger_than_image": lambda: _pool("max", (1, 5, 5, 1), np.int8, (7, 7), (1, 1), SAME),
    "max_uint8_relu_n1_to_1": lambda: _pool("max", (1, 6, 6, 2), np.uint8, (2, 2), (2, 1), SAME, RELU_N1_TO_1,
                                            in_q=(0.01, 120), out_q=(0.005, 128)),
    "max_int16_4x5_s3x2_valid_relu": lambda: _pool("max", (1, 7, 9, 3), np.int16, (4, 5), (3, 2), VALID, RELU,
                                                   in_q=(0.001, 0)),
}


@pytest.mark.parametrize("name", sorted(POOLS))
def test_pool_edge_cases(name: str) -> None:
    _assert_bit_exact(POOLS[name]())


REDUCTIONS = {
    # MEAN: one QuantizedMeanOrSum path for every axis set, keep_dims and scale pair.
    "mean_int8_hw_keepdims_same_scale": lambda: _reduce("mean", (1, 8, 8, 4), np.int8, (1, 2), True, (0.05, -3)),
    "mean_int8_hw_other_scale": lambda: _reduce("mean", (1, 13, 13, 5), np.int8, (2, 1), False, (0.05, 10),
                                                (0.02, -7)),
    "mean_int8_zero_points_at_ends": lambda: _reduce("mean", (2, 9, 3), np.int8, (1,), False, (0.5, -128),
                                                     (0.01, 127)),
    "mean_int8_negative_repeated_axes": lambda: _reduce("mean", (3, 4, 5, 6), np.int8, (1, 3, -3, -1), True,
                                                        (0.01, 0), (0.3, 5)),
    "mean_int8_outer_axes": lambda: _reduce("mean", (3, 4, 5, 6), np.int8, (0, 2), False, (0.1, -128),
                                            (0.0007, 127)),
    "mean_int8_all_axes_to_scalar": lambda: _reduce("mean", (4, 6), np.int8, (0, 1), False, (0.05, 1), (0.07, -1)),
    "mean_int8_size1_dims": lambda: _reduce("mean", (2, 1, 3, 1, 4), np.int8, (1, 3, 4), True, (0.05, 2)),
    "mean_int8_scalar_input": lambda: _reduce("mean", (), np.int8, (0,), False, (0.05, 1), (0.07, -1)),
    "mean_int8_65536_elements": lambda: _reduce("mean", (1, 256, 256, 1), np.int8, (1, 2), True, (0.05, 7),
                                                (0.03, -2)),
    "mean_int8_multiplier_flushed_to_zero": lambda: _reduce("mean", (4, 5), np.int8, (1,), False, (1e-12, 0),
                                                            (1.0, 3)),
    "mean_int8_ratio_2e31": lambda: _reduce("mean", (4, 5), np.int8, (1,), False, (2.0**31, 0), (1.0, 0)),
    "mean_int8_constant_input": lambda: _reduce("mean", (2, 9), np.int8, (1,), False, (0.05, 0), (0.04, 1),
                                                data=np.arange(18).reshape(2, 9) - 9),
    "mean_uint8_last_axis": lambda: _reduce("mean", (2, 5, 17), np.uint8, (-1,), False, (0.05, 3), (0.021, 200)),
    "mean_uint8_all_90000": lambda: _reduce("mean", (300, 300), np.uint8, (0, 1), False, (0.05, 0), (0.0001, 255)),
    "mean_int16_hw": lambda: _reduce("mean", (1, 256, 256, 2), np.int16, (1, 2), False, (0.05, 0), (0.03, 0)),
    "mean_int16_axis0_other_scale": lambda: _reduce("mean", (5, 1, 3), np.int16, (0,), True, (0.01, 0),
                                                    (0.0001, 0)),
    "mean_int32": lambda: _reduce("mean", (3, 1000), np.int32, (1,), False, None, None),
    "mean_int64": lambda: _reduce("mean", (3, 7), np.int64, (0, 1), True, None, None),
    # SUM: int8 goes through LiteRT's uint8 instantiation (see sum.c); uint8 is the honest path.
    "sum_int8_last_axis": lambda: _reduce("sum", (2, 5, 17), np.int8, (-1,), False, (0.05, -3)),
    "sum_int8_hw_other_scale": lambda: _reduce("sum", (1, 13, 13, 5), np.int8, (1, 2), True, (0.05, 10),
                                               (0.02, -7)),
    "sum_int8_ratio_2e29": lambda: _reduce("sum", (4, 5), np.int8, (1,), False, (2.0**29, 0), (1.0, 0)),
    "sum_uint8_outer_axes": lambda: _reduce("sum", (3, 4, 5, 6), np.uint8, (0, 2), False, (0.05, 128),
                                            (0.05, 128)),
    "sum_uint8_ratio_2e29": lambda: _reduce("sum", (4, 5), np.uint8, (1,), False, (2.0**29, 3), (1.0, 100)),
    "sum_int32_wraps": lambda: _reduce("sum", (3, 1000), np.int32, (1,), False, None, None),
    "sum_int64_keepdims": lambda: _reduce("sum", (3, 7), np.int64, (0,), True, None, None),
    # REDUCE_MAX / REDUCE_MIN: any integer type, quantization passed through.
    "max_int8_hw_keepdims": lambda: _reduce("max", (1, 8, 8, 4), np.int8, (1, 2), True, (0.05, -3)),
    "max_int8_unquantized": lambda: _reduce("max", (2, 9), np.int8, (1,), False, None),
    "max_uint8_negative_axes": lambda: _reduce("max", (3, 4, 5, 6), np.uint8, (-1, -3), False, (0.05, 128)),
    "max_int16_all_axes": lambda: _reduce("max", (4, 6), np.int16, (1, 0), False, (0.001, 0)),
    "max_int32_axis0": lambda: _reduce("max", (5, 1, 3), np.int32, (0,), True, None),
    "max_int8_scalar_input": lambda: _reduce("max", (), np.int8, (0,), False, (0.05, 0)),
    "min_int8_last_axis": lambda: _reduce("min", (2, 5, 17), np.int8, (-1,), True, (0.05, 4)),
    "min_uint8_hw": lambda: _reduce("min", (2, 13, 13, 5), np.uint8, (1, 2), False, (0.05, 128)),
    "min_int16_repeated_axes": lambda: _reduce("min", (6, 7), np.int16, (1, 1, -1), False, (0.001, 0)),
    "min_int64_outer": lambda: _reduce("min", (3, 4, 5), np.int64, (0, 1), False, None),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_edge_cases(name: str) -> None:
    _assert_bit_exact(REDUCTIONS[name]())


@pytest.mark.parametrize("kind", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("fill", ["lowest", "highest"])
def test_saturating_sums(kind: str, dtype, fill: str) -> None:
    """Every input at one end of the range, output scale tiny: the requantized value saturates."""
    info = np.iinfo(dtype)
    x = np.full((2, 40, 40, 3), info.min if fill == "lowest" else info.max, dtype=dtype)
    model = _reduce(kind, x.shape, dtype, (1, 2), False, (0.5, 0 if dtype == np.int8 else 128), (0.001, 1))
    _assert_bit_exact(model, inputs=[[x]])


PRODUCTS = [  # shape, axes, keep_dims, dtype, input quantization, output quantization
    ((2, 5, 17), (-1,), False, np.int8, (0.01, 0), (0.02, 3)),
    ((3, 4, 5, 6), (0, 2), True, np.int8, (0.01, 7), (0.005, -3)),
    ((3, 4, 5, 6), (1, 3), False, np.int8, (0.01, -5), (0.01, -5)),
    ((1, 9, 9, 3), (1, 2), False, np.int16, (0.0001, 0), (0.0002, 0)),
    ((6, 7), (0, -1), True, np.int16, (0.0001, 0), (0.00005, 0)),
    ((3, 1), (1,), False, np.int8, (0.05, 1), (0.07, -1)),
]


@pytest.mark.parametrize("case", PRODUCTS, ids=lambda c: f"{np.dtype(c[3]).name}_{'x'.join(map(str, c[0]))}_{c[1]}")
def test_quantized_products(case) -> None:
    """Inputs near 1.0 in real terms, so that the running products neither vanish nor saturate and every
    per-step rounding shows; then full-range inputs."""
    shape, axes, keep_dims, dtype, in_q, out_q = case
    model = _reduce("prod", shape, dtype, axes, keep_dims, in_q, out_q)
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    one = round(1.0 / in_q[0]) + in_q[1]
    near_one = [[np.clip(rng.integers(int(one * 0.8), int(one * 1.25), size=shape), info.min, info.max).astype(dtype)]
                for _ in range(3)]
    _assert_bit_exact(model, inputs=near_one)
    _assert_bit_exact(model)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64])
def test_unquantized_products_wrap(dtype) -> None:
    _assert_bit_exact(_reduce("prod", (3, 4, 5, 6), dtype, (1, -1), False, None, None))


REFUSED = {
    "sum_int16": (lambda: _reduce("sum", (2, 5), np.int16, (1,), False, (0.01, 0)), UnsupportedOpError,
                  "int16 SUM"),
    "mean_int16_zero_point": (lambda: _reduce("mean", (2, 5), np.int16, (1,), False, (0.01, 3)), ModelFormatError,
                              "zero points must be 0"),
    "mean_ratio_2e31_single_element": (lambda: _reduce("mean", (4, 1), np.int8, (1,), False, (2.0**31, 0),
                                                       (1.0, 0)), UnsupportedOpError, "scale ratio"),
    "mean_unquantized_int8": (lambda: _reduce("mean", (2, 5), np.int8, (1,), False, None, None), ModelFormatError,
                              "not quantized"),
    "mean_wrong_output_shape": (lambda: _reduce("mean", (2, 9), np.int8, (1,), True, out_shape=(2,)),
                                ModelFormatError, r"should be \[2, 1\]"),
    "mean_axis_out_of_range": (lambda: _reduce("mean", (2, 9), np.int8, (2,), True, out_shape=(2, 1)),
                               ModelFormatError, "out of range"),
    "mean_int64_axes": (lambda: _reduce("mean", (2, 9), np.int8, (1,), False, axes_dtype=np.int64),
                        ModelFormatError, "not int32"),
    "max_other_output_quantization": (lambda: _reduce("max", (2, 9), np.int8, (1,), False, (0.5, 1), (0.5, 2)),
                                      ModelFormatError, "differs from the input"),
    "avg_wrong_output_shape": (lambda: _pool("avg", (1, 8, 8, 4), np.int8, (2, 2), (2, 2), VALID,
                                             out_shape=(1, 3, 4, 4)), ModelFormatError, "should be"),
    "max_zero_stride": (lambda: _pool("max", (1, 8, 8, 4), np.int8, (2, 2), (0, 2), VALID, out_shape=(1, 4, 4, 4)),
                        ModelFormatError, "strides"),
    "prod_uint8_quantized": (lambda: _reduce("prod", (2, 5), np.uint8, (1,), False, (0.01, 3)), UnsupportedOpError,
                             "quantized UINT8"),
    "prod_constant_input": (lambda: _reduce("prod", (2, 9), np.int8, (1,), False, data=np.ones((2, 9))),
                            UnsupportedOpError, "constant quantized input"),
    "avg_int32": (lambda: _pool("avg", (1, 4, 4, 1), np.int32, (2, 2), (2, 2), VALID), UnsupportedOpError,
                  "INT32"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals(name: str) -> None:
    build, error, message = REFUSED[name]
    with pytest.raises(error, match=message):
        NativeModel(build())
