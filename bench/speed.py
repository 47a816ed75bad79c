"""Conversion wall time of edgeq against ai-edge-quantizer, and edgeq's peak memory against sample count.

    python -m bench.speed [--model efficientnet_lite0] [--samples 256] [--memory 256,2048]

Both quantizers get the same float model (fp16 folded, with a signature) and the same calibration crops;
each timing covers calibration plus writing the quantized model, measured in a fresh subprocess so that
imports and caches do not favour either. Peak memory is the subprocess's maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CHUNK = 16


def _calibration_stream(model: str, samples: int):
    """Crops generated chunk by chunk, so the data itself never holds more than CHUNK samples."""
    from bench import zoo

    entry = zoo.get(model)

    def chunks():
        for k in range(0, samples, CHUNK):
            yield entry.calib(min(CHUNK, samples - k), 1000 + k)

    return chunks


def _child(args: argparse.Namespace) -> dict:
    import contextlib
    import io

    import numpy as np

    import edgeq
    from bench import peers, zoo

    entry = zoo.get(args.model)
    model = edgeq.load(entry.path(), name=args.model)
    chunks = _calibration_stream(args.model, args.samples)
    start = time.perf_counter()
    if args.tool == "edgeq":
        qm = edgeq.quantize(model, edgeq.calibration.generator(chunks), progress=False)
        size = len(qm.tflite)
    else:
        # ai-edge-quantizer takes a list of samples, held in memory at once.
        batch = [np.concatenate([chunk[0] for chunk in chunks()])]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            size = len(peers.ai_edge_quantizer_w8a8(model, batch, entry))
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tool": args.tool, "samples": args.samples, "seconds": seconds, "peak_mib": peak_mib, "bytes": size}


def _run(tool: str, model: str, samples: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.speed", "--child", tool, "--model", model, "--samples", str(samples)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--memory", default="256,2048", help="sample counts for edgeq's peak-memory runs")
    ap.add_argument("--child", choices=["edgeq", "ai-edge-quantizer"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        args.tool = args.child
        print(json.dumps(_child(args)))
        return 0
    from bench import zoo

    zoo.get(args.model).path()  # build the cached model outside the timed runs
    ours = _run("edgeq", args.model, args.samples)
    theirs = _run("ai-edge-quantizer", args.model, args.samples)
    print(f"{args.model}, {args.samples} calibration samples, calibration + write, fresh process each:")
    for r in (ours, theirs):
        print(f"  {r['tool']:<18} {r['seconds']:7.1f} s   peak {r['peak_mib']:7.0f} MiB")
    print(f"  time ratio edgeq / ai-edge-quantizer: {ours['seconds'] / theirs['seconds']:.2f}")
    counts = [int(c) for c in args.memory.split(",") if c]
    mem = [_run("edgeq", args.model, n) for n in counts]
    print("edgeq peak memory against calibration samples (streamed):")
    for r in mem:
        print(f"  {r['samples']:>6} samples  {r['seconds']:7.1f} s  peak {r['peak_mib']:7.0f} MiB")
    if len(mem) > 1:
        ratio = mem[-1]["peak_mib"] / mem[0]["peak_mib"]
        print(f"  peak ratio {mem[-1]['samples']}/{mem[0]['samples']} samples: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
