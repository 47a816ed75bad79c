"""Operator versions and the minimum runtime, assigned the way the TFLite converter assigns them.

The runtime looks kernels up by (builtin, version), and the converter derives each version from the
operator's tensor types, quantization, options and ranks (LiteRT tflite/converter/tools/versioning:
GetOpSignature + GetBuiltinOperatorVersion in op_version.cc; runtime_version.cc maps each pair to
the first TFLite release that runs it). edgeq writes its own files, so it redoes both here. The
rules below follow op_version.cc branch for branch, quirks included, because "what the converter
writes" is what runtimes and delegates are tested against.

Three deliberate differences from the converter's output:
- The converter shares one operator code per builtin, so every op of a kind gets the highest version
  among them; edgeq's writer keys operator codes by version, so each op keeps its own.
- For 16x8 models TFLiteConverter (TF 2.21) still runs the deprecated quantizer, which stamps the
  int8 minimum versions of operator_property.cc instead (e.g. int16 SOFTMAX v2, not v3). edgeq
  follows op_version.cc, which the LiteRT exporter applies to the same graph.
- DEPTHWISE_CONV_2D with int8 activations and INT4 filters is written as version 3 (the int8 one), not
  7: LiteRT's reference resolver registers versions 1-6 only (register_ref.cc) although its kernel
  computes INT4 filters, and BUILTIN_REF is edgeq's bit-exact reference. Every runtime that parses an
  INT4 tensor registers version 3; one too old to know INT4 rejects the file whatever the version.

A FULLY_CONNECTED with blockwise INT4 weights (float input and output) matches no branch of op_version.cc
and is version 1, as the converter and ai-edge-quantizer write it; every registry takes 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeq.ir.graph import Graph, Op, Tensor


class _Signature:
    """The parts of an operator that GetOpSignature hands to the version rules."""

    def __init__(self, graph: Graph, op: Op) -> None:
        self.op = op
        self.inputs = [graph.tensors[i] if i >= 0 else None for i in op.inputs]
        self.outputs = [graph.tensors[i] if i >= 0 else None for i in op.outputs]
        self.has_options = op.options_type not in ("", "NONE")

    def input(self, i: int) -> Tensor | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def in_type(self, i: int) -> str:
        """The dtype of input i; "" for an absent optional input (kTfLiteNoType)."""
        t = self.input(i)
        return t.dtype if t is not None else ""

    def output(self, i: int) -> Tensor | None:
        return self.outputs[i] if i < len(self.outputs) else None

    def out_type(self, i: int) -> str:
        t = self.output(i)
        return t.dtype if t is not None else ""

    def rank(self, i: int) -> int:
        t = self.input(i)
        return len(t.shape) if t is not None else 0

    def types(self, input_type: str, weight_type: str, output_type: str) -> bool:
        """Inputs 0, 1 and output 0 have these dtypes: how op_version.cc tells int8, 16x8 and hybrid apart."""
        return (self.in_type(0), self.in_type(1), self.out_type(0)) == (input_type, weight_type, output_type)

    def option(self, name: str, default: int | bool = 0) -> int | bool:
        """A field of the builtin options. Without an options table the parser leaves the params
        zeroed, so the rules see 0 / False there, not the schema default."""
        if not self.has_options:
            return 0
        return self.op.options.get(name, default)

    def bias_type_set(self) -> bool:
        """`quantized_bias_type` as op_version.cc tests it: the parser converts the TensorType enum to a
        TfLiteType, and even the default FLOAT32 becomes kTfLiteFloat32 (1), so any options table counts."""
        return self.has_options

    def broadcast_above_4d(self) -> bool:
        """NeedBroadcastForBinaryInputs && GetInputMaxDims > 4: shapes 0 and 1 differ, some input is 5-D+."""
        if len(self.inputs) < 2:
            return False
        shapes = [t.shape if t is not None else () for t in self.inputs[:2]]
        return shapes[0] != shapes[1] and max(self.rank(i) for i in range(len(self.inputs))) > 4


def _scales(t: Tensor | None) -> int:
    return t.quant.scale.size if t is not None and t.quant is not None else 0


def _first_scale(t: Tensor | None) -> np.float32:
    """The first scale as the C++ float it is read into; 0 when there is none."""
    if t is None or t.quant is None or t.quant.scale.size == 0:
        return np.float32(0)
    return np.float32(t.quant.scale[0])


def _dim(t: Tensor | None, axis: int) -> int:
    return t.shape[axis] if t is not None and -len(t.shape) <= axis < len(t.shape) else -1


def _per_axis(t: Tensor | None) -> bool:
    """Several scales, one per slice of the quantized axis (the QUANTIZE / DEQUANTIZE per-channel test)."""
    n = _scales(t)
    return t is not None and t.quant is not None and n > 1 and n == _dim(t, t.quant.axis)


def _by_type(table: dict[str, int], index: int = 0) -> Callable[[_Signature], int]:
    """A rule that only looks at one input's dtype; every other dtype is version 1."""
    return lambda s: table.get(s.in_type(index), 1)


