"""Export script to copy: quantize a float .tflite with a folder of photos, save the .tflite for Android and
the .mlpackage for iOS from the same plan, and check fidelity of both.

    python examples/quantize_tflite.py model.tflite photos/ --mean 127.5 --std 127.5 -o dist/ [--labels labels.txt]

Calibration and evaluation use different photos (every fifth one is held out), so the fidelity printed
is measured on inputs the ranges were not fitted to.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import edgeq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("photos")
    ap.add_argument("--mean", type=float, default=127.5)
    ap.add_argument("--std", type=float, default=127.5)
    ap.add_argument("--layout", default="NHWC", choices=["NHWC", "NCHW"])
    ap.add_argument("--scheme", default="int8", choices=["int8", "int16x8"])
    ap.add_argument("--labels", help="class labels, one per line: the .mlpackage becomes a classifier")
    ap.add_argument("-o", "--output", default="dist")
    args = ap.parse_args()

    model = edgeq.load(args.model)
    files = sorted(p for p in Path(args.photos).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    with tempfile.TemporaryDirectory() as calib_dir, tempfile.TemporaryDirectory() as eval_dir:
        for i, f in enumerate(files):
            target = Path(eval_dir if i % 5 == 4 else calib_dir) / f"{i:06d}{f.suffix}"
            target.symlink_to(f.resolve())
        options = {"mean": args.mean, "std": args.std, "layout": args.layout}
        calib = edgeq.calibration.images(calib_dir, **options)
        qm = edgeq.quantize(model, calib, scheme=args.scheme)
        out = Path(args.output)
        qm.save(out / f"{model.name}.{args.scheme}.tflite")
        qm.plan.save(out / f"{model.name}.{args.scheme}.plan.json")
        held_out = edgeq.calibration.images(eval_dir, **options)
        print(edgeq.compare(model, qm, held_out))
        # The Neural Engine gets the same integers: int8 activations (w8a8) for an int8 plan, else weights only.
        mode = "w8a8" if args.scheme == "int8" else "w8"
        package = qm.export_coreml(
            out / f"{model.name}.mlpackage",
            mode=mode,
            image_input=edgeq.ImageInput(scale=1 / args.std, bias=-args.mean / args.std),
            class_labels=args.labels,
        )
        print(edgeq.verify_coreml(package, qm, data=held_out).summary())


if __name__ == "__main__":
    main()
