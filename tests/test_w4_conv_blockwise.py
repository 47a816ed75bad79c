"""Weight-only INT4 convolutions (w4-blockN): CONV_2D weights per block of N input channels, DEPTHWISE_CONV_2D
per channel, stored INT4 in the .tflite and DEQUANTIZEd into the float convolution; the .mlpackage carries the
same integers and scales; GPTQ rounds them on the plan's block grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeq
from edgeq.export.coreml_program import dequantize
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.ir.tflite_reader import read_tflite
from edgeq.quant.schemes import fp16_ceil, qrange, quantize_array
from edgeq.runtime import LiteRT

SIZE = 10


def _model(seed: int = 0) -> bytes:
    """[1, 10, 10, 32] -> CONV_2D 3x3 32->64 (RELU) -> DEPTHWISE 3x3 (RELU6) -> CONV_2D 1x1 64->24 -> CONV_2D 1x1
    24->16 (24 inputs: not a multiple of 32). Per-channel spreads as batch-norm folding leaves them."""
    rng = np.random.default_rng(seed)
    tensors = [Tensor("input", (1, SIZE, SIZE, 32), "float32")]
    ops: list[Op] = []

    def add(name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        tensors.append(Tensor(name, shape, "float32", data=data))
        return len(tensors) - 1

    def weight(name: str, shape: tuple[int, ...], axis: int) -> int:
        spread = np.exp(rng.normal(size=shape[axis]) * 0.8)
        bshape = [1] * len(shape)
        bshape[axis] = -1
        w = rng.normal(size=shape) * 0.2 * spread.reshape(bshape)
        return add(name, shape, w.astype(np.float32))

    def conv(x: int, name: str, w_shape: tuple[int, ...], act: int, depthwise: bool = False) -> int:
        w = weight(f"{name}/w", w_shape, 3 if depthwise else 0)
        n = w_shape[3] if depthwise else w_shape[0]
        b = add(f"{name}/b", (n,), (rng.normal(size=n) * 0.1).astype(np.float32))
        y = add(name, (1, SIZE, SIZE, n))
        options = {"padding": 0, "strideW": 1, "strideH": 1, "fusedActivationFunction": act,
                   "dilationWFactor": 1, "dilationHFactor": 1}
        if depthwise:
            options["depthMultiplier"] = 1
        kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
        options_type = "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions"
        ops.append(Op(kind, [x, w, b], [y], options=options, options_type=options_type))
        return y

    y = conv(0, "conv3x3", (64, 3, 3, 32), 1)
    y = conv(y, "dw", (1, 3, 3, 64), 3, depthwise=True)
    y = conv(y, "project", (24, 1, 1, 64), 0)
    y = conv(y, "tail", (16, 1, 1, 24), 0)
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[y]))


def _inputs(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 1, SIZE, SIZE, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def quantized() -> edgeq.QuantizedModel:
    model = edgeq.load(_model())
    return edgeq.quantize(model, edgeq.calibration.arrays(_inputs(4)[:, 0]), scheme="w4-block32", progress=False)


def _dequantized_float_model(qm: edgeq.QuantizedModel) -> bytes:
    """The float model with every planned weight replaced by its plan integers times scales."""
    graph = read_tflite(_model())
    for t in graph.tensors:
        enc = qm.plan.tensors.get(t.name)
        if enc is not None and t.data is not None:
            q = quantize_array(t.data, enc.scales(), enc.zero_points(), enc.axis, enc.dtype, narrow=True,
                               block_size=enc.block_size)
            t.data = dequantize(q, enc, t.shape)
    return write_tflite(graph)


def test_plan_blocks_conv_inputs_and_keeps_depthwise_per_channel(quantized: edgeq.QuantizedModel) -> None:
    enc = quantized.plan.tensors
    assert enc["conv3x3/w"].block_size == 32 and len(enc["conv3x3/w"].scale) == 64 * 3 * 3 * 32 // 32
    assert enc["project/w"].block_size == 32 and len(enc["project/w"].scale) == 24 * 2
    assert enc["dw/w"].block_size == 0 and enc["dw/w"].axis == 3 and len(enc["dw/w"].scale) == 64
    assert enc["tail/w"].block_size == 0 and len(enc["tail/w"].scale) == 16  # 24 inputs: per channel
    assert any("'tail'" in n and "per-channel INT4 instead" in n for n in quantized.plan.notes)
    assert all(e.dtype == "int4" and float(np.float16(s)) == s for e in enc.values() for s in e.scale)
    assert "input" not in enc and "conv3x3" not in enc  # activations stay float
    # MSE scales: at most (fp16) max-abs's weight error on every block.
    w = read_tflite(_model()).tensors[1].data.reshape(-1, 32).astype(np.float64)
    s = np.asarray(enc["conv3x3/w"].scale)[:, None]
    s_max = fp16_ceil(np.max(np.abs(w), axis=1, keepdims=True) / 7)  # max-abs, stored as fp16
    err = np.sum((w - s * np.clip(np.rint(w / s), -7, 7)) ** 2, axis=1)
    assert np.all(err <= np.sum((w - s_max * np.rint(w / s_max)) ** 2, axis=1) * (1 + 1e-9))


def test_tflite_form_and_litert_runs_it(quantized: edgeq.QuantizedModel) -> None:
    """INT4 [blocks, 32] per row -> DEQUANTIZE -> RESHAPE -> float CONV_2D; LiteRT's default and REF kernels
    compute the float model carrying the dequantized weights (within float rounding)."""
    g = read_tflite(quantized.tflite)
    by_name = {t.name: t for t in g.tensors}
    w = by_name["conv3x3/w"]
    assert w.dtype == "int4" and w.shape == (64 * 3 * 3, 32) and w.quant.axis == 0 and w.quant.scale.size == 64 * 9
    assert by_name["dw/w"].dtype == "int4" and by_name["dw/w"].shape == (1, 3, 3, 64)
    kinds = [op.kind for op in g.ops]
    assert kinds.count("DEQUANTIZE") == 4 and kinds.count("RESHAPE") == 2
    assert all(g.tensors[t].dtype == "float32" for op in g.ops if op.kind.endswith("CONV_2D") for t in op.inputs)
    reference = _dequantized_float_model(quantized)
    x = _inputs(3, seed=7)
    for ref in (False, True):
        ours, theirs = LiteRT(quantized.tflite, reference=ref, threads=1), LiteRT(reference, reference=ref, threads=1)
        for sample in x:
            y, z = ours.run([sample])[0], theirs.run([sample])[0]
            assert np.max(np.abs(y - z)) <= 1e-5 * np.max(np.abs(z))
    # INT4 packs two weights a byte: the bytes of the .tflite hold 4 bits a weight plus the scales.
    weights = sum(t.data.size for t in read_tflite(_model()).tensors if t.data is not None and t.data.ndim == 4)
    assert len(quantized.tflite) < len(_model()) - weights * 3


def test_coreml_w4_carries_the_tflite_integers(quantized: edgeq.QuantizedModel, tmp_path: Path) -> None:
    """Acceptance 4 of the Core ML issue for blockwise convolutions: the package's constexpr integers and
    scales are the .tflite's, and the program computes the float model with those parameters."""
    from edgeq.verify.mil_eval import MILProgram

    path = quantized.export_coreml(tmp_path / "m.mlpackage", mode="w4", weight_threshold=0)
    prog = MILProgram.load(path)
    blockwise = [o for o in prog._ops if o.type == "constexpr_blockwise_shift_scale"]
    assert len(blockwise) == 4
    shapes = sorted(tuple(prog.constexpr_params(o.name)["scale"].shape) for o in blockwise)
    assert (24, 2, 1, 1) in shapes and (64, 1, 3, 3) in shapes and (64, 1, 1, 1) in shapes and (16, 1, 1, 1) in shapes
    r = edgeq.verify_coreml(path, quantized, data=edgeq.calibration.arrays(_inputs(2, seed=3)[:, 0]), samples=2)
    assert r.weights_checked == 4 and r.weights_exact
    assert r.outputs[0].relative_error_vs_stored < 1e-3  # fp16 compute


