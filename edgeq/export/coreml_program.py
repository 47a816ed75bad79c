"""The state of one TFLite-graph-to-MIL lowering: values with their layouts, constants, and the plan's encodings.

TFLite tensors are channel-last; MIL's convolutions, pools and resizes are channel-first. Each lowered value
carries `perm`: MIL axis i holds TFLite axis perm[i]. Ops that need channel-first ask for it, elementwise ops
keep whatever layout they are given, axis ops remap their axes, and a TRANSPOSE only composes perms. So a
transpose is emitted only where a layout really changes (none at all in a plain conv net with an NCHW image).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from edgeq.errors import PlanError
from edgeq.export.coreml_env import ct, mb, types
from edgeq.ir.graph import Graph
from edgeq.quant.plan import Encoding, QuantPlan

NCHW = (0, 3, 1, 2)  # MIL channel-first axes of a TFLite NHWC tensor
# How each mode stores weights and whether activations pass through quantize/dequantize.
MODES = ("fp16", "w8", "w8a8", "w4")
# Ops that only move, select or pad values: when their output's encoding is their inputs', what they produce
# is already on the int8 grid, so w8a8 adds no quantize/dequantize after them (fewer ops and bytes).
GRID_PRESERVING = frozenset(
    {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "PAD", "PADV2", "MAX_POOL_2D", "STRIDED_SLICE", "SLICE",
     "GATHER", "SPLIT", "SPLIT_V", "PACK", "CONCATENATION", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
     "RESIZE_NEAREST_NEIGHBOR", "REDUCE_MAX", "REDUCE_MIN", "MAXIMUM", "MINIMUM"}
)  # fmt: skip
# Ops of several inputs that only copy or select input values (quantize is monotone, so it commutes with max and
# min): quantizing their inputs to the output's encoding one by one equals quantizing the output once.
ONE_PAIR_AFTER = frozenset({"CONCATENATION", "PACK", "MAXIMUM", "MINIMUM"})


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def mil_name(name: str) -> str:
    """A MIL/Core ML identifier for a TFLite tensor name (letters, digits and underscores, not digit-first)."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return clean if clean and not clean[0].isdigit() else f"t_{clean}"


def short_name(name: str) -> str:
    """A readable, bounded op name from a TFLite tensor name: its last path component without module prefixes
    ("a/conv2d_1/Relu;a/conv2d_1/BiasAdd" -> "BiasAdd", suffixes kept). Converter names run to hundreds of
    characters, and every MIL op and each of its parameter constants carries its name: EfficientNet's w8a8
    package was 30% names."""
    parts = [p.rsplit(".", 1)[-1] for p in re.split(r"[/;:]", name) if p] or ["t"]
    numbered = re.fullmatch(r"\d+(__\w*)?", parts[-1])  # "...;1" or "...;1__q": the component before counts
    if numbered and len(parts) > 1:
        return (parts[-2] + (numbered.group(1) or ""))[-32:]
    return parts[-1][-32:]


@dataclass
class Value:
    var: object  # a MIL Var
    perm: tuple[int, ...]  # MIL axis i holds TFLite axis perm[i]

    @property
    def rank(self) -> int:
        return len(self.perm)


