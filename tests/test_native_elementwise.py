"""Elementwise binary ops and simple activations in edgeq's C interpreter (native/src/kernels/add.c, sub.c,
mul.c, squared_difference.c, maximum_minimum.c, prelu.c, relu.c, leaky_relu.c, neg.c, abs.c, with
broadcast.c) against LiteRT's BUILTIN_REF kernels, bit for bit: every model of the op-model corpus
(tests/opmodels.py) for these ops, then single-op models written here for what converters rarely emit --
broadcasting up to rank 8, every fused activation, zero points at the ends of their ranges, extreme scale
ratios, LiteRT's int16 power-of-two ADD/SUB path, float-rounded multipliers, wraparound of plain integers --
and the models edgeq must refuse, with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.verify.bitexact import verify
from edgeq.verify.native import NativeModel

OPS = ("ADD", "SUB", "MUL", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "PRELU", "RELU", "RELU6", "RELU_N1_TO_1",
       "LEAKY_RELU", "NEG", "ABS")
NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT = range(6)
OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "LEAKY_RELU": "LeakyReluOptions"}

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
        result = verify(m.path, samples=4)
        if not result.bit_exact:
            failures.append(f"{m.name}: {result.summary()}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------------------------------------------------
# Single-op models


def _q(scale: float | None, zero_point: int = 0) -> Quantization | None:
    if scale is None:
        return None
    return Quantization(np.array([scale], np.float32), np.array([zero_point], np.int64))


def _model(op: str, inputs: list[tuple], output: tuple, options: dict | None = None,
           options_type: str | None = None) -> bytes:
    """inputs: (shape, dtype, quantization, constant data or None); output: (shape, dtype, quantization).
    `options` go into the op's own options table unless `options_type` names another (or "" for none)."""
    tensors, model_inputs = [], []
    for i, (shape, dtype, q, data) in enumerate(inputs):
        value = None if data is None else np.asarray(data).reshape(shape)
        tensors.append(Tensor(f"in{i}", tuple(shape), dtype, data=value, quant=q))
        if data is None:
            model_inputs.append(i)
    shape, dtype, q = output
    tensors.append(Tensor("out", tuple(shape), dtype, quant=q))
    if options_type is None:
        options_type = OPTIONS.get(op, "") if options is not None else ""
    n = len(inputs)
    graph = Graph(tensors=tensors, ops=[Op(op, list(range(n)), [n], options=options or {}, options_type=options_type)],
                  inputs=model_inputs, outputs=[n])
    return write_tflite(graph)


def _exact(model: bytes, samples: int = 4, inputs: list[list[np.ndarray]] | None = None) -> None:
    result = verify(model, inputs=inputs, samples=samples)
    assert result.bit_exact, result.summary()


def _zp(dtype: str, zero_point: int) -> int:
    """An int8-style zero point moved into the type's range (uint8: +128)."""
    return zero_point + 128 if dtype == "uint8" else zero_point


BROADCASTS = [
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((2, 1, 4, 1), (3, 1, 5)),
    ((), (3, 2)),
    ((7,), (1, 1, 1, 7)),
    ((3, 1), (1,)),
    ((1, 2, 1, 2, 1, 2, 3), (2, 1, 2, 1, 2, 1)),
    ((2, 1, 2, 1, 2, 1, 2, 3), (2, 1, 2, 1, 2, 1, 1)),
    ((2, 0, 3), (1, 3)),
]