def test_gptq_rounds_blockwise_conv_on_the_plan_grid() -> None:
    model = edgeq.load(_model())
    calib = edgeq.calibration.arrays(_inputs(8)[:, 0])
    rtn = edgeq.quantize(model, calib, scheme="w4-block32", progress=False)
    ours = edgeq.quantize(model, calib, scheme="w4-block32", algorithms=["gptq"], progress=False)
    assert {n: e.scale for n, e in ours.plan.tensors.items()} == {n: e.scale for n, e in rtn.plan.tensors.items()}
    _, qmax = qrange("int4")
    original = {t.name: t.data for t in read_tflite(_model()).tensors}
    changed = 0
    for name in ("conv3x3/w", "project/w"):
        enc, w = ours.plan.tensors[name], ours.plan.weights[name]

        def grid(a: np.ndarray, enc=enc) -> np.ndarray:
            return quantize_array(a, enc.scales(), enc.zero_points(), 0, "int4", narrow=True, block_size=32)

        q = grid(w)
        assert np.array_equal(dequantize(q, enc, w.shape), w)  # stored on the grid: scale * q exactly
        assert np.max(np.abs(q)) <= qmax
        changed += int(np.count_nonzero(q != grid(original[name])))
    assert changed > 0
    x = _inputs(16, seed=5)
    f = LiteRT(_model(), threads=1)

    def sqnr(qm: edgeq.QuantizedModel) -> float:
        run = LiteRT(qm.tflite, threads=1)
        ref = np.concatenate([f.run([s])[0] for s in x])
        got = np.concatenate([run.run([s])[0] for s in x])
        return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - got) ** 2)))

    assert sqnr(ours) > sqnr(rtn) + 0.5