@dataclass
class Lowering:
    """Everything the op lowerings share. `ints` holds the integer constants of the rendered .tflite graph by
    tensor name: the exporter copies those integers, it never quantizes a weight itself."""

    graph: Graph
    plan: QuantPlan
    mode: str
    ints: dict[str, np.ndarray]
    opset: object  # coremltools.target
    float_ops: set[int] = field(default_factory=set)
    weight_threshold: int = 0  # weight-only modes: weights of at most this many values stay fp16
    float_weights: list[int] = field(default_factory=list)  # the weights that did
    values: dict[int, Value] = field(default_factory=dict)
    used_names: set[str] = field(default_factory=set)
    weights: dict[int, list] = field(default_factory=dict)  # weight tensor -> [constexpr op name, TFLite->MIL perm]
    quantize_ops: dict[str, str] = field(default_factory=dict)  # dequantize output -> the quantize op before it
    grid_consts: dict[tuple, tuple] = field(default_factory=dict)  # (dtype, scale, zero point) -> const vars
    float_sourced: set[int] = field(default_factory=set)  # w8a8: planned tensors the .tflite holds in float
    fp32_inputs: dict[int, object] = field(default_factory=dict)  # float model inputs as fed, before the fp16 cast
    quantized_views: dict[int, Value] = field(default_factory=dict)  # ...and their fake-quantized twins
    on_grid_vars: dict[str, tuple] = field(default_factory=dict)  # dequantize output -> its grid_consts key
    transposed: dict[tuple[str, tuple], Value] = field(default_factory=dict)  # (var name, perm) -> its transpose
    deferred: set[int] = field(default_factory=set)  # w8a8: tensors quantized by their only reader's pair
    deferred_requantize: set[tuple[int, int]] = field(default_factory=set)  # ... and (op, input) requantizations

    # ---- names -------------------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        stem = mil_name(short_name(base))
        name, n = stem, 1
        while name in self.used_names:
            n += 1
            name = f"{stem}_{n}"
        self.used_names.add(name)
        return name

    def tname(self, t: int) -> str:
        return self.graph.tensors[t].name

    # ---- layouts -----------------------------------------------------------------------------------------
    def to_perm(self, v: Value, perm: tuple[int, ...], hint: str) -> Value:
        if v.perm == perm:
            return v
        if len(perm) != v.rank:
            raise PlanError(f"internal: layout of rank {v.rank} asked as rank {len(perm)} at {hint}")
        # One transpose per value and layout, however many ops read it so (an input two convolutions read),
        # named "<tensor>_T": short, the name appears in the package once per reader.
        key = (v.var.name, perm)
        if key not in self.transposed:
            # new MIL axis i holds TFLite axis perm[i], found in the old MIL var at axis v.perm.index(perm[i]).
            order = [v.perm.index(p) for p in perm]
            self.transposed[key] = Value(mb.transpose(x=v.var, perm=order, name=self.fresh(f"{hint}_T")), perm)
        return self.transposed[key]

    # ---- reading tensors ---------------------------------------------------------------------------------
    def value(self, t: int, perm: tuple[int, ...] | None = None, hint: str = "") -> Value:
        """Tensor t as a MIL value, in layout `perm` when given (a constant is laid out directly)."""
        tensor = self.graph.tensors[t]
        if tensor.is_constant:
            data = self.constant_values(t)
            p = perm if perm is not None else identity(data.ndim)
            return Value(self.const(np.transpose(data, p) if data.ndim else data, tensor.name), p)
        if t not in self.values:
            raise PlanError(f'internal: tensor "{tensor.name}" read before it was produced')
        v = self.values[t]
        return v if perm is None else self.to_perm(v, perm, hint or tensor.name)

    def const(self, data: np.ndarray, base: str):
        """A compute-typed (fp16) constant, or an integer constant as is."""
        arr = np.asarray(data)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float16)
        return mb.const(val=arr, name=self.fresh(base))

    def constant_values(self, t: int) -> np.ndarray:
        """A non-weight constant as the model computes with it: under w8a8 the dequantized plan integers
        (what the integer model sees), otherwise the float data."""
        tensor = self.graph.tensors[t]
        enc = self.plan.tensors.get(tensor.name)
        if self.mode == "w8a8" and enc is not None and tensor.name in self.ints:
            return dequantize(self.ints[tensor.name], enc, tensor.shape)
        data = np.asarray(tensor.data)
        return data.astype(np.float32) if data.dtype.kind == "f" else data

    def static(self, t: int) -> np.ndarray:
        """A constant operand that parametrizes an op (shape, axes, paddings...)."""
        tensor = self.graph.tensors[t]
        if not tensor.is_constant:
            raise PlanError(f'tensor "{tensor.name}" must be constant for Core ML (dynamic shapes are not exported)')
        return np.asarray(tensor.data)

    # ---- writing tensors ---------------------------------------------------------------------------------
    def encoding(self, t: int) -> Encoding | None:
        return self.plan.tensors.get(self.tname(t))

    def activations_quantized(self) -> bool:
        return self.mode == "w8a8"

    def emit(self, t: int, var, perm: tuple[int, ...], op_index: int | None = None) -> Value:
        """Register the value of tensor t; under w8a8 pass it through the plan's int8 encoding first."""
        enc = self.encoding(t)
        name = self.tname(t)
        planned = self.activations_quantized() and enc is not None
        native_float = op_index in self.float_ops or (op_index is None and self.plan.io_dtype == "float32")
        if planned and native_float:
            # Float in the .tflite too (a float op's result, a float model input): integer consumers read it
            # through a QUANTIZE there, float consumers as it is. `quantized_view` gives the former.
            self.float_sourced.add(t)
        elif planned and self.on_grid(op_index, enc):
            self.on_grid_vars[var.name] = grid_key(enc)  # moved grid values: still on the grid
        elif planned and t not in self.deferred:  # a deferred tensor is quantized after its reader (plan_deferrals)
            var = self.fake_quant(var, enc, name)
        v = Value(var, perm)
        self.values[t] = v
        return v

    def quantized_view(self, t: int) -> Value:
        """A float-sourced tensor as integer ops read it: through the plan's encoding (made once). A model input
        is quantized as fed, in fp32, like the .tflite's QUANTIZE: its fp16 cast is then read only by float ops
        (and left out of the package when none does, see prune)."""
        if t not in self.quantized_views:
            v = self.values[t]
            var = self.fp32_inputs.get(t, v.var)
            self.quantized_views[t] = Value(self.fake_quant(var, self.encoding(t), self.tname(t)), v.perm)
        return self.quantized_views[t]

    def on_grid(self, op_index: int | None, enc: Encoding) -> bool:
        """Whether op `op_index` only moves values that are all already on the output's grid: each activation
        read as the output of a dequantize with the output's (scale, zero point) (after any requantization the
        plan puts before this op), each constant exactly a value of that grid. Then quantize/dequantize after
        the op would return its values unchanged, and is left out."""
        if op_index is None or self.graph.ops[op_index].kind not in GRID_PRESERVING:
            return False
        key = grid_key(enc)
        inputs = self.graph.ops[op_index].inputs
        data = [t for t in inputs if t >= 0 and self.graph.tensors[t].dtype.startswith("float")]  # not shapes, indices
        for t in data:
            if self.graph.tensors[t].is_constant:
                if not on_grid_values(self.constant_values(t), enc):
                    return False
            elif t not in self.values or self.on_grid_vars.get(self.values[t].var.name) != key:
                return False
        return bool(data)

    def plan_deferrals(self, requantize: dict[int, list]) -> None:
        """w8a8: find the ops of ONE_PAIR_AFTER whose inputs all have the output's encoding (a constant: values on
        its grid; a requantized input: requantized to it) and move the quantize/dequantize pairs of their inputs
        after them: one pair instead of one per input, the same integers (e.g. a concatenation of 7 activations).
        An input's own pair moves only when the op is its only reader and it is no model output; a requantization
        for the op always can. Inputs whose pair stays are on the output's grid, where the pair after is exact."""
        if not self.activations_quantized():
            return
        graph = self.graph
        readers, producers, outputs = graph.consumers(), graph.producers(), set(graph.outputs)
        for j, op in enumerate(graph.ops):
            enc = self.encoding(op.outputs[0]) if len(op.outputs) == 1 else None
            if op.kind not in ONE_PAIR_AFTER or j in self.float_ops or enc is None or enc.per_channel:
                continue
            key = grid_key(enc)
            targets = {r.input: r.target(self.plan) for r in requantize.get(j, [])}
            own, requantized, ok = set(), set(), enc.dtype in ("int8", "uint8")
            for k, t in enumerate(op.inputs):
                tensor = graph.tensors[t] if t >= 0 else None
                if tensor is None or not tensor.dtype.startswith("float"):
                    continue
                source = targets.get(k) or self.encoding(t)
                if tensor.is_constant:
                    ok = ok and on_grid_values(self.constant_values(t), enc)
                elif source is None or source.per_channel or grid_key(source) != key:
                    ok = False
                elif k in targets:
                    requantized.add((j, k))
                elif set(readers[t]) == {j} and t not in outputs and producers.get(t, -1) not in self.float_ops | {-1}:
                    own.add(t)  # float-sourced values (a float op's, a model input's) keep their pair
            if ok and len(own) + len(requantized) >= 2:
                self.deferred |= own
                self.deferred_requantize |= requantized

    def fake_quant(self, var, enc: Encoding, name: str):
        """quantize -> dequantize with the plan's per-tensor encoding: the integers the .tflite holds."""
        if enc.dtype not in ("int8", "uint8") or enc.per_channel:
            raise PlanError(
                f'tensor "{name}": w8a8 needs per-tensor int8/uint8 activations, the plan has {enc.dtype} '
                f"with {len(enc.scale)} scales (Core ML quantize takes int8 and uint8 only)"
            )
        key = grid_key(enc)
        if key not in self.grid_consts:  # one (scale, zero point) pair per distinct encoding, shared by every op
            n = len(self.grid_consts)
            zp_value = np.int8(key[2]) if enc.dtype == "int8" else np.uint8(key[2])
            self.grid_consts[key] = (
                mb.const(val=half_exact(key[1], name), name=self.fresh(f"s{n}")),
                # zero point 0 is quantize's and dequantize's default: left out, two inputs fewer per pair
                mb.const(val=zp_value, name=self.fresh(f"z{n}")) if key[2] else None,
            )
        scale, zp = self.grid_consts[key]
        point = {"zero_point": zp} if zp is not None else {}
        # Generic names "q<k>" / "d<k>": the op before carries the tensor's name (as in the other modes), and
        # a pair's names appear 5-6 times in the package (outputs, name attributes, readers).
        n = len(self.quantize_ops)
        q_scale = self.wide_scale(scale) if var.dtype == types.fp32 else scale  # quantize's scale has its input's type
        q = mb.quantize(input=var, scale=q_scale, output_dtype=enc.dtype, name=self.fresh(f"q{n}"), **point)
        dq = mb.dequantize(input=q, scale=scale, name=self.fresh(f"d{n}"), **point)
        self.quantize_ops[dq.name] = q.name
        self.on_grid_vars[dq.name] = key
        return dq

    def wide_scale(self, scale):
        """The fp32 twin of an fp16 scale const (exact), for a quantize of an fp32 value or a dequantize to one."""
        return mb.const(val=np.float32(scale.val), name=self.fresh(f"{scale.name}f"))

    def output(self, v: Value, name: str):
        """A model output (fp32, TFLite layout): a dequantize straight to fp32 where the value is a
        quantize/dequantize pair's (the .tflite's DEQUANTIZE: (q - zero point) * scale, exact in fp32) instead
        of an fp16 dequantize and a cast, else a cast of the value."""
        dq = v.var.op
        if v.var.name not in self.quantize_ops:
            return mb.cast(x=v.var, dtype="fp32", name=name)
        zp = {"zero_point": dq.zero_point} if dq.zero_point is not None else {}
        out = mb.dequantize(input=dq.input, scale=self.wide_scale(dq.scale), name=name, **zp)
        self.quantize_ops[out.name] = self.quantize_ops[v.var.name]
        self.on_grid_vars[out.name] = self.on_grid_vars[v.var.name]
        for t, value in list(self.values.items()) + list(self.quantized_views.items()):
            if value.var is v.var:  # verification compares this tensor at the output itself
                (self.values if self.values.get(t) is value else self.quantized_views)[t] = Value(out, value.perm)
        return out

    def prune(self, block) -> None:
        """Remove ops whose results nothing reads (an input's fp16 cast only integer ops consumed through their
        quantize, a dequantize an fp32 output replaced), then the constants only they read."""
        for op in reversed(list(block.operations)):
            if all(not v.child_ops and v not in block.outputs for v in op.outputs):
                block.remove_ops([op])

    def out_name(self, t: int) -> str:
        """Name of an op's result: the TFLite tensor's own, in every mode (under w8a8 the quantize/dequantize
        pair after it, if any, has generic names)."""
        return self.fresh(self.tname(t))

    def share_constants(self, block) -> None:
        """Make every const op of `block` with the value of an earlier one read that one instead (same dtype,
        shape and bytes: exact, unlike coremltools' const_deduplication, which compares with a tolerance and
        skips strings and anything under 100 values), and give the builder's own constants short names. The
        builder writes a const named "<op>_<parameter>_<n>" for every literal parameter of every op (each
        quantize's output_dtype "int8", each convolution's strides, pads and groups): about 120 bytes each in
        the spec, a third of a small w8a8 package."""
        first: dict[tuple, object] = {}
        implicit = []
        named = set(self.used_names)  # every name given by fresh(); the builder's own are not among them
        self.used_names.update(v.name for op in block.operations for v in op.outputs)
        for op in list(block.operations):
            if op.op_type != "const" or op.outputs[0] in block.outputs:
                continue
            var = op.outputs[0]
            val = np.asarray(var.val)
            key = (str(var.dtype), tuple(var.shape), val.dtype.str, val.tobytes())
            if key in first:
                block.replace_uses_of_var_after_op(anchor_op=op, old_var=var, new_var=first[key])
                block.remove_ops([op])
                continue
            first[key] = var
            if var.name not in named:
                implicit.append(op)
        for op in implicit:
            name = self.fresh("c")
            op.outputs[0].set_name(name)
            op.name = name

    # ---- weights -----------------------------------------------------------------------------------------
    def weight(self, t: int, to_mil: tuple[int, ...], op_index: int):
        """A weight operand in MIL layout (TFLite axes permuted by `to_mil`): an fp16 constant in fp16 mode
        or for ops left float; otherwise the rendered integers behind a constexpr dequantization with the
        plan's scales (int8 per channel: constexpr_affine_dequantize, or blockwise_shift_scale from iOS18;
        int4 per block / per channel: constexpr_blockwise_shift_scale)."""
        tensor = self.graph.tensors[t]
        enc = self.encoding(t)
        if not tensor.is_constant:
            return self.value(t, perm=to_mil).var
        small = self.mode in ("w8", "w4") and tensor.data.size <= self.weight_threshold
        if small:
            self.float_weights.append(t)
        if self.mode == "fp16" or enc is None or op_index in self.float_ops or small:
            return self.const(np.transpose(np.asarray(tensor.data, dtype=np.float32), to_mil), tensor.name)
        if tensor.name not in self.ints:
            raise PlanError(f'weight "{tensor.name}" has a plan encoding but no integers in the rendered model')
        q = np.transpose(self.ints[tensor.name].reshape(tensor.shape), to_mil)
        scale = weight_scales(enc, tensor.shape, to_mil, tensor.name)
        if enc.dtype == "int4":
            scale = stored_block_scales(scale)
        name = self.fresh(tensor.name)
        self.weights[t] = [name, list(to_mil)]
        if enc.dtype == "int4":
            return mb.constexpr_blockwise_shift_scale(data=q.astype(types.np_int4_dtype), scale=scale, name=name)
        if enc.dtype != "int8":
            raise PlanError(f'weight "{tensor.name}": Core ML weights are int8 or int4, the plan has {enc.dtype}')
        if any(z != 0 for z in enc.zero_point):
            raise PlanError(f'weight "{tensor.name}": symmetric weights expected, the plan has nonzero zero points')
        if self.opset >= ct.target.iOS18:
            return mb.constexpr_blockwise_shift_scale(data=q.astype(np.int8), scale=scale, name=name)
        axis = to_mil.index(enc.axis) if enc.per_channel else 0
        flat = scale.reshape(-1)
        return mb.constexpr_affine_dequantize(
            quantized_data=q.astype(np.int8),
            zero_point=np.int8(0),  # symmetric: one scalar for every channel
            scale=flat if enc.per_channel else flat[0],
            axis=axis,
            name=name,
        )

    def bias(self, t: int, op_index: int):
        """A bias as fp16: the dequantized int32 plan values under w8a8 (what the integer model adds), else
        the float bias."""
        tensor = self.graph.tensors[t]
        enc = self.encoding(t)
        if self.mode == "w8a8" and enc is not None and op_index not in self.float_ops and tensor.name in self.ints:
            return self.const(dequantize(self.ints[tensor.name], enc, tensor.shape).reshape(-1), tensor.name)
        return self.const(np.asarray(tensor.data, dtype=np.float32).reshape(-1), tensor.name)


