"""Frontends: Keras and PyTorch models become float graphs that quantize and match their source model."""

from __future__ import annotations

import os

import numpy as np

import edgeq
from edgeq.runtime import LiteRT

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
RNG = np.random.default_rng(0)


def test_keras_model_converts_with_static_batch_and_matches_keras():
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((12, 12, 3))
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(5, activation="softmax")(x)
    keras_model = tf.keras.Model(inp, out)
    model = edgeq.from_keras(keras_model)
    assert {op.kind for op in model.graph.ops} <= {"CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    assert model.graph.tensors[model.graph.inputs[0]].shape == (1, 12, 12, 3)
    x = RNG.uniform(size=(16, 12, 12, 3)).astype(np.float32)
    ours = np.concatenate([LiteRT(model.tflite).run([x[i : i + 1]])[0] for i in range(16)])
    np.testing.assert_allclose(ours, keras_model(x).numpy(), atol=1e-5)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    assert edgeq.compare(model, qm, edgeq.calibration.arrays(x), layers=0).sqnr_db > 25.0


def test_torch_module_converts_through_litert_torch_and_matches_torch():
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU6(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).eval()
    sample = torch.rand(1, 3, 16, 16)
    model = edgeq.from_torch(module, sample)
    # named after forward()'s parameter (litert-torch says args_0), in the tensor and the signature
    assert [model.graph.tensors[t].name for t in model.graph.inputs] == ["input"]
    assert model.graph.signature_inputs == {"input": model.graph.inputs[0]}
    x = RNG.uniform(size=(16, 1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = np.concatenate([module(torch.from_numpy(s)).numpy() for s in x])
    ours = np.concatenate([LiteRT(model.tflite).run([s])[0] for s in x])
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x.reshape(16, 3, 16, 16)), progress=False)
    assert edgeq.compare(model, qm, edgeq.calibration.arrays(x.reshape(16, 3, 16, 16)), layers=0).sqnr_db > 25.0


def test_saved_model_directory_converts(tmp_path):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input((6,), batch_size=1)
    keras_model = tf.keras.Model(inp, tf.keras.layers.Dense(3, activation="tanh")(inp))
    keras_model.export(str(tmp_path / "saved"))
    model = edgeq.from_saved_model(tmp_path / "saved")
    x = RNG.normal(size=(8, 6)).astype(np.float32)
    ours = np.concatenate([LiteRT(model.tflite).run([x[i : i + 1]])[0] for i in range(8)])
    np.testing.assert_allclose(ours, keras_model(x).numpy(), atol=1e-5)
    qm = edgeq.quantize(model, edgeq.calibration.arrays(x), progress=False)
    assert [op.kind for op in qm.graph.ops] == ["QUANTIZE", "FULLY_CONNECTED", "TANH", "DEQUANTIZE"]
