"""edgeq's own TFLite flatbuffer writer: Graph in, deterministic bytes out."""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import PlanError
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.ir.tflite_schema import DTYPE_TO_TYPE, OPERATOR_CODES, OPTIONS_CODES

_SCHEMA_VERSION = 3
_BUFFER_ALIGNMENT = 16


def write_tflite(graph: Graph, description: str = "edgeq") -> bytes:
    """Serialize a graph. Same graph, same bytes: nothing here depends on time, dict order or ids."""
    model = schema.ModelT()
    model.version = _SCHEMA_VERSION
    model.description = description
    model.buffers = [schema.BufferT()]  # buffer 0 is the empty sentinel, by convention
    opcode_index: dict[tuple[str, str, int], int] = {}
    model.operatorCodes = []
    sub = schema.SubGraphT()
    sub.name = graph.name or "main"
    sub.tensors = [_tensor(t, model.buffers) for t in graph.tensors]
    for i, t in enumerate(graph.tensors):  # blockwise scales live in fp16 tensors after the graph's own
        if t.quant is not None and t.quant.block_size:
            sub.tensors[i].quantization = _blockwise(t, len(sub.tensors))
            sub.tensors.append(_block_scales(t, model.buffers))
    sub.inputs = list(graph.inputs)
    sub.outputs = list(graph.outputs)
    sub.operators = []
    for op in graph.ops:
        key = (op.kind, op.custom_code, op.version)
        if key not in opcode_index:
            opcode_index[key] = len(model.operatorCodes)
            model.operatorCodes.append(_opcode(op))
        sub.operators.append(_operator(op, opcode_index[key]))
    model.subgraphs = [sub]
    model.metadata = []
    for name, payload in graph.metadata.items():
        buf = _AlignedBufferT()
        buf.data = np.frombuffer(payload, dtype=np.uint8)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers)
        model.buffers.append(buf)
        model.metadata.append(entry)
    if graph.signature_key or graph.signature_inputs:
        sig = schema.SignatureDefT()
        sig.signatureKey = graph.signature_key or "serving_default"
        sig.subgraphIndex = 0
        sig.inputs = [_tensor_map(n, i) for n, i in graph.signature_inputs.items()]
        sig.outputs = [_tensor_map(n, i) for n, i in graph.signature_outputs.items()]
        model.signatureDefs = [sig]
    builder = flatbuffers.Builder(1024 + sum(t.data.nbytes for t in graph.tensors if t.data is not None))
    builder.ForceDefaults(False)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _AlignedBufferT(schema.BufferT):
    """A buffer whose bytes start on a 16-byte boundary, as TFLiteConverter writes them: kernels read
    weights in place, and int32/float data must not be misaligned on strict-alignment CPUs."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        payload = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
        builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
        builder.head -= len(payload)
        builder.Bytes[builder.head : builder.head + len(payload)] = payload
        builder.vectorNumElems = len(payload)
        data = builder.EndVector()
        schema.BufferStart(builder)
        schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def _tensor_map(name: str, index: int) -> schema.TensorMapT:
    m = schema.TensorMapT()
    m.name = name
    m.tensorIndex = index
    return m


def _tensor(t: Tensor, buffers: list) -> schema.TensorT:
    out = schema.TensorT()
    out.name = t.name
    out.shape = list(t.shape)
    if t.shape_signature is not None and any(d < 0 for d in t.shape_signature):
        out.shapeSignature = list(t.shape_signature)
    if t.dtype not in DTYPE_TO_TYPE:
        raise PlanError(f'tensor "{t.name}": dtype {t.dtype} cannot be written to TFLite')
    out.type = DTYPE_TO_TYPE[t.dtype]
    out.buffer = 0
    if t.data is not None:
        buf = _AlignedBufferT()
        buf.data = _encode(t)
        out.buffer = len(buffers)
        buffers.append(buf)
    if t.quant is not None and not t.quant.block_size:
        q = schema.QuantizationParametersT()
        q.scale = [float(s) for s in t.quant.scale]
        q.zeroPoint = [int(z) for z in t.quant.zero_point]
        q.quantizedDimension = int(t.quant.axis)
        out.quantization = q
    return out


def _blockwise(t: Tensor, scales_index: int) -> schema.QuantizationParametersT:
    """A BlockwiseQuantization table as LiteRT reads it (interpreter_builder.cc) and ai-edge-quantizer
    writes it: scales in the fp16 tensor `scales_index`, no zero-point tensor (-1: zero), no scale list."""
    assert t.quant is not None
    block = int(t.quant.block_size)
    tiles = len(t.shape) == 2 and t.shape[1] % block == 0 and t.quant.scale.size * block == t.shape[0] * t.shape[1]
    if t.dtype != "int4" or not tiles:
        raise PlanError(
            f'tensor "{t.name}": blockwise quantization needs a 2-D int4 weight whose rows split into blocks of '
            f"{block} with one scale each; got {t.dtype} {list(t.shape)} with {t.quant.scale.size} scales"
        )
    if np.any(t.quant.zero_point != 0):
        raise PlanError(f'tensor "{t.name}": blockwise quantization is symmetric, zero points must be 0')
    details = schema.BlockwiseQuantizationT()
    details.scales, details.zeroPoints, details.blockSize = scales_index, -1, block
    q = schema.QuantizationParametersT()
    q.detailsType = schema.QuantizationDetails.BlockwiseQuantization
    q.details = details
    q.quantizedDimension = int(t.quant.axis)
    return q


def _block_scales(t: Tensor, buffers: list) -> schema.TensorT:
    """The fp16 scales tensor [out, in / block] of a blockwise weight; refuses scales fp16 would change."""
    assert t.quant is not None
    scales = np.asarray(t.quant.scale, dtype=np.float32)
    half = scales.astype(np.float16)
    if not np.array_equal(half.astype(np.float32), scales) or np.any(half <= 0):
        raise PlanError(f'tensor "{t.name}": blockwise scales must be positive fp16 values, the plan\'s are not')
    shape = (t.shape[0], t.shape[1] // int(t.quant.block_size))
    return _tensor(Tensor(name=f"{t.name}_scales", shape=shape, dtype="float16", data=half.reshape(shape)), buffers)


def _encode(t: Tensor) -> np.ndarray:
    data = t.data
    assert data is not None
    if t.dtype == "int4":
        flat = (np.asarray(data, dtype=np.int8).reshape(-1) & 0x0F).astype(np.uint8)
        if flat.size % 2:
            flat = np.concatenate([flat, np.zeros(1, np.uint8)])
        return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)
    if t.dtype == "string":
        return np.ascontiguousarray(data, dtype=np.uint8)
    arr = np.ascontiguousarray(data, dtype=np.dtype(t.dtype))
    expected = int(np.prod(t.shape)) if t.shape else arr.size
    if arr.size != expected:
        raise PlanError(f'tensor "{t.name}": data has {arr.size} values, shape {list(t.shape)} needs another count')
    return arr.reshape(-1).view(np.uint8)


def _opcode(op: Op) -> schema.OperatorCodeT:
    code = schema.OperatorCodeT()
    if op.kind not in OPERATOR_CODES:
        raise PlanError(f"operator {op.kind} is not in the TFLite schema")
    builtin = OPERATOR_CODES[op.kind]
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = op.version
    if op.kind == "CUSTOM":
        code.customCode = op.custom_code
    return code


def _operator(op: Op, opcode_index: int) -> schema.OperatorT:
    out = schema.OperatorT()
    out.opcodeIndex = opcode_index
    out.inputs = list(op.inputs)
    out.outputs = list(op.outputs)
    if op.options_type and op.options_type != "NONE":
        cls = getattr(schema, f"{op.options_type}T")
        options = cls()
        for key, value in op.options.items():
            setattr(options, key, value)
        out.builtinOptionsType = OPTIONS_CODES[op.options_type]
        out.builtinOptions = options
    if op.custom_options:
        out.customOptions = np.frombuffer(op.custom_options, dtype=np.uint8)
    return out
