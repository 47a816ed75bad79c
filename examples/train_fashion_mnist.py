"""Train the small float CNN that edgeq ships as its demo model, and write it as a float32 .tflite.

The repository commits the result (edgeq/data/fashion_mnist_cnn.tflite + .json) so the demo needs no
training; this script is how that file was made, and rerunning it reproduces it (fixed seeds,
deterministic ops). The architecture is chosen to cover the ops edgeq quantizes: CONV_2D,
DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, FULLY_CONNECTED and SOFTMAX.

    # from the repository root (or drop PYTHONPATH after `pip install -e .`)
    PYTHONPATH=. .venv/bin/python examples/train_fashion_mnist.py [--out path.tflite] [--epochs N] [--seed S]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from edgeq.datasets import FASHION_MNIST_CLASSES, fashion_mnist, preprocess

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "edgeq" / "data" / "fashion_mnist_cnn.tflite"
INPUT_SHAPE = (28, 28, 1)
BATCH_SIZE = 128


def build_model() -> tf.keras.Model:
    """Conv/BN/ReLU stem, a depthwise residual block, two pooling kinds, GAP and a Dense head."""
    layers = tf.keras.layers

    def conv_bn_relu(x: tf.Tensor, filters: int, strides: int = 1) -> tf.Tensor:
        # No conv bias: BatchNorm's beta plays that role, and the converter folds BN into the conv.
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = tf.keras.Input(INPUT_SHAPE)
    x = conv_bn_relu(inputs, 16, strides=2)  # 14x14x16
    x = conv_bn_relu(x, 32)  # 14x14x32
    x = layers.AveragePooling2D(2)(x)  # 7x7x32
    shortcut = x
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2D(32, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(layers.Add()([x, shortcut]))
    x = conv_bn_relu(x, 64)  # 7x7x64
    x = layers.MaxPooling2D(2, padding="same")(x)  # 4x4x64
    x = layers.GlobalAveragePooling2D()(x)  # 64
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dense(len(FASHION_MNIST_CLASSES))(x)
    outputs = layers.Softmax()(x)
    return tf.keras.Model(inputs, outputs, name="fashion_mnist_cnn")


def to_tflite(model: tf.keras.Model) -> bytes:
    """Convert with a static batch of 1, so the graph holds no SHAPE/PACK ops from a dynamic batch."""

    @tf.function(input_signature=[tf.TensorSpec([1, *INPUT_SHAPE], tf.float32)])
    def serve(x: tf.Tensor) -> tf.Tensor:
        return model(x, training=False)

    # The trackable must be a plain tf.Module holding the function: given the Keras 3 model itself, the
    # converter keeps its weights as resource variables (VAR_HANDLE ops, NaN outputs) instead of folding them.
    root = tf.Module()
    root.serve = serve
    converter = tf.lite.TFLiteConverter.from_concrete_functions([root.serve.get_concrete_function()], root)
    return converter.convert()


def tflite_accuracy(model_path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the written file itself, in LiteRT: what ships is what gets measured."""
    interpreter = Interpreter(model_path=str(model_path))
    inp = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(inp, [len(images), *INPUT_SHAPE])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp, preprocess(images))
    interpreter.invoke()
    probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .tflite")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tf.keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()

    train_x, train_y = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")

    steps = args.epochs * -(-len(train_y) // BATCH_SIZE)
    model = build_model()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(3e-3, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,  # XLA makes this small CNN about twice as slow per step on CPU
    )
    start = time.perf_counter()
    model.fit(preprocess(train_x), train_y, batch_size=BATCH_SIZE, epochs=args.epochs, verbose=2)
    train_seconds = time.perf_counter() - start

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(to_tflite(model))
    accuracy = tflite_accuracy(args.out, test_x, test_y)
    sidecar = {
        "test_accuracy": round(accuracy, 4),
        "input": "float32 [1,28,28,1] in [0,1]",
        "classes": list(FASHION_MNIST_CLASSES),
        "trained_by": "examples/train_fashion_mnist.py",
        "epochs": args.epochs,
        "seed": args.seed,
    }
    args.out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"trained {args.epochs} epochs in {train_seconds:.0f} s")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    print(f"float test accuracy (LiteRT, {len(test_y)} images): {accuracy:.4f}")


if __name__ == "__main__":
    main()
