"""numpy implementations of MIL ops, for the host evaluator in mil_eval.py.

Semantics come from the MIL op definitions (coremltools converters/mil/mil/ops/defs/iOS15..iOS18: the
docstrings, type inference and value_inference), never from edgeq's writer. Where a definition is
ambiguous the comment at the implementation says so and which reading is taken (the value_inference's
when there is one). Anything a definition leaves undefined (an index out of bounds, an integer result
out of its type's range, an empty pooling window) is an error, not a guess.

Every op reads its inputs through OpContext, which records what was read: an input the
implementation did not read is reported, so a parameter this evaluator does not understand can never
be silently ignored. Floats are computed in float64 from the held float32 values; mil_eval rounds
each result to the op's declared output type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edgeq.errors import CoreMLError
from edgeq.verify.mil_blob import SUB_BYTE_BITS, unpack_bits

FLOATS = ("fp16", "fp32")
INT_RANGES = {
    "int4": (-8, 7), "uint4": (0, 15), "uint1": (0, 1), "uint2": (0, 3), "uint3": (0, 7), "uint6": (0, 63),
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1),
}
_REQUIRED = object()


@dataclass
class Val:
    """A value of the program: the held data and its MIL dtype (fp16 is held as float32)."""

    data: Any
    dtype: str


class OpContext:
    """One op being evaluated: typed access to its inputs, and errors that name the op."""

    def __init__(self, op_type: str, outputs: list[tuple[str, str]], inputs: dict[str, list[Val]], ios: int) -> None:
        self.op_type = op_type
        self.outputs = outputs  # (name, MIL dtype) as the program declares them
        self.inputs = inputs
        self.ios = ios  # opset generation: 15..18
        self.read: set[str] = set()

    def fail(self, what: str) -> NoReturn:
        """Raise a CoreMLError naming this op's type and first output."""
        raise CoreMLError(f"{self.op_type} op '{self.outputs[0][0]}': {what}")

    def has(self, name: str) -> bool:
        return name in self.inputs

    def vals(self, name: str) -> list[Val]:
        """All values bound to a (tuple) input, e.g. concat's `values`."""
        if name not in self.inputs:
            self.fail(f"missing required input '{name}'")
        self.read.add(name)
        return self.inputs[name]

    def val(self, name: str) -> Val:
        bound = self.vals(name)
        if len(bound) != 1:
            self.fail(f"input '{name}' binds {len(bound)} values, expected one")
        return bound[0]

    def array(self, name: str) -> np.ndarray:
        """The held array, in its storage dtype."""
        data = self.val(name).data
        if not isinstance(data, np.ndarray):
            self.fail(f"input '{name}' is not a tensor")
        return data

    def num(self, name: str) -> np.ndarray:
        """A numeric input for arithmetic: float64 for floats, int64 for integers, bool kept."""
        arr = self.array(name)
        if arr.dtype == np.bool_:
            return arr
        return arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64)

    def tensor(self, name: str) -> np.ndarray:
        """A float input as float64."""
        v = self.val(name)
        if v.dtype not in FLOATS:
            self.fail(f"input '{name}' is {v.dtype}, expected fp16 or fp32")
        return v.data.astype(np.float64)

    def _scalar(self, name: str, default: Any) -> Any:
        if name not in self.inputs:
            if default is _REQUIRED:
                self.fail(f"missing required input '{name}'")
            return default
        arr = self.array(name)
        if arr.size != 1:
            self.fail(f"input '{name}' has shape {arr.shape}, expected a scalar")
        return arr.reshape(()).item()

    def get_int(self, name: str, default: Any = _REQUIRED) -> int:
        value = self._scalar(name, default)
        return value if value is None else int(value)

    def get_float(self, name: str, default: Any = _REQUIRED) -> float:
        value = self._scalar(name, default)
        return value if value is None else float(value)

    def get_bool(self, name: str, default: Any = _REQUIRED) -> bool:
        return bool(self._scalar(name, default))

    def get_ints(self, name: str, default: Any = _REQUIRED) -> list[int]:
        if name not in self.inputs:
            if default is _REQUIRED:
                self.fail(f"missing required input '{name}'")
            return default
        return [int(v) for v in self.array(name).reshape(-1)]

    def get_bools(self, name: str, rank: int) -> list[bool]:
        if name not in self.inputs:
            return [False] * rank
        return [bool(v) for v in self.array(name).reshape(-1)]

    def get_str(self, name: str, default: Any = _REQUIRED) -> str:
        if name not in self.inputs:
            if default is _REQUIRED:
                self.fail(f"missing required input '{name}'")
            return default
        data = self.val(name).data
        if not isinstance(data, str):
            self.fail(f"input '{name}' is not a string")
        return data

    def eps(self, name: str, default: float, like_x: bool) -> float:
        """An epsilon input, or its default: typed like `x` where default_inputs says so (rsqrt, log:
        1e-12 and 1e-45 are 0 in fp16), else fp32 (the norms' 1e-5), as coremltools materializes them."""
        if name in self.inputs:
            return self.get_float(name)
        return float(np.float16(default) if like_x and self.val("x").dtype == "fp16" else np.float32(default))

    def axis(self, axis: int, rank: int) -> int:
        if not -rank <= axis < rank:
            self.fail(f"axis {axis} out of range for rank {rank}")
        return axis % rank

    def out_dtype(self, i: int = 0) -> str:
        return self.outputs[i][1]


OPS: dict[str, Callable[[OpContext], Any]] = {}


def op(*names: str) -> Callable[[Callable[[OpContext], Any]], Callable[[OpContext], Any]]:
    def register(fn: Callable[[OpContext], Any]) -> Callable[[OpContext], Any]:
        for name in names:
            OPS[name] = fn
        return fn

    return register


# --- elementwise ---------------------------------------------------------------------------------

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum, "minimum": np.minimum,
    "pow": np.power, "greater": np.greater, "greater_equal": np.greater_equal, "less": np.less,
    "less_equal": np.less_equal, "equal": np.equal, "not_equal": np.not_equal,
}


@op(*_BINARY)
def _binary(ctx: OpContext) -> np.ndarray:
    x, y = ctx.num("x"), ctx.num("y")
    if ctx.op_type == "pow" and x.dtype.kind == y.dtype.kind == "i" and np.any(y < 0):
        ctx.fail("integer pow with a negative exponent")
    return _BINARY[ctx.op_type](x, y)


