"""Core ML export: the plan rendered as an .mlpackage, read back, evaluated on the host and held to the plan."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import edgeq
from bench import zoo
from edgeq.errors import PlanError, UnsupportedOpError
from edgeq.export.coreml_env import ct
from edgeq.export.coreml_writer import ImageInput
from edgeq.verify.mil_eval import MILProgram
from tests.graphs import dense_graph

N_CALIB = 32


@functools.cache
def _quantized(name: str, scheme: str = "int8") -> edgeq.QuantizedModel:
    entry = zoo.get(name)
    model = edgeq.load(entry.path())
    return edgeq.quantize(model, edgeq.calibration.arrays(*entry.calib(N_CALIB, 0)), scheme=scheme, progress=False)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _ops(package: Path) -> list:
    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    main = spec.mlProgram.functions["main"]
    return list(main.block_specializations[main.opset].operations)


@pytest.mark.parametrize("mode", ["fp16", "w8", "w8a8"])
def test_keras_cnn_package_matches_its_plan(tmp_path, mode):
    qm = _quantized("keras_cnn_ops")
    entry = zoo.get("keras_cnn_ops")
    path = qm.export_coreml(tmp_path / "m.mlpackage", mode=mode)
    ct.models.MLModel(str(path), skip_model_load=True)  # coremltools reads it back
    result = edgeq.verify_coreml(path, qm, data=edgeq.calibration.arrays(*entry.eval(8, 0)), samples=8)
    assert result.weights_exact, result.weight_mismatches
    out = result.outputs[0]
    assert out.top1_agreement == 1.0
    if mode == "fp16":
        assert result.weights_checked == 0
        assert out.relative_error_vs_float < 1e-3  # fp16 parameters, evaluated in fp32
    else:  # 3 conv, 1 depthwise, 1 fully connected; weight-only modes keep those under 2048 values in fp16
        assert result.weights_checked + result.weights_float == 5
        assert result.weights_float == (0 if mode == "w8a8" else 4)
    if mode == "w8a8":
        # Op by op on the integer model's own inputs the package computes the same int8 values but at near-ties
        # (LiteRT's fixed-point requantization rounds twice; Core ML's quantize once, half to even): +-1 on a
        # fraction of a percent. End to end those flips propagate: measured 34.5-45 dB on this model.
        per_op = result.per_op
        assert per_op.tensors == 13 and per_op.max_abs_diff == 1  # 19 int8 tensors, 6 only moved
        assert per_op.equal_share > 0.99 and per_op.sqnr_db >= 40.0
        assert out.sqnr_vs_integer_db >= 30.0
    else:  # the lowering computes the float model with the package's parameters, to fp32 rounding
        assert out.relative_error_vs_stored < 1e-5


def test_same_plan_same_bytes_and_failed_export_keeps_the_old_package(tmp_path, monkeypatch):
    qm = _quantized("keras_cnn_ops")
    a = qm.export_coreml(tmp_path / "a.mlpackage", mode="w8a8")
    b = qm.export_coreml(tmp_path / "b.mlpackage", mode="w8a8")
    assert _tree(a) == _tree(b)
    before = _tree(a)

    def broken_save(self, path):
        Path(path).mkdir(parents=True)
        (Path(path) / "partial").write_bytes(b"x")
        raise OSError("disk full")

    monkeypatch.setattr(ct.models.MLModel, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        qm.export_coreml(a, mode="w8")
    assert _tree(a) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mlpackage", "b.mlpackage"]
    monkeypatch.undo()
    qm.export_coreml(a, mode="w8")  # overwrites in place
    assert _tree(a) != before


def test_int8_zero_point_minus_128_is_kept(tmp_path):
    """coremltools' default pipeline rewrites int8 quantize with zero point -128 into uint8 (its
    nullify_redundant_quantization_zero_point pass); edgeq's package keeps the plan's int8 encoding."""
    qm = _quantized("keras_cnn_ops")
    planned = {e.zero_point[0] for e in qm.plan.tensors.values() if e.dtype == "int8" and not e.narrow_range}
    assert -128 in planned
    path = qm.export_coreml(tmp_path / "m.mlpackage", mode="w8a8")
    quantize_ops = [o for o in _ops(path) if o.type == "quantize"]
    dtypes = {o.outputs[0].type.tensorType.dataType for o in quantize_ops}
    from coremltools.proto import MIL_pb2

    assert dtypes == {MIL_pb2.DataType.INT8}
    consts = {o.outputs[0].name: o for o in _ops(path) if o.type == "const"}
    zero_points = set()
    for op in quantize_ops:
        if "zero_point" not in op.inputs:  # zero point 0, quantize's default, is left out
            zero_points.add(0)
            continue
        const = consts[op.inputs["zero_point"].arguments[0].name]
        zero_points.add(int(np.frombuffer(const.attributes["val"].immediateValue.tensor.bytes.values, np.int8)[0]))
    assert -128 in zero_points
    # The same program through coremltools' default pipeline loses it: what the empty pipeline avoids.
    from edgeq.export.coreml_writer import build_program, parse_minimum_os

    prog, _, _ = build_program(qm, "w8a8", parse_minimum_os(None, "w8a8"), None)
    default = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, skip_model_load=True)
    main = default.get_spec().mlProgram.functions["main"]
    rewritten = {
        o.outputs[0].type.tensorType.dataType for o in main.block_specializations[main.opset].operations
        if o.type == "quantize"
    }  # fmt: skip
    assert MIL_pb2.DataType.UINT8 in rewritten


def test_image_input_classifier_and_metadata(tmp_path):
    qm = _quantized("efficientnet_lite0")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {k}\n" for k in range(1000)))
    entry = zoo.get("efficientnet_lite0")
    path = qm.export_coreml(
        tmp_path / "EfficientNet.mlpackage",
        mode="w8a8",
        image_input=ImageInput(scale=1 / 128, bias=-127 / 128),
        class_labels=labels,
        minimum_os="iOS17",
        version="1.2",
    )
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    (image,) = spec.description.input
    assert image.type.WhichOneof("Type") == "imageType"
    assert (image.type.imageType.width, image.type.imageType.height) == (224, 224)
    assert spec.description.predictedFeatureName == "classLabel"
    meta = spec.description.metadata
    assert meta.author == "edgeq" and meta.versionString == "1.2"
    assert meta.userDefined["com.github.edgeq.scheme"] == "int8"
    assert "com.github.apple.coremltools.conversion_date" not in meta.userDefined
    result = edgeq.verify_coreml(path, qm, data=edgeq.calibration.arrays(*entry.eval(4, 0)), samples=4)
    assert result.weights_exact, result.weight_mismatches
    assert result.weights_checked == 50  # 33 conv + 16 depthwise + 1 fully connected
    assert result.per_op.max_abs_diff == 1 and result.per_op.sqnr_db >= 40.0
    assert result.outputs[0].sqnr_vs_integer_db >= 20.0  # end to end, measured 27.8-28.6: see BENCHMARKS "Core ML"
    prog = MILProgram.load(path)
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 3, 224, 224)).astype(np.float32)
    out = prog.run({"x": pixels} if prog.inputs[0][0] == "x" else {prog.inputs[0][0]: pixels})
    assert out["classLabel"].startswith("class ")


def test_minimum_os_and_mode_errors(tmp_path):
    qm = _quantized("keras_cnn_ops")
    with pytest.raises(PlanError, match=r"w8a8.*iOS17"):
        qm.export_coreml(tmp_path / "a.mlpackage", mode="w8a8", minimum_os="iOS16")
    with pytest.raises(PlanError, match="INT4 weights"):
        qm.export_coreml(tmp_path / "a.mlpackage", mode="w4")
    with pytest.raises(PlanError, match="not a Core ML deployment target"):
        qm.export_coreml(tmp_path / "a.mlpackage", mode="w8", minimum_os="iOS99")
    with pytest.raises(PlanError, match=r"\.mlpackage"):
        qm.export_coreml(tmp_path / "a.mlmodel", mode="w8")
    with pytest.raises(PlanError, match="class labels"):
        qm.export_coreml(tmp_path / "a.mlpackage", mode="w8", class_labels=["a", "b"])
    assert not list(tmp_path.iterdir())
    q16 = edgeq.quantize(
        edgeq.load(dense_graph()), edgeq.calibration.arrays(np.ones((4, 8), np.float32)), scheme="int16x8",
        progress=False,
    )  # fmt: skip
    with pytest.raises(PlanError, match="w8a8"):
        q16.export_coreml(tmp_path / "b.mlpackage", mode="w8a8")


def test_an_op_without_lowering_is_named(tmp_path):
    model = edgeq.load(dense_graph(tail="SIN"))
    calib = edgeq.calibration.arrays(np.ones((4, 8), np.float32))
    qm = edgeq.quantize(model, calib, allow_float_ops=True, progress=False)
    with pytest.raises(UnsupportedOpError, match="SIN has no Core ML lowering"):
        qm.export_coreml(tmp_path / "m.mlpackage", mode="fp16")
    assert not list(tmp_path.iterdir())


def test_w4_package_carries_the_int4_plan(tmp_path):
    """int4-block32: the fully connected weights in blocks of 32, the convolutions per channel, all through
    constexpr_blockwise_shift_scale (iOS18), integers and fp16 scales as in the .tflite."""
    qm = _quantized("keras_attention", "int4-block32")
    entry = zoo.get("keras_attention")
    with pytest.raises(PlanError, match="iOS18"):
        qm.export_coreml(tmp_path / "old.mlpackage", mode="w4", minimum_os="iOS17")
    path = qm.export_coreml(tmp_path / "m.mlpackage", mode="w4", weight_threshold=0)
    result = edgeq.verify_coreml(path, qm, data=edgeq.calibration.arrays(*entry.eval(4, 0)), samples=4)
    assert result.weights_exact, result.weight_mismatches
    assert result.weights_checked == 8 and result.weights_float == 0
    blockwise = [e for e in qm.plan.tensors.values() if e.block_size == 32]
    assert blockwise and all(e.dtype == "int4" for e in blockwise)
    assert result.outputs[0].relative_error_vs_stored < 1e-5
    ops = {o.type for o in _ops(path)}
    assert "constexpr_blockwise_shift_scale" in ops and "quantize" not in ops


def test_verify_refuses_foreign_packages_and_other_plans(tmp_path):
    from edgeq.errors import CoreMLError
    from edgeq.export.coreml_env import mb

    qm = _quantized("keras_cnn_ops")
    path = qm.export_coreml(tmp_path / "m.mlpackage", mode="w8")
    other = edgeq.quantize(
        qm.float_model, edgeq.calibration.arrays(*zoo.get("keras_cnn_ops").calib(8, 1)), scheme="int16x8",
        progress=False,
    )  # fmt: skip
    with pytest.raises(CoreMLError, match="another plan"):
        edgeq.verify_coreml(path, other, samples=1)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))])
    def prog(x):
        return mb.relu(x=x, name="y")

    foreign = tmp_path / "foreign.mlpackage"
    ct.convert(prog, convert_to="mlprogram", skip_model_load=True).save(str(foreign))
    with pytest.raises(CoreMLError, match="not written by edgeq"):
        edgeq.verify_coreml(foreign, qm, samples=1)
    with pytest.raises(CoreMLError, match="not a readable"):
        edgeq.verify_coreml(tmp_path / "missing.mlpackage", qm, samples=1)


@pytest.mark.parametrize(("scheme", "scales"), [("w4-block32", (96, 2)), ("int4-channel", (96, 1))])
def test_int4_embedding_table_is_a_package_weight(tmp_path: Path, scheme: str, scales: tuple[int, int]) -> None:
    """An INT4 EMBEDDING_LOOKUP table travels as INT4 in the package too (not as an fp16 value): its integers
    and scales are the .tflite's, and lookups equal the float model carrying those parameters."""
    from tests.test_minilm import ROWS, _lookup_model

    model = _lookup_model()
    ids = np.random.default_rng(1).integers(0, ROWS, size=(16, 8)).astype(np.int32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(ids), scheme=scheme, progress=False)
    path = qm.export_coreml(tmp_path / "lookup.mlpackage", mode="w4", weight_threshold=0)
    prog = MILProgram.load(path)
    (op,) = [o for o in prog._ops if o.type == "constexpr_blockwise_shift_scale"]
    assert prog.constexpr_params(op.name)["scale"].shape == scales
    r = edgeq.verify_coreml(path, qm, data=edgeq.calibration.arrays(ids), samples=4)
    assert r.weights_checked == 1 and r.weights_exact
    assert r.outputs[0].relative_error_vs_stored < 1e-6


