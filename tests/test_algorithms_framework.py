"""The algorithm framework: registry lookup, weights an algorithm changes travel in the plan, float-stage
changes are calibrated, and a saved plan reproduces the artifact byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

import edgeq
from edgeq.algorithms import registry
from edgeq.algorithms.context import AlgorithmContext
from edgeq.errors import PlanError
from edgeq.quant.plan import QuantPlan
from edgeq.quant.schemes import quantize_array
from tests.graphs import dense_graph

RNG = np.random.default_rng(3)
CALIB = [RNG.normal(size=(1, 8)).astype(np.float32) for _ in range(12)]


def _halve_bias(ctx: AlgorithmContext) -> list[str]:
    """Plan stage: shifts the FC bias (a stand-in for bias correction)."""
    bias = next(t for t in ctx.graph.tensors if t.name == "b")
    bias.data = bias.data * np.float32(0.5)
    return ["halved b"]


def _double_weights(ctx: AlgorithmContext) -> list[str]:
    """Float stage: doubles the FC weights and bias, so calibration must see a doubled output range."""
    for t in ctx.graph.tensors:
        if t.name in ("w", "b"):
            t.data = t.data * np.float32(2)
    return ["doubled w, b"]


@pytest.fixture
def fake_algorithms(monkeypatch):
    entries = {
        "halve_bias": registry.Algorithm("halve_bias", "plan", f"{__name__}:_halve_bias", "test", 0),
        "double_weights": registry.Algorithm("double_weights", "float", f"{__name__}:_double_weights", "test", 0),
    }
    monkeypatch.setattr(registry, "ALGORITHMS", entries)


def test_unknown_algorithm_is_a_plan_error_listing_the_known_ones(fake_algorithms):
    model = edgeq.load(dense_graph())
    with pytest.raises(PlanError, match=r"unknown algorithm.*'nope'.*known: double_weights, halve_bias"):
        edgeq.quantize(model, edgeq.calibration.arrays(np.concatenate(CALIB)), algorithms=["nope"], progress=False)


def test_plan_stage_change_travels_in_the_plan_and_reproduces_the_artifact(fake_algorithms, tmp_path):
    model = edgeq.load(dense_graph())
    calib = edgeq.calibration.arrays(np.concatenate(CALIB))
    qm = edgeq.quantize(model, calib, observer="minmax", algorithms="halve_bias", progress=False)
    original = next(t for t in model.graph.tensors if t.name == "b").data
    np.testing.assert_array_equal(qm.plan.weights["b"], original * np.float32(0.5))
    assert list(qm.plan.weights) == ["b"]
    assert [r.name for r in qm.algorithms] == ["halve_bias"] and qm.algorithms[0].notes == ["halved b"]
    # The bias in the file is the halved one, encoded with the plan's scale.
    enc = qm.plan.tensors["b"]
    stored = next(t for t in qm.graph.tensors if t.name == "b").data
    np.testing.assert_array_equal(
        stored, quantize_array(original * np.float32(0.5), enc.scales(), enc.zero_points(), 0, enc.dtype)
    )
    qm.plan.save(tmp_path / "plan.json")
    again = edgeq.quantize(model, plan=QuantPlan.load(tmp_path / "plan.json"), progress=False)
    assert again.tflite == qm.tflite


def test_float_stage_change_is_what_calibration_sees(fake_algorithms):
    model = edgeq.load(dense_graph())
    calib = edgeq.calibration.arrays(np.concatenate(CALIB))
    plain = edgeq.quantize(model, calib, observer="minmax", progress=False)
    doubled = edgeq.quantize(model, calib, observer="minmax", algorithms=["double_weights"], progress=False)
    lo, hi = plain.plan.ranges["fc"]
    lo2, hi2 = doubled.plan.ranges["fc"]
    assert lo2 == pytest.approx(2 * lo, rel=1e-5) and hi2 == pytest.approx(2 * hi, rel=1e-5)
    assert sorted(doubled.plan.weights) == ["b", "w"]


def test_plan_weights_that_match_no_constant_are_refused(fake_algorithms):
    model = edgeq.load(dense_graph())
    qm = edgeq.quantize(model, edgeq.calibration.arrays(np.concatenate(CALIB)), progress=False)
    qm.plan.weights["w"] = np.zeros((3, 3), np.float32)
    with pytest.raises(PlanError, match=r'plan.weights\["w"\]'):
        edgeq.quantize(model, plan=qm.plan, progress=False)