def grid_key(enc: Encoding) -> tuple[str, float, int]:
    """A per-tensor activation encoding as the (dtype, scale, zero point) its quantize/dequantize pair uses."""
    return enc.dtype, float(enc.scale[0]), int(enc.zero_point[0])


def on_grid_values(values: np.ndarray, enc: Encoding) -> bool:
    """Whether constant values, stored as fp16, are exactly what a dequantize with `enc` yields for some integer
    in the encoding's range (so rounding them to the grid changes nothing, in fp16 or fp32 evaluation)."""
    if enc.per_channel or enc.dtype not in ("int8", "uint8"):
        return False
    scale, zp = float(np.float16(enc.scale[0])), int(enc.zero_point[0])
    half = np.asarray(values, dtype=np.float32).astype(np.float16).astype(np.float64)
    q = np.rint(half / scale) + zp
    info = np.iinfo(enc.dtype)
    return bool(np.all((q >= info.min) & (q <= info.max)) and np.all(np.float32((q - zp) * scale) == half))


def half_exact(scale: float, where: str) -> np.float16:
    """A plan scale as fp16; the plan keeps 8-bit scales fp16-representable, anything else is refused."""
    half = np.float16(scale)
    if float(half) != float(np.float32(scale)):
        raise PlanError(
            f'tensor "{where}": scale {scale!r} is not representable in fp16, so Core ML cannot carry it exactly '
            f"(plans made by this edgeq keep 8-bit scales fp16-representable: re-plan)"
        )
    return half


