"""Shape and data movement in edgeq's C interpreter (native/src/kernels/squeeze.c, expand_dims.c, pad.c,
transpose.c, concatenation.c, split.c, split_v.c, strided_slice.c, slice.c, gather.c, pack.c, unpack.c,
space_to_depth.c, depth_to_space.c, resize_bilinear.c, resize_nearest_neighbor.c, embedding_lookup.c) against
LiteRT's BUILTIN_REF kernels, bit for bit: every model of the op-model corpus (tests/opmodels.py) for these ops,
then single-op models written here for what converters rarely emit -- every datatype the reference kernel takes,
odd ranks and shapes, all strided-slice masks, UINT8 concatenation requantizing inputs at extreme scales, resize
geometries in every mode -- and the models edgeq must refuse, with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import ModelFormatError, UnsupportedOpError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.ir.tflite_reader import read_tflite
from edgeq.verify.bitexact import random_inputs, verify
from edgeq.verify.native import NativeError, NativeModel

OPS = (
    "SQUEEZE",
    "EXPAND_DIMS",
    "PAD",
    "PADV2",
    "TRANSPOSE",
    "CONCATENATION",
    "SPLIT",
    "SPLIT_V",
    "STRIDED_SLICE",
    "SLICE",
    "GATHER",
    "PACK",
    "UNPACK",
    "SPACE_TO_DEPTH",
    "DEPTH_TO_SPACE",
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
    "EMBEDDING_LOOKUP",
)

# ---------------------------------------------------------------------------------------------------------
# The op-model corpus


@pytest.fixture(scope="module")
def corpus():
    try:
        from tests.opmodels import op_models
    except ImportError:
        pytest.skip("tests/opmodels.py (the op-model corpus) is not in this checkout")
    return op_models(ops=OPS)


def _index_inputs(path, samples: int, seed: int = 0):
    """Random inputs, except that index inputs (GATHER indices, EMBEDDING_LOOKUP ids) hold valid indices:
    out-of-range ones make both interpreters fail the invoke, which tells nothing."""
    native = NativeModel(path)
    bounds = {}
    for op in native.ops:
        if op.name == "GATHER" and len(op.inputs) == 2:
            bounds[op.inputs[1]] = min(bounds.get(op.inputs[1], 1 << 30), min(native.tensors[op.inputs[0]].shape))
        elif op.name == "EMBEDDING_LOOKUP" and len(op.inputs) == 2:
            rows = native.tensors[op.inputs[1]].shape[0]
            bounds[op.inputs[0]] = min(bounds.get(op.inputs[0], 1 << 30), rows)
    if not any(t.index in bounds for t in native.inputs):
        return None
    rng = np.random.default_rng(seed)
    batch = random_inputs(native, samples, seed)
    for sample in batch:
        for k, t in enumerate(native.inputs):
            if t.index in bounds:
                sample[k] = rng.integers(0, bounds[t.index], size=t.shape).astype(t.dtype)
    return batch


def _unsupported_elsewhere(error: Exception) -> bool:
    """A corpus model that also holds an op of another kernel group that this build lacks."""
    message = str(error)
    return "which edgeq does not implement" in message and not any(f" is {op} " in message for op in OPS)


@pytest.mark.parametrize("op", OPS)
def test_corpus_models_are_bit_exact(corpus, op: str) -> None:
    models = [m for m in corpus if m.op == op]
    if not models:
        pytest.skip(f"the corpus has no {op} model")
    failures, elsewhere = [], []
    for m in models:
        try:
            result = verify(m.path, inputs=_index_inputs(m.path, 4), samples=4)
        except UnsupportedOpError as e:
            if _unsupported_elsewhere(e):
                elsewhere.append(m.name)
                continue
            raise
        if not result.bit_exact:
            failures.append(f"{m.name}: {result.summary()}")
    assert not failures, "\n".join(failures)
    if len(elsewhere) == len(models):
        pytest.skip(f"every {op} corpus model also needs an op this build lacks: {elsewhere}")


# ---------------------------------------------------------------------------------------------------------
# Single-op models

Q8, Q16, QU8 = (0.05, 3), (0.001, 0), (0.1, 128)
# Every type a pure copy handles, with the quantization a converter gives it.
TYPES = {"int8": Q8, "int16": Q16, "uint8": QU8, "int32": None, "int64": None, "bool": None, "float32": None}


def _t(name, shape, dtype="int8", data=None, q=None) -> Tensor:
    quant = None
    if q is not None:
        scale, zero = q
        quant = Quantization(np.atleast_1d(np.asarray(scale, np.float32)), np.atleast_1d(np.asarray(zero, np.int64)))
    if data is not None:
        data = np.asarray(data).astype(dtype).reshape(shape)
    return Tensor(name, tuple(shape), dtype, data=data, quant=quant)


def _op(kind: str, inputs: list[Tensor], outputs: list[Tensor], options=None, options_type: str = "") -> bytes:
    """One op; inputs holding data are constants, the others model inputs."""
    tensors = [*inputs, *outputs]
    n = len(inputs)
    op = Op(kind, list(range(n)), list(range(n, len(tensors))), options=options or {}, options_type=options_type)
    graph_inputs = [i for i, t in enumerate(inputs) if t.data is None]
    return write_tflite(Graph(tensors=tensors, ops=[op], inputs=graph_inputs, outputs=list(range(n, len(tensors)))))


def _assert_bit_exact(model: bytes, samples: int = 3, inputs=None) -> None:
    result = verify(model, samples=samples, inputs=inputs)
    assert result.bit_exact, result.summary()


def _litert(model: bytes, inputs: list[np.ndarray] | None = None):
    """LiteRT's reference kernels alone: the outputs, or the exception they raise."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interpreter.allocate_tensors()
        for detail, x in zip(interpreter.get_input_details(), inputs or [], strict=False):
            interpreter.set_tensor(detail["index"], x)
        interpreter.invoke()
        return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    except (RuntimeError, ValueError) as e:
        return e


