"""The `edgeq` command line: convert a float model into verified integer artifacts, prove an integer model
bit-exact against LiteRT's reference kernels (`verify`), run one in edgeq's C interpreter (`run`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeq.algorithms.budget import ORDERS as BUDGET_ORDERS
from edgeq.calibrate.observers import OBSERVERS
from edgeq.errors import EdgeqError, PlanError
from edgeq.quant.schemes import SCHEMES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeq", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="quantize a float .tflite into an integer .tflite")
    c.add_argument("model", help="float .tflite file")
    c.add_argument("--calib", help="image folder, or .npy / .npz of float32 inputs (batch first)")
    c.add_argument("--plan", help="apply this QuantPlan JSON instead of calibrating")
    c.add_argument("--scheme", default="int8", choices=sorted(SCHEMES))
    c.add_argument("--io", default="float32", help="input/output type: float32 (default) or the activation type")
    c.add_argument(
        "--observer",
        choices=["auto", *sorted(OBSERVERS)],
        help="activation ranges (default: auto for int8, the better of percentile and minmax on held calibration "
        "samples; minmax for int16x8)",
    )
    c.add_argument("--allow-float", action="store_true", help="keep ops edgeq cannot quantize in float")
    c.add_argument(
        "--algorithms",
        default="",
        help="comma-separated fidelity algorithms run on the plan (see edgeq.algorithms.registry), e.g. "
        "cle,bias_correction,adaround",
    )
    c.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="PATTERN=SCHEME",
        help="weights of the ops whose name (first output tensor) matches the fnmatch PATTERN take SCHEME: int8, "
        "an int4 scheme, or float (repeatable; the first matching pattern wins)",
    )
    c.add_argument(
        "--coremltools-form",
        action="store_true",
        help="w4-blockN: the weights coremltools' linear_quantize_weights (per_block) leaves fp16 stay float (at "
        "most 2048 values; convolutions whose input channels the block does not divide, depthwise ones) and a "
        "convolution's block shares one scale over the kernel window, as its blocks do",
    )
    c.add_argument(
        "--padding-mask",
        default="auto",
        help="sequence models: the input whose zeros mark padding positions, left out of ranges and algorithm "
        "statistics (default auto: the input named attention_mask, if any; none: no mask)",
    )
    c.add_argument(
        "--budget",
        metavar="METRIC=MIN",
        help="accuracy budget: promote the fewest layers to --fallback until METRIC (top1_agreement, sqnr in dB, "
        "or cosine: mean output cosine, for embedding models) is at least MIN on --budget-eval, e.g. "
        "top1_agreement=0.99",
    )
    c.add_argument("--budget-eval", metavar="PATH", help="evaluation data for --budget, in --calib's forms "
                   "(default: the calibration data, which flatters the quantized model)")
    c.add_argument("--budget-order", choices=list(BUDGET_ORDERS), default="sensitivity",
                   help="which layers a budget promotes first (edgeq.algorithms.budget)")
    c.add_argument("--fallback", choices=["auto", "int16x8", "int8", "float"], default="auto",
                   help="what a budget promotes a layer to (auto: int16x8 activations for int8 schemes, int8 "
                   "weights for INT4 schemes)")
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
    c.add_argument(
        "--targets",
        default="tflite",
        help="comma-separated artifacts from the one plan: tflite (Android), coreml (.mlpackage for iOS/macOS), "
        "and accelerators the plan adapts to and each artifact is checked on: edgetpu, nnapi[:27..30], "
        "hexagon[:htp|:legacy], xnnpack (a .tflite), coreml-ane (the .mlpackage); accelerators that need "
        "different plans get one <model>.<target>.tflite each",
    )
    c.add_argument("--strict", action="store_true", help="a target constraint conversion cannot meet (an op the "
                   "accelerator never runs, a scheme it rejects) is an error, not a warning")
    c.add_argument(
        "--coreml-mode",
        choices=["fp16", "w8", "w8a8", "w4"],
        help="Core ML rendering (default: w8a8 for int8, w4 for int4 schemes, w8 otherwise)",
    )
    c.add_argument("--minimum-os", help="Core ML deployment target, e.g. iOS17 (default: the oldest the mode runs on)")
    c.add_argument("--class-labels", help="text file, one label per line: the .mlpackage becomes a classifier")
    c.add_argument(
        "--image-input",
        choices=["auto", "yes", "no"],
        default="auto",
        help="Core ML image input (pixels, normalised by --mean/--std inside the model); auto: when --calib is a "
        "folder of images",
    )
    c.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    v = sub.add_parser("verify", help="prove an integer .tflite bit-exact: edgeq's C interpreter vs LiteRT BUILTIN_REF")
    v.add_argument("model", help="integer .tflite file")
    v.add_argument("--samples", type=int, default=16, help="random full-range samples (ignored with --inputs)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--inputs", help=".npz of inputs in model input order (arr_0, arr_1, ... or input names), "
                   "a leading batch axis holding several samples")
    v.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    r = sub.add_parser("run", help="run an integer .tflite in edgeq's C interpreter")
    r.add_argument("model", help="integer .tflite file")
    r.add_argument("--inputs", help=".npz of inputs in model input order (arr_0, ... or input names); "
                   "default: zeros")
    r.add_argument("--outputs", help="write the outputs here as .npz (arr_0, arr_1, ...)")
    r.add_argument("--stats", action="store_true", help="print ops, tensors and the planned arena size")
    r.add_argument("--json", action="store_true", help="print outputs summary and stats as JSON")

    k = sub.add_parser("check", help="where each op of a .tflite runs on an accelerator, and the rule that sends it "
                       "to the CPU")
    k.add_argument("model", help=".tflite file (integer or float)")
    k.add_argument("--target", required=True, help="comma-separated: edgetpu, nnapi (or nnapi:27 .. nnapi:30), "
                   "hexagon (hexagon:htp, hexagon:legacy), xnnpack, coreml-ane")
    k.add_argument("--report", help="also write this report.html (and report.json beside it)")
    k.add_argument("--json", action="store_true", help="print one object per target (a list for several) on stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"convert": _convert, "verify": _verify, "run": _run, "check": _check}
    try:
        summary = commands[args.command](args)
    except EdgeqError as e:
        print(f"edgeq: error: {e}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}))
        return 2
    text = summary.pop("text", None)
    if args.json:
        print(json.dumps(summary.pop("json", summary), indent=1))
    elif args.command == "convert":
        _print_summary(summary)
    else:
        print(text)
    if args.command == "verify" and not summary["passed"]:
        return 1
    return 0


def _verify(args) -> dict:
    from edgeq.verify.bitexact import verify
    from edgeq.verify.native import NativeModel

    inputs = None
    if args.inputs:
        inputs = _npz_samples(args.inputs, NativeModel(args.model))
    result = verify(args.model, inputs=inputs, samples=args.samples, seed=args.seed)
    return {**result.to_dict(), "text": result.summary()}


def _check(args) -> dict:
    from edgeq.targets import check
    from edgeq.targets.report import write_report

    results = [check(args.model, spec) for spec in args.target.split(",") if spec.strip()]
    if not results:
        raise PlanError("--target: name at least one target")
    text = "\n\n".join(r.text() for r in results)
    if args.report:
        html, data = write_report(Path(args.report), results)
        text += f"\nwrote {html} and {data}"
    payload = [r.to_dict() for r in results]
    return {"text": text, "json": payload[0] if len(payload) == 1 else payload}


def _npz_samples(path: str, native) -> list:
    """Samples from an .npz: an array with one more axis than its input holds one sample per row."""
    from edgeq.verify.bitexact import load_npz_arrays

    arrays = load_npz_arrays(path, native)
    batched = [a.ndim == len(t.shape) + 1 for a, t in zip(arrays, native.inputs, strict=True)]
    if all(batched) and arrays and len({len(a) for a in arrays}) == 1:
        return [[a[k] for a in arrays] for k in range(len(arrays[0]))]
    return [arrays]


def _run(args) -> dict:
    import numpy as np

    from edgeq.export.atomic import write_atomic
    from edgeq.verify.bitexact import coerce_input, load_npz_arrays
    from edgeq.verify.native import NativeModel

    native = NativeModel(args.model)
    if args.inputs:
        arrays = [coerce_input(a, t, args.inputs) for a, t in zip(load_npz_arrays(args.inputs, native),
                                                                    native.inputs, strict=True)]
    else:
        arrays = [np.zeros(t.shape, t.dtype) for t in native.inputs]
    outputs = native.run(arrays)
    if args.outputs:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, *outputs)
        write_atomic(Path(args.outputs), buffer.getvalue())
    summary = {
        "outputs": [{"name": t.name, "dtype": str(y.dtype), "shape": list(y.shape)}
                    for t, y in zip(native.outputs, outputs, strict=True)],
        "ops": len(native.ops),
        "tensors": len(native.tensors),
        "arena_bytes": native.arena_bytes,
        "persistent_bytes": native.persistent_bytes,
    }
    lines = [f"{t.name}: {y.dtype} {list(y.shape)}" for t, y in zip(native.outputs, outputs, strict=True)]
    if args.outputs:
        lines.append(f"wrote {args.outputs}")
    if args.stats:
        lines.append(f"ops {len(native.ops)}, tensors {len(native.tensors)}, arena {native.arena_bytes} bytes, "
                     f"persistent {native.persistent_bytes} bytes (weights read in place)")
    summary["text"] = "\n".join(lines)
    return summary


def _calibration_source(args, model, path: str | None = None):
    """The samples at `path` (default --calib), loaded to the model's first input as --calib's are."""
    from edgeq.calibrate.data import from_path
    from edgeq.errors import CalibrationDataError

    path = path or args.calib
    if path is None:
        raise CalibrationDataError("--calib is required unless --plan is given")
    shape = model.graph.tensors[model.graph.inputs[0]].shape
    layout = args.layout
    if layout == "auto":
        layout = "NCHW" if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3) else "NHWC"
    size = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2]) if len(shape) == 4 else None
    channels = (shape[1] if layout == "NCHW" else shape[3]) if len(shape) == 4 else 3
    mean = args.mean[0] if len(args.mean) == 1 else tuple(args.mean)
    std = args.std[0] if len(args.std) == 1 else tuple(args.std)
    return from_path(path, size=size, mean=mean, std=std, layout=layout, channels=channels, limit=args.samples)


def _budget(args, model, calib):
    """edgeq.Budget and the fallback from --budget, --budget-eval, --budget-order and --fallback (None, fallback
    without --budget)."""
    import edgeq
    from edgeq.quant.schemes import get_scheme

    fallback = args.fallback
    if fallback == "auto":
        fallback = "int8" if get_scheme(args.scheme).weight_dtype == "int4" else "int16x8"
    if args.budget is None:
        if args.fallback != "auto" or args.budget_eval is not None:
            raise PlanError("--fallback and --budget-eval apply with --budget METRIC=MIN")
        return None, fallback
    metric, sep, value = args.budget.partition("=")
    try:
        minimum = float(value)
    except ValueError:
        minimum = None
    if not sep or minimum is None:
        raise PlanError(f"--budget {args.budget!r}: give METRIC=MIN, e.g. top1_agreement=0.99")
    data = calib if args.budget_eval is None else _calibration_source(args, model, args.budget_eval)
    return edgeq.Budget(metric=metric.strip(), min=minimum, eval=data, order=args.budget_order), fallback


def _convert(args) -> dict:
    import edgeq
    from edgeq.export.atomic import write_atomic
    from edgeq.quant.overrides import parse_override

    model = edgeq.load(args.model)
    plan = edgeq.QuantPlan.load(args.plan) if args.plan else None
    calib = None if plan is not None and args.calib is None else _calibration_source(args, model)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets:
        raise PlanError(f"--targets {args.targets!r}: name tflite, coreml or an accelerator")
    runs = _target_runs(args, targets)
    from edgeq.quant.planner import COREMLTOOLS_FORM

    budget, fallback = _budget(args, model, calib)

    def quantize(key, accelerators: list[str]):
        return edgeq.quantize(
            model,
            calib,
            scheme=key[1] if key is not None and key[0] == "scheme" else args.scheme,
            io=args.io,
            observer=args.observer,
            allow_float_ops=args.allow_float,
            plan=plan,
            progress=not args.quiet,
            algorithms=args.algorithms,
            overrides=dict(parse_override(o) for o in args.override),
            targets=[s for s in accelerators if s != "coreml-ane"] or None if plan is None else None,
            strict=args.strict,
            padding_mask=None if args.padding_mask == "none" else args.padding_mask,
            accuracy_budget=budget,
            fallback=fallback,
            **(COREMLTOOLS_FORM if args.coremltools_form and plan is None else {}),
        )

    models = {key: quantize(key, specs) for key, specs in runs.items()}
    for key, m in models.items():
        if key is not None and key[0] == "scheme":
            m.plan.notes.append(f"coreml-ane: {key[1]} instead of {args.scheme} (rule coreml.blockwise: Apple "
                                "recommends per-channel weight scales for the Neural Engine)")
    qm = models.get(None) or next(iter(models.values()))
    checks, results = _check_targets(args, targets, runs, models, model.name)
    report = None
    layer_sqnr: list[tuple[str, float]] = []
    if calib is not None and args.compare:
        report = edgeq.compare(model, qm, calib, max_samples=args.compare, layers=len(model.graph.tensors))
        layer_sqnr = [(layer.tensor, layer.sqnr_db) for layer in report.worst_layers]  # every layer, for the report
        report.worst_layers = report.worst_layers[:5]
    if report is not None:
        # An adapted plan (per-tensor, uint8) has fidelity of its own: each artifact's outputs against float.
        fidelity = {key: report if m is qm else edgeq.compare(model, m, calib, max_samples=args.compare, layers=0)
                    for key, m in models.items()}
        specs = [(spec, key) for key, group in runs.items() for spec in group]
        for c, (_, key) in zip(checks, specs, strict=True):
            c["fidelity"] = fidelity[key].to_dict()["outputs"]
    out = Path(args.output)
    tflite_path = out / f"{model.name}.{qm.plan.scheme}.tflite"
    plan_path = out / f"{model.name}.{qm.plan.scheme}.plan.json"
    write_atomic(plan_path, qm.plan.to_json().encode())
    artifacts = {"plan": str(plan_path)}
    android = [t for t in targets if t not in ("tflite", "coreml", "coreml-ane")]
    if "tflite" in targets or (len(runs) == 1 and android):
        qm.save(tflite_path)
        artifacts["tflite"] = str(tflite_path)
    for key, specs in runs.items():
        for spec in [s for s in specs if s in android] if len(runs) > 1 else []:
            path = out / f"{model.name}.{spec.replace(':', '-')}.tflite"
            models[key].save(path)
            artifacts[spec] = str(path)
            write_atomic(path.with_suffix(".plan.json"), models[key].plan.to_json().encode())
    if "coreml" in targets:
        artifacts["coreml"] = str(_export_coreml(args, model, qm, out))
    if "coreml-ane" in targets:
        ane = next(m for key, m in models.items() if "coreml-ane" in runs[key])
        if ane is not qm or "coreml" not in targets:
            artifacts["coreml-ane" if "coreml" in targets else "coreml"] = str(_export_coreml(args, model, ane, out))
    for c in checks:
        c["artifact"] = artifacts.get(c["target"], artifacts.get("coreml" if c["target"] == "coreml-ane" else "tflite"))
    if results:  # accelerators named: the delegation report, dist/<model>/report.html and report.json
        from edgeq.targets.report import write_report

        sizes = {Path(args.model).name: len(model.tflite)}
        sizes.update({Path(p).name: _bytes(Path(p)) for key, p in artifacts.items() if key != "plan"})
        html, facts = write_report(out / model.name / "report.html", results, layer_sqnr=layer_sqnr, artifacts=sizes)
        artifacts["report"], artifacts["report_json"] = str(html), str(facts)
    return {
        "ok": True,
        "model": args.model,
        "scheme": qm.plan.scheme,
        "io_dtype": qm.plan.io_dtype,
        "artifacts": artifacts,
        "size_bytes": {"float": len(model.tflite), "quantized": qm.size_bytes},
        "calibration_samples": qm.calibration_samples,
        "float_ops": [f.__dict__ for f in qm.plan.float_ops],
        "notes": qm.plan.notes,
        "timings_s": qm.timings,
        "algorithms": [{"name": r.name, "seconds": r.seconds, "notes": r.notes} for r in qm.algorithms],
        "budget": qm.budget.to_dict() if qm.budget is not None else None,
        "fidelity": report.to_dict() if report is not None else None,
        "targets": checks,
    }


def _target_runs(args, targets: list[str]) -> dict:
    """Which quantizations the targets need: key None is the plan as the user asked it (tflite, coreml,
    coreml-ane and accelerators that need no change); each other key is one adaptation (edgeq.targets.adapt)
    with the accelerators that share it."""
    from edgeq.quant.schemes import get_scheme
    from edgeq.targets import resolve
    from edgeq.targets.adapt import adapt

    scheme = get_scheme(args.scheme)
    io = {"float": "float32", "int": scheme.activation_dtype}.get(args.io, args.io)
    plain = (frozenset(), False, io, False)
    runs: dict = {}
    for spec in targets:
        if spec in ("tflite", "coreml"):
            runs.setdefault(None, [])
            continue
        target = resolve(spec)
        if target.profile.name == "coreml-ane":
            # Per-block INT4 weights are reported to leave the NE: the same scheme per channel instead.
            ane = ("scheme", "int4-channel") if scheme.block_size and scheme.activation_dtype == "int8" else None
            runs.setdefault(None if args.plan is not None else ane, []).append(spec)
            continue
        key = adapt(target, scheme, io).key if args.plan is None else plain
        runs.setdefault(None if key == plain else key, []).append(spec)
    return runs


def _check_targets(args, targets: list[str], runs: dict, models: dict, name: str) -> tuple[list[dict], list]:
    """`check` every accelerator's artifact: what conversion could have avoided (should be nothing) and the
    rules the graph's op choice breaks, which --strict turns into an error."""
    from edgeq.targets.adapt import check_artifact

    out, results, problems = [], [], []
    for key, specs in runs.items():
        for spec in specs:
            tc = check_artifact(models[key].tflite, spec, name=name)
            changes = [n for n in models[key].plan.notes if n.startswith((f"{spec}:", f"warning: {spec}:"))]
            out.append({**tc.to_dict(), "changes": changes})
            results.append(tc.result)
            problems += tc.warnings()
    if args.strict and problems:
        raise PlanError("--strict: " + "; ".join(problems))
    return out, results


