"""SmoothQuant on the small attention block of test_awq: the float function stays bit-equal, and the outlier
channels' share of the Q/K/V input range moves into the weights."""

from __future__ import annotations

import numpy as np

import edgeq
from edgeq.algorithms import smoothquant
from edgeq.algorithms.context import AlgorithmContext
from edgeq.quant.schemes import get_scheme
from tests.test_awq import CALIB, CHANNEL, _outputs, attention_block


def _spread(ctx: AlgorithmContext, tensor: int) -> float:
    """max / median over channels of the tensor's peak |value| on the calibration samples."""
    values = ctx.float_activations([tensor])[tensor]
    peak = np.max(np.abs(np.concatenate([v.reshape(-1, v.shape[-1]) for v in values])), axis=0)
    return float(peak.max() / np.median(peak))


def test_smoothing_keeps_the_float_function_and_flattens_the_input():
    model = edgeq.load(attention_block())
    ctx = AlgorithmContext(graph=model.graph.copy(), scheme=get_scheme("int8"), samples=[[x] for x in CALIB],
                           render=lambda g, p: (g, b"", b""), progress=False)  # fmt: skip
    before = _outputs(model.host_tflite)
    ln_out = next(op.outputs[0] for op in ctx.graph.ops if op.kind == "ADD")  # the layer norm's output
    spread = _spread(ctx, ln_out)
    notes = smoothquant.run(ctx)
    np.testing.assert_array_equal(_outputs(ctx.float_host_tflite()), before)
    assert notes[0].startswith("SmoothQuant (alpha 0.5): 2 of 3")
    assert CHANNEL.max() > 10 and spread > 8 and _spread(ctx, ln_out) < spread / 2