@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_add_sub_8bit(op: str, dtype: str) -> None:
    for activation in (NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT):
        _exact(_model(op, [((2, 5, 7, 3), dtype, _q(0.05, _zp(dtype, 3)), None),
                           ((2, 5, 7, 3), dtype, _q(0.11, _zp(dtype, -20)), None)],
                      ((2, 5, 7, 3), dtype, _q(0.013, _zp(dtype, -7))), {"fusedActivationFunction": activation}))
    for s1, s2 in BROADCASTS:
        out = tuple(np.broadcast_shapes(s1, s2))
        _exact(_model(op, [(s1, dtype, _q(0.02, _zp(dtype, -128)), None), (s2, dtype, _q(0.3, _zp(dtype, 127)), None)],
                      (out, dtype, _q(0.25, _zp(dtype, 127))), {"fusedActivationFunction": RELU}))
    # Scale ratios at the ends: one input 10^4 times finer (its multiplier nearly vanishes), an output scale
    # just inside LiteRT's limit (multiplier < 1 needs output scale > 2 * max input / 2^20).
    for scales in [(1.0, 1e-4, 0.5), (3e-3, 4.0, 7.7e-6), (0.5, 0.5, 1.01 / 2**20)]:
        _exact(_model(op, [((4, 33), dtype, _q(scales[0], _zp(dtype, 5)), None),
                           ((33,), dtype, _q(scales[1], _zp(dtype, -5)), None)],
                      ((4, 33), dtype, _q(scales[2], _zp(dtype, 0)))))
    # A constant operand and a table of the wrong union type (LiteRT ignores it: no activation).
    _exact(_model(op, [((4, 4), dtype, _q(0.02, _zp(dtype, 0)), None),
                       ((4,), dtype, _q(0.3, _zp(dtype, 5)), np.arange(4) + 1)],
                  ((4, 4), dtype, _q(0.25, _zp(dtype, -1))), {"fusedActivationFunction": RELU},
                  options_type="MulOptions"))


