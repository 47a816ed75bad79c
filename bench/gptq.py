"""GPTQ against round-to-nearest (RTN) on the same plan scales: EfficientNet-Lite0 (real-photo crops, top-1
agreement with float and pooled logit SQNR), the Fashion-MNIST CNN (labelled test set, top-1 drop), MiniLM
(sentence-embedding cosine and retrieval agreement), and which layer kind carries EfficientNet's INT4 loss.

    PYTHONPATH=. python -m bench.gptq [--parts fashion,efficientnet,kinds,minilm] [--calib 240] [--eval 480]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import edgeq
from bench import zoo
from edgeq.algorithms import registry
from edgeq.algorithms.context import AlgorithmContext
from edgeq.algorithms.gptq import int8_twin, run_gptq
from edgeq.datasets import fashion_mnist, preprocess
from edgeq.demo import accuracy
from edgeq.quant.plan import QuantPlan


@dataclass
class Row:
    model: str
    scheme: str
    rounding: str
    metric: str  # what `value` and `second` are
    value: float
    second: float | None
    seconds: float  # quantize() wall time, GPTQ included


def gptq_float_inputs(ctx: AlgorithmContext) -> list[str]:
    """The ablation: every layer's Hessian from the float model's inputs instead of the integer model's."""
    return run_gptq(ctx, inputs="float")


# Registered for this process only, so quantize() runs the ablation like the real entry.
registry.ALGORITHMS["gptq_float_inputs"] = registry.Algorithm(
    "gptq_float_inputs", "plan", "bench.gptq:gptq_float_inputs", "GPTQ from float inputs (bench ablation)", 10
)
ROUNDINGS = {"RTN": None, "GPTQ": ["gptq"], "GPTQ, float inputs": ["gptq_float_inputs"]}


def _quantize(model, calib, scheme: str, rounding: str, **options) -> tuple[edgeq.QuantizedModel, float]:
    start = time.perf_counter()
    qm = edgeq.quantize(model, calib, scheme=scheme, algorithms=ROUNDINGS[rounding], progress=False, **options)
    for r in qm.algorithms:
        print(f"    {r.name} {r.seconds:.0f} s: " + " | ".join(r.notes), file=sys.stderr, flush=True)
    return qm, time.perf_counter() - start


def fashion() -> list[Row]:
    model = edgeq.load((resources.files("edgeq") / "data" / "fashion_mnist_cnn.tflite").read_bytes())
    train_x, _ = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    calib = edgeq.calibration.arrays(preprocess(train_x[np.random.default_rng(0).choice(len(train_x), 500, False)]))
    test = preprocess(test_x)
    float_top1 = accuracy(model.tflite, test, test_y)
    rows = []
    for scheme in ("int4-channel", "int8"):
        for rounding in ("RTN", "GPTQ"):
            qm, seconds = _quantize(model, calib, scheme, rounding)
            top1 = accuracy(qm.tflite, test, test_y, reference=True)
            rows.append(
                Row(
                    "fashion_mnist_cnn",
                    scheme,
                    rounding,
                    "top-1 / drop (points)",
                    top1,
                    100 * (float_top1 - top1),
                    seconds,
                )
            )
            _print(rows[-1])
    return rows


def _efficientnet(n_calib: int, n_eval: int):
    entry = zoo.get("efficientnet_lite0")
    model = edgeq.load(entry.path(), name="efficientnet_lite0")
    return model, edgeq.calibration.arrays(*entry.calib(n_calib, 0)), entry.eval(n_eval, 1)


def _fidelity(model, qm: edgeq.QuantizedModel, evaluation) -> tuple[float, float]:
    """Top-1 agreement and pooled SQNR over the evaluation crops. Per-channel INT4 models run as their int8
    twin (the same integers and scales, see gptq.int8_twin): LiteRT's INT4 convolutions take ~1 s an image."""
    _, plan = int8_twin(model.graph, qm.plan)
    twin = edgeq.quantize(model, plan=plan, progress=False)
    report = edgeq.compare(model, twin, edgeq.calibration.arrays(*evaluation), layers=0)
    return report.top1_agreement, report.pooled_sqnr_db


