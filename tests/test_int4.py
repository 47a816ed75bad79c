"""INT4 weight schemes: the plan (per-channel and per-block INT4, MSE-chosen scales), its .tflite rendering
(packed INT4, BlockwiseQuantization tables), what LiteRT and edgeq's C interpreter compute from it.

Run with -s to see the measured numbers (weight and output SQNR, top-1 agreement, kernel error)."""

from __future__ import annotations

import functools
import json

import ml_dtypes
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import edgeq
from bench import zoo
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.ir.tflite_reader import read_tflite
from edgeq.quant import planner
from edgeq.quant.op_rules import RULES
from edgeq.quant.schemes import quantize_array
from edgeq.quant.weight_scales import mse_scales, weight_groups
from edgeq.runtime import LiteRT
from tests.graphs import dense_graph

RNG = np.random.default_rng(0)
BLOCK_SCHEMES = ["int4-block16", "int4-block32", "int4-block64", "int4-block128", "int4-block256"]
N_CALIB, N_EVAL = 32, 48


def _quantize(model: edgeq.FloatModel, calib: list[np.ndarray], scheme: str) -> edgeq.QuantizedModel:
    return edgeq.quantize(model, edgeq.calibration.arrays(*calib), scheme=scheme, progress=False)


def _one_op(tensors: list[Tensor], op: Op) -> edgeq.FloatModel:
    """A float model of one op reading tensor 0 and writing the last tensor."""
    return edgeq.load(write_tflite(Graph(tensors=tensors, ops=[op], inputs=[0], outputs=[len(tensors) - 1])))


def _dense(units: int, features: int, seed: int = 0) -> tuple[edgeq.FloatModel, np.ndarray]:
    x = RNG.normal(size=(32, features)).astype(np.float32) * RNG.uniform(0.1, 3.0, size=(32, 1)).astype(np.float32)
    return edgeq.load(dense_graph(units=units, features=features, seed=seed)), x


# ---------------------------------------------------------------------------------------------------------
# The plan


def test_blockwise_plan_round_trips_through_json_and_old_plans_still_load(tmp_path):
    model, x = _dense(16, 64)
    qm = _quantize(model, [x], "int4-block32")
    w = qm.plan.tensors["w"]
    assert (w.dtype, w.block_size, w.axis, len(w.scale), w.narrow_range) == ("int4", 32, 0, 16 * 2, True)
    assert set(w.zero_point) == {0} and "b" not in qm.plan.tensors  # a blockwise FC keeps a float bias
    qm.plan.save(tmp_path / "plan.json")
    plan = edgeq.QuantPlan.load(tmp_path / "plan.json")
    assert plan == qm.plan
    assert edgeq.quantize(model, plan=plan, progress=False).tflite == qm.tflite
    doc = json.loads(_quantize(model, [x], "int8").plan.to_json())
    for enc in doc["tensors"].values():
        del enc["block_size"]  # a plan written before block_size existed
    assert all(e.block_size == 0 for e in edgeq.QuantPlan.from_json(json.dumps(doc)).tensors.values())


def test_block_scales_are_fp16_and_bf16_values_and_never_underflow():
    """fp16 is how the file stores them and XNNPACK rounds them to bf16: scales on both grids are exact in
    every runtime. A block of zeros or of tiny weights gets fp16's smallest normal scale (LiteRT's XNNPACK
    delegate at HEAD refuses subnormal ones)."""
    w = RNG.normal(size=(4, 64)).astype(np.float32)
    w[1, :32] = 0.0
    w[2, 32:] = 1e-9
    tensors = [
        Tensor("x", (1, 64), "float32"),
        Tensor("w", (4, 64), "float32", data=w),
        Tensor("b", (4,), "float32", data=np.zeros(4, np.float32)),
        Tensor("y", (1, 4), "float32"),
    ]
    fc = Op(
        "FULLY_CONNECTED", [0, 1, 2], [3], options={"fusedActivationFunction": 0}, options_type="FullyConnectedOptions"
    )
    qm = _quantize(_one_op(tensors, fc), [RNG.normal(size=(8, 64)).astype(np.float32)], "int4-block32")
    scales = np.asarray(qm.plan.tensors["w"].scale)
    np.testing.assert_array_equal(scales.astype(np.float16).astype(np.float64), scales)
    np.testing.assert_array_equal(scales.astype(ml_dtypes.bfloat16).astype(np.float64), scales)
    tiny = float(np.finfo(np.float16).smallest_normal)
    assert scales[2] == scales[5] == tiny and scales.min() == tiny