def test_verify_rebuilds_the_map_and_catches_tampering(tmp_path):
    """The package carries no tensor map (verification rebuilds it from the plan and the export arguments in
    the metadata); a weight integer changed on disk, or a program that is not the plan's, is reported."""
    from edgeq.errors import CoreMLError

    qm = _quantized("keras_cnn_ops")
    entry = zoo.get("keras_cnn_ops")
    data = edgeq.calibration.arrays(*entry.eval(2, 0))
    path = qm.export_coreml(tmp_path / "m.mlpackage", mode="w8", weight_threshold=0)
    meta = ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata
    assert "com.github.edgeq.tensor_map" not in meta
    assert meta["com.github.edgeq.minimum_os"] == "iOS16" and meta["com.github.edgeq.weight_threshold"] == "0"
    clean = edgeq.verify_coreml(path, qm, data=data, samples=2)
    assert clean.weights_exact and clean.weights_checked == 5 and clean.weights_float == 0
    # The fully connected weight's int8 bytes, found in the weight file and one of them changed.
    fc = next(t for t in qm.graph.tensors if t.data is not None and t.quant is not None and len(t.shape) == 2)
    blob = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    raw = bytearray(blob.read_bytes())
    at = raw.find(np.asarray(fc.data, dtype=np.int8).reshape(fc.shape).tobytes())
    assert at > 0
    raw[at + 7] = (raw[at + 7] + 1) % 256
    blob.write_bytes(bytes(raw))
    tampered = edgeq.verify_coreml(path, qm, data=data, samples=2)
    assert tampered.weight_mismatches == [f'"{fc.name}": integers differ from the .tflite\'s']
    # Export arguments that do not match the program: the rebuilt names are not in it.
    model = ct.models.MLModel(str(path), skip_model_load=True)
    model.user_defined_metadata["com.github.edgeq.weight_threshold"] = "2048"
    model.save(str(tmp_path / "other.mlpackage"))
    with pytest.raises(CoreMLError, match="differs from the one this plan builds"):
        edgeq.verify_coreml(tmp_path / "other.mlpackage", qm, data=data, samples=2)


