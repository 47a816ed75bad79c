"""One MIL lowering per TFLite builtin, registered in LOWERINGS (the only place that says which ops Core ML
export supports). Each reads its operands through the Lowering (layouts, weights, plan) and emits its outputs
there; semantics follow the TFLite reference kernels, which the host evaluator tests hold them to."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgeq.errors import UnsupportedOpError
from edgeq.export.coreml_env import mb
from edgeq.export.coreml_program import NCHW, Lowering, Value, identity
from edgeq.ir.graph import Op

Lower = Callable[[Lowering, int, Op], None]
LOWERINGS: dict[str, Lower] = {}


def lowers(*kinds: str) -> Callable[[Lower], Lower]:
    def register(fn: Lower) -> Lower:
        for kind in kinds:
            LOWERINGS[kind] = fn
        return fn

    return register


# ---- shared pieces ---------------------------------------------------------------------------------------
def _finish(L: Lowering, i: int, op: Op, build: Callable[[str], object], perm: tuple[int, ...]) -> None:
    """Build the op's main MIL op, apply its fused activation, and register output 0."""
    t = op.outputs[0]
    act = op.fused_activation
    var = build(L.out_name(t) if act == "NONE" else L.fresh(L.tname(t) + "__preact"))
    if act != "NONE":
        var = _activation(act, var, L.out_name(t), L.graph.where(i))
    L.emit(t, var, perm, i)


