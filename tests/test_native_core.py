"""The C interpreter's core, independent of any one kernel: loading, the arena plan, the op-by-op
bit-exact verifier (which must name the first differing op), and the `edgeq verify` / `edgeq run` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgeq
from edgeq.cli import main
from edgeq.errors import InputDataError, UnsupportedOpError
from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph, Op, Quantization, Tensor
from edgeq.verify import bitexact
from edgeq.verify.native import NativeModel
from tests.graphs import dense_graph

N = 96  # elements per tensor in the chain


def _q(scale: float, zero_point: int) -> Quantization:
    return Quantization(np.array([scale], np.float32), np.array([zero_point], np.int64))


def reshape_chain(links: int = 5) -> bytes:
    """float [1, N] -> QUANTIZE (int8) -> `links` RESHAPEs -> DEQUANTIZE -> float [1, N]."""
    q = _q(0.05, 3)
    shapes = [(1, N), (2, N // 2), (N,), (4, N // 4), (1, 1, N), (3, N // 3)]
    tensors = [Tensor("x", (1, N), "float32"), Tensor("xq", (1, N), "int8", quant=q)]
    ops = [Op("QUANTIZE", [0], [1])]
    for k in range(links):
        shape = shapes[(k + 1) % len(shapes)]
        tensors.append(Tensor(f"r{k}", shape, "int8", quant=q))
        ops.append(Op("RESHAPE", [len(tensors) - 2], [len(tensors) - 1], options={"newShape": list(shape)},
                      options_type="ReshapeOptions"))
    tensors.append(Tensor("y", tensors[-1].shape, "float32"))
    ops.append(Op("DEQUANTIZE", [len(tensors) - 2], [len(tensors) - 1]))
    return write_tflite(Graph(tensors=tensors, ops=ops, inputs=[0], outputs=[len(tensors) - 1]))


def test_chain_is_bit_exact_and_reports_counts() -> None:
    result = edgeq.verify(reshape_chain(), samples=3, seed=1)
    assert result.bit_exact, result.summary()
    d = result.to_dict()
    assert d["first_divergence"] is None and d["reference"].startswith("LiteRT BUILTIN_REF")
    assert d["samples"] == 3 and d["ops"] == 7 and d["tensors_compared"] == 7
    assert d["values_compared"] == 3 * 7 * N


def test_arena_reuses_memory_between_dead_tensors() -> None:
    """Only neighbours in the chain are alive together: the peak pair is the float output (4N bytes) and
    its int8 input (N), far less than the sum of every activation."""
    links = 5
    native = NativeModel(reshape_chain(links))
    every_activation = 4 * N + N + links * N + 4 * N
    assert native.arena_bytes <= 4 * N + N + 2 * 16, native.arena_bytes
    assert native.arena_bytes < every_activation / 2


def test_verify_names_the_first_differing_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """A perturbation of op 3's output must be reported as op 3 (RESHAPE), not as a later op."""
    model = reshape_chain()
    victim = NativeModel(model).ops[3].outputs[0]
    original = NativeModel.tensor

    def perturbed(self: NativeModel, index: int) -> np.ndarray:
        value = original(self, index)
        if index == victim:
            value.reshape(-1)[7] = np.int8(value.reshape(-1)[7] ^ 1)
        return value

    monkeypatch.setattr(NativeModel, "tensor", perturbed)
    result = bitexact.verify(model, samples=2)
    assert not result.bit_exact
    d = result.first_divergence
    assert d is not None and (d.op_index, d.op, d.sample, d.mismatched, d.max_abs_diff) == (3, "RESHAPE", 0, 1, 1.0)
    assert "op 3 (RESHAPE)" in result.summary()
    assert result.to_dict()["first_divergence"]["tensor"] == NativeModel(model).tensors[victim].name


def test_run_quantizes_float_inputs_and_rejects_wrong_ones() -> None:
    model = reshape_chain()
    x = np.linspace(-6, 6, N, dtype=np.float32).reshape(1, N)
    (y,) = edgeq.run(model, [x])
    q = np.clip(np.round(x / np.float32(0.05)) + 3, -128, 127)
    expected = ((q - 3) * np.float64(np.float32(0.05))).astype(np.float32)
    np.testing.assert_array_equal(y.reshape(-1), expected.reshape(-1))
    with pytest.raises(InputDataError, match="needs shape"):
        edgeq.run(model, [np.zeros((1, N + 1), np.float32)])
    with pytest.raises(InputDataError, match="1 inputs, 2 given"):
        edgeq.run(model, [x, x])


