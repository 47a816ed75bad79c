"""Read a .tflite flatbuffer into edgeq's Graph, treating the file as untrusted."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import ModelFormatError
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.ir.sparsity import densify, fold_densify, packed_values
from edgeq.ir.tflite_schema import OPERATOR_NAMES, OPTIONS_NAMES, TYPE_TO_DTYPE


def read_tflite(source: str | os.PathLike | bytes) -> Graph:
    """Parse the main subgraph of a TFLite model. Raises ModelFormatError for anything malformed."""
    where = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
    data = bytes(source) if isinstance(source, bytes | bytearray) else _read_file(Path(source))
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFormatError(
            f"{where}: not a TFLite flatbuffer (expected identifier 'TFL3' at byte 4, "
            f"got {data[4:8]!r} in a {len(data)}-byte file)"
        )
    root = int.from_bytes(data[0:4], "little")
    if root + 4 > len(data):
        raise ModelFormatError(f"{where}: root table offset {root} lies past the end of a {len(data)}-byte file")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # the generated reader raises whatever struct/numpy raise on bad offsets
        raise ModelFormatError(f"{where}: flatbuffer is truncated or corrupt ({type(e).__name__}: {e})") from e
    try:
        return _to_graph(model, data, where)
    except ModelFormatError:
        raise
    except Exception as e:
        raise ModelFormatError(f"{where}: inconsistent model ({type(e).__name__}: {e})") from e


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelFormatError(f"{path}: is a directory, expected a .tflite file") from None


def _to_graph(model: schema.ModelT, data: bytes, where: str) -> Graph:
    if not model.subgraphs:
        raise ModelFormatError(f"{where}: model has no subgraph")
    sub = model.subgraphs[0]
    buffers = model.buffers or []
    codes = model.operatorCodes or []
    tensors = [_tensor(t, i, buffers, data, where) for i, t in enumerate(sub.tensors or [])]
    for i, t in enumerate(sub.tensors or []):
        q = t.quantization
        if q is not None and q.detailsType == schema.QuantizationDetails.BlockwiseQuantization:
            tensors[i].quant = _blockwise(q, i, tensors, where)
    ops = [_op(o, i, codes, len(tensors), where) for i, o in enumerate(sub.operators or [])]
    inputs = _indices(sub.inputs, len(tensors), f"{where}: subgraph input")
    outputs = _indices(sub.outputs, len(tensors), f"{where}: subgraph output")
    graph = Graph(
        tensors=tensors,
        ops=ops,
        inputs=inputs,
        outputs=outputs,
        name=_text(sub.name),
        description=_text(model.description),
    )
    for md in model.metadata or []:
        if md.buffer < 0 or md.buffer >= len(buffers):
            raise ModelFormatError(
                f"{where}: metadata '{_text(md.name)}' refers to buffer {md.buffer} of {len(buffers)}"
            )
        graph.metadata[_text(md.name)] = _buffer_bytes(buffers[md.buffer], data, where)
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            graph.signature_key = _text(sig.signatureKey)
            graph.signature_inputs = {_text(m.name): int(m.tensorIndex) for m in sig.inputs or []}
            graph.signature_outputs = {_text(m.name): int(m.tensorIndex) for m in sig.outputs or []}
            break
    fold_densify(graph, where)
    return graph


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _indices(values, count: int, what: str) -> list[int]:
    out = [int(v) for v in (values if values is not None else [])]
    for v in out:
        if v < -1 or v >= count:
            raise ModelFormatError(f"{what} refers to tensor {v}, but the subgraph has {count} tensors")
    return out


def _tensor(t: schema.TensorT, index: int, buffers: list, data: bytes, where: str) -> Tensor:
    name = _text(t.name) or f"tensor_{index}"
    if t.type not in TYPE_TO_DTYPE:
        raise ModelFormatError(f'{where}: tensor {index} "{name}" has unknown type code {t.type}')
    dtype = TYPE_TO_DTYPE[t.type]
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    signature = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else None
    if t.buffer < 0 or t.buffer >= max(len(buffers), 1):
        raise ModelFormatError(f'{where}: tensor {index} "{name}" refers to buffer {t.buffer} of {len(buffers)}')
    raw = _buffer_bytes(buffers[t.buffer], data, where) if t.buffer > 0 and buffers else b""
    array = None
    what = f'{where}: tensor {index} "{name}"'
    if raw and t.sparsity is not None:  # sparse-stored weights are expanded: edgeq works on dense tensors
        array = densify(packed_values(raw, dtype, what), shape, t.sparsity, what)
    elif raw:
        array = _decode(raw, dtype, shape, what)
    quant = None
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale), dtype=np.int64)
        quant = Quantization(scale=np.asarray(q.scale, dtype=np.float32), zero_point=zp, axis=int(q.quantizedDimension))
    return Tensor(name=name, shape=shape, dtype=dtype, data=array, quant=quant, shape_signature=signature)


def _blockwise(q: schema.QuantizationParametersT, index: int, tensors: list[Tensor], where: str) -> Quantization:
    """A BlockwiseQuantization table read back into scales per block (flattened [out][in / block]) and zero
    points (0 when the table names no zero-point tensor), from the constant tensors it points at."""
    what = f'{where}: tensor {index} "{tensors[index].name}" blockwise quantization'
    details = q.details
    block = int(details.blockSize) if details is not None else 0
    shape = tensors[index].shape
    count = int(np.prod(shape)) if shape else 1
    if block <= 0 or len(shape) != 2 or shape[1] % block:
        raise ModelFormatError(f"{what}: block size {block} does not divide the rows of shape {list(shape)}")

    def values(t: int, kind: str) -> np.ndarray:
        if not 0 <= t < len(tensors) or tensors[t].data is None:
            raise ModelFormatError(f"{what}: {kind} tensor {t} is not a constant tensor of the subgraph")
        flat = np.asarray(tensors[t].data).reshape(-1)
        if flat.size * block != count:
            raise ModelFormatError(f"{what}: {kind} tensor {t} holds {flat.size} values, {count // block} blocks")
        return flat

    scale = values(int(details.scales), "scale").astype(np.float32)
    zp_index = int(details.zeroPoints)
    zero_point = values(zp_index, "zero-point").astype(np.int64) if zp_index >= 0 else np.zeros(scale.size, np.int64)
    return Quantization(scale=scale, zero_point=zero_point, axis=int(q.quantizedDimension), block_size=block)


def _buffer_bytes(buf: schema.BufferT, data: bytes, where: str) -> bytes:
    if buf.data is not None and len(buf.data) > 0:
        return np.asarray(buf.data, dtype=np.uint8).tobytes()
    if buf.offset > 1:  # large models keep buffers after the flatbuffer, addressed from the file start
        if buf.offset + buf.size > len(data):
            raise ModelFormatError(
                f"{where}: buffer at offset {buf.offset} of {buf.size} bytes runs past the file end ({len(data)})"
            )
        return data[buf.offset : buf.offset + buf.size]
    return b""


def _decode(raw: bytes, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    count = int(np.prod(shape)) if shape else 1
    if dtype == "int4":  # two values per byte, low nibble first
        packed = np.frombuffer(raw, dtype=np.uint8)
        low = (packed & 0x0F).astype(np.int8)
        high = (packed >> 4).astype(np.int8)
        values = np.stack([low, high], axis=-1).reshape(-1)[:count]
        values = np.where(values > 7, values - 16, values).astype(np.int8)
        return values.reshape(shape)
    if dtype == "string":
        return np.frombuffer(raw, dtype=np.uint8).copy()
    np_dtype = np.dtype(dtype)
    if len(raw) != count * np_dtype.itemsize:
        raise ModelFormatError(
            f"{what}: buffer holds {len(raw)} bytes, shape {list(shape)} of {dtype} needs {count * np_dtype.itemsize}"
        )
    return np.frombuffer(raw, dtype=np_dtype).reshape(shape).copy()


def _op(o: schema.OperatorT, index: int, codes: list, tensor_count: int, where: str) -> Op:
    if o.opcodeIndex < 0 or o.opcodeIndex >= len(codes):
        raise ModelFormatError(f"{where}: op {index} uses opcode index {o.opcodeIndex} of {len(codes)}")
    code = codes[o.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    kind = OPERATOR_NAMES.get(builtin, f"UNKNOWN_{builtin}")
    options: dict = {}
    if o.builtinOptions is not None:
        options = {k: _plain(v) for k, v in vars(o.builtinOptions).items()}
    custom = bytes(np.asarray(o.customOptions, dtype=np.uint8)) if o.customOptions is not None else b""
    return Op(
        kind=kind,
        inputs=_indices(o.inputs, tensor_count, f"{where}: op {index} ({kind}) input"),
        outputs=_indices(o.outputs, tensor_count, f"{where}: op {index} ({kind}) output"),
        options=options,
        options_type=OPTIONS_NAMES.get(int(o.builtinOptionsType), "NONE"),
        custom_code=_text(code.customCode),
        custom_options=custom,
        version=int(code.version),
    )


def _plain(value):
    """numpy vectors in options (e.g. squeezeDims, newShape) become lists so plans and copies stay simple."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
