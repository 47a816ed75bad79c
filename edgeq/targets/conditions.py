"""The condition kinds a profile rule can use. Each takes the op in its graph and the rule, and returns None
when the op satisfies the rule, or a short detail of how it breaks it (the tensor, the value found)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.targets.profile import Rule

_WEIGHT_DTYPES = frozenset({"int8", "uint8", "int4", "int16"})


@dataclass(frozen=True)
class OpContext:
    """One op of a graph, as the rules see it, at the target's API level (None: the profile has none)."""

    graph: Graph
    index: int
    level: int | None

    @property
    def op(self) -> Op:
        return self.graph.ops[self.index]

    def tensor(self, i: int) -> Tensor:
        return self.graph.tensors[i]

    def input(self, n: int) -> Tensor | None:
        ins = self.op.inputs
        return self.tensor(ins[n]) if n < len(ins) and ins[n] >= 0 else None

    def tensors(self, which: str) -> list[Tensor]:
        """activations: non-constant inputs and outputs; inputs: non-constant inputs; outputs; all: every
        input and output; input<N>: that input."""
        ins = [self.tensor(i) for i in self.op.inputs if i >= 0]
        outs = [self.tensor(i) for i in self.op.outputs]
        if which.startswith("input") and which[5:].isdigit():
            t = self.input(int(which[5:]))
            return [] if t is None else [t]
        return {
            "activations": [t for t in ins if not t.is_constant] + outs,
            "inputs": [t for t in ins if not t.is_constant],
            "outputs": outs,
            "all": ins + outs,
        }[which]

    def option(self, name: str):
        """The option's stored value, or the schema's default when the op stores no options table."""
        if name in self.op.options:
            return self.op.options[name]
        return getattr(_option_defaults(self.op.options_type), name, 0)

    def weights(self, rule: Rule) -> list[Tensor]:
        """Constant quantized integer inputs (filters, not int32 biases), filtered by the rule's
        if_weight_dtype and if_granularity."""
        dtypes = rule.params.get("if_weight_dtype")
        grains = rule.params.get("if_granularity")
        return [
            t for t in (self.tensor(i) for i in self.op.inputs if i >= 0)
            if t.is_constant and t.quant is not None and t.dtype in _WEIGHT_DTYPES
            and (dtypes is None or t.dtype in dtypes) and (grains is None or granularity(t) in grains)
        ]


@functools.cache
def _option_defaults(options_type: str):
    cls = getattr(schema, f"{options_type}T", None)
    return cls() if cls is not None else None


def granularity(t: Tensor) -> str:
    """per_tensor, per_channel or blockwise, as the tensor's quantization parameters store it."""
    assert t.quant is not None
    if t.quant.block_size:
        return "blockwise"
    return "per_channel" if t.quant.per_channel else "per_tensor"


def _name(t: Tensor) -> str:
    return f'"{t.name}"'


def _first(items) -> str | None:
    return next(iter(items), None)


