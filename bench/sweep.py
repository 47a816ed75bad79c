"""Robustness sweep: every float .tflite in the MediaPipe wheel through edgeq int8, strict about nothing.

    python -m bench.sweep [--calib 32] [--eval 16]

A model here is not tuned for: inputs are real-photo crops resized to the model's input and scaled to
[0, 1] whatever range the model was trained on, and ops edgeq cannot quantize stay float. The question is
whether conversion works and runs in LiteRT's reference kernels; the SQNR is indicative only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from PIL import Image

import edgeq
from bench import zoo
from bench.photos import photo_crops


def _inputs(model: edgeq.FloatModel, split: str, n: int) -> list[np.ndarray]:
    arrays = []
    for t in model.graph.inputs:
        shape = model.graph.tensors[t].shape
        if len(shape) == 4 and shape[3] == 3:
            crops = photo_crops(split, n, max(shape[1], shape[2]))
            resized = [np.asarray(Image.fromarray(c).resize((shape[2], shape[1]), Image.BILINEAR)) for c in crops]
            arrays.append(np.stack(resized).astype(np.float32) / 255.0)
        else:
            arrays.append(np.random.default_rng(0 if split == "calib" else 1).uniform(size=(n, *shape[1:])))
    return [a.astype(np.float32) for a in arrays]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--eval", type=int, default=16)
    args = ap.parse_args(argv)
    with zipfile.ZipFile(zoo.download_wheel(zoo.MEDIAPIPE_WHEEL)) as wheel:
        members = sorted(n for n in wheel.namelist() if n.endswith(".tflite"))
    for member in members:
        name = Path(member).stem
        start = time.perf_counter()
        try:
            model = edgeq.load(zoo.wheel_model(zoo.MEDIAPIPE_WHEEL, member), name=name)
            qm = edgeq.quantize(
                model,
                edgeq.calibration.arrays(*_inputs(model, "calib", args.calib)),
                allow_float_ops=True,
                progress=False,
            )
            report = edgeq.compare(
                model, qm, edgeq.calibration.arrays(*_inputs(model, "eval", args.eval)), layers=0, reference=True
            )
            floats = sorted({f.kind for f in qm.plan.float_ops})
            print(
                f"{name:<36} ok    pooled SQNR {report.pooled_sqnr_db:6.2f} dB  size "
                f"{qm.size_bytes / len(model.tflite):.3f}  float ops {floats}  {time.perf_counter() - start:4.0f} s"
            )
        except edgeq.EdgeqError as e:
            print(f"{name:<36} error {type(e).__name__}: {str(e)[:240]}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
