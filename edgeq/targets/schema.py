"""The shape of a target profile (targets/<name>.toml), checked before any rule is evaluated, so a typo in a
profile is an error naming the file and rule rather than a rule that silently never fires."""

from __future__ import annotations

import re

from edgeq.ir.tflite_schema import OPERATOR_CODES, TYPE_TO_DTYPE

DTYPES = frozenset(TYPE_TO_DTYPE.values())
GRANULARITIES = frozenset({"per_tensor", "per_channel", "blockwise"})
ACTIVATIONS = frozenset({"NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT"})
PARTITION_KINDS = frozenset({"single_cut", "largest", "all", "runtime"})
EFFECTS = frozenset({"cpu", "note"})
_TENSORS = re.compile(r"^(activations|inputs|outputs|all|input\d+)$")

# Parameters each condition kind takes beyond the common rule fields: name -> (type, required).
KIND_PARAMS: dict[str, dict[str, tuple[type, bool]]] = {
    "op_allowed": {"allowed": (list, True)},
    "unsupported": {},
    "op_min_level": {"levels": (dict, True)},
    "max_version": {"versions": (dict, True), "default": (int, False)},
    "dtype": {"tensors": (str, True), "allowed": (list, False), "denied": (list, False)},
    "static_shape": {"tensors": (str, True)},
    "max_rank": {"tensors": (str, True), "max": (int, True)},
    "outer_dims_one": {"tensors": (str, True), "innermost": (int, True)},
    "max_non1_dims": {"tensors": (str, True), "max": (int, True)},
    "max_elements": {"tensors": (str, True), "max": (int, True)},
    "fused_activation": {"allowed": (list, True)},
    "option_in": {"options": (list, True), "allowed": (list, True)},
    "option_not_in": {"options": (list, True), "denied": (list, True)},
    "option_max": {"options": (list, True), "max": (int, True)},
    "options_equal": {"options": (list, True)},
    "option_product_max": {"options": (list, True), "max": (int, True)},
    "weight_granularity": {"allowed": (list, True)},
    "weight_zero_point": {},
    "weight_scales_normal": {},
    "weight_inner_even": {},
    "blockwise_dtype": {"allowed": (list, True)},
    "block_size_multiple": {"multiple": (int, True)},
    "scale_product_below_output": {},
    "bias_scale": {},
    "input_present": {"input": (int, True)},
    "input_constant": {"input": (int, True)},
    "input_values": {"input": (int, True), "allowed": (list, True)},
    "input_values_max": {"input": (int, True), "max": (int, True)},
    "input_dim_min": {"input": (int, True), "dim": (int, True), "min": (int, True)},
    "reduce_axes_exclude": {"axes": (list, True)},
    "reduce_inner_multiple": {"multiple": (int, True)},
    "pad_axes_zero": {"axes": (list, True)},
    "squeeze_leading": {},
    "constant_input_zero_pair": {},
    "broadcast": {},
}

# Fields every rule may carry: name -> (type, required).
COMMON_FIELDS: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "kind": (str, True),
    "message": (str, True),
    "source": (str, True),
    "ops": (list, False),  # the ops the rule applies to; absent: every op
    "except_ops": (list, False),
    "min_level": (int, False),  # the rule applies at levels >= min_level (NNAPI API levels)
    "max_level": (int, False),
    "variants": (list, False),  # the rule applies to these named variants only (e.g. hexagon "legacy")
    "effect": (str, False),  # "cpu" (default): the op leaves the accelerator; "note": reported only
    "when_options": (dict, False),  # the rule applies only when these options have these values
    "if_input_dtype": (list, False),  # ... when input 0 has one of these dtypes
    "if_weight_dtype": (list, False),  # ... to weights of these dtypes
    "if_granularity": (list, False),  # ... to weights of these granularities
}

_TARGET_FIELDS: dict[str, tuple[type, bool]] = {
    "name": (str, True),
    "title": (str, True),
    "accelerator": (str, True),
    "summary": (str, True),
    "cpu": (str, False),
    "levels": (list, False),
    "default_level": (int, False),
    "variants": (list, False),
    "default_variant": (str, False),
    "device_only": (bool, False),
}

_PARTITION_FIELDS: dict[str, tuple[type, bool]] = {
    "kind": (str, True),
    "message": (str, True),
    "source": (str, True),
    "variants": (list, False),
    "max_partitions": (int, False),
    "min_ops": (int, False),
}


