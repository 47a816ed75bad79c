"""op_versions against the converters that define the numbers.

TFLiteConverter writes float, int8 and dynamic-range files through its MLIR exporter, which runs
op_version.cc on the finished flatbuffer: every op and the min_runtime_version metadata must match.
For 16x8 it still runs the deprecated quantizer, which stamps operator_property.cc's int8 minimums
(CONV_2D 3, SOFTMAX 2, ...), so those files are checked against op_version.cc's numbers written out
here, against LiteRT's exporter (litert_converter) re-exporting them, and by loading the re-versioned
file in LiteRT. Hand-built graphs cover the branches no conversion reaches (uint8, int4, grouped
conv, options quirks).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from edgeq.export.op_versions import assign_versions, min_runtime_version, op_version
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.ir.tflite_reader import read_tflite

tf = pytest.importorskip("tensorflow")

_RNG = np.random.default_rng(7)


def _const(*shape: int, scale: float = 0.3) -> tf.Tensor:
    return tf.constant(_RNG.standard_normal(shape).astype(np.float32) * scale)


_W = {
    "conv": _const(3, 3, 3, 8), "conv_b": _const(8), "dw": _const(3, 3, 8, 1), "tconv": _const(3, 3, 8, 8),
    "fc": _const(8, 10), "fc_b": _const(10), "dense": _const(6, 7), "dense_b": _const(7),
    "offset": _const(1, 4, 6), "rank5": _const(1, 1, 1, 2, 3), "alpha": _const(1, 4, scale=0.05) + 0.2,
    "big_conv": _const(3, 3, 4, 40), "big_fc": _const(64, 32), "big_fc_b": _const(32),
}


@tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
def _vision(x: tf.Tensor) -> tf.Tensor:
    """Convolutions, pooling, resizing, elementwise arithmetic and activations, a classifier head."""
    y = tf.nn.relu(tf.nn.conv2d(x, _W["conv"], 1, "SAME") + _W["conv_b"])
    y = tf.nn.depthwise_conv2d(y, _W["dw"], [1, 1, 1, 1], "SAME", dilations=[2, 2])
    p = tf.nn.max_pool2d(y, 2, 2, "VALID")
    a = tf.nn.avg_pool2d(p, 2, 1, "SAME")
    u = tf.nn.conv2d_transpose(p, _W["tconv"], [1, 8, 8, 8], 2, "SAME")
    r = tf.image.resize(a, [8, 8], "bilinear")
    n = tf.image.resize(a, [8, 8], "nearest")
    y = tf.concat([u + r, u - n, u * r], axis=-1)[..., :8]
    y = tf.pad(tf.minimum(tf.maximum(y, n), r), [[0, 0], [1, 1], [1, 1], [0, 0]])
    y = tf.nn.relu6(y) + tf.tanh(y) + tf.sigmoid(y) + tf.nn.leaky_relu(y, 0.2) + tf.nn.relu(y)
    m = tf.reduce_mean(y, axis=[1, 2])
    return tf.nn.softmax(tf.matmul(m, _W["fc"]) + _W["fc_b"])


@tf.function(input_signature=[tf.TensorSpec([1, 4, 6], tf.float32)])
def _tensors(x: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Layout and indexing ops, a matmul of two activations, rank-5 broadcasting, a 3-D dense layer.
    (Fed from the dense layer: branches hanging off the ADD stay float in the int8 conversion.)"""
    dense = tf.matmul(x, _W["dense"]) + _W["dense_b"]
    t = tf.transpose(dense[..., :6], [0, 2, 1])
    a, b = tf.split(t, 2, axis=1)
    sliced = tf.slice(t, [0, 1, 0], [1, 4, 4])
    summed = tf.reduce_sum(tf.gather(sliced, [3, 0, 1], axis=1), axis=1, keepdims=True)
    x5 = tf.reshape(x + _W["offset"], [1, 2, 2, 2, 3])
    matmul = tf.matmul(a, b, transpose_b=True)
    return matmul, sliced[:, ::2, 1:3], summed, x5 - _W["rank5"], tf.maximum(x5, _W["rank5"])


