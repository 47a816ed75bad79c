"""GPTQ: it lowers a layer's output error below round-to-nearest's on real data (Fashion-MNIST pixels), the
.tflite holds exactly the integers it chose, the plan reproduces the artifact, the im2col patches are the
ones the convolution multiplies, and the shipped Fashion-MNIST CNN keeps its accuracy with INT4 weights."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

import edgeq
from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.gptq import gptq_matrix, integer_view, output_error
from edgeq.algorithms.layer_inputs import patches
from edgeq.api import _render_graph
from edgeq.datasets import fashion_mnist, preprocess
from edgeq.demo import accuracy
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.quant.plan import QuantPlan
from edgeq.quant.schemes import get_scheme
from edgeq.runtime import LiteRT
from tests.graphs import dense_graph

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """Fashion-MNIST training images in [0, 1]: real, strongly correlated inputs."""
    images, _ = fashion_mnist("train")
    return preprocess(images[RNG.choice(len(images), 400, replace=False)])[..., 0]


def _conv_graph() -> bytes:
    """[1, 12, 12, 1] -> CONV_2D 3x3 stride 2 SAME (8) -> RELU6 -> DEPTHWISE 3x3 VALID (x2) -> output."""
    rng = np.random.default_rng(1)
    tensors = [
        Tensor("input", (1, 12, 12, 1), "float32"),
        Tensor("cw", (8, 3, 3, 1), "float32", data=rng.normal(size=(8, 3, 3, 1)).astype(np.float32)),
        Tensor("cb", (8,), "float32", data=rng.normal(size=8).astype(np.float32) * 0.1),
        Tensor("conv", (1, 6, 6, 8), "float32"),
        Tensor("dw", (1, 3, 3, 16), "float32", data=rng.normal(size=(1, 3, 3, 16)).astype(np.float32)),
        Tensor("db", (16,), "float32", data=rng.normal(size=16).astype(np.float32) * 0.1),
        Tensor("out", (1, 4, 4, 16), "float32"),
    ]
    conv = {"padding": 0, "strideW": 2, "strideH": 2, "fusedActivationFunction": 3}
    conv |= {"dilationWFactor": 1, "dilationHFactor": 1}
    depthwise = {"padding": 1, "strideW": 1, "strideH": 1, "depthMultiplier": 2, "fusedActivationFunction": 0}
    depthwise |= {"dilationWFactor": 1, "dilationHFactor": 1}
    ops = [
        Op("CONV_2D", [0, 1, 2], [3], options=conv, options_type="Conv2DOptions"),
        Op("DEPTHWISE_CONV_2D", [3, 4, 5], [6], options=depthwise, options_type="DepthwiseConv2DOptions"),
    ]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[6]))


def _int_weights(qm: edgeq.QuantizedModel, name: str) -> np.ndarray:
    return next(t for t in qm.graph.tensors if t.name == name).data


def _dequantized(qm: edgeq.QuantizedModel, name: str, axis: int) -> np.ndarray:
    q = _int_weights(qm, name).astype(np.float64)
    shape = [1] * q.ndim
    shape[axis] = -1
    return q * qm.plan.tensors[name].scales().astype(np.float64).reshape(shape)


def _assert_exact_integers(qm: edgeq.QuantizedModel, name: str) -> None:
    """The plan's float weights are scale * q for the very integers the .tflite stores."""
    enc = qm.plan.tensors[name]
    assert enc.dtype == "int4"
    w = qm.plan.weights[name].astype(np.float64)
    shape = [1] * w.ndim
    shape[enc.axis] = -1
    ratio = w / enc.scales().astype(np.float64).reshape(shape)
    np.testing.assert_array_equal(np.round(ratio), _int_weights(qm, name))
    assert np.max(np.abs(ratio - np.round(ratio))) < 1e-4


def test_fc_output_error_below_round_to_nearest_and_integers_exact(pixels, tmp_path):
    model = edgeq.load(dense_graph(units=16, features=64, seed=2))
    x = pixels[:, 10:18, 10:18].reshape(-1, 64)  # 8x8 centre crops, flattened
    calib, held = x[:300], x[300:]
    rtn = edgeq.quantize(model, edgeq.calibration.arrays(calib), scheme="int4-channel", progress=False)
    ours = edgeq.quantize(
        model, edgeq.calibration.arrays(calib), scheme="int4-channel", algorithms="gptq", progress=False
    )
    assert rtn.plan.tensors["w"].scale == ours.plan.tensors["w"].scale  # GPTQ keeps the plan's scales
    w = next(t for t in model.graph.tensors if t.name == "w").data.astype(np.float64)
    for data, margin in ((calib, 0.6), (held, 0.8)):  # calibration rows and rows it never saw
        err = {k: np.linalg.norm(data @ (w - _dequantized(q, "w", 0)).T) for k, q in (("rtn", rtn), ("gptq", ours))}
        assert err["gptq"] < margin * err["rtn"], err
    _assert_exact_integers(ours, "w")
    ours.plan.save(tmp_path / "plan.json")
    again = edgeq.quantize(model, plan=QuantPlan.load(tmp_path / "plan.json"), progress=False)
    assert again.tflite == ours.tflite