def validate(raw: dict, where: str) -> list[str]:
    """Every problem with one parsed profile, each naming the file and the rule; empty when valid."""
    errors: list[str] = []
    unknown = set(raw) - {"target", "partition", "rule"}
    if unknown:
        errors.append(f"{where}: unknown top-level keys {sorted(unknown)}")
    target = raw.get("target")
    if not isinstance(target, dict):
        return [*errors, f"{where}: missing [target] table"]
    errors += _fields(target, _TARGET_FIELDS, f"{where} [target]")
    levels, variants = target.get("levels"), target.get("variants")
    if levels is not None and variants is not None:
        errors.append(f"{where} [target]: give levels or variants, not both")
    if levels is not None and target.get("default_level") not in levels:
        errors.append(f"{where} [target]: default_level must be one of levels {levels}")
    if variants is not None and target.get("default_variant") not in variants:
        errors.append(f"{where} [target]: default_variant must be one of variants {variants}")
    partitions = raw.get("partition")
    if not isinstance(partitions, list) or not partitions:
        errors.append(f"{where}: needs at least one [[partition]]")
        partitions = []
    for i, p in enumerate(partitions):
        what = f"{where} [[partition]] {i}"
        errors += _fields(p, _PARTITION_FIELDS, what)
        if p.get("kind") not in PARTITION_KINDS:
            errors.append(f"{what}: kind {p.get('kind')!r} is not one of {sorted(PARTITION_KINDS)}")
        if p.get("kind") == "largest" and "max_partitions" not in p:
            errors.append(f"{what}: kind 'largest' needs max_partitions")
        errors += _variants(p.get("variants"), variants, what)
    rules = raw.get("rule", [])
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        errors += _rule(rule, f"{where} [[rule]] {i} ({rule.get('id', '?')})", target, seen)
    return errors


def _rule(rule: dict, what: str, target: dict, seen: set[str]) -> list[str]:
    kind = rule.get("kind")
    if kind not in KIND_PARAMS:
        return [f"{what}: kind {kind!r} is not one of {sorted(KIND_PARAMS)}"]
    errors = _fields(rule, {**COMMON_FIELDS, **KIND_PARAMS[kind]}, what)
    rid = rule.get("id", "")
    prefix = target.get("name", "").split("-")[0] + "."
    if isinstance(rid, str) and not rid.startswith(prefix):
        errors.append(f"{what}: id must start with {prefix!r}")
    if rid in seen:
        errors.append(f"{what}: duplicate id")
    seen.add(rid)
    for key in ("ops", "except_ops"):
        errors += _ops(rule.get(key, []), f"{what} {key}")
    if kind == "op_allowed":
        errors += _ops(rule.get("allowed", []), f"{what} allowed")
    for key in ("levels", "versions"):
        if isinstance(rule.get(key), dict):
            errors += _ops(list(rule[key]), f"{what} {key}")
            errors += [f"{what} {key}: {k} = {v!r} is not an integer" for k, v in rule[key].items()
                       if not isinstance(v, int)]
    if kind == "dtype" and ("allowed" in rule) == ("denied" in rule):
        errors.append(f"{what}: kind 'dtype' needs exactly one of allowed / denied")
    for key in ("if_input_dtype", "if_weight_dtype", *(("allowed", "denied") if kind in ("dtype", "blockwise_dtype")
                                                        else ())):
        bad = [d for d in rule.get(key, []) if d not in DTYPES]
        if bad:
            errors.append(f"{what} {key}: unknown dtypes {bad}")
    granularities = [*rule.get("if_granularity", []), *(rule.get("allowed", []) if kind == "weight_granularity"
                                                          else [])]
    if set(granularities) - GRANULARITIES:
        errors.append(f"{what}: granularities must be among {sorted(GRANULARITIES)}")
    if kind == "fused_activation" and set(rule.get("allowed", [])) - ACTIVATIONS:
        errors.append(f"{what}: fused activations must be among {sorted(ACTIVATIONS)}")
    if "tensors" in rule and not _TENSORS.match(str(rule["tensors"])):
        errors.append(f"{what}: tensors {rule['tensors']!r} is not activations/inputs/outputs/all/input<N>")
    if rule.get("effect", "cpu") not in EFFECTS:
        errors.append(f"{what}: effect must be one of {sorted(EFFECTS)}")
    levels = target.get("levels")
    if ("min_level" in rule or "max_level" in rule) and levels is None:
        errors.append(f"{what}: min_level/max_level need levels in [target]")
    errors += _variants(rule.get("variants"), target.get("variants"), what)
    return errors


def _fields(table: dict, spec: dict[str, tuple[type, bool]], what: str) -> list[str]:
    errors = [f"{what}: unknown field {k!r}" for k in table if k not in spec]
    for name, (kind, required) in spec.items():
        if name not in table:
            if required:
                errors.append(f"{what}: missing {name!r}")
        elif not isinstance(table[name], kind) or (kind is int and isinstance(table[name], bool)):
            errors.append(f"{what}: {name!r} must be a {kind.__name__}, got {table[name]!r}")
        elif kind is str and not table[name].strip():
            errors.append(f"{what}: {name!r} is empty")
    return errors


def _ops(names: list, what: str) -> list[str]:
    bad = [n for n in names if n not in OPERATOR_CODES]
    return [f"{what}: not TFLite builtin names: {bad}"] if bad else []


def _variants(used: list | None, declared: list | None, what: str) -> list[str]:
    if used is None:
        return []
    if declared is None:
        return [f"{what}: variants need variants in [target]"]
    bad = [v for v in used if v not in declared]
    return [f"{what}: unknown variants {bad} (declared: {declared})"] if bad else []
