"""Mixed precision by pattern: overrides change the weights of the ops they match (int8 / INT4 / float), the
file carries it, fidelity improves, the artifact stays bit-exact, and mistakes are PlanErrors.

Run with -s to see the measured SQNRs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgeq
from edgeq.cli import main
from edgeq.errors import PlanError
from edgeq.ir.tflite_reader import read_tflite
from tests.small_convnet import LAYERS, images, small_convnet

CALIB, EVAL = images(48, 0), images(64, 1)


@pytest.fixture(scope="module")
def model() -> edgeq.FloatModel:
    return edgeq.load(small_convnet())


def _quantize(model: edgeq.FloatModel, scheme: str, overrides=None) -> edgeq.QuantizedModel:
    return edgeq.quantize(model, edgeq.calibration.arrays(CALIB), scheme=scheme, progress=False, overrides=overrides)


def _sqnr(model: edgeq.FloatModel, qm: edgeq.QuantizedModel) -> float:
    return edgeq.compare(model, qm, edgeq.calibration.arrays(EVAL), layers=0).sqnr_db


def _file_dtype(qm: edgeq.QuantizedModel, name: str) -> str:
    return next(t.dtype for t in read_tflite(qm.tflite).tensors if t.name == name)


@pytest.fixture(scope="module")
def int4(model) -> edgeq.QuantizedModel:
    return _quantize(model, "int4-channel")


def test_int8_override_puts_int8_weights_in_the_file_and_improves_sqnr(model, int4, tmp_path):
    qm = _quantize(model, "int4-channel", {"head/*": "int8", "block/*": "int8"})
    for layer in ("head/fc", "block/dw", "block/project"):
        assert qm.plan.tensors[f"{layer}/w"].dtype == "int8"
        assert _file_dtype(qm, f"{layer}/w") == "int8"
    assert qm.plan.tensors["stem/conv/w"].dtype == "int4" and _file_dtype(qm, "stem/conv/w") == "int4"
    assert int4.plan.tensors["head/fc/w"].dtype == "int4"
    # Bias scales follow the int8 weight scales (in_scale x w_scale).
    enc, bias = qm.plan.tensors["head/fc/w"], qm.plan.tensors["head/fc/b"]
    in_scale = qm.plan.tensors["pool/mean"].scale[0]
    np.testing.assert_allclose(bias.scale, np.float32(in_scale) * enc.scales(), rtol=1e-6)
    assert any("override 'head/*' -> int8: 1 op(s)" in n for n in qm.plan.notes)
    before, after = _sqnr(model, int4), _sqnr(model, qm)
    print(f"\nint4-channel {before:.2f} dB; head and block int8 {after:.2f} dB")
    assert after > before + 6.0
    path = tmp_path / "mixed.tflite"
    qm.save(path)
    result = edgeq.verify(path, inputs=[[x[None]] for x in EVAL[:4]])
    assert result.bit_exact and result.ops == len(qm.graph.ops)


def test_int4_override_under_int8_and_the_first_matching_pattern_wins(model):
    qm = _quantize(model, "int8", {"head/*": "int8", "*": "int4-channel"})
    dtypes = {layer: qm.plan.tensors[f"{layer}/w"].dtype for layer in LAYERS}
    assert dtypes == {"stem/conv": "int4", "block/dw": "int4", "block/project": "int4", "head/fc": "int8"}
    int8 = _quantize(model, "int8")
    assert _sqnr(model, qm) < _sqnr(model, int8)


def test_float_override_keeps_the_op_float_between_dequantize_and_quantize():
    model = edgeq.load(small_convnet(broken=True))  # a weight outlier ruins block/project at 4 bits
    int4 = _quantize(model, "int4-channel")
    qm = _quantize(model, "int4-channel", {"block/project": "float"})
    assert [(f.kind, f.reason) for f in qm.plan.float_ops] == [("CONV_2D", "kept float by override 'block/project'")]
    assert "block/project/w" not in qm.plan.tensors and "block/project/b" not in qm.plan.tensors
    kinds = [op.kind for op in qm.graph.ops]
    assert kinds == ["QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "CONV_2D", "QUANTIZE", "MEAN",
                     "FULLY_CONNECTED", "DEQUANTIZE"]
    project = [op for op in qm.graph.ops if op.kind == "CONV_2D"][1]
    assert qm.graph.tensors[project.inputs[1]].dtype == "float32"
    before, after = _sqnr(model, int4), _sqnr(model, qm)
    print(f"\nblock/project with an outlier: int4-channel {before:.2f} dB, block/project float {after:.2f} dB")
    assert after > before + 10.0


def test_mistakes_are_plan_errors(model):
    with pytest.raises(PlanError, match=r"'attention\*' matches none .* e.g. 'stem/conv', 'block/dw'"):
        _quantize(model, "int4-channel", {"attention*": "int8"})
    with pytest.raises(PlanError, match="'w4-block32' is not a weight scheme for overrides; choose float, int8"):
        _quantize(model, "int8", {"head/*": "w4-block32"})
    with pytest.raises(PlanError, match="int16x8 promotes int8 activations: scheme int16x8 has none"):
        _quantize(model, "int16x8", {"head/*": "int16x8"})
    with pytest.raises(PlanError, match="INT4 weight kernels for int8 activations only"):
        _quantize(model, "int16x8", {"head/*": "int4-channel"})
    with pytest.raises(PlanError, match="only matches ops an earlier pattern already decided"):
        _quantize(model, "int4-channel", {"head/*": "int8", "head/fc": "float"})
    with pytest.raises(PlanError, match="ops with constant weights"):
        _quantize(model, "int4-channel", {"pool/*": "int8"})  # MEAN has no weights: only float applies
    plan = _quantize(model, "int8").plan
    with pytest.raises(PlanError, match="overrides, budgets and coverage options apply when planning"):
        edgeq.quantize(model, plan=plan, overrides={"head/*": "int8"}, progress=False)


def test_cli_override_is_repeatable(tmp_path, capsys):
    path, calib = tmp_path / "net.tflite", tmp_path / "calib.npy"
    path.write_bytes(small_convnet())
    np.save(calib, CALIB)
    argv = ["convert", str(path), "--calib", str(calib), "--scheme", "int4-channel", "-o", str(tmp_path / "out"),
            "--quiet", "--compare", "0"]
    assert main([*argv, "--override", "head/*=int8", "--override", "block/dw=float", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    plan = edgeq.QuantPlan.load(summary["artifacts"]["plan"])
    assert plan.tensors["head/fc/w"].dtype == "int8" and plan.tensors["block/project/w"].dtype == "int4"
    assert [f.index for f in plan.float_ops] == [1]  # block/dw
    assert main([*argv, "--override", "nothing=int8"]) == 2
    assert "'nothing' matches none" in capsys.readouterr().err
