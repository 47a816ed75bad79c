"""Masked softmax: an attention mask (0 / -inf, or a finite sentinel) added to scores keeps masking in the
integer model, and the scores keep their resolution (edgeq/calibrate/softmax_ranges.py)."""

from __future__ import annotations

import numpy as np
import pytest

import edgeq
from edgeq.calibrate.softmax_ranges import Extremes, masked_softmax_ranges, softmax_inputs, tensors_read
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.runtime import LiteRT

HEADS, LEN = 2, 16


def masked_softmax(sentinel: float) -> bytes:
    """scores [1, H, L, L] + SELECT_V2(keep, 0, sentinel) [1, 1, 1, L] -> SOFTMAX, keep an int32 input."""
    tensors = [
        Tensor("scores", (1, HEADS, LEN, LEN), "float32"),
        Tensor("keep", (1, 1, 1, LEN), "int32"),
        Tensor("keep_bool", (1, 1, 1, LEN), "bool"),
        Tensor("zero", (), "float32", data=np.array(0.0, np.float32)),
        Tensor("sentinel", (), "float32", data=np.array(sentinel, np.float32)),
        Tensor("mask", (1, 1, 1, LEN), "float32"),
        Tensor("masked_scores", (1, HEADS, LEN, LEN), "float32"),
        Tensor("probs", (1, HEADS, LEN, LEN), "float32"),
    ]
    ops = [
        Op("CAST", [1], [2]),
        Op("SELECT_V2", [2, 3, 4], [5]),
        Op("ADD", [0, 5], [6], options={"fusedActivationFunction": 0}, options_type="AddOptions"),
        Op("SOFTMAX", [6], [7], options={"beta": 1.0}, options_type="SoftmaxOptions"),
    ]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0, 1], outputs=[7]))


def samples(n: int, seed: int) -> list[list[np.ndarray]]:
    """Scores like attention logits (rows of different levels) and a mask keeping 4..LEN leading positions."""
    rng, out = np.random.default_rng(seed), []
    for _ in range(n):
        scores = rng.normal(0, 3, size=(1, HEADS, LEN, LEN)) + rng.normal(0, 4, size=(1, HEADS, LEN, 1))
        keep = (np.arange(LEN) < rng.integers(4, LEN + 1)).astype(np.int32).reshape(1, 1, 1, LEN)
        out.append([scores.astype(np.float32), keep])
    return out


@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
@pytest.mark.parametrize("sentinel", [-np.inf, -1e9, -3.4e38])
def test_masked_positions_stay_masked(scheme: str, sentinel: float) -> None:
    model = masked_softmax(sentinel)
    calib, held = samples(64, 0), samples(16, 1)
    arrays = edgeq.calibration.arrays(*(np.concatenate(x) for x in zip(*calib, strict=True)))
    qm = edgeq.quantize(edgeq.load(model), arrays, scheme=scheme, allow_float_ops=True, progress=False)
    assert any("softmax input 'masked_scores'" in note for note in qm.plan.notes), qm.plan.notes
    assert any("mask 'mask'" in note for note in qm.plan.notes), qm.plan.notes
    float_rt, quant_rt = LiteRT(model, reference=True), LiteRT(qm.tflite, reference=True)
    errors, leaked = [], 0.0
    for scores, keep in held:
        want = float_rt.run([scores, keep])[0]
        got = quant_rt.run([scores, keep])[0]
        masked = np.broadcast_to(keep == 0, got.shape)
        leaked = max(leaked, float(got[masked].max(initial=0.0)))
        errors.append(np.abs(got - want))
    # int8 SOFTMAX writes probabilities in steps of 1/256; int16's exp table stops at exp(-10). Without the
    # masked-softmax ranges, masked positions took up to 0.995 of a row and errors reached 0.93.
    assert leaked <= (0.0 if scheme == "int8" else 1e-4)
    mean, worst = float(np.mean(errors)), float(np.max(errors))
    mean_bound, worst_bound = (0.005, 0.1) if scheme == "int8" else (1e-4, 2e-3)
    assert mean < mean_bound and worst < worst_bound, (mean, worst)
    # edgeq's interpreter computes it as LiteRT's reference kernels do (QUANTIZE of -inf and float sentinels)
    assert edgeq.verify(qm.tflite, inputs=held[:2]).bit_exact


@pytest.mark.parametrize("logits_are_an_output", [False, True])
def test_unmasked_softmax_input_is_clipped_only_where_nothing_else_reads_it(logits_are_an_output: bool) -> None:
    tensors = [Tensor("logits", (4, 10), "float32"), Tensor("probs", (4, 10), "float32")]
    ops = [Op("SOFTMAX", [0], [1], options={"beta": 0.5}, options_type="SoftmaxOptions")]
    graph = Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[0, 1] if logits_are_an_output else [1])
    inputs = softmax_inputs(graph)
    stats = {t: Extremes() for t in tensors_read(inputs)}
    logits = np.array([[5.0, -300.0, *range(8)]] * 4, np.float32)
    stats[0].update(logits)
    ranges, notes = masked_softmax_ranges(graph, {0: (-300.0, 7.0), 1: (0.0, 1.0)}, inputs, stats, symmetric=False)
    # beta 0.5: 64 below the smallest row maximum (7) counts for nothing after the softmax
    assert ranges[0] == ((-300.0, 7.0) if logits_are_an_output else (7.0 - 64.0, 7.0))
    assert len(notes) == (0 if logits_are_an_output else 1)


def test_minilm_int16x8_keeps_its_attention_mask() -> None:
    """The real case: MiniLM's SELECT_V2(mask, 0, -inf), one mask for the six layers. Before the masked-softmax
    ranges its int16x8 model attended to padding (mean cosine 0.877 on bench.minilm's 300 sentences; 0.998 since)."""
    from bench import minilm, zoo

    entry = zoo.get("all_minilm_l6_v2")
    calib = edgeq.calibration.arrays(*entry.calib(16, 0))
    qm = edgeq.quantize(edgeq.load(entry.path()), calib, scheme="int16x8", allow_float_ops=True, progress=False)
    assert sum(note.startswith("softmax input") for note in qm.plan.notes) == 6
    assert sum(note.startswith("mask ") for note in qm.plan.notes) == 1
    assert minilm.evaluate(qm, 30)["mean_cosine"] > 0.99