def weight_scales(enc: Encoding, shape: tuple[int, ...], to_mil: tuple[int, ...], where: str) -> np.ndarray:
    """The plan's weight scales as an fp16 array of the weight's rank in MIL layout: size C on the channel
    axis (per channel), blocks along the last TFLite axis for blockwise weights (FC [out, in / block], CONV_2D
    [out, kh, kw, in / block]), all ones when per tensor."""
    scales = np.asarray([half_exact(s, where) for s in enc.scale], dtype=np.float16)
    rank = len(shape)
    if getattr(enc, "block_size", 0):
        if rank < 2 or enc.axis != 0 or shape[-1] % enc.block_size:
            raise PlanError(f'weight "{where}": blockwise scales are planned along the last axis of [out, ...] weights')
        blocked = scales.reshape(*shape[:-1], shape[-1] // enc.block_size)
        return np.transpose(blocked, to_mil)
    tfl_shape = [1] * rank
    if enc.per_channel:
        tfl_shape[enc.axis] = scales.size
    return np.transpose(scales.reshape(tfl_shape), to_mil)


def stored_block_scales(scale: np.ndarray) -> np.ndarray:
    """A blockwise convolution's MIL scales [out, in / N, kh, kw] equal at every kernel tap, stored once as
    [out, in / N, 1, 1] (the block then spans the window, as coremltools' per_block stores it): lossless, and
    1 / (kh * kw) of the scale bytes. Other scales unchanged."""
    if scale.ndim == 4 and scale.shape[2] * scale.shape[3] > 1 and np.all(scale == scale[:, :, :1, :1]):
        return scale[:, :, :1, :1]
    return scale


def dequantize(q: np.ndarray, enc: Encoding, shape: tuple[int, ...]) -> np.ndarray:
    """(q - zero_point) * scale in float64 then float32: per channel along enc.axis, or per block of
    enc.block_size along the last (input) axis of an [out, in] or [out, kh, kw, in] weight."""
    q = np.asarray(q, dtype=np.float64).reshape(shape)
    return ((q - enc.per_element(enc.zero_point, shape)) * enc.per_element(enc.scale, shape)).astype(np.float32)
