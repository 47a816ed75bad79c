"""Per-layer sensitivity of EfficientNet-Lite0 (real-photo crops: calibration and evaluation splits of
baselines.md): each layer alone quantized, ranked by pooled logit SQNR, with top-1 agreement; wall time.

    PYTHONPATH=. python -m bench.sensitivity [--schemes int4-block32,int8] [--calib 240] [--eval 480] [--top 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import edgeq
from bench import zoo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--schemes", default="int4-block32,int8")
    p.add_argument("--calib", type=int, default=240)
    p.add_argument("--eval", type=int, default=480)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", help="also write every result here")
    args = p.parse_args(argv)
    entry = zoo.get("efficientnet_lite0")
    model = edgeq.load(str(entry.path()))
    calib = edgeq.calibration.arrays(*entry.calib(args.calib, 0))
    evaluation = edgeq.calibration.arrays(*entry.eval(args.eval, 1))
    results = {}
    for scheme in args.schemes.split(","):
        cpu = time.process_time()
        result = edgeq.sensitivity(model, calib, scheme=scheme, eval=evaluation, progress=sys.stderr.isatty())
        print(result.table(args.top), flush=True)
        print(f"{len(result.layers)} layers; {result.seconds:.0f} s wall, {time.process_time() - cpu:.0f} s CPU "
              f"(all threads)", flush=True)
        results[scheme] = result.to_dict()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