def test_int4_falls_back_where_litert_has_no_int4_kernel_and_says_so():
    model, x = _dense(8, 40)  # 40 inputs: no whole blocks of 32
    qm = _quantize(model, [x], "int4-block32")
    w = qm.plan.tensors["w"]
    assert (w.dtype, w.block_size, len(w.scale)) == ("int4", 0, 8)
    assert any("40 inputs are not a multiple of the block size 32" in n for n in qm.plan.notes)

    tconv = [
        Tensor("x", (1, 4, 4, 2), "float32"),
        Tensor("shape", (4,), "int32", data=np.array([1, 8, 8, 3], np.int32)),
        Tensor("wt", (3, 3, 3, 2), "float32", data=RNG.normal(size=(3, 3, 3, 2)).astype(np.float32)),
        Tensor("bt", (3,), "float32", data=np.zeros(3, np.float32)),
        Tensor("up", (1, 8, 8, 3), "float32"),
    ]
    opts = {"padding": schema.Padding.SAME, "strideH": 2, "strideW": 2}
    up = _one_op(tconv, Op("TRANSPOSE_CONV", [1, 2, 0, 3], [4], options=opts, options_type="TransposeConvOptions"))
    qm = _quantize(up, [RNG.normal(size=(8, 4, 4, 2)).astype(np.float32)], "int4-channel")
    assert qm.plan.tensors["wt"].dtype == "int8"
    assert any(n.startswith("TRANSPOSE_CONV 'up'") and "stay int8" in n for n in qm.plan.notes)

    mm = [
        Tensor("a", (1, 4, 8), "float32"),
        Tensor("k", (1, 8, 6), "float32", data=RNG.normal(size=(1, 8, 6)).astype(np.float32)),
        Tensor("p", (1, 4, 6), "float32"),
    ]
    bmm = _one_op(mm, Op("BATCH_MATMUL", [0, 1], [2], options={}, options_type="BatchMatMulOptions"))
    qm = _quantize(bmm, [RNG.normal(size=(8, 4, 8)).astype(np.float32)], "int4-block32")
    assert qm.plan.tensors["k"].dtype == "int8"
    assert any(n.startswith("BATCH_MATMUL 'p'") and "constant operand stays int8" in n for n in qm.plan.notes)


# ---------------------------------------------------------------------------------------------------------
# The .tflite