@pytest.mark.parametrize("op", ["ADD", "SUB"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_add_sub_8bit_every_input_pair(op: str, dtype: str) -> None:
    """All 65536 input pairs at once (a 256 x 256 grid), through the vectorized rows and their scalar tails,
    for random scales, zero points and activations."""
    grid = np.arange(256, dtype=np.uint8)
    a = np.repeat(grid[:, None], 256, axis=1)
    b = np.repeat(grid[None, :], 256, axis=0)
    if dtype == "int8":
        a, b = a.view(np.int8), b.view(np.int8)
    rng = np.random.default_rng(5 if op == "ADD" else 6)
    for _ in range(3):
        s1, s2 = 10 ** rng.uniform(-4, 1, 2)
        so = max(s1, s2) * 10 ** rng.uniform(-5.5, 1.5)
        zps = [_zp(dtype, int(z)) for z in rng.integers(-128, 128, 3)]
        model = _model(op, [((256, 256), dtype, _q(s1, zps[0]), None), ((256, 256), dtype, _q(s2, zps[1]), None)],
                       ((256, 256), dtype, _q(so, zps[2])), {"fusedActivationFunction": int(rng.integers(0, 4))})
        _exact(model, inputs=[[a, b], [b[:, ::-1], a[::-1]]])


def _int16_inputs(shapes: list[tuple[int, ...]], seed: int = 0) -> list[list[np.ndarray]]:
    """Random int16 samples plus one holding the extremes (where rounding and saturation show)."""
    rng = np.random.default_rng(seed)
    samples = [[rng.integers(-32768, 32767, size=s, endpoint=True, dtype=np.int16) for s in shapes] for _ in range(3)]
    edge = np.array([-32768, 32767, -32767, -1, 0, 1, 2, -2, 16384, -16384, 3, -3], np.int16)
    samples.append([np.resize(np.roll(edge, k), s).astype(np.int16) for k, s in enumerate(shapes)])
    return samples


@pytest.mark.parametrize("op", ["ADD", "SUB"])
def test_add_sub_int16_general_and_power_of_two_paths(op: str) -> None:
    shape = (2, 9, 5)
    # pot_scale_int16: a missing table reads as false, a table without the field as true (the schema
    # default); the power-of-two path is taken only when it is set and all three scales are powers of two.
    for options in [None, {}, {"potScaleInt16": False}, {"potScaleInt16": True}]:
        for scales in [(3e-4, 7e-5, 4e-4), (2**-12, 2**-14, 2**-12), (2**-14, 2**-12, 2**-12),
                       (2**-10 * 1.0004, 2**-20, 2**-10), (2**-2, 2**-20, 2**-2), (2**-1, 2**-32, 2**-1)]:
            for activation in (NONE, RELU6):
                opts = None if options is None else {**options, "fusedActivationFunction": activation}
                if options is None and activation:
                    continue
                model = _model(op, [(shape, "int16", _q(scales[0]), None), (shape, "int16", _q(scales[1]), None)],
                               (shape, "int16", _q(scales[2])), opts, options_type=None if opts is not None else "")
                _exact(model, inputs=_int16_inputs([shape, shape]))
    # Broadcasting on the general path (both ops) and on SUB's power-of-two path.
    _exact(_model(op, [((2, 9, 5), "int16", _q(3e-4), None), ((9, 1), "int16", _q(7e-5), None)],
                  ((2, 9, 5), "int16", _q(4e-4)), {"potScaleInt16": False, "fusedActivationFunction": RELU}))
    if op == "SUB":
        for s1, s2 in [((2, 9, 5), (9, 5)), ((1, 9, 5), (2, 9, 5))]:
            _exact(_model(op, [(s1, "int16", _q(2**-12 if s1 == (2, 9, 5) else 2**-17), None),
                               (s2, "int16", _q(2**-14 if s1 == (2, 9, 5) else 2**-12), None)],
                          ((2, 9, 5), "int16", _q(2**-12)), {}))


def test_add_int16_power_of_two_refusals() -> None:
    # LiteRT's power-of-two ADD has no broadcasting (it aborts), and needs one input at the output's scale.
    with pytest.raises(UnsupportedOpError, match="does not broadcast"):
        NativeModel(_model("ADD", [((2, 9, 5), "int16", _q(2**-12), None), ((9, 5), "int16", _q(2**-14), None)],
                           ((2, 9, 5), "int16", _q(2**-12)), {}))
    with pytest.raises(UnsupportedOpError, match="one input at the output's scale"):
        NativeModel(_model("ADD", [((4,), "int16", _q(2**-12), None), ((4,), "int16", _q(2**-14), None)],
                           ((4,), "int16", _q(2**-10)), {}))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16"])
def test_mul(dtype: str) -> None:
    q = (lambda s, z: _q(s, 0)) if dtype == "int16" else (lambda s, z: _q(s, _zp(dtype, z)))
    for activation in (NONE, RELU, RELU_N1_TO_1, RELU6):
        _exact(_model("MUL", [((2, 5, 7, 3), dtype, q(0.05, 3), None), ((2, 5, 7, 3), dtype, q(0.11, -20), None)],
                      ((2, 5, 7, 3), dtype, q(0.013, -7)), {"fusedActivationFunction": activation}))
    for s1, s2 in BROADCASTS[:6]:
        out = tuple(np.broadcast_shapes(s1, s2))
        _exact(_model("MUL", [(s1, dtype, q(0.02, -128), None), (s2, dtype, q(0.3, 127), None)],
                      (out, dtype, q(0.25, 127))))
    # Multipliers far above 1 (left shifts up to 26, where products wrap as they do in LiteRT) and far below.
    for scales in [(0.5, 0.7, 1e-3), (1e-3, 1e-3, 10.0), (1.0, 1.0, 2**-20), (1.0, 1.0, 2**-25)]:
        _exact(_model("MUL", [((4, 33), dtype, q(scales[0], 0), None), ((33,), dtype, q(scales[1], 5), None)],
                      ((4, 33), dtype, q(scales[2], -1))))


def test_mul_multiplier_is_a_float_quotient() -> None:
    """MUL's Prepare multiplies and divides the scales in float before widening to double: here that
    moves the Q31 multiplier by 178 units, which shows in int16 products."""
    s1, s2, so = 8.023905684240162e-05, 1.2315012099861633e-05, 3.310401734779589e-05
    in_float = np.float32(np.float32(s1) * np.float32(s2)) / np.float32(so)
    in_double = float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(so))
    assert abs(float(in_float) - in_double) * 2**15 * 2**31 > 100
    _exact(_model("MUL", [((64, 64), "int16", _q(s1), None), ((64, 64), "int16", _q(s2), None)],
                  ((64, 64), "int16", _q(so))), samples=2)


@pytest.mark.parametrize("out_dtype,zero_point", [("int8", 3), ("int8", -128), ("uint8", 130)])
def test_mul_int16_inputs_to_8bit_output(out_dtype: str, zero_point: int) -> None:
    # LiteRT's Q0.15 product path: the scales are ignored, only the output zero point and activation count.
    for activation in (NONE, RELU, RELU6):
        _exact(_model("MUL", [((3, 7), "int16", _q(3e-4), None), ((3, 7), "int16", _q(7e-5), None)],
                      ((3, 7), out_dtype, _q(0.01, zero_point)), {"fusedActivationFunction": activation}),
               inputs=_int16_inputs([(3, 7), (3, 7)]))
    with pytest.raises(UnsupportedOpError, match="does not broadcast"):
        NativeModel(_model("MUL", [((3, 7), "int16", _q(3e-4), None), ((7,), "int16", _q(7e-5), None)],
                           ((3, 7), out_dtype, _q(0.01, zero_point))))


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_plain_integers_wrap(op: str, dtype: str) -> None:
    info = np.iinfo(dtype)
    a = np.array([[info.max, info.min, info.max, -1, 7, info.min // 2 - 1]], dtype)
    b = np.array([info.max, info.min, -1, info.min, -9, 3], dtype)
    for activation in (NONE, RELU, RELU6, RELU_N1_TO_1):
        _exact(_model(op, [((3, 6), dtype, None, None), ((6,), dtype, None, None)], ((3, 6), dtype, None),
                      {"fusedActivationFunction": activation}),
               inputs=[[np.repeat(a, 3, axis=0), b], [np.repeat(a[:, ::-1], 3, axis=0), b[::-1]]], samples=0)
        _exact(_model(op, [((3, 6), dtype, None, None), ((6,), dtype, None, None)], ((3, 6), dtype, None),
                      {"fusedActivationFunction": activation}), samples=2)


def test_squared_difference() -> None:
    all_scales = [(0.05, 0.11, 0.5), (0.02, 0.3, 1.0), (0.1, 0.1, 0.02), (0.3, 0.01, 2.0), (1.0, 1.0, 1e-3),
                  (1e-3, 0.5, 4e-3)]
    for (s1, s2), scales in zip(BROADCASTS[:6], all_scales, strict=True):
        out = tuple(np.broadcast_shapes(s1, s2))
        inputs = [(s1, "int8", _q(scales[0], 3), None), (s2, "int8", _q(scales[1], -128), None)]
        _exact(_model("SQUARED_DIFFERENCE", inputs, (out, "int8", _q(scales[2], 127))))
    big = np.iinfo(np.int32)
    inputs = [((2, 4), "int32", None, None), ((4,), "int32", None, None)]
    _exact(_model("SQUARED_DIFFERENCE", inputs, ((2, 4), "int32", None)),
           inputs=[[np.array([[big.max, big.min, 46341, -3], [0, 1, -46341, big.min]], np.int32),
                    np.array([big.min, big.max, 0, 5], np.int32)]])


@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_maximum_minimum(op: str, dtype: str) -> None:
    # No requantization: LiteRT compares the stored integers even when the encodings differ.
    quantized = dtype in ("int8", "uint8", "int16")
    for i, (s1, s2) in enumerate(BROADCASTS[:6]):
        out = tuple(np.broadcast_shapes(s1, s2))
        q1, q2 = (_q(0.1, 0), _q(0.5 if i % 2 else 0.1, 0)) if quantized else (None, None)
        _exact(_model(op, [(s1, dtype, q1, None), (s2, dtype, q2, None)], (out, dtype, q1)), samples=2)


@pytest.mark.parametrize("op", ["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16"])
def test_relu_family(op: str, dtype: str) -> None:
    if dtype == "int16" and op in ("RELU_N1_TO_1", "RELU_0_TO_1"):
        with pytest.raises(UnsupportedOpError, match="type INT16"):
            NativeModel(_model(op, [((4,), dtype, _q(3e-4), None)], ((4,), dtype, _q(3e-4))))
        return
    if dtype == "int16":
        cases = [(3e-4, 0, 3e-4, 0), (3e-4, 0, 1e-4, 0), (2e-3, 0, 5e-5, 0), (1.0, 0, 3e-5, 0), (1e-5, 0, 1.0, 0),
                 (1.0, 0, 2**-28, 0)]
    else:
        cases = [(0.05, 3, 0.05, 3), (0.05, 3, 0.02, -100), (0.1, -128, 0.3, 127), (1e-3, 10, 0.5, -5),
                 (1.0, 0, 1e-4, -128), (0.05, 127, 0.05, -128), (3.0, 0, 3.0, 0), (1.0, 0, 2**-28, 127)]
    for si, zi, so, zo in cases:
        model = _model(op, [((2, 3, 17), dtype, _q(si, _zp(dtype, zi)), None)],
                       ((2, 3, 17), dtype, _q(so, _zp(dtype, zo))))
        _exact(model, inputs=_int16_inputs([(2, 3, 17)]) if dtype == "int16" else None)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16"])
def test_leaky_relu(dtype: str) -> None:
    qi, qo = {"int8": (_q(0.05, 10), _q(0.03, -20)), "uint8": (_q(0.05, 138), _q(0.03, 108)),
              "int16": (_q(3e-4), _q(2e-4))}[dtype]
    for alpha in [0.2, 0.01, 1.7, 3.5, -0.3, 0.0, None]:
        options = {} if alpha is None else {"alpha": alpha}
        _exact(_model("LEAKY_RELU", [((3, 50), dtype, qi, None)], ((3, 50), dtype, qo), options))
    # No options table at all: alpha 0.
    _exact(_model("LEAKY_RELU", [((3, 50), dtype, qi, None)], ((3, 50), dtype, qo)))
    # A negative alpha is applied as -(|alpha| product), which rounds ties differently from multiplying
    # by a negative multiplier: input scale half the output's makes every odd negative input a tie.
    qi, qo = {"int8": (_q(0.05, 10), _q(0.1, -20)), "uint8": (_q(0.05, 138), _q(0.1, 108)),
              "int16": (_q(2e-4), _q(4e-4))}[dtype]
    for alpha in [-1.0, -0.5]:
        _exact(_model("LEAKY_RELU", [((3, 50), dtype, qi, None)], ((3, 50), dtype, qo), {"alpha": alpha}))


@pytest.mark.parametrize("dtype,alpha_dtype", [("int8", "int8"), ("uint8", "uint8"), ("int16", "int8")])
def test_prelu(dtype: str, alpha_dtype: str) -> None:
    rng = np.random.default_rng(1)
    info = np.iinfo(alpha_dtype)
    qi, qa, qo = {"int8": (_q(0.05, 10), _q(0.004, -3), _q(0.03, -20)),
                  "uint8": (_q(0.05, 138), _q(0.004, 125), _q(0.03, 108)),
                  "int16": (_q(3e-4, 7), _q(0.01, 5), _q(2e-4, -3))}[dtype]
    for shape, alpha_shape in [((1, 6, 6, 5), (1, 1, 5)), ((1, 6, 6, 5), (1, 6, 6, 5)), ((2, 7), (7,)), ((2, 7), ()),
                               ((2, 3, 4), (3, 1))]:
        alpha = rng.integers(info.min, info.max, size=alpha_shape, endpoint=True)
        for constant in (True, False):
            inputs = [(shape, dtype, qi, None), (alpha_shape, alpha_dtype, qa, alpha if constant else None)]
            _exact(_model("PRELU", inputs, (shape, dtype, qo)))
    with pytest.raises(UnsupportedOpError, match="alpha"):
        NativeModel(_model("PRELU", [((2, 7), dtype, qi, None), ((7,), "int16", _q(0.01), None)], ((2, 7), dtype, qo)))
    with pytest.raises(ModelFormatError, match="broadcast"):
        NativeModel(_model("PRELU", [((1, 7), dtype, qi, None), ((2, 7), alpha_dtype, qa, None)], ((2, 7), dtype, qo)))


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64"])
def test_neg_wraps(dtype: str) -> None:
    info = np.iinfo(dtype)
    x = np.array([info.min, info.min + 1, -1, 0, 1, info.max], dtype)
    q = _q(0.1, 3) if dtype == "int8" else None
    _exact(_model("NEG", [((6,), dtype, q, None)], ((6,), dtype, q)), inputs=[[x]])
    _exact(_model("NEG", [((3, 40), dtype, q, None)], ((3, 40), dtype, q)), samples=2)


def test_abs() -> None:
    extremes = {t: np.array([np.iinfo(t).min, np.iinfo(t).min + 1, -1, 0, 1, np.iinfo(t).max], t)
                for t in ("int8", "int16", "int32")}
    for dtype, qi, qo in [("int8", _q(0.05, 10), _q(0.05, -20)), ("int8", _q(0.05, 10), _q(0.03, -128)),
                          ("int8", _q(0.05, -128), _q(0.1, 127)), ("int8", _q(1.0, 0), _q(1e-3, 0)),
                          ("int16", _q(3e-4), _q(3e-4)), ("int16", _q(3e-4), _q(2e-4)), ("int16", None, None),
                          ("int32", None, None)]:
        _exact(_model("ABS", [((6,), dtype, qi, None)], ((6,), dtype, qo)), inputs=[[extremes[dtype]]])
        _exact(_model("ABS", [((3, 40), dtype, qi, None)], ((3, 40), dtype, qo)), samples=2)


# ---------------------------------------------------------------------------------------------------------
# Models edgeq refuses


def _add(dtype="int8", s1=(4, 5), s2=(4, 5), so=(4, 5), q1=(0.1, 0), q2=(0.2, 0), qo=(0.3, 0), op="ADD", **kw) -> bytes:
    def q(p):
        return None if p is None else _q(*p)

    return _model(op, [(s1, dtype, q(q1), None), (s2, dtype, q(q2), None)], (so, kw.get("out_dtype", dtype), q(qo)),
                  kw.get("options"))


@pytest.mark.parametrize("model,error,match", [
    (lambda: _add(so=(4, 6)), ModelFormatError, "output shape is not the broadcast shape"),
    (lambda: _add(s2=(3, 5), so=(4, 5)), ModelFormatError, "do not broadcast"),
    (lambda: _add(so=(1, 4, 5)), ModelFormatError, "rank"),
    (lambda: _add(out_dtype="uint8"), ModelFormatError, "differ"),
    (lambda: _add(q1=(0.1, 200)), UnsupportedOpError, "zero point 200"),
    (lambda: _add("int16", q1=(1e-4, 3), q2=(1e-4, 0), qo=(1e-4, 0)), UnsupportedOpError, "requires 0"),
    (lambda: _add(qo=(1e-7, 0)), UnsupportedOpError, "output multiplier"),
    (lambda: _add(op="SUB", qo=(1e-7, 0)), UnsupportedOpError, "output multiplier"),
    (lambda: _add(q2=None), UnsupportedOpError, "without quantization"),
    # 6 / scale rounds to 2147483520; adding the zero point would overflow int32 (undefined in LiteRT).
    (lambda: _add("uint8", q1=(1e-4, 0), q2=(1e-4, 0), qo=(6 / 2147483520, 255),
                  options={"fusedActivationFunction": RELU6}), UnsupportedOpError, "bound 6 overflows int32"),
    (lambda: _add(op="MUL", q1=(1e30, 0), q2=(1e30, 0), qo=(1e-30, 0)), UnsupportedOpError, "multiplier"),
    (lambda: _add("int16", op="SQUARED_DIFFERENCE", q1=(1e-4, 0), q2=(1e-4, 0), qo=(1e-4, 0)), UnsupportedOpError,
     "type INT16"),
    (lambda: _model("RELU", [((4,), "int8", _q(0.1), None)], ((2, 2), "int8", _q(0.1))), ModelFormatError, "shapes"),
    (lambda: _model("RELU6", [((4,), "int8", _q(1e-12), None)], ((4,), "int8", _q(1e-12))), UnsupportedOpError,
     "overflows int32"),
    (lambda: _model("NEG", [((4,), "uint8", None, None)], ((4,), "uint8", None)), UnsupportedOpError, "type UINT8"),
    (lambda: _model("ABS", [((4,), "uint8", _q(0.1, 0), None)], ((4,), "uint8", _q(0.1, 0))), UnsupportedOpError,
     "type UINT8"),
    (lambda: _model("ADD", [((4,), "int8", _q(0.1), None)], ((4,), "int8", _q(0.1))), ModelFormatError,
     "expects 2 inputs"),
])
def test_refusals(model, error, match: str) -> None:
    with pytest.raises(error, match=match):
        NativeModel(model())
