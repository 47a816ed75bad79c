"""Render a QuantPlan onto a float graph: the integer graph a .tflite file holds.

The plan decides every encoding; this module only applies it: integer constants, quantization
parameters, and QUANTIZE / DEQUANTIZE where float meets integer (model I/O, ops left float, and ops
reading a hybrid weight, which LiteRT computes with float activations: FULLY_CONNECTED with blockwise
INT4 weights, EMBEDDING_LOOKUP with a table quantized per row or per block). Convolutions under weight-only
schemes read their INT4 weight through DEQUANTIZE (LiteRT has no conv taking INT4 weights with float
activations): per channel as it is, per block as an INT4 [blocks, block_size] constant quantized per row
(one scale per block), DEQUANTIZEd and RESHAPEd back to the conv's layout.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgeq.errors import PlanError
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.quant.plan import Encoding, QuantPlan
from edgeq.quant.schemes import quantize_array, storage_dtype

_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _quant(enc: Encoding) -> Quantization:
    return Quantization(scale=enc.scales(), zero_point=enc.zero_points(), axis=enc.axis, block_size=enc.block_size)


def _hybrid_weights(graph: Graph, plan: QuantPlan) -> dict[int, int]:
    """Op index -> input slot of the integer weight it reads with float activations: a blockwise weight
    (LiteRT's blockwise FULLY_CONNECTED) or a table encoded per row or per block (EMBEDDING_LOOKUP's hybrid
    path dequantizes rows to float; its per-tensor int8 path copies rows into an int8 output instead)."""
    found = {}
    for i, op in enumerate(graph.ops):
        for pos, t in enumerate(op.inputs):
            enc = plan.tensors.get(graph.tensors[t].name) if t >= 0 else None
            if enc is None:
                continue
            table = op.kind == "EMBEDDING_LOOKUP" and pos == 1 and (enc.per_channel or enc.dtype == "int4")
            if (enc.block_size and op.kind not in _CONVOLUTIONS) or table:
                found[i] = pos
    return found


def _dequantized_weights(graph: Graph, plan: QuantPlan) -> dict[int, int]:
    """Op index -> weight slot of each convolution that computes in float on a DEQUANTIZEd INT4 weight: its
    weight is encoded, its input is not (weight-only schemes)."""
    found = {}
    for i, op in enumerate(graph.ops):
        if op.kind in _CONVOLUTIONS and len(op.inputs) > 1 and min(op.inputs[:2]) >= 0:
            x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
            if w.is_constant and w.name in plan.tensors and x.name not in plan.tensors:
                found[i] = 1
    return found


def lower_to_tflite(graph: Graph, plan: QuantPlan) -> Graph:
    """A new graph with the plan applied; `graph` is left untouched."""
    out = graph.copy()
    by_name = {t.name: i for i, t in enumerate(out.tensors)}
    missing = [n for n in plan.tensors if n not in by_name]
    if missing:
        raise PlanError(f"plan names {len(missing)} tensors the graph does not have, e.g. {missing[:3]}")
    # Ops computing in float: those the plan leaves float, and those reading a hybrid weight (which alone is
    # integer). Tensors stored as integers in the file: everything the plan encodes, except graph I/O kept
    # float and values produced by float-computing ops (they get a QUANTIZE after them instead).
    hybrid = _hybrid_weights(out, plan)
    dequantized = _dequantized_weights(out, plan)
    float_ops = {f.index for f in plan.float_ops} | set(hybrid) | set(dequantized)
    block_rows = {out.ops[i].inputs[pos] for i, pos in dequantized.items()
                  if plan.tensors[out.tensors[out.ops[i].inputs[pos]].name].block_size}
    producers = out.producers()
    float_io = plan.io_dtype == "float32"
    native_float = set()
    for t in range(len(out.tensors)):
        if out.tensors[t].name not in plan.tensors:
            continue
        if producers.get(t) in float_ops or (float_io and t in out.inputs):
            native_float.add(t)
    # Encode every planned tensor in place (constants get integer data).
    for name, enc in plan.tensors.items():
        t = by_name[name]
        if t in native_float:
            continue
        _encode_tensor(out.tensors[t], enc)
        if t in block_rows:
            _as_block_rows(out.tensors[t], enc)

    converted: dict[tuple[int, str], int] = {}
    new_ops: list[Op] = []

    def convert(t: int, to_integer: bool) -> int:
        """A tensor holding `t` in the other representation, made once and reused."""
        key = (t, "q" if to_integer else "f")
        if key not in converted:
            src = out.tensors[t]
            enc = plan.tensors[src.name]
            if to_integer:
                dst = Tensor(
                    name=f"{src.name}/quantized",
                    shape=src.shape,
                    dtype=enc.dtype,
                    quant=_quant(enc),
                    shape_signature=src.shape_signature,
                )
                kind = "QUANTIZE"
            else:
                dst = Tensor(
                    name=f"{src.name}/dequantized",
                    shape=src.shape,
                    dtype="float32",
                    shape_signature=src.shape_signature,
                )
                kind = "DEQUANTIZE"
            converted[key] = out.add_tensor(dst)
            new_ops.append(Op(kind=kind, inputs=[t], outputs=[converted[key]]))
        return converted[key]

    requantize = {(r.op, r.input): r.target(plan) for r in plan.requantize}
    for i, op in enumerate(out.ops):
        wants_float = i in float_ops
        inputs = list(op.inputs)
        for pos, t in enumerate(inputs):
            if (i, pos) in requantize:
                inputs[pos] = _requantized(out, new_ops, t, requantize[(i, pos)], i)
        for pos, t in enumerate(inputs):
            if dequantized.get(i) == pos and t in block_rows:
                key = (t, "blocks")  # a weight shared by several convolutions is unpacked once
                if key not in converted:
                    converted[key] = _dequantized_blocks(out, new_ops, t, graph.tensors[t].shape)
                inputs[pos] = converted[key]
                continue
            if t < 0 or out.tensors[t].name not in plan.tensors or hybrid.get(i) == pos:
                continue  # not encoded, or a hybrid weight: the op reads its integers as they are
            is_float = t in native_float
            if wants_float and not is_float:
                inputs[pos] = convert(t, to_integer=False)
            elif not wants_float and is_float:
                inputs[pos] = convert(t, to_integer=True)
        options = op.options
        if not wants_float and op.kind in ("ADD", "SUB") and _encoded_dtype(out, plan, op.outputs[0]) == "int16":
            # The schema's default (true) selects LiteRT's power-of-two int16 path, which needs POT scales and
            # refuses general ones at prepare; the general int16 path is what the plan's scales need.
            options = {**options, "potScaleInt16": False}
            op = dataclasses.replace(op, options_type=op.options_type or f"{op.kind.title()}Options")
        new_ops.append(dataclasses.replace(op, inputs=inputs, options=options))

    # Graph outputs: with float I/O an integer output gets a DEQUANTIZE whose result takes over the
    # original name (signatures and users see the same names as the float model).
    outputs = list(out.outputs)
    for k, t in enumerate(outputs):
        if out.tensors[t].name not in plan.tensors:
            continue
        if float_io and t not in native_float:
            outputs[k] = _swap_in_dequantize(out, new_ops, t)
        elif not float_io and t in native_float:
            outputs[k] = convert(t, to_integer=True)
    _retarget_signature(out, dict(zip(out.outputs, outputs, strict=True)))
    out.outputs = outputs
    out.ops = new_ops
    return out


def _as_block_rows(tensor: Tensor, enc: Encoding) -> None:
    """A blockwise-encoded convolution weight (integers already in place) as LiteRT's DEQUANTIZE takes it:
    [blocks, block_size], per channel along axis 0, one scale per block (the plan's order: row-major over
    [out, kh, kw, in / block_size])."""
    assert tensor.data is not None
    tensor.data = tensor.data.reshape(-1, enc.block_size)
    tensor.shape = tuple(tensor.data.shape)
    tensor.shape_signature = None
    tensor.quant = Quantization(scale=enc.scales(), zero_point=enc.zero_points(), axis=0)


def _dequantized_blocks(g: Graph, ops: list[Op], t: int, shape: tuple[int, ...]) -> int:
    """DEQUANTIZE of a block-rows weight, RESHAPEd to the convolution's weight `shape`."""
    src = g.tensors[t]
    rows = g.add_tensor(Tensor(name=f"{src.name}/dequantized", shape=src.shape, dtype="float32"))
    ops.append(Op(kind="DEQUANTIZE", inputs=[t], outputs=[rows]))
    new_shape = g.add_tensor(Tensor(name=f"{src.name}/shape", shape=(len(shape),), dtype="int32",
                                    data=np.asarray(shape, dtype=np.int32)))
    weight = g.add_tensor(Tensor(name=f"{src.name}/reshaped", shape=tuple(shape), dtype="float32"))
    ops.append(Op(kind="RESHAPE", inputs=[rows, new_shape], outputs=[weight]))
    return weight


