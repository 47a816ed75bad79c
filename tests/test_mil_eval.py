"""The host MIL evaluator against independent references on packages coremltools writes.

References: numpy formulas, torch.nn.functional and TensorFlow (float64 where possible), the MIL
definitions' own device test vectors, and coremltools' value inference of constexpr ops. Every
program is built with the MIL Builder, converted with an empty pass pipeline (so the ops under test
reach the package unchanged), saved, and read back from disk.
"""

from __future__ import annotations

import math
import shutil
import struct
import types as pytypes
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")
tf = pytest.importorskip("tensorflow")

from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402
from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import (  # noqa: E402
    constexpr_affine_dequantize,
    constexpr_lut_to_dense,
)
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_blockwise_shift_scale  # noqa: E402
from coremltools.optimize import _utils as optimize_utils  # noqa: E402

from edgeq.errors import CoreMLError, InputDataError  # noqa: E402
from edgeq.verify.mil_blob import BlobFile  # noqa: E402
from edgeq.verify.mil_eval import MILProgram  # noqa: E402

F = torch.nn.functional
iOS16, iOS17, iOS18 = ct.target.iOS16, ct.target.iOS17, ct.target.iOS18
WEIGHTS = Path("Data/com.apple.CoreML/weights/weight.bin")


@pytest.fixture(scope="module")
def save(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Convert a MIL program with ct.convert and save it; returns the package path."""
    import coremltools.converters._converters_entry as entry

    patch = pytest.MonkeyPatch()
    # ct.convert runs gc.collect() (0.7 s with torch and TF loaded) on every call; the file stays < 60 s.
    patch.setattr(entry, "gc", pytypes.SimpleNamespace(collect=lambda: 0))
    root = tmp_path_factory.mktemp("mil")
    count = iter(range(10**6))

    def _save(prog: Any, target: Any = iOS18, **kwargs: Any) -> Path:
        model = ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            pass_pipeline=ct.PassPipeline.EMPTY,
            compute_precision=ct.precision.FLOAT32,
            skip_model_load=True,
            **kwargs,
        )
        path = root / f"m{next(count)}.mlpackage"
        model.save(str(path))
        return path

    yield _save
    patch.undo()


def run(save: Any, prog: Any, feeds: dict[str, np.ndarray], target: Any = iOS18, **kwargs: Any) -> dict[str, Any]:
    return MILProgram.load(save(prog, target)).run(feeds, **kwargs)


def close(out: np.ndarray, ref: Any, bound: float) -> None:
    """Shapes equal and max |out - ref| <= bound (relative to max(1, |ref|))."""
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape
    err = np.abs(out.astype(np.float64) - ref) / np.maximum(1.0, np.abs(ref))
    assert err.max(initial=0.0) <= bound, f"max relative error {err.max()} > {bound}"


def f32(v: float) -> float:
    """A constant as the program stores it (fp32)."""
    return float(np.float32(v))


def t64(a: np.ndarray) -> Any:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


FP32 = 2e-7  # one float32 rounding of a float64 result, relative
RNG = np.random.default_rng(7)
X = (RNG.standard_normal((2, 3, 4, 5)) * 3).astype(np.float32)
X.flat[:6] = [0.5, 1.5, 2.5, -0.5, -2.5, 0.0]  # round ties to even; sign of zero
Y = RNG.uniform(0.1, 4.0, (2, 3, 4, 5)).astype(np.float32)


def test_elementwise_and_activations(save: Any) -> None:
    alpha = np.array([0.1, -0.2, 0.3], np.float32)

    @mb.program(input_specs=[mb.TensorSpec(X.shape), mb.TensorSpec(Y.shape)], opset_version=iOS18)
    def prog(x: Any, y: Any) -> Any:
        gt = mb.greater(x=x, y=y)
        return (
            mb.add(x=x, y=y, name="add"),
            mb.sub(x=x, y=y, name="sub"),
            mb.mul(x=x, y=y, name="mul"),
            mb.real_div(x=x, y=y, name="real_div"),
            mb.maximum(x=x, y=y, name="maximum"),
            mb.minimum(x=x, y=y, name="minimum"),
            mb.pow(x=y, y=np.float32(1.7), name="pow"),
            mb.sqrt(x=y, name="sqrt"),
            mb.rsqrt(x=y, epsilon=1e-3, name="rsqrt"),
            mb.exp(x=x, name="exp"),
            mb.log(x=y, epsilon=1e-3, name="log"),
            mb.abs(x=x, name="abs"),
            mb.square(x=x, name="square"),
            mb.floor(x=x, name="floor"),
            mb.ceil(x=x, name="ceil"),
            mb.round(x=x, name="round"),
            mb.sign(x=x, name="sign"),
            mb.relu(x=x, name="relu"),
            mb.relu6(x=x, name="relu6"),
            mb.clip(x=x, alpha=-1.0, beta=2.0, name="clip"),
            mb.sigmoid(x=x, name="sigmoid"),
            mb.sigmoid_hard(x=x, alpha=0.2, beta=0.5, name="sigmoid_hard"),
            mb.tanh(x=x, name="tanh"),
            mb.leaky_relu(x=x, alpha=0.1, name="leaky_relu"),
            mb.elu(x=x, alpha=1.3, name="elu"),
            mb.thresholded_relu(x=x, alpha=0.5, name="thresholded_relu"),
            mb.gelu(x=x, mode="EXACT", name="gelu"),
            mb.gelu(x=x, mode="TANH_APPROXIMATION", name="gelu_tanh"),
            mb.silu(x=x, name="silu"),
            mb.softplus(x=x, name="softplus"),
            mb.softmax(x=x, axis=1, name="softmax"),
            mb.prelu(x=x, alpha=alpha, name="prelu"),
            mb.select(cond=gt, a=x, b=y, name="select"),
            mb.cast(x=mb.logical_or(x=gt, y=mb.less_equal(x=x, y=0.0)), dtype="fp32", name="or"),
            mb.cast(x=mb.logical_and(x=gt, y=mb.not_equal(x=x, y=1.5)), dtype="fp32", name="and"),
            mb.cast(x=mb.logical_not(x=mb.greater_equal(x=x, y=y)), dtype="fp32", name="not"),
            mb.cast(x=mb.equal(x=x, y=0.5), dtype="fp32", name="eq"),
            mb.cast(x=mb.less(x=x, y=y), dtype="fp32", name="lt"),
        )

    out = run(save, prog, {"x": X, "y": Y})
    x, y, tx = X.astype(np.float64), Y.astype(np.float64), t64(X)
    ref = {
        "add": x + y,
        "sub": x - y,
        "mul": x * y,
        "real_div": x / y,
        "maximum": np.maximum(x, y),
        "minimum": np.minimum(x, y),
        "pow": y ** f32(1.7),
        "sqrt": np.sqrt(y),
        "rsqrt": 1 / np.sqrt(y + f32(1e-3)),
        "exp": np.exp(x),
        "log": np.log(y + f32(1e-3)),
        "abs": np.abs(x),
        "square": x * x,
        "floor": np.floor(x),
        "ceil": np.ceil(x),
        "round": np.round(x),
        "sign": np.sign(x),
        "relu": F.relu(tx),
        "relu6": F.relu6(tx),
        "clip": np.clip(x, -1, 2),
        "sigmoid": torch.sigmoid(tx),
        "sigmoid_hard": np.clip(f32(0.2) * x + 0.5, 0, 1),
        "tanh": np.tanh(x),
        "leaky_relu": F.leaky_relu(tx, f32(0.1)),
        "elu": F.elu(tx, f32(1.3)),
        "thresholded_relu": np.where(x >= 0.5, x, 0),
        "gelu": F.gelu(tx),
        "gelu_tanh": F.gelu(tx, approximate="tanh"),
        "silu": F.silu(tx),
        "softplus": F.softplus(tx),
        "softmax": F.softmax(tx, dim=1),
        "prelu": F.prelu(tx, t64(alpha)),
        "select": np.where(x > y, x, y),
        "or": (x > y) | (x <= 0),
        "and": (x > y) & (x != 1.5),
        "not": ~(x >= y),
        "eq": x == 0.5,
        "lt": x < y,
    }
    for name, r in ref.items():
        close(out[name], r.numpy() if isinstance(r, torch.Tensor) else r, FP32)
    assert list(out["round"].flat[:5]) == [0.0, 2.0, 2.0, -0.0, -2.0]  # ties to even, as np.round


def test_reductions_and_data_movement(save: Any) -> None:
    idx = np.array([[2, 0], [1, 1]], np.int32)
    batch_idx = np.array([[3, 0, 1], [2, 2, 0]], np.int32)
    along = RNG.integers(0, 4, (2, 3, 2, 5)).astype(np.int32)

    @mb.program(input_specs=[mb.TensorSpec(X.shape), mb.TensorSpec(Y.shape)], opset_version=iOS18)
    def prog(x: Any, y: Any) -> Any:
        parts = mb.split(x=x, split_sizes=[1, 2], axis=1)
        halves = mb.split(x=x, num_splits=2, axis=0)
        return (
            mb.reduce_mean(x=x, axes=[1, 3], keep_dims=True, name="mean"),
            mb.reduce_max(x=x, axes=[0], name="max"),
            mb.reduce_min(x=x, axes=[-1], name="min"),
            mb.reduce_sum(x=x, name="sum"),
            mb.reduce_prod(x=y, axes=[2], keep_dims=True, name="prod"),
            mb.pad(x=x, pad=[1, 2, 0, 3], constant_val=1.5, name="pad_const"),
            mb.pad(x=x, pad=[0, 0, 0, 0, 3, 1, 2, 4], mode="reflect", name="pad_reflect"),
            mb.pad(x=x, pad=[2, 0, 5, 1], mode="replicate", name="pad_replicate"),
            mb.reshape(x=x, shape=[0, -1, 5], name="reshape"),
            mb.squeeze(x=mb.reduce_sum(x=x, axes=[0, 2], keep_dims=True), axes=[0, 1, 2], name="squeeze"),
            mb.expand_dims(x=mb.reduce_sum(x=x, axes=[0]), axes=[0, -1], name="expand"),
            mb.slice_by_index(
                x=x,
                begin=[0, 1, 0, 4],
                end=[2, 3, 4, 0],
                stride=[1, 1, 2, -1],
                end_mask=[False, False, False, True],
                name="slice",
            ),
            mb.slice_by_index(
                x=x,
                begin=[1, -1, 0, 0],
                end=[0, 0, 3, 5],
                begin_mask=[False, False, True, False],
                squeeze_mask=[True, True, False, False],
                name="slice_squeeze",
            ),
            mb.slice_by_size(x=x, begin=[1, 0, -2, 0], size=[1, -1, 2, 3], name="slice_size"),
            mb.transpose(x=x, perm=[0, 2, 3, 1], name="transpose"),
            mb.concat(values=[x, y], axis=1, interleave=True, name="interleave"),
            mb.concat(values=[x, y, x], axis=-1, name="concat"),
            mb.identity(x=parts[1], name="split1"),
            mb.identity(x=halves[1], name="half1"),
            mb.stack(values=[x, y], axis=2, name="stack"),
            mb.tile(x=x, reps=[1, 2, 1, 2], name="tile"),
            mb.gather(x=x, indices=idx, axis=1, name="gather"),
            mb.gather(x=x, indices=batch_idx, axis=2, batch_dims=1, name="gather_batch"),
            mb.gather_along_axis(x=x, indices=along, axis=2, name="along"),
        )

    out = run(save, prog, {"x": X, "y": Y})
    x, y = X.astype(np.float64), Y.astype(np.float64)
    ref = {
        "mean": x.mean(axis=(1, 3), keepdims=True),
        "max": x.max(axis=0),
        "min": x.min(axis=-1),
        "sum": x.sum(),
        "prod": y.prod(axis=2, keepdims=True),
        "pad_const": np.pad(x, [(0, 0), (0, 0), (1, 2), (0, 3)], constant_values=1.5),
        "pad_reflect": F.pad(t64(X), (2, 4, 3, 1), mode="reflect").numpy(),
        "pad_replicate": F.pad(t64(X), (5, 1, 2, 0), mode="replicate").numpy(),
        "reshape": x.reshape(3, 8, 5),
        "squeeze": x.sum(axis=(0, 2)).reshape(3, 5),
        "expand": x.sum(axis=0)[None, ..., None],
        "slice": x[0:2, 1:3, 0:4:2, 4::-1],
        "slice_squeeze": x[1, -1, :3, 0:5],
        "slice_size": x[1:2, :, 2:4, 0:3],
        "transpose": x.transpose(0, 2, 3, 1),
        "interleave": np.stack([x, y], axis=2).reshape(2, 6, 4, 5),
        "concat": np.concatenate([x, y, x], axis=-1),
        "split1": x[:, 1:],
        "half1": x[1:],
        "stack": np.stack([x, y], axis=2),
        "tile": np.tile(x, (1, 2, 1, 2)),
        "gather": x[:, idx],
        "gather_batch": np.stack([x[i][:, batch_idx[i]] for i in range(2)]),
        "along": np.take_along_axis(x, along, axis=2),
    }
    for name, r in ref.items():
        close(out[name], r, FP32 if name in ("mean", "sum", "prod", "squeeze", "expand") else 0.0)


def test_space_depth_and_matmul(save: Any) -> None:
    a = RNG.standard_normal((2, 1, 4, 5)).astype(np.float32)
    b = RNG.standard_normal((3, 5, 2)).astype(np.float32)
    w = RNG.standard_normal((4, 7)).astype(np.float32)
    bias = RNG.standard_normal(4).astype(np.float32)
    img = RNG.standard_normal((1, 8, 4, 6)).astype(np.float32)

    @mb.program(
        input_specs=[mb.TensorSpec(a.shape), mb.TensorSpec(b.shape), mb.TensorSpec((3, 7)), mb.TensorSpec(img.shape)],
        opset_version=iOS18,
    )
    def prog(a: Any, b: Any, v: Any, img: Any) -> Any:
        return (
            mb.matmul(x=a, y=b, name="bcast"),
            mb.matmul(x=b, y=a, transpose_x=True, transpose_y=True, name="tt"),
            mb.matmul(
                x=w[0, :5], y=mb.squeeze(x=mb.slice_by_size(x=b, begin=[0, 0, 0], size=[1, 5, 2]), axes=[0]), name="vec"
            ),
            mb.linear(x=v, weight=w, bias=bias, name="linear"),
            mb.depth_to_space(x=img, block_size=2, name="d2s"),
            mb.space_to_depth(x=img, block_size=2, name="s2d"),
        )

    v = RNG.standard_normal((3, 7)).astype(np.float32)
    out = run(save, prog, {"a": a, "b": b, "v": v, "img": img})
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    close(out["bcast"], a64 @ b64, FP32)
    close(out["tt"], np.swapaxes(b64, -1, -2) @ np.swapaxes(a64, -1, -2), FP32)
    close(out["vec"], w[0, :5].astype(np.float64) @ b64[0], FP32)
    close(out["linear"], F.linear(t64(v), t64(w), t64(bias)).numpy(), FP32)
    # depth_to_space is TensorFlow's (DCR): out[n, c, h*b + i, w*b + j] = in[n, (i*b + j)*C' + c, h, w].
    d2s = np.zeros((1, 2, 8, 12))
    for i, j, c in np.ndindex(2, 2, 2):
        d2s[0, c, i::2, j::2] = img[0, (i * 2 + j) * 2 + c]
    close(out["d2s"], d2s, 0.0)
    close(out["s2d"], tf.nn.space_to_depth(img.transpose(0, 2, 3, 1), 2).numpy().transpose(0, 3, 1, 2), 0.0)


def nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1)


def nchw(a: Any) -> np.ndarray:
    return np.asarray(a).transpose(0, 3, 1, 2)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_convolutions(save: Any) -> None:
    x = RNG.standard_normal((1, 4, 9, 11)).astype(np.float32)
    x1 = RNG.standard_normal((2, 3, 10)).astype(np.float32)
    w_grouped = RNG.standard_normal((6, 2, 3, 3)).astype(np.float32)
    w_same = RNG.standard_normal((5, 4, 4, 3)).astype(np.float32)
    w_dw = RNG.standard_normal((8, 1, 3, 3)).astype(np.float32)
    w1 = RNG.standard_normal((4, 3, 3)).astype(np.float32)
    wt = RNG.standard_normal((4, 3, 3, 2)).astype(np.float32)
    wt_same = RNG.standard_normal((4, 5, 3, 3)).astype(np.float32)
    b6, b5 = RNG.standard_normal(6).astype(np.float32), RNG.standard_normal(5).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape), mb.TensorSpec(x1.shape)], opset_version=iOS18)
    def prog(x: Any, x1: Any) -> Any:
        return (
            mb.conv(
                x=x,
                weight=w_grouped,
                bias=b6,
                strides=[2, 1],
                dilations=[1, 2],
                groups=2,
                pad_type="custom",
                pad=[1, 2, 0, 3],
                name="grouped",
            ),
            mb.conv(x=x, weight=w_same, bias=b5, strides=[2, 2], pad_type="same", name="same"),
            mb.conv(x=x, weight=w_same, pad_type="same_lower", name="same_lower"),
            mb.conv(x=x, weight=w_dw, groups=4, pad_type="valid", dilations=[2, 1], name="depthwise"),
            mb.conv(x=x1, weight=w1, strides=[2], dilations=[2], pad_type="custom", pad=[2, 1], name="conv1d"),
            mb.conv_transpose(
                x=x,
                weight=wt,
                bias=b6,
                strides=[2, 3],
                dilations=[1, 2],
                groups=2,
                pad_type="custom",
                pad=[1, 1, 2, 2],
                name="transposed",
            ),
            mb.conv_transpose(
                x=x,
                weight=wt_same,
                strides=[2, 2],
                pad_type="same",
                output_shape=[1, 5, 18, 22],
                name="transposed_same",
            ),
            mb.conv_transpose(
                x=x,
                weight=wt_same,
                strides=[2, 2],
                pad_type="valid",
                output_shape=[1, 5, 20, 24],
                name="transposed_valid",
            ),
        )

    out = run(save, prog, {"x": x, "x1": x1})
    tx = t64(x)
    close(
        out["grouped"], F.conv2d(F.pad(tx, (0, 3, 1, 2)), t64(w_grouped), t64(b6), (2, 1), 0, (1, 2), 2).numpy(), FP32
    )
    same = tf.nn.conv2d(nhwc(x).astype(np.float64), w_same.transpose(2, 3, 1, 0).astype(np.float64), 2, "SAME")
    close(out["same"], nchw(same) + b5.reshape(1, -1, 1, 1), FP32)
    # same_lower puts the odd padding unit first: correlation of the flipped input with the flipped
    # kernel under same padding, flipped back (the definition's own test construction).
    flip = np.flip(
        F.conv2d(t64(np.flip(x, (2, 3)).copy()), t64(np.flip(w_same, (2, 3)).copy()), padding="same").numpy(), (2, 3)
    )
    close(out["same_lower"], flip, FP32)
    close(out["depthwise"], F.conv2d(tx, t64(w_dw), None, 1, 0, (2, 1), 4).numpy(), FP32)
    close(out["conv1d"], F.conv1d(F.pad(t64(x1), (2, 1)), t64(w1), None, 2, 0, 2).numpy(), FP32)
    ref_t = F.conv_transpose2d(tx, t64(wt), t64(b6), (2, 3), (1, 2), 0, 2, (1, 2)).numpy()
    close(out["transposed"], ref_t, FP32)
    ref_same = tf.nn.conv2d_transpose(
        nhwc(x).astype(np.float64), wt_same.transpose(2, 3, 1, 0).astype(np.float64), [1, 18, 22, 5], 2, "SAME"
    )
    close(out["transposed_same"], nchw(ref_same), FP32)
    ref_valid = tf.nn.conv2d_transpose(  # one row / column more than the full output: zeros
        nhwc(x).astype(np.float64), wt_same.transpose(2, 3, 1, 0).astype(np.float64), [1, 20, 24, 5], 2, "VALID"
    )
    close(out["transposed_valid"], nchw(ref_valid), FP32)


def test_pooling(save: Any) -> None:
    x = RNG.standard_normal((2, 3, 9, 10)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape)], opset_version=iOS18)
    def prog(x: Any) -> Any:
        return (
            mb.max_pool(x=x, kernel_sizes=[3, 2], strides=[2, 2], pad_type="custom", pad=[1, 1, 0, 0], name="max"),
            mb.avg_pool(
                x=x,
                kernel_sizes=[3, 3],
                strides=[2, 3],
                pad_type="custom",
                pad=[1, 1, 1, 1],
                exclude_padding_from_average=True,
                name="avg_exclude",
            ),
            mb.avg_pool(
                x=x, kernel_sizes=[3, 3], strides=[2, 3], pad_type="custom", pad=[1, 1, 1, 1], name="avg_include"
            ),
            mb.avg_pool(
                x=x,
                kernel_sizes=[2, 4],
                strides=[2, 3],
                pad_type="custom",
                pad=[1, 1, 1, 1],
                ceil_mode=True,
                name="avg_ceil",
            ),
            mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="valid", ceil_mode=True, name="max_ceil"),
            mb.avg_pool(
                x=x,
                kernel_sizes=[2, 3],
                strides=[2, 3],
                pad_type="same",
                exclude_padding_from_average=True,
                name="avg_same",
            ),
            mb.max_pool(x=x, kernel_sizes=[4, 3], strides=[3, 2], pad_type="same", name="max_same"),
        )

    out = run(save, prog, {"x": x})
    tx = t64(x)
    close(out["max"], F.max_pool2d(tx, (3, 2), 2, (1, 0)).numpy(), 0.0)
    close(out["avg_exclude"], F.avg_pool2d(tx, 3, (2, 3), 1, count_include_pad=False).numpy(), FP32)
    close(out["avg_include"], F.avg_pool2d(tx, 3, (2, 3), 1, count_include_pad=True).numpy(), FP32)
    close(out["avg_ceil"], F.avg_pool2d(tx, (2, 4), (2, 3), 1, ceil_mode=True).numpy(), FP32)
    close(out["max_ceil"], F.max_pool2d(tx, 3, 2, ceil_mode=True).numpy(), 0.0)
    close(out["avg_same"], nchw(tf.nn.avg_pool2d(nhwc(x).astype(np.float64), (2, 3), (2, 3), "SAME")), FP32)
    close(out["max_same"], nchw(tf.nn.max_pool2d(nhwc(x), (4, 3), (3, 2), "SAME")), 0.0)

    # The definition's device test: avg_pool same_lower, kernel 2 on [1, 2] averages the leading pad in.
    @mb.program(input_specs=[mb.TensorSpec((1, 1, 2, 2))], opset_version=iOS18)
    def lower(x: Any) -> Any:
        return mb.avg_pool(x=x, kernel_sizes=[2, 2], pad_type="same_lower")

    got = run(save, lower, {"x": np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)})
    close(next(iter(got.values())), np.array([0.25, 0.75, 1, 2.5]).reshape(1, 1, 2, 2), 0.0)


def test_resampling(save: Any) -> None:
    x = RNG.standard_normal((1, 2, 4, 5)).astype(np.float32)
    ramp = np.array([0, 1], np.float32).reshape(1, 1, 1, 2)
    modes = ["UNALIGN_CORNERS", "STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS"]

    @mb.program(input_specs=[mb.TensorSpec(x.shape), mb.TensorSpec(ramp.shape)], opset_version=iOS18)
    def prog(x: Any, ramp: Any) -> Any:
        grids = [
            mb.resize_bilinear(x=ramp, target_size_height=1, target_size_width=n, sampling_mode=m, name=f"{m}{n}")
            for m in modes
            for n in (5, 6)
        ]
        return (
            *grids,
            mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=3, align_corners=True, name="up_align"),
            mb.upsample_bilinear(
                x=x, scale_factor_height=1.5, scale_factor_width=2.0, align_corners=False, name="up_half"
            ),
            mb.resize_bilinear(
                x=x, target_size_height=7, target_size_width=3, sampling_mode="STRICT_ALIGN_CORNERS", name="strict"
            ),
            mb.resize_bilinear(
                x=x, target_size_height=7, target_size_width=9, sampling_mode="UNALIGN_CORNERS", name="unalign"
            ),
            mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3, name="up_nearest"),
            mb.resize_nearest_neighbor(x=x, target_size_height=7, target_size_width=3, name="nearest"),
            mb.resize(
                x=x, shape=[6, 8], resized_dims=np.uint32(2), sampling_mode="ALIGN_CORNERS", name="resize_linear"
            ),
            mb.resize(
                x=x, shape=[1, 0, 9], resized_dims=np.uint32(1), interpolation_mode="NEAREST_NEIGHBOR", name="resize_nn"
            ),
        )

    out = run(save, prog, {"x": x, "ramp": ramp})
    # The sampling grids tabulated in resize_bilinear's definition (input [0, 1], so output = grid).
    table = {
        "UNALIGN_CORNERS": ([0, 0.1, 0.5, 0.9, 1], [0, 0, 1 / 3, 2 / 3, 1, 1]),
        "STRICT_ALIGN_CORNERS": ([0, 0.25, 0.5, 0.75, 1], [0, 0.2, 0.4, 0.6, 0.8, 1]),
        "ALIGN_CORNERS": ([0, 0.25, 0.5, 0.75, 1], [0, 0.2, 0.4, 0.6, 0.8, 1]),
        "DEFAULT": ([0, 0.4, 0.8, 1, 1], [0, 1 / 3, 2 / 3, 1, 1, 1]),
        "OFFSET_CORNERS": ([0.1, 0.3, 0.5, 0.7, 0.9], [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12]),
    }
    for mode, grids in table.items():
        for grid in grids:
            close(out[f"{mode}{len(grid)}"], np.array(grid).reshape(1, 1, 1, -1), FP32)
    tx = t64(x)
    close(out["up_align"], F.interpolate(tx, scale_factor=(2, 3), mode="bilinear", align_corners=True).numpy(), FP32)
    half = F.interpolate(tx, scale_factor=(1.5, 2.0), mode="bilinear", recompute_scale_factor=True).numpy()
    close(out["up_half"], half, FP32)
    close(out["strict"], F.interpolate(tx, size=(7, 3), mode="bilinear", align_corners=True).numpy(), FP32)
    close(out["unalign"], F.interpolate(tx, size=(7, 9), mode="bilinear", align_corners=False).numpy(), FP32)
    close(out["up_nearest"], F.interpolate(tx, scale_factor=(2, 3), mode="nearest").numpy(), 0.0)
    close(out["nearest"], F.interpolate(tx, size=(7, 3), mode="nearest").numpy(), 0.0)
    close(out["resize_linear"], F.interpolate(tx, size=(6, 8), mode="bilinear", align_corners=True).numpy(), FP32)
    close(out["resize_nn"], F.interpolate(tx, size=(4, 9), mode="nearest").numpy(), 0.0)


def test_normalization(save: Any) -> None:
    c = X.shape[1]
    mean, var = RNG.standard_normal(c).astype(np.float32), RNG.uniform(0.5, 2, c).astype(np.float32)
    gamma, beta = RNG.standard_normal(c).astype(np.float32), RNG.standard_normal(c).astype(np.float32)
    g2, b2 = RNG.standard_normal((4, 5)).astype(np.float32), RNG.standard_normal((4, 5)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(X.shape)], opset_version=iOS18)
    def prog(x: Any) -> Any:
        return (
            mb.batch_norm(x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3, name="batch"),
            mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=1e-4, name="instance"),
            mb.layer_norm(x=x, axes=[-2, -1], gamma=g2, beta=b2, epsilon=1e-5, name="layer"),
        )

    out = run(save, prog, {"x": X})
    tx = t64(X)
    close(out["batch"], F.batch_norm(tx, t64(mean), t64(var), t64(gamma), t64(beta), eps=1e-3).numpy(), FP32)
    close(out["instance"], F.instance_norm(tx, weight=t64(gamma), bias=t64(beta), eps=1e-4).numpy(), FP32)
    close(out["layer"], F.layer_norm(tx, (4, 5), t64(g2), t64(b2), eps=1e-5).numpy(), FP32)


def f16(a: Any) -> np.ndarray:
    return np.asarray(a, np.float64).astype(np.float16).astype(np.float64)


def test_fp16_program_rounds_only_in_fp16_precision(save: Any) -> None:
    c = RNG.standard_normal(64).astype(np.float16)
    w = RNG.standard_normal((8, 64)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec((1, 64))], opset_version=iOS18)
    def prog(x: Any) -> Any:
        h = mb.cast(x=x, dtype="fp16", name="h")
        y = mb.mul(x=h, y=c, name="y")
        z = mb.add(x=y, y=h, name="z")
        s = mb.sigmoid(x=z, name="s")
        lin = mb.linear(x=s, weight=w, name="lin")
        return mb.cast(x=h, dtype="fp32", name="h32"), mb.cast(x=lin, dtype="fp32", name="out")

    x = RNG.standard_normal((1, 64)).astype(np.float32)
    x[0, 0] = 1 + 2.0**-12  # between two fp16 values
    prog_ = MILProgram.load(save(prog))
    exact, device = prog_.run({"x": x}), prog_.run({"x": x}, precision="fp16")
    # fp32: the program's math, each op rounded to float32 only.
    x64, c64, w64 = x.astype(np.float64), c.astype(np.float64), w.astype(np.float64)
    z = np.float32(np.float32(x64 * c64) + x64)
    s = 1 / (1 + np.exp(-z.astype(np.float64)))
    close(exact["h32"], x, 0.0)
    close(exact["out"], np.float32(s) @ w64.T, FP32)
    # fp16: every fp16 result rounded to fp16, as a device computes it.
    h = f16(x64)
    z16 = f16(f16(h * c64) + h)
    s16 = f16(1 / (1 + np.exp(-z16)))
    close(device["h32"], h, 0.0)
    assert device["h32"][0, 0] == 1.0 and exact["h32"][0, 0] == np.float32(1 + 2.0**-12)
    close(device["out"], f16(s16 @ w64.T), 0.0)
    assert np.abs(device["out"] - exact["out"]).max() > 1e-4  # fp16 precision really rounds


CASES = [
    (-128, "int8", (-128, 127)),
    (0, "int8", (-128, 127)),
    (127, "int8", (-128, 127)),
    (0, "uint8", (0, 255)),
    (127, "uint8", (0, 255)),
]


def test_opset_dependent_semantics(save: Any) -> None:
    """iOS15: reshape's 0 copies the same-position dim, gather takes negative indices, and
    upsample_bilinear has no half_pixel_centers (align_corners=False is the half-pixel grid)."""
    x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(x.shape)], opset_version=ct.target.iOS15)
    def prog(x: Any) -> Any:
        return (
            mb.reshape(x=x, shape=[0, 0, -1, 2], name="reshape"),
            mb.gather(x=x, indices=np.array([-1, 0, -3], np.int32), axis=3, name="gather"),
            mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2, align_corners=False, name="up"),
            mb.gelu(x=x, mode="SIGMOID_APPROXIMATION", name="gelu"),
        )

    out = run(save, prog, {"x": x}, ct.target.iOS15)
    close(out["reshape"], x.reshape(1, 2, 6, 2), 0.0)
    close(out["gather"], x[..., [-1, 0, -3]], 0.0)
    close(out["up"], F.interpolate(t64(x), scale_factor=2, mode="bilinear", align_corners=False).numpy(), FP32)
    close(out["gelu"], x * torch.sigmoid(1.702 * t64(x)).numpy(), FP32)


def test_quantize_dequantize(save: Any) -> None:
    x = RNG.uniform(-80, 80, (2, 3, 8)).astype(np.float32)
    x[0, 0, :4] = [0.125, 0.375, -0.125, -0.625]  # exact ties at scale 0.25: 0.5, 1.5, -0.5, -2.5
    scales = np.array([0.25, 0.1, 0.3], np.float32)
    zps = np.array([-128, 0, 127], np.int8)

    @mb.program(input_specs=[mb.TensorSpec(x.shape)], opset_version=iOS18)
    def prog(x: Any) -> Any:
        outs = []
        for i, (zp, dt, _) in enumerate(CASES):
            q = mb.quantize(input=x, scale=np.float32(0.25), zero_point=np.dtype(dt).type(zp), output_dtype=dt)
            outs.append(mb.cast(x=q, dtype="int32", name=f"q{i}"))
        q_axis = mb.quantize(input=x, scale=scales, zero_point=zps, axis=1, output_dtype="int8")
        outs.append(mb.cast(x=q_axis, dtype="int32", name="q_axis"))
        outs.append(mb.dequantize(input=q_axis, scale=scales, zero_point=zps, axis=1, name="dq_axis"))
        return tuple(outs)

    out = run(save, prog, {"x": x})

    def quant(v: np.ndarray, scale: Any, zp: Any, low: int, high: int) -> np.ndarray:
        return np.clip(np.round(v.astype(np.float64) / scale) + zp, low, high)

    for i, (zp, _, (low, high)) in enumerate(CASES):
        ref = quant(x, 0.25, zp, low, high)
        close(out[f"q{i}"], ref, 0.0)
        assert low in ref and high in ref  # saturation exercised
    assert list(out["q1"][0, 0, :4]) == [0, 2, 0, -2]  # ties to even
    q_axis = quant(x, scales.reshape(1, 3, 1).astype(np.float64), zps.reshape(1, 3, 1), -128, 127)
    close(out["q_axis"], q_axis, 0.0)
    close(out["dq_axis"], (q_axis - zps.reshape(1, 3, 1)) * scales.reshape(1, 3, 1).astype(np.float64), FP32)


BLOCKS = [(1, 4), (1, 8), (4, 16), (1, 32), (8, 32)]


@pytest.fixture(scope="module")
def compressed(save: Any) -> tuple[Path, dict[str, Any]]:
    """An iOS18 package of blockwise int4 / uint4 / int8 weights and LUT-palettized weights."""
    consts: dict[str, Any] = {}
    for i, (bo, bi) in enumerate(BLOCKS):
        consts[f"w_int4_{i}"] = (
            RNG.integers(-8, 8, (8, 32)).astype(types.np_int4_dtype),
            RNG.uniform(0.01, 1, (8 // bo, 32 // bi)).astype(np.float16),
            None,
        )
    consts["w_uint4"] = (
        RNG.integers(0, 16, (8, 32)).astype(types.np_uint4_dtype),
        RNG.uniform(0.01, 1, (8, 2)).astype(np.float16),
        RNG.integers(0, 16, (8, 2)).astype(types.np_uint4_dtype),
    )
    consts["w_int8"] = (
        RNG.integers(-128, 128, (8, 32)).astype(np.int8),
        RNG.uniform(0.01, 1, (2, 4)).astype(np.float32),
        RNG.integers(-128, 128, (2, 4)).astype(np.int8),
    )
    luts = {
        "lut2": (
            RNG.integers(0, 4, (8, 16)).astype(types.np_uint2_dtype),
            RNG.standard_normal((2, 1, 4, 1)).astype(np.float16),
            None,
        ),
        "lut3": (
            RNG.integers(0, 8, (5, 7)).astype(types.np_uint3_dtype),
            RNG.standard_normal((1, 7, 8, 1)).astype(np.float16),
            None,
        ),
        "lut6": (
            RNG.integers(0, 64, (3, 11)).astype(types.np_uint6_dtype),
            RNG.standard_normal((1, 1, 64, 1)).astype(np.float32),
            None,
        ),
        "lut_vec": (
            RNG.integers(0, 2, (4, 6)).astype(types.np_uint1_dtype),
            RNG.standard_normal((1, 1, 2, 3)).astype(np.float16),
            0,
        ),
    }

    @mb.program(input_specs=[mb.TensorSpec((3, 32))], opset_version=iOS18)
    def prog(x: Any) -> Any:
        outs = []
        for name, (data, scale, offset) in consts.items():
            kw = {} if offset is None else {"offset": offset}
            w = mb.constexpr_blockwise_shift_scale(data=data, scale=scale, name=name, **kw)
            outs.append(mb.linear(x=x, weight=w, name=f"y_{name}"))  # iOS17+: fp16 weight, fp32 x
        for name, (idx, lut, axis) in luts.items():
            kw = {} if axis is None else {"vector_axis": axis}
            mb.constexpr_lut_to_dense(indices=idx, lut=lut, name=name, **kw)
        return tuple(outs)

    return save(prog), {**consts, **luts}


def test_blockwise_int4_and_lut_weights(compressed: tuple[Path, dict[str, Any]]) -> None:
    path, consts = compressed
    prog = MILProgram.load(path)
    x = RNG.standard_normal((3, 32)).astype(np.float32)
    exact, device = prog.run({"x": x}, keep=True), prog.run({"x": x}, precision="fp16", keep=True)
    for name in [n for n in consts if not n.startswith("lut")]:
        data, scale, offset = consts[name]
        blocks = [d // s for d, s in zip(data.shape, scale.shape, strict=True)]
        w = np.kron(scale.astype(np.float64), np.ones(blocks)) * (
            data.astype(np.float64) - (0 if offset is None else np.kron(offset.astype(np.float64), np.ones(blocks)))
        )
        close(exact[name], w, 0.0 if scale.dtype == np.float16 else FP32)  # int x fp16 is exact in float32
        # coremltools' value inference of the op computes in the scale's dtype, as a device would.
        close(device[name], constexpr_blockwise_shift_scale.decompress(data, scale, offset), 0.0)
        close(exact[f"y_{name}"], x.astype(np.float64) @ exact[name].astype(np.float64).T, FP32)
    for name in [n for n in consts if n.startswith("lut")]:
        idx, lut, axis = consts[name]
        close(exact[name], optimize_utils.lut_to_dense(idx, lut, axis), 0.0)
    stored = prog.constexpr_params("w_uint4")  # the integers and scales as stored, not decoded
    for key, want in zip(("data", "scale", "offset"), consts["w_uint4"], strict=True):
        np.testing.assert_array_equal(stored[key], want.astype(stored[key].dtype))
    assert stored["data"].dtype == np.uint8 and set(prog.constexpr_params("lut_vec")) == {
        "indices",
        "lut",
        "vector_axis",
    }


def test_blob_reader_matches_coremltools(compressed: tuple[Path, dict[str, Any]]) -> None:
    from coremltools.libmilstoragepython import _BlobStorageReader
    from coremltools.proto import MIL_pb2, Model_pb2

    path, _ = compressed
    spec = Model_pb2.Model()
    spec.ParseFromString((path / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    ops = spec.mlProgram.functions["main"].block_specializations["CoreML8"].operations
    values = [o.attributes["val"] for o in ops if "val" in o.attributes]
    values += [
        b.value for o in ops for arg in o.inputs.values() for b in arg.arguments if b.WhichOneof("binding") == "value"
    ]
    blobs = [v for v in values if v.WhichOneof("value") == "blobFileValue"]
    mine, theirs = BlobFile(path / WEIGHTS), _BlobStorageReader(str(path / WEIGHTS))
    seen = set()
    for v in blobs:
        dtype = MIL_pb2.DataType.Name(v.type.tensorType.dataType).lower().replace("float", "fp").replace("fp32", "fp32")
        dtype = {"fp16": "fp16", "fp32": "fp32"}.get(dtype, dtype)
        count = math.prod(d.constant.size for d in v.type.tensorType.dimensions)
        got = mine.read(v.blobFileValue.offset, dtype, count)
        method = {"fp16": "read_fp16_data", "fp32": "read_float_data"}.get(dtype, f"read_{dtype}_data")
        ref = np.asarray(getattr(theirs, method)(v.blobFileValue.offset))
        ref = ref.view(np.float16) if dtype == "fp16" else ref
        np.testing.assert_array_equal(got, ref[:count])
        seen.add(dtype)
    assert {"int4", "uint4", "int8", "fp16", "fp32", "uint2"} <= seen


def test_ios16_constexpr_ops(save: Any) -> None:
    q8 = RNG.integers(-128, 128, (6, 10)).astype(np.int8)
    zp8 = RNG.integers(-128, 128, 6).astype(np.int8)
    s8 = RNG.uniform(0.01, 1, 6).astype(np.float32)
    qu = RNG.integers(0, 256, (4, 12)).astype(np.uint8)
    lut = RNG.standard_normal(16).astype(np.float16)
    packed = RNG.integers(0, 256, 18).astype(np.uint8)  # 36 4-bit indices

    @mb.program(input_specs=[mb.TensorSpec((1,))], opset_version=iOS16)
    def prog(x: Any) -> Any:
        mb.constexpr_affine_dequantize(quantized_data=q8, zero_point=zp8, scale=s8, axis=0, name="affine")
        mb.constexpr_affine_dequantize(
            quantized_data=qu, zero_point=np.uint8(128), scale=np.float16(0.05), axis=1, name="affine_u8"
        )
        mb.constexpr_lut_to_dense(indices=packed, lut=lut, shape=np.array([4, 9], np.uint32), name="lut")
        return mb.add(x=x, y=1.0)

    prog_ = MILProgram.load(save(prog, iOS16))
    out, device = (
        prog_.run({"x": np.ones(1, np.float32)}, keep=True),
        prog_.run({"x": np.ones(1, np.float32)}, precision="fp16", keep=True),
    )
    close(out["affine"], constexpr_affine_dequantize.decompress(q8, zp8, s8, 0), 0.0)
    close(device["affine_u8"], constexpr_affine_dequantize.decompress(qu, np.uint8(128), np.float16(0.05), 1), 0.0)
    close(out["lut"], constexpr_lut_to_dense.decompress(lut, packed, np.array([4, 9])), 0.0)


def test_image_input_with_scale_and_bias(save: Any) -> None:
    w = RNG.standard_normal((2, 3, 1, 1)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec((1, 3, 4, 5))], opset_version=iOS18)
    def prog(image: Any) -> Any:
        return mb.conv(x=image, weight=w, name="out")

    bias = [-0.5, -0.25, 0.1]
    image_type = ct.ImageType(name="image", shape=(1, 3, 4, 5), scale=1 / 255, bias=bias, channel_first=True)
    prog_ = MILProgram.load(save(prog, inputs=[image_type]))
    assert prog_.inputs == [("image", (1, 3, 4, 5), "fp32")]
    pixels = RNG.integers(0, 256, (1, 3, 4, 5)).astype(np.float32)
    pre = np.float32(np.float32(pixels * np.float32(1 / 255)) + np.array(bias, np.float32).reshape(1, 3, 1, 1))
    close(prog_.run({"image": pixels})["out"], F.conv2d(t64(pre), t64(w)).numpy(), FP32)
    with pytest.raises(InputDataError, match="pixel values"):
        prog_.run({"image": pixels + 300})


@pytest.mark.parametrize("labels", [["cat", "dog", "bird"], [7, 3, 5]])
def test_classifier(save: Any, labels: list[Any]) -> None:
    @mb.program(input_specs=[mb.TensorSpec((1, 3))], opset_version=iOS18)
    def prog(x: Any) -> Any:
        return mb.softmax(x=x, axis=-1, name="probs")

    prog_ = MILProgram.load(save(prog, classifier_config=ct.ClassifierConfig(labels)))
    assert prog_.ops[-1] == "classify"
    x = np.array([[0.5, 2.0, -1.0]], np.float32)
    out = prog_.run({"x": x})
    probs = F.softmax(t64(x), dim=-1).numpy()
    close(out["probs"], probs, FP32)
    label, scores = (out[n] for n in prog_.outputs)
    assert label == labels[1] and isinstance(label, type(labels[1]))
    assert list(scores) == labels
    close(np.array(list(scores.values())), probs[0], FP32)


@pytest.fixture(scope="module")
def small(save: Any) -> Path:
    w = RNG.standard_normal((16, 8)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec((2, 8))], opset_version=iOS18)
    def prog(x: Any) -> Any:
        return mb.relu(x=mb.linear(x=x, weight=w, name="fc"), name="out")

    return save(prog)


def broken(path: Path, tmp_path: Path, edit: Any) -> Path:
    copy = tmp_path / path.name
    shutil.copytree(path, copy)
    blob = bytearray((copy / WEIGHTS).read_bytes())
    (copy / WEIGHTS).write_bytes(bytes(edit(blob)))
    return copy


def test_malformed_weight_blob(small: Path, tmp_path: Path) -> None:
    assert MILProgram.load(small).run({"x": np.ones((2, 8), np.float32)})["out"].shape == (2, 16)
    cases = [
        (
            lambda b: b[:200],
            r"fc_weight.*weight\.bin: blob at offset 64: data \[128, 640\) lies outside the file \(200",
        ),
        (lambda b: b[:40], r"shorter than the 64-byte storage header"),
        (lambda b: b[:64] + b"\x00\x00\x00\x00" + b[68:], r"sentinel 0x00000000 is not 0xDEADBEEF"),
        (lambda b: b[:68] + struct.pack("<I", 1) + b[72:], r"blob holds fp16, the program declares fp32"),
        (lambda b: b[:72] + struct.pack("<Q", 100) + b[80:], r"sizeInBytes 100, but 128 x fp32 need 512"),
        (lambda b: b[:4] + struct.pack("<I", 1) + b[8:], r"storage header version 1"),
    ]
    for i, (edit, message) in enumerate(cases):
        (tmp_path / str(i)).mkdir()
        with pytest.raises(CoreMLError, match=message):
            MILProgram.load(broken(small, tmp_path / str(i), edit))


def spec_of(path: Path) -> Any:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString((path / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    return spec


def test_unsupported_or_malformed_programs(small: Path, save: Any) -> None:
    @mb.program(input_specs=[mb.TensorSpec((2, 3))], opset_version=iOS18)
    def prog(x: Any) -> Any:
        return mb.erf(x=x, name="e")

    with pytest.raises(CoreMLError, match="erf op 'e': op type 'erf' is not implemented by the host evaluator"):
        MILProgram.load(save(prog))
    weights = small / "Data/com.apple.CoreML"
    spec = spec_of(small)
    relu = spec.mlProgram.functions["main"].block_specializations["CoreML8"].operations[-1]
    relu.inputs["alpha"].arguments.add().name = "x"  # an input relu does not have
    with pytest.raises(CoreMLError, match=r"relu op 'out': input\(s\) \['alpha'\] are not understood"):
        MILProgram.load(spec, weights).run({"x": np.ones((2, 8), np.float32)})
    spec = spec_of(small)
    linear = spec.mlProgram.functions["main"].block_specializations["CoreML8"].operations[-2]
    del linear.inputs["weight"]
    with pytest.raises(CoreMLError, match="linear op 'fc': missing required input 'weight'"):
        MILProgram.load(spec, weights).run({"x": np.ones((2, 8), np.float32)})
    with pytest.raises(CoreMLError, match="no package directory"):
        MILProgram.load(spec_of(small))
    spec = spec_of(small)
    spec.ClearField("mlProgram")
    spec.neuralNetwork.SetInParent()
    with pytest.raises(CoreMLError, match="neuralNetwork, not an ML program"):
        MILProgram.load(spec)
    with pytest.raises(CoreMLError, match=r"not a readable \.mlpackage"):
        MILProgram.load(small.parent / "missing.mlpackage")


def test_inputs_are_checked_and_values_kept(small: Path, save: Any) -> None:
    prog = MILProgram.load(small)
    assert prog.inputs == [("x", (2, 8), "fp32")] and prog.outputs == ["out"]
    assert not prog.written_by_edgeq
    x = RNG.standard_normal((2, 8)).astype(np.float32)
    for feeds, message in [
        ({}, r"missing \['x'\]"),
        ({"x": x, "y": x}, r"unexpected \['y'\]"),
        ({"x": x[:1]}, r"input 'x': shape \(1, 8\), the program takes \(2, 8\)"),
        ({"x": np.where(np.arange(8) == 3, np.nan, x)}, r"input 'x': 2 non-finite values, the first at \(0, 3\)"),
    ]:
        with pytest.raises(InputDataError, match=message):
            prog.run(feeds)
    values = prog.run({"x": x}, keep=True)
    assert {"x", "fc", "out", "fc_weight_0"} <= set(values)
    close(values["out"], np.maximum(values["fc"], 0), 0.0)

    @mb.program(input_specs=[mb.TensorSpec((2,))], opset_version=iOS18)
    def tagged(x: Any) -> Any:
        return mb.relu(x=x)

    model = ct.convert(
        tagged,
        convert_to="mlprogram",
        minimum_deployment_target=iOS18,
        skip_model_load=True,
        pass_pipeline=ct.PassPipeline.EMPTY,
    )
    model.user_defined_metadata["com.github.edgeq.version"] = "0.1.0"
    tagged_prog = MILProgram.load(model.get_spec())
    assert tagged_prog.written_by_edgeq and tagged_prog.metadata["com.github.edgeq.version"] == "0.1.0"


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Output, .* has been renamed")
def test_torch_model_converted_with_default_passes(save: Any, tmp_path: Path) -> None:
    """A peer's package: coremltools' torch frontend, default pass pipeline, fp16 compute precision."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, stride=2, groups=2),
        torch.nn.Sigmoid(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
        torch.nn.Softmax(-1),
    ).eval()
    with torch.no_grad():  # fp16-representable parameters: the package's fp16 weights are then exact
        for p in net.parameters():
            p.copy_(p.half().float())
    x = torch.rand(1, 3, 16, 16)
    model = ct.convert(
        torch.jit.trace(net, x),
        inputs=[ct.TensorType(name="x", shape=x.shape)],
        minimum_deployment_target=iOS17,
        skip_model_load=True,
    )  # `save` only patches ct.convert's gc.collect for this module
    model.save(str(tmp_path / "torch.mlpackage"))
    prog = MILProgram.load(tmp_path / "torch.mlpackage")
    assert {"conv", "max_pool", "linear", "softmax"} <= set(prog.ops)
    ref = net.double()(x.double()).detach().numpy()
    exact, device = (prog.run({"x": x.numpy()}, precision=p)[prog.outputs[0]] for p in ("fp32", "fp16"))
    close(exact, ref, 1e-6)  # float32 rounding of each op only
    close(device, ref, 2e-3)  # fp16 activations
    assert np.abs(device - exact).max() > 1e-6
