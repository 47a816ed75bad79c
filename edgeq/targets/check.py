"""`edgeq check`: where each op of a .tflite runs on a target, the rule and source that send it to the CPU,
and the partitions and MACs that result."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.ir.graph import Graph
from edgeq.ir.tflite_reader import read_tflite
from edgeq.targets.conditions import OpContext, breaks
from edgeq.targets.macs import op_macs
from edgeq.targets.partition import node_subsets
from edgeq.targets.profile import Target, resolve

ACCELERATOR, CPU = "accelerator", "cpu"


@dataclass(frozen=True)
class Reason:
    """A rule an op breaks (or a partition limit that drops it), with how and where the rule comes from."""

    rule: str
    message: str
    detail: str
    source: str

    @property
    def text(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.rule}: {self.message}{detail} [source: {self.source}]"


@dataclass
class OpResult:
    index: int
    op: str
    output: str  # the first output tensor's name, to find the op in a graph viewer
    macs: int
    placement: str = ACCELERATOR
    reasons: list[Reason] = field(default_factory=list)  # why it runs on the CPU; empty when it maps
    notes: list[Reason] = field(default_factory=list)  # rules with effect "note": reported, placement unchanged
    partition: int | None = None  # index of its delegated partition


@dataclass
class CheckResult:
    """One model on one target."""

    target: Target
    model: str
    size_bytes: int | None
    ops: list[OpResult]
    partitions: list[list[int]]  # delegated partitions (op indices), in execution order

    @property
    def summary(self) -> dict:
        on = [o for o in self.ops if o.placement == ACCELERATOR]
        macs = sum(o.macs for o in self.ops)
        macs_on = sum(o.macs for o in on)
        cpu = [o for o in self.ops if o.placement == CPU]
        broken: dict[str, int] = {}
        noted: dict[str, int] = {}
        for o in self.ops:
            for r in o.reasons:
                broken[r.rule] = broken.get(r.rule, 0) + 1
            for r in o.notes:
                noted[r.rule] = noted.get(r.rule, 0) + 1
        profile = self.target.profile
        return {
            "target": self.target.spec,
            "title": profile.title,
            "ops_total": len(self.ops),
            "ops_on_accelerator": len(on),
            "ops_on_cpu": len(cpu),
            "partitions": len(self.partitions),
            "macs_total": macs,
            "macs_on_accelerator": macs_on,
            "cpu_share_macs": (macs - macs_on) / macs if macs else 0.0,
            "cpu_share_ops": len(cpu) / len(self.ops) if self.ops else 0.0,
            "first_cpu_op": cpu[0].index if cpu else None,
            "rules_broken": broken,
            "notes": noted,
            "partition_rule": self.target.partition.message,
            "device_only": profile.device_only,
        }

    def to_dict(self) -> dict:
        return {
            "target": self.target.spec,
            "model": self.model,
            "size_bytes": self.size_bytes,
            "ops": [
                {
                    "index": o.index,
                    "op": o.op,
                    "output": o.output,
                    "placement": o.placement,
                    "reasons": [r.text for r in o.reasons],
                    "notes": [r.text for r in o.notes],
                    "partition": o.partition,
                    "macs": o.macs,
                }
                for o in self.ops
            ],
            "partitions": self.partitions,
            "summary": self.summary,
        }

    def text(self) -> str:
        """Per op: where it runs and, when it leaves the accelerator, every rule that sends it away; then
        the notes (once per rule) and the summary."""
        p = self.target.profile
        labels = {ACCELERATOR: p.accelerator, CPU: p.cpu}
        width = max([len(o.op) for o in self.ops] + [2])
        lines = [f"{self.model} on {self.target.spec}: {p.title}", f"  {'op':>4}  {'kind':<{width}}  runs on"]
        for o in self.ops:
            lines.append(f"  {o.index:>4}  {o.op:<{width}}  {labels[o.placement]}")
            lines += [f"        <- {r.text}" for r in o.reasons]
        s = self.summary
        seen: set[str] = set()
        for o in self.ops:
            for r in o.notes:
                if r.rule not in seen:
                    seen.add(r.rule)
                    lines.append(f"note ({s['notes'][r.rule]} ops, e.g. op {o.index} {o.op}): {r.text}")
        lines.append(
            f"summary: {s['ops_on_accelerator']}/{s['ops_total']} ops on {p.accelerator} in {s['partitions']} "
            f"partition(s); MACs on {p.accelerator}: {_count(s['macs_on_accelerator'])} of {_count(s['macs_total'])}"
            f"; on {p.cpu}: {100 * s['cpu_share_macs']:.1f}% of MACs, {100 * s['cpu_share_ops']:.1f}% of ops"
        )
        lines.append(f"partitioning: {s['partition_rule']}")
        if p.device_only:
            lines.append(f"only a device knows: {p.summary}")
        return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else str(n)


def check(model: str | os.PathLike | bytes | Graph, target: str | Target, name: str | None = None) -> CheckResult:
    """Evaluate every op of the model's main subgraph against the target's rules, then apply its partition
    rule. `target` is a spec such as 'edgetpu', 'nnapi:27', 'hexagon:legacy' or a resolved Target."""
    t = resolve(target) if isinstance(target, str) else target
    size = None
    if isinstance(model, Graph):
        graph = model
    else:
        graph = read_tflite(model)
        if isinstance(model, bytes | bytearray):
            size = len(model)
        else:
            size = Path(model).stat().st_size
            name = name or str(model)
    ops = []
    rules = t.rules
    for i, op in enumerate(graph.ops):
        ctx = OpContext(graph, i, t.level)
        out = graph.tensors[op.outputs[0]].name if op.outputs else ""
        result = OpResult(index=i, op=op.kind, output=out, macs=op_macs(graph, i))
        for rule in rules:
            if not rule.applies(op.kind, t.level, t.variant):
                continue
            detail = breaks(ctx, rule)
            if detail is not None:
                reason = Reason(rule.id, rule.message, detail, rule.source)
                (result.reasons if rule.effect == "cpu" else result.notes).append(reason)
        result.placement = CPU if result.reasons else ACCELERATOR
        ops.append(result)
    partitions = _partition(graph, t, ops)
    return CheckResult(target=t, model=name or graph.name or "<graph>", size_bytes=size, ops=ops,
                       partitions=partitions)


def _partition(graph: Graph, t: Target, ops: list[OpResult]) -> list[list[int]]:
    """Apply the profile's partition rule; ops it drops get a reason naming it."""
    rule = t.partition
    rid = f"{t.profile.name.split('-')[0]}.partition"
    if rule.kind == "single_cut":
        cut = next((o.index for o in ops if o.placement == CPU), None)
        if cut is not None:
            for o in ops[cut + 1:]:
                if o.placement == ACCELERATOR:
                    o.placement = CPU
                    o.reasons.append(Reason(rid, rule.message, f"after the cut at op {cut} ({ops[cut].op})",
                                            rule.source))
    supported = [o.placement == ACCELERATOR for o in ops]
    delegated = [nodes for kind, nodes in node_subsets(graph, supported) if kind]
    if rule.kind == "largest":
        ranked = sorted(range(len(delegated)), key=lambda k: -len(delegated[k]))  # stable: ties keep graph order
        keep: set[int] = set()
        for k in ranked[: rule.max_partitions]:
            if len(delegated[k]) < rule.min_ops:
                break
            keep.add(k)
        for k, nodes in enumerate(delegated):
            if k in keep:
                continue
            size = len(nodes)
            why = (f"partition of {size} op(s) is below the minimum of {rule.min_ops}" if size < rule.min_ops
                   else f"partition of {size} op(s) is not among the {rule.max_partitions} largest")
            for i in nodes:
                ops[i].placement = CPU
                ops[i].reasons.append(Reason(rid, rule.message, why, rule.source))
        delegated = [nodes for k, nodes in enumerate(delegated) if k in keep]
    delegated = sorted((sorted(nodes) for nodes in delegated), key=lambda nodes: nodes[0])
    for k, nodes in enumerate(delegated):
        for i in nodes:
            ops[i].partition = k
    return delegated
