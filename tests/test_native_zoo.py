"""Acceptance: every integer model made from the zoo, by edgeq and by its peers (ai-edge-quantizer static
w8a8 / w8a16, TFLiteConverter int8 / int16x8 for the Keras models), is bit-exact in edgeq's C interpreter
against LiteRT BUILTIN_REF on every intermediate tensor, for real held-out inputs and random ones.

Float ops the interpreter has kernels for are held to 1e-5 of their range (edgeq.verify); a model keeping an
op it cannot run (MediaPipe's custom transpose conv, a float op without a kernel) must be refused at load,
naming that op."""

from __future__ import annotations

import pytest

from bench import native_zoo, zoo

CASES = [(name, q) for name in zoo.ZOO for q in native_zoo.QUANTIZERS if native_zoo.applicable(name, q)]


@pytest.mark.zoo
@pytest.mark.parametrize(("name", "quantizer"), CASES, ids=[f"{n}-{q}" for n, q in CASES])
def test_zoo_model_is_bit_exact(name: str, quantizer: str) -> None:
    row = native_zoo.verify_row(name, quantizer, samples=2)
    if quantizer == "edgeq_int8" and name != "selfie_segmentation":  # its custom op stays float
        assert row.bit_exact is not None, f"edgeq's int8 model should be fully integer: {row.detail}"
    if row.bit_exact is None:
        if row.detail.startswith(f"{quantizer} failed"):
            pytest.skip(row.detail)  # the peer quantizer itself refused the model
        assert "UnsupportedOpError" in row.detail and ("FLOAT32" in row.detail or "custom op" in row.detail), row.detail
        return
    assert row.bit_exact, row.detail
    assert row.values > 0

