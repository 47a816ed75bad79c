"""Multiply-accumulates per op, from shapes: what an accelerator saves when it takes the op."""

from __future__ import annotations

import numpy as np

from edgeq.ir.graph import Graph


def op_macs(graph: Graph, index: int) -> int:
    """MACs of one CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, BATCH_MATMUL or TRANSPOSE_CONV; 0 otherwise."""
    op = graph.ops[index]
    if not op.outputs or len(op.inputs) < 2:
        return 0
    out = graph.tensors[op.outputs[0]].shape
    w = graph.tensors[op.inputs[1]].shape
    outputs = int(np.prod(out)) if out else 1
    if op.kind == "CONV_2D" and len(w) == 4:  # weights [Cout, kh, kw, Cin]
        return outputs * w[1] * w[2] * w[3]
    if op.kind == "DEPTHWISE_CONV_2D" and len(w) == 4:  # weights [1, kh, kw, Cout]
        return outputs * w[1] * w[2]
    if op.kind == "FULLY_CONNECTED" and len(w) == 2:  # weights [units, K]
        return outputs * w[1]
    if op.kind == "BATCH_MATMUL":
        a = graph.tensors[op.inputs[0]].shape
        k = a[-2] if op.options.get("adjX") else a[-1]
        return outputs * k if a else 0
    if op.kind == "TRANSPOSE_CONV" and len(w) == 4 and len(op.inputs) > 2:  # input 2 is the data
        x = graph.tensors[op.inputs[2]].shape
        return int(np.prod(x)) * w[0] * w[1] * w[2]
    return 0
