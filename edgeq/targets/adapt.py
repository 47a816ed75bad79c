"""Target-aware conversion: read a target's plan constraints (the rules a quantization plan can satisfy) and
turn them into planner options, each change reported as a note naming the rule that asked for it; after
writing, `check` the artifact and separate what conversion could have avoided from what the graph's op
choice decides (an op the target never runs), which becomes a warning, or a PlanError under `strict`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeq.errors import PlanError
from edgeq.ir.graph import Graph
from edgeq.quant.op_rules import RULES
from edgeq.quant.planner import PlanOptions
from edgeq.quant.schemes import Scheme
from edgeq.targets.check import CPU, CheckResult, Reason
from edgeq.targets.profile import PLAN_KINDS, Rule, Target, resolve

# Ops whose constant 8-bit weights carry a per-channel axis in the plan (what per-tensor can apply to).
WEIGHT_OPS = frozenset(kind for kind, rule in RULES.items() if rule.weights and rule.weights[0][1] is not None)
# The ops a float-I/O model adds at its boundary; integer I/O removes them.
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class Adaptation:
    """What conversion changes for one target, and why (`notes`, one per change, each naming its rule)."""

    target: Target
    per_tensor_weights: frozenset[str] = frozenset()
    uint8: bool = False
    io_dtype: str = "float32"
    static_shapes: bool = False
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # constraints no plan choice can meet (the scheme the user chose)

    @property
    def key(self) -> tuple:
        """Targets with equal keys can share one artifact."""
        return (self.per_tensor_weights, self.uint8, self.io_dtype, self.static_shapes)

    def options(self, base: PlanOptions) -> PlanOptions:
        """The planner options for this target, from the user's."""
        return dataclasses.replace(
            base, io_dtype="int8" if self.uint8 and self.io_dtype == "uint8" else self.io_dtype,
            per_tensor_weights=self.per_tensor_weights, uint8=self.uint8,
        )


def adapt(target: str | Target, scheme: Scheme, io: str = "float32", strict: bool = False) -> Adaptation:
    """Planner options that make a plan of `scheme` satisfy the target's plan constraints. `io` is what the
    user asked for: "float32" may become integer I/O where the target runs no QUANTIZE/DEQUANTIZE; "uint8"
    asks for the legacy uint8 encoding throughout."""
    t = resolve(target) if isinstance(target, str) else target
    notes: list[str] = []
    unmet: list[str] = []
    per_tensor: set[str] = set()
    uint8 = io == "uint8"
    if uint8:
        notes.append(f"{t.spec}: uint8 I/O asked: uint8 asymmetric activations and per-tensor uint8 weights")
    for rule in t.plan_constraints():
        if rule.effect != "cpu":
            continue
        if rule.kind == "weight_granularity" and set(rule.params.get("allowed", ())) == {"per_tensor"}:
            if _weight_dtypes_concern(rule, scheme, uint8):
                ops = sorted(set(rule.ops or WEIGHT_OPS) & WEIGHT_OPS)
                per_tensor.update(ops)
                notes.append(f"{t.spec}: per-tensor weights for {', '.join(ops)} (rule {rule.id})")
        elif rule.kind == "dtype" and _asks_uint8(rule):
            if not uint8:
                notes.append(f"{t.spec}: uint8 asymmetric activations and weights, int8 values + 128 "
                             f"(rule {rule.id}: {rule.message})")
            uint8 = True
        elif rule.kind == "dtype" and _rejects(rule, scheme.activation_dtype):
            unmet.append(f"{t.spec}: {scheme.activation_dtype} activations of scheme {scheme.name} break rule "
                         f"{rule.id} ({rule.message}); choose --scheme int8")
    if uint8:
        if scheme.activation_dtype != "int8" or scheme.weight_dtype != "int8":
            raise PlanError(
                f"{t.spec} needs uint8 quantization, which edgeq derives from int8 plans only (int8 values + 128): "
                f"scheme {scheme.name} has {scheme.activation_dtype} activations and {scheme.weight_dtype} weights"
            )
        extra = sorted(WEIGHT_OPS - per_tensor)
        per_tensor |= WEIGHT_OPS
        notes.append(f"{t.spec}: per-tensor weights for {', '.join(extra)} as well (uint8 kernels take one "
                     f"weight scale per tensor)")
    io_dtype = "uint8" if uint8 and io != "float32" else io
    if io == "float32":
        leaving = [(kind, rule) for kind in BOUNDARY_OPS if (rule := _sends_away(t, kind)) is not None]
        # A target that runs no float tensor at all (Hexagon's HTP path) has the same answer.
        leaving += [("float32 I/O tensors", rule) for rule in t.plan_constraints()
                    if rule.effect == "cpu" and rule.kind == "dtype" and _rejects(rule, "float32")]
        if leaving:
            io_dtype = "uint8" if uint8 else scheme.activation_dtype
            why = "; ".join(f"{kind}: rule {rule.id}" for kind, rule in leaving)
            notes.append(f"{t.spec}: I/O {io_dtype} instead of float32, so no boundary op leaves the "
                         f"accelerator ({why})")
    static = any(r.kind == "static_shape" for r in t.plan_constraints())
    if unmet and strict:
        raise PlanError("; ".join(unmet))
    return Adaptation(t, frozenset(per_tensor), uint8, io_dtype, static, tuple(notes), tuple(unmet))


