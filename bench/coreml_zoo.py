"""Every zoo model in every Core ML mode: the package saves, loads back in coremltools, its weights decode
exactly to the plan (checked + kept fp16), and edgeq's MIL evaluator agrees with the float model, with the
float model carrying the package's own parameters ("own params": fp32 rounding), and under w8a8 with the
integer model end to end and op by op on the integer model's inputs. One row per model, mode and output.
"xnn vs REF": the same .tflite in LiteRT's default (XNNPACK) kernels against its BUILTIN_REF kernels, end to
end: how far LiteRT's own production kernels are from the reference integer model (the yardstick for the
package's end-to-end "vs integer" column: both differ from REF by design in +-1 rounding per op).

    PYTHONPATH=. python -m bench.coreml_zoo [--models a,b] [--eval 16] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgeq
from bench import zoo
from edgeq.export.coreml_env import ct
from edgeq.quant.schemes import SCHEMES
from edgeq.runtime import LiteRT
from edgeq.verify.fidelity import Accumulator

N_CALIB = 64


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def xnnpack_vs_reference(qm: edgeq.QuantizedModel, data: list[np.ndarray]) -> list[float]:
    """Per-output SQNR of LiteRT's default kernels against BUILTIN_REF on the same integer model and inputs."""
    graph = qm.float_model.graph
    shapes = [tuple(graph.tensors[t].shape) for t in graph.inputs]
    ref, xnn = LiteRT(qm.host_tflite, reference=True), LiteRT(qm.host_tflite)
    acc = [Accumulator() for _ in graph.outputs]
    for k in range(data[0].shape[0]):
        sample = [x[k : k + 1].reshape(shape) for x, shape in zip(data, shapes, strict=True)]
        for a, r, x in zip(acc, ref.run(sample), xnn.run(sample), strict=True):
            a.add(r, x)
    return [a.sqnr for a in acc]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(zoo.ZOO))
    ap.add_argument("--eval", type=int, default=16, help="held-out samples evaluated per package")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="edgeq-coreml-"))
    print(
        f"{'model':26} {'mode':5} {'weights':>10} {'vs float dB, rel':>17} {'own params':>10} {'vs integer':>10} "
        f"{'op by op: equal, max, dB':>25} {'KiB':>7} {'xnn vs REF':>10}"
    )
    for name in args.models.split(","):
        entry = zoo.get(name)
        model = edgeq.load(entry.path())
        calib = edgeq.calibration.arrays(*entry.calib(N_CALIB, 0))
        plans = {"int8": edgeq.quantize(model, calib, scheme="int8", progress=False)}
        if "int4-block32" in SCHEMES:
            plans["int4-block32"] = edgeq.quantize(model, calib, scheme="int4-block32", progress=False)
        data = entry.eval(args.eval, 0)
        for mode, scheme in (("fp16", "int8"), ("w8", "int8"), ("w8a8", "int8"), ("w4", "int4-block32")):
            if scheme not in plans:
                print(f"{name:28} {mode:5} scheme {scheme} not available")
                continue
            qm = plans[scheme]
            start = time.perf_counter()
            path = qm.export_coreml(work / f"{name}.{mode}.mlpackage", mode=mode)
            export_s = time.perf_counter() - start
            ct.models.MLModel(str(path), skip_model_load=True)
            r = edgeq.verify_coreml(
                path, qm, data=edgeq.calibration.arrays(*data), samples=args.eval, precision=args.precision
            )
            per_op = ""
            xnn = xnnpack_vs_reference(qm, data) if mode == "w8a8" else []
            if r.per_op is not None:
                p = r.per_op
                per_op = f"{100 * p.equal_share:7.3f}% {p.max_abs_diff:2d} {p.sqnr_db:6.1f}"
            for j, o in enumerate(r.outputs):
                integer = "" if o.sqnr_vs_integer_db is None else f"{o.sqnr_vs_integer_db:7.2f} dB"
                own = "" if o.relative_error_vs_stored is None else f"{o.relative_error_vs_stored:.1e}"
                weights = f"{r.weights_checked}+{r.weights_float} {'ok' if r.weights_exact else 'DIFFER'}"
                print(
                    f"{name:26} {mode:5} {weights:>10} {o.sqnr_vs_float_db:8.2f} {o.relative_error_vs_float:.1e} "
                    f"{own:>10} {integer:>10} {per_op:>25} {_size(path) / 1024:7.0f}"
                    + (f" {xnn[j]:7.2f} dB" if xnn else "")
                )
                per_op = ""
            rows.append(
                {
                    "model": name,
                    "mode": mode,
                    "export_s": export_s,
                    "size_bytes": _size(path),
                    "xnnpack_vs_reference_db": xnn,
                    **r.to_dict(),
                }
            )
            sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    failed = [f"{r['model']} {r['mode']}" for r in rows if not r["weights_exact"]]
    differ = f"; differ: {failed}" if failed else ""
    print(f"{len(rows)} packages, weights exact in {len(rows) - len(failed)}{differ}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
