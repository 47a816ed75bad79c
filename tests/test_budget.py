"""Mixed precision under an accuracy budget: the fewest promotions (INT4 weights to int8, or ops to float)
until the metric holds, both candidate orders, an unreachable budget said so, and the re-planning exact.

Run with -s to see the promotions."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgeq
import edgeq.runtime
from edgeq.algorithms.budget import replan
from edgeq.api import _materialized
from edgeq.cli import main
from edgeq.errors import PlanError
from edgeq.quant.planner import PlanOptions
from edgeq.quant.schemes import get_scheme
from tests.small_convnet import images, small_convnet

CALIB, EVAL = edgeq.calibration.arrays(images(48, 0)), edgeq.calibration.arrays(images(64, 1))


def _sqnr(model: edgeq.FloatModel, qm: edgeq.QuantizedModel) -> float:
    return edgeq.compare(model, qm, EVAL, layers=0).sqnr_db


@pytest.mark.parametrize("order", ["gain", "sensitivity"])
def test_int4_weights_promoted_to_int8_until_the_sqnr_budget_holds(order):
    model = edgeq.load(small_convnet())
    budget = edgeq.Budget(metric="sqnr", min=25.0, eval=EVAL, order=order)
    qm = edgeq.quantize(model, CALIB, scheme="int4-channel", progress=False, accuracy_budget=budget)
    result = qm.budget
    print("\n" + "\n".join(result.notes()))
    assert result.met and result.candidates == 4 and result.start < 14.0
    assert [p.name for p in result.promoted] == ["head/fc", "block/project"]
    assert result.promoted[0].value < 25.0 <= result.promoted[1].value == result.final
    assert {n: qm.plan.tensors[f"{n}/w"].dtype for n in ("stem/conv", "block/dw", "block/project", "head/fc")} == {
        "stem/conv": "int4", "block/dw": "int4", "block/project": "int8", "head/fc": "int8"}
    assert _sqnr(model, qm) == pytest.approx(result.final, abs=1e-9)  # what was measured is what ships
    assert any(n.startswith("accuracy budget sqnr >= 25.0 met") for n in qm.plan.notes)


def test_a_broken_layer_goes_float_and_an_unreachable_budget_says_so():
    model = edgeq.load(small_convnet(broken=True))
    budget = edgeq.Budget(metric="top1_agreement", min=0.95, eval=EVAL)
    qm = edgeq.quantize(model, CALIB, scheme="int4-channel", progress=False, accuracy_budget=budget, fallback="float")
    assert qm.budget.met and [(p.name, p.to) for p in qm.budget.promoted] == [("block/project", "float")]
    assert qm.budget.start < 0.1 <= 0.95 <= qm.budget.final
    assert [f.index for f in qm.plan.float_ops] == [2]
    # int8 weights cannot rescue it: the outlier takes the int8 levels too.
    qm = edgeq.quantize(model, CALIB, scheme="int4-channel", progress=False, accuracy_budget=budget)
    assert not qm.budget.met and qm.budget.promoted == [] and qm.budget.reachable < 0.1
    assert "promoting all 4 reaches only" in qm.budget.notes()[0]
    assert all(e.dtype != "int8" for n, e in qm.plan.tensors.items() if n.endswith("/w"))


def test_replan_without_promotions_is_the_same_plan():
    model = edgeq.load(small_convnet())
    qm = edgeq.quantize(model, CALIB, scheme="int4-channel", progress=False)
    again = replan(model.graph, qm.plan, PlanOptions(get_scheme("int4-channel")), set(), "int8", {})
    assert again.tensors == qm.plan.tensors


def test_budget_mistakes_are_plan_errors():
    model = edgeq.load(small_convnet())
    with pytest.raises(PlanError, match=r"fallback 'int16x8' promotes int8 activations: scheme int16x8 has none"):
        edgeq.quantize(model, CALIB, scheme="int16x8", progress=False, accuracy_budget=edgeq.Budget(eval=EVAL),
                       fallback="int16x8")
    with pytest.raises(PlanError, match="scheme int8 has none"):
        edgeq.quantize(model, CALIB, progress=False, accuracy_budget=edgeq.Budget(eval=EVAL))
    with pytest.raises(PlanError, match="needs evaluation data"):
        edgeq.quantize(model, CALIB, scheme="int4-channel", progress=False, accuracy_budget=edgeq.Budget())


def test_cosine_budget_is_the_mean_output_cosine_and_holds():
    model = edgeq.load(small_convnet())
    budget = edgeq.Budget(metric="cosine", min=0.999, eval=EVAL)
    qm = edgeq.quantize(model, CALIB, scheme="int4-channel", progress=False, accuracy_budget=budget)
    result = qm.budget
    assert result.met and result.start < 0.999 <= result.final and result.promoted
    # What was measured is the mean over samples of the cosine between float and quantized outputs.
    runtime_f, runtime_q = edgeq.runtime.LiteRT(model.host_tflite), edgeq.runtime.LiteRT(qm.host_tflite)
    cosines = []
    for sample in _materialized(model.graph, EVAL):
        f, q = (r.run(sample)[0].ravel().astype(np.float64) for r in (runtime_f, runtime_q))
        cosines.append(f @ q / np.linalg.norm(f) / np.linalg.norm(q))
    assert np.mean(cosines) == pytest.approx(result.final, abs=1e-9)


def test_cli_budget_promotes_and_reports(tmp_path, capsys):
    path, calib, evaluation = tmp_path / "net.tflite", tmp_path / "calib.npy", tmp_path / "eval.npy"
    path.write_bytes(small_convnet())
    np.save(calib, images(48, 0))
    np.save(evaluation, images(64, 1))
    argv = ["convert", str(path), "--calib", str(calib), "--scheme", "int4-channel", "-o", str(tmp_path / "out"),
            "--quiet", "--compare", "0", "--json"]
    assert main([*argv, "--budget", "sqnr=25", "--budget-eval", str(evaluation), "--budget-order", "gain"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["budget"]["met"] and [p["name"] for p in summary["budget"]["promoted"]] == [
        "head/fc", "block/project"]  # the same promotions as the Python call above, on the same data
    plan = edgeq.QuantPlan.load(summary["artifacts"]["plan"])
    assert plan.tensors["head/fc/w"].dtype == "int8" and plan.tensors["stem/conv/w"].dtype == "int4"
    assert main([*argv, "--budget", "sqnr"]) == 2
    assert "give METRIC=MIN" in capsys.readouterr().err
    assert main([*argv, "--budget", "accuracy=0.9"]) == 2
    assert "budget metric 'accuracy': choose sqnr, top1_agreement, cosine" in capsys.readouterr().err
    assert main([*argv, "--fallback", "float"]) == 2
    assert "--fallback and --budget-eval apply with --budget" in capsys.readouterr().err
