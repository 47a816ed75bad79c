"""Check an integer graph against the TFLite quantization spec, independently of how it was planned.

A second, simpler statement of the rules the planner follows: tests run it on every model edgeq
writes, so a planner bug shows up as a named violation rather than as a quiet accuracy loss.
"""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Graph
from edgeq.quant.op_rules import RULES

_FIXED = {
    ("SOFTMAX", "int8"): (1 / 256, -128),
    ("LOGISTIC", "int8"): (1 / 256, -128),
    ("TANH", "int8"): (1 / 128, 0),
    ("SOFTMAX", "int16"): (1 / 32768, 0),
    ("LOGISTIC", "int16"): (1 / 32768, 0),
    ("TANH", "int16"): (1 / 32768, 0),
}


def spec_violations(graph: Graph) -> list[str]:
    """Every rule broken, as '<where>: <rule>' strings; empty when the graph conforms."""
    problems: list[str] = []
    for i, op in enumerate(graph.ops):
        rule = RULES.get(op.kind)
        if rule is None:
            continue
        out = graph.tensors[op.outputs[0]] if op.outputs else None
        if out is None or out.dtype not in ("int8", "int16"):
            continue
        where = graph.where(i)
        for pos, axis in rule.weights:
            if pos >= len(op.inputs) or op.inputs[pos] < 0:
                continue
            w = graph.tensors[op.inputs[pos]]
            if not w.is_constant:
                continue
            if w.dtype != "int8" or w.quant is None:
                problems.append(f"{where}: weights '{w.name}' are {w.dtype}, not quantized int8")
                continue
            if np.any(w.quant.zero_point != 0):
                problems.append(f"{where}: weights '{w.name}' have a non-zero zero point")
            if int(np.min(w.data)) < -127:
                problems.append(f"{where}: weights '{w.name}' use -128 (spec range is [-127, 127])")
            if w.quant.per_channel and (w.quant.axis != axis or w.quant.scale.size != w.shape[axis]):
                problems.append(f"{where}: weights '{w.name}' per-channel axis {w.quant.axis}, expected {axis}")
        if rule.bias is not None and rule.bias < len(op.inputs) and op.inputs[rule.bias] >= 0:
            problems += _bias_problems(graph, i, rule.weights[0][0], rule.bias)
        fixed = _FIXED.get((op.kind, out.dtype))
        if fixed is not None and out.quant is not None:
            scale, zp = fixed
            if not np.isclose(out.quant.scale[0], scale, rtol=1e-6) or int(out.quant.zero_point[0]) != zp:
                problems.append(
                    f"{where}: output encoding ({out.quant.scale[0]}, {out.quant.zero_point[0]}), "
                    f"the kernel requires ({scale}, {zp})"
                )
        same = rule.same_encoding
        positions = range(len(op.inputs)) if -1 in same else [p for p in same if p < len(op.inputs)]
        for pos in positions:
            t = graph.tensors[op.inputs[pos]]
            if t.quant is None or out.quant is None or t.dtype != out.dtype:
                continue
            if t.quant.scale[0] != out.quant.scale[0] or t.quant.zero_point[0] != out.quant.zero_point[0]:
                problems.append(f"{where}: input '{t.name}' and output must share one encoding")
        if out.dtype == "int16":
            for t in [*op.inputs, *op.outputs]:
                tensor = graph.tensors[t] if t >= 0 else None
                if tensor is not None and tensor.dtype == "int16" and np.any(tensor.quant.zero_point != 0):
                    problems.append(f"{where}: int16 tensor '{tensor.name}' has a non-zero zero point")
    return problems


def _bias_problems(graph: Graph, op_index: int, weight_pos: int, bias_pos: int) -> list[str]:
    op = graph.ops[op_index]
    where = graph.where(op_index)
    b = graph.tensors[op.inputs[bias_pos]]
    w = graph.tensors[op.inputs[weight_pos]]
    x = graph.tensors[op.inputs[2 if op.kind == "TRANSPOSE_CONV" else 0]]
    if b.quant is None or w.quant is None or x.quant is None:
        return [f"{where}: bias '{b.name}' is not quantized"]
    expected_dtype = "int64" if x.dtype == "int16" else "int32"
    problems = []
    if b.dtype != expected_dtype and not (x.dtype == "int16" and b.dtype == "int32"):
        problems.append(f"{where}: bias '{b.name}' is {b.dtype}, expected {expected_dtype}")
    expected = np.float32(x.quant.scale[0]) * w.quant.scale.astype(np.float32)
    if not np.allclose(np.broadcast_to(expected, b.quant.scale.shape), b.quant.scale, rtol=1e-6, atol=0):
        problems.append(f"{where}: bias '{b.name}' scale is not input scale x weight scale")
    return problems
