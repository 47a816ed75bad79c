"""The Fashion-MNIST loader on the real Debian files, its failure messages, and the shipped demo model."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from edgeq import datasets
from edgeq.datasets import FASHION_MNIST_CLASSES, fashion_mnist, preprocess

MODEL = Path(datasets.__file__).parent / "data" / "fashion_mnist_cnn.tflite"
# The demo model exists to exercise these ops; losing one would silently shrink what the demo covers.
EXPECTED_OPS = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "ADD",
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "MEAN",
    "FULLY_CONNECTED",
    "SOFTMAX",
}


def _load_or_skip(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return fashion_mnist(split)
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def fm_train() -> tuple[np.ndarray, np.ndarray]:
    return _load_or_skip("train")


@pytest.fixture(scope="module")
def fm_test() -> tuple[np.ndarray, np.ndarray]:
    return _load_or_skip("test")


@pytest.mark.parametrize(("split", "count"), [("train", 60000), ("test", 10000)])
def test_real_split_shapes_and_balance(split: str, count: int, request: pytest.FixtureRequest) -> None:
    images, labels = request.getfixturevalue(f"fm_{split}")
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert labels.min() == 0 and labels.max() == 9
    np.testing.assert_array_equal(np.bincount(labels), [count // 10] * 10)
    assert images.max() == 255 and images.flags.writeable


def test_preprocess_scales_to_unit_float(fm_test: tuple[np.ndarray, np.ndarray]) -> None:
    x = preprocess(fm_test[0][:4])
    assert x.shape == (4, 28, 28, 1) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(x[..., 0] * 255.0, fm_test[0][:4], atol=1e-4)


def test_classes() -> None:
    assert len(FASHION_MNIST_CLASSES) == 10 and len(set(FASHION_MNIST_CLASSES)) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_missing_file_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        fashion_mnist("test", root=tmp_path)
    assert str(tmp_path / "t10k-images-idx3-ubyte.gz") in str(info.value)


def test_env_var_sets_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(datasets.ROOT_ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        fashion_mnist("train")


def test_unknown_split() -> None:
    with pytest.raises(ValueError, match="split"):
        fashion_mnist("validation")


def _write_split(root: Path, images: bytes, labels: bytes) -> None:
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(images)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(labels)


def _idx(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return gzip.compress(struct.pack(f">I{len(shape)}I", magic, *shape) + payload)


GOOD_LABELS = _idx(0x801, (2,), bytes([0, 9]))
GOOD_IMAGES = _idx(0x803, (2, 28, 28), bytes(2 * 28 * 28))


def test_small_valid_files_load(tmp_path: Path) -> None:
    _write_split(tmp_path, GOOD_IMAGES, GOOD_LABELS)
    images, labels = fashion_mnist("test", root=tmp_path)
    assert images.shape == (2, 28, 28) and labels.tolist() == [0, 9]


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (b"this is not gzip data", GOOD_LABELS, "not a readable gzip file"),
        (GOOD_IMAGES[:-12], GOOD_LABELS, "not a readable gzip file"),  # truncated stream
        (_idx(0x801, (2, 28, 28), bytes(2 * 28 * 28)), GOOD_LABELS, "magic number"),
        (_idx(0x803, (2, 28, 28), bytes(100)), GOOD_LABELS, "payload"),
        (gzip.compress(b"\x00\x00"), GOOD_LABELS, "too short"),
        (_idx(0x803, (2, 27, 28), bytes(2 * 27 * 28)), GOOD_LABELS, "expected"),
        (GOOD_IMAGES, _idx(0x801, (3,), bytes(3)), "2 images but 3 labels"),
        (GOOD_IMAGES, _idx(0x801, (2,), bytes([0, 10])), "out of range"),
    ],
)
def test_corrupt_file_raises_value_error(tmp_path: Path, images: bytes, labels: bytes, message: str) -> None:
    _write_split(tmp_path, images, labels)
    with pytest.raises(ValueError, match=message) as info:
        fashion_mnist("test", root=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_shipped_model_ops_and_sidecar() -> None:
    model = schema.Model.GetRootAsModel(MODEL.read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = {names[model.OperatorCodes(i).BuiltinCode()] for i in range(model.OperatorCodesLength())}
    assert ops == EXPECTED_OPS
    sidecar = json.loads(MODEL.with_suffix(".json").read_text())
    assert sidecar["classes"] == list(FASHION_MNIST_CLASSES)
    assert sidecar["test_accuracy"] >= 0.90


def test_shipped_model_accuracy(fm_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = fm_test[0][:2000], fm_test[1][:2000]
    interpreter = Interpreter(model_path=str(MODEL))
    inp = interpreter.get_input_details()[0]
    assert inp["shape"].tolist() == [1, 28, 28, 1] and inp["dtype"] == np.float32
    interpreter.resize_tensor_input(inp["index"], [len(images), 28, 28, 1])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], preprocess(images))
    interpreter.invoke()
    probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)  # SOFTMAX is the last op
    accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    assert accuracy >= 0.90, f"shipped model reaches {accuracy:.4f} on the first 2000 test images"