@op("real_div")
def _real_div(ctx: OpContext) -> np.ndarray:
    x, y = ctx.num("x"), ctx.num("y")
    if x.dtype.kind == y.dtype.kind == "i":
        # Integer real_div: the definition only says "x / y" typed int32; its value_inference divides
        # to float and the value is stored as int32 (astype), i.e. truncation toward zero.
        if np.any(y == 0):
            ctx.fail("integer division by zero")
        return np.trunc(np.true_divide(x, y)).astype(np.int64)
    return np.true_divide(x, y)


_LOGICAL = {"logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor}


@op(*_LOGICAL)
def _logical(ctx: OpContext) -> np.ndarray:
    return _LOGICAL[ctx.op_type](_bool_input(ctx, "x"), _bool_input(ctx, "y"))


@op("logical_not")
def _logical_not(ctx: OpContext) -> np.ndarray:
    return np.logical_not(_bool_input(ctx, "x"))


def _bool_input(ctx: OpContext, name: str) -> np.ndarray:
    if ctx.val(name).dtype != "bool":
        ctx.fail(f"input '{name}' is {ctx.val(name).dtype}, expected bool")
    return ctx.array(name)


@op("select")
def _select(ctx: OpContext) -> np.ndarray:
    return np.where(_bool_input(ctx, "cond"), ctx.num("a"), ctx.num("b"))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


_erf = np.vectorize(math.erf, otypes=[np.float64])

_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs, "sign": np.sign, "square": np.square, "exp": np.exp, "sqrt": np.sqrt, "floor": np.floor,
    "ceil": np.ceil, "tanh": np.tanh, "sigmoid": _sigmoid, "softplus": lambda x: np.logaddexp(0.0, x),
    "silu": lambda x: x * _sigmoid(x), "relu": lambda x: np.maximum(x, 0), "relu6": lambda x: np.clip(x, 0, 6),
    # round: "0.5 is rounded to 0" excludes half-away-from-zero; the value_inference's np.round ties
    # to even, which is taken.
    "round": np.round,
}


@op(*_UNARY)
def _unary(ctx: OpContext) -> np.ndarray:
    return _UNARY[ctx.op_type](ctx.num("x"))


@op("identity")
def _identity(ctx: OpContext) -> Any:
    return ctx.val("x").data


@op("rsqrt")
def _rsqrt(ctx: OpContext) -> np.ndarray:
    return 1.0 / np.sqrt(ctx.tensor("x") + ctx.eps("epsilon", 1e-12, like_x=True))


@op("log")
def _log(ctx: OpContext) -> np.ndarray:
    return np.log(ctx.tensor("x") + ctx.eps("epsilon", 1e-45, like_x=True))


@op("clip")
def _clip(ctx: OpContext) -> np.ndarray:
    return np.minimum(np.maximum(ctx.tensor("x"), ctx.get_float("alpha")), ctx.get_float("beta"))


