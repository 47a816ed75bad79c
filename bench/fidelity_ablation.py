"""Each fidelity algorithm's contribution on EfficientNet-Lite0 int8 (the real-photo crop protocol of
baselines.md: 240 calibration crops, 480 evaluation crops), and the Fashion-MNIST int8 top-1 drop.

Rows: the plain int8 plan, each algorithm alone and their combinations. Columns: top-1 agreement with the
float model, pooled logit SQNR, and the wall time of each algorithm (quantize() times them).

    python -m bench.fidelity_ablation [--rows baseline,cle,...] [--calib 240] [--eval 480] [--fashion 10000]
                                      [--observer auto|mse|minmax|percentile] [--scheme int8|int4-channel]

Per-channel INT4 plans are scored through their int8 twin (gptq.int8_twin: the same integers and scales,
bit-equal outputs), which LiteRT runs about 30x faster than its INT4 convolutions; --no-twin scores the
INT4 .tflite itself under LiteRT's default kernels (whose optimized int8 kernels round a few values
differently from the twin's).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import edgeq
from bench import zoo
from edgeq.algorithms.gptq import int8_twin
from edgeq.datasets import fashion_mnist, preprocess
from edgeq.demo import accuracy

ROWS: dict[str, list[str]] = {
    "baseline": [],
    "cle": ["cle"],
    "bias_correction": ["bias_correction"],
    "adaround": ["adaround"],
    "cle+bias_correction": ["cle", "bias_correction"],
    "adaround+bias_correction": ["adaround", "bias_correction"],
    "cle+adaround+bias_correction": ["cle", "adaround", "bias_correction"],
    "gptq": ["gptq"],
    "gptq+bias_correction": ["gptq", "bias_correction"],
    "gptq+adaround": ["gptq", "adaround"],
    "gptq+adaround+bias_correction": ["gptq", "adaround", "bias_correction"],
    "gptq_scales": ["gptq_scales"],
    "gptq_scales+bias_correction": ["gptq_scales", "bias_correction"],
    "gptq_scales+adaround+bias_correction": ["gptq_scales", "adaround", "bias_correction"],
    "gptq+block_reconstruction": ["gptq", "block_reconstruction"],
    "gptq+block_reconstruction+bias_correction": ["gptq", "block_reconstruction", "bias_correction"],
    "gptq_scales+block_reconstruction+bias_correction": ["gptq_scales", "block_reconstruction", "bias_correction"],
    "depthwise_rounding": ["depthwise_rounding"],
    "depthwise_rounding+bias_correction": ["depthwise_rounding", "bias_correction"],
    "depthwise_rounding+gptq+bias_correction": ["depthwise_rounding", "gptq", "bias_correction"],
    "depthwise_rounding+adaround+bias_correction": ["depthwise_rounding", "adaround", "bias_correction"],
}


@dataclass
class Result:
    model: str
    row: str
    top1_agreement: float | None = None
    sqnr_db: float | None = None
    quantize_s: float = 0.0
    algorithm_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    float_top1: float | None = None  # Fashion-MNIST only
    top1: float | None = None


def efficientnet(
    rows: list[str],
    n_calib: int,
    n_eval: int,
    progress: bool,
    observer: str | None = None,
    scheme: str = "int8",
    twin: bool = True,
) -> list[Result]:
    entry = zoo.get("efficientnet_lite0")
    model = edgeq.load(entry.path(), name="efficientnet_lite0")
    calib = edgeq.calibration.arrays(*entry.calib(n_calib, 0))
    evaluation = edgeq.calibration.arrays(*entry.eval(n_eval, 1))
    out = []
    for row in rows:
        start = time.perf_counter()
        qm = edgeq.quantize(model, calib, scheme=scheme, algorithms=ROWS[row], progress=progress, observer=observer)
        seconds = time.perf_counter() - start
        scored = qm
        if scheme != "int8" and twin:
            scored = edgeq.quantize(model, plan=int8_twin(model.graph, qm.plan)[1], progress=False)
        report = edgeq.compare(model, scored, evaluation, layers=0)
        label = row if observer is None else f"{row} ({observer} ranges)"
        result = Result(
            model="efficientnet_lite0",
            row=label if scheme == "int8" else f"{label} {scheme}",
            top1_agreement=report.outputs[0].top1_agreement,
            sqnr_db=report.pooled_sqnr_db,
            quantize_s=seconds,
            algorithm_s={r.name: r.seconds for r in qm.algorithms},
            notes=[f"{r.name}: {n}" for r in qm.algorithms for n in r.notes],
        )
        print(_format(result), flush=True)
        out.append(result)
    return out


def fashion(rows: list[str], n_test: int, progress: bool) -> list[Result]:
    """The shipped Fashion-MNIST CNN, 500 training images to calibrate, LiteRT's reference kernels on the
    first n_test test images (as tests/test_fashion_mnist.py)."""
    model = edgeq.load((resources.files("edgeq") / "data" / "fashion_mnist_cnn.tflite").read_bytes())
    train_x, _ = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    calib = preprocess(train_x[np.random.default_rng(0).choice(len(train_x), 500, replace=False)])
    test, labels = preprocess(test_x[:n_test]), test_y[:n_test]
    float_top1 = accuracy(model.tflite, test, labels)
    out = []
    for row in rows:
        start = time.perf_counter()
        qm = edgeq.quantize(model, edgeq.calibration.arrays(calib), scheme="int8", algorithms=ROWS[row],
                            progress=progress)
        result = Result(
            model="fashion_mnist_cnn",
            row=row,
            quantize_s=time.perf_counter() - start,
            algorithm_s={r.name: r.seconds for r in qm.algorithms},
            float_top1=float_top1,
            top1=accuracy(qm.tflite, test, labels, reference=True),
        )
        print(_format(result), flush=True)
        out.append(result)
    return out


def _format(r: Result) -> str:
    times = ", ".join(f"{k} {v:.1f} s" for k, v in r.algorithm_s.items()) or "-"
    if r.top1 is not None and r.float_top1 is not None:
        fid = f"top-1 {r.top1:.4f} (float {r.float_top1:.4f}, drop {100 * (r.float_top1 - r.top1):.2f} points)"
    else:
        fid = f"agreement {r.top1_agreement:.3f}  SQNR {r.sqnr_db:6.2f} dB"
    return f"{r.model:<20} {r.row:<30} {fid}  quantize {r.quantize_s:.1f} s ({times})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fidelity_ablation", description=__doc__)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    ap.add_argument("--fashion-rows", default="baseline,cle+adaround+bias_correction")
    ap.add_argument("--calib", type=int, default=240)
    ap.add_argument("--eval", type=int, default=480)
    ap.add_argument("--fashion", type=int, default=10000, help="Fashion-MNIST test images (0: skip)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--observer", help="EfficientNet rows' activation ranges (quantize's observer)")
    ap.add_argument("--scheme", default="int8", help="EfficientNet rows' scheme (e.g. int4-channel)")
    ap.add_argument("--no-twin", action="store_true", help="score INT4 rows' own .tflite, not their int8 twin")
    args = ap.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows + args.fashion_rows.split(",") if r and r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    results = (
        efficientnet(rows, args.calib, args.eval, args.progress, args.observer, args.scheme, not args.no_twin)
        if rows
        else []
    )
    if args.fashion:
        results += fashion([r for r in args.fashion_rows.split(",") if r], args.fashion, args.progress)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