def test_w8a8_leaves_out_only_what_changes_no_value(tmp_path, monkeypatch):
    """No quantize/dequantize after ops that only move values already on the output's grid, one const per
    distinct value: the package computes bit for bit what the program with every pair and every const does."""
    from edgeq.export.coreml_program import Lowering

    qm = _quantized("keras_cnn_ops")
    lean = MILProgram.load(qm.export_coreml(tmp_path / "lean.mlpackage", mode="w8a8"))
    with monkeypatch.context() as patch:
        patch.setattr(Lowering, "on_grid", lambda self, op_index, enc: False)
        patch.setattr(Lowering, "plan_deferrals", lambda self, requantize: None)
        patch.setattr(Lowering, "share_constants", lambda self, block: None)
        full = MILProgram.load(qm.export_coreml(tmp_path / "full.mlpackage", mode="w8a8"))
    # max pool, strided slice, squeeze, reduce max, reshape and the concatenation of requantized inputs
    assert (full.ops.count("quantize"), lean.ops.count("quantize")) == (19, 13)
    assert lean.ops.count("const") < full.ops.count("const") // 2
    shapes = {n: s for n, s, _ in lean.inputs}
    (x,) = zoo.get("keras_cnn_ops").eval(8, 0)
    for precision in ("fp32", "fp16"):
        for k in range(8):
            feeds = {n: x[k : k + 1].reshape(shapes[n]) for n in shapes}
            a, b = lean.run(feeds, precision=precision), full.run(feeds, precision=precision)
            assert all(np.array_equal(a[o], b[o]) for o in lean.outputs)


