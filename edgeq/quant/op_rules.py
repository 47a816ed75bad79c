"""What the TFLite quantization spec and LiteRT's integer kernels demand of each operator.

Sources: tflite/g3doc/performance/quantization_spec.md, the converter's operator_property.cc and the
kernels' Prepare() checks in google-ai-edge/LiteRT (tflite/kernels/*.cc).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpRule:
    """Quantization rule of one builtin operator.

    weights: input index -> per-channel axis of a constant weight (symmetric, zero point 0).
    bias: input index of the bias (int32, or int64 with int16 activations), scale in_scale * w_scale.
    same_encoding: input indices that must share the output's scale and zero point.
    fixed_int8 / fixed_int16: output (scale, zero_point) imposed by the kernel.
    int16: whether LiteRT has an int16x8 kernel for it.
    quantized_inputs: input indices carrying values (the others are shapes, axes, paddings: left as is).
    """

    quantized_inputs: tuple[int, ...] = (0,)
    weights: tuple[tuple[int, int], ...] = ()
    bias: int | None = None
    same_encoding: tuple[int, ...] = ()
    fixed_int8: tuple[float, int] | None = None
    fixed_int16: tuple[float, int] | None = None
    int16: bool = True
    symmetric_inputs: tuple[int, ...] = ()  # activation inputs whose zero point must be 0 (int8 too)


_SAME = OpRule(same_encoding=(0,))
_ELEMENTWISE = OpRule()
_BINARY = OpRule(quantized_inputs=(0, 1))

RULES: dict[str, OpRule] = {
    "CONV_2D": OpRule(quantized_inputs=(0, 1, 2), weights=((1, 0),), bias=2),
    "DEPTHWISE_CONV_2D": OpRule(quantized_inputs=(0, 1, 2), weights=((1, 3),), bias=2),
    # TRANSPOSE_CONV inputs: output_shape, weights, input, bias.
    "TRANSPOSE_CONV": OpRule(quantized_inputs=(2, 1, 3), weights=((1, 0),), bias=3),
    # A non-constant FC weight operand is quantized as an activation with zero point 0 (kernel check).
    "FULLY_CONNECTED": OpRule(quantized_inputs=(0, 1, 2), weights=((1, 0),), bias=2, symmetric_inputs=(1,)),
    "BATCH_MATMUL": _BINARY,
    "ADD": _BINARY,
    "SUB": _BINARY,
    "MUL": _BINARY,
    "SQUARED_DIFFERENCE": OpRule(quantized_inputs=(0, 1), int16=False),
    "MAXIMUM": OpRule(quantized_inputs=(0, 1), same_encoding=(0, 1)),
    "MINIMUM": OpRule(quantized_inputs=(0, 1), same_encoding=(0, 1)),
    "AVERAGE_POOL_2D": _SAME,
    "MAX_POOL_2D": _SAME,
    "MEAN": _ELEMENTWISE,
    "SUM": _SAME,
    "RESHAPE": _SAME,
    "SQUEEZE": _SAME,
    "EXPAND_DIMS": _SAME,
    "TRANSPOSE": _SAME,
    "STRIDED_SLICE": _SAME,
    "SLICE": _SAME,
    "PAD": _SAME,
    "PADV2": OpRule(quantized_inputs=(0, 2), same_encoding=(0, 2)),
    "RESIZE_BILINEAR": _SAME,
    "RESIZE_NEAREST_NEIGHBOR": _SAME,
    "SPACE_TO_DEPTH": OpRule(same_encoding=(0,), int16=False),  # LiteRT has no int16 kernel for these two
    "DEPTH_TO_SPACE": OpRule(same_encoding=(0,), int16=False),
    "GATHER": _SAME,
    # EMBEDDING_LOOKUP(ids, table): the int8 table's rows are copied, so table and output share one encoding.
    "EMBEDDING_LOOKUP": OpRule(quantized_inputs=(1,), same_encoding=(1,)),
    "SPLIT": OpRule(quantized_inputs=(1,), same_encoding=(1,)),
    "SPLIT_V": _SAME,
    "CONCATENATION": OpRule(quantized_inputs=(-1,), same_encoding=(-1,)),  # -1: every input
    "PACK": OpRule(quantized_inputs=(-1,), same_encoding=(-1,)),
    "SOFTMAX": OpRule(fixed_int8=(1 / 256, -128), fixed_int16=(1 / 32768, 0)),
    "LOGISTIC": OpRule(fixed_int8=(1 / 256, -128), fixed_int16=(1 / 32768, 0)),
    "TANH": OpRule(fixed_int8=(1 / 128, 0), fixed_int16=(1 / 32768, 0)),
    "HARD_SWISH": OpRule(int16=False),
    "RELU": _ELEMENTWISE,
    "RELU6": _ELEMENTWISE,
    "RELU_N1_TO_1": OpRule(int16=False),
    "LEAKY_RELU": _ELEMENTWISE,
    "PRELU": OpRule(quantized_inputs=(0, 1), int16=False),
    "REDUCE_MAX": _SAME,
    "REDUCE_MIN": _SAME,
    # LiteRT negates the stored integers, so input and output share one symmetric encoding (zero point 0).
    "NEG": OpRule(same_encoding=(0,), symmetric_inputs=(0,)),
    "ABS": _ELEMENTWISE,
    "RSQRT": _ELEMENTWISE,
    "SQRT": _ELEMENTWISE,
    "EXP": _ELEMENTWISE,
    "GELU": _ELEMENTWISE,
    "ELU": OpRule(int16=False),
}

# Ops whose output is an integer index or shape: they run on whatever their input is and need no plan.
SHAPE_OPS = frozenset({"SHAPE", "ARG_MAX", "ARG_MIN"})


# Per-channel axis of each weight operand, for the TFLite spec (conv dim 0, depthwise dim 3, FC dim 0).
def weight_axis(kind: str, input_index: int) -> int | None:
    rule = RULES.get(kind)
    if rule is None:
        return None
    return dict(rule.weights).get(input_index)
