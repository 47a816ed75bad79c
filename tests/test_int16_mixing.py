"""int8 and int16x8 activations per layer: the plan's types and twins, the QUANTIZE int8 <-> int16 kernel
bit-exact against LiteRT BUILTIN_REF, overrides "int16x8", and the budget's int16x8 fallback.

Run with -s to see the promotions."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgeq
from edgeq.cli import main
from edgeq.errors import PlanError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.quant.plan import QuantPlan
from edgeq.quant.planner import PlanOptions, build_plan
from edgeq.quant.schemes import get_scheme
from tests.graphs import variance_graph
from tests.small_convnet import images, small_convnet

CALIB, EVAL = edgeq.calibration.arrays(images(48, 0)), edgeq.calibration.arrays(images(64, 1))
N = 257  # odd, so no vectorized path hides a remainder


def _q(scale: float, zero_point: int) -> Quantization:
    return Quantization(np.array([scale], np.float32), np.array([zero_point], np.int64))


def _requantize_chain(src: str, pairs: list[tuple[float, int, float, int]]) -> bytes:
    """An integer input of type `src` requantized back and forth: src -> other -> src -> ..., one QUANTIZE
    per (in scale, in zero point, out scale, out zero point); every tensor is a graph output."""
    other = {"int8": "int16", "int16": "int8"}
    dtype = src
    tensors = [Tensor("x", (1, N), dtype, quant=_q(pairs[0][0], pairs[0][1]))]
    ops = []
    for k, (_, _, out_scale, out_zp) in enumerate(pairs):
        dtype = other[dtype]
        tensors.append(Tensor(f"q{k}", (1, N), dtype, quant=_q(out_scale, out_zp if dtype == "int8" else 0)))
        ops.append(Op("QUANTIZE", [k], [k + 1]))
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=list(range(1, len(tensors)))))


@pytest.mark.parametrize("src", ["int8", "int16"])
def test_quantize_int8_int16_is_bit_exact_against_ref(src):
    # Multipliers above 1 (int8 -> int16: 256.9x, 3.1x), near 1, and far below (int16 -> int8: 1/250, 1/37.3).
    pairs = [(0.0235, -17, 0.0235 / 256.9, 0), (0.0235 / 256.9, 0, 0.0235 * 1.0004, 5), (0.0235 * 1.0004, 5,
             0.00761, 0), (0.00761, 0, 0.00761 * 37.3, -128), (0.00761 * 37.3, -128, 0.00761 * 37.3 / 3.1, 0)]
    if src == "int16":
        pairs = [(pairs[0][2], 0, pairs[0][0], pairs[0][1]), *pairs[1:]]
        pairs[1] = (pairs[0][2], pairs[0][3], pairs[1][2] * 250 / 256.9, 0)
    result = edgeq.verify(_requantize_chain(src, pairs), samples=6, seed=3)
    assert result.bit_exact, result.summary()
    assert result.ops == len(pairs) and result.values_compared == 6 * len(pairs) * N


def _branches() -> bytes:
    """x [1, 8] -> FC a, FC b -> CONCATENATION -> FC head -> SOFTMAX: a same-encoding op fed by both types, and a
    fixed output encoding."""
    rng = np.random.default_rng(5)
    tensors = [Tensor("x", (1, 8), "float32")]

    def add(name, shape, data=None):
        tensors.append(Tensor(name, shape, "float32", data=data))
        return len(tensors) - 1

    fc = {"options": {"fusedActivationFunction": 0}, "options_type": "FullyConnectedOptions"}
    ops, outs = [], {}
    for name, src, units, width in (("a", 0, 8, 8), ("b", 0, 8, 8), ("head", None, 6, 16)):
        w = add(f"{name}/w", (units, width), (rng.normal(size=(units, width)) * 0.5).astype(np.float32))
        b = add(f"{name}/b", (units,), (rng.normal(size=units) * 0.1).astype(np.float32))
        if src is None:
            src = add("cat", (1, 16))
            ops.append(Op("CONCATENATION", [outs["a"], outs["b"]], [src], options={"axis": 1},
                          options_type="ConcatenationOptions"))
        outs[name] = add(name, (1, units))
        ops.append(Op("FULLY_CONNECTED", [src, w, b], [outs[name]], **fc))
    sm = add("sm", (1, 6))
    ops.append(Op("SOFTMAX", [outs["head"]], [sm], options={"beta": 1.0}, options_type="SoftmaxOptions"))
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[sm]))


def test_same_encoding_groups_split_by_type_and_fixed_encodings_come_from_the_int16_table():
    model = edgeq.load(_branches())
    calib = [[x[None]] for x in np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)]
    qm = edgeq.quantize(model, edgeq.calibration.arrays(np.stack([c[0][0] for c in calib])), progress=False,
                        overrides={"a": "int16x8", "sm": "int16x8"}, observer="minmax")
    plan = qm.plan
    assert {n: plan.tensors[n].dtype for n in ("x", "a", "b", "cat", "head", "sm")} == {
        "x": "int8", "a": "int16", "b": "int8", "cat": "int16", "head": "int8", "sm": "int16"}
    assert (plan.tensors["sm"].scale, plan.tensors["sm"].zero_point) == ([1 / 32768], [0])
    # CONCATENATION follows its int16 input: b is re-encoded like the concatenation's output; head reads an int8
    # twin of it, SOFTMAX an int16 twin of head's output; a reads x (int8) as an int16 twin.
    requant = {(r.op, r.input): (r.like, r.encoding and r.encoding.dtype) for r in plan.requantize}
    assert requant == {(2, 1): ("cat", None), (0, 0): ("", "int16"), (3, 0): ("", "int8"), (4, 0): ("", "int16")}
    result = edgeq.verify(qm.tflite, inputs=calib[:8])
    assert result.bit_exact, result.summary()
    assert edgeq.compare(model, qm, edgeq.calibration.arrays(np.stack([c[0][0] for c in calib])), layers=0).sqnr_db > 30


@pytest.fixture(scope="module")
def model():
    return edgeq.load(small_convnet())


def _quantize(model, scheme="int8", overrides=None) -> edgeq.QuantizedModel:
    return edgeq.quantize(model, CALIB, scheme=scheme, progress=False, overrides=overrides, observer="minmax")


def _sqnr(model, qm) -> float:
    return edgeq.compare(model, qm, EVAL, layers=0).sqnr_db


def test_promoted_run_is_int16_with_twins_where_it_meets_int8(model):
    qm = _quantize(model, overrides={"block/*": "int16x8"})
    plan = qm.plan
    types = {n: plan.tensors[n].dtype for n in ("stem/conv", "block/dw", "block/project", "pool/mean", "head/fc")}
    assert types == {"stem/conv": "int8", "block/dw": "int16", "block/project": "int16", "pool/mean": "int8",
                     "head/fc": "int8"}
    assert [plan.tensors[f"block/{n}/b"].dtype for n in ("dw", "project")] == ["int64", "int64"]
    assert [plan.tensors[f"block/{n}/w"].dtype for n in ("dw", "project")] == ["int8", "int8"]
    assert plan.tensors["block/dw"].zero_point == [0] and plan.tensors["stem/conv/b"].dtype == "int32"
    # block/dw reads the int8 stem output as an int16 twin, MEAN reads block/project's int16 output as int8;
    # block/project reads block/dw's int16 output directly (the run shares it).
    twins = [(r.op, r.input, r.encoding.dtype) for r in plan.requantize]
    assert twins == [(1, 0, "int16"), (3, 0, "int8")]
    # Each twin spans its tensor's own planned range.
    lo, hi = plan.ranges["stem/conv"]
    assert plan.requantize[0].encoding.scale[0] == pytest.approx(max(abs(lo), abs(hi)) / 32767, rel=1e-6)
    assert plan.tensors["block/dw/b"].scale[0] == pytest.approx(
        np.float32(plan.requantize[0].encoding.scale[0]) * np.float32(plan.tensors["block/dw/w"].scale[0]), rel=1e-6)
    assert QuantPlan.from_json(plan.to_json()).requantize == plan.requantize
    result = edgeq.verify(qm.tflite, inputs=[[x[None]] for x in images(6, 2)])
    assert result.bit_exact, result.summary()
    kinds = [op.kind for op in qm.graph.ops]
    assert kinds.count("QUANTIZE") == 3 and kinds.count("DEQUANTIZE") == 1  # input, two twins; output


def test_core_ml_w8a8_refuses_int16_promotions_and_w8_keeps_their_weights(model, tmp_path):
    qm = _quantize(model, overrides={"block/*": "int16x8"})
    with pytest.raises(PlanError, match=r"promotes 3 tensor\(s\) to int16 \(block/dw, block/project, op 1 input 0"):
        qm.export_coreml(tmp_path / "mixed.mlpackage", mode="w8a8")
    assert not (tmp_path / "mixed.mlpackage").exists()
    result = edgeq.verify_coreml(qm.export_coreml(tmp_path / "w8.mlpackage", mode="w8", weight_threshold=0), qm)
    assert result.weights_exact and result.weights_checked > 0, result.summary()


def test_every_op_promoted_is_the_int16x8_scheme(model):
    mixed, whole, int8 = _quantize(model, overrides={"*": "int16x8"}), _quantize(model, "int16x8"), _quantize(model)
    assert mixed.plan.requantize == []
    assert {n: (e.dtype, e.scale, e.zero_point) for n, e in mixed.plan.tensors.items()} == {
        n: (e.dtype, e.scale, e.zero_point) for n, e in whole.plan.tensors.items()}
    def contents(qm):  # the file's metadata names the plan's scheme; the graphs must be the same
        return [(t.name, t.dtype, None if t.data is None else t.data.tobytes()) for t in qm.graph.tensors]

    assert contents(mixed) == contents(whole) and [o.kind for o in mixed.graph.ops] == [o.kind for o in whole.graph.ops]
    assert _sqnr(model, mixed) == _sqnr(model, whole) > _sqnr(model, int8) + 3.0


def test_int16x8_override_mistakes_and_targets(model):
    with pytest.raises(PlanError, match="int16x8 promotes int8 activations: scheme int16x8 has none"):
        _quantize(model, "int16x8", {"head/*": "int16x8"})
    with pytest.raises(PlanError, match="target nnapi rejects int16 activations"):
        edgeq.quantize(model, CALIB, overrides={"head/*": "int16x8"}, targets=["nnapi"], progress=False)
    budget = edgeq.Budget(metric="sqnr", min=50.0, eval=EVAL)
    with pytest.raises(PlanError, match="target edgetpu rejects int16 activations"):
        edgeq.quantize(model, CALIB, accuracy_budget=budget, fallback="int16x8", targets=["edgetpu"], progress=False)
    with pytest.raises(PlanError, match="io is int8"):
        edgeq.quantize(model, CALIB, io="int8", overrides={"head/*": "int16x8"}, progress=False)


@pytest.mark.parametrize("order", ["sensitivity", "greedy"])
def test_budget_promotes_int8_activations_to_int16(model, order):
    budget = edgeq.Budget(metric="sqnr", min=37.0, eval=EVAL, order=order)
    qm = edgeq.quantize(model, CALIB, scheme="int8", progress=False, accuracy_budget=budget, fallback="int16x8",
                        observer="minmax")
    result = qm.budget
    print("\n" + "\n".join(result.notes()))
    assert result.met and result.start < 36.0 <= 37.0 <= result.final and result.candidates == 5
    assert sorted(p.name for p in result.promoted) == ["head/fc", "pool/mean"]
    assert all(p.to == "int16x8" and p.why for p in result.promoted)
    assert _sqnr(model, qm) == pytest.approx(result.final, abs=1e-9)  # what was measured is what ships
    assert qm.plan.tensors["head/fc/b"].dtype == "int64" and qm.plan.tensors["block/project"].dtype == "int8"
    result_v = edgeq.verify(qm.tflite, inputs=[[x[None]] for x in images(4, 2)])
    assert result_v.bit_exact, result_v.summary()


def test_unreachable_int16x8_budget_says_what_every_promotion_gives(model):
    budget = edgeq.Budget(metric="sqnr", min=60.0, eval=EVAL, order="greedy")
    qm = edgeq.quantize(model, CALIB, progress=False, accuracy_budget=budget, fallback="int16x8", observer="minmax")
    whole = _sqnr(model, _quantize(model, "int16x8"))
    assert not qm.budget.met and qm.budget.promoted == [] and qm.budget.evaluations == 2
    assert qm.budget.reachable == pytest.approx(whole, abs=1e-9)


def test_cli_override_int16x8(tmp_path, capsys):
    path, calib = tmp_path / "m.tflite", tmp_path / "calib.npy"
    path.write_bytes(small_convnet())
    np.save(calib, images(48, 0))
    argv = ["convert", str(path), "--calib", str(calib), "-o", str(tmp_path / "out"), "--quiet", "--compare", "0"]
    assert main([*argv, "--override", "block/*=int16x8", "--json"]) == 0
    plan = QuantPlan.load(json.loads(capsys.readouterr().out)["artifacts"]["plan"])
    assert [plan.tensors[n].dtype for n in ("stem/conv", "block/dw", "block/project", "head/fc")] == [
        "int8", "int16", "int16", "int8"]
    assert [r.encoding.dtype for r in plan.requantize] == ["int16", "int8"]


def test_int16x8_budget_takes_an_op_without_an_int16_kernel_to_float():
    # A layer norm's variance with an outlier feature: the int8 squares lose the small features, and LiteRT has
    # no int16x8 SQUARED_DIFFERENCE, so the budget promotes that op to float rather than stopping short.
    graph, scales = variance_graph()
    model = edgeq.load(graph)
    rng = np.random.default_rng(0)
    calib, evaluation = (edgeq.calibration.arrays((rng.normal(size=(n, 16, 32)) * scales).astype(np.float32))
                         for n in (32, 32))
    budget = edgeq.Budget(metric="sqnr", min=40.0, eval=evaluation, order="gain")
    qm = edgeq.quantize(model, calib, progress=False, accuracy_budget=budget, fallback="int16x8", observer="minmax")
    result = qm.budget
    print("\n" + "\n".join(result.notes()))
    assert result.met and result.candidates == 3 and result.start < 30.0 and result.final >= 40.0
    assert ("squared", "float") in [(p.name, p.to) for p in result.promoted]
    assert [f.kind for f in qm.plan.float_ops] == ["SQUARED_DIFFERENCE"]
    assert "no int16x8 kernel" in qm.plan.float_ops[0].reason


def test_int16_promoted_tensors_take_the_wide_ranges(model):
    # auto keeps the percentile or the min/max plan for int8 and hands build_plan the min/max ranges for the
    # promoted ops' int16 tensors, as the int16x8 scheme ranges: 65536 levels leave nothing for clipping to buy.
    graph = model.graph
    ranges = {}
    for obs in ("minmax", "percentile"):
        named = edgeq.quantize(model, CALIB, observer=obs, progress=False).plan.ranges
        ranges[obs] = {i: named[t.name] for i, t in enumerate(graph.tensors) if t.name in named}
    project = next(i for i, t in enumerate(graph.tensors) if t.name == "block/project")
    op = next(i for i, o in enumerate(graph.ops) if o.outputs[0] == project)
    options = PlanOptions(get_scheme("int8"), int16_ops=frozenset({op}))
    plan = build_plan(graph, ranges["percentile"], options, "", int16_ranges=ranges["minmax"])
    assert ranges["minmax"][project] != ranges["percentile"][project]
    assert plan.tensors["block/project"].dtype == "int16" and plan.ranges["block/project"] == ranges["minmax"][project]
    dw = next(i for i, t in enumerate(graph.tensors) if t.name == "block/dw")
    assert plan.tensors["block/dw"].dtype == "int8" and plan.ranges["block/dw"] == ranges["percentile"][dw]
    assert build_plan(graph, ranges["percentile"], options, "").ranges["block/project"] == ranges["percentile"][project]