def _conv_2d(s: _Signature) -> int:
    if s.types("int16", "int8", "int16") and s.bias_type_set():
        return 8
    x, w = s.input(0), s.input(1)
    if _dim(x, 3) != _dim(w, 3) and min(s.rank(0), s.rank(1)) >= 4:
        return 6  # grouped convolution
    # op_version.cc's int16-weights branch (version 4) tests outputs.at(1), which CONV_2D does not have,
    # so the converter never yields 4; int16 x int16 convs fall through here.
    if s.types("int8", "int8", "int8"):
        return 3
    if s.types("int8", "int4", "int8"):
        return 7
    if s.types("float32", "int8", "float32"):
        return 5 if _dim(w, 0) > 0 and _scales(w) == _dim(w, 0) else 2
    return 1


def _depthwise_conv_2d(s: _Signature) -> int:
    # As for CONV_2D, the int16-weights branch (version 5) tests outputs.at(1) and never yields 5.
    w = s.input(1)
    if s.types("float32", "int8", "float32"):
        return 6 if _dim(w, 3) > 0 and _scales(w) == _dim(w, 3) else 4
    if s.types("int8", "int8", "int8"):
        return 3
    if s.types("int8", "int4", "int8"):
        return 3  # op_version.cc: 7, which BUILTIN_REF does not register (see the module docstring)
    if s.option("dilationWFactor", 1) != 1 or s.option("dilationHFactor", 1) != 1:
        return 2
    return 1


def _transpose_conv(s: _Signature) -> int:
    # Input 0 is the output shape (int32), so the 16x8 branch of op_version.cc (version 5) never fires.
    if s.types("int16", "int8", "int16") and s.bias_type_set():
        return 5
    if s.option("fusedActivationFunction"):
        return 4
    if len(s.inputs) == 4 and s.in_type(3):
        return 3
    return 2 if s.in_type(1) == "int8" else 1


def _fully_connected(s: _Signature) -> int:
    w = s.input(1)
    per_channel = _scales(w) > 0 and _dim(w, 0) == _scales(w)
    if s.types("int16", "int4", "int16"):
        return 13
    if s.types("float32", "int8", "float32") and per_channel:
        return 12
    if s.types("int16", "int8", "int16") and s.bias_type_set():
        return 11
    if s.types("int16", "int16", "int16"):
        return 7
    if len(s.inputs) == 2:
        return 6  # no bias input at all (not even -1)
    if s.option("keepNumDims"):
        return 5
    if s.types("int8", "int8", "int8"):
        return 4
    if s.types("int8", "int4", "int8"):
        return 10
    if s.types("float32", "int8", "float32"):
        return 9 if s.option("asymmetricQuantizeInputs") else 3
    return 2 if s.option("weightsFormat") == 1 else 1  # SHUFFLED4x16INT8 weights


def _batch_matmul(s: _Signature) -> int:
    if s.in_type(0) == "int16":
        return 3
    if s.in_type(0) == "int8":
        return 2
    if s.types("float32", "int8", "float32") and s.option("asymmetricQuantizeInputs"):
        return 4
    return 1


