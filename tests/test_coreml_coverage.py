"""coremltools' form from edgeq's plan (quantize(..., weight_threshold=2048, block_fallback="float",
conv_blocks="window")):
the weights coremltools' linear_quantize_weights leaves fp16 (at most 2048 values; convolutions whose input
channels the block does not divide, depthwise ones included) stay float in the plan, so the .tflite and the
.mlpackage keep them float alike, and the package compresses exactly the weights coremltools' would, a
convolution's block spanning the kernel window as theirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeq
from edgeq.errors import PlanError
from edgeq.ir.tflite_reader import read_tflite
from edgeq.runtime import LiteRT
from tests.test_w4_conv_blockwise import _inputs, _model

# The model (tests/test_w4_conv_blockwise.py): conv3x3 64x3x3x32 (18,432 values), dw 1x3x3x64 (576),
# project 24x1x1x64 (1,536), tail 16x1x1x24 (384: 24 inputs, not a multiple of 32).
CT = {"weight_threshold": 2048, "block_fallback": "float", "conv_blocks": "window"}


def _quantize(**options: object) -> edgeq.QuantizedModel:
    model = edgeq.load(_model())
    calib = edgeq.calibration.arrays(_inputs(4)[:, 0])
    return edgeq.quantize(model, calib, scheme="w4-block32", progress=False, **options)


def _float_reasons(qm: edgeq.QuantizedModel) -> dict[str, str]:
    graph = qm.float_model.graph
    return {graph.tensors[graph.ops[f.index].outputs[0]].name: f.reason for f in qm.plan.float_ops}


def test_block_fallback_float_keeps_unblockable_convolutions_float() -> None:
    qm = _quantize(block_fallback="float")
    assert {n: e.block_size for n, e in qm.plan.tensors.items()} == {"conv3x3/w": 32, "project/w": 32}
    reasons = _float_reasons(qm)
    assert sorted(reasons) == ["dw", "tail"]
    assert reasons["dw"].startswith("1 input channel(s) a filter") and reasons["tail"].startswith("24 input")
    assert any("2 weight(s) kept float, CONV_2D 1, DEPTHWISE_CONV_2D 1" in n for n in qm.plan.notes)
    # The default falls back to INT4 per channel for both.
    default = _quantize()
    assert default.plan.tensors["dw/w"].block_size == 0 and default.plan.tensors["tail/w"].block_size == 0


def test_ct_coverage_tflite_keeps_those_weights_float() -> None:
    qm = _quantize(**CT)
    assert list(qm.plan.tensors) == ["conv3x3/w"]  # project (1,536 values) is under the threshold
    assert sorted(_float_reasons(qm)) == ["dw", "project", "tail"]
    original = {t.name: t.data for t in read_tflite(_model()).tensors if t.data is not None}
    g = read_tflite(qm.tflite)
    floats = {t.name: t.data for t in g.tensors if t.data is not None and t.dtype == "float32" and t.data.ndim == 4}
    for name in ("dw/w", "project/w", "tail/w"):
        assert np.array_equal(floats[name], original[name])  # bit for bit the float model's
    assert [t.dtype for t in g.tensors if t.name.startswith("conv3x3/w")].count("int4") == 1
    # LiteRT runs it; only conv3x3 is quantized, so it is closer to float than the default plan.
    x = _inputs(4, seed=5)
    want = [LiteRT(_model(), threads=1).run([s])[0] for s in x]

    def sqnr(model: bytes) -> float:
        got = [LiteRT(model, threads=1).run([s])[0] for s in x]
        err = sum(float(np.sum((w - o) ** 2)) for w, o in zip(want, got, strict=True))
        return 10 * np.log10(sum(float(np.sum(w**2)) for w in want) / err)

    ours, default = sqnr(qm.tflite), sqnr(_quantize().tflite)
    assert ours > default + 3.0 and ours > 15.0  # measured 17.4 vs 12.5 dB


def test_ct_coverage_package_compresses_what_coremltools_does(tmp_path: Path) -> None:
    """The w4 package from the plan and coremltools' int4 per-block-32 weights of the same fp16 program
    compress the same weights, and verify_coreml checks the plan's integers in it."""
    pytest.importorskip("coremltools")
    import coremltools.optimize.coreml as cto

    from edgeq.export.coreml_env import ct
    from edgeq.verify.mil_eval import MILProgram

    qm = _quantize(**CT)
    ours = qm.export_coreml(tmp_path / "e.mlpackage", mode="w4")
    fp16 = qm.export_coreml(tmp_path / "f.mlpackage", mode="fp16", minimum_os="iOS18")
    config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32)
    theirs = tmp_path / "c.mlpackage"
    cto.linear_quantize_weights(
        ct.models.MLModel(str(fp16), skip_model_load=True), cto.OptimizationConfig(global_config=config)
    ).save(str(theirs))

    def compressed(path: Path) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        prog = MILProgram.load(path)
        params = [prog.constexpr_params(o) for o in prog.constexpr_ops]
        return sorted((p["data"].shape, p["scale"].shape) for p in params)

    assert compressed(ours) == compressed(theirs) == [((64, 32, 3, 3), (64, 1, 1, 1))]
    r = edgeq.verify_coreml(ours, qm, data=edgeq.calibration.arrays(_inputs(2, seed=3)[:, 0]), samples=2)
    assert r.weights_checked == 1 and r.weights_exact
    assert r.outputs[0].relative_error_vs_stored < 1e-3


