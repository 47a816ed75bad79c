"""Build a QuantPlan from a float graph and calibrated ranges, following the TFLite quantization spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from edgeq.errors import PlanError, UnsupportedOpError
from edgeq.ir.graph import Graph, Op
from edgeq.quant.op_rules import RULES, SHAPE_OPS, OpRule
from edgeq.quant.plan import Encoding, FloatOp, QuantPlan, Requantize
from edgeq.quant.schemes import (
    SCHEMES,
    Scheme,
    affine_params,
    fp16_bf16_ceil,
    fp16_ceil,
    fp16_representable,
    qrange,
    symmetric_weight_scales,
)
from edgeq.quant.weight_scales import FP16_MIN_NORMAL, mse_scales, weight_groups

# A per-channel weight scale is never allowed to make the channel's output multiplier
# (in_scale * w_scale / out_scale) smaller than this: below 2**-31 LiteRT rounds it to zero, and a
# near-dead channel (weights ~1e-12 after batch-norm folding) would lose its bias with it.
_MIN_OUTPUT_MULTIPLIER = 2.0**-24
# A calibrated activation beyond this magnitude is almost always a sentinel (a mask's float minimum), not
# a value the model computes with: the plan says so in its notes.
_SUSPECT_RANGE = 1e6
# Headroom kept below the int32 limit when a bias is quantized with in_scale * w_scale.
_BIAS_HEADROOM = 0.5
_FP16_MAX = float(np.finfo(np.float16).max)


@dataclass
class PlanOptions:
    scheme: Scheme
    io_dtype: str = "float32"
    allow_float_ops: bool = False
    # Mixed precision by pattern (edgeq.quant.overrides): op index -> the scheme its weights take instead of
    # `scheme`, and op index -> the override pattern that keeps it float.
    weight_schemes: Mapping[int, Scheme] = field(default_factory=dict)
    float_overrides: Mapping[int, str] = field(default_factory=dict)
    # Target-aware conversion (edgeq.targets.adapt): op kinds whose 8-bit weights take one scale per tensor
    # (accelerators that reject per-channel weights), and the legacy uint8 asymmetric encoding.
    per_tensor_weights: frozenset[str] = frozenset()
    uint8: bool = False
    # Ops promoted to int16x8 under an int8-activation scheme (overrides "int16x8", the budget's fallback):
    # int16 activations in and out, int8 weights, int64 bias; QUANTIZE int8 <-> int16 where they meet int8 ops.
    int16_ops: frozenset[int] = frozenset()
    # Weight-only schemes, coremltools' coverage (its linear_quantize_weights): weights of at most
    # `weight_threshold` values stay float, and with block_fallback="float" so do convolution weights whose
    # input channels the block does not divide (depthwise filters: one input channel each) instead of taking
    # INT4 per channel. Both artifacts come from the plan, so the .tflite and the .mlpackage agree.
    weight_threshold: int = 0
    block_fallback: str = "channel"  # or "float"
    # A CONV_2D block: N input channels at one kernel tap ("tap"), or over the whole kh x kw window, one scale
    # shared by the taps ("window": coremltools' per_block, whose block covers every axis but in/out channels).
    conv_blocks: str = "tap"


def quantized_input_positions(op: Op, rule: OpRule) -> list[int]:
    """Input slots of `op` that carry values to quantize (expanding -1 to every input)."""
    if -1 in rule.quantized_inputs:
        return list(range(len(op.inputs)))
    return [i for i in rule.quantized_inputs if i < len(op.inputs) and op.inputs[i] >= 0]


def _same_positions(op: Op, rule: OpRule) -> list[int]:
    if -1 in rule.same_encoding:
        return list(range(len(op.inputs)))
    return [i for i in rule.same_encoding if i < len(op.inputs) and op.inputs[i] >= 0]


class _Groups:
    """Union-find over tensor indices that must share one encoding."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, t: int) -> int:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def classify_ops(graph: Graph, opts: PlanOptions) -> tuple[list[bool], list[FloatOp]]:
    """Which ops run quantized. Custom ops always stay float; others only when the user allows it."""
    quantized: list[bool] = []
    floats: list[FloatOp] = []
    for i, op in enumerate(graph.ops):
        reason = ""
        if opts.scheme.weight_only:
            scheme = opts.weight_schemes.get(i, opts.scheme)  # an override: another weight-only block size
            reason = _weight_only_float_reason(graph, op, scheme) or _coverage_float_reason(graph, op, opts)
            quantized.append(not reason)
            if reason:
                floats.append(FloatOp(index=i, kind=op.kind, reason=reason))
            continue
        if op.kind == "CUSTOM":
            reason = f"custom op '{op.custom_code}' has no integer kernel in LiteRT"
        elif op.kind in SHAPE_OPS:
            quantized.append(True)
            continue
        elif op.kind not in RULES:
            reason = f"edgeq cannot quantize {op.kind}"
        elif opts.scheme.activation_dtype == "int16" and not RULES[op.kind].int16:
            reason = f"LiteRT has no int16x8 kernel for {op.kind}"
        if reason and op.kind != "CUSTOM" and not opts.allow_float_ops:
            raise UnsupportedOpError(
                f"{graph.where(i)}: {reason}; pass allow_float_ops=True (CLI: --allow-float) to keep it "
                f"float between DEQUANTIZE and QUANTIZE"
            )
        quantized.append(not reason)
        if reason:
            floats.append(FloatOp(index=i, kind=op.kind, reason=reason))
    for i in sorted(opts.int16_ops):
        if quantized[i] and not RULES[graph.ops[i].kind].int16:
            kind = graph.ops[i].kind
            raise PlanError(f"{graph.where(i)}: LiteRT has no int16x8 kernel for {kind}; it cannot be promoted")
    for i, pattern in opts.float_overrides.items():
        if quantized[i]:
            quantized[i] = False
            floats.append(FloatOp(index=i, kind=graph.ops[i].kind, reason=f"kept float by override '{pattern}'"))
    return quantized, sorted(floats, key=lambda f: f.index)