def _activation(kind: str, x, name: str, where: str):
    if kind == "RELU":
        return mb.relu(x=x, name=name)
    if kind == "RELU6":
        return mb.relu6(x=x, name=name)
    if kind == "RELU_N1_TO_1":
        return mb.clip(x=x, alpha=np.float16(-1), beta=np.float16(1), name=name)
    if kind == "TANH":
        return mb.tanh(x=x, name=name)
    raise UnsupportedOpError(f"{where}: fused activation {kind} has no Core ML lowering")


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow SAME padding of one spatial dimension: (before, after), the extra pixel after."""
    eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _pads(op: Op, x_shape: tuple[int, ...], kh: int, kw: int, dil: tuple[int, int]) -> list[int]:
    if op.options.get("padding", 0) == 1:  # VALID
        return [0, 0, 0, 0]
    top, bottom = _same_pads(x_shape[1], kh, op.options.get("strideH", 1), dil[0])
    left, right = _same_pads(x_shape[2], kw, op.options.get("strideW", 1), dil[1])
    return [top, bottom, left, right]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _dropped(perm: tuple[int, ...], axes: set[int]) -> tuple[int, ...]:
    """The layout left when TFLite axes `axes` are removed: remaining TFLite axes renumbered in order."""
    kept = [p for p in perm if p not in axes]
    order = sorted(kept)
    return tuple(order.index(p) for p in kept)


def _operands(L: Lowering, ts: list[int]) -> tuple[list, tuple[int, ...]]:
    """Operands of an elementwise op in one layout: the first non-constant operand's, constants permuted
    into it (after numpy's left-padding broadcast); mismatched ranks fall back to TFLite layout."""
    graph = L.graph
    live = [t for t in ts if not graph.tensors[t].is_constant]
    rank = max(len(graph.tensors[t].shape) for t in ts)
    perm = L.values[live[0]].perm if live else identity(rank)
    if len(perm) != rank or any(len(graph.tensors[t].shape) != rank for t in live):
        perm = identity(rank)
    out = []
    for t in ts:
        tensor = graph.tensors[t]
        if tensor.is_constant:
            data = L.constant_values(t)
            data = data.reshape((1,) * (rank - data.ndim) + data.shape) if data.ndim else data
            out.append(L.const(np.transpose(data, perm) if data.ndim else data, tensor.name))
        else:
            out.append(L.value(t, perm if len(tensor.shape) == rank else None).var)
    return out, perm


# ---- convolutions and pools ----------------------------------------------------------------------------------
@lowers("CONV_2D", "DEPTHWISE_CONV_2D")
def _conv(L: Lowering, i: int, op: Op) -> None:
    x_t, w_t = op.inputs[0], op.inputs[1]
    x_shape, w_shape = L.graph.tensors[x_t].shape, L.graph.tensors[w_t].shape
    x = L.value(x_t, NCHW)
    depthwise = op.kind == "DEPTHWISE_CONV_2D"
    # TFLite [Cout, kh, kw, Cin] -> MIL [Cout, Cin, kh, kw]; depthwise [1, kh, kw, C*m] -> [C*m, 1, kh, kw].
    to_mil = (3, 0, 1, 2) if depthwise else (0, 3, 1, 2)
    w = L.weight(w_t, to_mil, i)
    groups = x_shape[3] if depthwise else x_shape[3] // w_shape[3]
    dil = (op.options.get("dilationHFactor", 1), op.options.get("dilationWFactor", 1))
    pads = _pads(op, x_shape, w_shape[1], w_shape[2], dil)
    bias = L.bias(op.inputs[2], i) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    strides = [op.options.get("strideH", 1), op.options.get("strideW", 1)]

    def build(name: str):
        return mb.conv(
            x=x.var, weight=w, bias=bias, strides=strides, pad_type="custom", pad=pads, dilations=list(dil),
            groups=groups, name=name,
        )  # fmt: skip

    _finish(L, i, op, build, NCHW)


@lowers("TRANSPOSE_CONV")
def _transpose_conv(L: Lowering, i: int, op: Op) -> None:
    shape_t, w_t, x_t = op.inputs[:3]
    out_shape = [int(v) for v in L.static(shape_t)]
    x_shape, w_shape = L.graph.tensors[x_t].shape, L.graph.tensors[w_t].shape
    x = L.value(x_t, NCHW)
    w = L.weight(w_t, (3, 0, 1, 2), i)  # [Cout, kh, kw, Cin] -> [Cin, Cout, kh, kw]
    sh, sw = op.options.get("strideH", 1), op.options.get("strideW", 1)
    pads = [0, 0, 0, 0]
    if op.options.get("padding", 0) == 0:  # SAME: the pads a conv from the output back to the input would use
        th = max((x_shape[1] - 1) * sh + w_shape[1] - out_shape[1], 0)
        tw = max((x_shape[2] - 1) * sw + w_shape[2] - out_shape[2], 0)
        pads = [th // 2, th - th // 2, tw // 2, tw - tw // 2]
    bias = L.bias(op.inputs[3], i) if len(op.inputs) > 3 and op.inputs[3] >= 0 else None
    mil_out = [out_shape[0], out_shape[3], out_shape[1], out_shape[2]]

    def build(name: str):
        return mb.conv_transpose(
            x=x.var, weight=w, bias=bias, strides=[sh, sw], pad_type="custom", pad=pads, output_shape=mil_out,
            name=name,
        )  # fmt: skip

    _finish(L, i, op, build, NCHW)


@lowers("MAX_POOL_2D", "AVERAGE_POOL_2D")
def _pool(L: Lowering, i: int, op: Op) -> None:
    x_t = op.inputs[0]
    x = L.value(x_t, NCHW)
    kh, kw = op.options.get("filterHeight", 1), op.options.get("filterWidth", 1)
    pads = _pads(op, L.graph.tensors[x_t].shape, kh, kw, (1, 1))
    common = dict(kernel_sizes=[kh, kw], strides=[op.options.get("strideH", 1), op.options.get("strideW", 1)])

    def build(name: str):
        if op.kind == "MAX_POOL_2D":
            return mb.max_pool(x=x.var, pad_type="custom", pad=pads, name=name, **common)
        # TFLite averages over the window's in-bounds pixels only.
        return mb.avg_pool(x=x.var, pad_type="custom", pad=pads, exclude_padding_from_average=True, name=name, **common)

    _finish(L, i, op, build, NCHW)


# ---- matrix products -----------------------------------------------------------------------------------------
@lowers("FULLY_CONNECTED")
def _fully_connected(L: Lowering, i: int, op: Op) -> None:
    x_t, w_t = op.inputs[0], op.inputs[1]
    out_t = op.outputs[0]
    w_shape = L.graph.tensors[w_t].shape
    x = L.value(x_t, identity(len(L.graph.tensors[x_t].shape))).var
    x_shape = L.graph.tensors[x_t].shape
    if x_shape[-1] != w_shape[1] or (len(x_shape) > 2 and not op.options.get("keepNumDims", False)):
        x = mb.reshape(x=x, shape=[-1, w_shape[1]], name=L.fresh(L.tname(out_t) + "__flat"))
    bias_t = op.inputs[2] if len(op.inputs) > 2 else -1
    out_shape = list(L.graph.tensors[out_t].shape)
    reshape_after = len(out_shape) != (len(x_shape) if op.options.get("keepNumDims", False) else 2)
    if L.graph.tensors[w_t].is_constant:
        w = L.weight(w_t, (0, 1), i)
        bias = L.bias(bias_t, i) if bias_t >= 0 else None

        def build(name: str):
            inner = L.fresh(L.tname(out_t) + "__2d") if reshape_after else name
            y = mb.linear(x=x, weight=w, bias=bias, name=inner)
            return mb.reshape(x=y, shape=out_shape, name=name) if reshape_after else y
    else:
        w = L.value(w_t, (0, 1)).var

        def build(name: str):
            y = mb.matmul(x=x, y=w, transpose_y=True, name=L.fresh(L.tname(out_t) + "__mm") if bias_t >= 0 else name)
            if bias_t >= 0:
                y = mb.add(x=y, y=L.bias(bias_t, i), name=name)
            return mb.reshape(x=y, shape=out_shape, name=L.fresh(name + "__shape")) if reshape_after else y

    _finish(L, i, op, build, identity(len(out_shape)))


@lowers("BATCH_MATMUL")
def _batch_matmul(L: Lowering, i: int, op: Op) -> None:
    a_t, b_t = op.inputs[:2]
    a = L.value(a_t, identity(len(L.graph.tensors[a_t].shape))).var
    b_tensor = L.graph.tensors[b_t]
    rank_b = len(b_tensor.shape)
    b = L.weight(b_t, identity(rank_b), i) if b_tensor.is_constant else L.value(b_t, identity(rank_b)).var
    rank = len(L.graph.tensors[op.outputs[0]].shape)

    def build(name: str):
        return mb.matmul(
            x=a, y=b, transpose_x=bool(op.options.get("adjX", False)), transpose_y=bool(op.options.get("adjY", False)),
            name=name,
        )  # fmt: skip

    _finish(L, i, op, build, identity(rank))


# ---- elementwise ---------------------------------------------------------------------------------------------
_BINARY = {"ADD": mb.add, "SUB": mb.sub, "MUL": mb.mul, "DIV": mb.real_div, "MAXIMUM": mb.maximum,
           "MINIMUM": mb.minimum, "POW": mb.pow}  # fmt: skip


@lowers(*_BINARY, "SQUARED_DIFFERENCE")
def _binary(L: Lowering, i: int, op: Op) -> None:
    (a, b), perm = _operands(L, op.inputs[:2])
    t = op.outputs[0]

    def build(name: str):
        if op.kind == "SQUARED_DIFFERENCE":
            d = mb.sub(x=a, y=b, name=L.fresh(L.tname(t) + "__diff"))
            return mb.mul(x=d, y=d, name=name)
        return _BINARY[op.kind](x=a, y=b, name=name)

    _finish(L, i, op, build, perm)


def _unary(fn: Callable[[object, str], object]) -> Lower:
    def lower(L: Lowering, i: int, op: Op) -> None:
        x = L.value(op.inputs[0])
        _finish(L, i, op, lambda name: fn(x.var, name), x.perm)

    return lower


_UNARY: dict[str, Callable[[object, str], object]] = {
    "RELU": lambda x, n: mb.relu(x=x, name=n),
    "RELU6": lambda x, n: mb.relu6(x=x, name=n),
    "RELU_N1_TO_1": lambda x, n: mb.clip(x=x, alpha=np.float16(-1), beta=np.float16(1), name=n),
    "RELU_0_TO_1": lambda x, n: mb.clip(x=x, alpha=np.float16(0), beta=np.float16(1), name=n),
    "LOGISTIC": lambda x, n: mb.sigmoid(x=x, name=n),
    "TANH": lambda x, n: mb.tanh(x=x, name=n),
    "EXP": lambda x, n: mb.exp(x=x, name=n),
    "LOG": lambda x, n: mb.log(x=x, name=n),
    "SQRT": lambda x, n: mb.sqrt(x=x, name=n),
    "RSQRT": lambda x, n: mb.rsqrt(x=x, epsilon=np.float16(0), name=n),
    "ABS": lambda x, n: mb.abs(x=x, name=n),
    "NEG": lambda x, n: mb.mul(x=x, y=np.float16(-1), name=n),
    "SQUARE": lambda x, n: mb.mul(x=x, y=x, name=n),
    "ELU": lambda x, n: mb.elu(x=x, alpha=np.float16(1), name=n),
}
for _kind, _fn in _UNARY.items():
    LOWERINGS[_kind] = _unary(_fn)


@lowers("HARD_SWISH")
def _hard_swish(L: Lowering, i: int, op: Op) -> None:
    """x * relu6(x + 3) / 6 as TFLite computes it, with constants fp16 holds exactly (sigmoid_hard's alpha
    1/6 is not: 1e-4 relative error, seen on the hard_swish op model)."""
    x = L.value(op.inputs[0])
    base = L.tname(op.outputs[0])

    def build(name: str):
        shifted = mb.add(x=x.var, y=np.float16(3), name=L.fresh(base + "__plus3"))
        gate = mb.relu6(x=shifted, name=L.fresh(base + "__gate"))
        gated = mb.mul(x=x.var, y=gate, name=L.fresh(base + "__gated"))
        return mb.real_div(x=gated, y=np.float16(6), name=name)

    _finish(L, i, op, build, x.perm)


@lowers("GELU")
def _gelu(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0])
    mode = "TANH_APPROXIMATION" if op.options.get("approximate", False) else "EXACT"
    _finish(L, i, op, lambda name: mb.gelu(x=x.var, mode=mode, name=name), x.perm)


@lowers("LEAKY_RELU")
def _leaky_relu(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0])
    alpha = float(op.options.get("alpha", 0.2))
    _finish(L, i, op, lambda name: mb.leaky_relu(x=x.var, alpha=np.float16(alpha), name=name), x.perm)


