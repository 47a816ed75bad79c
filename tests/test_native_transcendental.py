"""Transcendental activations in edgeq's C interpreter (native/src/kernels/logistic.c, tanh.c, softmax.c,
hard_swish.c, exp.c, rsqrt.c, sqrt.c, gelu.c, elu.c, log_softmax.c) against LiteRT's BUILTIN_REF kernels, bit for
bit: every model of the op-model corpus (tests/opmodels.py) for these ops, then single-op models written here
for what converters rarely emit -- every input value of 8-bit and int16 tensors, scales and zero points at the
ends of their ranges, power-of-two and nearly power-of-two int16 scales, softmax betas and odd shapes, tables
whose float math overflows -- and the models edgeq must refuse where LiteRT refuses them too.

ELU is not in LiteRT's reference resolver; its one kernel (the default resolver's) is the reference there."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.verify.bitexact import verify
from edgeq.verify.native import NativeError, NativeModel

OPS = ("LOGISTIC", "TANH", "SOFTMAX", "HARD_SWISH", "EXP", "RSQRT", "SQRT", "GELU", "ELU", "LOG_SOFTMAX")
DOMAIN_OPS = ("SQRT", "RSQRT")  # LiteRT fails the invoke below their domain: inputs must respect it

_TYPES = {np.int8: schema.TensorType.INT8, np.uint8: schema.TensorType.UINT8, np.int16: schema.TensorType.INT16}

# ---------------------------------------------------------------------------------------------------------
# The op-model corpus


@pytest.fixture(scope="module")
def corpus():
    try:
        from tests.opmodels import op_models
    except ImportError:
        pytest.skip("tests/opmodels.py (the op-model corpus) is not in this checkout")
    return op_models(ops=OPS)


@pytest.mark.parametrize("op", [op for op in OPS if op not in ("ELU", "LOG_SOFTMAX")])
def test_corpus_models_are_bit_exact(corpus, op: str) -> None:
    from tests.opmodels import random_inputs

    models = [m for m in corpus if m.op == op]
    assert models, f"the corpus has no {op} model"
    failures = []
    for m in models:
        if op in DOMAIN_OPS:
            data = m.path.read_bytes()
            result = verify(data, inputs=[random_inputs(data, seed) for seed in range(4)])
        else:
            result = verify(m.path, samples=4)
        if not result.bit_exact:
            failures.append(f"{m.name}: {result.summary()}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------------------------------------
# Single-op models


def _single_op(op: str, dtype, shape, in_q, out_q, out_dtype=None, options=None) -> bytes:
    """One op from input 0 to output 1; in_q/out_q are (scale, zero_point); options (kind, object)."""

    def tensor(name, dt, q, buffer):
        t = schema.TensorT()
        t.name, t.type, t.shape, t.buffer = name, _TYPES[dt], list(shape), buffer
        if q is not None:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [float(q[0])], [int(q[1])]
        return t

    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT(), schema.BufferT(), schema.BufferT()]
    code = schema.OperatorCodeT()
    code.builtinCode = getattr(schema.BuiltinOperator, op)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    model.operatorCodes = [code]
    sub = schema.SubGraphT()
    sub.tensors = [tensor("x", dtype, in_q, 1), tensor("y", out_dtype or dtype, out_q, 2)]
    sub.inputs, sub.outputs = [0], [1]
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0], [1]
    if options is not None:
        operator.builtinOptionsType = getattr(schema.BuiltinOptions, options[0])
        operator.builtinOptions = options[1]
    sub.operators = [operator]
    model.subgraphs = [sub]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _softmax(beta: float):
    o = schema.SoftmaxOptionsT()
    o.beta = beta
    return ("SoftmaxOptions", o)


def _gelu(approximate: bool):
    o = schema.GeluOptionsT()
    o.approximate = approximate
    return ("GeluOptions", o)


def _every_value(dtype, lo=None) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min if lo is None else lo, info.max + 1).astype(dtype)


def _assert_every_value_bit_exact(op, dtype, in_q, out_q, options=None, lo=None) -> None:
    """All input values of the type (from lo) in one tensor, through both interpreters."""
    x = _every_value(dtype, lo)
    model = _single_op(op, dtype, x.shape, in_q, out_q, options=options)
    result = verify(model, inputs=[[x]])
    assert result.bit_exact, f"{op} {np.dtype(dtype).name} in {in_q} out {out_q}: {result.summary()}"


def _assert_random_bit_exact(op, dtype, shape, in_q, out_q, out_dtype=None, options=None, samples=4) -> None:
    model = _single_op(op, dtype, shape, in_q, out_q, out_dtype=out_dtype, options=options)
    result = verify(model, samples=samples)
    assert result.bit_exact, f"{op} {shape} in {in_q} out {out_q}: {result.summary()}"


_SCALES_8 = (1e-5, 0.001, 0.02, 0.0625, 0.1, 0.3, 1.0, 7.5)
_ZERO_POINTS = {np.int8: (-128, 0, 41, 127), np.uint8: (0, 128, 255)}
# int16 scales: exact and nearly (CheckedLog2 allows 1e-3 in log2) powers of two, ordinary ones, one small
# enough to use the largest shift (1e-40 even rounds the multiplier to 0, which LiteRT then reads as 3 << 31)
# and one large enough that LiteRT's int32 product wraps.
_SCALES_16 = (2**-12, 2**-12 * 1.0005, 2**-11, 2**-13, 1 / 3000, 0.001, 1e-6, 1e-40, 0.05, 3.0, 100.0)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_logistic_8bit_tables(dtype) -> None:
    out_zp = -128 if dtype == np.int8 else 0
    for scale in _SCALES_8:
        for zp in _ZERO_POINTS[dtype]:
            _assert_every_value_bit_exact("LOGISTIC", dtype, (scale, zp), (1 / 256, out_zp))
    # only the output scale is fixed: a different zero point is applied by the table
    _assert_every_value_bit_exact("LOGISTIC", dtype, (0.05, _ZERO_POINTS[dtype][1]), (1 / 256, out_zp + 7))


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_logistic_tanh_int16(op) -> None:
    for scale in _SCALES_16:
        _assert_every_value_bit_exact(op, np.int16, (scale, 0), (1 / 32768, 0))
    if op == "TANH":  # TANH only asks the output scale to be near 2^-15
        _assert_every_value_bit_exact(op, np.int16, (2**-11, 0), (1.0003 / 32768, 0))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_tanh_8bit_tables(dtype) -> None:
    for scale in _SCALES_8:
        for zp in _ZERO_POINTS[dtype]:
            # the tiny output scales overflow int32 (and give inf * 0 = NaN): int8 tables saturate, uint8
            # tables take x86's INT32_MIN, as LiteRT's build does
            for out_q in ((1 / 128, 0 if dtype == np.int8 else 128), (0.013, 5), (1e-12, 5), (1e-45, 9)):
                _assert_every_value_bit_exact("TANH", dtype, (scale, zp), out_q)


def test_exp_tables() -> None:
    for scale in _SCALES_8:
        for zp in _ZERO_POINTS[np.int8]:
            # includes tables whose exp overflows float (LiteRT's conversion saturates) and huge outputs
            for out_q in ((0.1, -128), (1 / 256, -128), (1e-3, 100), (1e3, -5), (1e-45, 9)):
                _assert_every_value_bit_exact("EXP", np.int8, (scale, zp), out_q)
    for scale in (1e-4, 2**-12, 0.01, 1.0):
        for out_scale in (1e-3, 1 / 32768, 1.0, 100.0):
            _assert_every_value_bit_exact("EXP", np.int16, (scale, 0), (out_scale, 0))


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_tables(approximate: bool) -> None:
    for dtype in (np.int8, np.uint8):
        for scale in (0.001, 0.05, 0.3, 3.0, 1e38):  # 1e38: inputs overflow to inf, GELU(-inf) is NaN
            for zp in _ZERO_POINTS[dtype]:
                for out_q in ((0.02, zp), (0.5, 3), (1e-9, 50)):
                    _assert_every_value_bit_exact("GELU", dtype, (scale, zp), out_q, options=_gelu(approximate))
    for scale in (1e-4, 2**-12, 0.01, 1.0):
        for zp, out_q in ((0, (1e-3, 0)), (1234, (0.01, 1000)), (-32768, (1e-4, -20000))):
            _assert_every_value_bit_exact("GELU", np.int16, (scale, zp), out_q, options=_gelu(approximate))


def test_int16_tables_at_float_extremes() -> None:
    """Inputs that overflow to inf, output scales whose inverse is inf: the float table math gives inf and
    NaN, which LiteRT's build clamps and converts (NaN to 0)."""
    cases = [((1e38, 0), (0.01, 0)), ((1.0, 0), (1e-45, 0)), ((1e-3, 0), (1e-40, 0)), ((3e34, 0), (1e-3, 0))]
    for in_q, out_q in cases:
        for options in (_gelu(False), _gelu(True)):
            _assert_every_value_bit_exact("GELU", np.int16, in_q, out_q, options=options)
        _assert_every_value_bit_exact("EXP", np.int16, in_q, out_q)
        _assert_every_value_bit_exact("RSQRT", np.int16, in_q, out_q, lo=0)