def _encoded_dtype(g: Graph, plan: QuantPlan, t: int) -> str | None:
    enc = plan.tensors.get(g.tensors[t].name)
    return enc.dtype if enc is not None else None


def _requantized(g: Graph, ops: list[Op], t: int, enc: Encoding, consumer: int) -> int:
    """QUANTIZE from one integer encoding to another (LiteRT's requantize), feeding one consumer."""
    src = g.tensors[t]
    dst = g.add_tensor(
        Tensor(
            name=f"{src.name}/requantized@{consumer}",
            shape=src.shape,
            dtype=enc.dtype,
            quant=_quant(enc),
            shape_signature=src.shape_signature,
        )
    )
    ops.append(Op(kind="QUANTIZE", inputs=[t], outputs=[dst]))
    return dst


def _swap_in_dequantize(g: Graph, ops: list[Op], t: int) -> int:
    """Rename integer tensor t to '<name>/quantized' and add DEQUANTIZE into a float tensor named as t was."""
    src = g.tensors[t]
    float_t = g.add_tensor(Tensor(name=src.name, shape=src.shape, dtype="float32", shape_signature=src.shape_signature))
    src.name = f"{src.name}/quantized"
    ops.append(Op(kind="DEQUANTIZE", inputs=[t], outputs=[float_t]))
    return float_t


def _retarget_signature(g: Graph, moved: dict[int, int]) -> None:
    g.signature_outputs = {k: moved.get(v, v) for k, v in g.signature_outputs.items()}


def _encode_tensor(tensor: Tensor, enc: Encoding) -> None:
    if tensor.dtype != "float32":
        raise PlanError(f'tensor "{tensor.name}" is {tensor.dtype}, the plan can only encode float32 tensors')
    if tensor.is_constant:
        tensor.data = quantize_array(
            tensor.data,
            enc.scales(),
            enc.zero_points(),
            enc.axis,
            enc.dtype,
            narrow=enc.narrow_range,
            block_size=enc.block_size,
        )
        if tensor.data.dtype != storage_dtype(enc.dtype):
            raise PlanError(f'tensor "{tensor.name}": quantized to {tensor.data.dtype}, plan says {enc.dtype}')
    tensor.dtype = enc.dtype
    tensor.quant = _quant(enc)