@lowers("PRELU")
def _prelu(L: Lowering, i: int, op: Op) -> None:
    """MIL prelu (channel-first, one alpha per channel) where the alpha is per channel, else
    relu(x) + alpha * min(x, 0)."""
    x_t, a_t = op.inputs[:2]
    x = L.value(x_t)
    alpha = L.constant_values(a_t) if L.graph.tensors[a_t].is_constant else None
    channels = L.graph.tensors[x_t].shape[-1]
    if alpha is not None and x.perm == NCHW and alpha.size == channels:
        a = alpha.reshape(-1).astype(np.float16)
        _finish(L, i, op, lambda name: mb.prelu(x=x.var, alpha=a, name=name), NCHW)
        return
    (xv, av), perm = _operands(L, [x_t, a_t])
    t = op.outputs[0]

    def build(name: str):
        pos = mb.relu(x=xv, name=L.fresh(L.tname(t) + "__pos"))
        neg = mb.minimum(x=xv, y=np.float16(0), name=L.fresh(L.tname(t) + "__negpart"))
        return mb.add(x=pos, y=mb.mul(x=av, y=neg, name=L.fresh(L.tname(t) + "__neg")), name=name)

    _finish(L, i, op, build, perm)


@lowers("SOFTMAX")
def _softmax(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0])
    axis = x.perm.index(x.rank - 1)
    beta = float(op.options.get("beta", 1.0))
    t = op.outputs[0]

    def build(name: str):
        v = x.var if beta == 1.0 else mb.mul(x=x.var, y=np.float16(beta), name=L.fresh(L.tname(t) + "__beta"))
        return mb.softmax(x=v, axis=axis, name=name)

    _finish(L, i, op, build, x.perm)


