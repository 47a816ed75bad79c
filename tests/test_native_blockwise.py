"""Blockwise INT4 FULLY_CONNECTED in edgeq's C interpreter against LiteRT's default kernels (XNNPACK for blocks
of 32k, the builtin kernel for 16), within BLOCKWISE_TOLERANCE of each op's output range; malformed tables
refused; the zoo's int4-block32 models verified (-s prints the measured errors)."""

from __future__ import annotations

import flatbuffers
import ml_dtypes
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import edgeq
from bench import zoo
from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.verify.blockwise import BLOCKWISE_TOLERANCE
from edgeq.verify.native import NativeModel

RELU, RELU6 = 1, 3


def _fc_model(units: int, depth: int, block: int, rows: int, bias: bool = True, activation: int = 0,
              keep_num_dims: bool = False, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """One blockwise FULLY_CONNECTED with random int4 weights and random fp16 block scales (not bf16 values,
    so XNNPACK's rounding of them to bf16 shows); returns the model, the weights and the scales."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-8, 8, size=(units, depth)).astype(np.int8)
    scales = rng.uniform(1e-3, 5e-2, size=units * depth // block).astype(np.float16).astype(np.float32)
    quant = Quantization(scale=scales, zero_point=np.zeros(scales.size, np.int64), block_size=block)
    shape_in, shape_out = ((1, rows, depth), (1, rows, units)) if keep_num_dims else ((rows, depth), (rows, units))
    tensors = [Tensor("x", shape_in, "float32"), Tensor("w", (units, depth), "int4", data=w, quant=quant)]
    if bias:
        tensors.append(Tensor("b", (units,), "float32", data=rng.normal(size=units).astype(np.float32)))
    tensors.append(Tensor("y", shape_out, "float32"))
    op = Op("FULLY_CONNECTED", [0, 1, 2 if bias else -1], [len(tensors) - 1],
            options={"fusedActivationFunction": activation, "keepNumDims": keep_num_dims},
            options_type="FullyConnectedOptions")
    graph = Graph(tensors=tensors, ops=[op], inputs=[0], outputs=[len(tensors) - 1])
    return write_tflite(graph), w, scales


def _samples(shape: tuple[int, ...], n: int, seed: int = 1) -> list[list[np.ndarray]]:
    """Mixed-sign rows, all-positive rows (input zero point -128: XNNPACK's float sums cancel most), zeros."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = (rng.normal(size=shape) * rng.uniform(0.1, 5.0)).astype(np.float32)
        out.append([np.abs(x) if i % 3 == 1 else (np.zeros_like(x) if i == 2 else x)])
    return out


CASES = [  # units, depth, block, rows, bias, activation, keep_num_dims
    (7, 512, 16, 3, True, 0, False),
    (33, 256, 16, 1, False, RELU, False),
    (10, 416, 32, 1, True, 0, False),
    (33, 256, 32, 5, False, RELU6, False),
    (1, 96, 32, 2, True, RELU, True),
    (64, 1024, 64, 3, True, 0, False),
    (17, 384, 128, 4, False, 0, True),
    (5, 512, 256, 2, True, RELU, False),
]


@pytest.mark.parametrize("units,depth,block,rows,bias,activation,keep", CASES)
def test_single_op_within_tolerance_of_litert_default(units, depth, block, rows, bias, activation, keep, capsys):
    data, _, _ = _fc_model(units, depth, block, rows, bias, activation, keep)
    shape = (1, rows, depth) if keep else (rows, depth)
    result = edgeq.verify(data, inputs=_samples(shape, 9))
    (check,) = result.blockwise
    with capsys.disabled():
        print(f"\n{units}x{depth} blocks of {block}, {rows} rows: {check.relative:.2e} of the output range "
              f"({check.kernel})")
    assert result.passed and result.tolerance == BLOCKWISE_TOLERANCE
    assert check.relative <= BLOCKWISE_TOLERANCE and check.output_range > 0
    assert check.kernel == ("XNNPACK qd8_f32_qb4w" if block % 32 == 0 else "LiteRT builtin FULLY_CONNECTED")
    assert "REF kernels do not compute blockwise INT4" in (result.blockwise_reference or "")
    if block % 32 and activation:
        assert any("omits the fused" in d for d in result.reference_defects)


def test_scales_are_rounded_to_bf16_for_xnnpack_blocks():
    """With the fp16 scales as stored the result would be ~1e-3 off XNNPACK; rounded to bf16 it is exact up to
    float summation (the C kernel's own output against numpy with bf16 scales)."""
    data, w, scales = _fc_model(64, 1024, 32, 1, bias=False)
    x = np.random.default_rng(3).normal(size=(1, 1024)).astype(np.float32)
    native = NativeModel(data).run([x])[0][0].astype(np.float64)
    f32 = np.float32
    lo, hi = min(x.min(), f32(0)), max(x.max(), f32(0))
    multiplier = f32(255) / (hi - lo)  # xnn_qd8_asymmetric_quantization_params, in float
    low, high = lo * multiplier, hi * multiplier
    zp = int(np.rint(np.clip(f32(-128) - low if (f32(-128) + low) + (f32(127) + high) > 0 else f32(127) - high,
                             -128, 127)))
    q = np.clip(np.rint(x[0] * multiplier) + zp, -128, 127)
    dots = ((q - zp)[None, :] * w).reshape(64, -1, 32).sum(-1)
    step = np.float64(np.float32(1) / multiplier)
    for kind, s, rel in (("bf16", scales.astype(ml_dtypes.bfloat16).astype(np.float64), 1e-6), ("fp16", scales, None)):
        expected = (dots * np.asarray(s, np.float64).reshape(64, -1)).sum(-1) * step
        error = np.max(np.abs(native - expected)) / np.max(np.abs(expected))
        if rel is not None:
            assert error <= rel, kind
        else:
            assert error > 1e-4, kind


# ---------------------------------------------------------------------------------------------------------
# Malformed tables


def _mutated(mutate) -> bytes:
    data, _, _ = _fc_model(8, 64, 32, 1)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    mutate(model.subgraphs[0])
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _table(sub):
    return sub.tensors[1].quantization.details


def _bad_shape(sub):
    sub.tensors[-1].shape = [2, 8]  # the scales tensor (appended last by the writer)


def _second_use(sub):
    sub.operators.append(schema.OperatorT())
    sub.operators[-1].opcodeIndex = sub.operators[0].opcodeIndex
    sub.operators[-1].inputs, sub.operators[-1].outputs = [1, 1], [0]


@pytest.mark.parametrize("mutate,error,message", [
    (lambda s: setattr(_table(s), "blockSize", 24), ModelFormatError,
     r"op 0 \(FULLY_CONNECTED\): blockwise filter 'w': block size 24 does not divide its 64 inputs"),
    (lambda s: setattr(_table(s), "blockSize", 0), ModelFormatError, r"tensor 1 \('w'\) has a blockwise table"),
    (lambda s: setattr(_table(s), "scales", 99), ModelFormatError,
     r"tensor 1 \('w'\) has a blockwise table with block size 32, scales tensor 99, .* \(of 5 tensors\)"),
    (lambda s: setattr(_table(s), "scales", 0), ModelFormatError,
     r"op 0 \(FULLY_CONNECTED\): blockwise filter 'w': its scales tensor is not FLOAT16"),
    (_bad_shape, ModelFormatError, r"op 0 \(FULLY_CONNECTED\): .*scales tensor 'w_scales' should have shape \[8,2\]"),
    (lambda s: setattr(_table(s), "zeroPoints", 2), UnsupportedOpError,
     r"op 0 \(FULLY_CONNECTED\): blockwise filter 'w' has a zero-point tensor"),
    (lambda s: setattr(_table(s), "blockSize", 1), UnsupportedOpError, r"odd block size 1"),
    (_second_use, UnsupportedOpError, r"op 1 \(FULLY_CONNECTED\) reads blockwise-quantized tensor 'w' as input 0"),
])
def test_malformed_tables_are_refused_naming_the_op(mutate, error, message):
    with pytest.raises(error, match=message):
        NativeModel(_mutated(mutate))


def test_non_positive_scale_is_refused():
    data, _, _ = _fc_model(8, 64, 32, 1)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    scales = model.subgraphs[0].tensors[-1]
    raw = np.frombuffer(bytes(model.buffers[scales.buffer].data), np.float16).copy()
    raw[3] = -raw[3]
    model.buffers[scales.buffer].data = raw.view(np.uint8)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ModelFormatError, match=r"op 0 \(FULLY_CONNECTED\): .*scale -[0-9.e-]+ of block 1 of unit 1"):
        NativeModel(bytes(builder.Output()))


# ---------------------------------------------------------------------------------------------------------
# The zoo


ZOO_WITH_FC = ["keras_cnn_ops", "keras_attention", "keras_mobilenet_block", "hand_landmark_lite", "efficientnet_lite0"]


@pytest.mark.parametrize("name", ZOO_WITH_FC)
def test_zoo_int4_block32_verifies_within_tolerance(name, capsys):
    entry = zoo.get(name)
    model = edgeq.load(entry.path(), name=name)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(*entry.calib(8, 0)), scheme="int4-block32", progress=False)
    evaluation = entry.eval(4, 1)
    result = edgeq.verify(qm.tflite, inputs=[[a[i : i + 1] for a in evaluation] for i in range(4)])
    with capsys.disabled():
        print(f"\n{name} int4-block32: {len(result.blockwise)} blockwise FC, worst "
              f"{max(c.relative for c in result.blockwise):.2e} of the output range; other ops bit-exact: "
              f"{result.bit_exact}")
    assert result.blockwise and all(c.kernel == "XNNPACK qd8_f32_qb4w" for c in result.blockwise)
    assert result.bit_exact, result.summary()
    assert result.passed, result.summary()