def _add(s: _Signature) -> int:
    x = s.input(0)
    if s.in_type(0) == "float16":
        return 6
    if s.in_type(0) == "int16" and (x is None or x.quant is None):
        return 5
    if s.in_type(0) == "int64":
        return 4
    if s.in_type(0) == "int16" and s.out_type(0) == "int16" and not s.option("potScaleInt16", True):
        return 3
    return 2 if s.in_type(0) == "int8" else 1


def _sub(s: _Signature) -> int:
    if s.in_type(0) == "int16" and s.out_type(0) == "int16" and not s.option("potScaleInt16", True):
        return 5
    if s.in_type(0) == "int64":
        return 4
    if s.broadcast_above_4d():
        return 3
    return 2 if s.in_type(0) == "int8" else 1


def _mul(s: _Signature) -> int:
    a, b = s.input(0), s.input(1)
    quantized = any(t is not None and t.quant is not None for t in (a, b))
    if s.in_type(0) == "float16":
        return 8
    if (s.in_type(0) == "int16" and not quantized) or s.in_type(0) == "uint32":
        return 7
    if s.in_type(0) == "int64":
        return 5
    if s.in_type(0) == "int16":
        return 4
    sa, sb, so = _first_scale(a), _first_scale(b), _first_scale(s.output(0))
    if sa and sb and so and sa * sb / so >= 1.0:
        return 3  # the rescale s1 * s2 / s_out is >= 1, computed in float32 as the C++ does
    return 2 if s.in_type(0) == "int8" else 1


def _pool_logistic_tanh(s: _Signature) -> int:
    if s.in_type(0) == "int16" and s.out_type(0) == "int16":
        return 3
    return 2 if s.in_type(0) == "int8" else 1


def _maximum_minimum(s: _Signature) -> int:
    if s.in_type(0) == "int16" and s.out_type(0) == "int16":
        return 4
    if s.broadcast_above_4d():
        return 3
    return 2 if s.in_type(0) == "int8" else 1


def _quantize(s: _Signature) -> int:
    if "int4" in (s.in_type(0), s.out_type(0)):
        return 4
    if _per_axis(s.output(0)):
        return 3
    return 2 if s.out_type(0) == "int16" else 1


def _dequantize(s: _Signature) -> int:
    if s.in_type(0) == "int4":
        return 6
    if s.in_type(0) in ("int16", "float16"):
        return 3
    if s.in_type(0) == "int8":
        return 5 if _per_axis(s.input(0)) else 2
    return 1


def _pad(s: _Signature) -> int:
    if s.in_type(0) == "bool":
        return 5
    if s.rank(0) > 4:
        return 4
    return {"int16": 3, "int8": 2}.get(s.in_type(0), 1)


def _transpose(s: _Signature) -> int:
    if s.in_type(0) == "float16":
        return 9
    if s.rank(0) > 6:
        return 8
    if s.in_type(0) == "int4":
        return 7
    if s.rank(0) > 5:
        return 6
    if s.in_type(0) == "int16":
        return 5
    if s.rank(0) > 4:
        return 4
    return {"bool": 3, "int8": 2}.get(s.in_type(0), 1)


def _strided_slice(s: _Signature) -> int:
    if s.option("offset"):
        return 8
    if s.in_type(0) == "uint32":
        return 7
    if s.option("ellipsisMask") or s.option("newAxisMask"):
        return 6
    if s.in_type(0) == "string":
        return 5
    if s.rank(0) > 4:
        return 4
    return {"bool": 3, "int8": 2}.get(s.in_type(0), 1)  # int16 stays at 1


def _slice(s: _Signature) -> int:
    ladder = {"float16": 8, "int4": 7, "uint32": 6}
    if s.in_type(0) in ladder:
        return ladder[s.in_type(0)]
    if s.rank(0) > 4:
        return 5
    return {"int16": 4, "string": 3, "int8": 2}.get(s.in_type(0), 1)


def _gather(s: _Signature) -> int:
    if s.in_type(0) == "int4":
        return 7
    if s.in_type(1) == "int16":
        return 6
    if s.option("batchDims"):
        return 5
    return {"int16": 4, "bool": 3, "int8": 2}.get(s.in_type(0), 1)


def _resize_bilinear(s: _Signature) -> int:
    if s.in_type(0) == "int16":
        return 4
    if s.option("halfPixelCenters"):
        return 3
    return 2 if s.in_type(0) == "int8" else 1