@lowers("LOG_SOFTMAX")
def _log_softmax(L: Lowering, i: int, op: Op) -> None:
    """(x - max) - log(sum(exp(x - max))) over the last axis, as TFLite's kernel computes it: log(softmax(x))
    would lose every probability that underflows."""
    x = L.value(op.inputs[0])
    axis = x.perm.index(x.rank - 1)
    base = L.tname(op.outputs[0])

    def build(name: str):
        peak = mb.reduce_max(x=x.var, axes=[axis], keep_dims=True, name=L.fresh(base + "__max"))
        shifted = mb.sub(x=x.var, y=peak, name=L.fresh(base + "__shifted"))
        exp = mb.exp(x=shifted, name=L.fresh(base + "__exp"))
        total = mb.reduce_sum(x=exp, axes=[axis], keep_dims=True, name=L.fresh(base + "__sum"))
        return mb.sub(x=shifted, y=mb.log(x=total, name=L.fresh(base + "__log")), name=name)

    _finish(L, i, op, build, x.perm)


# ---- reductions ----------------------------------------------------------------------------------------------
_REDUCE = {"MEAN": mb.reduce_mean, "SUM": mb.reduce_sum, "REDUCE_MAX": mb.reduce_max, "REDUCE_MIN": mb.reduce_min,
           "REDUCE_PROD": mb.reduce_prod}  # fmt: skip


