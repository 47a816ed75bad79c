"""Mixed precision under an accuracy budget on EfficientNet-Lite0 (real-photo crops of baselines.md):
promotions needed when candidates are ranked by measured gain, by sensitivity alone, or greedily.

    PYTHONPATH=. python -m bench.budget [--scheme int4-block32] [--min 0.85] [--fallback int8]
        [--orders gain,sensitivity,greedy] [--shortlist 4] [--calib 240] [--eval 480] [--reference int16x8]

`--reference SCHEME` first measures the whole model under that scheme (e.g. int16x8: what promoting every
layer to int16 activations reaches) on the same crops.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgeq
from bench import zoo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scheme", default="int4-block32")
    p.add_argument("--metric", default="top1_agreement")
    p.add_argument("--min", type=float, default=0.85)
    p.add_argument("--fallback", default="int8")
    p.add_argument("--orders", default="gain,sensitivity")
    p.add_argument("--calib", type=int, default=240)
    p.add_argument("--eval", type=int, default=480)
    p.add_argument("--shortlist", type=int, default=4)
    p.add_argument("--reference", default="")
    args = p.parse_args(argv)
    entry = zoo.get("efficientnet_lite0")
    model = edgeq.load(str(entry.path()))
    calib = edgeq.calibration.arrays(*entry.calib(args.calib, 0))
    evaluation = edgeq.calibration.arrays(*entry.eval(args.eval, 1))
    if args.reference:
        start, cpu = time.perf_counter(), time.process_time()
        qm = edgeq.quantize(model, calib, scheme=args.reference, progress=False)
        fid = edgeq.compare(model, qm, evaluation, layers=0)
        print(f"== whole model {args.reference}: top-1 agreement {fid.top1_agreement:.4f}, {fid.sqnr_db:.2f} dB "
              f"({time.perf_counter() - start:.0f} s wall, {time.process_time() - cpu:.0f} s CPU)", flush=True)
    for order in args.orders.split(","):
        start, cpu = time.perf_counter(), time.process_time()
        budget = edgeq.Budget(metric=args.metric, min=args.min, eval=evaluation, order=order,
                              shortlist=args.shortlist)
        qm = edgeq.quantize(
            model, calib, scheme=args.scheme, accuracy_budget=budget, fallback=args.fallback,
            progress=sys.stderr.isatty(),
        )
        print(f"== {args.scheme} {args.metric} >= {args.min}, fallback {args.fallback}, order {order}: "
              f"{len(qm.budget.promoted)} promotions, {time.perf_counter() - start:.0f} s wall, "
              f"{time.process_time() - cpu:.0f} s CPU", flush=True)
        print("\n".join(qm.budget.notes()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
