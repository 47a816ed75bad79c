"""Per-layer sensitivity: each layer alone quantized (the real integer kernel between QUANTIZE and DEQUANTIZE),
a deliberately broken layer ranked first, the result's table and dict.

Run with -s to see the tables."""

from __future__ import annotations

import pytest

import edgeq
from edgeq.algorithms.sensitivity import layer_ops, single_layer_plan
from edgeq.api import _render
from edgeq.errors import PlanError
from tests.small_convnet import LAYERS, images, small_convnet

CALIB, EVAL = edgeq.calibration.arrays(images(48, 0)), edgeq.calibration.arrays(images(64, 1))


@pytest.mark.parametrize("scheme", ["int8", "int4-channel"])
def test_a_layer_with_a_weight_outlier_ranks_first(scheme):
    model = edgeq.load(small_convnet(broken=True))
    result = edgeq.sensitivity(model, CALIB, scheme=scheme, eval=EVAL, progress=False)
    print("\n" + result.table())
    first, *rest = result.layers
    assert (first.name, first.kind) == ("block/project", "CONV_2D")
    # The outlier leaves the other weights no levels: alone, it takes the model's output to ~1 dB.
    assert first.sqnr_db < 3.0 and first.top1_agreement < 0.2
    assert all(layer.sqnr_db > 15.0 and layer.top1_agreement >= 0.9 for layer in rest)
    assert result.full_sqnr_db < 3.0


def test_one_layer_alone_is_closer_to_float_than_the_whole_model():
    model = edgeq.load(small_convnet())
    result = edgeq.sensitivity(model, CALIB, scheme="int4-channel", eval=EVAL, progress=False)
    print("\n" + result.table())
    assert sorted(layer.name for layer in result.layers) == sorted([*LAYERS, "pool/mean"])
    assert [layer.sqnr_db for layer in result.layers] == sorted(layer.sqnr_db for layer in result.layers)
    assert all(layer.sqnr_db > result.full_sqnr_db for layer in result.layers)
    assert result.samples == 64 and result.full_top1_agreement is not None
    lines = result.table(top=2).splitlines()
    assert len(lines) == 4 and lines[2].split()[:2] == ["1", f"{result.layers[0].sqnr_db:.2f}"]
    doc = result.to_dict()
    assert doc["scheme"] == "int4-channel" and len(doc["layers"]) == 5
    assert set(doc["layers"][0]) == {"op", "kind", "name", "sqnr_db", "top1_agreement", "cosine"}


def test_the_single_layer_model_runs_only_that_layer_in_integers():
    model = edgeq.load(small_convnet())
    qm = edgeq.quantize(model, CALIB, scheme="int8", progress=False)
    assert layer_ops(qm.plan, model) == [0, 1, 2, 3, 4]
    graph, _, _ = _render(model, single_layer_plan(qm.plan, model, 1), {})
    kinds = [(op.kind, graph.tensors[op.outputs[0]].dtype) for op in graph.ops]
    assert kinds == [
        ("CONV_2D", "float32"),
        ("QUANTIZE", "int8"),
        ("DEPTHWISE_CONV_2D", "int8"),
        ("DEQUANTIZE", "float32"),
        ("CONV_2D", "float32"),
        ("MEAN", "float32"),
        ("FULLY_CONNECTED", "float32"),
    ]
    dw = graph.ops[2]
    assert graph.tensors[dw.inputs[1]].dtype == "int8" and graph.tensors[dw.inputs[2]].dtype == "int32"


def test_ranking_by_top1_and_its_requirements():
    model = edgeq.load(small_convnet(broken=True))
    result = edgeq.sensitivity(model, CALIB, eval=EVAL, metric="top1_agreement", max_samples=32, progress=False)
    assert result.samples == 32 and result.layers[0].name == "block/project"
    assert [x.top1_agreement for x in result.layers] == sorted(x.top1_agreement for x in result.layers)
    with pytest.raises(PlanError, match="needs evaluation data"):
        edgeq.sensitivity(model, CALIB, metric="top1_agreement", progress=False)
    with pytest.raises(PlanError, match="metric 'mse'"):
        edgeq.sensitivity(model, CALIB, metric="mse", progress=False)
    calib_only = edgeq.sensitivity(model, CALIB, progress=False)
    assert calib_only.samples == 48 and calib_only.full_top1_agreement is None
