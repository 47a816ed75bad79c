"""Planner rules on hand-built graphs: fixed encodings, requantization, shared parameters, the spec checker."""

from __future__ import annotations

import struct

import numpy as np

import edgeq
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Tensor
from edgeq.runtime import LiteRT
from edgeq.verify.spec import spec_violations

RNG = np.random.default_rng(0)


def _concat_of_tanh_and_relu() -> bytes:
    tensors = [
        Tensor("x", (1, 8), "float32"),
        Tensor("tanh", (1, 8), "float32"),
        Tensor("relu", (1, 8), "float32"),
        Tensor("cat", (1, 16), "float32"),
    ]
    ops = [
        Op("TANH", [0], [1]),
        Op("RELU", [0], [2]),
        Op(
            "CONCATENATION",
            [1, 2],
            [3],
            options={"axis": 1, "fusedActivationFunction": 0},
            options_type="ConcatenationOptions",
        ),
    ]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[3]))


def test_fixed_encoding_is_requantized_not_forced_on_a_concatenation():
    model = edgeq.load(_concat_of_tanh_and_relu())
    x = (RNG.normal(size=(64, 8)) * 4).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    assert [(r.op, r.input) for r in qm.plan.requantize] == [(2, 0)]
    assert qm.plan.tensors["tanh"].scale == [1 / 128]
    relu = qm.plan.tensors["relu"]
    assert relu.scale[0] > 10 / 255  # the ReLU keeps its calibrated range (up to ~4 sigma), not tanh's [-1, 1]
    assert spec_violations(qm.graph) == []
    report = edgeq.compare(model, qm, edgeq.calibration.arrays(x), reference=True)
    assert report.sqnr_db > 30.0


def _two_fc_sharing_one_bias() -> bytes:
    w1 = RNG.normal(size=(4, 8)).astype(np.float32)
    w2 = (RNG.normal(size=(4, 8)) * 0.01).astype(np.float32)
    tensors = [
        Tensor("x", (1, 8), "float32"),
        Tensor("w1", (4, 8), "float32", data=w1),
        Tensor("w2", (4, 8), "float32", data=w2),
        Tensor("b", (4,), "float32", data=np.full(4, 0.5, np.float32)),
        Tensor("y1", (1, 4), "float32"),
        Tensor("y2", (1, 4), "float32"),
    ]
    opts = {"fusedActivationFunction": 0}
    ops = [
        Op("FULLY_CONNECTED", [0, 1, 3], [4], options=dict(opts), options_type="FullyConnectedOptions"),
        Op("FULLY_CONNECTED", [0, 2, 3], [5], options=dict(opts), options_type="FullyConnectedOptions"),
    ]
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[4, 5]))


def test_a_bias_shared_by_two_ops_gets_one_encoding_each():
    model = edgeq.load(_two_fc_sharing_one_bias())
    biases = {model.graph.ops[i].inputs[2] for i in range(2)}
    assert len(biases) == 2
    x = RNG.normal(size=(32, 8)).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), observer="minmax", progress=False)
    assert spec_violations(qm.graph) == []
    report = edgeq.compare(model, qm, edgeq.calibration.arrays(x), reference=True)
    assert min(o.sqnr_db for o in report.outputs) > 25.0


def test_spec_checker_catches_a_broken_weight_and_a_wrong_fixed_encoding():
    model = edgeq.load(_concat_of_tanh_and_relu())
    x = RNG.normal(size=(16, 8)).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    broken = qm.graph.copy()
    tanh_out = broken.tensors[broken.ops[[o.kind for o in broken.ops].index("TANH")].outputs[0]]
    tanh_out.quant.scale = np.asarray([1 / 100], np.float32)
    assert any("kernel requires" in p for p in spec_violations(broken))
    fc = edgeq.quantize(edgeq.load(_two_fc_sharing_one_bias()), edgeq.calibration.arrays(x), progress=False).graph
    w = fc.tensors[fc.ops[1].inputs[1]]
    w.data = w.data.copy()
    w.data.flat[0] = -128
    assert any("-128" in p for p in spec_violations(fc))


def test_mediapipe_transpose_conv_bias_runs_as_its_builtin_equivalent():
    weights = RNG.normal(size=(3, 2, 2, 4)).astype(np.float32)
    bias = RNG.normal(size=(3,)).astype(np.float32)

    def graph(custom: bool) -> Graph:
        tensors = [
            Tensor("x", (1, 5, 5, 4), "float32"),
            Tensor("w", weights.shape, "float32", data=weights),
            Tensor("b", bias.shape, "float32", data=bias),
            Tensor("y", (1, 10, 10, 3), "float32"),
            Tensor("shape", (4,), "int32", data=np.asarray([1, 10, 10, 3], np.int32)),
        ]
        if custom:  # TfLiteTransposeConvParams {padding SAME = 1, stride_w 2, stride_h 2}
            op = Op(
                "CUSTOM",
                [0, 1, 2],
                [3],
                custom_code="Convolution2DTransposeBias",
                custom_options=struct.pack("<3i", 1, 2, 2),
            )
        else:
            op = Op(
                "TRANSPOSE_CONV",
                [4, 1, 0, 2],
                [3],
                options={"padding": 0, "strideW": 2, "strideH": 2},
                options_type="TransposeConvOptions",
            )
        return Graph(tensors=tensors, ops=[op], inputs=[0], outputs=[3])

    custom = edgeq.load(write_tflite(graph(custom=True)))
    assert custom.host_tflite != custom.tflite
    x = RNG.normal(size=(1, 5, 5, 4)).astype(np.float32)
    expected = LiteRT(write_tflite(graph(custom=False))).run([x])[0]
    assert np.array_equal(LiteRT(custom.host_tflite).run([x])[0], expected)