def test_conv_and_depthwise_output_error_below_round_to_nearest(pixels):
    model = edgeq.load(_conv_graph())
    x = pixels[:, 8:20, 8:20, None][:, None]  # [N, 1, 12, 12, 1]
    calib = edgeq.calibration.arrays(x[:300, 0])
    rtn = edgeq.quantize(model, calib, scheme="int4-channel", progress=False)
    ours = edgeq.quantize(model, calib, scheme="int4-channel", algorithms=["gptq"], progress=False)
    for name in ("cw", "dw"):
        _assert_exact_integers(ours, name)
    float_rt = LiteRT(model.host_tflite, preserve=True)
    conv_in, dw_in = [], []
    for sample in x[300:]:  # each [1, 12, 12, 1]
        float_rt.run([sample])
        conv_in.append(float_rt.tensor(0).copy())
        dw_in.append(float_rt.tensor(3).copy())
    conv_rows = patches(np.concatenate(conv_in), {"strideH": 2, "strideW": 2}, 3, 3).reshape(-1, 9)
    cw = next(t for t in model.graph.tensors if t.name == "cw").data.reshape(8, 9).astype(np.float64)
    err = {
        k: np.linalg.norm(conv_rows @ (cw - _dequantized(q, "cw", 0).reshape(8, 9)).T)
        for k, q in (("rtn", rtn), ("gptq", ours))
    }
    assert err["gptq"] < 0.7 * err["rtn"], err
    dw_rows = patches(np.concatenate(dw_in), {"padding": 1}, 3, 3)  # [n, 3, 3, 8]
    dw = next(t for t in model.graph.tensors if t.name == "dw").data.astype(np.float64)
    inputs_of = np.repeat(dw_rows, 2, axis=3)  # output channel o reads input channel o // 2
    err = {
        k: np.linalg.norm(np.einsum("nijc,ijc->nc", inputs_of, (dw - _dequantized(q, "dw", 3))[0]))
        for k, q in (("rtn", rtn), ("gptq", ours))
    }
    assert err["gptq"] < 0.9 * err["rtn"], err


def test_patches_are_what_the_convolution_multiplies():
    """patches() @ W^T + b reproduces LiteRT's float CONV_2D (SAME, stride 2) and DEPTHWISE (VALID)."""
    model = edgeq.load(_conv_graph())
    runtime = LiteRT(model.host_tflite, preserve=True)
    x = RNG.normal(size=(1, 12, 12, 1)).astype(np.float32)
    out = runtime.run([x])[0]
    conv = runtime.tensor(3).copy()
    g = {t.name: t.data for t in model.graph.tensors if t.data is not None}
    rows = patches(x, {"padding": 0, "strideH": 2, "strideW": 2}, 3, 3).reshape(36, 9)
    expect = np.clip(rows @ g["cw"].reshape(8, 9).T + g["cb"], 0, 6).reshape(conv.shape)
    np.testing.assert_allclose(conv, expect, rtol=1e-5, atol=1e-5)
    p = np.repeat(patches(conv, {"padding": 1}, 3, 3), 2, axis=3)
    np.testing.assert_allclose(
        out.reshape(16, 16), np.einsum("nijc,ijc->nc", p, g["dw"][0]) + g["db"], rtol=1e-4, atol=1e-4
    )


def test_gptq_matrix_block_scales_and_act_order():
    """Blockwise scales stay tied to their columns under act order; the result lies on the grid and beats
    round-to-nearest on correlated inputs."""
    x = RNG.normal(size=(512, 8)) @ RNG.normal(size=(8, 64))  # rank-8 inputs: strongly correlated columns
    w = RNG.normal(size=(1, 12, 64))
    scale = np.repeat(np.abs(w).reshape(12, 2, 32).max(axis=2) / 7, 32, axis=1)[None]
    zero = np.zeros_like(w)
    h = (x.T @ x)[None]
    chosen = gptq_matrix(w, h, scale, zero, -7, 7)
    q = chosen / scale
    np.testing.assert_allclose(q, np.round(q), atol=1e-9)
    assert np.max(np.abs(np.round(q))) <= 7
    rtn = scale * np.clip(np.round(w / scale), -7, 7)
    assert output_error(w - chosen, h) < 0.5 * output_error(w - rtn, h)


