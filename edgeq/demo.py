"""The main job on the embedded default model: quantize the shipped Fashion-MNIST CNN, save, compare.

Run as `python -m edgeq.demo` (what `make demo` does). Prints a table of size and fidelity measured on
the real 10k-image Fashion-MNIST test set (Debian's dataset-fashion-mnist).
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

import edgeq
from edgeq.datasets import FASHION_MNIST_CLASSES, fashion_mnist, preprocess
from edgeq.runtime import LiteRT


def accuracy(model: bytes, images: np.ndarray, labels: np.ndarray, reference: bool = False) -> float:
    runtime = LiteRT(model, reference=reference)
    hits = 0
    for x, y in zip(images, labels, strict=True):
        hits += int(np.argmax(runtime.run([x[None]])[0]) == y)
    return hits / len(labels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeq.demo", description=__doc__)
    ap.add_argument("-o", "--output", default="demo_out")
    ap.add_argument("--calib", type=int, default=500, help="calibration images from the training split")
    ap.add_argument("--test", type=int, default=10000, help="test images to evaluate")
    args = ap.parse_args(argv)

    model_file = resources.files("edgeq") / "data" / "fashion_mnist_cnn.tflite"
    model = edgeq.load(model_file.read_bytes(), name="fashion_mnist_cnn")
    train_x, _ = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    rng = np.random.default_rng(0)
    calib = preprocess(train_x[rng.choice(len(train_x), args.calib, replace=False)])
    test = preprocess(test_x[: args.test])
    labels = test_y[: args.test]

    out = Path(args.output)
    rows = [("float32", len(model.tflite), accuracy(model.tflite, test, labels), None, 0.0)]
    proofs = []
    for scheme in ("int8", "int16x8"):
        start = time.perf_counter()
        qm = edgeq.quantize(model, edgeq.calibration.arrays(calib), scheme=scheme, progress=False)
        seconds = time.perf_counter() - start
        path = qm.save(out / f"fashion_mnist_cnn.{scheme}.tflite")
        qm.plan.save(out / f"fashion_mnist_cnn.{scheme}.plan.json")
        report = edgeq.compare(model, qm, edgeq.calibration.arrays(test[:500]), layers=0)
        rows.append((scheme, path.stat().st_size, accuracy(qm.tflite, test, labels, reference=True), report, seconds))
        proofs.append((scheme, edgeq.verify(qm.tflite, inputs=[[x[None]] for x in test[:16]])))
        if scheme == "int8":  # the same plan for iOS: a grayscale image classifier Xcode and Vision can use
            package = qm.export_coreml(
                out / "FashionMNIST.mlpackage",
                mode="w8a8",
                image_input=edgeq.ImageInput(scale=1 / 255, color_layout="GRAYSCALE"),
                class_labels=FASHION_MNIST_CLASSES,
                description="Fashion-MNIST CNN (28x28 grayscale), edgeq int8 plan",
            )
            coreml = edgeq.verify_coreml(package, qm, data=edgeq.calibration.arrays(test[:64]), samples=64)

    base = rows[0][2]
    print(f"Fashion-MNIST CNN, {len(labels)} test images, {args.calib} calibration images; artifacts in {out}/")
    print(
        f"{'model':<9} {'bytes':>8} {'size':>6} {'top-1':>7} {'drop pts':>8} {'SQNR dB':>8} {'agree':>6} {'quant s':>7}"
    )
    for name, size, acc, report, seconds in rows:
        sqnr = "" if report is None else f"{report.sqnr_db:8.2f}"
        agree = "" if report is None else f"{report.top1_agreement:6.3f}"
        print(
            f"{name:<9} {size:>8} {size / rows[0][1]:6.3f} {acc:7.4f} {100 * (base - acc):8.2f} "
            f"{sqnr:>8} {agree:>6} {seconds:7.1f}"
        )
    print("edgeq's C interpreter against LiteRT BUILTIN_REF, every op's output, on 16 test images:")
    for scheme, result in proofs:
        print(f"  {scheme:<8} {result.summary()}")
    print("The int8 plan as a Core ML package, read back and evaluated on the host (64 test images):")
    print(coreml.summary())
    return 0 if all(result.bit_exact for _, result in proofs) and coreml.weights_exact else 1


if __name__ == "__main__":
    sys.exit(main())
