"""Mixed precision by pattern: fnmatch patterns over op names choosing another weight scheme for some ops.

An op's name is the name of its first output tensor (what the plan's encodings, edgeq.compare's worst
layers and edgeq.sensitivity call a layer). A pattern maps to "int8" (per-channel int8 weights), an INT4
scheme with int8 activations ("int4-channel", "int4-block32", ...), "int16x8" (under an int8-activation
scheme: the op reads and writes int16 activations with int8 weights and an int64 bias; QUANTIZE int8 <-> int16
where it meets int8 ops) or "float" (the op computes in float between DEQUANTIZE and QUANTIZE, as ops edgeq
cannot quantize do). Under a weight-only scheme (w4-blockN) a pattern maps to another w4-blockN or "float".
Patterns are tried in the order given; the first that matches an op decides it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeq.errors import PlanError
from edgeq.ir.graph import Graph
from edgeq.quant.op_rules import RULES, SHAPE_OPS
from edgeq.quant.schemes import SCHEMES, Scheme

FLOAT = "float"
INT16X8 = "int16x8"
# Ops that read a constant weight the scheme encodes: where a weight override can apply.
_WEIGHT_KINDS = frozenset(kind for kind, rule in RULES.items() if rule.weights)


@dataclass
class Overrides:
    """Resolved overrides: op index -> weight scheme, ops kept float, and what each pattern matched."""

    weight_schemes: dict[int, Scheme] = field(default_factory=dict)
    float_ops: dict[int, str] = field(default_factory=dict)  # op index -> the pattern that made it float
    int16_ops: dict[int, str] = field(default_factory=dict)  # op index -> the pattern promoting it to int16x8
    notes: list[str] = field(default_factory=list)


def op_name(graph: Graph, index: int) -> str:
    """The name edgeq gives an op: its first output tensor's name."""
    op = graph.ops[index]
    return graph.tensors[op.outputs[0]].name if op.outputs else f"op{index}"


def short_name(name: str, width: int = 64) -> str:
    """A long op name for notes and tables: Python module paths dropped (litert-torch names a tensor
    'pkg.module.Class/pkg.module.Block_3/...'), then its head and tail around '...' if still too long."""
    name = re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", name)
    if len(name) <= width:
        return name
    head = (width - 3) // 2
    return name[:head] + "..." + name[-(width - 3 - head) :]


def resolve_overrides(graph: Graph, overrides: Mapping[str, str] | None, base: Scheme) -> Overrides:
    """Match every pattern against the graph's op names; an unknown scheme, a scheme the base scheme's
    activations cannot carry, or a pattern that matches no op it could apply to is a PlanError."""
    resolved = Overrides()
    if not overrides:
        return resolved
    names = [op_name(graph, i) for i in range(len(graph.ops))]
    weighted = [i for i, op in enumerate(graph.ops) if op.kind in _WEIGHT_KINDS and _has_constant_weight(graph, i)]
    if base.weight_only:  # weight-only schemes also quantize constant EMBEDDING_LOOKUP tables (read as float rows)
        lookups = [(i, op) for i, op in enumerate(graph.ops) if op.kind == "EMBEDDING_LOOKUP"]
        tables = [i for i, op in lookups if _constant(graph, op.inputs[1])]
        weighted = sorted(weighted + tables)
    floatable = [i for i, op in enumerate(graph.ops) if op.kind in RULES and op.kind not in SHAPE_OPS]
    widenable = [i for i in floatable if RULES[graph.ops[i].kind].int16]
    decided: set[int] = set()
    for pattern, target in overrides.items():
        scheme = _target_scheme(pattern, target, base)
        wide = target == INT16X8
        candidates = widenable if wide else floatable if scheme is None else weighted
        matched = [i for i in candidates if fnmatch.fnmatchcase(names[i], pattern) and i not in decided]
        if not matched:
            already = [i for i in candidates if fnmatch.fnmatchcase(names[i], pattern)]
            if already:
                raise PlanError(f"override '{pattern}' only matches ops an earlier pattern already decided")
            what = "ops with an int16x8 kernel" if wide else "ops edgeq quantizes" if scheme is None else (
                "ops with constant weights")
            sample = ", ".join(repr(names[i]) for i in candidates[:4]) or "none"
            raise PlanError(
                f"override '{pattern}' matches none of the model's {len(candidates)} {what} (names are first "
                f"output tensors, e.g. {sample})"
            )
        decided.update(matched)
        for i in matched:
            if wide:
                resolved.int16_ops[i] = pattern
            elif scheme is None:
                resolved.float_ops[i] = pattern
            else:
                resolved.weight_schemes[i] = scheme
        shown = ", ".join(repr(short_name(names[i])) for i in matched[:3])
        shown += f" and {len(matched) - 3} more" if len(matched) > 3 else ""
        resolved.notes.append(f"override '{pattern}' -> {target}: {len(matched)} op(s), {shown}")
    return resolved


def parse_override(text: str) -> tuple[str, str]:
    """'PATTERN=SCHEME' (the CLI's --override) as a (pattern, scheme) pair."""
    pattern, sep, target = text.rpartition("=")
    if not sep or not pattern or not target:
        raise PlanError(f"--override {text!r}: expected PATTERN=SCHEME, e.g. 'head/*=int8'")
    return pattern, target


def _target_scheme(pattern: str, target: str, base: Scheme) -> Scheme | None:
    """The weight scheme an override names (None: keep the op float)."""
    if target == FLOAT:
        return None
    if base.weight_only:
        # Weight-only: another block size for some weights (a finer embedding table, say), or float.
        allowed = [FLOAT, *(n for n, s in SCHEMES.items() if s.weight_only)]
        if target not in allowed:
            raise PlanError(
                f"override '{pattern}' -> {target}: {base.name} is weight-only, overrides choose another "
                f"weight-only scheme or float ({', '.join(allowed)})"
            )
        return SCHEMES[target]
    if target == INT16X8 and base.activation_dtype != "int8":
        raise PlanError(f"override '{pattern}' -> int16x8 promotes int8 activations: scheme {base.name} has none")
    int4 = [n for n, s in SCHEMES.items() if s.weight_dtype == "int4" and s.activation_dtype == "int8"]
    allowed = [FLOAT, "int8", INT16X8, *int4]
    scheme = SCHEMES.get(target)
    if scheme is None or target not in allowed:
        choose = ", ".join(allowed)
        raise PlanError(f"override '{pattern}': {target!r} is not a weight scheme for overrides; choose {choose}")
    if scheme.weight_dtype == "int4" and base.activation_dtype != "int8":
        raise PlanError(
            f"override '{pattern}' -> {target}: LiteRT has INT4 weight kernels for int8 activations only, the "
            f"scheme {base.name} has {base.activation_dtype} activations"
        )
    return scheme


def _has_constant_weight(graph: Graph, index: int) -> bool:
    op = graph.ops[index]
    return any(_constant(graph, op.inputs[pos]) for pos, _ in RULES[op.kind].weights if pos < len(op.inputs))


def _constant(graph: Graph, tensor: int) -> bool:
    return tensor >= 0 and graph.tensors[tensor].is_constant
