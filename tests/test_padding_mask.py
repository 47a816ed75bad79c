"""Padding positions of sequence models stay out of calibration statistics (edgeq/calibrate/padding.py):
activation ranges, GPTQ Hessians and bias-correction means count the rows the attention mask marks real."""

from __future__ import annotations

import numpy as np
import pytest

import edgeq
from edgeq.algorithms.bias_correction import tap_means
from edgeq.algorithms.gptq import _hessian, _layers
from edgeq.algorithms.layers import linear_layers
from edgeq.calibrate.padding import PaddingMask, positional, resolve_padding_mask
from edgeq.errors import PlanError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.runtime import LiteRT

LEN, FEATURES, OUT = 16, 32, 8


def masked_dense(mask_name: str = "attention_mask") -> bytes:
    """x [1, L, F] -> FULLY_CONNECTED -> y [1, L, O] -> y * mask (padding rows zeroed), mask an int32 [1, L]
    input: what a transformer's pooling does with the positions its attention mask leaves out."""
    rng = np.random.default_rng(0)
    tensors = [
        Tensor("x", (1, LEN, FEATURES), "float32"),
        Tensor(mask_name, (1, LEN), "int32"),
        Tensor("w", (OUT, FEATURES), "float32", data=rng.normal(0, 0.3, (OUT, FEATURES)).astype(np.float32)),
        Tensor("b", (OUT,), "float32", data=rng.normal(0, 0.1, OUT).astype(np.float32)),
        Tensor("y", (1, LEN, OUT), "float32"),
        Tensor("mask_f", (1, LEN), "float32"),
        Tensor("shape", (3,), "int32", data=np.array([1, LEN, 1], np.int32)),
        Tensor("mask_3d", (1, LEN, 1), "float32"),
        Tensor("pooled", (1, LEN, OUT), "float32"),
    ]
    ops = [
        Op("FULLY_CONNECTED", [0, 2, 3], [4], options={"keepNumDims": True}, options_type="FullyConnectedOptions"),
        Op("CAST", [1], [5]),
        Op("RESHAPE", [5, 6], [7]),
        Op("MUL", [4, 7], [8], options={"fusedActivationFunction": 0}, options_type="MulOptions"),
    ]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0, 1], outputs=[8]))


def samples(n: int, seed: int, padding_scale: float = 50.0) -> list[list[np.ndarray]]:
    """Real rows ~N(0, 1); padding rows (after 4..L real ones) 50x larger, as padding embeddings can be."""
    rng, out = np.random.default_rng(seed), []
    for _ in range(n):
        real = int(rng.integers(4, LEN))
        x = rng.normal(0, 1, (1, LEN, FEATURES))
        x[:, real:] *= padding_scale
        out.append([x.astype(np.float32), (np.arange(LEN) < real).astype(np.int32)[None]])
    return out


def arrays(data: list[list[np.ndarray]]):
    return edgeq.calibration.arrays(*(np.concatenate(x) for x in zip(*data, strict=True)))


def real_row_sqnr(model: bytes, quantized: bytes, data: list[list[np.ndarray]]) -> float:
    want, got = LiteRT(model), LiteRT(quantized)
    signal = noise = 0.0
    for x, mask in data:
        keep = mask[0] != 0
        a, b = want.run([x, mask])[0][0, keep], got.run([x, mask])[0][0, keep]
        signal, noise = signal + float(np.sum(a.astype(np.float64) ** 2)), noise + float(np.sum((a - b) ** 2.0))
    return 10 * np.log10(signal / noise)


