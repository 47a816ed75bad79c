"""Target-aware conversion (edgeq.targets.adapt, quantize(targets=...), convert --targets): for Edge TPU, NNAPI at
API 27, 29 and 30 and the legacy Hexagon delegate, the artifact breaks none of the rules a plan can satisfy
(the target's plan constraints) and stays bit-exact against LiteRT BUILTIN_REF in the C interpreter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgeq
from edgeq.cli import main
from edgeq.errors import PlanError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.tflite_reader import read_tflite
from edgeq.targets.adapt import check_artifact
from tests.small_convnet import images, small_convnet

TARGETS = ("edgetpu", "nnapi:27", "nnapi:29", "nnapi:30", "hexagon", "hexagon:legacy")
CALIB = images(32, 1)


def _quantize(model: edgeq.FloatModel, **kw) -> edgeq.QuantizedModel:
    return edgeq.quantize(model, edgeq.calibration.arrays(CALIB), progress=False, **kw)


@pytest.fixture(scope="module")
def model() -> edgeq.FloatModel:
    return edgeq.load(small_convnet(), name="small_convnet")


@pytest.fixture(scope="module")
def plain(model) -> edgeq.QuantizedModel:
    return _quantize(model)


def _weights(tflite: bytes) -> dict[str, tuple[str, int, list[int]]]:
    """Weight tensor name -> (dtype, number of scales, zero points)."""
    g = read_tflite(tflite)
    return {t.name: (t.dtype, t.quant.scale.size, [int(z) for z in t.quant.zero_point]) for t in g.tensors
            if t.is_constant and t.quant is not None and t.name.endswith("/w")}


@pytest.mark.parametrize("spec", TARGETS)
def test_artifact_satisfies_its_profile_and_is_bit_exact(model, spec):
    qm = _quantize(model, targets=[spec])
    checked = check_artifact(qm.tflite, spec)
    assert checked.avoidable == [], [r.text for _, _, r in checked.avoidable]
    result = edgeq.verify(qm.tflite, samples=4)
    assert result.passed and result.bit_exact and result.values_compared > 0, result.summary()


def test_the_unadapted_model_breaks_what_conversion_fixes(plain):
    """The same int8 model without targets: every conv/FC op breaks NNAPI 27's uint8 and per-tensor rules, the
    legacy Hexagon delegate its per-tensor FULLY_CONNECTED and 8-bit input rules; the adapted artifacts (above)
    break none."""
    rules = {r.rule for _, _, r in check_artifact(plain.tflite, "nnapi:27").avoidable}
    assert rules == {"nnapi.uint8_conv_before_29", "nnapi.per_channel_before_29"}
    assert {r.rule for _, _, r in check_artifact(plain.tflite, "hexagon:legacy").avoidable} == {
        "hexagon.legacy_fc_per_tensor", "hexagon.legacy_quantized"}  # the latter: QUANTIZE's float input
    assert len(check_artifact(plain.tflite, "nnapi:27").avoidable) == 4 + 3  # uint8: 4 conv/FC ops, per-tensor: 3


def test_what_each_target_changes(model, plain):
    nnapi27 = _quantize(model, targets=["nnapi:27"])
    g = read_tflite(nnapi27.tflite)
    activations = [t for t in g.tensors if not t.is_constant]
    assert {t.dtype for t in activations} == {"uint8"}  # uint8 I/O too: QUANTIZE needs API 29
    assert all(w == ("uint8", 1, [128]) for w in _weights(nnapi27.tflite).values())
    assert any("rule nnapi.uint8_conv_before_29" in n for n in nnapi27.plan.notes)

    hexagon = _weights(_quantize(model, targets=["hexagon:legacy"]).tflite)
    assert hexagon["head/fc/w"] == ("int8", 1, [0])
    assert hexagon["stem/conv/w"][1] == 8  # convolutions stay per-channel on the legacy delegate

    edgetpu = _quantize(model, targets=["edgetpu"])
    g = read_tflite(edgetpu.tflite)
    assert [g.tensors[t].dtype for t in g.inputs + g.outputs] == ["int8", "int8"]
    assert {op.kind for op in g.ops}.isdisjoint({"QUANTIZE", "DEQUANTIZE"})
    # NNAPI 29 and 30 take the int8 per-channel model as it is: the same bytes.
    for spec in ("nnapi:29", "nnapi:30"):
        assert _quantize(model, targets=[spec]).tflite == plain.tflite


def test_uint8_is_the_int8_per_tensor_model_plus_128(model):
    """The legacy uint8 encoding is int8 + 128 throughout: from the same ranges, the uint8 model's outputs in
    the C interpreter are the int8 per-tensor model's plus 128, bit for bit. Edge TPU asked for uint8 I/O gets
    the same artifact as NNAPI 27."""
    from edgeq.api import _render_graph
    from edgeq.quant.planner import PlanOptions, build_plan
    from edgeq.quant.schemes import SCHEMES
    from edgeq.targets.adapt import WEIGHT_OPS
    from edgeq.verify.native import NativeModel

    u8 = _quantize(model, targets=["nnapi:27"])
    assert _quantize(model, targets=["edgetpu"], io="uint8").tflite == u8.tflite
    index = {t.name: i for i, t in enumerate(model.graph.tensors)}
    ranges = {index[name]: r for name, r in u8.plan.ranges.items()}
    models = []
    for uint8 in (False, True):
        opts = PlanOptions(SCHEMES["int8"], "int8", per_tensor_weights=WEIGHT_OPS, uint8=uint8)
        models.append(NativeModel(_render_graph(model.graph, build_plan(model.graph, ranges, opts, ""), {})[1]))
    s8, n8 = models
    x = np.random.default_rng(0).integers(-128, 128, size=(8, 1, 12, 12, 3), dtype=np.int8)
    for sample in x:
        want = s8.run([sample])[0].astype(np.int16) + 128
        got = n8.run([(sample.astype(np.int16) + 128).astype(np.uint8)])[0]
        assert got.dtype == np.uint8 and np.array_equal(got, want)


def test_static_shapes_are_pinned_for_edgetpu():
    g = read_tflite(small_convnet())
    g.tensors[g.inputs[0]].shape_signature = (-1, 12, 12, 3)
    model = edgeq.load(write_tflite(g), name="dynamic_batch")
    before = _quantize(model)
    assert "edgetpu.static_shapes" in {r.rule for _, _, r in check_artifact(before.tflite, "edgetpu").avoidable}
    after = _quantize(model, targets=["edgetpu"])
    assert check_artifact(after.tflite, "edgetpu").avoidable == []
    assert any(n.startswith("static shapes:") for n in after.plan.notes)
    assert edgeq.verify(after.tflite, samples=2).passed


def test_constraints_no_plan_meets(model):
    with pytest.raises(PlanError, match=r"edgetpu\.quantized"):
        _quantize(model, scheme="int16x8", targets=["edgetpu"], strict=True)
    qm = _quantize(model, scheme="int16x8", targets=["edgetpu"])
    assert any(n.startswith("warning: edgetpu:") and "edgetpu.quantized" in n for n in qm.plan.notes)
    with pytest.raises(PlanError, match="nnapi:27 needs uint8 quantization"):
        _quantize(model, scheme="int4-channel", targets=["nnapi:27"])
    with pytest.raises(PlanError, match="need different plans"):
        _quantize(model, targets=["nnapi:27", "nnapi:30"])


def test_convert_cli(tmp_path, capsys):
    src = tmp_path / "small.tflite"
    src.write_bytes(small_convnet())
    calib = tmp_path / "calib.npy"
    np.save(calib, CALIB)
    out = tmp_path / "dist"
    args = ["convert", str(src), "--calib", str(calib), "-o", str(out), "--quiet", "--compare", "0", "--json"]
    assert main([*args, "--targets", "tflite,edgetpu,nnapi:27,nnapi:30"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.glob("*.tflite")) == [
        "small.edgetpu.tflite", "small.int8.tflite", "small.nnapi-27.tflite", "small.nnapi-30.tflite"]
    checks = {c["target"]: c for c in s["targets"]}
    assert set(checks) == {"edgetpu", "nnapi:27", "nnapi:30"}
    assert all(c["avoidable"] == [] for c in checks.values())
    assert checks["nnapi:27"]["artifact"].endswith("small.nnapi-27.tflite")
    assert checks["nnapi:27"]["summary"]["ops_on_accelerator"] == 4  # MEAN needs API 28: the graph's choice
    assert any("nnapi.op_level" in w and "MEAN" in w for w in checks["nnapi:27"]["warnings"])
    assert any("rule nnapi.per_channel_before_29" in c for c in checks["nnapi:27"]["changes"])
    assert edgeq.verify(checks["nnapi:27"]["artifact"], samples=2).passed
    # --strict: the MEAN NNAPI 27 cannot run is an error; one target alone is written under the scheme's name.
    assert main([*args, "--targets", "nnapi:27", "--strict"]) == 2
    assert "nnapi.op_level" in json.loads(capsys.readouterr().out)["message"]
    assert main([*args, "-o", str(tmp_path / "one"), "--targets", "hexagon:legacy", "--compare", "4"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["artifacts"]["tflite"].endswith("small.int8.tflite") and s["targets"][0]["avoidable"] == []
    assert s["targets"][0]["fidelity"][0]["sqnr_db"] > 25  # the adapted artifact's outputs against float
    # The delegation report beside the artifacts: the target's table, the sizes, every layer's SQNR.
    facts = json.loads(Path(s["artifacts"]["report_json"]).read_text())
    assert s["artifacts"]["report"] == str(tmp_path / "one" / "small" / "report.html")
    html = Path(s["artifacts"]["report"]).read_text()
    assert "hexagon:legacy" in html and "small.int8.tflite" in html and "<svg" in html
    assert json.dumps(facts).count("small.int8.tflite") >= 1
    layers = facts["layer_sqnr"]
    assert len(layers) >= 4 and all(np.isfinite(x["sqnr_db"]) and x["sqnr_db"] > 10 for x in layers)


@pytest.mark.zoo
def test_efficientnet_lite0_on_every_target():
    """EfficientNet-Lite0 (16 calibration photos): no avoidable violation on any target and bit-exact; the plain
    int8 model breaks NNAPI 27's rules on 99 ops, which conversion for nnapi:27 brings to 0."""
    from bench import zoo
    from bench.check_zoo import quantized

    entry = zoo.get("efficientnet_lite0")
    model = edgeq.load(entry.path(), name="efficientnet_lite0")
    calib = entry.calib(16, 0)
    assert len(check_artifact(quantized("efficientnet_lite0"), "nnapi:27").avoidable) == 99
    for spec in TARGETS:
        qm = edgeq.quantize(model, edgeq.calibration.arrays(*calib), targets=[spec], progress=False)
        checked = check_artifact(qm.tflite, spec)
        assert checked.avoidable == [], (spec, [r.text for _, _, r in checked.avoidable][:3])
        result = edgeq.verify(qm.tflite, samples=2)
        assert result.passed, (spec, result.summary())


