"""Bad input gets a specific exception naming what and where, and no output file is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgeq
from edgeq import cli
from edgeq.errors import (
    AlreadyQuantizedError,
    CalibrationDataError,
    ModelFormatError,
    UnsupportedOpError,
)
from tests.graphs import dense_graph

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflm"


@pytest.fixture
def float_model(tmp_path: Path) -> Path:
    path = tmp_path / "dense.tflite"
    path.write_bytes(dense_graph())
    return path


def _convert(tmp_path: Path, model: Path, calib: Path) -> tuple[int, Path]:
    out = tmp_path / "dist"
    code = cli.main(["convert", str(model), "--calib", str(calib), "-o", str(out), "--quiet"])
    return code, out


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), f"files left behind: {list(out.iterdir())}"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_calibration_data_names_input_and_sample(tmp_path, float_model, bad, capsys):
    x = np.ones((10, 1, 8), np.float32)
    x[7, 0, 3] = bad
    with pytest.raises(CalibrationDataError, match=r"input.*sample 7|sample 7.*input"):
        edgeq.quantize(
            edgeq.load(float_model), edgeq.calibration.arrays(x.reshape(10, 8), batch_size=10), progress=False
        )
    np.save(tmp_path / "calib.npy", x.reshape(10, 8))
    code, out = _convert(tmp_path, float_model, tmp_path / "calib.npy")
    assert code == 2
    assert "CalibrationDataError" not in capsys.readouterr().out  # message on stderr, no JSON asked
    _assert_nothing_written(out)


def test_wrong_shape_names_expected_and_got(float_model):
    with pytest.raises(CalibrationDataError, match=r"8.*5|5.*8"):
        edgeq.quantize(
            edgeq.load(float_model), edgeq.calibration.arrays(np.ones((4, 5), np.float32)), progress=False
        )


def test_wrong_dtype(float_model):
    with pytest.raises(CalibrationDataError):
        edgeq.quantize(
            edgeq.load(float_model), edgeq.calibration.arrays(np.array([["a"] * 8] * 2)), progress=False
        )


def test_empty_calibration_set(tmp_path, float_model):
    with pytest.raises(CalibrationDataError, match="empty"):
        edgeq.quantize(
            edgeq.load(float_model), edgeq.calibration.arrays(np.zeros((0, 8), np.float32)), progress=False
        )
    np.save(tmp_path / "empty.npy", np.zeros((0, 8), np.float32))
    code, out = _convert(tmp_path, float_model, tmp_path / "empty.npy")
    assert code == 2
    _assert_nothing_written(out)


@pytest.mark.parametrize("io", ["float32", "int8"])
def test_already_quantized_model(tmp_path, io):
    x = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    quantized = edgeq.quantize(edgeq.load(dense_graph()), edgeq.calibration.arrays(x), io=io, progress=False)
    model = tmp_path / "quantized.tflite"
    quantized.save(model)
    with pytest.raises(AlreadyQuantizedError, match="already quantized"):
        edgeq.load(model)
    np.save(tmp_path / "calib.npy", x)
    code, out = _convert(tmp_path, model, tmp_path / "calib.npy")
    assert code == 2
    _assert_nothing_written(out)


@pytest.mark.skipif(not (SHARED_MODELS / "hello_world_int8.tflite").exists(), reason="needs ../shared/models")
def test_third_party_int8_model_is_refused():
    with pytest.raises(AlreadyQuantizedError, match="already quantized"):
        edgeq.load(SHARED_MODELS / "hello_world_int8.tflite")


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("this is a text file, not a model\n")
    with pytest.raises(ModelFormatError, match="not a TFLite flatbuffer"):
        edgeq.load(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_tflite(tmp_path, keep):
    data = dense_graph()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFormatError, match=r"cut\.tflite"):
        edgeq.load(path)


def test_unknown_op_names_op_index_and_tensor(tmp_path):
    path = tmp_path / "sin.tflite"
    path.write_bytes(dense_graph(tail="SIN"))
    model = edgeq.load(path)
    x = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    with pytest.raises(UnsupportedOpError, match=r'op 1 \(SIN -> "tail"\)'):
        edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    np.save(tmp_path / "calib.npy", x)
    code, out = _convert(tmp_path, path, tmp_path / "calib.npy")
    assert code == 2
    _assert_nothing_written(out)
    # Allowed to stay float: it runs between DEQUANTIZE and QUANTIZE, and the plan says so.
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), allow_float_ops=True, progress=False)
    assert [(f.index, f.kind) for f in qm.plan.float_ops] == [(1, "SIN")]
    assert [op.kind for op in qm.graph.ops] == ["QUANTIZE", "FULLY_CONNECTED", "DEQUANTIZE", "SIN"]


def test_failed_run_keeps_earlier_output(tmp_path, float_model):
    x = np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)
    np.save(tmp_path / "good.npy", x)
    code, out = _convert(tmp_path, float_model, tmp_path / "good.npy")
    assert code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    x[3, 2] = np.nan
    np.save(tmp_path / "bad.npy", x)
    code, out = _convert(tmp_path, float_model, tmp_path / "bad.npy")
    assert code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
