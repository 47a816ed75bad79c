"""Acceptance 1 of the targets issue: every rule of every profile has a small model that breaks it, and
`check` names that rule for that op. The table is data-driven: a rule added to a profile without a breaking
model here fails test_every_rule_has_a_breaking_model."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.targets import check, profiles
from edgeq.targets.report import render_html, report_data

_ACT_SCALE = {"int8": 0.05, "uint8": 0.05, "int16": 0.001}
_ACT_ZP = {"int8": 0, "uint8": 128, "int16": 0}


class G:
    """A tiny graph under construction: activations get a plausible encoding, constants their data."""

    def __init__(self) -> None:
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []

    def act(self, shape: tuple[int, ...], dtype: str = "int8", scale: float | None = None,
            signature: tuple[int, ...] | None = None) -> int:
        quant = None
        if dtype in _ACT_SCALE:
            quant = Quantization(np.array([scale or _ACT_SCALE[dtype]], np.float32), np.array([_ACT_ZP[dtype]]))
        self.tensors.append(Tensor(f"t{len(self.tensors)}", shape, dtype, quant=quant, shape_signature=signature))
        return len(self.tensors) - 1

    def const(self, data, dtype: str = "int32", scale=None, zero_point=None, axis: int = 0, block: int = 0) -> int:
        array = np.asarray(data)
        quant = None
        if scale is not None:
            s = np.atleast_1d(np.asarray(scale, np.float32))
            zp = np.zeros(s.size, np.int64) if zero_point is None else np.atleast_1d(np.asarray(zero_point, np.int64))
            quant = Quantization(s, zp, axis=axis, block_size=block)
        self.tensors.append(Tensor(f"c{len(self.tensors)}", array.shape, dtype,
                                   data=array.astype("int8" if dtype == "int4" else dtype), quant=quant))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: list[int], outputs: list[int], options_type: str = "", version: int = 1,
           **options) -> int:
        self.ops.append(Op(kind, inputs, outputs, options=options, options_type=options_type, version=version))
        return len(self.ops) - 1

    def graph(self) -> Graph:
        produced = {t for op in self.ops for t in op.outputs}
        consumed = {t for op in self.ops for t in op.inputs}
        inputs = [i for i, t in enumerate(self.tensors) if not t.is_constant and i not in produced and i in consumed]
        outputs = [t for op in self.ops for t in op.outputs if t not in consumed]
        return Graph(tensors=self.tensors, ops=self.ops, inputs=inputs, outputs=outputs)

    # -- common ops

    def conv(self, x: int, cout: int = 4, k: tuple[int, int] = (3, 3), dtype: str = "int8", w_dtype: str = "int8",
             per_channel: bool = True, w_zp=None, w_scale=None, bias: bool = True, out_scale: float | None = None,
             kind: str = "CONV_2D", version: int = 1, **options) -> int:
        cin = self.tensors[x].shape[-1]
        shape = (1, *k, cout) if kind == "DEPTHWISE_CONV_2D" else (cout, *k, cin)
        channels = cout
        scale = w_scale if w_scale is not None else (np.linspace(0.01, 0.02, channels) if per_channel else 0.01)
        axis = 3 if kind == "DEPTHWISE_CONV_2D" else 0
        w = self.const(np.ones(shape), w_dtype, scale=scale, zero_point=w_zp, axis=axis)
        ins = [x, w]
        if dtype != "float32":
            x_scale = float(self.tensors[x].quant.scale[0])
            b_scale = x_scale * np.atleast_1d(np.asarray(scale, np.float64))
            ins.append(self.const(np.zeros(cout), "int32", scale=b_scale.astype(np.float32)) if bias else -1)
        else:
            ins.append(self.const(np.zeros(cout, np.float32), "float32") if bias else -1)
        n, h, wd = self.tensors[x].shape[:3]
        y = self.act((n, h, wd, cout), dtype, scale=out_scale)
        opts = {"padding": 0, "strideW": 1, "strideH": 1, "dilationWFactor": 1, "dilationHFactor": 1,
                "fusedActivationFunction": 0, **({"depthMultiplier": 1} if kind == "DEPTHWISE_CONV_2D" else {}),
                **options}
        self.op(kind, ins, [y], "DepthwiseConv2DOptions" if kind == "DEPTHWISE_CONV_2D" else "Conv2DOptions",
                version, **opts)
        return y

    def fc(self, x: int, units: int = 4, w_dtype: str = "int8", per_channel: bool = False, w_zp=None,
           block: int = 0, keep: bool = False, dtype: str = "int8", weights_format: int = 0) -> int:
        k = self.tensors[x].shape[-1]
        if block:
            scale = np.full(units * k // block, 0.0078125, np.float32)
        else:
            scale = np.linspace(0.01, 0.02, units) if per_channel else 0.01
        w = self.const(np.ones((units, k)), w_dtype, scale=scale, zero_point=w_zp, block=block)
        out_shape = (*self.tensors[x].shape[:-1], units) if keep else (1, units)
        y = self.act(out_shape, dtype)
        self.op("FULLY_CONNECTED", [x, w, -1], [y], "FullyConnectedOptions", fusedActivationFunction=0,
                weightsFormat=weights_format, keepNumDims=keep)
        return y

    def unary(self, kind: str, shape: tuple[int, ...] = (1, 4, 4, 8), dtype: str = "int8", out_shape=None,
              options_type: str = "", version: int = 1, **options) -> int:
        x = self.act(shape, dtype)
        y = self.act(out_shape or shape, dtype)
        self.op(kind, [x], [y], options_type, version, **options)
        return y

    def binary(self, kind: str, a: tuple[int, ...] = (1, 4, 4, 8), b: tuple[int, ...] | None = None,
               dtype: str = "int8", version: int = 1, **options) -> int:
        x, z = self.act(a, dtype), self.act(b or a, dtype)
        y = self.act(a, dtype)
        self.op(kind, [x, z], [y], f"{kind.title().replace('_', '')}Options" if options else "", version, **options)
        return y

    def with_const(self, kind: str, x_shape: tuple[int, ...], consts: list, out_shape: tuple[int, ...],
                   options_type: str = "", dtype: str = "int8", **options) -> int:
        x = self.act(x_shape, dtype)
        ins = [x, *(self.const(c) for c in consts)]
        y = self.act(out_shape, dtype)
        self.op(kind, ins, [y], options_type, **options)
        return y


def _x(g: G, shape=(1, 8, 8, 4), dtype="int8") -> int:
    return g.act(shape, dtype)


# Each builder returns the graph and the index of the op that must break the rule.
Builder = Callable[[], tuple[Graph | bytes, int]]


def _one(build: Callable[[G], object]) -> Builder:
    def make() -> tuple[Graph, int]:
        g = G()
        build(g)
        return g.graph(), len(g.ops) - 1
    return make


def _pool(g: G, kind="MAX_POOL_2D", size=2, dtype="int8", padding=1, act=0, shape=(1, 8, 8, 4)):
    x = g.act(shape, dtype)
    y = g.act(shape, dtype)
    g.op(kind, [x], [y], "Pool2DOptions", padding=padding, strideW=1, strideH=1, filterWidth=size,
         filterHeight=size, fusedActivationFunction=act)


def _concat(g: G, act=0, const=None):
    a = g.act((1, 4, 4, 8))
    b = g.const(const, "int8", scale=0.05, zero_point=0) if const is not None else g.act((1, 4, 4, 8))
    y = g.act((1, 4, 4, 16))
    g.op("CONCATENATION", [a, b], [y], "ConcatenationOptions", axis=3, fusedActivationFunction=act)


def _strided_slice(g: G, strides=(1, 1), ellipsis=0):
    x = g.act((4, 8))
    ins = [x, g.const([0, 0]), g.const([4, 8]), g.const(list(strides))]
    y = g.act((4, 8 // strides[1]))
    g.op("STRIDED_SLICE", ins, [y], "StridedSliceOptions", beginMask=0, endMask=0, ellipsisMask=ellipsis,
         newAxisMask=0, shrinkAxisMask=0)


def _reshape_dynamic(g: G):
    x = g.act((1, 4, 4, 8))
    shape = g.act((2,), "int32")
    y = g.act((16, 8))
    g.op("RESHAPE", [x, shape], [y])


def _blockwise_int8() -> tuple[Graph, int]:
    """An int8 weight with a block-size encoding: LiteRT's schema allows it, edgeq's writer refuses to write it
    (blockwise is INT4 only there), so the graph is checked directly."""
    g = G()
    x = g.act((1, 64), "float32")
    w = g.const(np.ones((4, 64)), "int8", scale=np.full(8, 0.01), block=32)
    y = g.act((1, 4), "float32")
    g.op("FULLY_CONNECTED", [x, w, -1], [y], "FullyConnectedOptions", fusedActivationFunction=0)
    return g.graph(), 0


def _blockwise_batch_matmul(g: G):
    x = g.act((1, 3, 64), "float32")
    w = g.const(np.ones((4, 64)), "int4", scale=np.full(8, 0.0078125), block=32)
    y = g.act((1, 3, 4), "float32")
    g.op("BATCH_MATMUL", [x, w], [y], "BatchMatMulOptions", adjX=False, adjY=True)


def _lstm(g: G):
    x = g.act((1, 5, 8), "float32")
    y = g.act((1, 5, 8), "float32")
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [x], [y])


def _gather(g: G):
    x = g.act((10, 8), "float32")
    idx = g.const([1, 2])
    y = g.act((2, 8), "float32")
    g.op("GATHER", [x, idx], [y], "GatherOptions", axis=0)


def _custom(g: G):
    x = g.act((1, 8), "float32")
    y = g.act((1, 8), "float32")
    g.ops.append(Op("CUSTOM", [x], [y], custom_code="MyOp"))


def _bias_scale_wrong(g: G):
    x = _x(g)
    g.conv(x)
    bias = g.tensors[g.ops[-1].inputs[2]]
    bias.quant = Quantization(bias.quant.scale * 2, bias.quant.zero_point)


BREAKERS: dict[str, tuple[str, Builder]] = {
    # Edge TPU
    "edgetpu.ops": ("edgetpu", _one(lambda g: g.unary("HARD_SWISH"))),
    "edgetpu.unsupported_ops": ("edgetpu", _one(lambda g: g.with_const("TRANSPOSE", (1, 4, 8), [[0, 2, 1]],
                                                                        (1, 8, 4)))),
    "edgetpu.quantized": ("edgetpu", _one(lambda g: g.binary("ADD", dtype="float32"))),
    "edgetpu.quantize_output": ("edgetpu", _one(lambda g: g.op("QUANTIZE", [g.act((1, 8), "float32")],
                                                               [g.act((1, 8), "int16")]))),
    "edgetpu.static_shapes": ("edgetpu", _one(lambda g: g.op("RELU", [g.act((1, 8), signature=(-1, 8))],
                                                             [g.act((1, 8), signature=(-1, 8))]))),
    "edgetpu.rank": ("edgetpu", _one(lambda g: g.binary("ADD", (2, 2, 4, 4)))),
    "edgetpu.pool_activation": ("edgetpu", _one(lambda g: _pool(g, act=1))),
    "edgetpu.concat_activation": ("edgetpu", _one(lambda g: _concat(g, act=1))),
    "edgetpu.concat_constant": ("edgetpu", _one(lambda g: _concat(g, const=np.full((1, 4, 4, 8), 3)))),
    "edgetpu.conv_dilation": ("edgetpu", _one(lambda g: g.conv(_x(g), dilationHFactor=2))),
    "edgetpu.fc_weights_format": ("edgetpu", _one(lambda g: g.fc(g.act((1, 16)), weights_format=1))),
    "edgetpu.fc_output": ("edgetpu", _one(lambda g: g.fc(g.act((1, 3, 16)), keep=True))),
    "edgetpu.reduce_batch": ("edgetpu", _one(lambda g: g.with_const("MEAN", (2, 4, 4, 8), [[0]], (1, 4, 4, 8),
                                                                     "ReducerOptions", keepDims=True))),
    "edgetpu.mean_depth": ("edgetpu", _one(lambda g: g.with_const("MEAN", (1, 4, 4, 6), [[3]], (1, 4, 4, 1),
                                                                   "ReducerOptions", keepDims=True))),
    "edgetpu.pad_batch": ("edgetpu", _one(lambda g: g.with_const("PAD", (1, 4, 4, 8),
                                                                  [[[1, 0], [0, 0], [0, 0], [0, 0]]], (2, 4, 4, 8)))),
    "edgetpu.pack_batch": ("edgetpu", _one(lambda g: g.op("PACK", [g.act((4, 8)), g.act((4, 8))], [g.act((2, 4, 8))],
                                                          "PackOptions", valuesCount=2, axis=0))),
    "edgetpu.prelu_alpha": ("edgetpu", _one(lambda g: g.op("PRELU", [g.act((1, 4, 4, 8)),
                                                                      g.const(np.ones((4, 8)), "int8", scale=0.01)],
                                                           [g.act((1, 4, 4, 8))]))),
    "edgetpu.resize_3d": ("edgetpu", _one(lambda g: g.with_const("RESIZE_BILINEAR", (2, 4, 4, 8), [[8, 8]],
                                                                  (2, 8, 8, 8), "ResizeBilinearOptions"))),
    "edgetpu.softmax_1d": ("edgetpu", _one(lambda g: g.unary("SOFTMAX", (1, 4, 10), options_type="SoftmaxOptions",
                                                             beta=1.0))),
    "edgetpu.softmax_size": ("edgetpu", _one(lambda g: g.unary("SOFTMAX", (1, 20000),
                                                               options_type="SoftmaxOptions", beta=1.0))),
    "edgetpu.squeeze_leading": ("edgetpu", _one(lambda g: g.unary("SQUEEZE", (1, 4, 1, 8), out_shape=(1, 4, 8),
                                                                  options_type="SqueezeOptions", squeezeDims=[2]))),
    "edgetpu.strided_slice_strides": ("edgetpu", _one(lambda g: _strided_slice(g, strides=(1, 2)))),
    "edgetpu.strided_slice_masks": ("edgetpu", _one(lambda g: _strided_slice(g, ellipsis=1))),
    "edgetpu.per_axis_weights": ("edgetpu", _one(lambda g: g.conv(_x(g)))),
    # NNAPI
    "nnapi.op_level": ("nnapi:28", _one(lambda g: g.with_const("SLICE", (4, 8), [[0, 0], [2, 8]], (2, 8)))),
    "nnapi.quantized_tanh_sub": ("nnapi:28", _one(lambda g: g.unary("TANH", (1, 8), "uint8"))),
    "nnapi.int16": ("nnapi:30", _one(lambda g: g.binary("ADD", dtype="int16"))),
    "nnapi.uint8_conv_before_29": ("nnapi:28", _one(lambda g: g.conv(_x(g), per_channel=False))),
    "nnapi.int8_as_uint8": ("nnapi:29", _one(lambda g: g.binary("ADD"))),
    "nnapi.per_channel_before_29": ("nnapi:28", _one(lambda g: g.conv(_x(g, dtype="uint8"), dtype="uint8",
                                                                     w_dtype="uint8", w_zp=[128] * 4))),
    "nnapi.scale_rule_before_29": ("nnapi:28", _one(lambda g: g.conv(_x(g, dtype="uint8"), dtype="uint8",
                                                                    w_dtype="uint8", per_channel=False, w_zp=128,
                                                                    w_scale=1.0, out_scale=0.01))),
    "nnapi.rank": ("nnapi:30", _one(lambda g: g.binary("ADD", (1, 2, 2, 4, 4)))),
    "nnapi.op_version": ("nnapi:30", _one(lambda g: g.conv(_x(g), version=6))),
    "nnapi.conv_bias": ("nnapi:30", _one(lambda g: g.conv(_x(g), bias=False))),
    "nnapi.dilation_before_29": ("nnapi:28", _one(lambda g: g.conv(_x(g, dtype="float32"), dtype="float32",
                                                                  dilationHFactor=2, dilationWFactor=2))),
    "nnapi.fc_keep_num_dims": ("nnapi:29", _one(lambda g: g.fc(g.act((1, 3, 16)), keep=True))),
    "nnapi.concat_activation": ("nnapi:30", _one(lambda g: _concat(g, act=1))),
    "nnapi.reshape_shape": ("nnapi:30", _one(_reshape_dynamic)),
    "nnapi.resize_modes": ("nnapi:30", _one(lambda g: g.with_const("RESIZE_BILINEAR", (1, 4, 4, 8), [[8, 8]],
                                                                    (1, 8, 8, 8), "ResizeBilinearOptions",
                                                                    alignCorners=True))),
    "nnapi.avg_pool_window": ("nnapi:30", _one(lambda g: _pool(g, "AVERAGE_POOL_2D", 17, shape=(1, 17, 17, 4)))),
    # Hexagon: QNN HTP
    "hexagon.htp_fixed_point": ("hexagon", _one(lambda g: g.binary("ADD", dtype="float32"))),
    "hexagon.htp_blockwise": ("hexagon", _one(lambda g: g.fc(g.act((1, 64), "float32"), w_dtype="int4", block=32,
                                                             dtype="float32"))),
    "hexagon.htp_symmetric_per_channel": ("hexagon", _one(lambda g: g.conv(_x(g), w_zp=[0, 1, 0, 0]))),
    "hexagon.htp_bias_scale": ("hexagon", _one(_bias_scale_wrong)),
    # Hexagon: legacy delegate
    "hexagon.legacy_ops": ("hexagon:legacy", _one(lambda g: g.with_const("EXPAND_DIMS", (4, 8), [0], (1, 4, 8)))),
    "hexagon.legacy_sum": ("hexagon:legacy", _one(lambda g: g.with_const("SUM", (1, 4, 4, 8), [[1, 2]], (1, 8),
                                                                          "ReducerOptions", keepDims=False))),
    "hexagon.legacy_quantized": ("hexagon:legacy", _one(lambda g: g.binary("ADD", dtype="float32"))),
    "hexagon.legacy_rank": ("hexagon:legacy", _one(lambda g: g.binary("ADD", (1, 2, 2, 4, 4)))),
    "hexagon.legacy_op_version": ("hexagon:legacy", _one(lambda g: g.binary("ADD", version=3))),
    "hexagon.legacy_fc_per_tensor": ("hexagon:legacy", _one(lambda g: g.fc(g.act((1, 16)), per_channel=True))),
    "hexagon.legacy_fc_options": ("hexagon:legacy", _one(lambda g: g.fc(g.act((1, 3, 16)), keep=True))),
    "hexagon.legacy_activation": ("hexagon:legacy", _one(lambda g: g.conv(_x(g), fusedActivationFunction=4))),
    "hexagon.legacy_no_activation": ("hexagon:legacy", _one(lambda g: _pool(g, act=1))),
    "hexagon.legacy_stride": ("hexagon:legacy", _one(lambda g: g.conv(_x(g), strideH=4, strideW=4))),
    "hexagon.legacy_conv_dilation": ("hexagon:legacy", _one(lambda g: g.conv(_x(g), dilationWFactor=2))),
    "hexagon.legacy_depth_multiplier": ("hexagon:legacy", _one(lambda g: g.conv(_x(g), cout=8,
                                                                                kind="DEPTHWISE_CONV_2D",
                                                                                depthMultiplier=2))),
    "hexagon.legacy_filter_height": ("hexagon:legacy", _one(lambda g: g.conv(_x(g), k=(1, 3),
                                                                             kind="DEPTHWISE_CONV_2D"))),
    "hexagon.legacy_max_pool_same": ("hexagon:legacy", _one(lambda g: _pool(g, size=13, padding=0,
                                                                            shape=(1, 16, 16, 4)))),
    "hexagon.legacy_resize_size": ("hexagon:legacy", _one(lambda g: g.with_const("RESIZE_BILINEAR", (1, 4, 4, 8),
                                                                                  [[80, 80]], (1, 80, 80, 8),
                                                                                  "ResizeBilinearOptions"))),
    # XNNPACK
    "xnnpack.ops": ("xnnpack", _one(lambda g: g.with_const("ARG_MAX", (1, 10), [1], (1,), "ArgMaxOptions",
                                                            outputType=2))),
    "xnnpack.int16": ("xnnpack", _one(lambda g: g.binary("ADD", dtype="int16"))),
    "xnnpack.qs8_zero_point": ("xnnpack", _one(lambda g: g.conv(_x(g), w_zp=[0, 0, 2, 0]))),
    "xnnpack.fc_int8_zero_point": ("xnnpack", _one(lambda g: g.fc(g.act((1, 16)), w_zp=3))),
    "xnnpack.scales_normal": ("xnnpack", _one(lambda g: g.conv(_x(g), w_scale=[0.01, 0.0, 0.01, 0.01]))),
    "xnnpack.qu8_per_tensor": ("xnnpack", _one(lambda g: g.conv(_x(g, dtype="uint8"), dtype="uint8",
                                                               w_dtype="uint8", w_zp=[128] * 4))),
    "xnnpack.int4_odd_channels": ("xnnpack", _one(lambda g: g.fc(g.act((1, 7)), w_dtype="int4", per_channel=True))),
    "xnnpack.blockwise_fc_only": ("xnnpack", _one(_blockwise_batch_matmul)),
    "xnnpack.blockwise_int4": ("xnnpack", _blockwise_int8),
    "xnnpack.blockwise_block_size": ("xnnpack", _one(lambda g: g.fc(g.act((1, 64), "float32"), w_dtype="int4",
                                                                    block=16, dtype="float32"))),
    # Core ML Neural Engine
    "coreml.recurrent": ("coreml-ane", _one(_lstm)),
    "coreml.gather": ("coreml-ane", _one(_gather)),
    "coreml.dilated_conv": ("coreml-ane", _one(lambda g: g.conv(_x(g), dilationHFactor=2, dilationWFactor=2))),
    "coreml.broadcast": ("coreml-ane", _one(lambda g: g.binary("ADD", (1, 4, 4, 8), (1, 1, 1, 8)))),
    "coreml.custom": ("coreml-ane", _one(_custom)),
    "coreml.blockwise": ("coreml-ane", _one(lambda g: g.fc(g.act((1, 64), "float32"), w_dtype="int4", block=32,
                                                           dtype="float32"))),
}


def _all_rules() -> dict[str, str]:
    return {r.id: r.effect for p in profiles().values() for r in p.rules}


def test_every_rule_has_a_breaking_model():
    rules = _all_rules()
    assert len(rules) >= 70
    assert sorted(set(rules) - set(BREAKERS)) == [], "rules without a model that breaks them"
    assert sorted(set(BREAKERS) - set(rules)) == [], "breaking models for rules no profile has"


@pytest.mark.parametrize("rule_id", sorted(BREAKERS))
def test_check_names_the_broken_rule(rule_id):
    spec, build = BREAKERS[rule_id]
    graph, index = build()
    model = graph if rule_id == "xnnpack.blockwise_int4" else write_tflite(graph)  # through the file format
    result = check(model, spec)
    op = result.ops[index]
    effect = _all_rules()[rule_id]
    named = [r.rule for r in (op.reasons if effect == "cpu" else op.notes)]
    assert rule_id in named, f"{spec} op {index} {op.op}: reasons {[r.text for r in op.reasons + op.notes]}"
    reason = next(r for r in op.reasons + op.notes if r.rule == rule_id)
    assert reason.source and reason.source in reason.text
    data = report_data([result])  # the report (report.json's facts, and the page) names it too
    assert rule_id in json.dumps(data) and rule_id in render_html(data)
    if effect == "cpu":
        assert op.placement == "cpu"
        assert any(s.startswith(f"{rule_id}: ") for s in result.to_dict()["ops"][index]["reasons"])
    else:
        assert op.placement == "accelerator" and not op.reasons