def test_resolve_finds_the_mask_by_name_and_refuses_what_is_not_one() -> None:
    graph = edgeq.load(masked_dense()).graph
    auto = resolve_padding_mask(graph, "auto")
    assert auto == PaddingMask(input=1, name="attention_mask", length=LEN)
    assert resolve_padding_mask(graph, "attention_mask") == auto
    assert resolve_padding_mask(graph, None) is None
    assert resolve_padding_mask(edgeq.load(masked_dense("keep")).graph, "auto") is None  # no input so named
    inputs = r"the inputs are \['attention_mask', 'x'\]"
    with pytest.raises(PlanError, match=r"padding_mask='mask' names no model input; " + inputs):
        resolve_padding_mask(graph, "mask")
    with pytest.raises(PlanError, match=r"padding mask input 'x' is float32 \[1, 16, 32\]: it must be one sequence"):
        resolve_padding_mask(graph, "x")


def test_positional_tensors_are_one_row_per_position() -> None:
    assert positional((1, LEN, FEATURES), LEN) and positional((LEN, FEATURES), LEN)
    assert not positional((1, 2, LEN, FEATURES), LEN)  # heads: rows are not positions
    assert not positional((1, LEN, LEN), LEN)  # square: either axis could be the position
    assert not positional((2, LEN, FEATURES), LEN) and not positional((FEATURES,), LEN)
    mask = PaddingMask(input=1, name="m", length=LEN)
    x = np.arange(LEN * FEATURES, dtype=np.float32).reshape(1, LEN, FEATURES)
    live = np.arange(LEN) < 5
    np.testing.assert_array_equal(mask.real_rows(x, live), x[0, :5])
    square = x[:, :, :LEN]
    assert mask.real_rows(square, live) is square


def test_ranges_count_real_rows_only() -> None:
    """Padding rows 50x the real ones stretch the FULLY_CONNECTED's input and output ranges when counted;
    the output's real rows then lose 30 dB in int8 (measured: 4.9 dB without the mask, 36.7 with it)."""
    model = masked_dense()
    calib, held = samples(64, 0), samples(16, 1)
    with_mask = edgeq.quantize(edgeq.load(model), arrays(calib), allow_float_ops=True, progress=False)
    without = edgeq.quantize(edgeq.load(model), arrays(calib), allow_float_ops=True, progress=False, padding_mask=None)
    assert any(n.startswith("padding mask 'attention_mask'") for n in with_mask.plan.notes), with_mask.plan.notes
    assert not any(n.startswith("padding mask") for n in without.plan.notes)
    scale = {name: qm.plan.tensors["x"].scales()[0] for name, qm in (("with", with_mask), ("without", without))}
    assert scale["without"] > 20 * scale["with"]
    masked_sqnr, plain_sqnr = real_row_sqnr(model, with_mask.tflite, held), real_row_sqnr(model, without.tflite, held)
    assert masked_sqnr > 30 and masked_sqnr > plain_sqnr + 20, (masked_sqnr, plain_sqnr)


def test_gptq_hessian_and_bias_correction_means_use_real_rows() -> None:
    graph = edgeq.load(masked_dense()).graph
    mask = resolve_padding_mask(graph, "auto")
    assert mask is not None
    data = samples(3, 2)
    plan = edgeq.quantize(edgeq.load(masked_dense()), arrays(samples(8, 0)), scheme="w4-block16", progress=False).plan
    (layer,) = _layers(graph, plan.tensors)[0]
    live = [mask.live(s) for s in data]
    h = _hessian(graph, layer, [x for x, _ in data], 1024, np.random.default_rng(0), mask, live)
    real = [x[0, keep].astype(np.float64) for (x, _), keep in zip(data, live, strict=True)]
    want = sum(r.T @ r for r in real)
    np.testing.assert_allclose(h[0], want, rtol=1e-5, atol=1e-6 * np.abs(want).max())  # padding rows: 2500x
    (dense,) = linear_layers(graph, plan, blocks=True)
    for (x, _), keep, r in zip(data, live, real, strict=True):
        means = tap_means(dense, x, lambda v, keep=keep: mask.real_rows(v, keep))
        np.testing.assert_allclose(means, r.mean(axis=0), rtol=1e-5)