def build_plan(
    graph: Graph,
    ranges: Mapping[int, tuple[float, float]],
    opts: PlanOptions,
    model_sha256: str,
    int16_ranges: Mapping[int, tuple[float, float]] | None = None,
) -> QuantPlan:
    """Decide every tensor's encoding. `ranges` maps activation tensor index -> calibrated (lo, hi);
    `int16_ranges`, when given, ranges the tensors promoted to int16 in an int8 scheme instead (min/max:
    65536 levels leave nothing for the int8 observer's clipping to buy)."""
    scheme = opts.scheme
    quantized, floats = classify_ops(graph, opts)
    plan = QuantPlan(scheme=scheme.name, io_dtype=opts.io_dtype, model_sha256=model_sha256, float_ops=floats)
    if scheme.weight_only:
        slots = dict(_weight_only_slot(graph, i, op) for i, op in enumerate(graph.ops) if quantized[i])
        window = opts.conv_blocks == "window"
        _plan_weights_and_biases(graph, plan, slots, {}, scheme, opts.weight_schemes, window=window)
        kept = [f for f in floats if _coverage_float_reason(graph, graph.ops[f.index], opts)]
        if kept:
            plan.notes.append(
                f"coremltools' coverage (weight_threshold={opts.weight_threshold}, block_fallback="
                f"'{opts.block_fallback}'): {len(kept)} weight(s) kept float, "
                + ", ".join(f"{k} {sum(f.kind == k for f in kept)}" for k in sorted({f.kind for f in kept}))
            )
        return plan
    weight_slots: dict[int, tuple[int, int]] = {}  # tensor -> (op index, axis)
    bias_slots: dict[int, int] = {}  # tensor -> op index
    groups = _Groups()
    members: set[int] = set()  # activation-like tensors (graph values and constants used as values)
    symmetric: set[int] = set()
    fixed: dict[int, tuple[float, int]] = {}
    requantize: list[tuple[int, int]] = []
    twins: list[tuple[int, int]] = []  # (op, input slot) reading its tensor in the op's other activation type
    op_types, types = _activation_types(graph, quantized, opts)

    for i, op in enumerate(graph.ops):
        if not quantized[i] or op.kind in SHAPE_OPS:
            continue
        rule = RULES[op.kind]
        dtype = op_types[i]
        weights = dict(rule.weights)
        table = _hybrid_weight(graph, op) if op.kind == "EMBEDDING_LOOKUP" and scheme.weight_dtype == "int4" else None
        if table is not None:
            # An INT4 table is read by LiteRT's hybrid lookup (float rows out, QUANTIZE after): a weight, and the
            # output an activation of its own rather than the table's int8 twin.
            weight_slots[table] = (i, 0)
            members.update(t for t in op.outputs if graph.tensors[t].dtype == "float32")
            continue
        for pos in quantized_input_positions(op, rule):
            t = op.inputs[pos]
            tensor = graph.tensors[t]
            if tensor.dtype != "float32":
                continue
            if pos in weights and tensor.is_constant:
                weight_slots[t] = (i, weights[pos])
            elif pos == rule.bias:
                if not tensor.is_constant:
                    raise UnsupportedOpError(f"{graph.where(i)}: bias '{tensor.name}' is not a constant")
                bias_slots[t] = i
            else:
                members.add(t)
                if pos in rule.symmetric_inputs:
                    symmetric.add(t)
                if types.get(t, scheme.activation_dtype) != dtype and pos not in _same_positions(op, rule):
                    twins.append((i, pos))
        for t in op.outputs:
            if graph.tensors[t].dtype == "float32":
                members.add(t)
        same = _same_positions(op, rule)
        for pos in same:
            t = op.inputs[pos]
            if graph.tensors[t].dtype != "float32":
                continue
            joins_fixed = len(same) > 1 and any(groups.find(f) == groups.find(t) for f in fixed)
            if types.get(t, scheme.activation_dtype) != dtype or joins_fixed:
                # An input of the other activation type, or joining a fixed encoding (a SOFTMAX/LOGISTIC/TANH
                # output, which would force it on every other input of a CONCATENATION): re-encode this input.
                requantize.append((i, pos))
            else:
                groups.union(t, op.outputs[0])
        if rule.same_encoding:
            for t in op.outputs[1:]:
                groups.union(t, op.outputs[0])
        fixed_enc = rule.fixed_int16 if dtype == "int16" else rule.fixed_int8
        if fixed_enc is not None:
            fixed[op.outputs[0]] = fixed_enc
    # `members` now holds every float value a quantized op reads or writes, graph I/O included; values
    # only float ops touch stay float, and the lowering puts DEQUANTIZE / QUANTIZE where the two meet.
    spans = _plan_activations(graph, plan, members, groups, symmetric, fixed, ranges, types, scheme, int16_ranges)
    plan.requantize = [
        Requantize(op=i, input=pos, like=graph.tensors[graph.ops[i].outputs[0]].name) for i, pos in requantize
    ] + [_twin(graph, i, pos, op_types[i], spans, symmetric) for i, pos in twins]
    # Promoted ops take int8 weights whatever the scheme's (LiteRT's int16x8 kernels read int8 weights).
    weight_schemes = {**opts.weight_schemes, **{i: SCHEMES["int16x8"] for i in opts.int16_ops}}
    _plan_weights_and_biases(graph, plan, weight_slots, bias_slots, scheme, weight_schemes,
                             opts.per_tensor_weights)
    if scheme.weight_dtype == "int4":
        _note_int8_batch_matmul_constants(graph, plan, quantized)
    if opts.uint8:
        _as_uint8(plan)
    return plan


