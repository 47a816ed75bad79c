"""Op-level tests of the Core ML lowering (edgeq/export/coreml_ops.py), in the manner of ggml's test-backend-ops:
every float model of the op-model corpus (tests/opmodels.py: one builtin each under the variants that change its
lowering -- strides, padding, dilation, fused activations, broadcasting, axes, resize modes -- plus multi-op
blocks) is quantized once by edgeq and exported as fp16, w8 and w8a8 packages, which verify_coreml reads back.
Ops edgeq has no quantization rule for stay float, as `allow_float_ops` exports them, so their lowerings are
tested in every mode too.

A lowering bug (a layout, padding, resize mode, axis remap or broadcast wrong) leaves the weights intact but
moves the outputs far from the float model carrying the package's own parameters, which fp16 and w8 must match
to fp32 rounding. Under w8a8 the package is compared with the integer .tflite in LiteRT's BUILTIN_REF kernels.
The first run builds the float corpus (about a minute on 2 cores); later runs reuse it.
"""

from __future__ import annotations

import functools
import zlib
from pathlib import Path

import numpy as np
import pytest

import edgeq
from edgeq.errors import CalibrationDataError, ModelFormatError
from edgeq.export.coreml_ops import LOWERINGS
from edgeq.quant.op_rules import RULES, SHAPE_OPS
from edgeq.runtime import LiteRT
from edgeq.verify.bitexact import KNOWN_REFERENCE_DEFECTS
from tests.opmodels import FLOAT, calibration, op_models, skipped, spec_names

# fp16 / w8 against the float model with the package's parameters: fp32 rounding measures 7.7e-7 at worst here
# (RESIZE_BILINEAR downscaling and MEAN: summation order); the lowering bugs found were 4e-5 and more.
STORED_RELATIVE_ERROR = 1e-5
# w8a8 against the integer model, per output. Core ML requantizes in float and rounds half to even where
# LiteRT's fixed point rounds twice, so near-ties come out 1 LSB apart. One op's flips cost little: the single-op
# models measure 40.7 dB at worst (AVERAGE_POOL_2D; MEAN and RESIZE_BILINEAR, which also divide, 42-45 dB) and 77
# of them are exact. In a block the flips feed the next ops: in the transformer block a fifth of the layer norms'
# MEAN outputs flip, and RSQRT and attention carry that to 27.5 dB at the output.
SINGLE_OP_SQNR_DB = 35.0
BLOCK_SQNR_DB = 24.0
BLOCKS = {"mobilenet_block", "transformer_block", "audio_conv1d_block"}
SAMPLES = 16


@functools.cache
def _float_models() -> dict[str, Path]:
    """The float corpus by spec name (built on first use)."""
    return {m.name.rsplit(".", 1)[0]: m.path for m in op_models(quantizers=[FLOAT])}


def _batches(samples: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per-sample input lists as batch-first arrays, a batch-1 input's own batch axis folded into edgeq's. edgeq
    feeds a model one sample at a time, the first axis being the batch: a fixed batch above 1, or a rank-1 input
    (EMBEDDING_LOOKUP's ids), cannot be fed, and it refuses them."""
    stacked = [np.stack([s[i] for s in samples]) for i in range(len(samples[0]))]
    return [x[:, 0] if x.shape[1] == 1 else x for x in stacked]


def _held_out(spec: str, calib: list[np.ndarray]) -> list[np.ndarray]:
    """Fresh uniform samples within each input's calibrated range (index inputs: integers in it). Not the
    calibration set itself: its ramps give means near zero, whose float references lose digits to cancellation
    (a relative error of 1.6e-5 in LiteRT's own MEAN while the package is within 4e-8 of float64)."""
    rng = np.random.default_rng(zlib.crc32(spec.encode()))
    held = []
    for x in calib:
        shape = (SAMPLES, *x.shape[1:])
        if x.dtype.kind == "i":
            held.append(rng.integers(int(x.min()), int(x.max()) + 1, shape).astype(x.dtype))
        else:
            held.append(rng.uniform(float(x.min()), float(x.max()), shape).astype(x.dtype))
    return held


def _integer_reference_gap(qm: edgeq.QuantizedModel) -> str | None:
    """Why the integer model cannot be the w8a8 reference, if it cannot: an op BUILTIN_REF lacks or computes
    wrongly (edgeq.verify.bitexact keeps the measured list)."""
    try:
        LiteRT(qm.host_tflite, reference=True)
    except ModelFormatError as e:
        return str(e).splitlines()[0]
    graph = qm.graph
    for op in graph.ops:
        if op.inputs and op.inputs[0] >= 0:
            defect = KNOWN_REFERENCE_DEFECTS.get((op.kind, graph.tensors[op.inputs[0]].dtype.upper()))
            if defect:
                return f"{op.kind}: {defect}"
    return None


@pytest.mark.parametrize("spec", spec_names())
def test_lowering(spec: str, tmp_path: Path) -> None:
    """One QuantizedModel, its packages in each mode: weights decode to the plan's integers, fp16/w8 compute the
    float model with the package's parameters to fp32 rounding, w8a8 stays within rounding of the integer model."""
    path = _float_models().get(spec)
    if path is None:
        pytest.skip(f"no float model: {skipped([FLOAT]).get(f'{spec}.{FLOAT}')}")
    model = edgeq.load(path.read_bytes())
    unlowered = sorted({op.kind for op in model.graph.ops} - set(LOWERINGS))
    if unlowered:
        pytest.skip(f"no Core ML lowering for {', '.join(unlowered)}")
    calib = _batches(calibration(spec))
    try:
        qm = edgeq.quantize(
            model, edgeq.calibration.arrays(*calib), scheme="int8", allow_float_ops=True, progress=False
        )
    except CalibrationDataError as e:  # see _batches
        pytest.skip(f"edgeq cannot calibrate it: {str(e).splitlines()[0]}")
    ruled = [f.kind for f in qm.plan.float_ops if f.kind in RULES or f.kind in SHAPE_OPS]
    assert not ruled, f"edgeq left ops it has quantization rules for float: {ruled}"
    data = edgeq.calibration.arrays(*_held_out(spec, calib))
    # Without quantized weights a w8 package is the fp16 program: not exported twice.
    has_weights = any(e.narrow_range or e.dtype == "int4" for e in qm.plan.tensors.values())
    gap = _integer_reference_gap(qm)
    for mode in ["fp16", "w8", "w8a8"] if has_weights else ["fp16", "w8a8"]:
        package = qm.export_coreml(tmp_path / f"{mode}.mlpackage", mode=mode)
        if mode == "w8a8" and gap is not None:
            pytest.skip(f"fp16/w8 verified, w8a8 exported; no integer reference to compare it with: {gap}")
        result = edgeq.verify_coreml(package, qm, data=data, samples=SAMPLES)
        assert result.weights_exact, f"{mode}: {result.weight_mismatches}"
        for out in result.outputs:
            if mode == "w8a8":
                floor = BLOCK_SQNR_DB if spec in BLOCKS else SINGLE_OP_SQNR_DB
                assert out.sqnr_vs_integer_db >= floor, f"{mode} {out.name}:\n{result.summary()}"
            else:
                assert out.relative_error_vs_stored < STORED_RELATIVE_ERROR, f"{mode} {out.name}:\n{result.summary()}"


def test_blocks_are_in_the_corpus() -> None:
    """The looser w8a8 floor applies to the multi-op blocks by name: a renamed block must not go unnoticed."""
    assert set(spec_names()) >= BLOCKS
