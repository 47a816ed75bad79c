"""Mixed precision under an accuracy budget: promote the fewest layers (INT4 weights to int8, or an op to
float) until the user's metric holds on the user's evaluation data.

Candidates are ordered once, then promoted one at a time in that order, the plan rebuilt from the first
plan's calibrated ranges (no second calibration) and the model measured after each, until the budget holds.
Two orders: "gain" measures, for each candidate, the whole quantized model's output SQNR with that one layer
promoted (a continuous stand-in for top-1 agreement, which moves in steps of 1/samples) and promotes the
largest gains first; "sensitivity" ranks by edgeq.sensitivity (the layer alone quantized, lowest SQNR first).
Before the search the model with every candidate promoted is measured: if even that misses the budget, the
search stops there and says so.

Activation promotions (int8 to int16x8 per layer) are not offered: see docs/BENCHMARKS.md, "Sensitivity and
mixed precision", for what they need.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.sensitivity import Evaluator, layer_ops, layer_sensitivities
from edgeq.errors import PlanError
from edgeq.frontends.tflite import FloatModel
from edgeq.ir.graph import Graph
from edgeq.quant.overrides import FLOAT, op_name, short_name
from edgeq.quant.plan import QuantPlan
from edgeq.quant.planner import PlanOptions, build_plan
from edgeq.quant.schemes import SCHEMES

ORDERS = ("gain", "sensitivity")


@dataclass(frozen=True)
class Budget:
    """The least fidelity the quantized model must keep on `eval` (edgeq.calibration sources or arrays)."""

    metric: str = "top1_agreement"  # or "sqnr" (pooled output SQNR, dB)
    min: float = 0.99
    eval: object = None
    max_samples: int | None = None
    order: str = "sensitivity"  # how candidates are ranked: "sensitivity" or "gain" (see the module docstring)


@dataclass
class Promotion:
    op: int
    kind: str
    name: str
    to: str  # the fallback the op took
    value: float  # the budget metric once this and every earlier promotion are in


@dataclass
class BudgetResult:
    """What the search did: the metric before and after, and each promoted layer in order."""

    metric: str
    min: float
    order: str
    fallback: str
    met: bool
    start: float
    final: float
    candidates: int
    reachable: float | None  # the metric with every candidate promoted (None when the start already met it)
    evaluations: int  # quantized models rendered and measured
    seconds: float
    promoted: list[Promotion] = field(default_factory=list)

    def notes(self) -> list[str]:
        verdict = "met" if self.met else "NOT met"
        head = (
            f"accuracy budget {self.metric} >= {self.min} {verdict}: {self.start:.4f} -> {self.final:.4f} with "
            f"{len(self.promoted)} of {self.candidates} candidate layers promoted to {self.fallback} (order: "
            f"{self.order}, {self.evaluations} models measured, {self.seconds:.0f} s)"
        )
        if not self.met and self.reachable is not None and self.reachable < self.min:
            head += f"; promoting all {self.candidates} reaches only {self.reachable:.4f}"
        return [head] + [f"promoted {p.kind} '{short_name(p.name)}' -> {p.to}: {p.value:.4f}" for p in self.promoted]

    def to_dict(self) -> dict:
        return asdict(self)


def candidates(model: FloatModel, plan: QuantPlan, fallback: str) -> list[int]:
    """Ops a promotion to `fallback` changes: ops with INT4 weights for a weight scheme, every layer for float."""
    if fallback == FLOAT:
        return layer_ops(plan, model)
    graph = model.graph
    out = []
    for i in layer_ops(plan, model):
        encodings = [plan.tensors.get(graph.tensors[t].name) for t in graph.ops[i].inputs if t >= 0]
        if any(e is not None and e.dtype == "int4" for e in encodings):
            out.append(i)
    return out


def meet_budget(
    model: FloatModel,
    base: Graph,
    plan: QuantPlan,
    options: PlanOptions,
    budget: Budget,
    fallback: str,
    render,
    progress: bool = False,
) -> tuple[QuantPlan, BudgetResult]:
    """The plan with the fewest promotions (in the budget's order) that meets the budget, and the record.
    `base` is the float graph `plan` was calibrated on (after float-stage algorithms); `render(plan)` returns
    the host .tflite bytes of a plan."""
    from edgeq.api import _changed_constants, _materialized

    _check(budget, fallback, options)
    start_time = time.perf_counter()
    evaluator = Evaluator(model, _materialized(model.graph, budget.eval)[: budget.max_samples], top1=True)
    if budget.metric == "top1_agreement" and evaluator.classifier is None:
        raise PlanError("budget metric 'top1_agreement' needs a classifier output (one vector of scores per sample)")
    evaluations = 0

    def measure(p: QuantPlan) -> tuple[float, float]:
        nonlocal evaluations
        evaluations += 1
        sqnr, top1 = evaluator.score(render(p))
        return (top1 if budget.metric == "top1_agreement" else sqnr), sqnr

    reachable = None

    def result(met: bool, final: float, promoted: list[Promotion]) -> BudgetResult:
        return BudgetResult(budget.metric, budget.min, budget.order, fallback, met, start, final, len(pool),
                            reachable, evaluations, time.perf_counter() - start_time, promoted)

    pool = candidates(model, plan, fallback)
    base_weights = _changed_constants(model.graph, base)

    def promote(ops: set[int]) -> QuantPlan:
        return replan(base, plan, options, ops, fallback, base_weights)

    start, _ = measure(plan)
    if start >= budget.min:
        return plan, result(True, start, [])
    everything = promote(set(pool))
    reachable, _ = measure(everything)
    if reachable < budget.min:
        return plan, result(False, start, [])
    if budget.order == "gain":
        gains = {i: measure(promote({i}))[1] for i in _bar(pool, "gains", progress)}
        ranked = sorted(pool, key=lambda i: -gains[i])
    else:
        alone = {s.op: s.sqnr_db for s in layer_sensitivities(model, plan, evaluator, progress)}
        ranked = sorted(pool, key=lambda i: alone[i])
    promoted: list[Promotion] = []
    chosen: set[int] = set()
    current = plan
    for i in _bar(ranked, "promoting", progress):
        chosen.add(i)
        current = promote(chosen)
        value, _ = measure(current)
        promoted.append(Promotion(i, model.graph.ops[i].kind, op_name(model.graph, i), fallback, value))
        if value >= budget.min:
            return current, result(True, value, promoted)
    return current, result(False, promoted[-1].value if promoted else start, promoted)


def replan(
    graph: Graph,
    plan: QuantPlan,
    options: PlanOptions,
    ops: set[int],
    fallback: str,
    base_weights: dict[str, np.ndarray],
) -> QuantPlan:
    """`plan` rebuilt over the calibrated float `graph` from the plan's own ranges, with `ops` promoted to
    `fallback` (on top of the options' overrides). A promoted op's constants go back to the calibrated graph's
    (`base_weights`: what float-stage algorithms changed): a plan-stage rounding chose them for INT4."""
    ranges = {i: plan.ranges[t.name] for i, t in enumerate(graph.tensors) if t.name in plan.ranges}
    weight_schemes, floats = dict(options.weight_schemes), dict(options.float_overrides)
    for i in ops:
        if fallback == FLOAT:
            floats[i] = f"budget:{fallback}"
        else:
            weight_schemes[i] = SCHEMES[fallback]
    # Everything else the options carry (target adaptations: per-tensor weights, uint8) stays as it was.
    opts = replace(options, weight_schemes=weight_schemes, float_overrides=floats)
    new = build_plan(graph, ranges, opts, plan.model_sha256)
    reverted = {graph.tensors[t].name for i in ops for t in graph.ops[i].inputs if t >= 0}
    new.weights = {n: w for n, w in plan.weights.items() if n not in reverted}
    new.weights.update({n: w for n, w in base_weights.items() if n in reverted})
    new.notes = plan.notes + [n for n in new.notes if n not in plan.notes]
    return new


def _check(budget: Budget, fallback: str, options: PlanOptions) -> None:
    if budget.metric not in ("top1_agreement", "sqnr"):
        raise PlanError(f"budget metric {budget.metric!r}: choose top1_agreement or sqnr")
    if budget.order not in ORDERS:
        raise PlanError(f"budget order {budget.order!r}: choose {' or '.join(ORDERS)}")
    if budget.eval is None:
        raise PlanError("an accuracy budget needs evaluation data (Budget(eval=...))")
    if fallback == "int16x8":
        raise PlanError(
            "fallback 'int16x8' (int16 activations per layer) is not implemented: a promoted op needs int16 "
            "twins of its input and output encodings and QUANTIZE int8<->int16 where it meets int8 ops; use "
            "scheme='int16x8' for the whole model, or fallback='float'"
        )
    if fallback != FLOAT and (fallback not in SCHEMES or SCHEMES[fallback].weight_dtype != "int8" or
                              SCHEMES[fallback].activation_dtype != options.scheme.activation_dtype):
        raise PlanError(f"fallback {fallback!r}: choose int8 (INT4 weights to int8) or float")
    if fallback != FLOAT and options.scheme.weight_dtype != "int4":
        raise PlanError(f"fallback {fallback!r} promotes INT4 weights: scheme {options.scheme.name} has none")


def _bar(items: list[int], what: str, progress: bool):
    return tqdm(items, desc=f"budget: {what}", disable=not progress, leave=False)
