"""Target profiles: the schema check over every file, target specs, partition rules as the runtimes apply
them, MAC counts, and a clean model that maps everywhere (no rule fires where none should)."""

from __future__ import annotations

import numpy as np
import pytest
import tomllib

from edgeq.errors import PlanError
from edgeq.export.tflite_writer import write_tflite
from edgeq.targets import check, profiles, resolve
from edgeq.targets.conditions import CONDITIONS
from edgeq.targets.partition import node_subsets
from edgeq.targets.profile import PROFILE_DIR, load_profile
from edgeq.targets.schema import KIND_PARAMS, validate
from tests.test_targets_rules import G

PROFILE_FILES = sorted(PROFILE_DIR.glob("*.toml"))


def test_five_profiles_exist():
    assert {p.stem for p in PROFILE_FILES} == {"edgetpu", "nnapi", "hexagon", "xnnpack", "coreml_ane"}
    assert set(profiles()) == {"edgetpu", "nnapi", "hexagon", "xnnpack", "coreml-ane"}


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_profile_passes_the_schema(path):
    raw = tomllib.loads(path.read_text())
    assert validate(raw, str(path)) == []
    profile = load_profile(path)
    assert profile.rules and all(r.source.strip() and r.message.strip() for r in profile.rules)


def test_every_condition_kind_has_an_evaluator():
    assert set(KIND_PARAMS) == set(CONDITIONS)


def test_schema_names_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[target]\nname = "npu"\ntitle = "t"\naccelerator = "NPU"\nsummary = "s"\n'
        '[[partition]]\nkind = "largest"\nmessage = "m"\nsource = "s"\n'
        '[[rule]]\nid = "npu.a"\nkind = "op_allowed"\nallowed = ["CONV2D"]\nmessage = "m"\nsource = "s"\n'
        '[[rule]]\nid = "npu.b"\nkind = "dtype"\ntensors = "weights"\nallowed = ["int9"]\nmessage = "m"\n'
        '[[rule]]\nid = "other.c"\nkind = "nope"\nmessage = "m"\nsource = "s"\n'
    )
    with pytest.raises(PlanError) as e:
        load_profile(bad)
    text = str(e.value)
    for expected in ("kind 'largest' needs max_partitions", "not TFLite builtin names: ['CONV2D']",
                     "missing 'source'", "unknown dtypes ['int9']", "tensors 'weights'", "kind 'nope'"):
        assert expected in text


def test_a_new_accelerator_is_a_new_file(tmp_path):
    (tmp_path / "npu.toml").write_text(
        '[target]\nname = "npu"\ntitle = "An NPU"\naccelerator = "NPU"\nsummary = "s"\n'
        '[[partition]]\nkind = "single_cut"\nmessage = "one cut"\nsource = "vendor manual"\n'
        '[[rule]]\nid = "npu.ops"\nkind = "op_allowed"\nallowed = ["CONV_2D"]\nmessage = "m"\nsource = "manual p. 3"\n'
    )
    g = G()
    x = g.act((1, 8, 8, 4))
    g.op("RELU", [g.conv(x)], [g.act((1, 8, 8, 4))])
    result = check(write_tflite(g.graph()), resolve("npu", tmp_path))
    assert [o.placement for o in result.ops] == ["accelerator", "cpu"]
    assert result.ops[1].reasons[0].text == "npu.ops: m (RELU is not listed) [source: manual p. 3]"


def test_target_specs():
    assert resolve("nnapi").spec == "nnapi:30"
    assert resolve("nnapi:27").level == 27
    assert resolve("nnapi:33").level == 33  # later levels keep API 30's rules
    assert resolve("hexagon").spec == "hexagon:htp"
    assert resolve("hexagon:legacy").variant == "legacy"
    assert resolve("coreml-ane").profile.device_only
    for bad, words in (("tpu", "unknown target 'tpu'"), ("nnapi:26", "integer >= 27"), ("hexagon:v75", "htp"),
                       ("edgetpu:2", "no levels or variants")):
        with pytest.raises(PlanError, match=words):
            resolve(bad)


def test_plan_constraints_follow_the_level():
    ids27 = {r.id for r in resolve("nnapi:27").plan_constraints()}
    ids30 = {r.id for r in resolve("nnapi:30").plan_constraints()}
    assert {"nnapi.per_channel_before_29", "nnapi.scale_rule_before_29", "nnapi.uint8_conv_before_29"} <= ids27
    assert not {"nnapi.per_channel_before_29", "nnapi.scale_rule_before_29"} & ids30
    assert "edgetpu.rank" in {r.id for r in resolve("edgetpu").plan_constraints()}
    assert "hexagon.legacy_fc_per_tensor" in {r.id for r in resolve("hexagon:legacy").plan_constraints()}