def _with_shape(shape, axis, size):
    shape = list(shape)
    shape[axis] = size
    return shape


def _squeeze(dtype, q):
    return _op(
        "SQUEEZE",
        [_t("x", (1, 3, 1, 4, 1), dtype, q=q)],
        [_t("y", (3, 4, 1), dtype, q=q)],
        {"squeezeDims": [0, -3]},
        "SqueezeOptions",
    )


def _expand_dims(dtype, q, axis=-2, axis_dtype="int32"):
    shape = [2, 3, 4]
    shape.insert(axis if axis >= 0 else len(shape) + 1 + axis, 1)
    return _op(
        "EXPAND_DIMS",
        [_t("x", (2, 3, 4), dtype, q=q), _t("axis", (1,), axis_dtype, [axis])],
        [_t("y", shape, dtype, q=q)],
    )


def _transpose(dtype, q, shape=(2, 3, 4, 5), perm=(0, -1, 1, 2)):
    out = [shape[p] for p in perm]
    return _op(
        "TRANSPOSE", [_t("x", shape, dtype, q=q), _t("perm", (len(perm),), "int32", perm)], [_t("y", out, dtype, q=q)]
    )


def _concat(dtype, q, axis=1, sizes=(1, 3, 2), shape=(2, 4, 3, 5), qs=None):
    ins = [_t(f"x{i}", _with_shape(shape, axis, s), dtype, q=(qs[i] if qs else q)) for i, s in enumerate(sizes)]
    out = _t("y", _with_shape(shape, axis, sum(sizes)), dtype, q=q)
    return _op("CONCATENATION", ins, [out], {"axis": axis}, "ConcatenationOptions")