@tf.function(input_signature=[tf.TensorSpec([1, 4, 4], tf.float32)])
def _mobile(x: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Ops kept out of the 16x8 models: HARD_SWISH and PRELU (no 16x8 kernels), PADV2 (the deprecated
    quantizer leaves its pad value float, which LiteRT's exporter rejects), and a MUL whose rescale
    s1*s2/s_out is >= 1."""
    swish = x * tf.nn.relu6(x + 3.0) / 6.0
    prelu = tf.nn.relu(swish) + (-_W["alpha"]) * tf.nn.relu(-swish)  # Keras PReLU, fused to PRELU
    disjoint = tf.nn.relu(x) * (tf.nn.relu(-x) + 0.001)  # large input ranges, tiny product
    return prelu, disjoint, tf.pad(x, [[0, 0], [1, 0], [0, 2]], constant_values=0.5)


@tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 4], tf.float32)])
def _hybrid(x: tf.Tensor) -> tf.Tensor:
    """Weights large enough (>= 1024 values) for dynamic-range quantization to make them int8."""
    y = tf.reduce_mean(tf.nn.conv2d(x, _W["big_conv"], 1, "SAME"), axis=[1, 2])[:, :32]
    return tf.matmul(tf.concat([y, y], axis=1), _W["big_fc"]) + _W["big_fc_b"]


_MODELS = {"vision": _vision, "tensors": _tensors, "mobile": _mobile, "hybrid": _hybrid}


def _convert(model: str, mode: str) -> bytes:
    """mode: float, int8, uint8 (int8 with uint8 I/O), int16x8, or dynamic (weights only)."""
    fn = _MODELS[model]
    shape = fn.input_signature[0].shape
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    if mode != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode in ("int8", "uint8", "int16x8"):
        rng = np.random.default_rng(3)
        converter.representative_dataset = lambda: (
            [rng.uniform(-1, 1, shape).astype(np.float32)] for _ in range(4)
        )
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            if mode == "int16x8"
            else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
    if mode == "uint8":
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


@pytest.fixture(scope="module")
def converted() -> dict[tuple[str, str], bytes]:
    """Every conversion the tests use, made once (TFLiteConverter dominates this module's run time)."""
    cases = [(m, mode) for m in ("vision", "tensors") for mode in ("float", "int8", "int16x8")]
    cases += [("mobile", "float"), ("mobile", "uint8"), ("hybrid", "dynamic")]
    return {case: _convert(*case) for case in cases}


def _mismatches(data: bytes) -> list[str]:
    graph = read_tflite(data)
    return [
        f"{graph.where(i)}: file v{op.version}, op_version {op_version(graph, op)}"
        for i, op in enumerate(graph.ops)
        if op_version(graph, op) != op.version
    ]


def _runtime_metadata(data: bytes) -> str:
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    (entry,) = [m for m in model.metadata if m.name == b"min_runtime_version"]
    return bytes(model.buffers[entry.buffer].data).rstrip(b"\0").decode()


_EXPORT_SCRIPT = """
import pathlib, sys
from litert_converter.mlir._mlir_libs import converter_api_ext, model_utils_ext
from litert_converter.tools.model_utils import transform
folder, first = pathlib.Path(sys.argv[1]), int(sys.argv[2])
for path in sorted(folder.glob("*.in"))[first:]:
    context = transform.get_ir_context()
    module = model_utils_ext.flatbuffer_to_mlir(path.read_bytes(), context)
    with context:
        path.with_suffix(".out").write_bytes(converter_api_ext.export_flatbuffer_to_bytes(module.operation))
"""


@pytest.fixture(scope="module")
def litert_exported(converted: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes | str]:
    """Every converted file and hand-built graph re-exported by LiteRT's converter, whose exporter runs
    op_version.cc on its output. It runs in a child process because the exporter aborts the process
    (rather than raising) on a graph its verifier rejects; such a graph maps to the error text."""
    if importlib.util.find_spec("litert_converter") is None:
        pytest.skip("litert_converter is not installed")
    models = {"-".join(case): data for case, data in converted.items()}
    models.update({name: write_tflite(graph) for name, (_, _, graph) in SYNTHETIC.items()})
    names = sorted(models)
    folder = tmp_path_factory.mktemp("litert_export")
    for k, name in enumerate(names):
        (folder / f"{k:03d}.in").write_bytes(models[name])
    results: dict[str, bytes | str] = {}
    k = 0
    while k < len(names):
        run = subprocess.run([sys.executable, "-c", _EXPORT_SCRIPT, str(folder), str(k)],
                             capture_output=True, text=True, timeout=600, check=False)
        while k < len(names) and (folder / f"{k:03d}.out").exists():
            results[names[k]] = (folder / f"{k:03d}.out").read_bytes()
            k += 1
        if k < len(names):
            results[names[k]] = f"LiteRT's exporter failed on {names[k]}: {run.stderr[-800:]}"
            k += 1
    return results


def _exported(litert_exported: dict, name: str) -> bytes:
    data = litert_exported[name]
    if isinstance(data, str):
        pytest.fail(data)
    return data


MLIR_EXPORTED = [("vision", "float"), ("vision", "int8"), ("tensors", "float"), ("tensors", "int8"),
                 ("mobile", "float"), ("mobile", "uint8"), ("hybrid", "dynamic")]


@pytest.mark.parametrize("case", MLIR_EXPORTED, ids="-".join)
def test_every_op_matches_tflite_converter(converted: dict, case: tuple[str, str]) -> None:
    data = converted[case]
    assert _mismatches(data) == []
    assert min_runtime_version(read_tflite(data)) == _runtime_metadata(data)


INT16X8 = [("vision", "int16x8"), ("tensors", "int16x8")]


@pytest.mark.parametrize("case", MLIR_EXPORTED + INT16X8, ids="-".join)
def test_every_op_matches_litert_exporter(litert_exported: dict, case: tuple[str, str]) -> None:
    data = _exported(litert_exported, "-".join(case))
    assert _mismatches(data) == []
    assert min_runtime_version(read_tflite(data)) == _runtime_metadata(data)


def test_conversions_reach_the_interesting_versions(converted: dict) -> None:
    """The converter really produced these (op, version) pairs, so the comparisons above are not vacuous."""
    seen = {
        (mode, op.kind, op.version)
        for (_, mode), data in converted.items()
        if mode != "int16x8"
        for op in read_tflite(data).ops
    }
    expected = {
        ("float", "DEPTHWISE_CONV_2D", 2),  # dilation 2
        ("float", "RESIZE_BILINEAR", 3),  # half_pixel_centers
        ("float", "RESIZE_NEAREST_NEIGHBOR", 3),
        ("float", "FULLY_CONNECTED", 5),  # keep_num_dims
        ("float", "SUB", 3),  # broadcast with a 5-D input
        ("float", "MAXIMUM", 3),
        ("float", "HARD_SWISH", 1),
        ("float", "PRELU", 1),
        ("int8", "CONV_2D", 3),
        ("int8", "DEPTHWISE_CONV_2D", 3),
        ("int8", "TRANSPOSE_CONV", 2),
        ("int8", "FULLY_CONNECTED", 4),
        ("int8", "FULLY_CONNECTED", 5),
        ("int8", "BATCH_MATMUL", 2),
        ("int8", "SUB", 3),
        ("int8", "SPLIT", 2),
        ("int8", "GATHER", 2),
        ("int8", "SUM", 2),
        ("int8", "SOFTMAX", 2),
        ("int8", "LEAKY_RELU", 1),
        ("int8", "DEQUANTIZE", 2),
        ("uint8", "MUL", 3),  # rescale >= 1
        ("uint8", "PADV2", 2),
        ("uint8", "QUANTIZE", 1),
        ("uint8", "HARD_SWISH", 1),
        ("uint8", "PRELU", 1),
        ("dynamic", "CONV_2D", 5),  # hybrid, per-channel
        ("dynamic", "FULLY_CONNECTED", 12),  # hybrid, per-channel
    }
    assert expected - seen == set()
    uint8_io = read_tflite(converted["mobile", "uint8"])
    assert {uint8_io.tensors[i].dtype for i in uint8_io.inputs + uint8_io.outputs} == {"uint8"}


# op_version.cc's numbers for TFLiteConverter's 16x8 files (int16 activations, int8 weights, int64
# bias, ADD/SUB with pot_scale_int16 = false); the files themselves carry the deprecated quantizer's.
INT16X8_VISION = {
    "QUANTIZE": 2, "CONV_2D": 8, "DEPTHWISE_CONV_2D": 2, "MAX_POOL_2D": 3, "AVERAGE_POOL_2D": 3,
    "TRANSPOSE_CONV": 2, "RESIZE_BILINEAR": 4, "RESIZE_NEAREST_NEIGHBOR": 4, "ADD": 3, "SUB": 5, "MUL": 4,
    "CONCATENATION": 3, "STRIDED_SLICE": 1, "MAXIMUM": 4, "MINIMUM": 4, "PAD": 3, "RELU6": 3, "TANH": 3,
    "LOGISTIC": 3, "LEAKY_RELU": 2, "RELU": 3, "MEAN": 3, "FULLY_CONNECTED": 11, "SOFTMAX": 3,
    "DEQUANTIZE": 3,
}
INT16X8_TENSORS = {
    "QUANTIZE": 2, "ADD": 3, "TRANSPOSE": 5, "SPLIT": 4, "BATCH_MATMUL": 3, "SLICE": 4, "STRIDED_SLICE": 1,
    "GATHER": 4, "SUM": 1, "FULLY_CONNECTED": 11, "RESHAPE": 1, "SUB": 5, "MAXIMUM": 4,
    "DEQUANTIZE": 3,
}


@pytest.mark.parametrize(("model", "expected"), [("vision", INT16X8_VISION), ("tensors", INT16X8_TENSORS)])
def test_int16x8_versions_follow_op_version_rules(converted: dict, model: str, expected: dict) -> None:
    graph = read_tflite(converted[model, "int16x8"])
    got: dict[str, set[int]] = {}
    for op in graph.ops:
        got.setdefault(op.kind, set()).add(op_version(graph, op))
    assert got == {kind: {v} for kind, v in expected.items()}
    dense = next(op for op in graph.ops if op.kind == "FULLY_CONNECTED")
    assert [graph.tensors[i].dtype for i in dense.inputs] == ["int16", "int8", "int64"]


@pytest.mark.parametrize("case", [*INT16X8, ("mobile", "uint8")], ids="-".join)
def test_assigned_versions_load_and_run_in_litert(converted: dict, case: tuple[str, str]) -> None:
    """Each (op, version) we write is one the runtime registers, and nothing else about the model changes."""
    original = converted[case]
    graph = read_tflite(original)
    assign_versions(graph)
    assert [op.version for op in graph.ops] == [op_version(graph, op) for op in graph.ops]
    rewritten = write_tflite(graph)
    assert _mismatches(rewritten) == []
    sample = np.random.default_rng(5).uniform(-1, 1, graph.tensors[graph.inputs[0]].shape)
    for before, after in zip(_run(original, sample), _run(rewritten, sample), strict=True):
        np.testing.assert_array_equal(after, before)


def _run(data: bytes, sample: np.ndarray) -> list[np.ndarray]:
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    if inp["dtype"] == np.uint8:
        scale, zero = inp["quantization"]
        sample = np.clip(np.round(sample / scale + zero), 0, 255)
    interpreter.set_tensor(inp["index"], sample.astype(inp["dtype"]))
    interpreter.invoke()
    return [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]


# Hand-built single-op graphs for branches no conversion above reaches; each expected number is read
# off op_version.cc. A tensor is "dtype shape [q[N][@axis][=scale]] [c[=v,v,...]]": dims joined by x
# ("-" for a scalar), q quantized with N scales along axis, c constant (zeros unless values are given;
# LiteRT's exporter checks shape operands such as TRANSPOSE_CONV's output shape).


def _t(spec: str) -> Tensor:
    dtype, dims, *flags = spec.split()
    shape = () if dims == "-" else tuple(int(d) for d in dims.split("x"))
    quant = None
    for flag in (f for f in flags if f.startswith("q")):
        body, _, scale = flag[1:].partition("=")
        count, _, axis = body.partition("@")
        n = int(count or 1)
        scales = np.full(n, float(scale or 0.02), np.float32)
        quant = Quantization(scales, np.zeros(n, np.int64), int(axis or 0))
    data = None
    for flag in (f for f in flags if f.startswith("c")):
        values = flag[2:]
        data = np.zeros(shape, np.int8 if dtype == "int4" else dtype)
        if values:
            data = np.array(values.split(","), dtype).reshape(shape)
    return Tensor("", shape, dtype, data=data, quant=quant)


def _graph(kind: str, ins: list[str], outs: list[str], options_type: str = "", **options) -> Graph:
    tensors = [dataclasses.replace(_t(spec), name=f"t{i}") for i, spec in enumerate(ins + outs)]
    n = len(ins)
    op = Op(kind, list(range(n)), list(range(n, len(tensors))), options=options, options_type=options_type)
    feeds = [i for i in range(n) if not tensors[i].is_constant]
    return Graph(tensors, [op], feeds, list(range(n, len(tensors))))


_CONV = {"options_type": "Conv2DOptions", "strideW": 1, "strideH": 1, "dilationWFactor": 1,
         "dilationHFactor": 1}
_DW = {"options_type": "DepthwiseConv2DOptions", "strideW": 1, "strideH": 1, "depthMultiplier": 1}
_TCONV = {"options_type": "TransposeConvOptions", "strideW": 2, "strideH": 2}
_TCONV_INPUTS = ["int32 4 c=1,4,4,2", "float32 2x3x3x2 c", "float32 1x2x2x2", "float32 2 c"]
_U8 = "uint8 1x4 q"
_I16 = "int16 1x4 q"
_I8_5D = "int8 1x2x2x2x3 q"

# name -> (expected version, whether LiteRT's exporter keeps the op as built: it turns a 2-input
# FULLY_CONNECTED into 3 inputs, gives every tensor a quantization table, and has no int4 conv).
SYNTHETIC: dict[str, tuple[int, bool, Graph]] = {
    "conv uint8": (1, True, _graph(
        "CONV_2D", ["uint8 1x4x4x3 q", "uint8 2x3x3x3 q c", "int32 2 q c"], ["uint8 1x4x4x2 q"], **_CONV)),
    "conv grouped": (6, True, _graph(
        "CONV_2D", ["float32 1x4x4x4", "float32 4x3x3x2 c"], ["float32 1x4x4x4"], **_CONV)),
    "conv int4 weights": (7, False, _graph(
        "CONV_2D", ["int8 1x4x4x3 q", "int4 2x3x3x3 q2 c", "int32 2 q2 c"], ["int8 1x4x4x2 q"], **_CONV)),
    "conv hybrid per-tensor": (2, True, _graph(
        "CONV_2D", ["float32 1x4x4x3", "int8 2x3x3x3 q c"], ["float32 1x4x4x2"], **_CONV)),
    "depthwise uint8 dilated": (2, True, _graph(
        "DEPTHWISE_CONV_2D", ["uint8 1x6x6x2 q", "uint8 1x3x3x2 q c"], ["uint8 1x6x6x2 q"], **_DW,
        dilationWFactor=2, dilationHFactor=2)),
    "depthwise hybrid per-channel": (6, True, _graph(
        "DEPTHWISE_CONV_2D", ["float32 1x6x6x2", "int8 1x3x3x2 q2@3 c"], ["float32 1x6x6x2"], **_DW)),
    "fully_connected two inputs": (6, False, _graph(
        "FULLY_CONNECTED", ["int8 1x4 q", "int8 3x4 q3 c"], ["int8 1x3 q"], "FullyConnectedOptions")),
    "fully_connected hybrid asymmetric": (9, True, _graph(
        "FULLY_CONNECTED", ["float32 1x4", "int8 3x4 q c", "float32 3 c"], ["float32 1x3"],
        "FullyConnectedOptions", asymmetricQuantizeInputs=True)),
    "fully_connected uint8": (1, True, _graph(
        "FULLY_CONNECTED", [_U8, "uint8 3x4 q c", "int32 3 q c"], ["uint8 1x3 q"], "FullyConnectedOptions")),
    "transpose_conv fused relu": (4, True, _graph(
        "TRANSPOSE_CONV", _TCONV_INPUTS, ["float32 1x4x4x2"], **_TCONV, fusedActivationFunction=1)),
    "transpose_conv bias": (3, True, _graph("TRANSPOSE_CONV", _TCONV_INPUTS, ["float32 1x4x4x2"], **_TCONV)),
    "add uint8": (1, True, _graph("ADD", [_U8, _U8], [_U8], "AddOptions")),
    "add int16 not quantized": (5, False, _graph("ADD", ["int16 1x4"] * 2, ["int16 1x4"], "AddOptions")),
    "add int16 power-of-two scales": (1, True, _graph(
        "ADD", [_I16, _I16], [_I16], "AddOptions", potScaleInt16=True)),
    "add int16 without options table": (3, False, _graph("ADD", [_I16, _I16], [_I16])),
    "add int64": (4, True, _graph("ADD", ["int64 1x4"] * 2, ["int64 1x4"], "AddOptions")),
    "sub uint8 rank-5 broadcast": (3, True, _graph(
        "SUB", ["uint8 1x2x2x2x3 q", "uint8 1x1x1x1x3 q"], ["uint8 1x2x2x2x3 q"], "SubOptions")),
    "mul uint8 rescale >= 1": (3, True, _graph("MUL", [_U8, _U8], ["uint8 1x4 q=1e-4"], "MulOptions")),
    "mul uint8": (1, True, _graph("MUL", [_U8, _U8], [_U8], "MulOptions")),
    "mul int16 not quantized": (7, False, _graph("MUL", ["int16 1x4"] * 2, ["int16 1x4"], "MulOptions")),
    "quantize per-channel": (3, True, _graph("QUANTIZE", ["float32 3x4"], ["int8 3x4 q3"])),
    "quantize uint8 to int8": (1, True, _graph("QUANTIZE", [_U8], ["int8 1x4 q"])),
    "dequantize per-channel": (5, True, _graph("DEQUANTIZE", ["int8 3x4 q4@1 c"], ["float32 3x4"])),
    "dequantize float16": (3, True, _graph("DEQUANTIZE", ["float16 3x4 c"], ["float32 3x4"])),
    "dequantize uint8": (1, True, _graph("DEQUANTIZE", [_U8], ["float32 1x4"])),
    "relu uint8": (2, True, _graph("RELU", [_U8], [_U8])),
    "logistic uint8": (1, True, _graph("LOGISTIC", [_U8], ["uint8 1x4 q=0.00390625"])),
    "max_pool uint8": (1, True, _graph(
        "MAX_POOL_2D", ["uint8 1x4x4x1 q"], ["uint8 1x2x2x1 q"], "Pool2DOptions", strideW=2, strideH=2,
        filterWidth=2, filterHeight=2)),
    "resize_nearest align_corners": (3, True, _graph(
        "RESIZE_NEAREST_NEIGHBOR", ["int8 1x2x2x1 q", "int32 2 c=4,4"], ["int8 1x4x4x1 q"],
        "ResizeNearestNeighborOptions", alignCorners=True)),
    "resize_bilinear int8 align_corners": (2, True, _graph(
        "RESIZE_BILINEAR", ["int8 1x2x2x1 q", "int32 2 c=4,4"], ["int8 1x4x4x1 q"], "ResizeBilinearOptions",
        alignCorners=True)),
    "strided_slice ellipsis": (6, True, _graph(
        "STRIDED_SLICE", ["int8 1x4x6 q", "int32 2 c=0,0", "int32 2 c=0,6", "int32 2 c=1,1"],
        ["int8 1x4x6 q"], "StridedSliceOptions", ellipsisMask=1)),
    "strided_slice rank 5": (4, True, _graph(
        "STRIDED_SLICE", [_I8_5D, "int32 5 c", "int32 5 c=1,2,2,2,2", "int32 5 c=1,1,1,1,1"],
        ["int8 1x2x2x2x2 q"], "StridedSliceOptions")),
    "slice rank 5": (5, True, _graph("SLICE", [_I8_5D, "int32 5 c", "int32 5 c=1,2,2,2,2"], ["int8 1x2x2x2x2 q"])),
    "transpose rank 6": (6, True, _graph(
        "TRANSPOSE", ["int8 1x2x1x2x1x2 q", "int32 6 c=0,1,2,3,4,5"], ["int8 1x2x1x2x1x2 q"])),
    "pad rank 5": (4, True, _graph(
        "PAD", ["int16 1x2x2x2x3 q", "int32 5x2 c=0,0,0,0,0,0,0,0,1,1"], ["int16 1x2x2x2x5 q"])),
    "gather batch_dims": (5, True, _graph(
        "GATHER", ["int8 2x4x3 q", "int32 2x2 c"], ["int8 2x2x3 q"], "GatherOptions", axis=1, batchDims=1)),
    "gather int16 indices": (6, True, _graph(
        "GATHER", ["float32 4x3", "int16 2 c"], ["float32 2x3"], "GatherOptions", axis=0)),
    "split int32": (3, True, _graph(
        "SPLIT", ["int32 - c=1", "int32 1x4"], ["int32 1x2"] * 2, "SplitOptions", numSplits=2)),
    "concatenation uint8": (1, True, _graph(
        "CONCATENATION", ["uint8 1x2 q"] * 2, [_U8], "ConcatenationOptions", axis=1)),
    "squeeze int16": (1, True, _graph(
        "SQUEEZE", ["int16 1x1x4 q"], [_I16], "SqueezeOptions", squeezeDims=[1])),
    "expand_dims int8": (1, True, _graph("EXPAND_DIMS", ["int8 1x4 q", "int32 - c=1"], ["int8 1x1x4 q"])),
    "batch_matmul hybrid asymmetric": (4, True, _graph(
        "BATCH_MATMUL", ["float32 1x2x4", "int8 1x4x3 q c"], ["float32 1x2x3"], "BatchMatMulOptions",
        asymmetricQuantizeInputs=True)),
    "softmax float16": (4, True, _graph(
        "SOFTMAX", ["float16 1x4"], ["float16 1x4"], "SoftmaxOptions", beta=1.0)),
}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_graph_version(name: str) -> None:
    expected, _, graph = SYNTHETIC[name]
    assert op_version(graph, graph.ops[0]) == expected


@pytest.mark.parametrize("name", [n for n, (_, exported, _) in SYNTHETIC.items() if exported])
def test_synthetic_graph_matches_litert_exporter(litert_exported: dict, name: str) -> None:
    data = _exported(litert_exported, name)
    assert _mismatches(data) == []
    assert read_tflite(data).ops[0].version == SYNTHETIC[name][0]


def test_ops_without_rules_keep_their_version() -> None:
    graph = _graph("CUMSUM", ["int8 1x4 q", "int32 - c"], ["int8 1x4 q"])
    graph.ops[0].version = 3
    assert op_version(graph, graph.ops[0]) == 3


def test_min_runtime_version_takes_the_newest_pair() -> None:
    graph = SYNTHETIC["conv grouped"][2].copy()
    assert min_runtime_version(graph) == "1.5.0"  # CONV_2D v1, before assign_versions
    assign_versions(graph)
    assert min_runtime_version(graph) == "2.9.0"  # CONV_2D v6
    graph.ops.append(Op("FULLY_CONNECTED", [0, 1], [2], version=11))
    assert min_runtime_version(graph) == "2.15.0"  # by number: as text "2.9.0" would win
    graph.ops = [Op("CUSTOM", [0], [2], custom_code="x"), Op("ADD", [0, 1], [2], version=99)]
    assert min_runtime_version(graph) == ""