def test_gelu_without_options_is_exact_form() -> None:
    _assert_every_value_bit_exact("GELU", np.int8, (0.05, 3), (0.02, -10))


def test_elu_matches_litert_default_kernel() -> None:
    x = _every_value(np.int8)
    for scale in (0.001, 0.05, 0.3, 3.0):
        for zp in _ZERO_POINTS[np.int8]:
            for out_q in ((0.05, 0), (0.01, -128), (0.003, 50), (1e-9, 0), (1e-45, 9)):
                model = _single_op("ELU", np.int8, x.shape, (scale, zp), out_q)
                native = NativeModel(model)
                (mine,) = native.run([x])
                it = Interpreter(model_content=model,
                                 experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
                it.allocate_tensors()
                it.set_tensor(it.get_input_details()[0]["index"], x)
                it.invoke()
                theirs = it.get_tensor(it.get_output_details()[0]["index"])
                assert np.array_equal(mine, theirs), f"ELU in ({scale}, {zp}) out {out_q}"


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_hard_swish(dtype) -> None:
    for scale in (1e-5, 0.01, 0.05, 0.2, 1.0, 100.0):
        for zp in _ZERO_POINTS[dtype]:
            # the output scale may be as small as input_scale / 128 (LiteRT's limit)
            for out_q in ((scale, zp), (scale / 127, 0 if dtype == np.int8 else 128), (0.05, 3)):
                if scale / 128 / out_q[0] <= 1:
                    _assert_every_value_bit_exact("HARD_SWISH", dtype, (scale, zp), out_q)


@pytest.mark.parametrize("op", ["SQRT", "RSQRT"])
def test_sqrt_rsqrt(op) -> None:
    for scale in (1e-5, 0.01, 0.05, 1.0, 3.3):
        for zp in (-128, -5, 0):
            for out_q in ((0.01, -128), (0.05, 0), (1.0, 3), (scale, zp), (1e-3, 0)):
                _assert_every_value_bit_exact(op, np.int8, (scale, zp), out_q, lo=zp)
    for scale in (1e-4, 2**-12, 1.0):
        for out_scale in (1e-3, 1 / 32768, 1.0, 1e-5):
            _assert_every_value_bit_exact(op, np.int16, (scale, 0), (out_scale, 0), lo=0)


def test_sqrt_quotient_out_of_int32_range() -> None:
    """LiteRT truncates sqrt(x) / output_scale with a plain float-to-int conversion: out of range, x86 gives
    INT32_MIN, and the zero point is added with wraparound."""
    for out_q in ((1e-12, 0), (1e-12, -100), (1e-30, 5)):
        _assert_every_value_bit_exact("SQRT", np.int8, (1.0, 0), out_q, lo=0)


@pytest.mark.parametrize("op", ["SQRT", "RSQRT"])
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_sqrt_rsqrt_negative_input_is_a_runtime_error(op, dtype) -> None:
    model = _single_op(op, dtype, (4,), (0.1, 0), (0.1, 0))
    x = np.array([4, 1, -3, 9], dtype)
    native = NativeModel(model)
    with pytest.raises(NativeError, match="only defined for"):
        native.run([x])
    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    with pytest.raises(RuntimeError):
        it.invoke()


_SOFTMAX_SHAPES = ((1, 10), (2, 3, 7), (5,), (4, 1), (1, 255), (2, 2, 2, 33))


@pytest.mark.parametrize("in_dtype,out_dtype,out_q", [
    (np.int8, np.int8, (1 / 256, -128)),
    (np.uint8, np.uint8, (1 / 256, 0)),
    (np.int8, np.int16, (1 / 32768, 0)),
    (np.uint8, np.int16, (1 / 65536, -5)),  # LiteRT never reads these output parameters
])
def test_softmax_8bit(in_dtype, out_dtype, out_q) -> None:
    zp = 3 if in_dtype == np.int8 else 128
    for shape in _SOFTMAX_SHAPES:
        for scale in (0.001, 0.05, 0.2, 1.0, 20.0):
            for beta in (1.0, 0.5, 2.0, 1e6):
                _assert_random_bit_exact("SOFTMAX", in_dtype, shape, (scale, zp), out_q, out_dtype=out_dtype,
                                         options=_softmax(beta), samples=2)


def test_softmax_int16() -> None:
    for shape in (*_SOFTMAX_SHAPES, (1, 1000)):
        for scale in (1e-4, 0.01, 1.0, 2**-12):
            # beta 0 (uniform), negative and large betas are all well defined for int16
            for beta in (1.0, 0.1, 0.0, -1.0, 1e3):
                _assert_random_bit_exact("SOFTMAX", np.int16, shape, (scale, 0), (1 / 32768, 0),
                                         options=_softmax(beta), samples=2)
    # without options beta is 0
    _assert_random_bit_exact("SOFTMAX", np.int16, (3, 9), (0.01, 0), (1 / 32768, 0))


def test_softmax_every_int8_difference() -> None:
    """One row per possible maximum: every difference to the maximum occurs."""
    x = np.array([[m] + list(range(-128, m)) + [-128] * (255 - (m + 128)) for m in range(-128, 128)], np.int8)
    for scale, beta in ((0.05, 1.0), (0.5, 1.0), (1 / 256, 3.0)):
        model = _single_op("SOFTMAX", np.int8, x.shape, (scale, 0), (1 / 256, -128), options=_softmax(beta))
        result = verify(model, inputs=[[x]])
        assert result.bit_exact, result.summary()


def test_softmax_sum_too_large_for_8bit_output_is_a_runtime_error() -> None:
    """600 equal maxima: the sum of exponentials reaches 512, where LiteRT's reference aborts the process
    (TFLITE_CHECK on the output shift); edgeq reports a runtime error. LiteRT is not run here."""
    model = _single_op("SOFTMAX", np.int8, (1, 600), (0.05, 0), (1 / 256, -128), options=_softmax(1.0))
    with pytest.raises(NativeError, match="sum of exponentials"):
        NativeModel(model).run([np.zeros((1, 600), np.int8)])
    # just below the limit it runs, and matches
    _assert_random_bit_exact("SOFTMAX", np.int8, (1, 500), (1e-6, 0), (1 / 256, -128), options=_softmax(1.0))


@pytest.mark.parametrize("dtype,out_zp", [(np.int8, 127), (np.uint8, 255)])
def test_log_softmax(dtype, out_zp) -> None:
    zp = 3 if dtype == np.int8 else 128
    for shape in (*_SOFTMAX_SHAPES, (1, 1000)):
        for scale in (1e-6, 0.001, 0.05, 0.2, 1.0, 20.0):
            _assert_random_bit_exact("LOG_SOFTMAX", dtype, shape, (scale, zp), (16 / 256, out_zp), samples=2)


def test_zero_points_beyond_the_type_range() -> None:
    """LiteRT does not range-check these zero points; the arithmetic just carries them."""
    x8 = _every_value(np.int8)
    cases = [
        ("LOGISTIC", np.int8, (0.05, 300), (1 / 256, -128), None),
        ("TANH", np.uint8, (0.02, 128), (1 / 128, -50), None),
        ("GELU", np.int8, (0.05, -3), (0.02, 255), _gelu(False)),
        ("EXP", np.int8, (0.05, -700), (0.1, 200), None),
        ("SQRT", np.int8, (0.05, -300), (0.05, 255), None),
        ("RSQRT", np.int8, (0.05, -200), (0.01, 1000), None),
        ("HARD_SWISH", np.int8, (0.05, 1000), (0.05, -500), None),
        ("SOFTMAX", np.uint8, (0.05, -1000), (1 / 256, 77), _softmax(1.0)),
        ("LOG_SOFTMAX", np.int8, (0.05, 5000), (16 / 256, 127), None),
    ]
    for op, dtype, in_q, out_q, options in cases:
        x = x8 if dtype == np.int8 else _every_value(dtype)
        model = _single_op(op, dtype, (1, x.size), in_q, out_q, options=options)
        result = verify(model, inputs=[[x.reshape(1, -1)]])
        assert result.bit_exact, f"{op}: {result.summary()}"


# ---------------------------------------------------------------------------------------------------------
# Models LiteRT refuses (at prepare or invoke): edgeq refuses them when loading, with the reason.


def _litert_refuses(model: bytes) -> bool:
    try:
        it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        it.invoke()
    except (RuntimeError, ValueError):
        return True
    return False


_REFUSED = [
    ("LOGISTIC int8 output scale not 1/256", ("LOGISTIC", np.int8, (0.05, 0), (1 / 128, 0), None, None),
     "not 1/256"),
    ("LOGISTIC int16 zero point", ("LOGISTIC", np.int16, (2**-12, 3), (1 / 32768, 0), None, None), "zero points"),
    ("LOGISTIC int16 output scale", ("LOGISTIC", np.int16, (2**-12, 0), (1 / 16384, 0), None, None),
     "not 1/32768"),
    ("TANH int16 output scale", ("TANH", np.int16, (2**-12, 0), (1 / 30000, 0), None, None), "not 2\\^-15"),
    ("SOFTMAX int8 output zero point", ("SOFTMAX", np.int8, (0.05, 0), (1 / 256, 0), None, _softmax(1.0)),
     "zero point -128"),
    ("SOFTMAX int16 input zero point", ("SOFTMAX", np.int16, (0.01, 5), (1 / 32768, 0), None, _softmax(1.0)),
     "zero points 0"),
    ("SOFTMAX uint8 to int8", ("SOFTMAX", np.uint8, (0.05, 0), (1 / 256, -128), np.int8, _softmax(1.0)),
     "UINT8 input with INT8 output"),
    ("HARD_SWISH int16", ("HARD_SWISH", np.int16, (0.01, 0), (0.01, 0), None, None), "input type INT16"),
    ("HARD_SWISH output scale below input/128", ("HARD_SWISH", np.int8, (1.0, 0), (1 / 256, 0), None, None),
     "must not exceed"),
    ("EXP uint8", ("EXP", np.uint8, (0.05, 0), (0.05, 0), None, None), "input type UINT8"),
    ("EXP int16 zero point", ("EXP", np.int16, (0.001, 0), (0.01, 7), None, None), "zero points 0"),
    ("SQRT uint8", ("SQRT", np.uint8, (0.05, 0), (0.05, 0), None, None), "input type UINT8"),
    ("RSQRT int16 zero point", ("RSQRT", np.int16, (0.001, 2), (0.01, 0), None, None), "zero points 0"),
    ("LOG_SOFTMAX output scale", ("LOG_SOFTMAX", np.int8, (0.05, 0), (1 / 256, 127), None, None), "16/256"),
    ("LOG_SOFTMAX int16", ("LOG_SOFTMAX", np.int16, (0.05, 0), (16 / 256, 0), None, None), "input type INT16"),
    ("TANH mixed types", ("TANH", np.int8, (0.05, 0), (1 / 128, 0), np.int16, None), None),
    ("HARD_SWISH zero point beyond int16", ("HARD_SWISH", np.int8, (0.05, 40000), (0.05, 0), None, None), "int16"),
]


@pytest.mark.parametrize("case", _REFUSED, ids=[c[0] for c in _REFUSED])
def test_refused_like_litert(case) -> None:
    _, (op, dtype, in_q, out_q, out_dtype, options), reason = case
    model = _single_op(op, dtype, (2, 5), in_q, out_q, out_dtype=out_dtype, options=options)
    assert _litert_refuses(model), "LiteRT runs this model; edgeq should too"
    with pytest.raises((UnsupportedOpError, ModelFormatError)) as info:
        NativeModel(model)
    if reason:
        assert info.match(reason)


def test_softmax_beta_too_small_for_8bit_is_unsupported() -> None:
    """beta * input_scale * 2^26 <= 1 (here beta 0, as without options): LiteRT's prepare aborts the process
    (QuantizeMultiplierGreaterThanOne's check), so only edgeq is run."""
    for options in (None, _softmax(0.0), _softmax(-1.0)):
        model = _single_op("SOFTMAX", np.int8, (1, 8), (0.05, 0), (1 / 256, -128), options=options)
        with pytest.raises(UnsupportedOpError, match="too small"):
            NativeModel(model)