def _split(dtype, q, axis=-1, shape=(2, 3, 6), n=3):
    outs = [_t(f"y{i}", _with_shape(shape, axis, shape[axis] // n), dtype, q=q) for i in range(n)]
    return _op(
        "SPLIT", [_t("axis", (1,), "int32", [axis]), _t("x", shape, dtype, q=q)], outs, {"numSplits": n}, "SplitOptions"
    )


def _split_v(dtype, q, axis=1, shape=(2, 7, 3), sizes=(2, -1, 0, 1)):
    rest = shape[axis] - sum(s for s in sizes if s >= 0)
    outs = [_t(f"y{i}", _with_shape(shape, axis, rest if s == -1 else s), dtype, q=q) for i, s in enumerate(sizes)]
    return _op(
        "SPLIT_V",
        [_t("x", shape, dtype, q=q), _t("sizes", (len(sizes),), "int32", sizes), _t("axis", (1,), "int32", [axis])],
        outs,
        {"numSplits": len(sizes)},
        "SplitVOptions",
    )


def _slice(dtype, q, shape=(2, 5, 4, 3), begin=(1, 1, 0, 2), size=(1, -1, 3, 1), index_dtype="int32"):
    out = [d - b if s == -1 else s for d, b, s in zip(shape, begin, size, strict=True)]
    return _op(
        "SLICE",
        [
            _t("x", shape, dtype, q=q),
            _t("begin", (len(shape),), index_dtype, begin),
            _t("size", (len(shape),), index_dtype, size),
        ],
        [_t("y", out, dtype, q=q)],
    )


def _strided_slice(
    dtype,
    q,
    shape,
    begin,
    end,
    strides,
    out_shape,
    begin_mask=0,
    end_mask=0,
    ellipsis_mask=0,
    new_axis_mask=0,
    shrink_axis_mask=0,
    offset=False,
):
    n = len(begin)
    options = {
        "beginMask": begin_mask,
        "endMask": end_mask,
        "ellipsisMask": ellipsis_mask,
        "newAxisMask": new_axis_mask,
        "shrinkAxisMask": shrink_axis_mask,
        "offset": offset,
    }
    return _op(
        "STRIDED_SLICE",
        [
            _t("x", shape, dtype, q=q),
            _t("begin", (n,), "int32", begin),
            _t("end", (n,), "int32", end),
            _t("strides", (n,), "int32", strides),
        ],
        [_t("y", out_shape, dtype, q=q)],
        options,
        "StridedSliceOptions",
    )


def _gather(dtype, q, index_dtype="int32", axis=1, batch_dims=0, shape=(3, 5, 4), indices=((4, 0, 1), (1, 1, 3))):
    indices = np.asarray(indices)
    out = [*shape[: axis % len(shape)], *indices.shape[batch_dims:], *shape[axis % len(shape) + 1 :]]
    return _op(
        "GATHER",
        [_t("x", shape, dtype, q=q), _t("i", indices.shape, index_dtype, indices)],
        [_t("y", out, dtype, q=q)],
        {"axis": axis, "batchDims": batch_dims},
        "GatherOptions",
    )


def _pack(dtype, q, axis=1, shape=(3, 4), n=3):
    out = list(shape)
    out.insert(axis if axis >= 0 else len(shape) + 1 + axis, n)
    return _op(
        "PACK",
        [_t(f"x{i}", shape, dtype, q=q) for i in range(n)],
        [_t("y", out, dtype, q=q)],
        {"valuesCount": n, "axis": axis},
        "PackOptions",
    )


def _unpack(dtype, q, axis=-2, shape=(3, 4, 2)):
    a = axis % len(shape)
    out = [d for i, d in enumerate(shape) if i != a]
    return _op(
        "UNPACK",
        [_t("x", shape, dtype, q=q)],
        [_t(f"y{i}", out, dtype, q=q) for i in range(shape[a])],
        {"num": shape[a], "axis": axis},
        "UnpackOptions",
    )


def _space_to_depth(dtype, q, block=2, shape=(2, 6, 4, 3)):
    n, h, w, c = shape
    return _op(
        "SPACE_TO_DEPTH",
        [_t("x", shape, dtype, q=q)],
        [_t("y", (n, h // block, w // block, c * block * block), dtype, q=q)],
        {"blockSize": block},
        "SpaceToDepthOptions",
    )


def _depth_to_space(dtype, q, block=2, shape=(2, 3, 2, 12)):
    n, h, w, c = shape
    return _op(
        "DEPTH_TO_SPACE",
        [_t("x", shape, dtype, q=q)],
        [_t("y", (n, h * block, w * block, c // block // block), dtype, q=q)],
        {"blockSize": block},
        "DepthToSpaceOptions",
    )


def _resize(kind, dtype, q, in_hw, out_hw, mode="none", batch=2, depth=3):
    options = {"alignCorners": mode == "align", "halfPixelCenters": mode == "half"}
    options_type = "ResizeBilinearOptions" if kind == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    return _op(
        kind,
        [_t("x", (batch, *in_hw, depth), dtype, q=q), _t("size", (2,), "int32", out_hw)],
        [_t("y", (batch, *out_hw, depth), dtype, q=q)],
        options,
        options_type,
    )


def _embedding(dtype, q, ids=(6, 0, 3, 3), table_shape=(7, 3, 2), out_dtype=None, table_quant=None, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else None
    table = (
        rng.integers(info.min, info.max, table_shape, endpoint=True)
        if info is not None
        else rng.normal(size=table_shape)
    )
    value = _t("value", table_shape, dtype, table, q=q)
    if table_quant is not None:
        value.quant = table_quant
    out_q = None if out_dtype else q
    return _op(
        "EMBEDDING_LOOKUP",
        [_t("ids", (len(ids),), "int32", ids), value],
        [_t("y", (len(ids), *table_shape[1:]), out_dtype or dtype, q=out_q)],
    )


# Ops that are byte copies, for every type LiteRT's reference kernel takes.
COPY_CASES = {
    "squeeze": (_squeeze, TYPES),
    "expand_dims": (_expand_dims, TYPES),
    "transpose": (_transpose, TYPES),
    "concatenation": (_concat, TYPES),
    "split": (_split, {k: v for k, v in TYPES.items() if k != "bool"}),
    "split_v": (_split_v, {k: v for k, v in TYPES.items() if k != "bool"}),
    "slice": (_slice, TYPES),
    "strided_slice": (
        lambda dt, q: _strided_slice(dt, q, (3, 6, 5), [0, 5, 1], [3, 0, 5], [2, -2, 1], (2, 3, 4)),
        TYPES,
    ),
    "gather": (_gather, TYPES),
    "pack": (_pack, {k: v for k, v in TYPES.items() if k != "bool"}),
    "unpack": (_unpack, {k: v for k, v in TYPES.items() if k != "int64"}),
    "space_to_depth": (_space_to_depth, {k: v for k, v in TYPES.items() if k not in ("int16", "bool")}),
    "depth_to_space": (_depth_to_space, {k: v for k, v in TYPES.items() if k not in ("int16", "bool")}),
    "resize_nearest_neighbor": (
        lambda dt, q: _resize("RESIZE_NEAREST_NEIGHBOR", dt, q, (3, 5), (7, 4), "half"),
        {k: v for k, v in TYPES.items() if k != "int64"},
    ),
    "embedding_lookup": (_embedding, TYPES),
}


@pytest.mark.parametrize("case,dtype", [(c, d) for c, (_, types) in COPY_CASES.items() for d in types])
def test_copy_ops_every_type(case: str, dtype: str) -> None:
    build, types = COPY_CASES[case]
    _assert_bit_exact(build(dtype, types[dtype]))


# What LiteRT's reference kernels refuse for a type, edgeq refuses too.
TYPE_REFUSALS = {
    "split_bool": lambda: _split("bool", None),
    "split_v_bool": lambda: _split_v("bool", None),
    "pack_bool": lambda: _pack("bool", None),
    "unpack_int64": lambda: _unpack("int64", None),
    "space_to_depth_int16": lambda: _space_to_depth("int16", Q16),
    "depth_to_space_bool": lambda: _depth_to_space("bool", None),
    "resize_nearest_int64": lambda: _resize("RESIZE_NEAREST_NEIGHBOR", "int64", None, (2, 2), (3, 3)),
    "resize_bilinear_int32": lambda: _resize("RESIZE_BILINEAR", "int32", None, (2, 2), (3, 3)),
}


@pytest.mark.parametrize("name", sorted(TYPE_REFUSALS))
def test_types_litert_refuses_are_refused(name: str) -> None:
    model = TYPE_REFUSALS[name]()
    assert isinstance(_litert(model), Exception)
    with pytest.raises(UnsupportedOpError, match="type"):
        NativeModel(model)


@pytest.mark.parametrize("mode", ["none", "align", "half"])
def test_float32_resize_bilinear_is_bit_exact(mode: str) -> None:
    # The generic reference path in float, as UINT8 takes it without the rounding offset.
    result = verify(_resize("RESIZE_BILINEAR", "float32", None, (5, 4), (9, 11), mode=mode), samples=3)
    assert result.bit_exact, result.summary()


# ---------------------------------------------------------------------------------------------------------
# PAD and PADV2

PADDINGS = np.array([[0, 0], [1, 2], [3, 0], [0, 1]])
PAD_VALUES = {"int8": 7, "int16": -300, "uint8": 17, "int32": 123456, "int64": -5, "bool": True, "float32": 1.5}


PAD_TYPES = [
    ("int8", (0.05, -77)),
    ("int16", (0.001, 0)),
    ("uint8", (0.1, 200)),
    ("int8", None),
    ("int16", None),
    ("uint8", None),
    ("int32", None),
    ("int64", None),
    ("bool", None),
    ("float32", None),
]


@pytest.mark.parametrize("dtype,q", PAD_TYPES)
@pytest.mark.parametrize("kind", ["PAD", "PADV2"])
def test_pad_every_type(dtype: str, q, kind: str) -> None:
    # The pad value: constant_values if given; else the output zero point for UINT8 and for quantized
    # INT8/INT16 (the zero point here is far from 0), and 0 for the rest.
    inputs = [
        _t("x", (2, 3, 4, 5), dtype, q=q),
        _t("paddings", (4, 2), "int64" if dtype == "int8" else "int32", PADDINGS),
    ]
    if kind == "PADV2":
        inputs.append(_t("value", (1,), dtype, [PAD_VALUES[dtype]], q=q))
    _assert_bit_exact(_op(kind, inputs, [_t("y", (2, 6, 7, 6), dtype, q=q)]))


@pytest.mark.parametrize(
    "shape,paddings",
    [
        ((5,), [[2, 3]]),
        ((4, 1), [[0, 0], [0, 0]]),
        ((2, 1, 3, 2, 2), [[1, 0], [0, 1], [1, 1], [0, 0], [2, 1]]),
        ((1, 3, 3, 1), [[0, 0], [5, 6], [7, 4], [0, 0]]),
    ],
)
@pytest.mark.parametrize("q", [(0.02, -128), (0.02, 127)])
def test_pad_ranks_and_zero_points_at_the_ends(shape, paddings, q) -> None:
    out = [d + a + b for d, (a, b) in zip(shape, paddings, strict=True)]
    _assert_bit_exact(
        _op(
            "PAD",
            [_t("x", shape, "int8", q=q), _t("p", (len(shape), 2), "int32", paddings)],
            [_t("y", out, "int8", q=q)],
        )
    )


def test_padv2_with_a_runtime_pad_value() -> None:
    model = _op(
        "PADV2",
        [
            _t("x", (2, 3), "int16", q=Q16),
            _t("p", (2, 2), "int32", [[1, 1], [0, 2]]),
            _t("value", (1,), "int16", q=Q16),
        ],
        [_t("y", (4, 5), "int16", q=Q16)],
    )
    _assert_bit_exact(model, samples=4)


# ---------------------------------------------------------------------------------------------------------
# CONCATENATION: UINT8 requantizes inputs in float; INT8 must share quantization; INT16 copies raw values


@pytest.mark.parametrize(
    "qs",
    [
        [(0.01, 10), (0.5, 200), (0.02, 128)],
        [(0.1, 128), (0.1, 127), (0.1, 128)],  # zero point differs by one: requantized, not copied
        [(1e-5, 0), (100.0, 255), (0.37, 3)],  # saturates at both ends
        [(0.0157, 131), (0.0231, 117), (0.0177, 121)],
        [(3e-7, 255), (7e4, 0), (1e-6, 64)],  # extreme scale ratios
    ],
)
def test_concat_uint8_requantizes_inputs(qs) -> None:
    out_q = qs[-1]
    model = _concat("uint8", out_q, axis=1, sizes=(3, 4, 1), shape=(2, 1, 5), qs=qs)
    _assert_bit_exact(model, samples=8)


@pytest.mark.parametrize(
    "in_q,out_q",
    [((0.0157, 131), (0.0177, 121)), ((0.5, 0), (0.003, 255)), ((2.0, 255), (0.5, 0)), ((0.1, 300), (0.1, -40))],
)  # zero points outside UINT8 too
def test_concat_uint8_every_byte(in_q, out_q) -> None:
    model = _op(
        "CONCATENATION",
        [_t("a", (256,), "uint8", q=in_q), _t("b", (3,), "uint8", q=out_q)],
        [_t("y", (259,), "uint8", q=out_q)],
        {"axis": 0},
        "ConcatenationOptions",
    )
    every = np.arange(256, dtype=np.uint8)
    _assert_bit_exact(model, inputs=[[every, every[:3]], [every[::-1].copy(), every[-3:].copy()]])


def test_concat_uint8_inner_axis_rescale() -> None:
    _assert_bit_exact(
        _concat("uint8", (0.02, 100), axis=-1, sizes=(1, 2), shape=(3, 4, 1), qs=[(0.05, 0), (0.01, 250)])
    )


def test_concat_int16_copies_raw_values_across_scales() -> None:
    # LiteRT only demands zero point 0 for INT16: inputs of other scales are copied unscaled.
    _assert_bit_exact(_concat("int16", (0.02, 0), axis=0, sizes=(1, 2), shape=(1, 3, 4), qs=[(0.01, 0), (0.5, 0)]))


@pytest.mark.parametrize("axis,sizes,shape", [(0, (1, 1, 1, 1), (1, 2)), (2, (0, 3), (2, 2, 1)), (-1, (5,), (3, 1))])
def test_concat_shapes(axis, sizes, shape) -> None:
    _assert_bit_exact(_concat("int8", Q8, axis=axis, sizes=sizes, shape=shape))


# ---------------------------------------------------------------------------------------------------------
# STRIDED_SLICE and SLICE

# (shape, begin, end, strides, masks, output shape): python indexing x[...] in the comment.
STRIDED_SLICES = {
    "step2": ((1, 8, 8, 3), [0, 1, 0, 0], [1, 7, 8, 3], [1, 2, 2, 1], {}, (1, 3, 4, 3)),  # x[:, 1:7:2, ::2]
    "reverse": ((1, 5, 4), [0, -1, 1], [1, -6, 4], [1, -1, 1], {}, (1, 5, 3)),  # x[:, ::-1, 1:]
    "negative_step_3": ((2, 10), [0, 8], [2, 0], [1, -3], {}, (2, 3)),  # x[:, 8:0:-3]
    "shrink": ((1, 8, 8, 3), [0, 3, 0, 1], [1, 4, 8, 3], [1, 1, 1, 1], {"shrink_axis_mask": 2}, (1, 8, 2)),
    "shrink_negative_index": ((4, 5), [-1, 0], [0, 5], [1, 1], {"shrink_axis_mask": 1}, (5,)),  # x[-1]
    "begin_end_masks": ((4, 6), [3, 4], [4, 1], [1, -1], {"begin_mask": 1, "end_mask": 2}, (4, 5)),  # x[:4, 4::-1]
    "ellipsis": ((2, 5, 7), [0, 2], [0, 7], [1, 1], {"ellipsis_mask": 1}, (2, 5, 5)),  # x[..., 2:]
    "ellipsis_middle": ((2, 3, 4, 5), [1, 0, 1], [2, 0, 3], [1, 1, 1], {"ellipsis_mask": 2}, (1, 3, 4, 2)),
    "new_axis": ((3, 4), [0, 0, 1], [0, 3, 3], [1, 1, 1], {"new_axis_mask": 1}, (1, 3, 2)),  # x[None, :, 1:3]
    "new_axis_and_shrink": (
        (3, 4),
        [1, 0, 0],
        [2, 0, 4],
        [1, 1, 2],
        {"new_axis_mask": 2, "shrink_axis_mask": 1},
        (1, 2),
    ),  # x[1, None, ::2]
    "ellipsis_then_new_axis": (
        (2, 3, 4),
        [0, 0],
        [0, 0],
        [1, 1],
        {"ellipsis_mask": 1, "new_axis_mask": 2},
        (2, 3, 4, 1),
    ),  # x[..., None]
    "fewer_indices_than_dims": ((3, 4, 5), [1], [3], [1], {}, (2, 4, 5)),
    "out_of_range_indices_clamp": ((5, 3), [-100, 1], [100, 100], [2, 1], {}, (3, 2)),
    "empty_result": ((4, 3), [3, 0], [1, 3], [1, 1], {}, (0, 3)),
    "all_shrunk_to_scalar": ((2, 3), [1, 2], [2, 3], [1, 1], {"shrink_axis_mask": 3}, ()),
    "offset": ((4, 6), [1, 2], [2, 3], [1, 1], {"offset": True}, (2, 3)),  # end = begin + end
    "seven_dims": (
        (2, 1, 3, 1, 2, 1, 4),
        [0, 0, 1, 0, 1, 0, 3],
        [2, 1, 3, 1, 2, 1, 0],
        [1, 1, 1, 1, 1, 1, -2],
        {},
        (2, 1, 2, 1, 1, 1, 2),
    ),
}


@pytest.mark.parametrize("name", sorted(STRIDED_SLICES))
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_strided_slice_masks(name: str, dtype: str) -> None:
    shape, begin, end, strides, masks, out = STRIDED_SLICES[name]
    _assert_bit_exact(_strided_slice(dtype, TYPES[dtype], shape, begin, end, strides, out, **masks))


def test_strided_slice_random_specs_match_litert() -> None:
    """Random index sets and masks: wherever LiteRT computes an output (whose shape then becomes the stored
    one) and edgeq accepts the model, the two agree; edgeq refuses only slices that leave LiteRT's output
    unwritten or sized apart from what it copies."""
    rng = np.random.default_rng(7)
    exact = refused = 0
    for _ in range(150):
        rank = int(rng.integers(1, 6))
        shape = [int(d) for d in rng.integers(1, 6, rank)]
        n = int(rng.integers(1, rank + 2))
        begin, end = [int(v) for v in rng.integers(-6, 7, n)], [int(v) for v in rng.integers(-6, 7, n)]
        strides = [int(v) for v in rng.choice([1, 1, 2, -1, -2, 3], n)]
        full = (1 << n) - 1

        def mask(p, full=full):
            return int(rng.integers(0, full + 1)) if rng.random() < p else 0

        masks = {
            "begin_mask": mask(0.5),
            "end_mask": mask(0.5),
            "new_axis_mask": mask(0.3),
            "shrink_axis_mask": mask(0.3),
            "ellipsis_mask": 1 << int(rng.integers(0, n)) if rng.random() < 0.3 else 0,
        }
        probe = _litert(_strided_slice("int8", Q8, shape, begin, end, strides, (1,), **masks))
        if isinstance(probe, Exception):
            continue
        model = _strided_slice("int8", Q8, shape, begin, end, strides, probe[0].shape, **masks)
        try:
            NativeModel(model)
        except (UnsupportedOpError, ModelFormatError) as e:
            assert "unwritten" in str(e) or "copies" in str(e) or "rank" in str(e), str(e)
            refused += 1
            continue
        _assert_bit_exact(model, samples=1)
        exact += 1
    assert exact > 100, (exact, refused)


@pytest.mark.parametrize(
    "shape,begin,size",
    [
        ((2, 5, 4, 3), (1, 1, 0, 2), (1, -1, 3, 1)),
        ((7,), (0,), (0,)),
        ((3, 1, 4, 1, 5, 2), (2, 0, 1, 0, 0, 1), (1, 1, -1, 1, 3, 1)),  # six dims: LiteRT's runtime-rank path
        ((2, 3), (0, 0), (-1, -1)),
    ],
)
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_slice_shapes(shape, begin, size, index_dtype) -> None:
    _assert_bit_exact(_slice("int8", Q8, shape, begin, size, index_dtype))


# ---------------------------------------------------------------------------------------------------------
# GATHER and EMBEDDING_LOOKUP


@pytest.mark.parametrize("index_dtype", ["int16", "int32", "int64"])
@pytest.mark.parametrize(
    "axis,batch_dims,shape,indices",
    [
        (0, 0, (5, 3), [4, 4, 0]),
        (-1, 0, (2, 3, 5), [[4], [0]]),
        (2, 2, (2, 3, 5, 4), np.arange(12).reshape(2, 3, 2) % 5),
        (-1, -1, (2, 3, 5, 4), np.arange(12).reshape(2, 6) % 4),
        (1, 1, (2, 4, 3), [[3, 0, 0], [1, 2, 3]]),
    ],
)
def test_gather_axes_and_batch_dims(index_dtype, axis, batch_dims, shape, indices) -> None:
    _assert_bit_exact(_gather("int16", Q16, index_dtype, axis, batch_dims, shape, indices))


def _gather_runtime_indices() -> bytes:
    return _op("GATHER", [_t("x", (6, 3), "int8", q=Q8), _t("i", (4,), "int32")], [_t("y", (4, 3), "int8", q=Q8)])


def test_gather_runtime_indices() -> None:
    model = _gather_runtime_indices()
    rng = np.random.default_rng(1)
    samples = [
        [rng.integers(-128, 128, (6, 3)).astype(np.int8), rng.integers(0, 6, 4).astype(np.int32)] for _ in range(4)
    ]
    _assert_bit_exact(model, inputs=samples)


@pytest.mark.parametrize("bad", [6, -1, 2**31 - 1, -(2**31)])
def test_gather_index_out_of_range_fails_the_invoke(bad: int) -> None:
    # The one place invoke fails: LiteRT fails it too, and nothing outside the input is read.
    model = _gather_runtime_indices()
    x, indices = np.zeros((6, 3), np.int8), np.array([0, 5, bad, 1], np.int32)
    assert isinstance(_litert(model, [x, indices]), Exception)
    native = NativeModel(model)
    with pytest.raises(NativeError, match=r"ERROR_RUNTIME.*outside") as info:
        native.run([x, indices])
    assert info.value.status == "ERROR_RUNTIME"
    assert native.run([x, np.array([0, 5, 2, 1], np.int32)])[0].shape == (4, 3)  # usable afterwards


def test_gather_constant_index_out_of_range_is_malformed() -> None:
    model = _op("GATHER", [_t("x", (6, 3), "int8", q=Q8), _t("i", (1,), "int32", [6])], [_t("y", (1, 3), "int8", q=Q8)])
    with pytest.raises(ModelFormatError, match="outside"):
        NativeModel(model)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("per_row", [False, True])
def test_embedding_lookup_hybrid_dequantizes(dtype: str, per_row: bool) -> None:
    # INT8 or UINT8 table, FLOAT32 output: value * scale in float; LiteRT reads even a UINT8 table as int8.
    quant = Quantization(np.linspace(0.01, 0.5, 7).astype(np.float32), np.zeros(7, np.int64), 0) if per_row else None
    _assert_bit_exact(
        _embedding(dtype, (0.037, 0), ids=(6, 0, 3), table_shape=(7, 4), out_dtype="float32", table_quant=quant)
    )


def _int4_table(rows: int, cols: int, quant: Quantization, seed: int = 0) -> Tensor:
    data = np.random.default_rng(seed).integers(-8, 7, (rows, cols), endpoint=True).astype(np.int8)
    return Tensor("value", (rows, cols), "int4", data=data, quant=quant)


@pytest.mark.parametrize(
    ("cols", "per_row", "block"),
    [(6, False, 0), (6, True, 0), (5, True, 0), (64, False, 16), (64, False, 32), (96, False, 32), (64, False, 64)],
)
def test_embedding_lookup_int4_tables(cols: int, per_row: bool, block: int) -> None:
    # INT4 tables with FLOAT32 rows out, as edgeq's INT4 schemes store word embeddings: one scale, a scale per
    # row, or fp16 scales per block (EvalBlockwise). Rows of odd length (cols 5) are read LiteRT's way.
    rows, rng = 9, np.random.default_rng(1)
    if block:
        scales = np.float16(rng.uniform(0.01, 0.2, rows * cols // block)).astype(np.float32)
        quant = Quantization(scales, np.zeros(scales.size, np.int64), 0, block)
    elif per_row:
        quant = Quantization(rng.uniform(0.01, 0.2, rows).astype(np.float32), np.zeros(rows, np.int64), 0)
    else:
        quant = Quantization(np.array([0.037], np.float32), np.zeros(1, np.int64))
    ids = (8, 0, 3, 3, 5, 1)
    model = _op(
        "EMBEDDING_LOOKUP",
        [_t("ids", (len(ids),), "int32", ids), _int4_table(rows, cols, quant)],
        [_t("y", (len(ids), cols), "float32")],
    )
    _assert_bit_exact(model)
    if cols % 2 == 0:  # even rows: exactly the dequantized table rows
        table = next(t for t in read_tflite(model).tensors if t.name == "value")
        per_element = np.repeat(quant.scale, block) if block else np.resize(quant.scale, rows).repeat(cols)
        expected = table.data.astype(np.float32).reshape(-1) * per_element.astype(np.float32)
        np.testing.assert_array_equal(NativeModel(model).run([])[0], expected.reshape(rows, cols)[list(ids)])


def test_embedding_lookup_refuses_int4_tables_it_cannot_read() -> None:
    scales = np.full(9 * 64 // 32, 0.0625, np.float32)
    blockwise = _int4_table(9, 64, Quantization(scales, np.zeros(scales.size, np.int64), 0, 32))
    int4_out = _op("EMBEDDING_LOOKUP", [_t("ids", (2,), "int32", (1, 2)), blockwise], [_t("y", (2, 64), "int4")])
    with pytest.raises(UnsupportedOpError, match="INT4 value needs a FLOAT32 output"):
        NativeModel(int4_out)
    gathered = _op("GATHER", [blockwise, _t("i", (2,), "int32", (1, 2))], [_t("y", (2, 64), "float32")])
    with pytest.raises(UnsupportedOpError, match="only a FULLY_CONNECTED filter or an EMBEDDING_LOOKUP table"):
        NativeModel(gathered)


def test_embedding_lookup_runtime_ids() -> None:
    model = _op(
        "EMBEDDING_LOOKUP",
        [_t("ids", (5,), "int32"), _t("v", (9, 4), "int8", np.arange(36) - 18, q=Q8)],
        [_t("y", (5, 4), "int8", q=Q8)],
    )
    samples = [[np.array([8, 0, 3, 3, 1], np.int32)], [np.array([2, 2, 2, 5, 4], np.int32)]]
    _assert_bit_exact(model, inputs=samples)
    with pytest.raises(NativeError, match="ERROR_RUNTIME"):
        NativeModel(model).run([np.array([0, 9, 0, 0, 0], np.int32)])


# ---------------------------------------------------------------------------------------------------------
# PACK, UNPACK, SPLIT, SPACE_TO_DEPTH, DEPTH_TO_SPACE shapes


@pytest.mark.parametrize(
    "build",
    [
        lambda: _pack("int16", Q16, axis=0, shape=(2, 3), n=1),
        lambda: _pack("int8", Q8, axis=-1, shape=(2, 1, 3), n=4),
        lambda: _pack("uint8", QU8, axis=0, shape=(), n=5),
        lambda: _unpack("int8", Q8, axis=0, shape=(4, 3)),
        lambda: _unpack("int16", Q16, axis=-1, shape=(2, 3, 5)),
        lambda: _split("int16", Q16, axis=0, shape=(6, 1), n=6),
        lambda: _split("int8", Q8, axis=1, shape=(2, 4, 3), n=1),
        lambda: _split_v("int16", Q16, axis=-1, shape=(3, 9), sizes=(-1,)),
        lambda: _split_v("int8", Q8, axis=0, shape=(5, 2, 2), sizes=(0, 5)),
        lambda: _space_to_depth("int8", Q8, block=3, shape=(1, 9, 6, 2)),
        lambda: _space_to_depth("uint8", QU8, block=1, shape=(1, 2, 2, 2)),
        lambda: _depth_to_space("int8", Q8, block=4, shape=(1, 2, 3, 32)),
        lambda: _transpose("int8", Q8, shape=(2, 1, 3, 2, 2, 3), perm=(5, 0, 3, 1, 4, 2)),
        lambda: _transpose("int16", Q16, shape=(7,), perm=(0,)),
        lambda: _transpose("int8", Q8, shape=(3, 1, 4), perm=(1, 0, 2)),
    ],
)
def test_shapes(build) -> None:
    _assert_bit_exact(build())


# ---------------------------------------------------------------------------------------------------------
# RESIZE_BILINEAR (INT8/INT16: 10-bit fixed point; UINT8: float) and RESIZE_NEAREST_NEIGHBOR

RESIZE_GEOMETRIES = [
    ((1, 1), (5, 3)),
    ((2, 3), (4, 6)),
    ((3, 5), (7, 4)),
    ((8, 9), (3, 2)),
    ((5, 5), (1, 1)),
    ((4, 7), (13, 21)),
    ((9, 2), (9, 2)),
    ((2, 2), (17, 1)),
]


@pytest.mark.parametrize("kind", ["RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"])
@pytest.mark.parametrize("dtype", ["int8", "int16", "uint8"])
@pytest.mark.parametrize("mode", ["none", "align", "half"])
def test_resize_geometries(kind: str, dtype: str, mode: str) -> None:
    for in_hw, out_hw in RESIZE_GEOMETRIES:
        _assert_bit_exact(_resize(kind, dtype, TYPES[dtype], in_hw, out_hw, mode), samples=2)


@pytest.mark.parametrize("mode", ["none", "align", "half"])
def test_resize_bilinear_large_upsample(mode: str) -> None:
    _assert_bit_exact(_resize("RESIZE_BILINEAR", "uint8", QU8, (33, 17), (64, 96), mode, batch=1, depth=2), samples=2)
    _assert_bit_exact(_resize("RESIZE_BILINEAR", "int16", Q16, (33, 17), (64, 96), mode, batch=1, depth=2), samples=2)


def test_resize_bilinear_both_modes_is_malformed() -> None:
    model = _op(
        "RESIZE_BILINEAR",
        [_t("x", (1, 2, 2, 1), "int8", q=Q8), _t("size", (2,), "int32", [3, 3])],
        [_t("y", (1, 3, 3, 1), "int8", q=Q8)],
        {"alignCorners": True, "halfPixelCenters": True},
        "ResizeBilinearOptions",
    )
    assert isinstance(_litert(model), Exception)
    with pytest.raises(ModelFormatError, match="align_corners"):
        NativeModel(model)


# ---------------------------------------------------------------------------------------------------------
# Refusals: what LiteRT rejects, and stored shapes that disagree with the op


def _concat_activation() -> bytes:
    return _op(
        "CONCATENATION",
        [_t("a", (2, 3), "int8", q=Q8), _t("b", (2, 4), "int8", q=Q8)],
        [_t("y", (2, 7), "int8", q=Q8)],
        {"axis": 1, "fusedActivationFunction": 1},
        "ConcatenationOptions",
    )


REFUSALS = {
    # (model, exception, message); LiteRT refuses these too unless listed in LITERT_ACCEPTS
    "concat_fused_activation": (_concat_activation, UnsupportedOpError, "fused activation"),
    "concat_int8_other_scale": (
        lambda: _concat("int8", (0.02, 0), qs=[(0.02, 0), (0.01, 0), (0.02, 0)]),
        ModelFormatError,
        "share quantization",
    ),
    "concat_int16_zero_point": (
        lambda: _concat("int16", (0.02, 0), qs=[(0.02, 0), (0.02, 1), (0.02, 0)]),
        ModelFormatError,
        "zero point",
    ),
    "pack_other_scale": (
        lambda: _op(
            "PACK",
            [_t("a", (3,), "int8", q=Q8), _t("b", (3,), "int8", q=(0.1, 3))],
            [_t("y", (2, 3), "int8", q=Q8)],
            {"valuesCount": 2},
            "PackOptions",
        ),
        ModelFormatError,
        "share quantization",
    ),
    "expand_dims_other_zero_point": (
        lambda: _op(
            "EXPAND_DIMS",
            [_t("x", (2,), "int8", q=Q8), _t("a", (1,), "int32", [0])],
            [_t("y", (1, 2), "int8", q=(0.05, 4))],
        ),
        ModelFormatError,
        "share",
    ),
    "split_uneven": (
        lambda: _op(
            "SPLIT",
            [_t("a", (1,), "int32", [0]), _t("x", (5,), "int8", q=Q8)],
            [_t("y0", (2,), "int8", q=Q8), _t("y1", (3,), "int8", q=Q8)],
            {"numSplits": 2},
            "SplitOptions",
        ),
        ModelFormatError,
        "evenly",
    ),
    "split_v_two_rests": (lambda: _split_v("int8", Q8, sizes=(-1, -1, 7)), ModelFormatError, "size_splits"),
    "pad_negative": (
        lambda: _op(
            "PAD", [_t("x", (4,), "int8", q=Q8), _t("p", (1, 2), "int32", [[-1, 2]])], [_t("y", (5,), "int8", q=Q8)]
        ),
        ModelFormatError,
        "paddings",
    ),
    "pad_six_dims": (
        lambda: _op(
            "PAD",
            [_t("x", (1,) * 6, "int8", q=Q8), _t("p", (6, 2), "int32", np.zeros((6, 2)))],
            [_t("y", (1,) * 6, "int8", q=Q8)],
        ),
        UnsupportedOpError,
        "at most 5",
    ),
    "transpose_repeated_axis": (
        lambda: _transpose("int8", Q8, shape=(2, 2), perm=(0, 0)),
        ModelFormatError,
        "permutation",
    ),
    "slice_past_the_end": (lambda: _slice("int8", Q8, shape=(4,), begin=(2,), size=(3,)), ModelFormatError, "fit"),
    "strided_slice_zero_stride": (
        lambda: _strided_slice("int8", Q8, (4,), [0], [4], [0], (4,)),
        ModelFormatError,
        "stride",
    ),
    "squeeze_non_unit_dim": (
        lambda: _op(
            "SQUEEZE",
            [_t("x", (2, 3), "int8", q=Q8)],
            [_t("y", (6,), "int8", q=Q8)],
            {"squeezeDims": [0]},
            "SqueezeOptions",
        ),
        ModelFormatError,
        "size-1",
    ),
    "space_to_depth_indivisible": (
        lambda: _space_to_depth("int8", Q8, block=4, shape=(1, 6, 4, 1)),
        ModelFormatError,
        "block_size",
    ),
    "unpack_wrong_num": (
        lambda: _op(
            "UNPACK",
            [_t("x", (3, 2), "int8", q=Q8)],
            [_t("y0", (2,), "int8", q=Q8)],
            {"num": 1, "axis": 0},
            "UnpackOptions",
        ),
        ModelFormatError,
        "num",
    ),
}


# LiteRT's TRANSPOSE never checks that perm is a permutation (it copies along the repeated axis).
LITERT_ACCEPTS = {"transpose_repeated_axis"}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusals(name: str) -> None:
    build, error, message = REFUSALS[name]
    model = build()
    assert isinstance(_litert(model), Exception) != (name in LITERT_ACCEPTS)
    with pytest.raises(error, match=message):
        NativeModel(model)


STORED_SHAPE_MISMATCHES = {
    "squeeze": lambda: _op("SQUEEZE", [_t("x", (1, 3, 1), "int8", q=Q8)], [_t("y", (3, 1), "int8", q=Q8)]),
    "transpose": lambda: _op(
        "TRANSPOSE", [_t("x", (2, 3), "int8", q=Q8), _t("p", (2,), "int32", [1, 0])], [_t("y", (2, 3), "int8", q=Q8)]
    ),
    "concatenation": lambda: _op(
        "CONCATENATION",
        [_t("a", (2, 3), "int8", q=Q8), _t("b", (2, 3), "int8", q=Q8)],
        [_t("y", (2, 5), "int8", q=Q8)],
        {"axis": 1},
        "ConcatenationOptions",
    ),
    "pad": lambda: _op(
        "PAD", [_t("x", (2,), "int8", q=Q8), _t("p", (1, 2), "int32", [[1, 1]])], [_t("y", (5,), "int8", q=Q8)]
    ),
    "gather": lambda: _op(
        "GATHER", [_t("x", (4, 3), "int8", q=Q8), _t("i", (2,), "int32", [0, 1])], [_t("y", (3, 3), "int8", q=Q8)]
    ),
    "resize": lambda: _op(
        "RESIZE_NEAREST_NEIGHBOR",
        [_t("x", (1, 2, 2, 1), "int8", q=Q8), _t("size", (2,), "int32", [3, 3])],
        [_t("y", (1, 3, 4, 1), "int8", q=Q8)],
    ),
    "strided_slice": lambda: _strided_slice("int8", Q8, (6,), [0], [6], [2], (2,)),
    "slice": lambda: _op(
        "SLICE",
        [_t("x", (4,), "int8", q=Q8), _t("b", (1,), "int32", [1]), _t("s", (1,), "int32", [2])],
        [_t("y", (3,), "int8", q=Q8)],
    ),
}


@pytest.mark.parametrize("name", sorted(STORED_SHAPE_MISMATCHES))
def test_stored_output_shape_must_match(name: str) -> None:
    model = STORED_SHAPE_MISMATCHES[name]()
    with pytest.raises(ModelFormatError, match="stored with shape"):
        NativeModel(model)


def test_non_constant_paddings_are_unsupported() -> None:
    model = _op("PAD", [_t("x", (2,), "int8", q=Q8), _t("p", (1, 2), "int32")], [_t("y", (4,), "int8", q=Q8)])
    with pytest.raises(UnsupportedOpError, match="not a constant"):
        NativeModel(model)