def test_coverage_options_are_checked() -> None:
    with pytest.raises(PlanError, match="block_fallback='per_row'"):
        _quantize(block_fallback="per_row")
    with pytest.raises(PlanError, match="w4-blockN"):
        edgeq.quantize(edgeq.load(_model()), edgeq.calibration.arrays(_inputs(2)[:, 0]), scheme="int8",
                       weight_threshold=2048, progress=False)  # fmt: skip


def test_window_blocks_share_one_scale_over_the_kernel() -> None:
    """conv_blocks="window": the plan keeps its per-tap block layout, every tap of a block with one MSE scale;
    the .tflite carries them so, the package once (scale [64, 1, 1, 1] above)."""
    tap, window = _quantize(), _quantize(conv_blocks="window")
    per_tap = np.asarray(tap.plan.tensors["conv3x3/w"].scale).reshape(64, 9, 1)
    shared = np.asarray(window.plan.tensors["conv3x3/w"].scale).reshape(64, 9, 1)
    assert np.all(shared == shared[:, :1]) and not np.all(per_tap == per_tap[:, :1])
    assert np.array_equal(window.plan.tensors["project/w"].scale, tap.plan.tensors["project/w"].scale)  # 1x1
    w = read_tflite(_model()).tensors[1].data.astype(np.float64)
    amax = np.abs(w).reshape(64, -1).max(axis=1) / 7
    assert np.all(shared[:, 0, 0] <= amax * 1.001) and np.all(shared[:, 0, 0] >= amax * 0.5)  # MSE-clipped


def test_cli_coremltools_form(tmp_path: Path) -> None:
    """`edgeq convert --scheme w4-block32 --coremltools-form --targets tflite,coreml`: one plan in that form, a
    w4 package (the default mode for every INT4 scheme) beside the .tflite."""
    import json
    import subprocess
    import sys

    model, calib = tmp_path / "m.tflite", tmp_path / "calib.npy"
    model.write_bytes(_model())
    np.save(calib, _inputs(4)[:, 0])
    run = subprocess.run(
        [sys.executable, "-m", "edgeq.cli", "convert", str(model), "--calib", str(calib), "--scheme", "w4-block32",
         "--coremltools-form", "--targets", "tflite,coreml", "--compare", "0", "-o", str(tmp_path / "dist"),
         "--json", "--quiet"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    artifacts = json.loads(run.stdout)["artifacts"]
    plan = edgeq.QuantPlan.load(artifacts["plan"])
    assert list(plan.tensors) == ["conv3x3/w"] and len(plan.float_ops) == 3
    assert Path(artifacts["coreml"]).name.endswith(".w4.mlpackage")
