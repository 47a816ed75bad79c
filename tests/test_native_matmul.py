"""FULLY_CONNECTED and BATCH_MATMUL in edgeq's C interpreter (native/src/kernels/fully_connected.c,
batch_matmul.c) against LiteRT's BUILTIN_REF kernels, bit for bit: every model of the op-model corpus
(tests/opmodels.py) for these ops, the real FC models of /work/shared/models/tflm, then single-op models
written here for what converters rarely emit -- per-tensor weights with a zero point, int4 weights with an
odd element count, int16x8 with each bias / quantized_bias_type combination, int16x16, legacy uint8 (and
its int16 output), non-constant weights, depths past the int32 chunking, more rows than one tile, scales
that overflow LiteRT's double->int32 conversion, hostile zero points, broadcast batch dimensions, adj_x /
adj_y with constant and activation RHS -- and the models edgeq must refuse, with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.verify.bitexact import verify
from edgeq.verify.native import NativeModel

OPS = ("FULLY_CONNECTED", "BATCH_MATMUL")
TFLM = Path("/work/shared/models/tflm")
_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int4": (-8, 7)}
_TENSOR_TYPE = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "int16": 7, "int8": 9}
NONE, RELU, RELU_N1_TO_1, RELU6, TANH = 0, 1, 2, 3, 4

# ---------------------------------------------------------------------------------------------------------
# The op-model corpus and the real models


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


@pytest.mark.parametrize("name", ["hello_world_int8", "micro_speech_quantized"])
def test_tflm_models_are_bit_exact(name: str) -> None:
    path = TFLM / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    result = verify(path, samples=8)
    assert result.bit_exact, result.summary()


# ---------------------------------------------------------------------------------------------------------
# Single-op models


def _q(scale, zero_point, axis: int = 0) -> Quantization:
    return Quantization(np.atleast_1d(np.asarray(scale, np.float32)), np.atleast_1d(np.asarray(zero_point, np.int64)),
                        axis)


def _fc(in_shape, units, *, it="int8", wt="int8", ot=None, bt="int32", bias=True, per_channel=False,
        in_q=(0.05, -3), w_scale=0.02, w_zp=0, out_q=(0.3, 5), act=NONE, keep_num_dims=False, qbt=None,
        const_w=True, bias_scale=None, options=True, out_shape=None, qdim=0, seed=0) -> bytes:
    """input [.., depth] x weights [units, depth] (+ bias) -> FULLY_CONNECTED; the weights are a second model
    input when not const_w."""
    rng = np.random.default_rng(seed)
    depth = in_shape[-1]
    lo, hi = _RANGE[wt]
    w = rng.integers(lo, hi, size=(units, depth), endpoint=True)
    if per_channel:
        ws = (w_scale * rng.uniform(0.5, 2.0, size=units)).astype(np.float32)
        wq = _q(ws, np.zeros(units, np.int64), qdim)
    else:
        ws = np.float32(w_scale)
        wq = _q(ws, w_zp)
    w_data = (w.astype(np.int8) if wt == "int4" else w.astype(wt)) if const_w else None
    tensors = [Tensor("x", tuple(in_shape), it, quant=_q(*in_q)),
               Tensor("w", (units, depth), wt, data=w_data, quant=wq)]
    op_inputs = [0, 1]
    if bias:
        bs = np.float32(in_q[0]) * np.asarray(ws, np.float32) if bias_scale is None else np.float32(bias_scale)
        bs = np.broadcast_to(bs, (units,)) if per_channel else np.atleast_1d(bs)
        b = rng.integers(-30000, 30000, size=units).astype(bt)
        tensors.append(Tensor("b", (units,), bt, data=b, quant=_q(bs, np.zeros(bs.size, np.int64))))
        op_inputs.append(2)
    if out_shape is None:
        out_shape = (*in_shape[:-1], units) if keep_num_dims else (int(np.prod(in_shape)) // depth, units)
    tensors.append(Tensor("y", tuple(out_shape), ot or it, quant=_q(*out_q)))
    opts = {"fusedActivationFunction": act, "keepNumDims": keep_num_dims}
    if qbt is not None:
        opts["quantizedBiasType"] = _TENSOR_TYPE[qbt]
    op = Op("FULLY_CONNECTED", op_inputs, [len(tensors) - 1], options=opts if options else {},
            options_type="FullyConnectedOptions" if options else "")
    inputs = [0] if const_w else [0, 1]
    return write_tflite(Graph(tensors=tensors, ops=[op], inputs=inputs, outputs=[len(tensors) - 1]))


def _bmm(lhs_shape, rhs_shape, out_shape, *, lt="int8", rt=None, ot=None, adj_x=False, adj_y=False,
         const_rhs=False, lq=(0.05, -3), rq=(0.04, 2), oq=(0.3, 5), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    rt = rt or lt
    rhs_data = None
    if const_rhs:
        lo, hi = _RANGE[rt]
        rhs_data = rng.integers(lo, hi, size=rhs_shape, endpoint=True).astype(rt)
    tensors = [Tensor("a", tuple(lhs_shape), lt, quant=_q(*lq)),
               Tensor("b", tuple(rhs_shape), rt, data=rhs_data, quant=_q(*rq)),
               Tensor("y", tuple(out_shape), ot or lt, quant=_q(*oq) if oq else None)]
    op = Op("BATCH_MATMUL", [0, 1], [2], options={"adjX": adj_x, "adjY": adj_y}, options_type="BatchMatMulOptions")
    return write_tflite(Graph(tensors=tensors, ops=[op], inputs=[0] if const_rhs else [0, 1], outputs=[2]))


def _assert_bit_exact(model: bytes, min_distinct: int = 3) -> None:
    result = verify(model, samples=4)
    assert result.bit_exact, result.summary()
    # Guard against vacuous agreement (everything saturated to one value) where the case is meant to vary.
    native = NativeModel(model)
    rng = np.random.default_rng(5)
    inputs = []
    for t in native.inputs:
        info = np.iinfo(t.dtype)
        inputs.append(rng.integers(info.min, info.max, size=t.shape, endpoint=True, dtype=t.dtype))
    out = native.run(inputs)[0]
    assert len(np.unique(out)) >= min_distinct, f"only {np.unique(out)} in the output"


S16 = dict(it="int16", in_q=(0.001, 0), out_q=(0.002, 0))
FC_CASES = {
    "per_tensor": dict(in_shape=(3, 20), units=7),
    "per_tensor_weight_zero_point": dict(in_shape=(3, 20), units=7, w_zp=4),
    "per_tensor_relu": dict(in_shape=(3, 20), units=7, act=RELU),
    "per_tensor_relu6": dict(in_shape=(3, 20), units=7, act=RELU6, out_q=(0.03, -20)),
    "per_tensor_relu_n1_to_1": dict(in_shape=(3, 20), units=7, act=RELU_N1_TO_1, out_q=(0.01, 0)),
    "per_channel_odd": dict(in_shape=(2, 33), units=9, per_channel=True),
    "no_bias": dict(in_shape=(2, 33), units=9, bias=False),
    "keep_num_dims": dict(in_shape=(2, 3, 20), units=7, keep_num_dims=True, per_channel=True),
    "rank4_input_flattened": dict(in_shape=(1, 2, 5, 4), units=6),
    "rows_past_one_tile": dict(in_shape=(37, 70), units=29, w_zp=3),
    "depth_past_int32_chunk": dict(in_shape=(1, 70000), units=3, w_scale=0.001, in_q=(1.0, -128), out_q=(1000.0, 0)),
    "nonconstant_weights": dict(in_shape=(3, 20), units=7, const_w=False, w_zp=2),
    "nonconstant_weights_per_channel": dict(in_shape=(3, 20), units=7, const_w=False, per_channel=True),
    # round(acc * scale) beyond int32: x86 gives INT32_MIN, plus the output zero point (wrapping when negative),
    # so large positive sums come out as -128 (or 127) next to small ones that saturate normally
    "overflow_zero_zero_point": dict(in_shape=(3, 20), units=7, in_q=(1.0, 0), w_scale=1.0, out_q=(1e-5, 0)),
    "overflow_positive_zero_point": dict(in_shape=(3, 20), units=7, in_q=(1.0, 0), w_scale=1.0, out_q=(1e-5, 5)),
    "overflow_negative_zero_point": dict(in_shape=(3, 20), units=7, in_q=(1.0, 0), w_scale=1.0, out_q=(1e-5, -5)),
    "input_zero_point_outside_int8": dict(in_shape=(3, 20), units=7, in_q=(0.05, 1000)),
    # RELU6 with this zero point gives an activation minimum above the maximum: LiteRT yields the maximum,
    # cast to int8
    "inverted_activation_range": dict(in_shape=(3, 20), units=7, act=RELU6, out_q=(1.0, -200)),
    "int16x8_int64_bias": dict(in_shape=(2, 20), units=7, bt="int64", **S16),
    "int16x8_int64_bias_per_channel": dict(in_shape=(2, 20), units=7, bt="int64", per_channel=True, **S16),
    "int16x8_int32_bias_int32_type": dict(in_shape=(2, 20), units=7, bt="int32", qbt="int32", **S16),
    "int16x8_int64_bias_int64_type": dict(in_shape=(2, 20), units=7, bt="int64", qbt="int64", **S16),
    "int16x8_no_bias_int32_type": dict(in_shape=(2, 20), units=7, bias=False, qbt="int32", **S16),
    "int16x8_weight_zero_point": dict(in_shape=(2, 20), units=7, bt="int64", w_zp=3, **S16),
    # (w + zp) * x overflows int32 per product in LiteRT's int64 accumulation
    "int16x8_huge_weight_zero_point": dict(in_shape=(2, 20), units=7, bt="int64", w_zp=100000, in_q=(0.001, 0),
                                           out_q=(100.0, 0), it="int16"),
    "int16x16": dict(in_shape=(2, 20), units=7, wt="int16", w_scale=0.0001, **S16),
    "int16x16_int64_bias": dict(in_shape=(2, 20), units=7, wt="int16", bt="int64", qbt="int64", w_scale=0.0001, **S16),
    "int16x16_per_channel": dict(in_shape=(2, 20), units=7, wt="int16", per_channel=True, w_scale=0.0001, **S16),
    "uint8": dict(in_shape=(3, 20), units=7, it="uint8", wt="uint8", in_q=(0.05, 128), w_zp=120, out_q=(0.3, 100)),
    "uint8_rows_past_one_tile": dict(in_shape=(37, 70), units=29, it="uint8", wt="uint8", in_q=(0.05, 128), w_zp=120,
                                     out_q=(0.3, 100)),
    "uint8_int16_output": dict(in_shape=(3, 20), units=7, it="uint8", wt="uint8", ot="int16", in_q=(0.05, 128),
                               w_zp=120, out_q=(0.01, 0)),
    # LiteRT truncates x - zero_point to int16 in this legacy kernel
    "uint8_int16_output_truncating_zero_points": dict(in_shape=(3, 20), units=7, it="uint8", wt="uint8", ot="int16",
                                                      in_q=(0.05, 40000), w_zp=-33000, out_q=(100.0, 0)),
    "int4_odd_count": dict(in_shape=(3, 21), units=7, wt="int4", w_scale=0.2),
    "int4_per_channel": dict(in_shape=(3, 21), units=7, wt="int4", w_scale=0.2, per_channel=True),
    "int4_int16_activations": dict(in_shape=(3, 21), units=7, wt="int4", bt="int64", w_scale=0.2, **S16),
}


@pytest.mark.parametrize("name", sorted(FC_CASES))
def test_fully_connected_edge_cases(name: str) -> None:
    _assert_bit_exact(_fc(**FC_CASES[name]), min_distinct=1 if "inverted" in name else (2 if "overflow" in name else 3))


S16_BMM = dict(lt="int16", lq=(0.001, 0), rq=(0.002, 0), oq=(0.05, 0))
BMM_CASES = {
    "rank3": dict(lhs_shape=(1, 4, 6), rhs_shape=(1, 6, 5), out_shape=(1, 4, 5)),
    "rank2": dict(lhs_shape=(4, 6), rhs_shape=(6, 5), out_shape=(4, 5)),
    "adj_x": dict(lhs_shape=(2, 6, 4), rhs_shape=(2, 6, 5), out_shape=(2, 4, 5), adj_x=True),
    "adj_y": dict(lhs_shape=(2, 4, 6), rhs_shape=(2, 5, 6), out_shape=(2, 4, 5), adj_y=True),
    "adj_x_adj_y": dict(lhs_shape=(2, 6, 4), rhs_shape=(2, 5, 6), out_shape=(2, 4, 5), adj_x=True, adj_y=True),
    "broadcast_rank5": dict(lhs_shape=(2, 1, 3, 4, 6), rhs_shape=(3, 1, 6, 5), out_shape=(2, 3, 3, 4, 5)),
    "broadcast_rhs_matrix": dict(lhs_shape=(3, 2, 4, 6), rhs_shape=(6, 5), out_shape=(3, 2, 4, 5)),
    "broadcast_lhs_matrix": dict(lhs_shape=(4, 6), rhs_shape=(3, 2, 6, 5), out_shape=(3, 2, 4, 5)),
    "broadcast_rhs_unit_batch": dict(lhs_shape=(2, 3, 4, 6), rhs_shape=(2, 1, 6, 5), out_shape=(2, 3, 4, 5)),
    "constant_rhs": dict(lhs_shape=(2, 4, 6), rhs_shape=(2, 6, 5), out_shape=(2, 4, 5), const_rhs=True),
    "constant_rhs_adj_y": dict(lhs_shape=(2, 4, 6), rhs_shape=(1, 5, 6), out_shape=(2, 4, 5), const_rhs=True,
                               adj_y=True),
    "constant_rhs_broadcast_adj_x": dict(lhs_shape=(3, 2, 6, 4), rhs_shape=(2, 6, 5), out_shape=(3, 2, 4, 5),
                                         const_rhs=True, adj_x=True),
    "int32_output": dict(lhs_shape=(2, 4, 6), rhs_shape=(2, 6, 5), out_shape=(2, 4, 5), ot="int32", oq=None),
    "depth_3000_large_zero_points": dict(lhs_shape=(1, 2, 3000), rhs_shape=(1, 3000, 3), out_shape=(1, 2, 3),
                                         lq=(0.05, 100), rq=(0.05, -100), oq=(1000.0, 10)),
    "saturating": dict(lhs_shape=(1, 4, 6), rhs_shape=(1, 6, 5), out_shape=(1, 4, 5), lq=(1.0, 3), rq=(1.0, 0),
                       oq=(0.001, -2)),
    "int16": dict(lhs_shape=(2, 4, 6), rhs_shape=(2, 6, 5), out_shape=(2, 4, 5), **S16_BMM),
    "int16_adj_x_adj_y_broadcast": dict(lhs_shape=(2, 6, 4), rhs_shape=(1, 5, 6), out_shape=(2, 4, 5), adj_x=True,
                                        adj_y=True, **S16_BMM),
    "int16_int8": dict(lhs_shape=(2, 4, 6), rhs_shape=(2, 6, 5), out_shape=(2, 4, 5), rt="int8", **S16_BMM),
    "int16_int8_constant_rhs": dict(lhs_shape=(2, 4, 6), rhs_shape=(6, 5), out_shape=(2, 4, 5), rt="int8",
                                    const_rhs=True, **S16_BMM),
}


@pytest.mark.parametrize("name", sorted(BMM_CASES))
def test_batch_matmul_edge_cases(name: str) -> None:
    _assert_bit_exact(_bmm(**BMM_CASES[name]), min_distinct=2 if name == "saturating" else 3)


def test_batch_matmul_per_channel_rhs_uses_legacy_params() -> None:
    """LiteRT's kernels read TfLiteTensor::params, which is scale 0 / zero point 0 for a per-channel tensor: the
    rescale multiplier becomes 0 and every output is the output zero point. edgeq matches that."""
    rng = np.random.default_rng(0)
    rhs_q = _q([0.04, 0.03, 0.02, 0.05, 0.01], [0, 0, 0, 0, 0], axis=1)
    tensors = [Tensor("a", (2, 4, 6), "int8", quant=_q(0.05, -3)),
               Tensor("b", (6, 5), "int8", data=rng.integers(-128, 127, size=(6, 5)).astype(np.int8), quant=rhs_q),
               Tensor("y", (2, 4, 5), "int8", quant=_q(0.3, 5))]
    op = Op("BATCH_MATMUL", [0, 1], [2], options={"adjX": False, "adjY": False}, options_type="BatchMatMulOptions")
    model = write_tflite(Graph(tensors=tensors, ops=[op], inputs=[0], outputs=[2]))
    _assert_bit_exact(model, min_distinct=1)
    out = NativeModel(model).run([rng.integers(-128, 127, size=(2, 4, 6), dtype=np.int8)])[0]
    assert np.all(out == 5)


# ---------------------------------------------------------------------------------------------------------
# Refusals

def _bad_depth_fc() -> bytes:
    """A [1, 20] input against depth-6 weights: LiteRT would silently drop the last 2 values."""
    tensors = [Tensor("x", (1, 20), "int8", quant=_q(0.05, 0)),
               Tensor("w", (4, 6), "int8", data=np.ones((4, 6), np.int8), quant=_q(0.02, 0)),
               Tensor("y", (3, 4), "int8", quant=_q(0.3, 0))]
    op = Op("FULLY_CONNECTED", [0, 1], [2], options={"fusedActivationFunction": 0},
            options_type="FullyConnectedOptions")
    return write_tflite(Graph(tensors=tensors, ops=[op], inputs=[0], outputs=[2]))


REFUSED = {
    # LiteRT reads an int32 bias as int64 here (quantized_bias_type unset means int64): no defined result
    "fc_int16_int32_bias_without_type": (lambda: _fc((2, 20), 7, bt="int32", **S16), UnsupportedOpError,
                                         "read it as INT64"),
    "fc_int16_without_options": (lambda: _fc((2, 20), 7, bt="int64", options=False, **S16), UnsupportedOpError,
                                 "without options"),
    "fc_float_input": (lambda: _fc((2, 20), 7, it="float32", ot="float32", bt="float32"), UnsupportedOpError,
                       "hybrid"),
    "fc_int8_int64_bias": (lambda: _fc((2, 20), 7, bt="int64"), UnsupportedOpError, "INT64 bias"),
    "fc_mixed_types": (lambda: _fc((2, 20), 7, it="int8", ot="int16"), UnsupportedOpError, "output INT16"),
    "fc_tanh": (lambda: _fc((2, 20), 7, act=TANH), UnsupportedOpError, "fused activation"),
    "fc_int4_zero_point": (lambda: _fc((2, 20), 7, wt="int4", w_zp=1), UnsupportedOpError, "int4 filter"),
    "fc_uint8_to_int16_without_bias": (lambda: _fc((3, 20), 7, it="uint8", wt="uint8", ot="int16", bias=False,
                                                   in_q=(0.05, 128), out_q=(0.01, 0)), UnsupportedOpError,
                                       "without bias"),
    "fc_wrong_output_shape": (lambda: _fc((3, 20), 7, out_shape=(3, 8)), ModelFormatError,
                              r"should have shape \[3,7\]"),
    "fc_keep_num_dims_wrong_output": (lambda: _fc((2, 3, 20), 7, keep_num_dims=True, out_shape=(6, 7)),
                                      ModelFormatError, r"should have shape \[2,3,7\]"),
    "fc_input_not_multiple_of_depth": (lambda: _bad_depth_fc(), ModelFormatError, "not a multiple"),
    "fc_bias_scale_mismatch": (lambda: _fc((3, 20), 7, bias_scale=1.0), ModelFormatError, "bias scale"),
    "fc_per_channel_along_depth": (lambda: _fc((2, 7), 7, per_channel=True, qdim=1), ModelFormatError,
                                   "dimension 1"),
    "fc_int16_input_zero_point": (lambda: _fc((2, 20), 7, bt="int64", it="int16", in_q=(0.001, 3), out_q=(0.002, 0)),
                                  ModelFormatError, "zero point 0"),
    "bmm_batch_not_broadcastable": (lambda: _bmm((2, 4, 6), (3, 6, 5), (3, 4, 5)), ModelFormatError, "broadcast"),
    "bmm_depth_mismatch": (lambda: _bmm((2, 4, 6), (2, 7, 5), (2, 4, 5)), ModelFormatError, "depth"),
    "bmm_wrong_output_shape": (lambda: _bmm((2, 4, 6), (2, 6, 5), (2, 5, 4)), ModelFormatError,
                               r"should have shape \[2,4,5\]"),
    "bmm_rank6": (lambda: _bmm((1, 1, 1, 2, 4, 6), (2, 6, 5), (1, 1, 1, 2, 4, 5)), UnsupportedOpError, "ranks"),
    "bmm_int16_zero_point": (lambda: _bmm((2, 4, 6), (2, 6, 5), (2, 4, 5), lt="int16", lq=(0.001, 1), rq=(0.002, 0),
                                          oq=(0.05, 0)), ModelFormatError, "zero points 0"),
    "bmm_int8_int16_output": (lambda: _bmm((2, 4, 6), (2, 6, 5), (2, 4, 5), ot="int16"), UnsupportedOpError,
                              "output INT16"),
    "bmm_hybrid": (lambda: _bmm((2, 4, 6), (2, 6, 5), (2, 4, 5), lt="float32", rt="int8", lq=(1.0, 0), oq=None),
                   UnsupportedOpError, "hybrid"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals(name: str) -> None:
    build, error, message = REFUSED[name]
    with pytest.raises(error, match=message):
        NativeModel(build())
