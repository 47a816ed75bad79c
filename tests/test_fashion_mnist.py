"""Acceptance on a real labelled set: the shipped Fashion-MNIST CNN loses at most 0.3 points of top-1 at int8
and 0.1 at int16x8 over the full 10k test set, run with LiteRT's reference kernels."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

import edgeq
from edgeq.datasets import fashion_mnist, preprocess
from edgeq.demo import accuracy
from edgeq.verify.spec import spec_violations


@pytest.fixture(scope="module")
def data():
    model = edgeq.load((resources.files("edgeq") / "data" / "fashion_mnist_cnn.tflite").read_bytes())
    train_x, _ = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    calib = preprocess(train_x[np.random.default_rng(0).choice(len(train_x), 500, replace=False)])
    test = preprocess(test_x)
    return model, calib, test, test_y, accuracy(model.tflite, test, test_y)


@pytest.mark.parametrize(("scheme", "max_drop_points"), [("int8", 0.3), ("int16x8", 0.1)])
def test_top1_drop_on_full_test_set(data, scheme, max_drop_points):
    model, calib, test, labels, float_top1 = data
    assert float_top1 >= 0.90
    qm = edgeq.quantize(model, edgeq.calibration.arrays(calib), scheme=scheme, progress=False)
    assert spec_violations(qm.graph) == []
    top1 = accuracy(qm.tflite, test, labels, reference=True)
    assert 100 * (float_top1 - top1) <= max_drop_points, (float_top1, top1)
