"""Small float graphs built directly in edgeq's IR, for tests that need exact control of the ops."""

from __future__ import annotations

import numpy as np

from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor


def dense_graph(units: int = 4, features: int = 8, tail: str | None = None, seed: int = 0) -> bytes:
    """input [1, features] -> FULLY_CONNECTED -> (optional unary op `tail`) -> output."""
    rng = np.random.default_rng(seed)
    tensors = [
        Tensor("input", (1, features), "float32"),
        Tensor("w", (units, features), "float32", data=rng.normal(size=(units, features)).astype(np.float32)),
        Tensor("b", (units,), "float32", data=rng.normal(size=units).astype(np.float32)),
        Tensor("fc", (1, units), "float32"),
    ]
    ops = [
        Op(
            "FULLY_CONNECTED",
            [0, 1, 2],
            [3],
            options={"fusedActivationFunction": 0},
            options_type="FullyConnectedOptions",
        )
    ]
    outputs = [3]
    if tail:
        tensors.append(Tensor("tail", (1, units), "float32"))
        ops.append(Op(tail, [3], [4]))
        outputs = [4]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=outputs))


def variance_graph(tokens: int = 16, features: int = 32, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """A decomposed layer norm's variance, as converters write it: MEAN -> SQUARED_DIFFERENCE -> MEAN over the
    last axis of input [1, tokens, features]; and the per-feature scales (one feature 40x the others, the
    transformer outlier) that samples should be drawn with."""
    axes = np.array([2], np.int32)
    tensors = [
        Tensor("input", (1, tokens, features), "float32"),
        Tensor("axes", (1,), "int32", data=axes),
        Tensor("mean", (1, tokens, 1), "float32"),
        Tensor("squared", (1, tokens, features), "float32"),
        Tensor("variance", (1, tokens, 1), "float32"),
    ]
    reduce = {"options": {"keepDims": True}, "options_type": "ReducerOptions"}
    ops = [Op("MEAN", [0, 1], [2], **reduce), Op("SQUARED_DIFFERENCE", [0, 2], [3]), Op("MEAN", [3, 1], [4], **reduce)]
    scales = np.ones(features, np.float32)
    scales[np.random.default_rng(seed).integers(features)] = 40.0
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[4])), scales