def test_fashion_mnist_w4a8_drop_within_a_point():
    """Measured (bench/gptq.py, REF kernels): W4A8 drop 1.00 point with round-to-nearest, 0.19 with GPTQ on the
    full test set; held to half a point here (default kernels), and to beating round-to-nearest."""
    model = edgeq.load((resources.files("edgeq") / "data" / "fashion_mnist_cnn.tflite").read_bytes())
    train_x, _ = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    calib = edgeq.calibration.arrays(
        preprocess(train_x[np.random.default_rng(0).choice(len(train_x), 500, replace=False)])
    )
    test = preprocess(test_x)
    float_top1 = accuracy(model.tflite, test, test_y)
    rtn = edgeq.quantize(model, calib, scheme="int4-channel", progress=False)
    ours = edgeq.quantize(model, calib, scheme="int4-channel", algorithms="gptq", progress=False)
    rtn_top1, top1 = accuracy(rtn.tflite, test, test_y), accuracy(ours.tflite, test, test_y)
    assert 100 * (float_top1 - top1) <= 0.5, (float_top1, top1)
    assert top1 > rtn_top1, (rtn_top1, top1)


def test_integer_view_computes_what_the_int4_model_computes(pixels):
    """GPTQ reads layer inputs from an int8 rendering of the per-channel INT4 integers (LiteRT's INT4 kernels
    are slow on the host): it must compute the INT4 model's values exactly, tensor by tensor."""
    model = edgeq.load(_conv_graph())
    calib = edgeq.calibration.arrays(pixels[:64, 8:20, 8:20, None])
    qm = edgeq.quantize(model, calib, scheme="int4-channel", progress=False)
    ctx = AlgorithmContext(
        graph=model.graph.copy(),
        scheme=get_scheme("int4-channel"),
        samples=[[pixels[k : k + 1, 8:20, 8:20, None]] for k in range(64, 80)],
        render=lambda g, p: _render_graph(g, p, {}),
        plan=qm.plan,
        progress=False,
    )
    view = integer_view(ctx)
    assert {e.dtype for n, e in view.plan.tensors.items() if n in ("cw", "dw")} == {"int8"}
    exact = ctx.quantized_activations([3, 6], reference=True)
    fast = view.quantized_activations([3, 6], reference=True)
    for t in (3, 6):
        np.testing.assert_array_equal(np.concatenate(fast[t]), np.concatenate(exact[t]))


def _batch_matmul_graph() -> bytes:
    """x [1, 4, 16] BATCH_MATMUL constant y [16, 8] -> output [1, 4, 8]."""
    y = np.random.default_rng(4).normal(size=(16, 8)).astype(np.float32)
    tensors = [
        Tensor("x", (1, 4, 16), "float32"),
        Tensor("y", (16, 8), "float32", data=y),
        Tensor("out", (1, 4, 8), "float32"),
    ]
    options = {"adjX": False, "adjY": False, "asymmetricQuantizeInputs": False}
    ops = [Op("BATCH_MATMUL", [0, 1], [2], options=options, options_type="BatchMatMulOptions")]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[2]))


def test_batch_matmul_constant_operand_affine_int8(pixels):
    """A constant BATCH_MATMUL operand is encoded like an activation (one scale, a zero point): GPTQ picks
    integers on that grid, and lowers the output error of rows it never saw."""
    model = edgeq.load(_batch_matmul_graph())
    x = pixels[:, 6:22, 6:22].reshape(-1, 4, 64)[..., ::4]  # rows of 16 pixels, 4 per sample
    rtn = edgeq.quantize(model, edgeq.calibration.arrays(x[:300]), scheme="int8", progress=False)
    ours = edgeq.quantize(model, edgeq.calibration.arrays(x[:300]), scheme="int8", algorithms="gptq", progress=False)
    enc = ours.plan.tensors["y"]
    assert len(enc.scale) == 1 and enc.dtype == "int8"
    q = (ours.plan.weights["y"].astype(np.float64) / enc.scale[0]) + enc.zero_point[0]
    np.testing.assert_array_equal(np.round(q), _int_weights(ours, "y"))
    y = next(t for t in model.graph.tensors if t.name == "y").data.astype(np.float64)
    held = x[300:].reshape(-1, 16)
    err = {}
    for k, qm in (("rtn", rtn), ("gptq", ours)):
        e = qm.plan.tensors["y"]
        stored = (_int_weights(qm, "y").astype(np.float64) - e.zero_point[0]) * e.scale[0]
        err[k] = np.linalg.norm(held @ (y - stored))
    assert err["gptq"] < 0.9 * err["rtn"], err