def _activation_types(graph: Graph, quantized: list[bool], opts: PlanOptions) -> tuple[dict[int, str], dict[int, str]]:
    """Activation type of each quantized op (op index -> dtype) and of each value tensor (tensor -> dtype).
    Ops take the scheme's type, promoted ops (opts.int16_ops) int16, and data movement (same-encoding ops)
    the type of an input, int16 if one is, so a run of promoted ops keeps int16 through PAD or RESHAPE.
    A tensor has its producer's type; one no quantized op produces (a graph input with float I/O, a float op's
    output, a constant) is int16 when every quantized op reading it is promoted."""
    base = opts.scheme.activation_dtype
    types: dict[int, str] = {}
    ops: dict[int, str] = {}
    if not opts.int16_ops:
        return {i: base for i, q in enumerate(quantized) if q}, types
    if opts.uint8:
        raise PlanError("int16x8 promotions with uint8 encodings: LiteRT's QUANTIZE has no int16 <-> uint8 path")
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(graph.ops):
        if quantized[i] and op.kind not in SHAPE_OPS:
            for t in op.inputs:
                if t >= 0:
                    readers.setdefault(t, []).append(i)
    producers = graph.producers()
    for t, users in readers.items():
        p = producers.get(t)
        fed = p is None or not quantized[p]
        if fed and all(i in opts.int16_ops for i in users) and (opts.io_dtype == "float32" or t not in graph.inputs):
            types[t] = "int16"
    for i, op in enumerate(graph.ops):
        if not quantized[i] or op.kind in SHAPE_OPS:
            continue
        rule = RULES[op.kind]
        follows = rule.same_encoding and not rule.weights and rule.int16
        wide = follows and any(types.get(op.inputs[p]) == "int16" for p in _same_positions(op, rule))
        dtype = "int16" if i in opts.int16_ops or wide else base
        ops[i] = dtype
        for t in op.outputs:
            types[t] = dtype
    if opts.io_dtype != "float32":
        wide = [graph.tensors[t].name for t in graph.outputs if types.get(t) == "int16"]
        if wide:
            raise PlanError(f"outputs {wide} are int16 (promoted ops) but io is {opts.io_dtype}: use float32 I/O")
    return ops, {t: d for t, d in types.items() if d != base}