def _bytes(path: Path) -> int:
    """A file's size, or a package directory's (an .mlpackage) summed over its files."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _export_coreml(args, model, qm, out: Path) -> Path:
    """The .mlpackage of the same plan; an image input normalised like the calibration images."""
    from edgeq.export.coreml_writer import ImageInput

    int4 = SCHEMES[qm.plan.scheme].weight_dtype == "int4"
    mode = args.coreml_mode or ("w8a8" if qm.plan.scheme == "int8" else "w4" if int4 else "w8")
    image = None
    if args.image_input == "yes" or (args.image_input == "auto" and args.calib and Path(args.calib).is_dir()):
        mean, std = args.mean, args.std
        if len(std) not in (1, 3) or len(mean) not in (1, 3) or (len(std) == 3 and len(set(std)) > 1):
            raise PlanError("Core ML image inputs take one scale for all channels: give one --std value")
        bias = [-m / std[0] for m in mean] if len(mean) == 3 else -mean[0] / std[0]
        image = ImageInput(scale=1.0 / std[0], bias=bias)
    path = out / f"{model.name}.{qm.plan.scheme}.{mode}.mlpackage"
    return qm.export_coreml(
        path, mode=mode, image_input=image, class_labels=args.class_labels, minimum_os=args.minimum_os
    )


def _print_summary(s: dict) -> None:
    sizes = s["size_bytes"]
    written = ", ".join(v for k, v in s["artifacts"].items() if k != "tflite")
    print(
        f"wrote {s['artifacts'].get('tflite', 'no .tflite')} ({sizes['quantized'] / 1024:.1f} KiB, "
        f"{sizes['quantized'] / sizes['float']:.3f}x the float model) and {written}"
    )
    print(f"scheme {s['scheme']}, I/O {s['io_dtype']}, {s['calibration_samples']} calibration samples")
    for f in s["float_ops"]:
        print(f"kept float: op {f['index']} {f['kind']}: {f['reason']}")
    for note in s["notes"]:
        print(f"note: {note}")
    for c in s["targets"]:
        m = c["summary"]
        print(f"{c['target']}: {c['artifact']}: {m['ops_on_accelerator']}/{m['ops_total']} ops on the accelerator in "
              f"{m['partitions']} partition(s), {100 * m['cpu_share_macs']:.1f}% of MACs on the CPU; "
              f"{len(c['avoidable'])} avoidable violation(s)")
        for o in c.get("fidelity", []):
            print(f"  fidelity: {o['name']}: SQNR {o['sqnr_db']:.2f} dB, cosine {o['cosine']:.5f}")
        for line in c["changes"] + c["avoidable"] + c["warnings"]:
            print(f"  {line}")
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