def _shape(t: Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _axes(ctx: OpContext, rank: int) -> list[int] | None:
    """Reduction axes from the constant input 1, made non-negative; None when they are not constant."""
    axes = ctx.input(1)
    if axes is None or axes.data is None:
        return None
    return sorted({int(a) % rank for a in np.asarray(axes.data).reshape(-1)}) if rank else []


# ---------------------------------------------------------------------------------------------------------
# Condition kinds


def _op_allowed(ctx: OpContext, rule: Rule) -> str | None:
    return None if ctx.op.kind in rule.params["allowed"] else f"{ctx.op.kind} is not listed"


def _unsupported(ctx: OpContext, rule: Rule) -> str | None:
    return f"{ctx.op.kind}"


def _op_min_level(ctx: OpContext, rule: Rule) -> str | None:
    need = rule.params["levels"].get(ctx.op.kind)
    if need is None:
        return f"{ctx.op.kind} is not mapped at any level"
    if ctx.level is not None and ctx.level < need:
        return f"{ctx.op.kind} needs level {need}, target is {ctx.level}"
    return None


def _max_version(ctx: OpContext, rule: Rule) -> str | None:
    limit = rule.params["versions"].get(ctx.op.kind, rule.params.get("default"))
    if limit is None or ctx.op.version <= limit:
        return None
    return f"{ctx.op.kind} version {ctx.op.version}, at most {limit} accepted"


def _dtype(ctx: OpContext, rule: Rule) -> str | None:
    allowed, denied = rule.params.get("allowed"), rule.params.get("denied")
    bad = [t for t in ctx.tensors(rule.params["tensors"])
           if (allowed is not None and t.dtype not in allowed) or (denied is not None and t.dtype in denied)]
    t = _first(bad)
    return None if t is None else f"tensor {_name(t)} is {t.dtype}"


def _static_shape(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.tensors(rule.params["tensors"]) if t.shape_signature and -1 in t.shape_signature)
    return None if t is None else f"tensor {_name(t)} has dynamic shape {list(t.shape_signature or ())}"


def _max_rank(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.tensors(rule.params["tensors"]) if len(t.shape) > rule.params["max"])
    return None if t is None else f"tensor {_name(t)} has rank {len(t.shape)} ({_shape(t)})"


def _outer_dims_one(ctx: OpContext, rule: Rule) -> str | None:
    n = rule.params["innermost"]
    t = _first(t for t in ctx.tensors(rule.params["tensors"]) if any(d != 1 for d in t.shape[:-n]))
    return None if t is None else f"tensor {_name(t)} is {_shape(t)}: a dimension above 1 outside the {n} innermost"


def _max_non1_dims(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.tensors(rule.params["tensors"]) if sum(d > 1 for d in t.shape) > rule.params["max"])
    return None if t is None else f"tensor {_name(t)} is {_shape(t)}"


def _max_elements(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.tensors(rule.params["tensors"]) if int(np.prod(t.shape)) > rule.params["max"])
    return None if t is None else f"tensor {_name(t)} has {int(np.prod(t.shape))} elements"


def _fused_activation(ctx: OpContext, rule: Rule) -> str | None:
    act = ctx.op.fused_activation
    return None if act in rule.params["allowed"] else f"fused activation {act}"


def _option_values(ctx: OpContext, rule: Rule) -> list[tuple[str, object]]:
    values = []
    for name in rule.params["options"]:
        v = ctx.option(name)
        if name == "axis" and isinstance(v, int) and v < 0 and ctx.op.outputs:
            v += len(ctx.tensor(ctx.op.outputs[0]).shape)
        values.append((name, v))
    return values


def _option_in(ctx: OpContext, rule: Rule) -> str | None:
    bad = _first((n, v) for n, v in _option_values(ctx, rule) if v not in rule.params["allowed"])
    return None if bad is None else f"{bad[0]} = {bad[1]}"


def _option_not_in(ctx: OpContext, rule: Rule) -> str | None:
    bad = _first((n, v) for n, v in _option_values(ctx, rule) if v in rule.params["denied"])
    return None if bad is None else f"{bad[0]} = {bad[1]}"


def _option_max(ctx: OpContext, rule: Rule) -> str | None:
    bad = _first((n, v) for n, v in _option_values(ctx, rule) if v > rule.params["max"])
    return None if bad is None else f"{bad[0]} = {bad[1]}"


def _options_equal(ctx: OpContext, rule: Rule) -> str | None:
    values = _option_values(ctx, rule)
    if len({v for _, v in values}) <= 1:
        return None
    return ", ".join(f"{n} = {v}" for n, v in values)


def _option_product_max(ctx: OpContext, rule: Rule) -> str | None:
    values = _option_values(ctx, rule)
    product = int(np.prod([v for _, v in values]))
    return None if product <= rule.params["max"] else f"{' x '.join(str(v) for _, v in values)} = {product}"


def _weight_granularity(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.weights(rule) if granularity(t) not in rule.params["allowed"])
    return None if t is None else f"weights {_name(t)} are {granularity(t).replace('_', '-')}"


def _weight_zero_point(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.weights(rule) if np.any(t.quant.zero_point != 0))
    if t is None:
        return None
    return f"weights {_name(t)} have zero points {sorted(set(t.quant.zero_point.tolist()))[:4]}"


def _weight_scales_normal(ctx: OpContext, rule: Rule) -> str | None:
    tiny = np.finfo(np.float32).tiny
    t = _first(t for t in ctx.weights(rule)
               if not np.all(np.isfinite(t.quant.scale) & (t.quant.scale >= tiny)))
    if t is None:
        return None
    bad = t.quant.scale[~(np.isfinite(t.quant.scale) & (t.quant.scale >= tiny))]
    return f"weights {_name(t)} have scale {float(bad[0])!r}"


def _weight_inner_even(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.weights(rule) if t.shape and t.shape[-1] % 2)
    return None if t is None else f"weights {_name(t)} have {t.shape[-1]} input channels"


def _blockwise_dtype(ctx: OpContext, rule: Rule) -> str | None:
    t = _first(t for t in ctx.weights(rule) if granularity(t) == "blockwise" and t.dtype not in rule.params["allowed"])
    return None if t is None else f"blockwise weights {_name(t)} are {t.dtype}"


def _block_size_multiple(ctx: OpContext, rule: Rule) -> str | None:
    m = rule.params["multiple"]
    t = _first(t for t in ctx.weights(rule) if granularity(t) == "blockwise" and t.quant.block_size % m)
    return None if t is None else f"weights {_name(t)} have block size {t.quant.block_size}"


def _activation_input(ctx: OpContext) -> Tensor | None:
    return _first(t for t in (ctx.tensor(i) for i in ctx.op.inputs if i >= 0) if not t.is_constant)


def _scale_product_below_output(ctx: OpContext, rule: Rule) -> str | None:
    x, w = _activation_input(ctx), _first(ctx.weights(rule))
    y = ctx.tensor(ctx.op.outputs[0]) if ctx.op.outputs else None
    if x is None or w is None or y is None or x.quant is None or y.quant is None:
        return None
    product = float(x.quant.scale[0]) * w.quant.scale.astype(np.float64)
    out = float(y.quant.scale[0])
    if np.all(product < out):
        return None
    return f"input scale x filter scale = {float(product.max()):.3g} >= output scale {out:.3g}"


def _bias_scale(ctx: OpContext, rule: Rule) -> str | None:
    x, w = _activation_input(ctx), _first(ctx.weights(rule))
    bias = _first(t for t in (ctx.tensor(i) for i in ctx.op.inputs if i >= 0)
                  if t.is_constant and t.dtype in ("int32", "int64"))
    if x is None or w is None or bias is None or x.quant is None:
        return None
    if bias.dtype != "int32":
        return f"bias {_name(bias)} is {bias.dtype}"
    if bias.quant is None:
        return f"bias {_name(bias)} has no scale"
    expected = float(x.quant.scale[0]) * w.quant.scale.astype(np.float64)
    got = np.broadcast_to(bias.quant.scale.astype(np.float64), expected.shape)
    if np.allclose(got, expected, rtol=1e-5, atol=0):
        return None
    worst = int(np.argmax(np.abs(got - expected) / expected))
    return f"bias {_name(bias)} scale {got[worst]:.6g}, input x weight scale {expected[worst]:.6g}"


def _input_present(ctx: OpContext, rule: Rule) -> str | None:
    return None if ctx.input(rule.params["input"]) is not None else f"input {rule.params['input']} is omitted"


def _input_constant(ctx: OpContext, rule: Rule) -> str | None:
    t = ctx.input(rule.params["input"])
    return None if t is None or t.is_constant else f"input {_name(t)} is computed at run time"


def _constant_values(ctx: OpContext, rule: Rule) -> tuple[Tensor | None, np.ndarray | None]:
    t = ctx.input(rule.params["input"])
    return t, (None if t is None or t.data is None else np.asarray(t.data).reshape(-1))


def _input_values(ctx: OpContext, rule: Rule) -> str | None:
    t, values = _constant_values(ctx, rule)
    if t is None:
        return None
    if values is None:
        return f"input {_name(t)} is not constant"
    bad = [int(v) for v in values if v not in rule.params["allowed"]]
    return None if not bad else f"input {_name(t)} holds {values.tolist()}"


def _input_values_max(ctx: OpContext, rule: Rule) -> str | None:
    t, values = _constant_values(ctx, rule)
    if t is None:
        return None
    if values is None:
        return f"input {_name(t)} is not constant"
    return None if np.all(values <= rule.params["max"]) else f"input {_name(t)} holds {values.tolist()}"


def _input_dim_min(ctx: OpContext, rule: Rule) -> str | None:
    t, dim = ctx.input(rule.params["input"]), rule.params["dim"]
    if t is None or len(t.shape) <= dim or t.shape[dim] >= rule.params["min"]:
        return None
    return f"tensor {_name(t)} is {_shape(t)}: dimension {dim} is {t.shape[dim]}"


def _reduce_axes_exclude(ctx: OpContext, rule: Rule) -> str | None:
    x = ctx.input(0)
    axes = _axes(ctx, len(x.shape)) if x is not None else None
    if axes is None:
        return None
    hit = sorted(set(axes) & set(rule.params["axes"]))
    return None if not hit else f"reduces axes {axes} of {_shape(x)}"


def _reduce_inner_multiple(ctx: OpContext, rule: Rule) -> str | None:
    x = ctx.input(0)
    axes = _axes(ctx, len(x.shape)) if x is not None and x.shape else None
    if not axes or len(x.shape) - 1 not in axes or x.shape[-1] % rule.params["multiple"] == 0:
        return None
    return f"reduces the innermost axis of {_shape(x)} ({x.shape[-1]} values)"


def _pad_axes_zero(ctx: OpContext, rule: Rule) -> str | None:
    pads = ctx.input(1)
    if pads is None or pads.data is None:
        return None
    rows = np.asarray(pads.data).reshape(-1, 2)
    hit = [a for a in rule.params["axes"] if a < len(rows) and np.any(rows[a] != 0)]
    return None if not hit else f"pads axis {hit[0]} by {rows[hit[0]].tolist()}"


def _squeeze_leading(ctx: OpContext, rule: Rule) -> str | None:
    x = ctx.input(0)
    if x is None:
        return None
    dims = ctx.option("squeezeDims") or []
    squeezed = sorted({int(d) % len(x.shape) for d in dims}) if dims else [i for i, d in enumerate(x.shape) if d == 1]
    return None if squeezed == list(range(len(squeezed))) else f"squeezes axes {squeezed} of {_shape(x)}"


def _constant_input_zero_pair(ctx: OpContext, rule: Rule) -> str | None:
    ins = [ctx.tensor(i) for i in ctx.op.inputs if i >= 0]
    consts = [k for k, t in enumerate(ins) if t.is_constant]
    if not consts:
        return None
    t = ins[consts[0]]
    zero = 0 if t.quant is None else int(t.quant.zero_point[0])
    if len(ins) == 2 and consts == [1] and np.all(np.asarray(t.data) == zero):
        return None
    return f"constant input {_name(t)} among {len(ins)} inputs"


def _broadcast(ctx: OpContext, rule: Rule) -> str | None:
    shapes = [t.shape for t in ctx.tensors("inputs")]
    if len(set(shapes)) <= 1:
        return None
    return "inputs " + " and ".join("x".join(map(str, s)) or "scalar" for s in shapes)


CONDITIONS: dict[str, Callable[[OpContext, Rule], str | None]] = {
    "op_allowed": _op_allowed,
    "unsupported": _unsupported,
    "op_min_level": _op_min_level,
    "max_version": _max_version,
    "dtype": _dtype,
    "static_shape": _static_shape,
    "max_rank": _max_rank,
    "outer_dims_one": _outer_dims_one,
    "max_non1_dims": _max_non1_dims,
    "max_elements": _max_elements,
    "fused_activation": _fused_activation,
    "option_in": _option_in,
    "option_not_in": _option_not_in,
    "option_max": _option_max,
    "options_equal": _options_equal,
    "option_product_max": _option_product_max,
    "weight_granularity": _weight_granularity,
    "weight_zero_point": _weight_zero_point,
    "weight_scales_normal": _weight_scales_normal,
    "weight_inner_even": _weight_inner_even,
    "blockwise_dtype": _blockwise_dtype,
    "block_size_multiple": _block_size_multiple,
    "scale_product_below_output": _scale_product_below_output,
    "bias_scale": _bias_scale,
    "input_present": _input_present,
    "input_constant": _input_constant,
    "input_values": _input_values,
    "input_values_max": _input_values_max,
    "input_dim_min": _input_dim_min,
    "reduce_axes_exclude": _reduce_axes_exclude,
    "reduce_inner_multiple": _reduce_inner_multiple,
    "pad_axes_zero": _pad_axes_zero,
    "squeeze_leading": _squeeze_leading,
    "constant_input_zero_pair": _constant_input_zero_pair,
    "broadcast": _broadcast,
}


def breaks(ctx: OpContext, rule: Rule) -> str | None:
    """How the op breaks the rule (a detail string, possibly empty), or None when the rule is met or does
    not apply (when_options / if_input_dtype filters)."""
    for name, value in rule.params.get("when_options", {}).items():
        if ctx.option(name) != value:
            return None
    dtypes = rule.params.get("if_input_dtype")
    if dtypes is not None:
        x = _activation_input(ctx)
        if x is None or x.dtype not in dtypes:
            return None
    return CONDITIONS[rule.kind](ctx, rule)