def _twin(graph: Graph, op: int, pos: int, dtype: str, spans, symmetric: set[int]) -> Requantize:
    """Input `pos` of `op` re-encoded in the op's activation type from the tensor's own planned range."""
    t = graph.ops[op].inputs[pos]
    lo, hi = spans[t]
    scale, zp = affine_params(lo, hi, dtype, dtype == "int16" or t in symmetric)
    other = "int8" if dtype == "int16" else "int16"
    return Requantize(op=op, input=pos, encoding=Encoding(
        dtype=dtype, scale=[float(scale)], zero_point=[int(zp)],
        rule=f"{dtype} twin of an {other} tensor for an {dtype} reader (same range)",
    ))


def _as_uint8(plan: QuantPlan) -> None:
    """The legacy uint8 asymmetric encoding of an int8 plan: every int8 tensor keeps its scale and moves its
    values and zero point up by 128, so every kernel computes the same integers (in - zp) x (w - zp). uint8
    kernels take per-tensor weights only."""
    for name, enc in plan.tensors.items():
        if enc.dtype != "int8":
            continue
        if enc.per_channel:
            raise PlanError(f'tensor "{name}": uint8 weights must be per-tensor, the plan has {len(enc.scale)} scales')
        enc.dtype, enc.zero_point, enc.narrow_range = "uint8", [z + 128 for z in enc.zero_point], False
        enc.rule += "; uint8 (int8 values + 128)"
    if plan.io_dtype == "int8":
        plan.io_dtype = "uint8"


