"""The `edgeq` command line: convert a float model into verified integer artifacts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeq.calibrate.observers import OBSERVERS
from edgeq.errors import EdgeqError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeq", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="quantize a float .tflite into an integer .tflite")
    c.add_argument("model", help="float .tflite file")
    c.add_argument("--calib", help="image folder, or .npy / .npz of float32 inputs (batch first)")
    c.add_argument("--plan", help="apply this QuantPlan JSON instead of calibrating")
    c.add_argument("--scheme", default="int8", choices=["int8", "int16x8"])
    c.add_argument("--io", default="float32", help="input/output type: float32 (default) or the activation type")
    c.add_argument(
        "--observer",
        choices=["auto", *sorted(OBSERVERS)],
        help="activation ranges (default: auto for int8, the better of percentile and minmax on held calibration "
        "samples; minmax for int16x8)",
    )
    c.add_argument("--allow-float", action="store_true", help="keep ops edgeq cannot quantize in float")
    c.add_argument("--samples", type=int, default=None, help="use at most this many calibration samples")
    c.add_argument("--mean", type=float, nargs="+", default=[127.5], help="image normalisation: (x - mean) / std")
    c.add_argument("--std", type=float, nargs="+", default=[127.5])
    c.add_argument("--layout", choices=["auto", "NHWC", "NCHW"], default="auto")
    c.add_argument(
        "--compare",
        type=int,
        default=64,
        metavar="N",
        help="measure fidelity on N calibration samples (0: skip)",
    )
    c.add_argument("-o", "--output", default="dist", help="output folder")
    c.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        summary = _convert(args)
    except EdgeqError as e:
        print(f"edgeq: error: {e}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
        return 2
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_summary(summary)
    return 0


def _calibration_source(args, model):
    from edgeq.calibrate.data import from_path
    from edgeq.errors import CalibrationDataError

    if args.calib is None:
        raise CalibrationDataError("--calib is required unless --plan is given")
    shape = model.graph.tensors[model.graph.inputs[0]].shape
    layout = args.layout
    if layout == "auto":
        layout = "NCHW" if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3) else "NHWC"
    size = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2]) if len(shape) == 4 else None
    channels = (shape[1] if layout == "NCHW" else shape[3]) if len(shape) == 4 else 3
    mean = args.mean[0] if len(args.mean) == 1 else tuple(args.mean)
    std = args.std[0] if len(args.std) == 1 else tuple(args.std)
    return from_path(args.calib, size=size, mean=mean, std=std, layout=layout, channels=channels, limit=args.samples)


def _convert(args) -> dict:
    import edgeq
    from edgeq.export.atomic import write_atomic

    model = edgeq.load(args.model)
    plan = edgeq.QuantPlan.load(args.plan) if args.plan else None
    calib = None if plan is not None and args.calib is None else _calibration_source(args, model)
    qm = edgeq.quantize(
        model,
        calib,
        scheme=args.scheme,
        io=args.io,
        observer=args.observer,
        allow_float_ops=args.allow_float,
        plan=plan,
        progress=not args.quiet,
    )
    report = edgeq.compare(model, qm, calib, max_samples=args.compare) if calib is not None and args.compare else None
    out = Path(args.output)
    tflite_path = out / f"{model.name}.{qm.plan.scheme}.tflite"
    plan_path = out / f"{model.name}.{qm.plan.scheme}.plan.json"
    write_atomic(plan_path, qm.plan.to_json().encode())
    qm.save(tflite_path)
    return {
        "ok": True,
        "model": args.model,
        "scheme": qm.plan.scheme,
        "io_dtype": qm.plan.io_dtype,
        "artifacts": {"tflite": str(tflite_path), "plan": str(plan_path)},
        "size_bytes": {"float": len(model.tflite), "quantized": qm.size_bytes},
        "calibration_samples": qm.calibration_samples,
        "float_ops": [f.__dict__ for f in qm.plan.float_ops],
        "notes": qm.plan.notes,
        "timings_s": qm.timings,
        "fidelity": report.to_dict() if report is not None else None,
    }


def _print_summary(s: dict) -> None:
    sizes = s["size_bytes"]
    print(
        f"wrote {s['artifacts']['tflite']} ({sizes['quantized'] / 1024:.1f} KiB, "
        f"{sizes['quantized'] / sizes['float']:.3f}x the float model) and {s['artifacts']['plan']}"
    )
    print(f"scheme {s['scheme']}, I/O {s['io_dtype']}, {s['calibration_samples']} calibration samples")
    for f in s["float_ops"]:
        print(f"kept float: op {f['index']} {f['kind']}: {f['reason']}")
    for note in s["notes"]:
        print(f"note: {note}")
    fid = s["fidelity"]
    if fid:
        print(f"fidelity on {fid['samples']} calibration samples:")
        for o in fid["outputs"]:
            top1 = "" if o["top1_agreement"] is None else f", top-1 agreement {o['top1_agreement']:.4f}"
            print(f"  {o['name']}: SQNR {o['sqnr_db']:.2f} dB, cosine {o['cosine']:.5f}{top1}")
        for layer in fid["worst_layers"]:
            print(f"  worst layer: {layer['sqnr_db']:.2f} dB {layer['op']} {layer['tensor']}")


if __name__ == "__main__":
    sys.exit(main())