def _clean_model() -> bytes:
    """int8 conv -> depthwise -> add -> average pool -> fully connected (per-tensor) -> softmax: what every
    profile accepts at its newest level."""
    g = G()
    x = g.act((1, 8, 8, 4))
    y = g.conv(x, cout=4)
    z = g.conv(y, cout=4, kind="DEPTHWISE_CONV_2D")
    s = g.act((1, 8, 8, 4))
    g.op("ADD", [y, z], [s], "AddOptions", fusedActivationFunction=0)
    p = g.act((1, 1, 1, 4))
    g.op("AVERAGE_POOL_2D", [s], [p], "Pool2DOptions", padding=1, strideW=8, strideH=8, filterWidth=8,
         filterHeight=8, fusedActivationFunction=0)
    flat = g.act((1, 4))
    g.op("RESHAPE", [p, g.const([1, 4])], [flat])
    logits = g.fc(flat, units=10)
    out = g.act((1, 10), scale=1 / 256)
    g.tensors[out].quant.zero_point[:] = -128
    g.op("SOFTMAX", [logits], [out], "SoftmaxOptions", beta=1.0)
    return write_tflite(g.graph())


@pytest.mark.parametrize("spec", ["edgetpu", "nnapi:29", "nnapi:30", "hexagon", "hexagon:legacy", "xnnpack",
                                  "coreml-ane"])
def test_clean_model_maps_everywhere(spec):
    result = check(_clean_model(), spec)
    assert [o.index for o in result.ops if o.reasons] == []
    s = result.summary
    assert (s["ops_on_accelerator"], s["ops_total"], s["partitions"], s["cpu_share_macs"]) == (7, 7, 1, 0.0)


def test_clean_model_at_api_27_keeps_int8_convolutions_on_the_cpu():
    result = check(_clean_model(), "nnapi:27")
    assert [o.op for o in result.ops if o.placement == "cpu"] == ["CONV_2D", "DEPTHWISE_CONV_2D",
                                                                    "FULLY_CONNECTED"]
    assert result.summary["cpu_share_macs"] == 1.0


def test_macs_from_shapes():
    result = check(_clean_model(), "xnnpack")
    # conv 8x8x4 out, 3x3x4 kernel; depthwise 8x8x4 out, 3x3; FC 10 outputs x 4 inputs
    assert [o.macs for o in result.ops] == [8 * 8 * 4 * 3 * 3 * 4, 8 * 8 * 4 * 3 * 3, 0, 0, 0, 10 * 4, 0]
    assert result.summary["macs_total"] == 9216 + 2304 + 40


def _chain(kinds: list[str]) -> bytes:
    """int8 [1, 8] through a chain of unary ops (HARD_SWISH is what Edge TPU and the legacy Hexagon
    delegate lack, and NNAPI maps; EXP none of the three)."""
    g = G()
    x = g.act((1, 8))
    for kind in kinds:
        y = g.act((1, 8))
        g.op(kind, [x], [y])
        x = y
    return write_tflite(g.graph())


def test_edgetpu_single_cut():
    result = check(_chain(["RELU", "RELU", "HARD_SWISH", "RELU", "LOGISTIC"]), "edgetpu")
    assert [o.placement for o in result.ops] == ["accelerator"] * 2 + ["cpu"] * 3
    assert [r.rule for r in result.ops[2].reasons] == ["edgetpu.ops"]
    assert [r.rule for r in result.ops[4].reasons] == ["edgetpu.partition"]
    assert "after the cut at op 2 (HARD_SWISH)" in result.ops[4].reasons[0].text
    assert result.partitions == [[0, 1]]
    assert result.summary["first_cpu_op"] == 2


def test_nnapi_keeps_the_three_largest_partitions():
    kinds = ["RELU", "RELU", "RELU", "EXP", "RELU", "EXP", "RELU", "RELU", "EXP", "LOGISTIC", "LOGISTIC"]
    result = check(_chain(kinds), "nnapi:30")
    assert result.partitions == [[0, 1, 2], [6, 7], [9, 10]]
    assert result.ops[4].placement == "cpu"
    assert "not among the 3 largest" in result.ops[4].reasons[0].text
    assert result.summary["partitions"] == 3


def test_hexagon_legacy_drops_single_node_partitions():
    result = check(_chain(["RELU", "EXP", "RELU", "RELU", "EXP", "LOGISTIC"]), "hexagon:legacy")
    assert result.partitions == [[2, 3]]
    assert [r.rule for r in result.ops[0].reasons] == ["hexagon.partition"]
    assert "below the minimum of 2" in result.ops[0].reasons[0].text


def test_partitions_follow_dependencies_not_positions():
    """Ops 0 and 2 are supported, op 1 is not and is independent of them: TFLite's partitioner puts 0 and 2
    in one subset (graph_info.cc), although op 1 lies between them in execution order."""
    g = G()
    x = g.act((1, 8))
    a, b, c = g.act((1, 8)), g.act((1, 8)), g.act((1, 8))
    g.op("RELU", [x], [a])
    g.op("EXP", [x], [b])
    g.op("RELU", [a], [c])
    graph = g.graph()
    assert node_subsets(graph, [True, False, True]) == [(True, [0, 2]), (False, [1])]
    assert check(write_tflite(graph), "nnapi:30").partitions == [[0, 2]]


def test_to_dict_is_the_json_contract():
    d = check(_clean_model(), "edgetpu").to_dict()
    assert d["target"] == "edgetpu"
    assert set(d["ops"][0]) >= {"index", "op", "placement", "reasons"}
    assert d["ops"][0]["reasons"] == [] and d["ops"][0]["placement"] == "accelerator"
    assert set(d["summary"]) >= {"ops_total", "ops_on_accelerator", "partitions"}
    assert np.isclose(d["summary"]["cpu_share_ops"], 0.0)