@lowers(*_REDUCE)
def _reduce(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0])
    axes = sorted({_axis(int(a), x.rank) for a in np.atleast_1d(L.static(op.inputs[1]))})
    keep = bool(op.options.get("keepDims", False))
    mil_axes = sorted(x.perm.index(a) for a in axes)
    perm = x.perm if keep else _dropped(x.perm, set(axes))
    _finish(L, i, op, lambda name: _REDUCE[op.kind](x=x.var, axes=mil_axes, keep_dims=keep, name=name), perm)


# ---- shapes and data movement -----------------------------------------------------------------------------------
@lowers("RESHAPE")
def _reshape(L: Lowering, i: int, op: Op) -> None:
    x_t = op.inputs[0]
    x = L.value(x_t, identity(len(L.graph.tensors[x_t].shape)))
    shape = [int(d) for d in L.graph.tensors[op.outputs[0]].shape]
    _finish(L, i, op, lambda name: mb.reshape(x=x.var, shape=shape, name=name), identity(len(shape)))


@lowers("SQUEEZE")
def _squeeze(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0])
    shape = L.graph.tensors[op.inputs[0]].shape
    dims = op.options.get("squeezeDims") or [a for a, d in enumerate(shape) if d == 1]
    axes = {_axis(int(a), x.rank) for a in dims}
    mil_axes = sorted(x.perm.index(a) for a in axes)
    _finish(L, i, op, lambda name: mb.squeeze(x=x.var, axes=mil_axes, name=name), _dropped(x.perm, axes))


@lowers("TRANSPOSE")
def _transpose(L: Lowering, i: int, op: Op) -> None:
    """No MIL op: the value stays where it is and only its layout changes (out axis k = in axis p[k])."""
    x_t, out_t = op.inputs[0], op.outputs[0]
    x = L.value(x_t)
    p = [int(a) for a in L.static(op.inputs[1])]
    inverse = [0] * len(p)
    for out_axis, in_axis in enumerate(p):
        inverse[in_axis] = out_axis
    perm = tuple(inverse[a] for a in x.perm)
    if not L.activations_quantized() or L.encoding(x_t) == L.encoding(out_t):
        L.values[out_t] = Value(x.var, perm)
        return
    L.emit(out_t, x.var, perm, i)


@lowers("TILE")
def _tile(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0])
    reps = [int(r) for r in L.static(op.inputs[1])]
    _finish(L, i, op, lambda name: mb.tile(x=x.var, reps=[reps[p] for p in x.perm], name=name), x.perm)


@lowers("CONCATENATION")
def _concat(L: Lowering, i: int, op: Op) -> None:
    vars_, perm = _operands(L, list(op.inputs))
    axis = perm.index(_axis(int(op.options.get("axis", 0)), len(perm)))
    _finish(L, i, op, lambda name: mb.concat(values=vars_, axis=axis, name=name), perm)


@lowers("PAD", "PADV2")
def _pad(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0])
    pads = L.static(op.inputs[1]).reshape(-1, 2)
    flat = [int(v) for p in x.perm for v in pads[p]]
    value = 0.0
    if op.kind == "PADV2" and len(op.inputs) > 2:
        value = float(np.asarray(L.constant_values(op.inputs[2])).reshape(-1)[0])
    fill = np.float16(value)
    _finish(L, i, op, lambda name: mb.pad(x=x.var, pad=flat, mode="constant", constant_val=fill, name=name), x.perm)