@op("sigmoid_hard")
def _sigmoid_hard(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    return np.minimum(np.maximum(ctx.get_float("alpha") * x + ctx.get_float("beta"), 0.0), 1.0)


@op("leaky_relu")
def _leaky_relu(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    return np.where(x >= 0, x, ctx.get_float("alpha") * x)


@op("thresholded_relu")
def _thresholded_relu(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    return np.where(x >= ctx.get_float("alpha"), x, 0.0)


@op("elu")
def _elu(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    return np.where(x > 0, x, ctx.get_float("alpha") * np.expm1(np.minimum(x, 0)))


@op("prelu")
def _prelu(ctx: OpContext) -> np.ndarray:
    x, alpha = ctx.tensor("x"), ctx.tensor("alpha")
    if x.ndim not in (3, 4, 5) or alpha.shape != (x.shape[1],):
        ctx.fail(f"alpha of shape {alpha.shape} for x of shape {x.shape}: needs rank 3-5 and one alpha per channel")
    alpha = alpha.reshape((1, -1) + (1,) * (x.ndim - 2))
    return np.maximum(x, 0) + alpha * np.minimum(x, 0)


@op("gelu")
def _gelu(ctx: OpContext) -> np.ndarray:
    x, mode = ctx.tensor("x"), ctx.get_str("mode", "EXACT")
    if mode == "EXACT":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(1.702 * x)
    ctx.fail(f"unknown mode '{mode}'")


@op("softmax")
def _softmax(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    axis = ctx.axis(ctx.get_int("axis", -1), x.ndim)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@op("cast")
def _cast(ctx: OpContext) -> np.ndarray:
    x, target = ctx.array("x"), ctx.get_str("dtype")
    allowed = ("int32", "fp16", "fp32", "bool") + (("int8", "uint8", "int16", "uint16") if ctx.ios >= 17 else ())
    if target not in allowed or target != ctx.out_dtype():
        ctx.fail(f"dtype '{target}' (output declared {ctx.out_dtype()}; iOS{ctx.ios} allows {', '.join(allowed)})")
    if target in FLOATS:
        return x.astype(np.float64)
    if target == "bool":
        return x != 0
    # To an integer: the definition does not say how; its value_inference is numpy astype, which
    # truncates floats toward zero. Values outside the target range are undefined there: an error here.
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            ctx.fail(f"cast of a non-finite value to {target}")
        x = np.trunc(x)
    low, high = INT_RANGES[target]
    if x.size and (x.min() < low or x.max() > high):
        ctx.fail(f"value out of {target} range [{low}, {high}] (undefined in MIL)")
    return x.astype(np.int64)


# --- reductions and normalization ----------------------------------------------------------------

_REDUCE = {
    "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min, "reduce_sum": np.sum, "reduce_prod": np.prod,
}


@op(*_REDUCE)
def _reduce(ctx: OpContext) -> np.ndarray:
    x = ctx.num("x")
    axes = ctx.get_ints("axes", None)
    keep = ctx.get_bool("keep_dims", False)
    axis = None if axes is None else tuple(ctx.axis(a, x.ndim) for a in axes)
    out = _REDUCE[ctx.op_type](x, axis=axis, keepdims=keep)
    if x.dtype.kind == "i" and ctx.op_type == "reduce_mean":
        out = np.trunc(out).astype(np.int64)  # value_inference: mean, then astype(int32)
    return np.asarray(out)


def _channel(v: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast along axis 1."""
    return v.reshape((1, -1) + (1,) * (rank - 2))


@op("batch_norm")
def _batch_norm(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    c = x.shape[1]
    params = {}
    for name, default in (("mean", None), ("variance", None), ("gamma", 1.0), ("beta", 0.0)):
        v = ctx.tensor(name) if default is None or ctx.has(name) else np.full(c, default)
        if v.shape != (c,):
            ctx.fail(f"'{name}' has shape {v.shape}, expected ({c},)")
        params[name] = _channel(v, x.ndim)
    eps = ctx.eps("epsilon", 1e-5, like_x=False)
    return (x - params["mean"]) / np.sqrt(params["variance"] + eps) * params["gamma"] + params["beta"]


@op("instance_norm")
def _instance_norm(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    gamma = ctx.tensor("gamma") if ctx.has("gamma") else np.ones(x.shape[1])
    beta = ctx.tensor("beta") if ctx.has("beta") else np.zeros(x.shape[1])
    eps = ctx.eps("epsilon", 1e-5, like_x=False)
    return (x - mean) / np.sqrt(var + eps) * _channel(gamma, x.ndim) + _channel(beta, x.ndim)


@op("layer_norm")
def _layer_norm(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    axes = sorted({ctx.axis(a, x.ndim) for a in ctx.get_ints("axes", list(range(x.ndim)))})
    norm_shape = tuple(x.shape[a] for a in axes)
    bshape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
    mean = x.mean(axis=tuple(axes), keepdims=True)
    var = np.square(x - mean).mean(axis=tuple(axes), keepdims=True)
    out = (x - mean) / np.sqrt(var + ctx.eps("epsilon", 1e-5, like_x=False))
    for name in ("gamma", "beta"):
        if ctx.has(name):
            v = ctx.tensor(name)
            if v.shape != norm_shape:
                ctx.fail(f"'{name}' has shape {v.shape}, expected {norm_shape}")
            out = out * v.reshape(bshape) if name == "gamma" else out + v.reshape(bshape)
    return out


# --- shape and data movement ---------------------------------------------------------------------


@op("reshape")
def _reshape(ctx: OpContext) -> np.ndarray:
    x, shape = ctx.array("x"), ctx.get_ints("shape")
    if 0 in shape:
        if ctx.ios >= 17:  # a 0 copies the dim of x aligned from the right, or 1 beyond x's rank
            shape = [
                (x.shape[x.ndim - len(shape) + i] if x.ndim - len(shape) + i >= 0 else 1) if s == 0 else s
                for i, s in enumerate(shape)
            ]
        elif len(shape) == x.ndim:
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        else:
            ctx.fail(f"shape {shape} holds 0 but its length differs from rank {x.ndim} (iOS{ctx.ios})")
    if shape.count(-1) > 1 or any(s < -1 for s in shape):
        ctx.fail(f"invalid target shape {shape}")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or x.size % known:
            ctx.fail(f"cannot infer -1 in {shape} for {x.size} elements")
        shape[shape.index(-1)] = x.size // known
    if math.prod(shape) != x.size:
        ctx.fail(f"cannot reshape {x.shape} to {shape}")
    return x.reshape(shape)


@op("squeeze")
def _squeeze(ctx: OpContext) -> np.ndarray:
    x = ctx.array("x")
    axes = ctx.get_ints("axes", None)
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    drop = {ctx.axis(a, x.ndim) for a in axes}  # a non-1 dim among axes is kept (PyTorch behaviour, per the def)
    return x.reshape([d for i, d in enumerate(x.shape) if not (i in drop and d == 1)])


@op("expand_dims")
def _expand_dims(ctx: OpContext) -> np.ndarray:
    x, axes = ctx.array("x"), ctx.get_ints("axes")
    out_rank = x.ndim + len(axes)
    shape = list(x.shape)
    for a in sorted(ctx.axis(a, out_rank) for a in axes):
        shape.insert(a, 1)
    return x.reshape(shape)


@op("transpose")
def _transpose(ctx: OpContext) -> np.ndarray:
    x, perm = ctx.array("x"), ctx.get_ints("perm")
    if sorted(ctx.axis(p, x.ndim) for p in perm) != list(range(x.ndim)):
        ctx.fail(f"perm {perm} is not a permutation of rank {x.ndim}")
    return np.transpose(x, [ctx.axis(p, x.ndim) for p in perm])


@op("slice_by_index")
def _slice_by_index(ctx: OpContext) -> np.ndarray:
    x = ctx.array("x")
    r = x.ndim
    begin, end = ctx.get_ints("begin"), ctx.get_ints("end")
    stride = ctx.get_ints("stride", [1] * r)
    begin_mask, end_mask, squeeze_mask = (ctx.get_bools(n, r) for n in ("begin_mask", "end_mask", "squeeze_mask"))
    if not len(begin) == len(end) == len(stride) == len(begin_mask) == len(end_mask) == len(squeeze_mask) == r:
        ctx.fail(f"begin/end/stride/masks must all have length rank(x) = {r}")
    index: list[Any] = []
    for i in range(r):
        b = None if begin_mask[i] else begin[i]
        if squeeze_mask[i]:  # pure index at begin[i] (end ignored), as numpy indexing
            k = 0 if b is None else b
            if not -x.shape[i] <= k < x.shape[i]:
                ctx.fail(f"squeezed index {k} out of range for dim {i} of size {x.shape[i]}")
            index.append(k)
            continue
        if stride[i] == 0:
            ctx.fail(f"stride 0 on dim {i}")
        # numpy slice semantics, as the value_inference: negative indices wrap, out-of-range clamp.
        index.append(slice(b, None if end_mask[i] else end[i], stride[i]))
    return np.asarray(x[tuple(index)])


@op("slice_by_size")
def _slice_by_size(ctx: OpContext) -> np.ndarray:
    x, begin, size = ctx.array("x"), ctx.get_ints("begin"), ctx.get_ints("size")
    if not len(begin) == len(size) == x.ndim:
        ctx.fail(f"begin/size must have length rank(x) = {x.ndim}")
    index = []
    for i, (b, s) in enumerate(zip(begin, size, strict=True)):
        b = b + x.shape[i] if b < 0 else b
        e = x.shape[i] if s == -1 else b + s
        if not 0 <= b <= e <= x.shape[i]:
            ctx.fail(f"slice [{b}, {e}) out of range for dim {i} of size {x.shape[i]}")
        index.append(slice(b, e))
    return x[tuple(index)]


@op("concat")
def _concat(ctx: OpContext) -> np.ndarray:
    values = [v.data for v in ctx.vals("values")]
    rank = values[0].ndim
    axis = ctx.axis(ctx.get_int("axis"), rank)
    if any(v.ndim != rank for v in values):
        ctx.fail("values of different ranks")
    if ctx.get_bool("interleave", False):
        if any(v.shape != values[0].shape for v in values):
            ctx.fail("interleave needs values of one shape")
        stacked = np.stack(values, axis=axis + 1)
        return stacked.reshape((*values[0].shape[:axis], -1, *values[0].shape[axis + 1 :]))
    try:
        return np.concatenate(values, axis=axis)
    except ValueError as e:
        ctx.fail(str(e))


@op("stack")
def _stack(ctx: OpContext) -> np.ndarray:
    values = [v.data for v in ctx.vals("values")]
    if any(v.shape != values[0].shape for v in values):
        ctx.fail("stack needs values of one shape")
    return np.stack(values, axis=ctx.axis(ctx.get_int("axis"), values[0].ndim + 1))


@op("split")
def _split(ctx: OpContext) -> list[np.ndarray]:
    x = ctx.array("x")
    axis = ctx.axis(ctx.get_int("axis"), x.ndim)
    sizes = ctx.get_ints("split_sizes", None)
    num = ctx.get_int("num_splits", None)
    if sizes is None:
        if num is None or num <= 0 or x.shape[axis] % num:
            ctx.fail(f"num_splits {num} does not divide dim {x.shape[axis]} (and no split_sizes)")
        sizes = [x.shape[axis] // num] * num
    if sum(sizes) != x.shape[axis] or min(sizes) < 0 or (num is not None and num != len(sizes)):
        ctx.fail(f"split_sizes {sizes} (num_splits {num}) do not cover dim {x.shape[axis]}")
    if len(sizes) != len(ctx.outputs):
        ctx.fail(f"{len(sizes)} splits but {len(ctx.outputs)} declared outputs")
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


@op("tile")
def _tile(ctx: OpContext) -> np.ndarray:
    x, reps = ctx.array("x"), ctx.get_ints("reps")
    if len(reps) != x.ndim or min(reps, default=1) <= 0:
        ctx.fail(f"reps {reps} must be positive, one per dim of rank {x.ndim}")
    return np.tile(x, reps)


@op("pad")
def _pad(ctx: OpContext) -> np.ndarray:
    x, pad = ctx.array("x"), ctx.get_ints("pad")
    mode = ctx.get_str("mode", "constant")
    value = ctx.get_float("constant_val", 0.0)
    n = len(pad) // 2
    if len(pad) % 2 or n > x.ndim or min(pad, default=0) < 0:
        ctx.fail(f"pad {pad}: needs 2*N non-negative entries, N <= rank {x.ndim}")
    # pad[2i], pad[2i+1] pad before/after the i-th of the LAST N dims (value_inference right-aligns).
    widths = [(0, 0)] * (x.ndim - n) + [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    limit = {"reflect": 1, "replicate": 0}.get(mode)
    if mode not in ("constant", "reflect", "replicate"):
        ctx.fail(f"unknown mode '{mode}'")
    if limit is not None:
        for d, (b, a) in zip(x.shape, widths, strict=True):
            if max(b, a) > d - limit:
                ctx.fail(f"{mode} pad ({b}, {a}) too large for a dim of size {d}")
        return np.pad(x, widths, mode="reflect" if mode == "reflect" else "edge")
    return np.pad(x, widths, mode="constant", constant_values=value)


def _indices(ctx: OpContext, name: str, size: int) -> np.ndarray:
    """Gather indices checked against the dim: iOS15/16 allow [-size, size), iOS17+ only [0, size)."""
    idx = ctx.array(name)
    if idx.dtype.kind not in "iu":
        ctx.fail(f"indices of dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    low = -size if ctx.ios < 17 else 0
    if idx.size and (idx.min() < low or idx.max() >= size):
        ctx.fail(f"index out of bounds [{low}, {size}) (undefined in MIL iOS{ctx.ios})")
    ctx.get_bool("validate_indices", False)  # iOS17+: bounds are always checked here
    return np.where(idx < 0, idx + size, idx)


@op("gather")
def _gather(ctx: OpContext) -> np.ndarray:
    x = ctx.array("x")
    axis = ctx.axis(ctx.get_int("axis", 0), x.ndim)
    batch = ctx.get_int("batch_dims", 0)
    idx = _indices(ctx, "indices", x.shape[axis])
    if batch == 0:
        return np.take(x, idx, axis=axis)
    if not 0 < batch <= min(axis, idx.ndim) or idx.shape[:batch] != x.shape[:batch]:
        ctx.fail(f"batch_dims {batch} with axis {axis}, x {x.shape}, indices {idx.shape}")
    nb = math.prod(x.shape[:batch])
    xs, ids = x.reshape((nb, *x.shape[batch:])), idx.reshape((nb, *idx.shape[batch:]))
    out = np.stack([np.take(xs[i], ids[i], axis=axis - batch) for i in range(nb)])
    return out.reshape(x.shape[:batch] + out.shape[1:])


@op("gather_along_axis")
def _gather_along_axis(ctx: OpContext) -> np.ndarray:
    x = ctx.array("x")
    axis = ctx.axis(ctx.get_int("axis", 0), x.ndim)
    idx = _indices(ctx, "indices", x.shape[axis])
    if idx.ndim != x.ndim or any(a != b for i, (a, b) in enumerate(zip(idx.shape, x.shape, strict=True)) if i != axis):
        ctx.fail(f"indices {idx.shape} must match x {x.shape} except on axis {axis}")
    return np.take_along_axis(x, idx, axis=axis)


@op("space_to_depth")
def _space_to_depth(ctx: OpContext) -> np.ndarray:
    # Channel order (i, j, c), i.e. TensorFlow's space_to_depth: the TF frontend maps onto this op
    # unchanged, and the definition's test expects [[7, 9], [4, 6]] -> channels 7, 9, 4, 6.
    x, b = ctx.array("x"), ctx.get_int("block_size")
    n, c, h, w = x.shape
    if b < 1 or h % b or w % b:
        ctx.fail(f"block_size {b} does not divide {h}x{w}")
    return x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


@op("depth_to_space")
def _depth_to_space(ctx: OpContext) -> np.ndarray:
    x, b = ctx.array("x"), ctx.get_int("block_size")
    n, c, h, w = x.shape
    if b < 1 or c % (b * b):
        ctx.fail(f"block_size {b}: {c} channels not divisible by {b * b}")
    return x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


# --- linear algebra, convolution, pooling --------------------------------------------------------


@op("matmul")
def _matmul(ctx: OpContext) -> np.ndarray:
    x, y = ctx.num("x"), ctx.num("y")
    if ctx.get_bool("transpose_x", False):
        if x.ndim < 2:
            ctx.fail("transpose_x on a rank-1 x")
        x = np.swapaxes(x, -1, -2)
    if ctx.get_bool("transpose_y", False) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    try:
        return np.matmul(x, y)
    except ValueError as e:
        ctx.fail(str(e))


@op("linear")
def _linear(ctx: OpContext) -> np.ndarray:
    x, w = ctx.num("x"), ctx.num("weight")
    if w.ndim != 2 or x.shape[-1] != w.shape[1]:
        ctx.fail(f"weight {w.shape} for x {x.shape}: expected [D_out, {x.shape[-1]}]")
    out = np.matmul(x, w.T)
    if ctx.has("bias"):
        b = ctx.num("bias")
        if b.shape != (w.shape[0],):
            ctx.fail(f"bias {b.shape}, expected ({w.shape[0]},)")
        out = out + b
    return out


def _same_pads(size: int, eff_k: int, stride: int, lower: bool) -> tuple[int, int]:
    """SAME padding: output ceil(size / stride); the odd unit goes after ('same') or before ('same_lower').

    The conv docstring's per-kernel formula ignores the stride; this is what its type inference sizes
    (total = (out - 1) * stride + kernel - size) and what the definition's device tests expect
    (torch padding='same' puts the odd unit at the end).
    """
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + eff_k - size)
    before = total - total // 2 if lower else total // 2
    return before, total - before


def _spatial_pads(
    ctx: OpContext, sizes: tuple[int, ...], eff_k: list[int], strides: list[int]
) -> list[tuple[int, int]]:
    """Per spatial dim (before, after) padding of conv / pool from pad_type and pad."""
    nd = len(sizes)
    pad_type = ctx.get_str("pad_type", "valid")
    pad = ctx.get_ints("pad", [0] * 2 * nd)  # written by coremltools for every pad_type; used by custom only
    if pad_type == "custom":
        if len(pad) != 2 * nd or min(pad) < 0:
            ctx.fail(f"pad {pad}: expected {2 * nd} non-negative values")
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(nd)]
    if pad_type == "valid":
        return [(0, 0)] * nd
    if pad_type in ("same", "same_lower"):
        if pad_type == "same_lower" and ctx.ios < 16:
            ctx.fail("pad_type same_lower needs iOS16+")
        return [_same_pads(d, k, s, pad_type == "same_lower") for d, k, s in zip(sizes, eff_k, strides, strict=True)]
    ctx.fail(f"unknown pad_type '{pad_type}'")


def _windows(xp: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int], out: list[int]) -> np.ndarray:
    """View (N, C, *out, *kernel) of the padded input xp (N, C, *spatial) under each window."""
    nd = len(kernel)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    view = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None))
    index += tuple(slice(None, (o - 1) * s + 1, s) for o, s in zip(out, strides, strict=True))
    index += tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _conv_core(xp: np.ndarray, w: np.ndarray, strides: list[int], dilations: list[int], groups: int) -> np.ndarray:
    """Cross-correlation of padded xp (N, Cin, *S) with w (Cout, Cin/groups, *K): (N, Cout, *out)."""
    n, cin = xp.shape[:2]
    cout, k = w.shape[0], list(w.shape[2:])
    nd = len(k)
    out = [(s - ((kk - 1) * d + 1)) // st + 1 for s, kk, d, st in zip(xp.shape[2:], k, dilations, strides, strict=True)]
    win = _windows(xp, k, strides, dilations, out).reshape([n, groups, cin // groups, *out, *k])
    wg = w.reshape([groups, cout // groups, cin // groups, *k])
    o_ix, k_ix = "pqr"[:nd], "ijk"[:nd]
    res = np.einsum(f"ngc{o_ix}{k_ix},goc{k_ix}->ngo{o_ix}", win, wg, optimize=True)
    return res.reshape([n, cout, *out])


def _conv_params(ctx: OpContext, nd: int) -> tuple[list[int], list[int], int]:
    strides = ctx.get_ints("strides", [1] * nd)
    dilations = ctx.get_ints("dilations", [1] * nd)
    groups = ctx.get_int("groups", 1)
    if len(strides) != nd or len(dilations) != nd or min(strides + dilations) < 1 or groups < 1:
        ctx.fail(f"strides {strides} / dilations {dilations} / groups {groups} invalid for {nd} spatial dims")
    return strides, dilations, groups


def _bias(ctx: OpContext, out: np.ndarray) -> np.ndarray:
    if not ctx.has("bias"):
        return out
    b = ctx.tensor("bias")
    if b.shape != (out.shape[1],):
        ctx.fail(f"bias {b.shape}, expected ({out.shape[1]},)")
    return out + _channel(b, out.ndim)


@op("conv")
def _conv(ctx: OpContext) -> np.ndarray:
    x, w = ctx.tensor("x"), ctx.tensor("weight")
    nd = x.ndim - 2
    strides, dilations, groups = _conv_params(ctx, nd)
    if not 1 <= nd <= 3 or w.ndim != x.ndim or w.shape[0] % groups or w.shape[1] * groups != x.shape[1]:
        ctx.fail(f"weight {w.shape} with groups {groups} does not fit x {x.shape}")
    eff = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)]
    pads = _spatial_pads(ctx, x.shape[2:], eff, strides)
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    if any(s < e for s, e in zip(xp.shape[2:], eff, strict=True)):
        ctx.fail(f"kernel {eff} larger than the padded input {xp.shape[2:]}")
    return _bias(ctx, _conv_core(xp, w, strides, dilations, groups))


@op("conv_transpose")
def _conv_transpose(ctx: OpContext) -> np.ndarray:
    x, w = ctx.tensor("x"), ctx.tensor("weight")
    nd = x.ndim - 2
    strides, dilations, groups = _conv_params(ctx, nd)
    cin = x.shape[1]
    if not 1 <= nd <= 3 or w.ndim != x.ndim or w.shape[0] != cin or cin % groups:
        ctx.fail(f"weight {w.shape} (expected [C_in={cin}, C_out/groups, *K]) with groups {groups}")
    cout = w.shape[1] * groups
    k = list(w.shape[2:])
    eff = [(kk - 1) * d + 1 for kk, d in zip(k, dilations, strict=True)]
    full = [(d - 1) * s + e for d, s, e in zip(x.shape[2:], strides, eff, strict=True)]
    # Full transposed convolution = zero-stuff x by the stride, pad eff-1 both sides, and correlate
    # with the spatially flipped kernel (in/out channels swapped per group).
    stuffed = np.zeros(x.shape[:2] + tuple((d - 1) * s + 1 for d, s in zip(x.shape[2:], strides, strict=True)))
    stuffed[(slice(None), slice(None), *(slice(None, None, s) for s in strides))] = x
    xp = np.pad(stuffed, [(0, 0), (0, 0), *((e - 1, e - 1) for e in eff)])
    wt = w.reshape([groups, cin // groups, cout // groups, *k]).swapaxes(1, 2).reshape([cout, cin // groups, *k])
    wt = np.flip(wt, axis=tuple(range(2, 2 + nd)))
    y = _conv_core(xp, wt, [1] * nd, dilations, groups)
    # Crop to the output. The definition gives sizes only; where the crop starts is read as the
    # inverse of conv's padding: custom crops pad[2i] first, same crops floor(total/2) first (total =
    # full - output), valid crops nothing first; output_shape, when given, sets the output size and
    # the end is cropped or zero-filled to fit.
    pad_type = ctx.get_str("pad_type", "valid")
    pad = ctx.get_ints("pad", [0] * 2 * nd)
    shape = ctx.get_ints("output_shape", None)
    if pad_type not in ("valid", "same", "custom"):
        ctx.fail(f"unknown pad_type '{pad_type}'")
    if shape is not None and (len(shape) != x.ndim or shape[:2] != [x.shape[0], cout]):
        ctx.fail(f"output_shape {shape} does not start with [N={x.shape[0]}, C_out={cout}]")
    index = [slice(None), slice(None)]
    dout = []
    for i in range(nd):
        if pad_type == "custom":
            before, size = pad[2 * i], full[i] - pad[2 * i] - pad[2 * i + 1]
        elif pad_type == "same":
            size = x.shape[2 + i] * strides[i]
            before = max(0, full[i] - (shape[2 + i] if shape else size)) // 2
        else:
            before, size = 0, full[i]
        size = shape[2 + i] if shape else size
        if before < 0 or size <= 0:
            ctx.fail(f"invalid output size {size} / crop {before} on spatial dim {i}")
        index.append(slice(before, before + size))
        dout.append(size)
    out = np.zeros([x.shape[0], cout, *dout])
    cropped = y[tuple(index)]
    out[tuple(slice(0, s) for s in cropped.shape)] = cropped
    return _bias(ctx, out)


@op("max_pool", "avg_pool")
def _pool(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    k = ctx.get_ints("kernel_sizes")
    nd = len(k)
    strides = ctx.get_ints("strides", [1] * nd)
    ceil_mode = ctx.get_bool("ceil_mode", False)
    exclude = ctx.get_bool("exclude_padding_from_average", False) if ctx.op_type == "avg_pool" else False
    if x.ndim != nd + 2 or len(strides) != nd or min(k + strides) < 1:
        ctx.fail(f"kernel_sizes {k} / strides {strides} invalid for x {x.shape}")
    if not ctx.has("pad_type"):
        ctx.fail("missing required input 'pad_type'")
    pads = _spatial_pads(ctx, x.shape[2:], k, strides)
    same = ctx.get_str("pad_type").startswith("same")
    if ceil_mode and same:
        ctx.fail("ceil_mode with pad_type same (not allowed by the definition)")
    if ceil_mode and any(pb != pa for pb, pa in pads):
        ctx.fail(f"ceil_mode with asymmetric padding {pads} (not allowed by the definition)")
    out_sizes, counted = [], []
    for d, kk, s, (pb, pa) in zip(x.shape[2:], k, strides, pads, strict=True):
        if same:
            o = -(-d // s)
        elif ceil_mode:  # avg_pool docstring: ceil, then drop a last window starting past the input
            o = -(-(d + pb + pa - kk) // s) + 1
            if (o - 1) * s >= d + pb and pb + pa > 0:
                o -= 1
        else:
            o = (d + pb + pa - kk) // s + 1
        if o < 1:
            ctx.fail(f"kernel {kk} larger than the padded input {d + pb + pa}")
        start = np.arange(o) * s - pb
        end = start + kk
        real = np.minimum(end, d) - np.maximum(start, 0)
        if np.any(real <= 0):
            ctx.fail("a pooling window covers no input element (undefined in MIL)")
        out_sizes.append(o)
        # PyTorch ceil-mode convention (the def: "same as PyTorch's ceil mode"): a window is clipped
        # to the padded input; padding inside it counts unless exclude_padding_from_average.
        counted.append(real if exclude else np.minimum(end, d + pa) - start)
    spans = zip(out_sizes, strides, pads, k, x.shape[2:], strict=True)
    extra = [max(0, (o - 1) * s - pb + kk - d) for o, s, (pb, _), kk, d in spans]
    fill = -np.inf if ctx.op_type == "max_pool" else 0.0
    xp = np.pad(x, [(0, 0), (0, 0), *((pb, e) for (pb, _), e in zip(pads, extra, strict=True))], constant_values=fill)
    win = _windows(xp, k, strides, [1] * nd, out_sizes)
    axes = tuple(range(2 + nd, 2 + 2 * nd))
    if ctx.op_type == "max_pool":
        return win.max(axis=axes)
    count = counted[0]
    for c in counted[1:]:
        count = np.multiply.outer(count, c)
    return win.sum(axis=axes) / count


# --- resampling ----------------------------------------------------------------------------------


def _grid(ctx: OpContext, mode: str, n_in: int, n_out: int) -> np.ndarray:
    """Source coordinates of the output samples, per resize_bilinear's sampling_mode table."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            # Only ALIGN_CORNERS defines n_out == 1: (n_in - 1) / 2. STRICT_ALIGN_CORNERS divides by
            # zero there; it is "same as TF align_corners=True", which samples 0.
            g = np.full(1, (n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            g = i * (n_in - 1) / (n_out - 1)
    elif mode == "DEFAULT":
        g = i * n_in / n_out  # (Xin - Xin/Xout) / (Xout - 1) per step, which is Xin / Xout
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        g = (i + 0.5) * n_in / n_out - 0.5
    else:
        ctx.fail(f"unknown sampling_mode '{mode}'")
    return np.clip(g, 0, n_in - 1)


def _linear_axis(x: np.ndarray, axis: int, grid: np.ndarray) -> np.ndarray:
    i0 = np.floor(grid).astype(np.int64)
    i1 = np.minimum(i0 + 1, x.shape[axis] - 1)
    f = (grid - i0).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return np.take(x, i0, axis=axis) * (1.0 - f) + np.take(x, i1, axis=axis) * f


def _nearest_axis(x: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    # Nearest neighbour samples floor(i * Xin / Xout): the definition's device test of resize
    # (2 -> 3 rows gives rows 0, 0, 1); for integer upsampling factors this is i // factor.
    return np.take(x, (np.arange(n_out) * x.shape[axis]) // n_out, axis=axis)


def _resize(ctx: OpContext, x: np.ndarray, sizes: list[int], linear: bool, mode: str) -> np.ndarray:
    """Resize the last len(sizes) dims of x, one axis at a time (bilinear is separable)."""
    if min(sizes) < 1:
        ctx.fail(f"output size {sizes}")
    for j, n_out in enumerate(sizes):
        axis = x.ndim - len(sizes) + j
        x = _linear_axis(x, axis, _grid(ctx, mode, x.shape[axis], n_out)) if linear else _nearest_axis(x, axis, n_out)
    return x


def _scaled_sizes(ctx: OpContext, x: np.ndarray) -> list[int]:
    sh, sw = ctx.get_float("scale_factor_height", 1.0), ctx.get_float("scale_factor_width", 1.0)
    return [math.floor(sh * x.shape[-2]), math.floor(sw * x.shape[-1])]


@op("upsample_bilinear")
def _upsample_bilinear(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    align = ctx.get_bool("align_corners", True)
    # iOS16+ half_pixel_centers (default: not align_corners); iOS15 has only align_corners, whose
    # False is the half-pixel grid. Neither: the DEFAULT grid (TF align_corners=False, half_pixel=False).
    half = ctx.get_bool("half_pixel_centers", not align) if ctx.ios >= 16 else not align
    if align and half:
        ctx.fail("align_corners and half_pixel_centers both set")
    mode = "ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half else "DEFAULT"
    return _resize(ctx, x, _scaled_sizes(ctx, x), True, mode)


@op("upsample_nearest_neighbor")
def _upsample_nearest(ctx: OpContext) -> np.ndarray:
    # Fractional scale factors: the definition gives only the output size; the source index is
    # read as floor(i * Xin / Xout), as for resize (for integer factors: i // factor).
    x = ctx.tensor("x")
    return _resize(ctx, x, _scaled_sizes(ctx, x), False, "DEFAULT")


@op("resize_bilinear")
def _resize_bilinear(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    sizes = [ctx.get_int("target_size_height", 1), ctx.get_int("target_size_width", 1)]
    return _resize(ctx, x, sizes, True, ctx.get_str("sampling_mode", "DEFAULT"))


@op("resize_nearest_neighbor")
def _resize_nearest(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("x")
    return _resize(ctx, x, [ctx.get_int("target_size_height"), ctx.get_int("target_size_width")], False, "DEFAULT")


@op("resize")
def _resize_ios17(ctx: OpContext) -> np.ndarray:
    x, shape, n = ctx.array("x"), ctx.get_ints("shape"), ctx.get_int("resized_dims")
    interp = ctx.get_str("interpolation_mode", "LINEAR")
    mode = ctx.get_str("sampling_mode", "DEFAULT")
    if not 0 <= n <= len(shape) <= x.ndim:
        ctx.fail(f"resized_dims {n}, shape {shape} for rank {x.ndim}")
    sizes = [s if s else x.shape[x.ndim - n + j] for j, s in enumerate(shape[len(shape) - n :])]
    if interp == "LINEAR":
        if x.dtype.kind != "f":
            ctx.fail("LINEAR interpolation of an integer tensor (undefined)")
        return _resize(ctx, x.astype(np.float64), sizes, True, mode)
    if interp != "NEAREST_NEIGHBOR":
        ctx.fail(f"unknown interpolation_mode '{interp}'")
    if mode != "DEFAULT":
        # The docs define the sampling grids for linear interpolation only; how a nearest index is
        # rounded from them is not stated, so only the tested DEFAULT (floor) is evaluated.
        ctx.fail(f"NEAREST_NEIGHBOR with sampling_mode {mode}: rounding of the grid is not defined")
    return _resize(ctx, x, sizes, False, mode)


# --- quantization and compressed constants -------------------------------------------------------


def _along(ctx: OpContext, param: np.ndarray, rank: int, axis: int | None) -> np.ndarray:
    """A scale / zero point: a scalar, or a vector along `axis` broadcast to the data's rank."""
    if param.ndim == 0:
        return param
    if param.ndim != 1 or axis is None:
        ctx.fail(f"scale / zero point of shape {param.shape} needs to be a scalar, or a vector with an axis")
    return param.reshape([-1 if a == axis else 1 for a in range(rank)])


def _affine_params(ctx: OpContext, data: np.ndarray, scale_name: str, zp_name: str) -> tuple[np.ndarray, np.ndarray]:
    scale = ctx.tensor(scale_name)
    zp = ctx.num(zp_name) if ctx.has(zp_name) else np.zeros(())
    axis = ctx.get_int("axis", None)
    axis = None if axis is None else ctx.axis(axis, data.ndim)
    for name, p in ((scale_name, scale), (zp_name, zp)):
        if p.ndim == 1 and (axis is None or p.shape[0] != data.shape[axis]):
            ctx.fail(f"'{name}' of {p.shape[0]} values for axis {axis} of shape {data.shape}")
    return _along(ctx, scale, data.ndim, axis), _along(ctx, zp, data.ndim, axis)


@op("quantize")
def _quantize(ctx: OpContext) -> np.ndarray:
    x = ctx.tensor("input")
    target = ctx.get_str("output_dtype")
    if target not in ("int8", "uint8") or target != ctx.out_dtype():
        ctx.fail(f"output_dtype '{target}' (declared {ctx.out_dtype()})")
    if ctx.has("zero_point") and ctx.val("zero_point").dtype != target:
        ctx.fail(f"zero_point is {ctx.val('zero_point').dtype}, output_dtype {target}")
    scale, zp = _affine_params(ctx, x, "scale", "zero_point")
    if np.any(scale == 0) or not np.all(np.isfinite(x)):
        ctx.fail("zero scale or non-finite input")
    # clip(round(x / scale) + zero_point): rounding first, then the zero point, then saturation to
    # the output type; np.round (the value_inference's np.around) ties to even.
    low, high = INT_RANGES[target]
    return np.clip(np.round(x / scale) + zp, low, high).astype(np.int64)


@op("dequantize")
def _dequantize(ctx: OpContext) -> np.ndarray:
    x = ctx.num("input")
    scale, zp = _affine_params(ctx, x, "scale", "zero_point")
    return (x - zp) * scale


@op("constexpr_affine_dequantize")
def _constexpr_affine_dequantize(ctx: OpContext) -> np.ndarray:
    q = ctx.num("quantized_data")
    for name in ("zero_point", "axis"):  # optional in iOS17 dequantize, required here
        if not ctx.has(name):
            ctx.fail(f"missing required input '{name}'")
    scale, zp = _affine_params(ctx, q, "scale", "zero_point")
    return (q - zp) * scale


@op("constexpr_blockwise_shift_scale")
def _constexpr_blockwise_shift_scale(ctx: OpContext) -> np.ndarray:
    data, scale = ctx.num("data").astype(np.float64), ctx.tensor("scale")
    offset = ctx.num("offset").astype(np.float64) if ctx.has("offset") else None
    if scale.ndim != data.ndim or any(d % s for d, s in zip(data.shape, scale.shape, strict=True)):
        ctx.fail(f"scale {scale.shape} does not divide data {data.shape} into blocks")
    if offset is not None and offset.shape != scale.shape:
        ctx.fail(f"offset {offset.shape} differs from scale {scale.shape}")
    # output[i, j, ..] = scale[i // bi, j // bj, ..] * (data[i, j, ..] - offset[i // bi, j // bj, ..])
    blocked = [v for s, d in zip(scale.shape, data.shape, strict=True) for v in (s, d // s)]
    one = [v for s in scale.shape for v in (s, 1)]
    d = data.reshape(blocked)
    if offset is not None:
        d = d - offset.reshape(one)
    return (d * scale.reshape(one)).reshape(data.shape)


@op("constexpr_lut_to_dense")
def _constexpr_lut_to_dense(ctx: OpContext) -> np.ndarray:
    lut = ctx.array("lut")
    if ctx.has("shape"):  # iOS16 form: packed uint8 indices, a 1-D lut and the output shape
        shape, packed = ctx.get_ints("shape"), ctx.array("indices")
        nbits = {2: 1, 4: 2, 16: 4, 64: 6, 256: 8}.get(lut.size)
        count = math.prod(shape)
        if nbits is None or lut.ndim != 1 or packed.dtype != np.uint8 or packed.size != -(-nbits * count // 8):
            ctx.fail(f"lut of {lut.size} entries, {packed.size} index bytes for shape {shape}")
        idx = unpack_bits(packed.tobytes(), nbits, count, signed=False)
        return lut[idx.astype(np.int64)].reshape(shape)
    # iOS18 form: indices of uint1..uint8, lut [*G, 2^nbits, VECTOR_SIZE] with one table per block.
    v = ctx.val("indices")
    idx = v.data.astype(np.int64)
    k = idx.ndim
    if lut.ndim != k + 2 or lut.shape[-2] != 2 ** {"uint8": 8, **SUB_BYTE_BITS}.get(v.dtype, 0):
        ctx.fail(f"lut {lut.shape} does not fit {v.dtype} indices of shape {idx.shape}")
    if any(d % g for d, g in zip(idx.shape, lut.shape[:k], strict=True)):
        ctx.fail(f"lut groups {lut.shape[:k]} do not divide indices {idx.shape}")
    block = [d // g for d, g in zip(idx.shape, lut.shape[:k], strict=True)]
    groups = np.ix_(*(np.arange(d) // b for d, b in zip(idx.shape, block, strict=True)))
    values = lut[(*groups, idx)]  # indices.shape + (VECTOR_SIZE,)
    vsize = lut.shape[-1]
    if vsize == 1:
        ctx.get_int("vector_axis", None)
        return values[..., 0]
    axis = ctx.axis(ctx.get_int("vector_axis"), k)
    shape = list(idx.shape)
    shape[axis] *= vsize
    return np.moveaxis(values, -1, axis + 1).reshape(shape)


@op("classify")
def _classify(ctx: OpContext) -> tuple[Any, dict[Any, float]]:
    probs = ctx.tensor("probabilities").reshape(-1)
    classes = ctx.val("classes").data
    if not isinstance(classes, list) or len(classes) != probs.size:
        ctx.fail(f"{probs.size} probabilities for classes {classes!r}")
    return classes[int(np.argmax(probs))], {c: float(p) for c, p in zip(classes, probs, strict=True)}
