"""Convolutions in edgeq's C interpreter (native/src/kernels/conv_2d.c, depthwise_conv_2d.c, transpose_conv.c)
against LiteRT's BUILTIN_REF kernels, bit for bit: every model of the op-model corpus (tests/opmodels.py) for
CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV, then single-op models written here for what converters rarely
emit -- grouped convolutions, int16 activations with an int32 bias (quantized_bias_type INT32), INT4 filters
with an odd element count, input zero points at the ends of their range under padding, effective scales
above 1 and below 2^-31, int32 accumulators that wrap, a sweep of odd shapes, strides and dilations -- and the
models edgeq must refuse (where LiteRT would compute garbage or refuses itself).

LiteRT refuses a CONV_2D without a bias (conv.cc: has_bias) and a DEPTHWISE_CONV_2D whose bias input is
omitted; edgeq runs both with a zero bias, as TFLite Micro does, and is checked against TFLite Micro there."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.verify.bitexact import verify
from edgeq.verify.native import NativeModel

OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")


@pytest.fixture(params=["default", "sse2"])
def kernels(request, monkeypatch) -> str:
    """Runs a test with the kernels chosen at load (AVX2 where the CPU has it) and again with the SSE2
    ones (EDGEQ_NO_AVX2), so both vector paths stay checked on AVX2 machines."""
    if request.param == "sse2":
        monkeypatch.setenv("EDGEQ_NO_AVX2", "1")
    return request.param


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
def test_corpus_models_are_bit_exact(corpus, op: str, kernels: str) -> None:
    models = [m for m in corpus if m.op == op]
    assert models, f"the corpus has no {op} model"
    failures, checked = [], 0
    for m in models:
        try:
            result = verify(m.path, samples=4)
        except UnsupportedOpError as e:
            if any(name in str(e) for name in OPS):
                failures.append(f"{m.name}: {e}")
            continue  # another group's op (e.g. a float HARD_SWISH in a w8a16 block): not this test's concern
        checked += 1
        if not result.bit_exact:
            failures.append(f"{m.name}: {result.summary()}")
    assert not failures, "\n".join(failures)
    assert checked >= len(models) // 2, f"only {checked} of {len(models)} {op} models could run"


# ---------------------------------------------------------------------------------------------------------
# Single-op models

_TYPES = {
    "int8": schema.TensorType.INT8,
    "uint8": schema.TensorType.UINT8,
    "int16": schema.TensorType.INT16,
    "int32": schema.TensorType.INT32,
    "int64": schema.TensorType.INT64,
    "int4": schema.TensorType.INT4,
}
_OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
}


def _t(shape, dtype, scales=None, zero_points=0, qdim=0, data=None) -> dict:
    """A tensor: quantized when scales are given (one per channel of `qdim`, or one), constant with data."""
    return {"shape": tuple(shape), "dtype": dtype, "scales": scales, "zps": zero_points, "qdim": qdim, "data": data}


def _pack_int4(values: np.ndarray) -> bytes:
    v = (np.asarray(values, np.int64).ravel() & 15).astype(np.uint8)
    if v.size % 2:
        v = np.append(v, np.uint8(0))
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8).tobytes()


def _model(op: str, inputs: list, output: dict, version: int = 1, **options) -> bytes:
    """One op; `inputs` are _t dicts or None (an omitted optional input). Non-constant inputs become the
    model's inputs. Options are the op's options table fields (snake_case as in the generated schema)."""
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    sub = schema.SubGraphT()
    sub.tensors = []

    def add(t: dict, name: str) -> int:
        tensor = schema.TensorT()
        tensor.name, tensor.type, tensor.shape = name, _TYPES[t["dtype"]], list(t["shape"])
        if t["scales"] is not None:
            scales = np.atleast_1d(np.asarray(t["scales"], np.float64))
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale = [float(s) for s in scales]
            tensor.quantization.zeroPoint = [int(z) for z in np.broadcast_to(np.atleast_1d(t["zps"]), scales.shape)]
            tensor.quantization.quantizedDimension = t["qdim"]
        buffer = schema.BufferT()
        if t["data"] is not None:
            raw = _pack_int4(t["data"]) if t["dtype"] == "int4" else np.asarray(t["data"]).astype(t["dtype"]).tobytes()
            buffer.data = np.frombuffer(raw, np.uint8)
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        sub.tensors.append(tensor)
        return len(sub.tensors) - 1

    indices = [-1 if t is None else add(t, f"input{i}") for i, t in enumerate(inputs)]
    out = add(output, "output")
    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, op)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = version
    model.operatorCodes = [code]
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, indices, [out]
    table = getattr(schema, _OPTIONS[op] + "T")()
    for key, value in options.items():
        setattr(table, "".join(w if i == 0 else w.capitalize() for i, w in enumerate(key.split("_"))), value)
    operator.builtinOptionsType = getattr(schema.BuiltinOptions, _OPTIONS[op])
    operator.builtinOptions = table
    sub.operators = [operator]
    sub.inputs = [i for i, t in zip(indices, inputs, strict=True) if t is not None and t["data"] is None]
    sub.outputs = [out]
    model.subgraphs = [sub]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _assert_bit_exact(model: bytes, what: str, samples: int = 4, inputs=None) -> None:
    result = verify(model, samples=samples, inputs=inputs)
    assert result.bit_exact, f"{what}: {result.summary()}"


def _conv_opts(stride=1, padding="SAME", dilation=1, act=0, bias_type=0) -> dict:
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    return {
        "padding": getattr(schema.Padding, padding),
        "stride_h": sh,
        "stride_w": sw,
        "dilation_h_factor": dh,
        "dilation_w_factor": dw,
        "fused_activation_function": act,
        "quantized_bias_type": bias_type,
    }


def _dw_opts(stride=1, padding="SAME", dilation=1, act=0, multiplier=1) -> dict:
    o = _conv_opts(stride, padding, dilation, act)
    del o["quantized_bias_type"]
    o["depth_multiplier"] = multiplier
    return o


def _tconv_opts(stride=1, padding="SAME", act=0, bias_type=0) -> dict:
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    return {
        "padding": getattr(schema.Padding, padding),
        "stride_h": sh,
        "stride_w": sw,
        "fused_activation_function": act,
        "quantized_bias_type": bias_type,
    }


def _out_size(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    effective = (k - 1) * dilation + 1
    return -(-size // stride) if padding == "SAME" else (size - effective + stride) // stride


_ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _weights(rng, shape, dtype) -> np.ndarray:
    lo, hi = {"int8": (-128, 128), "uint8": (0, 256), "int4": (-8, 8)}[dtype]
    return rng.integers(lo, hi, shape)


def _conv(
    rng,
    x_shape,
    cout,
    k,
    dtype="int8",
    wtype="int8",
    per_channel=True,
    stride=1,
    padding="SAME",
    dilation=1,
    act="NONE",
    groups=1,
    bias="auto",
    x_zp=None,
    y_scale=None,
    y_zp=None,
    bias_type=0,
) -> bytes:
    """A CONV_2D with random weights and bias (int64 for int16 activations unless given, None for none);
    scales chosen so outputs spread over the type's range."""
    n, h, w, cin = x_shape
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    oh, ow = _out_size(h, kh, sh, dilation, padding), _out_size(w, kw, sw, dilation, padding)
    is16 = dtype == "int16"
    x_zp = (
        (0 if is16 else int(rng.integers(-128, 128) if dtype == "int8" else rng.integers(0, 256)))
        if x_zp is None
        else x_zp
    )
    x_scale = 0.0005 if is16 else 0.05
    filt = _weights(rng, (cout, kh, kw, cin // groups), wtype)
    w_scales = rng.uniform(0.005, 0.02, cout) if per_channel else 0.01
    w_zp = int(rng.integers(100, 156)) if wtype == "uint8" else 0
    acc_scale = x_scale * (w_scales if per_channel else np.full(cout, w_scales))
    fan = kh * kw * cin // groups
    y_scale = (
        float(np.max(acc_scale) * (32768 if is16 else 128) * np.sqrt(fan) / (4 if is16 else 2))
        if y_scale is None
        else y_scale
    )
    y_zp = (0 if is16 else int(rng.integers(-20, 20)) + (128 if dtype == "uint8" else 0)) if y_zp is None else y_zp
    inputs = [_t(x_shape, dtype, x_scale, x_zp), _t(filt.shape, wtype, w_scales, w_zp, 0, filt)]
    if bias == "auto":
        bias = "int64" if is16 else "int32"
    if bias is not None:
        values = rng.integers(-(1 << 16), 1 << 16, cout) * (64 if is16 else 1)
        inputs.append(_t((cout,), bias, acc_scale if per_channel else acc_scale[0], 0, 0, values))
    y = _t((n, oh, ow, cout), dtype, y_scale, y_zp)
    return _model("CONV_2D", inputs, y, **_conv_opts(stride, padding, dilation, _ACT[act], bias_type))


def _depthwise(
    rng,
    x_shape,
    k,
    multiplier=1,
    dtype="int8",
    wtype="int8",
    per_channel=True,
    stride=1,
    padding="SAME",
    dilation=1,
    act="NONE",
    bias=True,
    x_zp=None,
    y_scale=None,
    y_zp=None,
    option_multiplier=None,
) -> bytes:
    n, h, w, cin = x_shape
    kh, kw = (k, k) if isinstance(k, int) else k
    cout = cin * multiplier
    oh, ow = _out_size(h, kh, stride, dilation, padding), _out_size(w, kw, stride, dilation, padding)
    is16 = dtype == "int16"
    x_zp = (
        (0 if is16 else int(rng.integers(-128, 128) if dtype == "int8" else rng.integers(0, 256)))
        if x_zp is None
        else x_zp
    )
    x_scale = 0.0005 if is16 else 0.05
    filt = _weights(rng, (1, kh, kw, cout), wtype)
    w_scales = rng.uniform(0.005, 0.02, cout) if per_channel else 0.01
    w_zp = int(rng.integers(100, 156)) if wtype == "uint8" else 0
    acc_scale = x_scale * (w_scales if per_channel else np.full(cout, w_scales))
    y_scale = float(np.max(acc_scale) * (32768 if is16 else 128) * np.sqrt(kh * kw) / 2) if y_scale is None else y_scale
    y_zp = (0 if is16 else int(rng.integers(-20, 20)) + (128 if dtype == "uint8" else 0)) if y_zp is None else y_zp
    inputs = [_t(x_shape, dtype, x_scale, x_zp), _t(filt.shape, wtype, w_scales, w_zp, 3, filt)]
    if bias:
        values = rng.integers(-(1 << 14), 1 << 14, cout) * (64 if is16 else 1)
        inputs.append(
            _t((cout,), "int64" if is16 else "int32", acc_scale if per_channel else acc_scale[0], 0, 0, values)
        )
    y = _t((n, oh, ow, cout), dtype, y_scale, y_zp)
    mult = multiplier if option_multiplier is None else option_multiplier
    return _model("DEPTHWISE_CONV_2D", inputs, y, version=2, **_dw_opts(stride, padding, dilation, _ACT[act], mult))


def _transpose(
    rng,
    x_shape,
    cout,
    k,
    stride,
    padding,
    out_hw=None,
    dtype="int8",
    per_channel=True,
    act="NONE",
    bias="auto",
    bias_type=0,
    x_zp=None,
    y_scale=None,
) -> bytes:
    n, h, w, cin = x_shape
    if out_hw is None:
        out_hw = (h * stride, w * stride) if padding == "SAME" else ((h - 1) * stride + k, (w - 1) * stride + k)
    is16 = dtype == "int16"
    wtype = "uint8" if dtype == "uint8" else "int8"
    x_zp = (
        (0 if is16 else int(rng.integers(-128, 128) if dtype == "int8" else rng.integers(0, 256)))
        if x_zp is None
        else x_zp
    )
    x_scale = 0.0005 if is16 else 0.05
    filt = _weights(rng, (cout, k, k, cin), wtype)
    w_scales = rng.uniform(0.005, 0.02, cout) if per_channel else 0.01
    w_zp = int(rng.integers(100, 156)) if wtype == "uint8" else 0
    acc_scale = x_scale * (w_scales if per_channel else np.full(cout, w_scales))
    taps = max(1, (k // stride) ** 2)
    y_scale = (
        float(np.max(acc_scale) * (32768 if is16 else 128) * np.sqrt(taps * cin) / 2) if y_scale is None else y_scale
    )
    y_zp = 0 if is16 else int(rng.integers(-20, 20)) + (128 if dtype == "uint8" else 0)
    inputs = [
        _t((4,), "int32", data=np.array([n, *out_hw, cout], np.int32)),
        _t(filt.shape, wtype, w_scales, w_zp, 0, filt),
        _t(x_shape, dtype, x_scale, x_zp),
    ]
    if bias == "auto":
        bias = "int64" if is16 else "int32"
    if bias is not None:
        values = rng.integers(-(1 << 14), 1 << 14, cout) * (64 if is16 else 1)
        inputs.append(_t((cout,), bias, acc_scale if per_channel else acc_scale[0], 0, 0, values))
    y = _t((n, *out_hw, cout), dtype, y_scale, y_zp)
    return _model(
        "TRANSPOSE_CONV",
        inputs,
        y,
        version=4 if act != "NONE" else 3,
        **_tconv_opts(stride, padding, _ACT[act], bias_type),
    )


# ---------------------------------------------------------------------------------------------------------
# Bit-exact cases


def test_conv_shapes_sweep(kernels: str) -> None:
    """Random shapes: channel counts off the vector widths, 1x1 with strides (read in place) and windows
    (copied), dilations, batches, every activation, per-tensor and per-channel filters, three types."""
    rng = np.random.default_rng(0)
    for i in range(36):
        dtype = ("int8", "uint8", "int16")[i % 3]
        k = (1, 3, 5, (1, 3), (3, 2))[i % 5]
        kh, kw = (k, k) if isinstance(k, int) else k
        dilation = (1, 1, 2)[i % 3] if k != 1 else 1
        h, w = (int(rng.integers((d - 1) * dilation + 1, (d - 1) * dilation + 8)) for d in (kh, kw))
        model = _conv(
            rng,
            (1 + i % 2, h, w, int(rng.integers(1, 20))),
            int(rng.integers(1, 20)),
            k,
            dtype=dtype,
            wtype="uint8" if dtype == "uint8" else "int8",
            per_channel=dtype != "uint8" and i % 4 != 1,
            stride=(1, 2, (2, 1))[i % 3],
            padding=("SAME", "VALID")[i % 2],
            dilation=dilation,
            act=("NONE", "RELU", "RELU6", "RELU_N1_TO_1")[i % 4],
        )
        _assert_bit_exact(model, f"conv case {i}")


def test_depthwise_shapes_sweep(kernels: str) -> None:
    rng = np.random.default_rng(1)
    for i in range(36):
        dtype = ("int8", "uint8", "int16")[i % 3]
        multiplier = (1, 1, 2, 3)[i % 4]
        k = (3, 5, (1, 3), (2, 2))[i % 4]
        kh, kw = (k, k) if isinstance(k, int) else k
        dilation = (1, 2)[(i // 3) % 2]
        h, w = (int(rng.integers((d - 1) * dilation + 1, (d - 1) * dilation + 9)) for d in (kh, kw))
        model = _depthwise(
            rng,
            (1 + i % 2, h, w, int(rng.integers(1, 26))),
            k,
            multiplier,
            dtype=dtype,
            wtype="uint8" if dtype == "uint8" else "int8",
            per_channel=dtype != "uint8" and i % 5 != 1,
            stride=(1, 2)[i % 2],
            padding=("SAME", "VALID")[(i // 2) % 2],
            dilation=dilation,
            act=("NONE", "RELU", "RELU6", "RELU_N1_TO_1")[i % 4],
            bias=i % 7 != 3,
        )
        _assert_bit_exact(model, f"depthwise case {i}")


def test_transpose_conv_shapes_sweep() -> None:
    rng = np.random.default_rng(2)
    for i in range(24):
        dtype = ("int8", "uint8", "int16")[i % 3]
        stride, k = (1, 2, 3)[i % 3], (1, 2, 3, 4)[i % 4]
        padding = ("SAME", "VALID")[(i // 3) % 2]
        model = _transpose(
            rng,
            (1 + i % 2, int(rng.integers(2, 6)), int(rng.integers(2, 6)), int(rng.integers(1, 12))),
            int(rng.integers(1, 12)),
            k,
            stride,
            padding,
            dtype=dtype,
            per_channel=dtype != "uint8" and i % 4 != 1,
            act=("NONE", "RELU", "RELU6")[i % 3],
            bias=None if i % 5 == 2 else "auto",
        )
        _assert_bit_exact(model, f"transpose case {i}")


def test_transpose_conv_uneven_output_sizes() -> None:
    """Output sizes whose forward convolution rounds: SAME with an odd size, VALID with extra rows."""
    rng = np.random.default_rng(3)
    for out_hw, padding in [((7, 7), "SAME"), ((8, 7), "SAME"), ((10, 10), "VALID"), ((9, 10), "VALID")]:
        _assert_bit_exact(_transpose(rng, (1, 4, 4, 5), 3, 3, 2, padding, out_hw=out_hw), f"{out_hw} {padding}")


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv(groups: int) -> None:
    rng = np.random.default_rng(groups)
    for dtype in ("int8", "int16", "uint8"):
        model = _conv(
            rng,
            (1, 6, 6, 8),
            8,
            3,
            dtype=dtype,
            wtype="uint8" if dtype == "uint8" else "int8",
            per_channel=dtype != "uint8",
            groups=groups,
        )
        _assert_bit_exact(model, f"{groups} groups {dtype}")


def test_int16_bias_and_accumulator_types() -> None:
    """int16x8 with an int64 bias (int64 accumulator) or an int32 bias under quantized_bias_type INT32
    (int32 accumulator, MultiplyByQuantizedMultiplier's int32 overload), and without a bias."""
    rng = np.random.default_rng(4)
    int32, int64 = schema.TensorType.INT32, schema.TensorType.INT64
    for bias, bias_type in [("int64", 0), ("int64", int64), ("int32", int32)]:
        _assert_bit_exact(
            _conv(rng, (1, 6, 6, 12), 9, 3, dtype="int16", bias=bias, bias_type=bias_type), f"conv {bias}"
        )
        _assert_bit_exact(
            _transpose(rng, (1, 4, 4, 12), 9, 3, 2, "SAME", dtype="int16", bias=bias, bias_type=bias_type),
            f"transpose {bias}",
        )
    for bias_type in (0, int32):
        _assert_bit_exact(
            _transpose(rng, (1, 4, 4, 6), 5, 3, 2, "SAME", dtype="int16", bias=None, bias_type=bias_type),
            "transpose without bias",
        )


def test_int4_filters() -> None:
    """INT4 weights (two a byte, low nibble first), with odd element counts that leave half a byte."""
    rng = np.random.default_rng(5)
    _assert_bit_exact(_conv(rng, (1, 6, 6, 3), 3, 3, wtype="int4"), "conv 3x3x3x3")
    _assert_bit_exact(_conv(rng, (1, 5, 5, 7), 5, 1, wtype="int4", per_channel=False), "conv 1x1 per tensor")
    _assert_bit_exact(_conv(rng, (1, 5, 5, 9), 3, 3, dtype="int16", wtype="int4", bias="int64"), "conv int16")
    _assert_bit_exact(_depthwise(rng, (1, 6, 6, 3), 3, wtype="int4"), "depthwise 3 channels")
    _assert_bit_exact(_depthwise(rng, (1, 6, 6, 21), 3, wtype="int4"), "depthwise 21 channels")


@pytest.mark.parametrize("op", OPS)
def test_padding_with_extreme_zero_points(op: str, kernels: str) -> None:
    """Padded taps contribute nothing in the reference; edgeq pads with the zero point and folds the
    cancelling term into the bias, so zero points at the ends of the range are the edge to check."""
    rng = np.random.default_rng(6)
    for dtype, zps in (("int8", (-128, 127)), ("uint8", (0, 255))):
        for zp in zps:
            wtype = "uint8" if dtype == "uint8" else "int8"
            if op == "CONV_2D":
                model = _conv(
                    rng, (1, 7, 7, 10), 12, 3, dtype=dtype, wtype=wtype, per_channel=dtype == "int8", stride=2, x_zp=zp
                )
            elif op == "DEPTHWISE_CONV_2D":
                model = _depthwise(
                    rng, (1, 7, 7, 27), 5, dtype=dtype, wtype=wtype, per_channel=dtype == "int8", dilation=2, x_zp=zp
                )
            else:
                model = _transpose(
                    rng, (1, 4, 4, 10), 6, 3, 2, "SAME", dtype=dtype, per_channel=dtype == "int8", x_zp=zp
                )
            _assert_bit_exact(model, f"{op} {dtype} zero point {zp}", samples=6)


@pytest.mark.parametrize("op", OPS)
def test_extreme_rescaling(op: str, kernels: str) -> None:
    """Effective scales above 1 (left shifts, saturating doubling multiplies, output zero points added with
    int32 wraparound) and below 2^-31 (a zero multiplier), with output zero points at the ends."""
    rng = np.random.default_rng(7)
    for dtype in ("int8", "uint8", "int16"):
        # (uint8's bias-scale check fails below 1e-6: a float32 bias scale is off by ~1e-11 of the product)
        for y_scale in (1e-6, 1e-4, 1e3, 1e9) if dtype == "uint8" else (1e-9, 1e-6, 1e-4, 1e3, 1e9):
            kw = {"y_scale": y_scale}
            if op == "CONV_2D":
                for y_zp in (0,) if dtype == "int16" else (-128, 127) if dtype == "int8" else (0, 255):
                    model = _conv(
                        rng,
                        (1, 5, 5, 9),
                        10,
                        3,
                        dtype=dtype,
                        wtype="uint8" if dtype == "uint8" else "int8",
                        per_channel=dtype != "uint8",
                        y_zp=y_zp,
                        **kw,
                    )
                    _assert_bit_exact(model, f"conv {dtype} scale {y_scale} zp {y_zp}")
            elif op == "DEPTHWISE_CONV_2D":
                model = _depthwise(
                    rng,
                    (1, 5, 5, 11),
                    3,
                    dtype=dtype,
                    wtype="uint8" if dtype == "uint8" else "int8",
                    per_channel=dtype != "uint8",
                    **kw,
                )
                _assert_bit_exact(model, f"depthwise {dtype} scale {y_scale}")
            else:
                model = _transpose(rng, (1, 3, 3, 7), 5, 3, 2, "SAME", dtype=dtype, per_channel=dtype != "uint8", **kw)
                _assert_bit_exact(model, f"transpose {dtype} scale {y_scale}")


def test_int32_accumulators_wrap() -> None:
    """Sums past int32 wrap in LiteRT's accumulators (compiled two's complement); edgeq's folded zero-point
    term and reordered sums must wrap to the same values."""
    k = 70000
    x = _t((1, 1, 1, k), "int8", 0.05, 127)
    filt = np.stack([np.full(k, -128), np.full(k, 127), np.where(np.arange(k) % 2, -128, 127)])
    w = _t(filt.reshape(3, 1, 1, k).shape, "int8", [0.01, 0.02, 0.015], 0, 0, filt.reshape(3, 1, 1, k))
    b = _t((3,), "int32", [5e-4, 1e-3, 7.5e-4], 0, 0, np.array([123456, -777, 1 << 30]))
    y = _t((1, 1, 1, 3), "int8", 0.05 * 0.01 * 2**31 / 100, 3)
    model = _model("CONV_2D", [x, w, b], y, **_conv_opts())
    samples = [[np.full((1, 1, 1, k), v, np.int8)] for v in (-128, -127, 0, 100, 127)]
    _assert_bit_exact(model, "conv with 70000 input channels", inputs=samples)

    taps = 66000
    xd = _t((1, 1, taps, 8), "int8", 0.05, 127)
    wd = _t((1, 1, taps, 8), "int8", np.full(8, 0.01), 0, 3, np.full((1, 1, taps, 8), -128))
    yd = _t((1, 1, 1, 8), "int8", 0.05 * 0.01 * 2**31 / 100, 0)
    model = _model("DEPTHWISE_CONV_2D", [xd, wd], yd, **_dw_opts(padding="VALID"))
    _assert_bit_exact(model, "depthwise with 66000 taps", inputs=[[np.full((1, 1, taps, 8), -128, np.int8)]])

    # int16 x int8 products reach 2^22: 1100 of them pass 2^32, exact in the int64 accumulator and wrapping
    # in the int32 one (quantized_bias_type INT32)
    k16 = 1100
    x16 = _t((1, 1, 1, k16), "int16", 0.001)
    f16 = np.stack([np.full(k16, -128), np.full(k16, 127)]).reshape(2, 1, 1, k16)
    w16 = _t(f16.shape, "int8", [0.01, 0.02], 0, 0, f16)
    for bias_type, dtype in ((0, "int64"), (schema.TensorType.INT32, "int32")):
        b16 = _t((2,), dtype, [1e-5, 2e-5], 0, 0, np.array([1 << 20, -(1 << 20)]))
        model = _model("CONV_2D", [x16, w16, b16], _t((1, 1, 1, 2), "int16", 4.0), **_conv_opts(bias_type=bias_type))
        samples16 = [[np.full((1, 1, 1, k16), v, np.int16)] for v in (-32768, 32767, -1, 12345)]
        _assert_bit_exact(model, f"int16 conv, {dtype} bias", inputs=samples16)

    xt = _t((1, 1, 1, k), "int8", 0.05, 127)
    wt = _t((2, 1, 1, k), "int8", [0.01, 0.02], 0, 0, filt[:2].reshape(2, 1, 1, k))
    yt = _t((1, 1, 1, 2), "int8", 0.05 * 0.01 * 2**31 / 100, 3)
    shape = _t((4,), "int32", data=np.array([1, 1, 1, 2], np.int32))
    model = _model("TRANSPOSE_CONV", [shape, wt, xt], yt, **_tconv_opts(padding="VALID"))
    _assert_bit_exact(model, "transpose conv with 70000 input channels", inputs=samples)


def test_depth_multiplier_from_shapes() -> None:
    """8-bit kernels take the multiplier from the shapes (the option may be 0); int16 ones from the option,
    which then has to agree."""
    rng = np.random.default_rng(8)
    _assert_bit_exact(_depthwise(rng, (1, 6, 6, 5), 3, 2, option_multiplier=0), "int8, option 0")
    _assert_bit_exact(
        _depthwise(rng, (1, 6, 6, 5), 3, 3, dtype="uint8", wtype="uint8", per_channel=False, option_multiplier=1),
        "uint8, option 1",
    )
    _assert_bit_exact(_depthwise(rng, (1, 6, 6, 5), 3, 2, dtype="int16"), "int16, option 2")
    with pytest.raises(UnsupportedOpError, match="depth_multiplier"):
        NativeModel(_depthwise(rng, (1, 6, 6, 5), 3, 2, dtype="int16", option_multiplier=1))


def test_depthwise_filter_zero_points_are_ignored() -> None:
    """The per-channel int8 reference takes weights_offset 0 whatever the filter's zero points."""
    rng = np.random.default_rng(9)
    filt = rng.integers(-128, 128, (1, 3, 3, 12))
    model = _model(
        "DEPTHWISE_CONV_2D",
        [_t((1, 6, 6, 12), "int8", 0.05, 7), _t(filt.shape, "int8", 0.01, 9, 3, filt)],
        _t((1, 6, 6, 12), "int8", 0.2, -3),
        **_dw_opts(),
    )
    _assert_bit_exact(model, "depthwise, filter zero point 9")


def test_conv_without_bias_matches_tflite_micro() -> None:
    """LiteRT refuses these; TFLite Micro runs them with the same reference arithmetic and no bias."""
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    rng = np.random.default_rng(10)
    x = _t((1, 6, 6, 5), "int8", 0.05, 3)
    filt = rng.integers(-128, 128, (7, 3, 3, 5))
    w = _t(filt.shape, "int8", rng.uniform(0.005, 0.02, 7), 0, 0, filt)
    y = _t((1, 3, 3, 7), "int8", 0.5, -2)
    dfilt = rng.integers(-128, 128, (1, 3, 3, 10))
    dx = _t((1, 6, 6, 10), "int8", 0.05, -9)
    dw = _t(dfilt.shape, "int8", rng.uniform(0.005, 0.02, 10), 0, 3, dfilt)
    dy = _t((1, 6, 6, 10), "int8", 0.3, 1)
    # (TFLite Micro crashes on a depthwise convolution whose bias input is -1: that one is compared with the
    # 2-input form instead)
    models = {
        "conv, 2 inputs": (_model("CONV_2D", [x, w], y, **_conv_opts(stride=2)), None),
        "conv, bias omitted": (_model("CONV_2D", [x, w, None], y, **_conv_opts(stride=2, act=1)), None),
        "depthwise, bias omitted": (
            _model("DEPTHWISE_CONV_2D", [dx, dw, None], dy, **_dw_opts()),
            _model("DEPTHWISE_CONV_2D", [dx, dw], dy, **_dw_opts()),
        ),
    }
    for what, (model, micro_model) in models.items():
        micro_model = micro_model or model
        micro = runtime.Interpreter.from_bytes(micro_model)
        native = NativeModel(model)
        for seed in range(3):
            xs = np.random.default_rng(seed).integers(-128, 128, native.inputs[0].shape).astype(np.int8)
            micro.set_input(xs, 0)
            micro.invoke()
            np.testing.assert_array_equal(native.run([xs])[0], micro.get_output(0), err_msg=what)


# ---------------------------------------------------------------------------------------------------------
# Refusals


def _refused(model: bytes, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        NativeModel(model)


def test_int16_int32_bias_needs_quantized_bias_type() -> None:
    """Without quantized_bias_type INT32, LiteRT's int16 kernels read an INT32 bias as int64 (garbage)."""
    rng = np.random.default_rng(11)
    _refused(_conv(rng, (1, 5, 5, 4), 3, 3, dtype="int16", bias="int32"), UnsupportedOpError, "quantized_bias_type")
    _refused(
        _transpose(rng, (1, 3, 3, 4), 3, 3, 2, "SAME", dtype="int16", bias="int32"),
        UnsupportedOpError,
        "quantized_bias_type",
    )
    _refused(
        _conv(rng, (1, 5, 5, 4), 3, 3, dtype="int16", bias="int64", bias_type=schema.TensorType.INT32),
        ModelFormatError,
        "quantized_bias_type",
    )


def test_malformed_and_unsupported_models() -> None:
    rng = np.random.default_rng(12)
    filt = rng.integers(-128, 128, (4, 3, 3, 2))
    x, w = _t((1, 5, 5, 2), "int8", 0.05, 0), _t(filt.shape, "int8", 0.01, 0, 0, filt)
    b = _t((4,), "int32", 5e-4, 0, 0, np.zeros(4))
    y = _t((1, 5, 5, 4), "int8", 0.1, 0)
    _refused(
        _model("CONV_2D", [x, w, b], _t((1, 4, 5, 4), "int8", 0.1, 0), **_conv_opts()), ModelFormatError, "output shape"
    )
    _refused(_model("CONV_2D", [x, w, b], y, **_conv_opts(stride=0)), ModelFormatError, "strides")
    _refused(
        _model("CONV_2D", [x, _t(filt.shape, "int8", 0.01, 3, 0, filt), b], y, **_conv_opts()),
        UnsupportedOpError,
        "zero point",
    )
    _refused(_model("CONV_2D", [x, _t(filt.shape, "int8", 0.01), b], y, **_conv_opts()), UnsupportedOpError, "constant")
    _refused(
        _model("CONV_2D", [x, w, _t((3,), "int32", 5e-4, 0, 0, np.zeros(3))], y, **_conv_opts()),
        ModelFormatError,
        "bias",
    )
    _refused(
        _model("CONV_2D", [x, w, b], _t((1, 5, 5, 4), "int8", 1e-20, 0), **_conv_opts()),
        UnsupportedOpError,
        "too large",
    )
    _refused(
        _model("CONV_2D", [_t((1, 5, 5, 3), "int8", 0.05, 0), w, b], y, **_conv_opts()), ModelFormatError, "multiple"
    )
    ufilt = rng.integers(0, 256, (4, 3, 3, 2))
    _refused(
        _model(
            "CONV_2D",
            [_t((1, 5, 5, 2), "uint8", 0.05, 128), _t(ufilt.shape, "uint8", [0.01] * 4, 0, 0, ufilt), b],
            _t((1, 5, 5, 4), "uint8", 0.1, 128),
            **_conv_opts(),
        ),
        UnsupportedOpError,
        "per-channel",
    )
    _refused(
        _model(
            "CONV_2D",
            [
                _t((1, 5, 5, 2), "uint8", 0.05, 128),
                _t(ufilt.shape, "uint8", 0.01, 0, 0, ufilt),
                _t((4,), "int32", 0.5, 0, 0, np.zeros(4)),
            ],
            _t((1, 5, 5, 4), "uint8", 0.1, 128),
            **_conv_opts(),
        ),
        UnsupportedOpError,
        "2%",
    )
    shape = _t((4,), "int32", data=np.array([1, 10, 10, 4], np.int32))
    tw = _t((4, 3, 3, 2), "int8", 0.01, 0, 0, filt)
    _refused(
        _model("TRANSPOSE_CONV", [shape, tw, x], _t((1, 10, 10, 4), "int8", 0.1, 0), **_tconv_opts(stride=3)),
        ModelFormatError,
        "4 x 4 input",
    )  # with stride 3, a 10 x 10 output comes from 4 x 4, not 5 x 5
    _refused(
        _model("TRANSPOSE_CONV", [shape, tw, x], _t((1, 10, 9, 4), "int8", 0.1, 0), **_tconv_opts(stride=2)),
        ModelFormatError,
        "output shape input",
    )
    _refused(
        _model(
            "TRANSPOSE_CONV", [_t((4,), "int32"), tw, x], _t((1, 10, 10, 4), "int8", 0.1, 0), **_tconv_opts(stride=2)
        ),
        UnsupportedOpError,
        "not a constant",
    )
    dfilt = rng.integers(-128, 128, (1, 3, 3, 3))
    _refused(
        _model(
            "DEPTHWISE_CONV_2D",
            [x, _t(dfilt.shape, "int8", 0.01, 0, 3, dfilt)],
            _t((1, 5, 5, 3), "int8", 0.1, 0),
            **_dw_opts(),
        ),
        ModelFormatError,
        "multiple",
    )
    _refused(
        _model(
            "DEPTHWISE_CONV_2D",
            [
                _t((1, 5, 5, 3), "int16", 0.05, 0),
                _t(dfilt.shape, "int8", 0.01, 0, 3, dfilt),
                _t((3,), "int32", 5e-4, 0, 0, np.zeros(3)),
            ],
            _t((1, 5, 5, 3), "int16", 0.1, 0),
            **_dw_opts(),
        ),
        UnsupportedOpError,
        "INT64",
    )