def _resize_nearest(s: _Signature) -> int:
    if s.in_type(0) == "int16":
        return 4
    if s.option("halfPixelCenters") or s.option("alignCorners"):
        return 3
    return 2 if s.in_type(0) == "int8" else 1


def _one(s: _Signature) -> int:
    """Ops with a single version so far: op_version.cc's default branch."""
    return 1


_RULES: dict[str, Callable[[_Signature], int]] = {
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "TRANSPOSE_CONV": _transpose_conv,
    "FULLY_CONNECTED": _fully_connected,
    "BATCH_MATMUL": _batch_matmul,
    "ADD": _add,
    "SUB": _sub,
    "MUL": _mul,
    "AVERAGE_POOL_2D": _pool_logistic_tanh,
    "MAX_POOL_2D": _pool_logistic_tanh,
    "MEAN": _by_type({"int16": 3, "int8": 2}),
    "SUM": _by_type({"int8": 2}),
    "RESHAPE": _one,
    "SQUEEZE": _by_type({"string": 2}),
    "EXPAND_DIMS": _one,
    "CONCATENATION": _by_type({"float16": 6, "int4": 5, "uint32": 4, "int16": 3, "int8": 2}),
    "PAD": _pad,
    "PADV2": _pad,
    "TRANSPOSE": _transpose,
    "STRIDED_SLICE": _strided_slice,
    "SLICE": _slice,
    "SPLIT": _by_type({"int16": 4, "int32": 3, "int8": 2}, index=1),  # input 0 is the axis
    "GATHER": _gather,
    "SOFTMAX": _by_type({"float16": 4, "int16": 3, "int8": 2}),
    "LOGISTIC": _pool_logistic_tanh,
    "TANH": _pool_logistic_tanh,
    "HARD_SWISH": _one,
    "RELU": _by_type({"int16": 3, "int8": 2, "uint8": 2}),
    "RELU6": _by_type({"int16": 3, "int8": 2}),
    "LEAKY_RELU": _by_type({"int16": 2}),
    "PRELU": _one,
    "RESIZE_BILINEAR": _resize_bilinear,
    "RESIZE_NEAREST_NEIGHBOR": _resize_nearest,
    "MAXIMUM": _maximum_minimum,
    "MINIMUM": _maximum_minimum,
}


def op_version(graph: Graph, op: Op) -> int:
    """The version the converter would write for `op`; ops without a rule here keep `op.version`."""
    rule = _RULES.get(op.kind)
    return rule(_Signature(graph, op)) if rule is not None else op.version


def assign_versions(graph: Graph) -> None:
    """Set every op's version in place, after lowering changed its types."""
    for op in graph.ops:
        op.version = op_version(graph, op)


def min_runtime_version(graph: Graph) -> str:
    """The oldest TFLite runtime that has every (op, version) in the graph, for the "min_runtime_version"
    metadata; "" when no op is in the table (the converter then writes an empty string too)."""
    best = ""
    for op in graph.ops:
        releases = _RUNTIME_VERSIONS.get(op.kind, ())
        release = releases[op.version - 1] if 1 <= op.version <= len(releases) else ""
        if release and _release_key(release) > _release_key(best):
            best = release
    return best


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split(".")) if release else ()