def test_coreml_ane_gets_per_channel_int4(tmp_path, capsys):
    """coreml-ane with a per-block INT4 scheme: the package for the Neural Engine is int4-channel (rule
    coreml.blockwise), next to the per-block package for coreml."""
    from edgeq.verify.mil_eval import MILProgram
    from tests.graphs import dense_graph

    src = tmp_path / "dense.tflite"
    src.write_bytes(dense_graph(units=64, features=128))  # 8192 weights: above Core ML's fp16 threshold
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).normal(size=(32, 128)).astype(np.float32))
    args = ["convert", str(src), "--calib", str(calib), "-o", str(tmp_path / "dist"), "--quiet", "--compare", "0",
            "--json", "--scheme", "int4-block32", "--targets", "coreml,coreml-ane"]
    assert main(args) == 0
    s = json.loads(capsys.readouterr().out)
    scales = {}
    for key in ("coreml", "coreml-ane"):
        prog = MILProgram.load(s["artifacts"][key])
        (op,) = [o for o in prog._ops if o.type == "constexpr_blockwise_shift_scale"]
        scales[key] = prog.constexpr_params(op.name)["scale"].shape
    assert scales == {"coreml": (64, 4), "coreml-ane": (64, 1)}  # blocks of 32 over 128 inputs; one per row
    assert s["artifacts"]["coreml-ane"].endswith("dense.int4-channel.w4.mlpackage")
    ane = next(c for c in s["targets"] if c["target"] == "coreml-ane")
    assert ane["avoidable"] == []