def test_a_sentinel_sized_range_is_reported_in_the_plan():
    """An additive attention mask (-3.4e38 where masked) would wreck int8 resolution: it is ranged for the softmax
    it feeds (edgeq/calibrate/softmax_ranges.py) and the plan says so."""
    tensors = [
        Tensor("scores", (1, 8), "float32"),
        Tensor("mask", (1, 8), "float32"),
        Tensor("masked", (1, 8), "float32"),
        Tensor("probs", (1, 8), "float32"),
    ]
    ops = [
        Op("ADD", [0, 1], [2], options={"fusedActivationFunction": 0}, options_type="AddOptions"),
        Op("SOFTMAX", [2], [3], options={"beta": 1.0}, options_type="SoftmaxOptions"),
    ]
    model = edgeq.load(write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0, 1], outputs=[3])))
    scores = RNG.normal(size=(16, 8)).astype(np.float32)
    mask = np.where(RNG.uniform(size=(16, 8)) < 0.3, np.float32(-3.4e38), np.float32(0.0))
    qm = edgeq.quantize(model, edgeq.calibration.arrays(scores, mask), progress=False)
    assert any("mask 'mask'" in n and "-3.4e+38" in n for n in qm.plan.notes), qm.plan.notes
    assert max(max(e.scale) for e in qm.plan.tensors.values()) < 1e6 / 127
    probs = LiteRT(qm.tflite, reference=True).run([scores[:1], mask[:1]])[0]  # loads and runs, no abort
    assert np.all(probs[mask[:1] < 0] == 0)


def test_a_near_dead_activation_keeps_relu6_bounds_representable():
    """An activation that barely moves (random-init MobileNetV2 reached 2.5e-9) must not get a scale at which
    LiteRT cannot quantize the fused RELU6 bound 6.0 into int32 (it refused such a model at prepare), nor
    softmax logits at a scale where LiteRT's int8 SOFTMAX aborts (beta * scale * 2^26 <= 1)."""
    w = RNG.normal(size=(4, 8)).astype(np.float32)
    tensors = [
        Tensor("x", (1, 8), "float32"),
        Tensor("w", (4, 8), "float32", data=w),
        Tensor("b", (4,), "float32", data=np.zeros(4, np.float32)),
        Tensor("y", (1, 4), "float32"),
    ]
    ops = [
        Op("FULLY_CONNECTED", [0, 1, 2], [3], options={"fusedActivationFunction": 3},
           options_type="FullyConnectedOptions"),
        Op("FULLY_CONNECTED", [0, 1, 2], [4], options={"fusedActivationFunction": 0},
           options_type="FullyConnectedOptions"),
        Op("SOFTMAX", [4], [5], options={"beta": 1.0}, options_type="SoftmaxOptions"),
    ]
    tensors += [Tensor("logits", (1, 4), "float32"), Tensor("probs", (1, 4), "float32")]
    model = edgeq.load(write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[3, 5])))
    tiny = (RNG.normal(size=(16, 8)) * 1e-9).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(tiny), observer="minmax", progress=False)
    assert min(min(e.scale) for e in qm.plan.tensors.values() if e.dtype == "int8" and len(e.scale) == 1) >= 2.0**-24
    LiteRT(qm.tflite, reference=True).run([tiny[:1]])  # loads and runs (an abort would end the test process)


def test_int16x8_add_of_two_activations_uses_the_general_int16_path():
    """The schema's default pot_scale_int16=true picks LiteRT's power-of-two int16 ADD, which refuses the
    plan's general scales at prepare; edgeq writes false, as TFLiteConverter does."""
    tensors = [Tensor("a", (1, 8), "float32"), Tensor("b", (1, 8), "float32"), Tensor("s", (1, 8), "float32"),
               Tensor("d", (1, 8), "float32")]
    ops = [Op("ADD", [0, 1], [2], options={"fusedActivationFunction": 0}, options_type="AddOptions"),
           Op("SUB", [2, 1], [3], options={"fusedActivationFunction": 0}, options_type="SubOptions")]
    model = edgeq.load(write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0, 1], outputs=[3])))
    a, b = RNG.normal(size=(16, 8)).astype(np.float32), 3 * RNG.normal(size=(16, 8)).astype(np.float32)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(a, b), scheme="int16x8", progress=False)
    (d,) = LiteRT(qm.tflite, reference=True).run([a[:1], b[:1]])
    np.testing.assert_allclose(d, a[:1], atol=2e-3)
