"""The op-model corpus (tests/opmodels.py) that the C interpreter is checked against: every quantizer yields
models, every builtin it must match LiteRT on is covered, and random_inputs fits each model's inputs. The
first run builds the corpus (about two minutes on 2 cores); later runs reuse it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from tests.opmodels import QUANTIZERS, OpModel, op_models, random_inputs, skipped

REQUIRED_OPS = {
    "QUANTIZE",
    "DEQUANTIZE",
    "ADD",
    "SUB",
    "MUL",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV",
    "FULLY_CONNECTED",
    "BATCH_MATMUL",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "MEAN",
    "SUM",
    "PAD",
    "PADV2",
    "RESHAPE",
    "SQUEEZE",
    "EXPAND_DIMS",
    "TRANSPOSE",
    "CONCATENATION",
    "SPLIT",
    "SPLIT_V",
    "STRIDED_SLICE",
    "SLICE",
    "GATHER",
    "SOFTMAX",
    "LOGISTIC",
    "TANH",
    "HARD_SWISH",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "LEAKY_RELU",
    "PRELU",
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
    "MAXIMUM",
    "MINIMUM",
    "SQUARED_DIFFERENCE",
    "SPACE_TO_DEPTH",
    "DEPTH_TO_SPACE",
    "PACK",
    "REDUCE_MAX",
    "REDUCE_MIN",
    "NEG",
    "ABS",
    "RSQRT",
    "SQRT",
    "EXP",
    "GELU",
    "ELU",
    "EMBEDDING_LOOKUP",
}
# LiteRT's BUILTIN_REF resolver registers no ELU kernel at all (float included), so no model can hold one.
UNAVAILABLE = {"ELU"}
# Ops whose models must take integer weights in int4.
INT4_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}

_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def models() -> list[OpModel]:
    return op_models()


def test_every_quantizer_yields_models(models: list[OpModel]) -> None:
    counts = Counter(m.quantizer for m in models)
    assert set(counts) == set(QUANTIZERS), f"no models from {set(QUANTIZERS) - set(counts)}; counts {counts}"
    assert {m.op for m in models if m.quantizer == "int4"} == INT4_OPS
    assert len({m.name for m in models}) == len(models)
    assert [m.name for m in op_models()] == [m.name for m in models], "the list must be the same on every call"


def test_every_required_op_is_covered(models: list[OpModel]) -> None:
    missing = REQUIRED_OPS - UNAVAILABLE - {m.op for m in models}
    assert not missing, f"no model for {sorted(missing)}; refusals: {skipped(ops=missing)}"


def test_filters(models: list[OpModel]) -> None:
    chosen = op_models(quantizers=["tflite_int8"], ops=["CONV_2D", "SOFTMAX"])
    assert chosen == [m for m in models if m.quantizer == "tflite_int8" and m.op in ("CONV_2D", "SOFTMAX")]
    with pytest.raises(ValueError, match="unknown quantizers"):
        op_models(quantizers=["float16"])


def test_models_hold_their_op_with_integer_tensors(models: list[OpModel]) -> None:
    for m in models:
        model = schema.ModelT.InitFromPackedBuf(m.path.read_bytes(), 0)
        graph = model.subgraphs[0]
        types = {
            _TYPES[graph.tensors[t].type]
            for op in graph.operators
            if _NAMES[
                max(
                    model.operatorCodes[op.opcodeIndex].builtinCode,
                    model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode,
                )
            ]
            == m.op
            for t in [*op.inputs, *op.outputs]
            if t >= 0
        }
        assert types & {"INT8", "INT16", "UINT8", "INT4"}, (m.name, types)
        expected = {"uint8": "UINT8", "int4": "INT4"}.get(m.quantizer)
        assert expected is None or expected in types, (m.name, types)


def test_random_inputs_match_input_details(models: list[OpModel]) -> None:
    dtypes: Counter[str] = Counter()
    for m in models:
        data = m.path.read_bytes()
        details = Interpreter(model_content=data).get_input_details()
        xs = random_inputs(data, seed=3)
        assert len(xs) == len(details), m.name
        for x, detail in zip(xs, details, strict=True):
            assert x.dtype == detail["dtype"] and x.shape == tuple(detail["shape"]), (m.name, x.dtype, x.shape)
            dtypes[x.dtype.name] += 1
            if x.dtype in (np.int8, np.int16, np.uint8) and x.size >= 2:
                assert x.max() == np.iinfo(x.dtype).max, m.name
        again = random_inputs(data, seed=3)
        assert all(np.array_equal(a, b) for a, b in zip(xs, again, strict=True)), m.name
    assert {"int8", "int16", "uint8", "float32", "int32"} <= set(dtypes), dtypes