@pytest.mark.parametrize("scheme", ["int4-channel", "int4-block32", "int4-block16"])
def test_every_int4_weight_decodes_to_the_plan_exactly(scheme):
    entry = zoo.get("keras_cnn_ops")  # conv, depthwise and a 416-input classifier (13 blocks of 32, 26 of 16)
    model = edgeq.load(entry.path(), name=entry.name)
    qm = _quantize(model, entry.calib(N_CALIB, 0), scheme)
    graph = read_tflite(qm.tflite)
    by_name = {t.name: t for t in graph.tensors}
    float_data = {t.name: t.data for t in model.graph.tensors if t.is_constant}
    int4 = {name: enc for name, enc in qm.plan.tensors.items() if enc.dtype == "int4"}
    kinds = {op.kind for op in model.graph.ops for t in op.inputs if t >= 0 and model.graph.tensors[t].name in int4}
    assert kinds == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    for name, enc in int4.items():
        t = by_name[name]
        assert t.dtype == "int4" and t.quant.block_size == enc.block_size and t.quant.axis == enc.axis
        np.testing.assert_array_equal(t.quant.scale, enc.scales())
        np.testing.assert_array_equal(t.quant.zero_point, 0)
        expected = quantize_array(
            float_data[name], enc.scales(), enc.zero_points(), enc.axis, "int4", narrow=True, block_size=enc.block_size
        )
        np.testing.assert_array_equal(t.data, expected)
        assert t.data.min() >= -7 and t.data.max() <= 7
    blockwise = [n for n, e in int4.items() if e.block_size]
    assert len(blockwise) == (scheme != "int4-channel")
    raw = schema.ModelT.InitFromPackedBuf(qm.tflite, 0).subgraphs[0].tensors
    for name in blockwise:  # the table ai-edge-quantizer writes: fp16 scales [out, in/B], no zero-point tensor
        q = next(t for t in raw if t.name.decode() == name).quantization
        assert q.detailsType == schema.QuantizationDetails.BlockwiseQuantization and q.details.zeroPoints == -1
        scales = raw[q.details.scales]
        out, inputs = by_name[name].shape
        assert scales.type == schema.TensorType.FLOAT16 and list(scales.shape) == [out, inputs // int4[name].block_size]
        fc = next(op for op in graph.ops if op.kind == "FULLY_CONNECTED")
        assert [graph.tensors[i].dtype for i in fc.inputs] == ["float32", "int4", "float32"] and fc.version == 1
        assert graph.ops[graph.ops.index(fc) - 1].kind == "DEQUANTIZE"  # its integer neighbours


def test_reads_ai_edge_quantizers_blockwise_file():
    """A file edgeq did not write: the reader follows the table to the peer's fp16 scale tensor."""
    from ai_edge_quantizer import quantizer, recipe

    peer = quantizer.Quantizer(dense_graph(units=8, features=64))
    peer.load_quantization_recipe(recipe.dynamic_wi4b32_afp32())
    data = bytes(peer.quantize().quantized_model)
    graph = read_tflite(data)
    w = next(t for t in graph.tensors if t.name == "w")
    scales = next(t for t in graph.tensors if t.name == "w_scales")
    assert (w.dtype, w.quant.block_size, scales.dtype, scales.shape) == ("int4", 32, "float16", (8, 2))
    np.testing.assert_array_equal(w.quant.scale, scales.data.reshape(-1).astype(np.float32))


# ---------------------------------------------------------------------------------------------------------
# What runs it


def _dynamic_int8(x: np.ndarray) -> np.ndarray:
    """x as LiteRT's hybrid kernels see it: quantized per row to asymmetric int8 on the fly
    (tensor_utils::AsymmetricQuantizeFloats; XNNPACK's qd8 conversion agrees, measured), dequantized."""
    out = np.empty(x.shape, np.float64)
    for i, row in enumerate(x):
        lo, hi = min(float(row.min()), 0.0), max(float(row.max()), 0.0)
        scale = np.float32((hi - lo) / 255)
        from_min, from_max = -128 - lo / scale, 127 - hi / scale
        zp = from_min if 128 + abs(lo / scale) < 127 + abs(hi / scale) else from_max
        zp = int(np.clip(np.rint(zp), -128, 127))
        q = np.clip(np.rint(row * np.float32(1 / scale)) + zp, -128, 127)
        out[i] = (q - zp) * np.float64(scale)
    return out


@pytest.mark.parametrize("scheme", BLOCK_SCHEMES)
def test_litert_default_kernels_compute_the_blockwise_weights(scheme, capsys):
    """LiteRT's default kernels (XNNPACK for blocks of 32k, the builtin hybrid kernel for 16) against numpy
    with the plan's dequantized weights. Tolerance: 1e-5 of the output's magnitude against numpy fed the
    input as the kernel quantizes it on the fly; against the float input, one half step of that per-row
    dynamic int8 quantization per input, |err| <= s/2 * sum|w| (measured at most ~0.2 of it)."""
    model, _ = _dense(64, 256, seed=3)
    x = RNG.normal(size=(64, 256)).astype(np.float32) * RNG.uniform(0.1, 3.0, size=(64, 1)).astype(np.float32)
    qm = _quantize(model, [x[:32]], scheme)
    graph = read_tflite(qm.tflite)
    w, b = (next(t for t in graph.tensors if t.name == n) for n in ("w", "b"))
    block = w.quant.block_size
    wd = (w.data.reshape(64, -1, block) * w.quant.scale.reshape(64, -1, 1).astype(np.float64)).reshape(64, 256)
    runtime = LiteRT(qm.tflite, threads=1)
    got = np.concatenate([runtime.run([row[None]])[0] for row in x]).astype(np.float64)
    exact = _dynamic_int8(x) @ wd.T + b.data
    ideal = x.astype(np.float64) @ wd.T + b.data
    step = np.array([(max(r.max(), 0) - min(r.min(), 0)) / 255 for r in x])[:, None]
    bound = step / 2 * np.abs(wd).sum(axis=1)[None, :]
    rel = np.max(np.abs(got - exact)) / np.max(np.abs(exact))
    share = np.max(np.abs(got - ideal) / bound)
    with capsys.disabled():
        print(
            f"\n{scheme}: |LiteRT - numpy(dynamic int8 input)| <= {rel:.2e} x max|y|; "
            f"|LiteRT - numpy(float input)| <= {share:.3f} x s/2*sum|w|"
        )
    assert rel <= 1e-5
    assert share <= 1.0
    # LiteRT's reference kernels do not compute it (they return the bias alone): why the default kernels.
    np.testing.assert_array_equal(LiteRT(qm.tflite, reference=True).run([x[:1]])[0][0], b.data)


# ---------------------------------------------------------------------------------------------------------
# Real models


@pytest.fixture(scope="module")
def effnet():
    entry = zoo.get("efficientnet_lite0")
    model = edgeq.load(entry.path(), name=entry.name)
    inputs = entry.eval(N_EVAL, 1)[0]
    reference = LiteRT(model.tflite)
    floats = np.concatenate([reference.run([x[None]])[0] for x in inputs])
    return model, entry.calib(N_CALIB, 0), inputs, floats


@pytest.fixture(scope="module")
def effnet_int4(effnet):
    """EfficientNet-Lite0 under int4-channel and int4-block32, with MSE scales and with max-abs ones."""
    model, calib, _, _ = effnet
    out = {}
    for scheme in ("int4-channel", "int4-block32"):
        out[scheme, "mse"] = _quantize(model, calib, scheme)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(planner, "mse_scales", functools.partial(mse_scales, ratios=(1.0,)))
            out[scheme, "max-abs"] = _quantize(model, calib, scheme)
    return out


@pytest.mark.parametrize("name", ["keras_cnn_ops", "keras_mobilenet_block", "efficientnet_lite0"])
def test_int4_channel_is_bit_exact_in_the_c_interpreter(name, effnet_int4):
    entry = zoo.get(name)
    if name == "efficientnet_lite0":
        qm = effnet_int4["int4-channel", "mse"]
    else:
        qm = _quantize(edgeq.load(entry.path(), name=name), entry.calib(N_CALIB, 0), "int4-channel")
    assert any(t.dtype == "int4" for t in qm.graph.tensors)
    evaluation = entry.eval(4, 1)
    result = edgeq.verify(qm.tflite, inputs=[[a[i : i + 1] for a in evaluation] for i in range(4)])
    assert result.bit_exact, result.summary()


def _weight_sqnr(graph: Graph, ratios: tuple[float, ...] | None, blocks: bool) -> float:
    signal = noise = 0.0
    for op in graph.ops:
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        pos, axis = RULES[op.kind].weights[0]
        groups = weight_groups(
            graph.tensors[op.inputs[pos]].data, axis, 32 if blocks and op.kind == "FULLY_CONNECTED" else 0
        )
        scales = mse_scales(groups, 7, 2.0**-24, **({"ratios": ratios} if ratios else {}))[:, None]
        signal += float(np.sum(groups**2))
        noise += float(np.sum((groups - scales * np.clip(np.rint(groups / scales), -7, 7)) ** 2))
    return 10 * np.log10(signal / noise)


def test_mse_scales_beat_max_abs_on_real_weights(effnet, capsys):
    graph = effnet[0].graph
    for blocks in (False, True):
        mse, max_abs = _weight_sqnr(graph, None, blocks), _weight_sqnr(graph, (1.0,), blocks)
        with capsys.disabled():
            print(
                f"\nEfficientNet-Lite0 INT4 weight SQNR ({'FC blocks of 32' if blocks else 'per channel'}): "
                f"MSE scales {mse:.2f} dB, max-abs {max_abs:.2f} dB"
            )
        assert mse > max_abs + 1.0


# Loose floor on output SQNR (dB) under what was measured on 48 eval photos (-s prints it, with top-1
# agreement): INT4 weights alone collapse this model (baselines.md: round-to-nearest per-channel INT4 gave
# top-1 agreement 0.035, -2.1 dB), better scales only soften it; better rounding (GPTQ) is the next lever.
MIN_OUTPUT_SQNR = {"int4-channel": -4.0, "int4-block32": -4.0}


@pytest.mark.parametrize("scheme", ["int4-channel", "int4-block32"])
def test_efficientnet_fidelity_and_mse_scales_win(scheme, effnet, effnet_int4, capsys):
    _, _, inputs, floats = effnet
    scores = {}
    for how in ("mse", "max-abs"):
        runtime = LiteRT(effnet_int4[scheme, how].tflite)
        got = np.concatenate([runtime.run([x[None]])[0] for x in inputs])
        sqnr = 10 * np.log10(np.sum(floats.astype(np.float64) ** 2) / np.sum((floats - got).astype(np.float64) ** 2))
        scores[how] = (float(np.mean(got.argmax(-1) == floats.argmax(-1))), float(sqnr))
    with capsys.disabled():
        print(
            f"\nEfficientNet-Lite0 {scheme} vs float on {len(inputs)} photos (top-1 agreement, output SQNR dB): "
            + ", ".join(f"{how} scales {top1:.3f} / {sqnr:.2f}" for how, (top1, sqnr) in scores.items())
        )
    assert scores["mse"][1] >= MIN_OUTPUT_SQNR[scheme]
    assert scores["mse"][1] > scores["max-abs"][1]
