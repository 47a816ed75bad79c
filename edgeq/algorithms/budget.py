"""Mixed precision under an accuracy budget: promote the fewest layers (INT4 weights to int8, int8 activations
to int16x8, or an op to float) until the user's metric holds on the user's evaluation data.

The plan is rebuilt from the first plan's calibrated ranges (no second calibration) after each promotion and
the model measured, until the budget holds. Three orders: "gain" measures, for each candidate, the whole
quantized model's output SQNR with that one layer promoted (a continuous stand-in for top-1 agreement, which
moves in steps of 1/samples) and promotes the largest gains first; "sensitivity" ranks by edgeq.sensitivity
(the layer alone quantized, lowest SQNR first) and promotes one layer at a time in that order; "greedy" keeps
that ranking but re-measures a short list (the next `shortlist` ranked layers) on top of what is already
promoted and takes the best gain per promoted op. Under fallback "int16x8" a greedy step promotes a run:
the layer and the layers reading its output (through PAD, RESHAPE and the like), because an int16 output
read by an int8 layer is requantized to int8 and buys nothing; an op LiteRT has no int16x8 kernel for (the
SQUARED_DIFFERENCE of a decomposed layer norm) is promoted to float instead. Before the search the model with every
candidate promoted is measured: if even that misses the budget, the search stops there and says so.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.sensitivity import METRICS, Evaluator, layer_ops, layer_sensitivities
from edgeq.errors import PlanError
from edgeq.frontends.tflite import FloatModel
from edgeq.ir.graph import Graph
from edgeq.quant.op_rules import RULES
from edgeq.quant.overrides import FLOAT, INT16X8, op_name, short_name
from edgeq.quant.plan import QuantPlan
from edgeq.quant.planner import PlanOptions, build_plan
from edgeq.quant.schemes import SCHEMES

ORDERS = ("gain", "sensitivity", "greedy")


@dataclass(frozen=True)
class Budget:
    """The least fidelity the quantized model must keep on `eval` (edgeq.calibration sources or arrays)."""

    metric: str = "top1_agreement"  # or "sqnr" (pooled output SQNR, dB) or "cosine" (mean over samples)
    min: float = 0.99
    eval: object = None
    max_samples: int | None = None
    order: str = "sensitivity"  # "sensitivity", "gain" or "greedy" (see the module docstring)
    shortlist: int = 4  # "greedy": ranked layers re-measured per step


@dataclass
class Promotion:
    op: int
    kind: str
    name: str
    to: str  # the fallback the op took
    value: float  # the budget metric once this and every earlier promotion are in
    why: str = ""  # what chose it: its sensitivity rank, or the greedy step's measured gain


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
            f"{len(self.promoted)} of {self.candidates} candidate layers promoted to {self.fallback}"
            f"{' (float: no int16x8 kernel)' if any(p.to != self.fallback for p in self.promoted) else ''} (order: "
            f"{self.order}, {self.evaluations} models measured, {self.seconds:.0f} s)"
        )
        if not self.met and self.reachable is not None and self.reachable < self.min:
            head += f"; promoting all {self.candidates} reaches only {self.reachable:.4f}"
        return [head] + [f"promoted {p.kind} '{short_name(p.name)}' -> {p.to}: {p.value:.4f} ({p.why})"
                         for p in self.promoted]

    def to_dict(self) -> dict:
        return asdict(self)


def candidates(model: FloatModel, plan: QuantPlan, fallback: str) -> list[int]:
    """Ops a promotion to `fallback` changes: ops with INT4 weights for a weight scheme, every layer for float,
    every int8 layer under int16x8 (see promoted_to)."""
    graph = model.graph
    if fallback == FLOAT:
        return layer_ops(plan, model)
    if fallback == INT16X8:  # int8 layers; those LiteRT has no int16 kernel for go float (promoted_to)
        return [i for i in layer_ops(plan, model)
                if plan.tensors[graph.tensors[graph.ops[i].outputs[0]].name].dtype == "int8"]
    out = []
    for i in layer_ops(plan, model):
        encodings = [plan.tensors.get(graph.tensors[t].name) for t in graph.ops[i].inputs if t >= 0]
        if any(e is not None and e.dtype == "int4" for e in encodings):
            out.append(i)
    return out


def promoted_to(graph: Graph, index: int, fallback: str) -> str:
    """What promoting op `index` to `fallback` makes it: under int16x8, an op without an int16x8 kernel in
    LiteRT (SQUARED_DIFFERENCE of a decomposed layer norm, HARD_SWISH...) goes float instead, so a budget
    is not left short by the one op it cannot widen."""
    if fallback == INT16X8 and not RULES[graph.ops[index].kind].int16:
        return FLOAT
    return fallback


def meet_budget(
    model: FloatModel,
    base: Graph,
    plan: QuantPlan,
    options: PlanOptions,
    budget: Budget,
    fallback: str,
    render,
    progress: bool = False,
    int16_ranges: dict[int, tuple[float, float]] | None = None,
) -> tuple[QuantPlan, BudgetResult]:
    """The plan with the fewest promotions (in the budget's order) that meets the budget, and the record.
    `base` is the float graph `plan` was calibrated on (after float-stage algorithms); `render(plan)` returns
    the host .tflite bytes of a plan; `int16_ranges` range int16-promoted tensors (build_plan)."""
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
        score = evaluator.score(render(p))
        value = {"top1_agreement": score.top1_agreement, "cosine": score.cosine}.get(budget.metric, score.sqnr_db)
        return value, score.sqnr_db

    reachable = None

    def result(met: bool, final: float, promoted: list[Promotion]) -> BudgetResult:
        return BudgetResult(budget.metric, budget.min, budget.order, fallback, met, start, final, len(pool),
                            reachable, evaluations, time.perf_counter() - start_time, promoted)

    pool = candidates(model, plan, fallback)
    base_weights = _changed_constants(model.graph, base)

    def promote(ops: set[int]) -> QuantPlan:
        return replan(base, plan, options, ops, fallback, base_weights, int16_ranges)

    start, _ = measure(plan)
    if start >= budget.min:
        return plan, result(True, start, [])
    everything = promote(set(pool))
    reachable, _ = measure(everything)
    if reachable < budget.min:
        return plan, result(False, start, [])
    if budget.order == "gain":
        score = {i: measure(promote({i}))[1] for i in _bar(pool, "gains", progress)}
        ranked = sorted(pool, key=lambda i: -score[i])
        why = {i: f"gain rank {k + 1}: {score[i]:.2f} dB promoted alone" for k, i in enumerate(ranked)}
    else:
        score = {s.op: s.sqnr_db for s in layer_sensitivities(model, plan, evaluator, progress)}
        ranked = sorted(pool, key=lambda i: score[i])
        why = {i: f"sensitivity rank {k + 1}: {score[i]:.2f} dB alone" for k, i in enumerate(ranked)}

    def record(i: int, value: float, reason: str) -> Promotion:
        return Promotion(i, model.graph.ops[i].kind, op_name(model.graph, i), promoted_to(model.graph, i, fallback),
                         value, reason)

    if budget.order == "greedy":
        current, promoted = _greedy(model, plan, ranked, why, fallback, budget, promote, measure, record, progress)
        return current, result(promoted[-1].value >= budget.min, promoted[-1].value, promoted)
    promoted: list[Promotion] = []
    chosen: set[int] = set()
    current = plan
    for i in _bar(ranked, "promoting", progress):
        chosen.add(i)
        current = promote(chosen)
        value, _ = measure(current)
        promoted.append(record(i, value, why[i]))
        if value >= budget.min:
            return current, result(True, value, promoted)
    return current, result(False, promoted[-1].value if promoted else start, promoted)


def _greedy(model, plan, ranked, why, fallback, budget, promote, measure, record, progress):
    """Steps of the "greedy" order: the next `budget.shortlist` ranked layers (each with its run under int16x8)
    measured on top of what is promoted; the step takes the fewest ops that meet the budget, else the largest
    SQNR gain per promoted op. Returns the last plan and the promotions (at least one: the budget was found
    reachable with every candidate promoted)."""
    chosen: set[int] = set()
    current, promoted, steps = plan, [], 0
    _, base_sqnr = measure(plan)
    bar = tqdm(total=len(ranked), desc="budget: greedy", disable=not progress, leave=False)
    while True:
        short = [i for i in ranked if i not in chosen][: max(budget.shortlist, 1)]
        if not short:
            return current, promoted
        trials = {}
        for i in short:
            unit = sorted((run_of(model, plan, i, set(ranked)) if fallback == INT16X8 else {i}) - chosen)
            trial = promote(chosen | set(unit))
            value, sqnr = measure(trial)
            trials[i] = (unit, trial, value, sqnr)
        meeting = [i for i in short if trials[i][2] >= budget.min]
        if meeting:
            best = min(meeting, key=lambda i: (len(trials[i][0]), -trials[i][3]))
        else:
            best = max(short, key=lambda i: (trials[i][3] - base_sqnr) / len(trials[i][0]))
        unit, current, value, sqnr = trials[best]
        steps += 1
        step = f"greedy step {steps}: {sqnr - base_sqnr:+.2f} dB, best of {len(short)}"
        for i in unit:
            reason = why[i] if i == best else f"reads op {best}'s output ({why[i]})"
            promoted.append(record(i, value, f"{step}; {reason}"))
        chosen |= set(unit)
        base_sqnr = sqnr
        bar.update(len(unit))
        if value >= budget.min:
            bar.close()
            return current, promoted


def run_of(model: FloatModel, plan: QuantPlan, index: int, pool: set[int]) -> set[int]:
    """Op `index` and the candidate layers reading its output, directly or through data movement (PAD,
    RESHAPE, pooling...: same-encoding ops, which follow their input's type): promoted together, the int16
    output reaches its readers without a requantize to int8."""
    graph = model.graph
    readers: dict[int, list[int]] = {}
    for j, op in enumerate(graph.ops):
        for t in op.inputs:
            if t >= 0:
                readers.setdefault(t, []).append(j)
    run, frontier = {index}, list(graph.ops[index].outputs)
    while frontier:
        for j in readers.get(frontier.pop(), []):
            rule = RULES.get(graph.ops[j].kind)
            if j in pool:
                run.add(j)
            elif rule is not None and rule.same_encoding and not rule.weights:
                frontier.extend(graph.ops[j].outputs)
    return run


def replan(
    graph: Graph,
    plan: QuantPlan,
    options: PlanOptions,
    ops: set[int],
    fallback: str,
    base_weights: dict[str, np.ndarray],
    int16_ranges: dict[int, tuple[float, float]] | None = None,
) -> QuantPlan:
    """`plan` rebuilt over the calibrated float `graph` from the plan's own ranges, with `ops` promoted to
    `fallback` (on top of the options' overrides). A promoted op's constants go back to the calibrated graph's
    (`base_weights`: what float-stage algorithms changed): a plan-stage rounding chose them for INT4."""
    ranges = {i: plan.ranges[t.name] for i, t in enumerate(graph.tensors) if t.name in plan.ranges}
    weight_schemes, floats = dict(options.weight_schemes), dict(options.float_overrides)
    int16_ops = set(options.int16_ops)
    for i in ops:
        to = promoted_to(graph, i, fallback)
        if to == FLOAT:
            floats[i] = f"budget:{to}" if to == fallback else f"budget:{to} (no {fallback} kernel)"
        elif fallback == INT16X8:
            int16_ops.add(i)
        else:
            weight_schemes[i] = SCHEMES[fallback]
    # Everything else the options carry (target adaptations: per-tensor weights, uint8) stays as it was.
    opts = replace(options, weight_schemes=weight_schemes, float_overrides=floats, int16_ops=frozenset(int16_ops))
    new = build_plan(graph, ranges, opts, plan.model_sha256, int16_ranges)
    reverted = {graph.tensors[t].name for i in ops for t in graph.ops[i].inputs if t >= 0}
    new.weights = {n: w for n, w in plan.weights.items() if n not in reverted}
    new.weights.update({n: w for n, w in base_weights.items() if n in reverted})
    new.notes = plan.notes + [n for n in new.notes if n not in plan.notes]
    return new


def _check(budget: Budget, fallback: str, options: PlanOptions) -> None:
    if budget.metric not in METRICS:
        raise PlanError(f"budget metric {budget.metric!r}: choose {', '.join(METRICS)}")
    if budget.order not in ORDERS:
        raise PlanError(f"budget order {budget.order!r}: choose {' or '.join(ORDERS)}")
    if budget.eval is None:
        raise PlanError("an accuracy budget needs evaluation data (Budget(eval=...))")
    if fallback == INT16X8:
        if options.scheme.activation_dtype != "int8" or options.uint8:
            raise PlanError(f"fallback 'int16x8' promotes int8 activations: scheme {options.scheme.name}"
                            f"{' as uint8' if options.uint8 else ''} has none")
        return
    if fallback != FLOAT and (fallback not in SCHEMES or SCHEMES[fallback].weight_dtype != "int8" or
                              SCHEMES[fallback].activation_dtype != options.scheme.activation_dtype):
        raise PlanError(f"fallback {fallback!r}: choose int8 (INT4 weights to int8), int16x8 or float")
    if fallback != FLOAT and options.scheme.weight_dtype != "int4":
        raise PlanError(f"fallback {fallback!r} promotes INT4 weights: scheme {options.scheme.name} has none")


def check_int16_targets(targets) -> None:
    """int16 activations (fallback or overrides "int16x8") with named targets: a PlanError naming the first
    target whose profile rejects int16 activations (Edge TPU, NNAPI, XNNPACK: targets/*.toml)."""
    from edgeq.targets.profile import resolve

    for spec in targets or ():
        for rule in resolve(spec).plan_constraints():
            allowed, denied = rule.params.get("allowed"), rule.params.get("denied")
            if rule.kind != "dtype" or rule.ops or rule.params.get("tensors") != "activations":
                continue
            if (allowed is not None and "int16" not in allowed) or (denied is not None and "int16" in denied):
                raise PlanError(f"int16x8 promotions: target {spec} rejects int16 activations (rule {rule.id}: "
                                f"{rule.message}); promote to float or int8 weights instead, or drop the target")


def _bar(items: list[int], what: str, progress: bool):
    return tqdm(items, desc=f"budget: {what}", disable=not progress, leave=False)
