"""GPTQ towards the float output: on a chain whose later layers can absorb earlier rounding, the logits end
closer to float than with GPTQ (which reconstructs each layer from its own quantized inputs); the integers
travel in the plan and the artifact stays bit-exact."""

from __future__ import annotations

import numpy as np

import edgeq
from edgeq.algorithms.layers import linear_layers, weight_grid
from tests.conv_chain import conv_chain, inputs

CALIB = inputs(64)
EVAL = inputs(32, seed=5)


def test_float_target_beats_gptq_and_stays_bit_exact():
    model = edgeq.load(conv_chain())
    calib, evaluation = edgeq.calibration.arrays(CALIB), edgeq.calibration.arrays(EVAL)
    sqnr = {}
    for algorithms in ((), ("gptq",), ("gptq_float_target",)):
        qm = edgeq.quantize(model, calib, scheme="int4-channel", algorithms=list(algorithms), progress=False)
        sqnr[algorithms] = edgeq.compare(model, qm, evaluation, layers=0).pooled_sqnr_db
    # Measured logit SQNR: round-to-nearest 16.46 dB, GPTQ 19.21, towards the float output 21.03.
    assert sqnr[("gptq_float_target",)] > sqnr[("gptq",)] + 1.0 > sqnr[()] + 3.0, sqnr
    for layer in linear_layers(model.graph, qm.plan):
        name = model.graph.tensors[layer.weight].name
        scale, _, _ = weight_grid(qm.plan, model.graph, layer)
        q = qm.plan.weights[name] / scale
        np.testing.assert_allclose(q, np.rint(q), atol=1e-4)  # scale * q re-quantizes to exactly q
    result = edgeq.verify(qm.tflite, inputs=[[EVAL[i : i + 1]] for i in range(4)])
    assert result.bit_exact, result.first_divergence
