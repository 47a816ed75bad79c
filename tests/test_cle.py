"""Cross-layer equalization keeps the float function and evens out per-channel weight ranges; pairs joined by
RELU6 are left alone; the artifact stays bit-exact against LiteRT's reference kernels."""

from __future__ import annotations

import numpy as np

import edgeq
from edgeq.algorithms import cle
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph
from edgeq.runtime import LiteRT
from tests.conv_chain import conv_chain, inputs

CALIB = inputs(32)
EVAL = inputs(16, seed=7)


def _with_weights(graph: Graph, weights: dict[str, np.ndarray]) -> Graph:
    g = graph.copy()
    for t in g.tensors:
        if t.name in weights:
            t.data = weights[t.name]
    return g


def _outputs(graph: Graph) -> np.ndarray:
    runtime = LiteRT(write_tflite(graph))
    return np.concatenate([runtime.run([EVAL[i : i + 1]])[0] for i in range(len(EVAL))])


def _imbalance(graph: Graph, pair: cle.Pair) -> float:
    """Largest |log2(r1_c / r2_c)| over the channels a pair shares (0: perfectly equalized)."""
    first, second = graph.ops[pair.first], graph.ops[pair.second]
    r1 = cle.channel_ranges(graph.tensors[first.inputs[1]].data, 3 if first.kind == "DEPTHWISE_CONV_2D" else 0)
    r2 = cle.channel_ranges(graph.tensors[second.inputs[1]].data, 3)
    return float(np.max(np.abs(np.log2(r1 / r2))))


def test_cle_keeps_the_float_outputs_and_evens_the_ranges():
    model = edgeq.load(conv_chain())
    qm = edgeq.quantize(model, edgeq.calibration.arrays(CALIB), algorithms=["cle"], progress=False)
    equalized = _with_weights(model.graph, qm.plan.weights)
    before, after = _outputs(model.graph), _outputs(equalized)
    # Power-of-two channel scales: every product is scaled exactly, so the outputs agree to fp32 rounding.
    assert np.max(np.abs(after - before)) <= 1e-5 * np.max(np.abs(before))
    pairs, skipped = cle.find_pairs(model.graph)
    assert [(model.graph.ops[p.first].kind, model.graph.ops[p.second].kind) for p in pairs] == [
        ("CONV_2D", "DEPTHWISE_CONV_2D"), ("DEPTHWISE_CONV_2D", "CONV_2D"), ("CONV_2D", "CONV_2D")
    ]
    assert skipped == []
    for pair in pairs:
        assert _imbalance(model.graph, pair) > 2.0  # the model's folded-BN-like spread: several octaves
        assert _imbalance(equalized, pair) <= 1.5  # equal within the power-of-two grid, after the chain's sweeps
    spread_before = [cle.spread(model.graph, i) for i in (0, 1, 2, 3)]
    spread_after = [cle.spread(equalized, i) for i in (0, 1, 2, 3)]
    assert np.median(spread_after) < 0.8 * np.median(spread_before)
    assert qm.algorithms[0].notes[0].startswith("equalized 3 layer pairs")


def test_cle_skips_pairs_joined_by_relu6():
    model = edgeq.load(conv_chain(first_activation="RELU6"))
    qm = edgeq.quantize(model, edgeq.calibration.arrays(CALIB), algorithms=["cle"], progress=False)
    assert "conv1/w" not in qm.plan.weights  # the RELU6 pair conv1 -> dw is not rescaled
    assert any("skipped 1 pairs joined by RELU6" in note for note in qm.algorithms[0].notes)
    np.testing.assert_array_equal(_outputs(_with_weights(model.graph, qm.plan.weights)), _outputs(model.graph))


def test_cle_artifact_is_bit_exact_against_litert_reference():
    model = edgeq.load(conv_chain())
    qm = edgeq.quantize(model, edgeq.calibration.arrays(CALIB), algorithms=["cle"], progress=False)
    result = edgeq.verify(qm.tflite, inputs=[[EVAL[i : i + 1]] for i in range(4)])
    assert result.bit_exact, result.first_divergence