def _value_range(graph: Graph, t: int, ranges: Mapping[int, tuple[float, float]]) -> tuple[float, float] | None:
    tensor = graph.tensors[t]
    if tensor.is_constant:
        data = np.asarray(tensor.data, dtype=np.float64)
        return (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    return ranges.get(t)


def _plan_activations(graph, plan, members, groups, symmetric, fixed, ranges, types, scheme, int16_ranges) -> dict:
    """Encode every group of activation tensors; returns each tensor's planned (lo, hi), for twins."""
    by_root: dict[int, list[int]] = {}
    for t in sorted(members):
        by_root.setdefault(groups.find(t), []).append(t)
    spans: dict[int, tuple[float, float]] = {}
    for group in by_root.values():
        names = [graph.tensors[t].name for t in group]
        dtype = types.get(group[0], scheme.activation_dtype)
        fixed_here = [fixed[t] for t in group if t in fixed]
        if fixed_here:
            scale, zp = fixed_here[0]
            qmin, qmax = qrange(dtype)
            lo, hi = scale * (qmin - zp), scale * (qmax - zp)
            rule = "fixed by the op"
            if len(group) > 1:
                rule = f"fixed by the op, shared with {len(group) - 1} same-encoding tensors"
        else:
            lo, hi = np.inf, -np.inf
            promoted = int16_ranges is not None and dtype == "int16" and scheme.activation_dtype != "int16"
            for t in group:
                r = _value_range(graph, t, int16_ranges if promoted else ranges)
                if r is None:
                    continue
                lo, hi = min(lo, r[0]), max(hi, r[1])
                if not graph.tensors[t].is_constant:
                    plan.ranges[graph.tensors[t].name] = (float(r[0]), float(r[1]))
            if lo > hi:
                raise PlanError(f"no calibrated range for tensor(s) {names}: calibration never produced them")
            if max(abs(lo), abs(hi)) > _SUSPECT_RANGE:
                plan.notes.append(
                    f"tensor '{names[0]}' has a calibrated range of [{lo:.3g}, {hi:.3g}]: values this large "
                    f"(a sentinel such as -3.4e38 that no softmax reads through an ADD, where calibration would range "
                    f"it for the softmax: edgeq/calibrate/softmax_ranges.py) leave {dtype} no "
                    f"resolution for the rest of the tensor; the range was clamped to +-{_SUSPECT_RANGE:.0e} "
                    f"(LiteRT aborts on the multipliers the full range implies) and fidelity downstream will be "
                    f"poor: check edgeq.compare's worst layers, or keep the ops that make it float"
                )
                lo, hi = max(lo, -_SUSPECT_RANGE), min(hi, _SUSPECT_RANGE)
            sym = dtype == "int16" or any(t in symmetric for t in group)
            scale, zp = affine_params(lo, hi, dtype, sym)
            rule = "calibrated range" if len(group) == 1 else f"union range of a same-encoding group of {len(group)}"
        if dtype != scheme.activation_dtype:
            rule += ", int16 (promoted to int16x8)"
        for t in group:
            spans[t] = (float(lo), float(hi))
            plan.tensors[graph.tensors[t].name] = Encoding(
                dtype=dtype, scale=[float(scale)], zero_point=[int(zp)], rule=rule
            )
    return spans


def _op_encodings(graph: Graph, plan: QuantPlan, index: int) -> tuple[Encoding, Encoding]:
    """Input and output activation encodings of a weighted op as it reads and writes them (TRANSPOSE_CONV
    reads its input in slot 2; an input re-encoded for the op, int8 <-> int16, is read as its twin)."""
    op = graph.ops[index]
    in_slot = 2 if op.kind == "TRANSPOSE_CONV" else 0
    twin = next((r.encoding for r in plan.requantize if (r.op, r.input) == (index, in_slot) and r.encoding), None)
    in_enc = twin or plan.tensors.get(graph.tensors[op.inputs[in_slot]].name)
    out_enc = plan.tensors.get(graph.tensors[op.outputs[0]].name)
    if in_enc is None or out_enc is None:
        raise PlanError(f"{op.kind} '{graph.tensors[op.outputs[0]].name}': input or output has no encoding")
    return in_enc, out_enc


# Ops LiteRT runs with INT4 weights: per-channel INT4 with int8 activations (REF and TFLM kernels), and
# FULLY_CONNECTED also blockwise with float activations (XNNPACK, LiteRT's optimized builtin kernel);
# EMBEDDING_LOOKUP dequantizes INT4 table rows, per row or per block, to float (every kernel, REF too).
_INT4_WEIGHT_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "EMBEDDING_LOOKUP"})
# Ops reading an integer weight with float activations: all weight-only schemes quantize.
_HYBRID_WEIGHT_OPS = frozenset({"FULLY_CONNECTED", "EMBEDDING_LOOKUP"})
# Convolutions under weight-only schemes: LiteRT has no conv reading INT4 weights with float activations, so
# the .tflite stores the INT4 weight and DEQUANTIZEs it into the float conv (op kind -> per-channel axis).
_DEQUANTIZED_WEIGHT_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}


def _constant_float_weight(graph: Graph, op: Op, kinds, rank: int) -> int | None:
    """Input 1 of an op of one of `kinds` when it is a constant float32 tensor of `rank` dimensions."""
    if op.kind not in kinds or len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    tensor = graph.tensors[op.inputs[1]]
    if not tensor.is_constant or tensor.dtype != "float32" or len(tensor.shape) != rank:
        return None
    return op.inputs[1]


def _hybrid_weight(graph: Graph, op: Op) -> int | None:
    """The constant float 2-D weight (FULLY_CONNECTED) or table (EMBEDDING_LOOKUP) an op would read as integers."""
    return _constant_float_weight(graph, op, _HYBRID_WEIGHT_OPS, 2)


def _dequantized_weight(graph: Graph, op: Op) -> int | None:
    """The constant float 4-D weight of a convolution, which weight-only schemes store as INT4."""
    return _constant_float_weight(graph, op, _DEQUANTIZED_WEIGHT_OPS, 4)


def _weight_only_slot(graph: Graph, index: int, op: Op) -> tuple[int, tuple[int, int]]:
    """(weight tensor, (op index, per-channel axis)) of an op a weight-only scheme quantizes."""
    w = _hybrid_weight(graph, op)
    if w is not None:
        return w, (index, 0)
    w = _dequantized_weight(graph, op)
    assert w is not None
    return w, (index, _DEQUANTIZED_WEIGHT_OPS[op.kind])


