"""The benchmark zoo: every model builds once, loads in LiteRT and runs on its own calibration data; the Keras
models hold every common builtin; photo crops are reproducible with disjoint calibration and eval photos."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from bench import zoo
from bench.photos import photo_crops, photo_names
from edgeq.ir.tflite_reader import read_tflite

pytestmark = pytest.mark.zoo

# Builtins the Keras test models must contain between them, so every one reaches the quantizer from a
# converter-made float model.
KERAS_BUILTINS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "ADD", "SUB", "MUL", "AVERAGE_POOL_2D",
    "MAX_POOL_2D", "MEAN", "RESHAPE", "SQUEEZE", "CONCATENATION", "PAD", "TRANSPOSE", "STRIDED_SLICE",
    "SOFTMAX", "LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6", "LEAKY_RELU", "PRELU", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
}  # fmt: skip
KERAS_MODELS = [name for name, model in zoo.ZOO.items() if model.source == "keras"]


def _run(path: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    assert len(details) == len(inputs)
    for detail, x in zip(details, inputs, strict=True):
        assert x.dtype == np.float32 and x.shape == tuple(detail["shape"]), (x.dtype, x.shape, detail["shape"])
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_model_builds_loads_and_runs_on_its_data(name: str) -> None:
    model = zoo.get(name)
    path = model.path()
    assert path.is_file() and path.parent == zoo.cache_dir()
    assert model.path() == path  # cached: the second call builds nothing
    graph = read_tflite(path)
    assert all(graph.tensors[i].dtype == "float32" for i in graph.inputs)
    outputs = _run(str(path), model.calib(1, 0))
    assert outputs and all(np.isfinite(o).all() for o in outputs)
    evaluation = model.eval(2, 0)
    assert [x.shape[1:] for x in evaluation] == [x.shape[1:] for x in model.calib(1, 0)]
    assert all(x.shape[0] == 2 for x in evaluation)


def test_keras_models_cover_the_common_builtins() -> None:
    kinds = {op.kind for name in KERAS_MODELS for op in read_tflite(zoo.get(name).path()).ops}
    assert not KERAS_BUILTINS - kinds, f"no Keras zoo model has {sorted(KERAS_BUILTINS - kinds)}"


@pytest.mark.parametrize("name", KERAS_MODELS)
def test_keras_model_matches_its_tflite(name: str) -> None:
    """The peer TFLiteConverter PTQ starts from keras_model(); it must be the model the .tflite came from."""
    model = zoo.get(name)
    assert model.keras_model is not None
    x = model.eval(4, 0)
    expected = np.asarray(model.keras_model()(x[0], training=False))
    got = np.concatenate([_run(str(model.path()), [x[0][i : i + 1]])[0] for i in range(4)])
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)


def test_photo_crops_are_deterministic_and_splits_disjoint() -> None:
    calib, evaluation = photo_names("calib"), photo_names("eval")
    assert not set(calib) & set(evaluation)
    assert len(calib) >= 5 and len(evaluation) >= 5
    a = photo_crops("eval", 14, 40, seed=3)
    assert a.shape == (14, 40, 40, 3) and a.dtype == np.uint8
    assert np.array_equal(a, photo_crops("eval", 14, 40, seed=3))
    assert np.array_equal(a[:5], photo_crops("eval", 5, 40, seed=3))  # a prefix does not depend on n
    assert not np.array_equal(a, photo_crops("eval", 14, 40, seed=4))
    b = photo_crops("calib", 14, 40, seed=3)
    assert not any(np.array_equal(x, y) for x in a for y in b)
    with pytest.raises(ValueError, match="split"):
        photo_crops("train", 1, 8)


def test_efficientnet_tflite_agrees_with_torch() -> None:
    import torch

    model = zoo.get("efficientnet_lite0")
    (x,) = model.eval(8, 0)
    assert x.shape == (8, 3, 224, 224)
    with torch.no_grad():
        reference = zoo.efficientnet_lite0_torch()(torch.from_numpy(x)).numpy()
    got = np.concatenate([_run(str(model.path()), [x[i : i + 1]])[0] for i in range(8)])
    assert got.shape == (8, 1000)
    np.testing.assert_array_equal(got.argmax(1), reference.argmax(1))
    assert np.abs(got - reference).max() < 1e-2 * np.abs(reference).max()


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        zoo.get("resnet50")