@lowers("STRIDED_SLICE")
def _strided_slice(L: Lowering, i: int, op: Op) -> None:
    o = op.options
    if o.get("ellipsisMask", 0) or o.get("newAxisMask", 0) or o.get("offset", False):
        raise UnsupportedOpError(f"{L.graph.where(i)}: STRIDED_SLICE with ellipsis/new-axis masks or offset")
    rank = len(L.graph.tensors[op.inputs[0]].shape)
    x = L.value(op.inputs[0], identity(rank))
    begin, end, stride = (L.static(t).astype(np.int32).tolist() for t in op.inputs[1:4])

    def bits(mask: int) -> list[bool]:
        return [bool(mask >> a & 1) for a in range(rank)]

    shrink = bits(o.get("shrinkAxisMask", 0))
    perm = _dropped(identity(rank), {a for a in range(rank) if shrink[a]})

    def build(name: str):
        return mb.slice_by_index(
            x=x.var, begin=begin, end=end, stride=stride, begin_mask=bits(o.get("beginMask", 0)),
            end_mask=bits(o.get("endMask", 0)), squeeze_mask=shrink, name=name,
        )  # fmt: skip

    _finish(L, i, op, build, perm)


@lowers("SLICE")
def _slice(L: Lowering, i: int, op: Op) -> None:
    rank = len(L.graph.tensors[op.inputs[0]].shape)
    x = L.value(op.inputs[0], identity(rank))
    begin, size = (L.static(t).astype(np.int32).tolist() for t in op.inputs[1:3])
    _finish(L, i, op, lambda name: mb.slice_by_size(x=x.var, begin=begin, size=size, name=name), identity(rank))


@lowers("RESIZE_BILINEAR")
def _resize_bilinear(L: Lowering, i: int, op: Op) -> None:
    x = L.value(op.inputs[0], NCHW)
    h, w = (int(v) for v in L.static(op.inputs[1]))
    # TFLite legacy (src = dst * in / out) is MIL's DEFAULT; half-pixel centers is UNALIGN_CORNERS.
    if op.options.get("alignCorners", False):
        mode = "STRICT_ALIGN_CORNERS"
    elif op.options.get("halfPixelCenters", False):
        mode = "UNALIGN_CORNERS"
    else:
        mode = "DEFAULT"

    def build(name: str):
        return mb.resize_bilinear(x=x.var, target_size_height=h, target_size_width=w, sampling_mode=mode, name=name)

    _finish(L, i, op, build, NCHW)