def _weight_only_float_reason(graph: Graph, op: Op, scheme: Scheme) -> str:
    """Why a weight-only scheme leaves `op` entirely float ("" when it reads an INT4 weight)."""
    if _dequantized_weight(graph, op) is not None:
        return ""
    w = _hybrid_weight(graph, op)
    if w is None:
        return f"{scheme.name} is weight-only: no INT4 weight LiteRT reads with float activations"
    columns = graph.tensors[w].shape[1]
    if op.kind == "FULLY_CONNECTED" and columns % scheme.block_size:
        return f"{columns} inputs are not a multiple of the block size {scheme.block_size}"
    return ""


BLOCK_FALLBACKS = ("channel", "float")
CONV_BLOCKS = ("tap", "window")
# The options giving coremltools' linear_quantize_weights per_block form (quantize(**COREMLTOOLS_FORM)).
COREMLTOOLS_FORM = {"weight_threshold": 2048, "block_fallback": "float", "conv_blocks": "window"}


def check_coverage_options(opts: PlanOptions) -> None:
    """weight_threshold and block_fallback choose which weights a weight-only scheme leaves float."""
    if opts.block_fallback not in BLOCK_FALLBACKS:
        raise PlanError(f"block_fallback={opts.block_fallback!r}: choose one of {', '.join(BLOCK_FALLBACKS)}")
    if opts.conv_blocks not in CONV_BLOCKS:
        raise PlanError(f"conv_blocks={opts.conv_blocks!r}: choose one of {', '.join(CONV_BLOCKS)}")
    if opts.weight_threshold < 0:
        raise PlanError(f"weight_threshold={opts.weight_threshold}: a number of weight values, 0 or more")
    custom = opts.weight_threshold or opts.block_fallback != "channel" or opts.conv_blocks != "tap"
    if custom and not (opts.scheme.weight_only and opts.scheme.block_size):
        raise PlanError(
            f"weight_threshold, block_fallback and conv_blocks apply to the blockwise weight-only schemes (w4-blockN); "
            f"under {opts.scheme.name} a float weight means a float op: use overrides={{pattern: 'float'}}"
        )


def _coverage_float_reason(graph: Graph, op: Op, opts: PlanOptions) -> str:
    """Why coremltools' coverage (opts.weight_threshold, block_fallback="float") keeps a weight float ("" when not)."""
    w = _hybrid_weight(graph, op)
    w = _dequantized_weight(graph, op) if w is None else w
    if w is None:
        return ""
    shape = graph.tensors[w].shape
    size = int(np.prod(shape))
    if size <= opts.weight_threshold:
        return f"weight of {size} values, at most weight_threshold={opts.weight_threshold}: kept float"
    block = opts.scheme.block_size
    if opts.block_fallback == "float" and op.kind in _DEQUANTIZED_WEIGHT_OPS:
        inputs = 1 if op.kind == "DEPTHWISE_CONV_2D" else shape[-1]
        if inputs % block:
            return (
                f"{inputs} input channel(s) a filter, not a multiple of the block size {block}: kept float "
                f"(block_fallback='float')"
            )
    return ""


def _weight_format(graph: Graph, plan: QuantPlan, op: Op, w: np.ndarray, scheme: Scheme) -> tuple[str, int]:
    """(dtype, block size) of one weight under the scheme; falls back, with a note, where INT4 cannot go."""
    if scheme.weight_dtype != "int4":
        return scheme.weight_dtype, 0
    out = graph.tensors[op.outputs[0]].name
    if op.kind not in _INT4_WEIGHT_OPS:
        plan.notes.append(f"{op.kind} '{out}': LiteRT has no INT4 kernel for it; its weights stay int8")
        return "int8", 0
    blocked = op.kind in _HYBRID_WEIGHT_OPS or (scheme.weight_only and op.kind == "CONV_2D")
    block = scheme.block_size if blocked else 0
    if block and (w.ndim != (4 if op.kind == "CONV_2D" else 2) or w.shape[-1] % block):
        # coremltools' per-block quantization skips such weights (they stay fp16); INT4 per channel is smaller.
        plan.notes.append(
            f"{op.kind} '{out}': {w.shape[-1]} inputs are not a multiple of the block size {block}; "
            f"its weights are per-channel INT4 instead"
        )
        block = 0
    if op.kind == "EMBEDDING_LOOKUP" and not block and w.shape[1] % 2:
        # LiteRT unpacks an INT4 row from byte (row * columns) / 2: rows must start on a byte.
        plan.notes.append(f"EMBEDDING_LOOKUP '{out}': rows of {w.shape[1]} values cannot be INT4; int8 per row")
        return "int8", 0
    return "int4", block


