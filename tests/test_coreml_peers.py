"""bench.coreml_peers: coremltools' activation calibration runs on the host with edgeq's evaluator standing in
for Core ML, and the all-sample-ranges replay changes only how ranges accumulate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("coremltools")

from bench import coreml_peers


def _fp16_package(path: Path) -> Path:
    """A tiny float ML program (conv, relu, conv) saved for iOS17, as edgeq's fp16 packages are."""
    from edgeq.export.coreml_env import ct, mb

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 2, 3, 3)).astype(np.float16)
    w2 = rng.standard_normal((4, 8, 1, 1)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 2, 6, 6))], opset_version=ct.target.iOS17)
    def prog(x):  # type: ignore[no-untyped-def]
        x = mb.cast(x=x, dtype="fp16")
        y = mb.relu(x=mb.conv(x=x, weight=w1, pad_type="same"))
        return mb.cast(x=mb.conv(x=y, weight=w2), dtype="fp32", name="out")

    with coreml_peers._quiet():
        model = ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
            compute_precision=ct.precision.FLOAT32,
            skip_model_load=True,
        )
        model.save(str(path))
    return path


def _input_scale(package: Path) -> float:
    """The scale of the program's first quantize op (the one on its input)."""
    from coremltools.proto import Model_pb2

    from edgeq.verify.mil_eval import MILProgram

    spec = Model_pb2.Model()
    spec.ParseFromString((package / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    quantize = [op for op in block.operations if op.type == "quantize"]
    assert quantize, "linear_quantize_activations inserted no quantize op"
    values = MILProgram.load(package).run({"x": np.zeros((1, 2, 6, 6), np.float32)}, keep=True)
    return float(values[quantize[0].inputs["scale"].arguments[0].name])


def test_calibration_on_host_and_replay(tmp_path: Path) -> None:
    from coremltools.optimize.coreml.experimental import _model_debugger as md

    original = md.ModelDebugger.__dict__["predict_intermediate_outputs"]
    fp16 = _fp16_package(tmp_path / "fp16.mlpackage")
    rng = np.random.default_rng(1)
    amplitudes = [8.0, 1.0, 0.5]  # the widest range first: keeping only the last sample's range loses it
    samples = [{"x": (a * rng.uniform(-1, 1, (1, 2, 6, 6))).astype(np.float32)} for a in amplitudes]
    calibration = coreml_peers._Calibration()
    last = coreml_peers.ct_w8a8(fp16, tmp_path / "ct.mlpackage", samples, calibration)
    assert len(calibration.calls) == len(samples)  # one host evaluation per calibration sample
    every = coreml_peers.ct_w8a8(fp16, tmp_path / "all.mlpackage", samples, calibration, replay=True)
    assert md.ModelDebugger.__dict__["predict_intermediate_outputs"] is original  # patches undone
    widest = max(float(np.abs(s["x"]).max()) for s in samples)
    assert _input_scale(every) == pytest.approx(widest / 127, rel=1e-2)
    assert _input_scale(last) == pytest.approx(float(np.abs(samples[-1]["x"]).max()) / 127, rel=1e-2)