def adapt_all(targets: Sequence[str | Target], scheme: Scheme, io: str = "float32",
              strict: bool = False) -> Adaptation:
    """One adaptation serving every target; targets that ask for different plans are a PlanError (convert
    writes one artifact per target then)."""
    adaptations = [adapt(t, scheme, io, strict) for t in targets]
    if not adaptations:
        raise PlanError("targets: name at least one target")
    first = adaptations[0]
    for a in adaptations[1:]:
        if a.key != first.key:
            raise PlanError(
                f"targets {first.target.spec} and {a.target.spec} need different plans ({_describe(first)} vs "
                f"{_describe(a)}): quantize once per target"
            )
    notes = tuple(n for a in adaptations for n in a.notes)
    warnings = tuple(w for a in adaptations for w in a.warnings)
    return dataclasses.replace(first, notes=notes, warnings=warnings)


def pin_static_shapes(graph: Graph) -> list[str]:
    """Make every dynamic dimension (-1 in a shape signature) the static size the graph was planned with;
    returns the names of the tensors changed."""
    pinned = []
    for t in graph.tensors:
        if t.shape_signature and -1 in t.shape_signature:
            t.shape_signature = tuple(t.shape)
            pinned.append(t.name)
    return pinned


@dataclass
class TargetCheck:
    """An artifact checked on its target: every rule broken, split into what conversion could have avoided
    (a plan constraint) and what the graph decides."""

    result: CheckResult
    avoidable: list[tuple[int, str, Reason]] = field(default_factory=list)  # (op index, op, reason)
    unavoidable: dict[str, list[int]] = field(default_factory=dict)  # rule -> op indices

    def warnings(self) -> list[str]:
        spec = self.result.target.spec
        out = []
        for rule, ops in self.unavoidable.items():
            kinds = sorted({self.result.ops[i].op for i in ops})
            out.append(f"{spec}: {len(ops)} op(s) stay on the CPU by rule {rule} (e.g. op {ops[0]} "
                       f"{self.result.ops[ops[0]].op}; kinds {', '.join(kinds)}): the graph's op choice, "
                       f"not something conversion changes")
        return out

    def to_dict(self) -> dict:
        return {
            "target": self.result.target.spec,
            "summary": self.result.summary,
            "avoidable": [f"op {i} {op}: {r.text}" for i, op, r in self.avoidable],
            "warnings": self.warnings(),
        }


def avoidable_rules(target: Target) -> set[str]:
    """Rule ids conversion is responsible for: the target's plan constraints."""
    return {r.id for r in target.plan_constraints()}


def check_artifact(model, target: str | Target, name: str | None = None) -> TargetCheck:
    """`check` the artifact and classify every reason an op leaves the accelerator. Reasons that only come
    from the partition rule follow from the others and are not counted."""
    from edgeq.targets.check import check

    result = check(model, target, name=name)
    mine = avoidable_rules(result.target)
    out = TargetCheck(result)
    for o in result.ops:
        if o.placement != CPU:
            continue
        for r in o.reasons:
            if r.rule in mine:
                out.avoidable.append((o.index, o.op, r))
            elif not r.rule.endswith(".partition"):
                out.unavoidable.setdefault(r.rule, []).append(o.index)
    return out


def _weight_dtypes_concern(rule: Rule, scheme: Scheme, uint8: bool) -> bool:
    """Whether a rule filtered by if_weight_dtype concerns the 8-bit weights this plan writes."""
    dtypes = rule.params.get("if_weight_dtype")
    return dtypes is None or ("uint8" if uint8 else scheme.weight_dtype) in dtypes


def _asks_uint8(rule: Rule) -> bool:
    """A type rule that admits uint8 but not int8 tensors: only the uint8 encoding satisfies it."""
    allowed = rule.params.get("allowed")
    return allowed is not None and "uint8" in allowed and "int8" not in allowed


def _rejects(rule: Rule, dtype: str) -> bool:
    allowed, denied = rule.params.get("allowed"), rule.params.get("denied")
    if rule.params.get("tensors") not in ("activations", "inputs", "outputs") or rule.ops:
        return False
    return (allowed is not None and dtype not in allowed) or (denied is not None and dtype in denied)


def _sends_away(t: Target, kind: str) -> Rule | None:
    """The op-set rule (allowed list, unsupported list, minimum level) that keeps this op kind off the
    accelerator, if any."""
    for rule in t.rules:
        if not rule.applies(kind, t.level, t.variant) or rule.effect != "cpu" or rule.kind in PLAN_KINDS:
            continue
        if rule.kind == "op_allowed" and kind not in rule.params.get("allowed", ()):
            return rule
        if rule.kind == "unsupported":
            return rule
        if rule.kind == "op_min_level":
            need = rule.params.get("levels", {}).get(kind)
            if need is None or (t.level is not None and t.level < need):
                return rule
    return None


def _describe(a: Adaptation) -> str:
    parts = []
    if a.uint8:
        parts.append("uint8")
    if a.per_tensor_weights:
        parts.append(f"per-tensor {'/'.join(sorted(a.per_tensor_weights))}")
    if a.io_dtype != "float32":
        parts.append(f"{a.io_dtype} I/O")
    return ", ".join(parts) or "no change"
