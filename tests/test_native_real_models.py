"""Real integer models from other projects (../shared/models, TFLite Micro's conformance models): edgeq's C
interpreter must equal their golden outputs exactly and LiteRT BUILTIN_REF on every intermediate tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeq.verify.bitexact import verify
from edgeq.verify.native import NativeModel

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflm"
pytestmark = pytest.mark.skipif(not MODELS.is_dir(), reason=f"{MODELS} is not present (it is on CI machines)")


def _seanet_cases() -> list[Path]:
    return sorted(MODELS.glob("seanet/*/*.tflite"), key=lambda p: (p.parent.name, int(p.stem.lstrip("adconv"))))


def _csv(path: Path) -> np.ndarray:
    return np.array([int(v) for v in path.read_text().replace("\n", ",").split(",") if v.strip()], dtype=np.int64)


@pytest.mark.parametrize("model", _seanet_cases() if MODELS.is_dir() else [], ids=lambda p: p.stem)
def test_seanet_int16x8_equals_golden(model: Path) -> None:
    native = NativeModel(model)
    inputs = []
    for i, t in enumerate(native.inputs):
        values = _csv(model.with_name(f"{model.stem}_input{i}_int16.csv"))
        assert values.size == int(np.prod(t.shape)), f"input {i} of {model.name}"
        inputs.append(values.astype(t.dtype).reshape(t.shape))
    golden = _csv(model.with_name(f"{model.stem}_golden_int16.csv"))
    (output,) = native.run(inputs)
    assert output.dtype == np.int16
    mismatched = int(np.count_nonzero(output.reshape(-1).astype(np.int64) != golden))
    assert mismatched == 0, f"{model.name}: {mismatched} of {golden.size} values differ from the golden output"
    result = verify(model, inputs=[inputs])
    assert result.bit_exact, result.summary()


def test_seanet_has_every_case() -> None:
    kinds = [p.parent.name for p in _seanet_cases()]
    assert (kinds.count("add"), kinds.count("conv")) == (17, 22)


@pytest.mark.parametrize("name", ["hello_world_int8", "micro_speech_quantized"])
def test_tflm_int8_models_bit_exact(name: str) -> None:
    result = verify(MODELS / f"{name}.tflite", samples=32, seed=3)
    assert result.bit_exact, result.summary()
    assert result.values_compared > 0


def test_hello_world_computes_a_sine() -> None:
    """Beyond bit equality: the int8 model's output dequantizes to sin(x) within its known error."""
    native = NativeModel(MODELS / "hello_world_int8.tflite")
    t_in, t_out = native.inputs[0], native.outputs[0]
    xs = np.linspace(0.0, 2 * np.pi, 50)
    errors = []
    for x in xs:
        q = np.clip(np.round(x / t_in.scales[0]) + t_in.zero_points[0], -128, 127).astype(np.int8)
        (y,) = native.run([q.reshape(t_in.shape)])
        errors.append(abs((float(y.reshape(-1)[0]) - t_out.zero_points[0]) * t_out.scales[0] - np.sin(x)))
    assert np.median(errors) < 0.1, f"median |error| {np.median(errors):.3f}"
