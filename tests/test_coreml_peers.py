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


def test_evaluate_reports_per_output_and_the_dominant_sample(tmp_path: Path) -> None:
    """Pooled SQNR is kept as the metric; the row also says per output and which sample holds the energy."""
    from edgeq.verify.mil_eval import MILProgram

    fp16 = _fp16_package(tmp_path / "fp16.mlpackage")
    program = MILProgram.load(fp16)
    rng = np.random.default_rng(2)
    samples = [[(a * rng.uniform(-1, 1, (1, 2, 6, 6))).astype(np.float32)] for a in (1.0, 100.0, 1.0)]
    got = [program.run({"x": s[0]})["out"] for s in samples]
    offsets = [1e-2 * np.ones_like(g) for g in got]  # the same absolute error on every sample
    ref = coreml_peers._Reference(["x"], ["out"], samples, [[g + e] for g, e in zip(got, offsets, strict=True)])
    row = coreml_peers.evaluate(fp16, ref, "fp32", classifier=False)
    (name, pooled, median), = row["per_output"]
    assert name == "out" and pooled == row["sqnr_db"] == row["min_output_sqnr_db"] and median < pooled
    index, signal, noise = row["top_sample"]
    assert index == 1 and signal > 0.99 and noise == pytest.approx(1 / 3, rel=1e-3)