# runtime_version.cc's table: for each builtin, the first release of versions 1, 2, ... ("" when a
# version never shipped: BROADCAST_TO v1 was rolled back).
_RUNTIME_VERSIONS: dict[str, tuple[str, ...]] = {
    "ABS": ("1.13.0", "2.4.0", "2.5.0", "2.6.0", "2.12.0"),
    "ADD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.13.0", "2.23.0"),
    "ADD_N": ("1.14.0",),
    "ARG_MAX": ("1.9.0", "1.14.0", "2.9.0"),
    "ARG_MIN": ("1.9.0", "1.14.0", "2.9.0"),
    "ASSIGN_VARIABLE": ("2.6.0",),
    "ATAN2": ("2.10.0",),
    "AVERAGE_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "BATCH_MATMUL": ("2.3.0", "2.3.0", "2.4.0", "2.5.0"),
    "BATCH_TO_SPACE_ND": ("1.6.0", "1.14.0", "2.3.0", "2.12.0"),
    "BIDIRECTIONAL_SEQUENCE_LSTM": ("1.14.0", "1.14.0", "1.14.0"),
    "BIDIRECTIONAL_SEQUENCE_RNN": ("1.14.0", "1.14.0", "2.3.0"),
    "BITCAST": ("2.13.0",),
    "BITWISE_XOR": ("2.13.0",),
    "BROADCAST_ARGS": ("2.6.0",),
    "BROADCAST_TO": ("", "2.5.0", "2.5.0", "2.23.0"),
    "BUCKETIZE": ("2.8.0",),
    "CALL_ONCE": ("2.5.0",),
    "CAST": ("1.5.0", "2.7.0", "2.8.0", "2.9.0", "2.12.0", "2.15.0", "2.17.0", "2.21.0", "2.23.0"),
    "CEIL": ("1.14.0",),
    "COMPLEX_ABS": ("2.5.0",),
    "CONCATENATION": ("1.5.0", "1.14.0", "2.3.0", "2.14.0", "2.21.0", "2.23.0", "2.23.0"),
    "CONV_2D": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0", "2.9.0", "2.11.0", "2.15.0"),
    "CONV_3D": ("2.5.0",),
    "CONV_3D_TRANSPOSE": ("2.6.0",),
    "COS": ("1.14.0", "2.23.0"),
    "CUMSUM": ("2.4.0",),
    "DENSIFY": ("2.2.0",),
    "DEPTHWISE_CONV_2D": ("1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0", "2.11.0"),
    "DEPTH_TO_SPACE": ("2.1.0", "2.5.0"),
    "DEQUANTIZE": ("1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0", "2.18.0", "2.21.0", "2.22.0", "2.23.0"),
    "DILATE": ("2.15.0",),
    "DIV": ("1.6.0", "2.3.0"),
    "DYNAMIC_UPDATE_SLICE": ("2.9.0", "2.17.0", "2.19.0", "2.20.0", "2.21.0", "2.22.0"),
    "ELU": ("1.14.0",),
    "EMBEDDING_LOOKUP": ("1.13.0", "1.14.0", "1.14.0", "2.18.0", "2.21.0"),
    "EMBEDDING_LOOKUP_SPARSE": ("1.5.0",),
    "EQUAL": ("1.14.0", "1.14.0", "2.3.0", "2.13.0", "2.21.0"),
    "EXP": ("1.7.0", "2.12.0"),
    "EXPAND_DIMS": ("1.10.0",),
    "FAKE_QUANT": ("1.5.0", "1.10.0"),
    "FILL": ("1.13.0", "2.3.0", "2.5.0", "2.12.0", "2.23.0"),
    "FLOOR": ("1.9.0",),
    "FLOOR_DIV": ("1.14.0", "1.14.0", "2.13.0"),
    "FLOOR_MOD": ("1.13.0", "2.13.0"),
    "FULLY_CONNECTED": (
        "1.5.0",
        "1.10.0",
        "1.14.0",
        "1.14.0",
        "2.0.0",
        "2.1.0",
        "2.3.0",
        "2.3.0",
        "2.3.0",
        "2.11.0",
        "2.15.0",
        "2.17.0",
        "2.18.0",
        "2.21.0",
    ),
    "GATHER": ("1.6.0", "1.14.0", "1.15.0", "2.4.0", "2.5.0", "2.13.0", "2.15.0", "2.23.0"),
    "GATHER_ND": ("1.14.0", "2.3.0", "2.5.0", "2.13.0", "2.16.0", "2.23.0"),
    "GELU": ("2.9.0", "2.9.0", "2.23.0"),
    "GREATER": ("1.14.0", "1.14.0"),
    "GREATER_EQUAL": ("1.14.0", "1.14.0", "2.13.0"),
    "HARD_SWISH": ("1.15.0",),
    "HASHTABLE": ("2.5.0",),
    "HASHTABLE_FIND": ("2.5.0",),
    "HASHTABLE_IMPORT": ("2.5.0",),
    "HASHTABLE_LOOKUP": ("1.5.0",),
    "HASHTABLE_SIZE": ("2.5.0",),
    "IF": ("1.15.0",),
    "IMAG": ("2.5.0",),
    "L2_NORMALIZATION": ("1.5.0", "1.14.0"),
    "L2_POOL_2D": ("1.5.0",),
    "LEAKY_RELU": ("1.13.1", "2.3.0"),
    "LESS": ("1.14.0", "1.14.0", "2.13.0"),
    "LESS_EQUAL": ("1.14.0", "1.14.0"),
    "LOCAL_RESPONSE_NORMALIZATION": ("1.5.0",),
    "LOG": ("1.14.0", "2.15.0"),
    "LOGICAL_AND": ("1.11.0",),
    "LOGICAL_NOT": ("1.11.0",),
    "LOGICAL_OR": ("1.11.0",),
    "LOGISTIC": ("1.14.0", "1.14.0", "2.3.0"),
    "LOG_SOFTMAX": ("1.14.0", "1.14.0"),
    "LSH_PROJECTION": ("1.5.0",),
    "LSTM": ("1.7.0", "1.10.0", "1.14.0", "2.3.0"),
    "MATRIX_DIAG": ("1.14.0",),
    "MATRIX_SET_DIAG": ("1.14.0",),
    "MAXIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MAX_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "MEAN": ("1.6.0", "1.14.0", "2.4.0"),
    "MINIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MIRROR_PAD": ("1.13.1", "2.3.0", "2.12.0"),
    "MUL": ("1.5.0", "1.14.0", "1.15.0", "2.3.0", "2.6.0", "2.11.0", "2.13.0", "2.23.0"),
    "MULTINOMIAL": ("2.8.0",),
    "NEG": ("1.9.0",),
    "NON_MAX_SUPPRESSION_V4": ("2.1.0",),
    "NON_MAX_SUPPRESSION_V5": ("2.1.0",),
    "NOT_EQUAL": ("1.14.0", "1.14.0", "2.3.0", "2.21.0"),
    "ONE_HOT": ("1.11.0",),
    "PACK": ("1.11.0", "1.14.0", "2.3.0", "2.13.0", "2.23.0"),
    "PAD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0", "2.23.0"),
    "PADV2": ("1.9.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0", "2.23.0"),
    "POW": ("1.10.0",),
    "PRELU": ("1.8.0",),
    "QUANTIZE": ("1.14.0", "1.15.0", "2.7.0", "2.21.0", "2.21.0", "2.21.0"),
    "RANDOM_STANDARD_NORMAL": ("2.8.0",),
    "RANDOM_UNIFORM": ("2.8.0",),
    "RANGE": ("1.13.0", "2.14.0"),
    "RANK": ("1.14.0",),
    "READ_VARIABLE": ("2.6.0",),
    "REAL": ("2.5.0",),
    "REDUCE_ALL": ("2.6.0",),
    "REDUCE_ANY": ("1.11.0",),
    "REDUCE_MAX": ("1.11.0", "1.14.0", "2.5.0"),
    "REDUCE_MIN": ("1.11.0", "1.14.0", "2.5.0"),
    "REDUCE_PROD": ("1.11.0", "2.6.0"),
    "REDUCE_WINDOW": ("2.15.0",),
    "RELU": ("1.5.0", "2.1.0", "2.5.0"),
    "RELU6": ("1.5.0", "1.14.0", "2.5.0"),
    "RELU_0_TO_1": ("2.10.0",),
    "RELU_N1_TO_1": ("1.5.0",),
    "RESHAPE": ("1.5.0",),
    "RESIZE_BILINEAR": ("1.7.0", "1.14.0", "2.2.0", "2.5.0"),
    "RESIZE_NEAREST_NEIGHBOR": ("1.13.1", "1.14.0", "2.3.0", "2.4.0"),
    "REVERSE_SEQUENCE": ("1.14.0",),
    "REVERSE_V2": ("1.14.0", "2.2.0", "2.5.0", "2.23.0"),
    "RFFT2D": ("2.5.0",),
    "RIGHT_SHIFT": ("2.13.0",),
    "RNN": ("1.5.0", "1.14.0", "2.3.0"),
    "ROUND": ("1.14.0",),
    "RSQRT": ("1.10.0", "2.5.0", "2.15.0"),
    "SCATTER_ND": ("2.1.0",),
    "SEGMENT_SUM": ("2.2.0",),
    "SELECT": ("1.14.0", "1.14.0", "2.12.0", "2.12.0"),
    "SELECT_V2": ("2.2.0", "2.12.0"),
    "SHAPE": ("1.10.0",),
    "SIGN": ("2.11.0", "2.12.0"),
    "SIN": ("1.9.0", "2.23.0"),
    "SKIP_GRAM": ("1.5.0",),
    "SLICE": ("1.14.0", "1.14.0", "1.14.0", "2.4.0", "2.5.0", "2.14.0", "2.21.0", "2.23.0"),
    "SOFTMAX": ("1.5.0", "1.14.0", "2.3.0", "2.23.0"),
    "SPACE_TO_BATCH_ND": ("1.6.0", "1.14.0", "2.3.0", "2.12.0"),
    "SPACE_TO_DEPTH": ("1.5.0", "1.14.0"),
    "SPARSE_TO_DENSE": ("1.9.0", "1.14.0", "1.15.0"),
    "SPLIT": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.23.0"),
    "SPLIT_V": ("1.13.1", "2.3.0", "2.23.0"),
    "SQRT": ("1.10.0", "2.21.0"),
    "SQUARE": ("1.12.0",),
    "SQUARED_DIFFERENCE": ("1.13.1", "2.5.0"),
    "SQUEEZE": ("1.6.0", "2.5.0"),
    "STABLEHLO_ADD": ("2.16.0",),
    "STABLEHLO_AND": ("2.17.0",),
    "STABLEHLO_CASE": ("2.17.0",),
    "STABLEHLO_CBRT": ("2.17.0",),
    "STABLEHLO_COMPOSITE": ("2.17.0",),
    "STABLEHLO_GATHER": ("2.16.0",),
    "STABLEHLO_MAXIMUM": ("2.16.0",),
    "STABLEHLO_MINIMUM": ("2.16.0",),
    "STABLEHLO_MULTIPLY": ("2.16.0",),
    "STABLEHLO_PAD": ("2.16.0",),
    "STABLEHLO_REDUCE_WINDOW": ("2.16.0",),
    "STABLEHLO_RNG_BIT_GENERATOR": ("2.15.0",),
    "STABLEHLO_SCATTER": ("2.15.0",),
    "STABLEHLO_SHIFT_LEFT": ("2.17.0",),
    "STRIDED_SLICE": ("1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0", "2.14.0", "2.14.0"),
    "SUB": ("1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"),
    "SUM": ("1.10.0", "1.15.0"),
    "SVDF": ("1.5.0", "1.14.0", "2.2.0", "2.3.0"),
    "TANH": ("1.14.0", "1.14.0", "2.3.0"),
    "TILE": ("1.10.1", "2.2.0", "2.8.0"),
    "TOPK_V2": ("1.7.0", "1.14.0", "2.13.0"),
    "TRANSPOSE": ("1.6.0", "1.14.0", "1.15.0", "2.3.0", "2.4.0", "2.12.0", "2.14.4", "2.22.0", "2.23.0"),
    "TRANSPOSE_CONV": ("1.9.0", "2.2.0", "2.3.0", "2.13.0", "2.15.0"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("1.13.1", "1.14.0", "2.3.0", "2.12.0"),
    "UNIDIRECTIONAL_SEQUENCE_RNN": ("1.14.0", "1.14.0", "2.3.0"),
    "UNIQUE": ("1.14.0",),
    "UNPACK": ("1.11.0", "1.14.0", "2.2.0", "2.3.0", "2.22.0", "2.23.0"),
    "UNSORTED_SEGMENT_MAX": ("2.10.0",),
    "UNSORTED_SEGMENT_MIN": ("2.11.0",),
    "UNSORTED_SEGMENT_PROD": ("2.10.0",),
    "UNSORTED_SEGMENT_SUM": ("2.10.0",),
    "VAR_HANDLE": ("2.6.0",),
    "WHERE": ("1.14.0", "2.8.0"),
    "WHILE": ("1.15.0",),
    "ZEROS_LIKE": ("1.12.0",),
}