def test_ops_without_a_kernel_are_refused_at_load_naming_the_op() -> None:
    with pytest.raises(UnsupportedOpError, match="op 1 is FLOOR"):
        NativeModel(dense_graph(tail="FLOOR"))


def test_cli_verify_json_and_run_npz(tmp_path, capsys) -> None:
    path = tmp_path / "chain.tflite"
    path.write_bytes(reshape_chain())
    assert main(["verify", str(path), "--samples", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bit_exact"] is True and out["first_divergence"] is None and "reference" in out

    x = np.random.default_rng(0).normal(size=(1, N)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)  # by input name
    assert main(["run", str(path), "--inputs", str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz"),
                 "--stats"]) == 0
    assert "arena" in capsys.readouterr().out
    with np.load(tmp_path / "out.npz") as npz:
        assert npz.files == ["arr_0"]
        np.testing.assert_array_equal(npz["arr_0"], edgeq.run(path, [x])[0])

    np.savez(tmp_path / "batch.npz", np.stack([x, -x]))  # arr_0 with a sample axis: two samples
    assert main(["verify", str(path), "--inputs", str(tmp_path / "batch.npz")]) == 0
    assert "bit-exact: 2 samples" in capsys.readouterr().out

    np.savez(tmp_path / "wrong.npz", other=x)
    assert main(["run", str(path), "--inputs", str(tmp_path / "wrong.npz"), "--outputs", str(tmp_path / "o2.npz")]) == 2
    assert "no array for input 0" in capsys.readouterr().err
    assert not (tmp_path / "o2.npz").exists()


def test_a_known_reference_defect_is_reported_beside_bit_exactness() -> None:
    """LiteRT 2.3's BUILTIN_REF int8 SUM adds bytes as uint8: edgeq matches it bit for bit, and says so."""
    g = Graph(
        tensors=[Tensor("x", (1, 4, 8), "int8", quant=_q(0.1, 0)),
                 Tensor("axis", (1,), "int32", data=np.array([2], np.int32)),
                 Tensor("y", (1, 4), "int8", quant=_q(0.4, 0))],
        ops=[Op("SUM", [0, 1], [2], options={"keepDims": False}, options_type="ReducerOptions")],
        inputs=[0], outputs=[2])
    result = edgeq.verify(write_tflite(g), samples=4)
    assert result.bit_exact, result.summary()
    assert len(result.reference_defects) == 1 and "op 0 (SUM)" in result.reference_defects[0]
    assert "note: op 0 (SUM)" in result.summary()


def test_an_options_table_of_another_type_is_ignored_as_litert_does() -> None:
    """A FULLY_CONNECTED carrying AddOptions (RELU): LiteRT parses FullyConnectedOptions as absent and does not
    clamp; edgeq's loader drops the mistyped table too (AddOptions' field 0 would read as a fused RELU)."""
    rng = np.random.default_rng(5)
    w = Quantization(np.array([0.02], np.float32), np.array([0], np.int64))
    g = Graph(
        tensors=[Tensor("x", (1, 8), "int8", quant=_q(0.05, 3)),
                 Tensor("w", (4, 8), "int8", data=rng.integers(-127, 128, (4, 8)).astype(np.int8), quant=w),
                 Tensor("b", (4,), "int32", data=np.zeros(4, np.int32),
                        quant=Quantization(np.array([0.001], np.float32), np.array([0], np.int64))),
                 Tensor("y", (1, 4), "int8", quant=_q(0.1, 0))],
        ops=[Op("FULLY_CONNECTED", [0, 1, 2], [3], options={"fusedActivationFunction": 1}, options_type="AddOptions")],
        inputs=[0], outputs=[3])
    model = write_tflite(g)
    result = edgeq.verify(model, samples=8)
    assert result.bit_exact, result.summary()
