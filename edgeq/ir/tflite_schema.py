"""Name <-> enum tables for the TFLite schema module that ai-edge-litert ships (no vendored schema)."""

from __future__ import annotations

from ai_edge_litert import schema_py_generated as schema


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


OPERATOR_NAMES: dict[int, str] = _enum_names(schema.BuiltinOperator)
OPERATOR_CODES: dict[str, int] = {v: k for k, v in OPERATOR_NAMES.items()}
OPTIONS_NAMES: dict[int, str] = _enum_names(schema.BuiltinOptions)
OPTIONS_CODES: dict[str, int] = {v: k for k, v in OPTIONS_NAMES.items()}

TYPE_TO_DTYPE: dict[int, str] = {
    schema.TensorType.FLOAT32: "float32",
    schema.TensorType.FLOAT16: "float16",
    schema.TensorType.FLOAT64: "float64",
    schema.TensorType.INT32: "int32",
    schema.TensorType.UINT8: "uint8",
    schema.TensorType.INT64: "int64",
    schema.TensorType.STRING: "string",
    schema.TensorType.BOOL: "bool",
    schema.TensorType.INT16: "int16",
    schema.TensorType.INT8: "int8",
    schema.TensorType.UINT32: "uint32",
    schema.TensorType.UINT16: "uint16",
    schema.TensorType.UINT64: "uint64",
    schema.TensorType.INT4: "int4",
}
DTYPE_TO_TYPE: dict[str, int] = {v: k for k, v in TYPE_TO_DTYPE.items()}
FLOAT_DTYPES = frozenset({"float32", "float16", "float64"})
INTEGER_ACTIVATION_DTYPES = frozenset({"int8", "uint8", "int16"})
