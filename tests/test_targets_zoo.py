"""`edgeq check` on real models: the placements docs/targets/README.md reads against the rules by hand,
held as regression tests (EfficientNet-Lite0 and MediaPipe's selfie segmentation, int8 by edgeq)."""

from __future__ import annotations

import pytest

from bench.check_zoo import quantized
from edgeq.targets import check

pytestmark = pytest.mark.zoo


def _cpu_rules(result) -> dict[int, list[str]]:
    return {o.index: [r.rule for r in o.reasons] for o in result.ops if o.placement == "cpu"}


def test_efficientnet_lite0():
    path = quantized("efficientnet_lite0")
    tpu = check(path, "edgetpu")
    assert [o.op for o in tpu.ops[:3]] == ["QUANTIZE", "PAD", "TRANSPOSE"]  # the NCHW input's transpose
    assert tpu.summary["first_cpu_op"] == 2 and tpu.summary["ops_on_accelerator"] == 2
    assert _cpu_rules(tpu)[2] == ["edgetpu.ops", "edgetpu.unsupported_ops"]
    assert _cpu_rules(check(path, "nnapi:30")) == {}
    assert _cpu_rules(check(path, "nnapi:29")) == {62: ["nnapi.fc_keep_num_dims"]}
    legacy = _cpu_rules(check(path, "hexagon:legacy"))
    assert legacy[62] == ["hexagon.legacy_op_version", "hexagon.legacy_fc_per_tensor", "hexagon.legacy_fc_options"]
    assert _cpu_rules(check(path, "xnnpack")) == {} and _cpu_rules(check(path, "coreml-ane")) == {}


def test_selfie_segmentation():
    path = quantized("selfie_segmentation")
    nnapi = check(path, "nnapi:30")
    by_rule: dict[str, list[int]] = {}
    for index, rules in _cpu_rules(nnapi).items():
        for rule in rules:
            by_rule.setdefault(rule, []).append(index)
    # windows of 64x64, 32x32, 64x64, 128x128 values; the 16x16 ones (256) pass
    assert by_rule["nnapi.avg_pool_window"] == [7, 93, 108, 123]
    assert by_rule["nnapi.resize_modes"] == [90, 105, 120]  # half_pixel_centers
    assert by_rule["nnapi.op_level"] == [136]  # the custom Convolution2DTransposeBias
    assert nnapi.summary["partitions"] == 3
    tpu = check(path, "edgetpu")
    assert tpu.ops[2].op == "HARD_SWISH" and tpu.summary["first_cpu_op"] == 2
    assert _cpu_rules(check(path, "hexagon:legacy"))[120] == ["hexagon.legacy_resize_size"]
    assert _cpu_rules(check(path, "xnnpack")) == {136: ["xnnpack.ops"]}