def _window_block_scales(w: np.ndarray, block: int, qmax: int) -> np.ndarray:
    """MSE scales of a CONV_2D weight [out, kh, kw, in] per block of `block` input channels over the whole
    kernel window, repeated at every tap: the plan's per-tap block layout ([out][kh][kw][in / block]) with
    one scale shared by the taps, as coremltools' per_block makes them (the Core ML package stores it once)."""
    o, kh, kw, i = w.shape
    taps = np.asarray(w, dtype=np.float64).reshape(o, kh * kw, i // block, block)
    groups = taps.transpose(0, 2, 1, 3).reshape(o * (i // block), kh * kw * block)
    shared = mse_scales(groups, qmax, FP16_MIN_NORMAL).reshape(o, 1, i // block)
    return np.broadcast_to(shared, (o, kh * kw, i // block)).reshape(-1)


def _note_int8_batch_matmul_constants(graph: Graph, plan: QuantPlan, quantized: list[bool]) -> None:
    """A constant BATCH_MATMUL operand is encoded like an activation (int8): say so under an INT4 scheme."""
    for i, op in enumerate(graph.ops):
        if quantized[i] and op.kind == "BATCH_MATMUL" and any(graph.tensors[t].is_constant for t in op.inputs[:2]):
            plan.notes.append(
                f"BATCH_MATMUL '{graph.tensors[op.outputs[0]].name}': LiteRT has no INT4 kernel for it; "
                f"its constant operand stays int8"
            )


def _plan_weights_and_biases(
    graph, plan, weight_slots, bias_slots, scheme: Scheme, weight_schemes=None, per_tensor=frozenset(), window=False
) -> None:
    floored_total = 0
    for t, (op_index, axis) in sorted(weight_slots.items()):
        op = graph.ops[op_index]
        w = graph.tensors[t].data
        dtype, block = _weight_format(graph, plan, op, w, (weight_schemes or {}).get(op_index, scheme))
        if op.kind in per_tensor and dtype == "int8":
            axis = None
        _, wmax = qrange(dtype)
        if block:
            # Computed in float (the kernel quantizes the activations on the fly): no integer multiplier or
            # bias to protect. Scales are normal fp16, so a block that would underflow gets the smallest normal
            # one: LiteRT's XNNPACK delegate at HEAD refuses subnormal scales (CheckFp16Scale), 2.3 still runs them.
            # DEQUANTIZE (a weight-only CONV_2D) multiplies by the float32 scale: fp16-exact is enough there.
            ceil = fp16_bf16_ceil if op.kind == "FULLY_CONNECTED" else fp16_ceil
            if window and op.kind == "CONV_2D":
                scales = _window_block_scales(w, block, wmax)
            else:
                scales = mse_scales(weight_groups(w, axis, block), wmax, FP16_MIN_NORMAL, ceil=ceil)
            if np.max(scales) > _FP16_MAX:
                raise PlanError(f"{graph.where(op_index)}: weights reach {np.max(np.abs(w)):.3g}, beyond fp16 scales")
            plan.tensors[graph.tensors[t].name] = Encoding(
                dtype=dtype,
                scale=[float(s) for s in scales],
                zero_point=[0] * scales.size,
                axis=axis,
                rule=f"symmetric INT4 weights per block of {block} values"
                f"{' at every tap, one scale for the kernel window' if window and op.kind == 'CONV_2D' else ''}, "
                f"{'fp16 and bf16' if op.kind == 'FULLY_CONNECTED' else 'fp16'} scales chosen by weight MSE",
                narrow_range=True,
                block_size=block,
            )
            continue
        if op.kind == "EMBEDDING_LOOKUP":
            # Dequantized to float by the kernel: no integer multiplier or bias to protect, fp16 scales per row.
            scales = mse_scales(weight_groups(w, 0), wmax, FP16_MIN_NORMAL)
            plan.tensors[graph.tensors[t].name] = Encoding(
                dtype=dtype,
                scale=[float(s) for s in scales],
                zero_point=[0] * scales.size,
                axis=0,
                rule=f"symmetric {dtype} table per row, read as float rows, fp16 scales chosen by weight MSE",
                narrow_range=True,
            )
            continue
        if scheme.weight_only:
            # A convolution's weight DEQUANTIZEd to float: no integer multiplier or bias, fp16 scales per channel.
            scales = mse_scales(weight_groups(w, axis), wmax, FP16_MIN_NORMAL)
            plan.tensors[graph.tensors[t].name] = Encoding(
                dtype=dtype,
                scale=[float(s) for s in scales],
                zero_point=[0] * scales.size,
                axis=axis,
                rule=f"symmetric per-channel {dtype} weights dequantized to float, fp16 scales chosen by weight MSE",
                narrow_range=True,
            )
            continue
        scales = symmetric_weight_scales(w, axis, wmax)
        in_enc, out_enc = _op_encodings(graph, plan, op_index)
        in_scale, out_scale = in_enc.scale[0], out_enc.scale[0]
        floor = np.full_like(scales, _MIN_OUTPUT_MULTIPLIER * out_scale / in_scale)
        rule = RULES[op.kind]
        bias_t = op.inputs[rule.bias] if rule.bias is not None and rule.bias < len(op.inputs) else -1
        if bias_t >= 0 and graph.tensors[bias_t].is_constant:
            bias = np.abs(np.asarray(graph.tensors[bias_t].data, dtype=np.float64)).reshape(-1)
            _, bmax = qrange(_bias_dtype(scheme, in_enc))
            if bias.size == scales.size:
                floor = np.maximum(floor, bias / (in_scale * bmax * _BIAS_HEADROOM))
        floored = scales < floor
        if floored.any():
            floored_total += int(floored.sum())
            plan.notes.append(
                f"{op.kind} '{graph.tensors[op.outputs[0]].name}': {int(floored.sum())} of {scales.size} "
                f"channels have near-zero weights (max |w| {float(np.min(scales) * wmax):.3g}); their scale "
                f"was raised so the bias stays representable and the output multiplier does not vanish"
            )
        if dtype == "int4":
            scales = mse_scales(weight_groups(w, axis), wmax, floor)
            how = "per-channel INT4 weights, scales chosen by weight MSE"
        else:
            scales = np.maximum(scales, floor)
            scales = np.where(scales > 0, scales, 1.0)
            scales = np.asarray([fp16_representable(float(s), dtype) for s in scales])
            how = "per-channel weights" if axis is not None else "per-tensor weights (target-aware conversion)"
        plan.tensors[graph.tensors[t].name] = Encoding(
            dtype=dtype,
            scale=[float(s) for s in scales.astype(np.float32)],
            zero_point=[0] * scales.size,
            axis=axis or 0,
            rule=f"symmetric {how}" + (f", axis {axis}" if axis is not None else ""),
            narrow_range=True,
        )
    for t, op_index in sorted(bias_slots.items()):
        op = graph.ops[op_index]
        rule = RULES[op.kind]
        w_name = graph.tensors[op.inputs[rule.weights[0][0]]].name
        in_enc, _ = _op_encodings(graph, plan, op_index)
        in_scale = in_enc.scale[0]
        w_enc = plan.tensors.get(w_name)
        if w_enc is None:
            raise PlanError(f"{graph.where(op_index)}: weight '{w_name}' has no encoding, bias cannot be derived")
        if w_enc.block_size:
            continue  # a blockwise FULLY_CONNECTED computes in float: its bias stays float32
        n = graph.tensors[t].data.size
        w_scales = np.asarray(w_enc.scale, dtype=np.float64)
        if w_scales.size not in (1, n):
            raise PlanError(f"{graph.where(op_index)}: bias has {n} entries but weights {w_scales.size} scales")
        # One bias scale for per-tensor weights (XNNPACK refuses a per-channel bias next to them), else one per channel.
        shape = (1,) if op.kind in per_tensor and not w_enc.per_channel else (n,)
        scales = np.broadcast_to(np.float64(np.float32(in_scale)) * w_scales.astype(np.float32), shape)
        plan.tensors[graph.tensors[t].name] = Encoding(
            dtype=_bias_dtype(scheme, in_enc),
            scale=[float(s) for s in scales.astype(np.float32)],
            zero_point=[0] * scales.size,
            axis=0,
            rule="bias: input scale x weight scale",
        )
    if floored_total:
        plan.notes.append(f"{floored_total} near-dead weight channels in all had their scales floored")


def _bias_dtype(scheme: Scheme, in_enc: Encoding) -> str:
    """int64 for an op reading int16 activations (an op promoted to int16x8 too), else the scheme's."""
    return "int64" if in_enc.dtype == "int16" else scheme.bias_dtype