def test_w8a8_quantizes_the_input_as_fed_and_dequantizes_outputs_to_fp32(tmp_path, monkeypatch):
    """The .tflite's QUANTIZE of a float input reads fp32 and its DEQUANTIZE of an int8 output writes fp32: the
    package does the same (no fp16 cast before or after), leaves zero point 0 out and names pairs q<k>/d<k>. The
    7 inputs of keras_activations' concatenation, all at its encoding (two requantized), share one pair after it.
    Fewer bytes, and evaluation is bit for bit that of the program with a pair per input and both casts."""
    from coremltools.proto import MIL_pb2

    from edgeq.export.coreml_env import mb
    from edgeq.export.coreml_program import Lowering, Value

    qm = _quantized("keras_activations")
    path = qm.export_coreml(tmp_path / "lean.mlpackage", mode="w8a8")
    ops = _ops(path)
    by_output = {o.outputs[0].name: o for o in ops}
    (x,) = [i.name for i in ct.models.MLModel(str(path), skip_model_load=True).get_spec().description.input]
    assert not [o for o in ops if o.type == "cast"]
    first = next(o for o in ops if o.type == "quantize")
    assert first.inputs["input"].arguments[0].name == x and first.outputs[0].name == "q0"
    (out,) = [o for o in ops if o.outputs[0].name == "output_0"]
    assert out.type == "dequantize"
    scale = by_output[out.inputs["scale"].arguments[0].name]
    assert scale.outputs[0].type.tensorType.dataType == MIL_pb2.DataType.FLOAT32
    assert any("zero_point" not in o.inputs for o in ops if o.type == "quantize")  # tanh: 1/128, zero point 0
    (concat,) = [o for o in ops if o.type == "concat"]
    assert {by_output[a.name].type for a in concat.inputs["values"].arguments} != {"dequantize"}
    assert [o.type for o in ops].count("quantize") == 10  # the integer model's 16 activations, 7 in one pair

    def cast_output(self, v, name):
        return mb.cast(x=v.var, dtype="fp32", name=name)

    def cast_input_view(self, t):
        if t not in self.quantized_views:
            v = self.values[t]
            self.quantized_views[t] = Value(self.fake_quant(v.var, self.encoding(t), self.tname(t)), v.perm)
        return self.quantized_views[t]

    with monkeypatch.context() as patch:
        patch.setattr(Lowering, "plan_deferrals", lambda self, requantize: None)
        pairs = qm.export_coreml(tmp_path / "pairs.mlpackage", mode="w8a8")
        patch.setattr(Lowering, "output", cast_output)
        patch.setattr(Lowering, "quantized_view", cast_input_view)
        casts = qm.export_coreml(tmp_path / "casts.mlpackage", mode="w8a8")
    assert [o.type for o in _ops(pairs)].count("quantize") == 16
    assert [o.type for o in _ops(casts)].count("cast") == 2
    sizes = [sum(len(b) for b in _tree(p).values()) for p in (path, pairs, casts)]
    assert sizes == sorted(sizes) and sizes[0] < 0.95 * sizes[2]
    lean, per_input, full = (MILProgram.load(p) for p in (path, pairs, casts))
    (images,) = zoo.get("keras_activations").eval(8, 0)
    for k in range(8):
        feeds = {x: images[k : k + 1].reshape(lean.inputs[0][1])}
        for precision, other in (("fp32", full), ("fp32", per_input), ("fp16", per_input)):
            a, b = lean.run(feeds, precision=precision), other.run(feeds, precision=precision)
            assert all(np.array_equal(a[o], b[o]) for o in lean.outputs)
    result = edgeq.verify_coreml(path, qm, data=edgeq.calibration.arrays(images), samples=8)
    assert result.per_op.tensors == 10 and result.per_op.max_abs_diff == 1 and result.per_op.sqnr_db >= 40.0