def efficientnet(n_calib: int, n_eval: int, schemes: list[str], ablation: bool) -> list[Row]:
    model, calib, evaluation = _efficientnet(n_calib, n_eval)
    rows = []
    runs = [(s, r) for s in schemes for r in ("RTN", "GPTQ")]
    if ablation:
        runs.append(("int4-channel", "GPTQ, float inputs"))
    for scheme, rounding in runs:
        qm, seconds = _quantize(model, calib, scheme, rounding)
        rows.append(
            Row(
                "efficientnet_lite0",
                scheme,
                rounding,
                "top-1 agreement / SQNR dB",
                *_fidelity(model, qm, evaluation),
                seconds,
            )
        )
        _print(rows[-1])
    return rows


def _weights_as_stored(qm: edgeq.QuantizedModel, name: str) -> np.ndarray:
    """A weight as the integer model computes with it: its integers times the plan's scales."""
    enc = qm.plan.tensors[name]
    q = next(t for t in qm.graph.tensors if t.name == name).data.astype(np.float64)
    shape = [1] * q.ndim
    shape[enc.axis] = -1
    return (q * enc.scales().astype(np.float64).reshape(shape)).astype(np.float32)


def kinds(n_calib: int, n_eval: int, roundings: list[str]) -> list[Row]:
    """The int8 model with only one layer kind's weights rounded to INT4 (per channel, RTN or GPTQ): which
    kind carries the loss. The INT4 values are re-encoded on the int8 grid (finer: adds < 1/2 int8 step)."""
    model, calib, evaluation = _efficientnet(n_calib, n_eval)
    int8, _ = _quantize(model, calib, "int8", "RTN")
    rows = []
    for rounding in roundings:
        int4, _ = _quantize(model, calib, "int4-channel", rounding)
        for kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            names = [model.graph.tensors[op.inputs[1]].name for op in model.graph.ops if op.kind == kind]
            plan = QuantPlan.from_json(int8.plan.to_json())
            plan.weights = {n: _weights_as_stored(int4, n) for n in names}
            start = time.perf_counter()
            mixed = edgeq.quantize(model, plan=plan, progress=False)
            rows.append(
                Row(
                    "efficientnet_lite0",
                    f"int8, INT4 {kind} only",
                    rounding,
                    "top-1 agreement / SQNR dB",
                    *_fidelity(model, mixed, evaluation),
                    time.perf_counter() - start,
                )
            )
            _print(rows[-1])
    return rows


def minilm(n_calib: int) -> list[Row]:
    from bench import minilm as text

    model = edgeq.load(zoo.get("all_minilm_l6_v2").path(), name="all_minilm_l6_v2")
    calib = edgeq.calibration.arrays(*zoo.get("all_minilm_l6_v2").calib(n_calib, 0))
    rows = []
    for rounding in ("RTN", "GPTQ"):
        qm, seconds = _quantize(model, calib, "int4-block32", rounding, allow_float_ops=True)
        result = text.evaluate(qm)
        rows.append(
            Row(
                "all_minilm_l6_v2",
                "int4-block32",
                rounding,
                "mean cosine / retrieval agreement",
                result["mean_cosine"],
                result["retrieval_agreement"],
                seconds,
            )
        )
        _print(rows[-1])
    return rows


def _print(r: Row) -> None:
    second = "" if r.second is None else f"{r.second:8.3f}"
    print(
        f"| {r.model} | {r.scheme} | {r.rounding} | {r.metric} | {r.value:.4f} | {second} | {r.seconds:.0f} |",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="fashion,efficientnet,kinds,minilm")
    ap.add_argument("--calib", type=int, default=240)
    ap.add_argument("--eval", type=int, default=480)
    ap.add_argument("--minilm-calib", type=int, default=128)
    ap.add_argument("--schemes", default="int4-block32,int4-channel,int8", help="EfficientNet schemes")
    ap.add_argument("--kinds-roundings", default="RTN,GPTQ", help="roundings of the one-kind-at-INT4 runs")
    ap.add_argument("--no-ablation", action="store_true", help="skip GPTQ from float inputs on EfficientNet")
    args = ap.parse_args(argv)
    print("| model | scheme | rounding | metric | value | second | quantize s |\n|---|---|---|---|---|---|---|")
    parts = args.parts.split(",")
    if "fashion" in parts:
        fashion()
    if "efficientnet" in parts:
        efficientnet(args.calib, args.eval, args.schemes.split(","), not args.no_ablation)
    if "kinds" in parts:
        kinds(args.calib, args.eval, args.kinds_roundings.split(","))
    if "minilm" in parts:
        minilm(args.minilm_calib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
