"""End to end: float model in, integer .tflite out, run in LiteRT's default and reference kernels."""

from __future__ import annotations

import numpy as np
import pytest

import edgeq
from bench import zoo
from edgeq.ir.tflite_reader import read_tflite
from edgeq.runtime import LiteRT
from edgeq.verify.spec import spec_violations
from tests.graphs import dense_graph

# Pooled output SQNR (dB) each zoo model must reach against its float model, (int8, int16x8), on held-out
# data with LiteRT's reference kernels: about 3 dB under the lower of what the percentile and min/max
# ranges measured (int8's default `auto` picks one of the two on a few held-out calibration samples), so a
# real regression fails. int16x8 keeps ops without an int16 kernel (PRELU, HARD_SWISH) in float.
MIN_POOLED_SQNR = {
    "efficientnet_lite0": (15.0, 16.0),
    "face_detection_short_range": (13.0, 23.0),
    "face_landmark": (26.0, 35.0),
    "hand_landmark_lite": (20.0, 24.5),
    "selfie_segmentation": (1.0, 15.5),
    "keras_activations": (33.0, 42.0),
    "keras_attention": (26.5, 47.0),
    "keras_cnn_ops": (34.0, 45.0),
    "keras_mobilenet_block": (21.5, 41.0),
    "keras_segmenter": (28.5, 29.0),
}
N_CALIB, N_EVAL = 64, 48


def test_same_inputs_give_byte_identical_artifacts():
    model = edgeq.load(dense_graph(units=16, features=32))
    x = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    a = edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    b = edgeq.quantize(edgeq.load(dense_graph(units=16, features=32)), edgeq.calibration.arrays(x), progress=False)
    assert a.tflite == b.tflite
    assert a.plan.to_json() == b.plan.to_json()


def test_plan_round_trips_through_json_and_reapplies_exactly(tmp_path):
    model = edgeq.load(dense_graph(units=16, features=32, tail="TANH"))
    x = np.random.default_rng(1).normal(size=(32, 32)).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    qm.plan.save(tmp_path / "plan.json")
    plan = edgeq.QuantPlan.load(tmp_path / "plan.json")
    assert plan == qm.plan
    again = edgeq.quantize(model, plan=plan, progress=False)
    assert again.tflite == qm.tflite


def test_plan_for_another_model_is_refused():
    x = np.random.default_rng(2).normal(size=(8, 8)).astype(np.float32)
    qm = edgeq.quantize(edgeq.load(dense_graph(seed=0)), edgeq.calibration.arrays(x), progress=False)
    with pytest.raises(edgeq.errors.PlanError, match="plan was made for model"):
        edgeq.quantize(edgeq.load(dense_graph(seed=1)), plan=qm.plan, progress=False)


def test_dense_int8_matches_float_closely_and_keeps_spec():
    model = edgeq.load(dense_graph(units=16, features=32, tail="LOGISTIC"))
    x = np.random.default_rng(3).normal(size=(64, 32)).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    assert spec_violations(read_tflite(qm.tflite)) == []
    report = edgeq.compare(model, qm, edgeq.calibration.arrays(x), reference=True)
    assert report.sqnr_db > 30.0
    out = qm.graph.tensors[qm.graph.ops[-2].outputs[0]]
    assert (out.quant.scale[0], out.quant.zero_point[0]) == (np.float32(1 / 256), -128)


@pytest.mark.parametrize("io", ["float32", "int8"])
def test_io_types(io):
    model = edgeq.load(dense_graph())
    x = np.random.default_rng(4).normal(size=(16, 8)).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), io=io, progress=False)
    rt = LiteRT(qm.tflite, reference=True)
    assert [d["dtype"] for d in rt.inputs] == [np.dtype(io)]
    assert [d["dtype"] for d in rt.outputs] == [np.dtype(io)]
    kinds = [op.kind for op in qm.graph.ops]
    assert (kinds[0] == "QUANTIZE") == (io == "float32") and (kinds[-1] == "DEQUANTIZE") == (io == "float32")


@pytest.fixture(scope="module", params=sorted(zoo.ZOO))
def zoo_model(request):
    entry = zoo.get(request.param)
    return entry, edgeq.load(entry.path(), name=entry.name)


@pytest.mark.zoo
@pytest.mark.parametrize("scheme", ["int8", "int16x8"])
def test_zoo_model_quantizes_and_runs_in_both_kernel_sets(zoo_model, scheme):
    entry, model = zoo_model
    allow_float = scheme == "int16x8"  # a few ops (PRELU, HARD_SWISH) have no int16 kernel in LiteRT
    qm = edgeq.quantize(model, edgeq.calibration.arrays(*entry.calib(N_CALIB, 0)), scheme=scheme,
                        allow_float_ops=allow_float, progress=False)
    graph = read_tflite(qm.tflite)
    assert spec_violations(graph) == []
    source = read_tflite(entry.path()).metadata
    kept = {k: v for k, v in source.items() if k not in ("min_runtime_version", "CONVERSION_METADATA")}
    assert {k: graph.metadata.get(k) for k in kept} == kept  # e.g. MediaPipe's TFLITE_METADATA survives
    assert graph.metadata["min_runtime_version"].rstrip(b"\0").count(b".") == 2
    custom = [op for op in model.graph.ops if op.kind == "CUSTOM"]
    assert len([f for f in qm.plan.float_ops if f.kind == "CUSTOM"]) == len(custom)
    evaluation = entry.eval(N_EVAL, 1)
    reference = edgeq.compare(model, qm, edgeq.calibration.arrays(*evaluation), layers=0, reference=True)
    default = edgeq.compare(model, qm, edgeq.calibration.arrays(*evaluation), layers=0, reference=False)
    floor = MIN_POOLED_SQNR[entry.name][scheme == "int16x8"]
    assert reference.pooled_sqnr_db >= floor, str(reference)
    # XNNPACK's optimized kernels may differ from the reference by +-1 LSB, never by more than noise.
    assert abs(default.pooled_sqnr_db - reference.pooled_sqnr_db) < 3.0