def _nearest_indices(size_in: int, size_out: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """The source index of each output row or column, as TFLite's GetNearestNeighbor computes it (in fp32)."""
    f32 = np.float32
    scale = f32(size_in - 1) / f32(size_out - 1) if align_corners and size_out > 1 else f32(size_in) / f32(size_out)
    src = (np.arange(size_out, dtype=f32) + f32(0.5 if half_pixel else 0.0)) * scale
    idx = np.floor(src)
    if align_corners:  # TfLiteRound, half away from zero (src >= 0; src - floor(src) is exact)
        idx += src - idx >= 0.5
    return np.clip(idx.astype(np.int32), 0, size_in - 1)


@lowers("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(L: Lowering, i: int, op: Op) -> None:
    """upsample_nearest_neighbor where TFLite's source rows and columns are an integer upscaling's (each
    repeated k times); otherwise gathers of the exact source rows, then columns: Core ML does not define how
    its resize ops round a nearest index under align-corners or half-pixel sampling."""
    x_t, out_t = op.inputs[0], op.outputs[0]
    x = L.value(x_t, NCHW)
    _, in_h, in_w, _ = L.graph.tensors[x_t].shape
    h, w = (int(v) for v in L.static(op.inputs[1]))
    align, half = bool(op.options.get("alignCorners", False)), bool(op.options.get("halfPixelCenters", False))
    rows, cols = _nearest_indices(in_h, h, align, half), _nearest_indices(in_w, w, align, half)
    kh, kw = max(h // in_h, 1), max(w // in_w, 1)
    upscale = h == in_h * kh and w == in_w * kw
    if upscale and np.array_equal(rows, np.arange(h) // kh) and np.array_equal(cols, np.arange(w) // kw):

        def build(name: str):
            return mb.upsample_nearest_neighbor(x=x.var, scale_factor_height=kh, scale_factor_width=kw, name=name)

    else:

        def build(name: str):
            by_rows = mb.gather(x=x.var, indices=rows, axis=2, name=L.fresh(L.tname(out_t) + "__rows"))
            return mb.gather(x=by_rows, indices=cols, axis=3, name=name)

    _finish(L, i, op, build, NCHW)


@lowers("GATHER")
def _gather(L: Lowering, i: int, op: Op) -> None:
    p_t, idx_t = op.inputs[:2]
    params = L.value(p_t, identity(len(L.graph.tensors[p_t].shape))).var
    indices = L.value(idx_t, identity(len(L.graph.tensors[idx_t].shape))).var
    axis = _axis(int(op.options.get("axis", 0)), len(L.graph.tensors[p_t].shape))
    rank = len(L.graph.tensors[op.outputs[0]].shape)
    _finish(L, i, op, lambda name: mb.gather(x=params, indices=indices, axis=axis, name=name), identity(rank))


@lowers("EXPAND_DIMS")
def _expand_dims(L: Lowering, i: int, op: Op) -> None:
    rank = len(L.graph.tensors[op.inputs[0]].shape)
    x = L.value(op.inputs[0], identity(rank))
    shape = [int(d) for d in L.graph.tensors[op.outputs[0]].shape]
    _finish(L, i, op, lambda name: mb.reshape(x=x.var, shape=shape, name=name), identity(len(shape)))


@lowers("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")
def _depth_space(L: Lowering, i: int, op: Op) -> None:
    """MIL's depth_to_space / space_to_depth on NCHW keep TensorFlow's channel order (DCR)."""
    x = L.value(op.inputs[0], NCHW)
    fn = mb.depth_to_space if op.kind == "DEPTH_TO_SPACE" else mb.space_to_depth
    block = int(op.options.get("blockSize", 2))
    _finish(L, i, op, lambda name: fn(x=x.var, block_size=block, name=name), NCHW)


@lowers("EMBEDDING_LOOKUP")
def _embedding_lookup(L: Lowering, i: int, op: Op) -> None:
    ids_t, table_t = op.inputs[:2]
    ids = L.value(ids_t, identity(len(L.graph.tensors[ids_t].shape))).var
    enc = L.encoding(table_t)
    if L.graph.tensors[table_t].is_constant and enc is not None and enc.dtype == "int4":
        table = L.weight(table_t, (0, 1), i)  # an INT4 table (per row or per block) is a weight, as in the .tflite
    else:
        table = L.value(table_t, identity(len(L.graph.tensors[table_t].shape))).var
    rank = len(L.graph.tensors[op.outputs[0]].shape)
    _finish(L, i, op, lambda name: mb.gather(x=table, indices=ids, axis=0, name=name), identity(rank))


@lowers("PACK")
def _pack(L: Lowering, i: int, op: Op) -> None:
    ts = list(op.inputs)
    vars_ = [L.value(t, identity(len(L.graph.tensors[t].shape))).var for t in ts]
    rank = len(L.graph.tensors[op.outputs[0]].shape)
    axis = _axis(int(op.options.get("axis", 0)), rank)
    _finish(L, i, op, lambda name: mb.stack(values=vars_, axis=axis, name=name), identity(rank))


@lowers("SPLIT", "SPLIT_V")
def _split(L: Lowering, i: int, op: Op) -> None:
    if op.kind == "SPLIT":
        axis_t, x_t = op.inputs[:2]
        sizes = None
    else:
        x_t, sizes_t, axis_t = op.inputs[:3]
        sizes = [int(s) for s in L.static(sizes_t)]
    x = L.value(x_t)
    tfl_axis = _axis(int(np.asarray(L.static(axis_t)).reshape(-1)[0]), x.rank)
    axis = x.perm.index(tfl_axis)
    total = L.graph.tensors[x_t].shape[tfl_axis]
    if sizes is None:
        sizes = [total // len(op.outputs)] * len(op.outputs)
    sizes = [total - (sum(sizes) + 1) if s == -1 else s for s in sizes]  # SPLIT_V: one size may be -1
    start = 0
    for t, size in zip(op.outputs, sizes, strict=True):
        begin = [0] * x.rank
        extent = [-1] * x.rank
        begin[axis], extent[axis] = start, size
        L.emit(t, mb.slice_by_size(x=x.var, begin=begin, size=extent, name=L.out_name(t)), x.perm, i)
        start += size


def lower_op(L: Lowering, i: int, op: Op) -> None:
    fn = LOWERINGS.get(op.kind)
    if fn is None:
        what = f"custom op '{op.custom_code}'" if op.kind == "CUSTOM" else op.kind
        raise UnsupportedOpError(
            f"{L.graph.where(i)}: {what} has no Core ML lowering; supported: {', '.join(sorted(LOWERINGS))}"
        )
    fn(L, i, op)