def test_gptq_grid_helper_matches_quantize_array() -> None:
    """Encoding.per_element's per-block scales (GPTQ's grid) line up with quantize_array's blocks on a 4-D weight."""
    from edgeq.quant.plan import Encoding

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 64))
    scales = np.exp(rng.normal(size=4 * 3 * 3 * 2)).astype(np.float16).astype(np.float64)
    enc = Encoding("int4", [float(s) for s in scales], [0] * scales.size, block_size=32, narrow_range=True)
    per = enc.per_element(enc.scales(), w.shape)
    assert per.shape == w.shape
    q = quantize_array(w, enc.scales(), enc.zero_points(), 0, "int4", narrow=True, block_size=32)
    assert np.array_equal(np.clip(np.round(w / per), -7, 7), q)


@pytest.mark.parametrize(("shape", "axis"), [((9 * 2, 32), 0), ((1, 3, 3, 7), 3), ((5, 3), 0)])
def test_native_dequantize_int4_per_channel_is_bit_exact_with_ref(shape: tuple[int, ...], axis: int) -> None:
    """The C interpreter's INT4 DEQUANTIZE (packed, low nibble first; odd element counts too) against LiteRT
    BUILTIN_REF, per channel as the blockwise and depthwise weights use it."""
    from edgeq.verify.native import NativeModel

    rng = np.random.default_rng(sum(shape))
    q = rng.integers(-8, 8, size=shape).astype(np.int8)
    scale = np.exp(rng.normal(size=shape[axis])).astype(np.float16).astype(np.float32)
    quant = Quantization(scale=scale, zero_point=np.zeros(scale.size, dtype=np.int64), axis=axis)
    tensors = [Tensor("w", shape, "int4", data=q, quant=quant), Tensor("y", shape, "float32")]
    model = write_tflite(Graph(tensors=tensors, ops=[Op("DEQUANTIZE", [0], [1])], inputs=[], outputs=[1]))
    ours = NativeModel(model).run([])[0]
    theirs = LiteRT(model, reference=True, threads=1).run([])[0]
    assert ours.dtype == np.float32 and np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
    assert np.array_equal(ours, Quantization(scale, quant.zero_point, axis).dequantize(q).astype(np.float32))
