"""edgeq's Core ML packages side by side with coremltools' own quantizers: same models, same data.

For every zoo model, edgeq renders its int8 plan as `w8` and `w8a8` packages and its w4-block32 plan
(weight-only, like coremltools' weight quantizer: INT4 per block of 32 input channels on fully connected and
convolution weights, per channel where 32 does not divide them, depthwise per channel) as `w4`, and the same
plan in coremltools' form as `edgeq w4 ct-cov` (weight_threshold=2048, block_fallback="float": the weights
coremltools leaves fp16 stay float in edgeq's plan too; conv_blocks="window": a 3x3 convolution's block of 32
input channels spans the kernel window, one scale for 288 values, as theirs; --ct-coverage-only: this w4 plan
only); with --gptq also each plan with GPTQ rounding (`edgeq w4 gptq`, `edgeq w4 ct-cov gptq`, `edgeq w8 gptq`,
...: edgeq's own algorithm, extra rows beside the plain ones). coremltools starts from edgeq's `fp16` package of
the same model (the same float program, exported for the OS each mode needs: iOS16 / iOS17 / iOS18), so only
the quantization differs:

- `ct w8`: linear_quantize_weights, int8 linear_symmetric per channel;
- `ct w4`: linear_quantize_weights, int4 linear_symmetric per block of 32;
- `ct w8a8`: Apple's flow, linear_quantize_activations (linear_symmetric) then the `ct w8` weights.
  It calls Core ML's predict to collect activation ranges, which cannot run on Linux: for the duration of
  the call ModelDebugger.predict_intermediate_outputs evaluates the spec with edgeq's MILProgram (fp32)
  instead, so their algorithm runs unchanged with edgeq's evaluator standing in for Core ML.
- `ct w8a8 all`: the same, except that activation ranges accumulate over all calibration samples.
  coremltools 9.0 keeps only the last sample's range (`_update_tensor_range` and
  `ModelDebugger.record_intermediate_output` overwrite rmin/rmax before taking the min/max); this row fixes
  only that, replaying the ranges recorded in the `ct w8a8` run, to show how much the bug costs them.

Every package is evaluated with MILProgram (fp32, and also fp16 for w8a8) on the eval samples against the
float .tflite in LiteRT: pooled output SQNR, mean cosine, top-1 agreement (classifiers), package bytes.

    PYTHONPATH=. python -m bench.coreml_peers [--models a,b] [--modes w8,w8a8,w4] [--gptq] [--calib 64] [--eval 32]
        [--out DIR] [--json F]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The evaluator's convolutions are many small matmuls: one BLAS thread is twice as fast as two on this
# machine, and --jobs runs models in parallel processes instead. Set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from multiprocessing import get_context  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench import zoo  # noqa: E402

EDGEQ_MODES = {"w8": "int8", "w8a8": "int8", "w4": "w4-block32"}  # Core ML mode -> edgeq scheme
GPTQ = " gptq"  # suffix of the plans with GPTQ rounding (--gptq) and of their rows: "edgeq w4 gptq", ...
# Suffix of the w4 plan in coremltools' form (edgeq.quant.planner.COREMLTOOLS_FORM) and of its rows.
CT_COVERAGE = " ct-cov"
MODE_OS = {"w8": "iOS16", "w8a8": "iOS17", "w4": "iOS18"}  # edgeq's minimum OS per mode; ct starts there too
CT_RECIPES = ("ct w8", "ct w4", "ct w8a8", "ct w8a8 all")
CT_MODE = {"ct w8": "w8", "ct w4": "w4", "ct w8a8": "w8a8", "ct w8a8 all": "w8a8"}
NOTES = [
    "ct rows start from edgeq's fp16 package of the same model (same float program): only quantization differs",
    "ct w8a8 calibration: coremltools' linear_quantize_activations unchanged, with ModelDebugger."
    "predict_intermediate_outputs evaluating the spec with edgeq's MILProgram (fp32) instead of Core ML",
    "ct w8a8 all: as ct w8a8, but ranges accumulate over all calibration samples (coremltools 9.0 keeps the "
    "last sample's range only); replayed from the ranges recorded in the ct w8a8 run",
    "coremltools' weight quantizers keep weights under weight_threshold (2048 elements) in fp16 (their default)",
    "evaluation: MILProgram on the host against the float .tflite in LiteRT; SQNR pooled over outputs and samples",
]


@dataclass
class Row:
    """One package evaluated at one precision."""

    model: str
    recipe: str  # "fp16", "edgeq w8", ..., "ct w8a8 all"
    mode: str  # fp16, w8, w8a8 or w4
    precision: str  # the evaluator's: fp32 (the program's exact math) or fp16 (device-like rounding)
    sqnr_db: float | None = None
    min_output_sqnr_db: float | None = None  # the worst output's pooled SQNR
    median_sample_sqnr_db: float | None = None  # per-sample SQNR (over outputs), median: robust to outliers
    cosine: float | None = None
    top1_agreement: float | None = None
    size_bytes: int | None = None
    compressed: int | None = None  # constexpr (compressed) weights in the package: equal coverage, equal count
    # Per model output: [name, pooled SQNR dB, median of per-sample SQNRs dB] (what `worst` is the minimum of).
    per_output: list[list[Any]] | None = None
    # The sample holding the most float-output energy: [index, its share of the signal, its share of the error].
    # Pooled SQNR is that sample's when both shares are near 1 (the metric stays pooled; this only says so).
    top_sample: list[Any] | None = None
    seconds: float | None = None  # to quantize and write the package (edgeq) or run coremltools
    error: str | None = None


@dataclass
class ModelResult:
    model: str
    classifier: bool
    calib: int
    ct_calib: int
    eval: int
    rows: list[Row] = field(default_factory=list)
    error: str | None = None


def package_bytes(path: Path) -> int:
    """Sum of the sizes of every file under an .mlpackage."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _error(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1][:300] if text else ''}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """coremltools draws tqdm bars and logs on stderr for every pass: keep them out of the table."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


# ---------------------------------------------------------------------------------------------------------
# coremltools' activation calibration with edgeq's evaluator standing in for Core ML


class _Calibration:
    """Patches coremltools' ModelDebugger while its calibration runs: predictions come from MILProgram.

    record: evaluate the spec and remember, per call (one per calibration sample), every returned tensor's
    [min, max]. replay: return those [min, max] pairs in the same order (their min/max are the same) and
    make coremltools accumulate ranges over samples instead of keeping the last one.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, np.ndarray]] = []

    @contextlib.contextmanager
    def record(self) -> Iterator[None]:
        from coremltools.optimize.coreml.experimental import _model_debugger as md

        from edgeq.verify.mil_eval import MILProgram

        programs: dict[int, Any] = {}
        calls = self.calls

        def predict(debugger: Any, inputs: dict, names: list[str], compute_units: Any = None) -> dict:
            program = programs.get(id(debugger))
            if program is None:  # the debugger's spec and weights: what it would have loaded into Core ML
                program = programs[id(debugger)] = MILProgram.load(
                    debugger.model_info.spec, Path(debugger.weights_dir).parent
                )
            values = program.run(inputs, precision="fp32", keep=True)
            ops = debugger.block_info.operations
            # As the original: only names whose dtype Core ML can output, plus the model's outputs.
            wanted = [n for n in names if debugger.get_output_feature_type(n, ops) is not None]
            wanted += [o.name for o in debugger.model_info.spec.description.output]
            out = {n: np.asarray(values[n]) for n in dict.fromkeys(wanted)}
            calls.append({n: np.array([v.min(), v.max()]) for n, v in out.items() if v.size})
            return out

        with _patched(md.ModelDebugger, "predict_intermediate_outputs", predict):
            yield

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        from coremltools.optimize.coreml.experimental import _model_debugger as md
        from coremltools.optimize.coreml.experimental import _post_training_quantization as ptq

        pending = iter(self.calls)

        def predict(debugger: Any, inputs: dict, names: list[str], compute_units: Any = None) -> dict:
            return next(pending)

        def accumulate(value: Any, name: str, stats: dict) -> None:
            lo, hi = float(np.min(value)), float(np.max(value))
            seen = stats[name]
            seen["rmin"] = min(lo, seen.get("rmin", lo))
            seen["rmax"] = max(hi, seen.get("rmax", hi))

        with (
            _patched(md.ModelDebugger, "predict_intermediate_outputs", predict),
            _patched(md.ModelDebugger, "record_intermediate_output", staticmethod(accumulate)),
            _patched(ptq, "_update_tensor_range", lambda name, value, stats: accumulate(value, name, stats)),
        ):
            yield


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


# ---------------------------------------------------------------------------------------------------------
# The coremltools recipes


def _weight_config(dtype: str) -> Any:
    import coremltools.optimize.coreml as cto

    if dtype == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    else:
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32)
    return cto.OptimizationConfig(global_config=op)


def ct_weights(fp16_package: Path, out: Path, dtype: str) -> Path:
    """coremltools' linear_quantize_weights on the fp16 package."""
    import coremltools.optimize.coreml as cto

    from edgeq.export.coreml_env import ct

    with _quiet():
        model = ct.models.MLModel(str(fp16_package), skip_model_load=True)
        cto.linear_quantize_weights(model, _weight_config(dtype)).save(str(out))
    return out


def ct_w8a8(
    fp16_package: Path, out: Path, samples: list[dict[str, np.ndarray]], calibration: _Calibration, replay: bool = False
) -> Path:
    """linear_quantize_activations (linear_symmetric int8) then int8 per-channel weights, Apple's w8a8 flow."""
    import coremltools.optimize.coreml as cto

    from edgeq.export.coreml_env import ct

    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
    patch = calibration.replay() if replay else calibration.record()
    with _quiet(), patch:
        model = ct.models.MLModel(str(fp16_package), skip_model_load=True)
        a8 = cto.linear_quantize_activations(model, config, [dict(s) for s in samples])
    with _quiet():
        cto.linear_quantize_weights(a8, _weight_config("int8")).save(str(out))
    return out


# ---------------------------------------------------------------------------------------------------------
# Measurement


@dataclass
class _Reference:
    inputs: list[str]  # package input names, in the .tflite's input order
    outputs: list[str]  # package output names, in the .tflite's output order
    samples: list[list[np.ndarray]]  # eval samples, batch 1, in the .tflite's layout
    want: list[list[np.ndarray]]  # float .tflite outputs per sample


def _feeds(names: list[str], shapes: dict[str, tuple], sample: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {n: np.ascontiguousarray(x.reshape(shapes[n]), dtype=np.float32) for n, x in zip(names, sample, strict=True)}


def evaluate(package: Path, ref: _Reference, precision: str, classifier: bool) -> dict[str, Any]:
    """Pooled SQNR, worst output SQNR, mean cosine and top-1 agreement of the package against float."""
    from edgeq.verify.fidelity import Accumulator
    from edgeq.verify.mil_eval import MILProgram

    program = MILProgram.load(package)
    shapes = {n: tuple(s) for n, s, _ in program.inputs}
    pooled, per_output = Accumulator(), [Accumulator() for _ in ref.outputs]
    per_sample: list[Accumulator] = []
    per_output_sample: list[list[float]] = [[] for _ in ref.outputs]
    agree = 0
    for sample, want in zip(ref.samples, ref.want, strict=True):
        got = program.run(_feeds(ref.inputs, shapes, sample), precision=precision)
        this = Accumulator()
        for j, (name, w) in enumerate(zip(ref.outputs, want, strict=True)):
            g = np.asarray(got[name], dtype=np.float64).reshape(w.shape)
            pooled.add(w, g)
            per_output[j].add(w, g)
            this.add(w, g)
            one = Accumulator()
            one.add(w, g)
            per_output_sample[j].append(one.sqnr)
        per_sample.append(this)
        agree += int(np.argmax(got[ref.outputs[0]]) == np.argmax(want[0]))
    top = max(range(len(per_sample)), key=lambda k: per_sample[k].signal)
    shares = [per_sample[top].signal / pooled.signal if pooled.signal else 0.0]
    shares.append(per_sample[top].noise / pooled.noise if pooled.noise else 0.0)
    medians = [float(np.median(v)) for v in per_output_sample]
    return {
        "sqnr_db": pooled.sqnr,
        "min_output_sqnr_db": min(a.sqnr for a in per_output),
        "median_sample_sqnr_db": float(np.median([a.sqnr for a in per_sample])),
        "per_output": [[name, a.sqnr, m] for name, a, m in zip(ref.outputs, per_output, medians, strict=True)],
        "top_sample": [top, *shares],
        "cosine": pooled.cosine,
        "top1_agreement": agree / len(ref.samples) if classifier else None,
        "size_bytes": package_bytes(package),
        "compressed": len(program.constexpr_ops),
    }


def measure_model(
    name: str, n_calib: int, n_eval: int, ct_calib: int, out_dir: str, modes: tuple[str, ...] = tuple(EDGEQ_MODES),
    gptq: bool = False, ct_coverage_only: bool = False,
) -> ModelResult:
    """Every edgeq and coremltools package of one zoo model in `modes`, evaluated; failures are recorded in
    the rows. `gptq`: also each mode's plan with GPTQ rounding; `ct_coverage_only`: w4 only in coremltools' form."""
    import edgeq
    from edgeq.quant.planner import COREMLTOOLS_FORM
    from edgeq.runtime import LiteRT
    from edgeq.verify.mil_eval import MILProgram

    entry = zoo.get(name)
    result = ModelResult(name, entry.classifier, n_calib, min(ct_calib, n_calib), n_eval)
    work = Path(out_dir) / name
    work.mkdir(parents=True, exist_ok=True)
    try:
        fm = edgeq.load(entry.path(), name=name)
        calib = entry.calib(n_calib, 0)
        evaluation = entry.eval(n_eval, 0)
        float_rt = LiteRT(fm.host_tflite)
        samples = [[x[i : i + 1] for x in evaluation] for i in range(n_eval)]
        want = [float_rt.run(s) for s in samples]
        plans: dict[str, Any] = {}
        plan_errors: dict[str, str] = {}
        plan_seconds: dict[str, float] = {}
        runs: dict[str, tuple[str, list[str] | None, dict[str, Any]]] = {}
        for m in modes:
            for cov in ((CT_COVERAGE,) if ct_coverage_only else ("", CT_COVERAGE)) if m == "w4" else ("",):
                options = COREMLTOOLS_FORM if cov else {}
                runs[EDGEQ_MODES[m] + cov] = (EDGEQ_MODES[m], None, options)
                if gptq:
                    runs[EDGEQ_MODES[m] + cov + GPTQ] = (EDGEQ_MODES[m], ["gptq"], options)
        for key, (scheme, algorithms, options) in runs.items():
            start = time.perf_counter()
            try:
                plans[key] = edgeq.quantize(
                    fm, edgeq.calibration.arrays(*calib), scheme=scheme, algorithms=algorithms, progress=False,
                    **options,
                )
            except Exception as e:  # a scheme edgeq cannot plan yet is a result, not a crash
                plan_errors[key] = _error(e)
            plan_seconds[key] = time.perf_counter() - start
        base = plans.get("int8") or next(iter(plans.values()), None)
        if base is None:
            raise RuntimeError(f"no edgeq plan: {plan_errors}")
        fp16 = {
            mode: base.export_coreml(work / f"fp16_{os_}.mlpackage", mode="fp16", minimum_os=os_)
            for mode, os_ in MODE_OS.items()
        }
        program = MILProgram.load(fp16["w8"])
        ref = _Reference([n for n, _, _ in program.inputs], list(program.outputs), samples, want)
    except Exception as e:
        result.error = _error(e)
        return result

    def add(recipe: str, mode: str, build: Callable[[], Path], seconds: float = 0.0) -> None:
        precisions = ("fp32", "fp16") if mode == "w8a8" else ("fp32",)
        start = time.perf_counter()
        try:
            package = build()
        except Exception as e:
            result.rows += [Row(name, recipe, mode, p, error=_error(e)) for p in precisions]
            return
        seconds += time.perf_counter() - start
        for p in precisions:
            row = Row(name, recipe, mode, p, seconds=seconds)
            try:
                for key, value in evaluate(package, ref, p, entry.classifier).items():
                    setattr(row, key, value)
            except Exception as e:
                row.error = _error(e)
            result.rows.append(row)

    def edgeq_package(mode: str, key: str) -> Callable[[], Path]:
        def build() -> Path:
            if key not in plans:
                raise RuntimeError(f"pending: edgeq.quantize({key!r}) failed: {plan_errors[key]}")
            return plans[key].export_coreml(work / f"edgeq_{key.replace(' ', '_')}_{mode}.mlpackage", mode=mode)

        return build

    add("fp16", "fp16", lambda: fp16["w8"])
    plain = [m for m in modes if not (ct_coverage_only and m == "w4")]
    for mode in plain:
        add(f"edgeq {mode}", mode, edgeq_package(mode, EDGEQ_MODES[mode]), plan_seconds[EDGEQ_MODES[mode]])
    for mode in plain if gptq else ():
        key = EDGEQ_MODES[mode] + GPTQ
        add(f"edgeq {mode}{GPTQ}", mode, edgeq_package(mode, key), plan_seconds[key])
    if "w4" in modes:
        for suffix in (CT_COVERAGE, CT_COVERAGE + GPTQ) if gptq else (CT_COVERAGE,):
            key = EDGEQ_MODES["w4"] + suffix
            add(f"edgeq w4{suffix}", "w4", edgeq_package("w4", key), plan_seconds[key])
    if "w8" in modes:
        add("ct w8", "w8", lambda: ct_weights(fp16["w8"], work / "ct_w8.mlpackage", "int8"))
    if "w4" in modes:
        add("ct w4", "w4", lambda: ct_weights(fp16["w4"], work / "ct_w4.mlpackage", "int4"))
    if "w8a8" not in modes:
        return result
    shapes = {n: tuple(s) for n, s, _ in program.inputs}  # the first ct_calib of edgeq's calibration samples
    calib_samples = [_feeds(ref.inputs, shapes, [x[i : i + 1] for x in calib]) for i in range(result.ct_calib)]
    calibration = _Calibration()
    add("ct w8a8", "w8a8", lambda: ct_w8a8(fp16["w8a8"], work / "ct_w8a8.mlpackage", calib_samples, calibration))
    if calibration.calls:
        add(
            "ct w8a8 all",
            "w8a8",
            lambda: ct_w8a8(fp16["w8a8"], work / "ct_w8a8_all.mlpackage", calib_samples, calibration, replay=True),
        )
    else:
        result.rows += [
            Row(name, "ct w8a8 all", "w8a8", p, error="no ct w8a8 calibration to replay") for p in ("fp32", "fp16")
        ]
    return result


# ---------------------------------------------------------------------------------------------------------
# Report


def _f(value: float | None, spec: str) -> str:
    """value in format spec (e.g. "+8.2f"), or a dash as wide."""
    return "-".rjust(len(format(0.0, spec))) if value is None else format(value, spec)


def format_model(r: ModelResult) -> str:
    """The model's table: rows per recipe and precision, ct rows with edgeq - ct SQNR and edgeq / ct size."""
    head = (
        f"== {r.model}  ({'classifier' if r.classifier else 'not a classifier'}; calib {r.calib} edgeq / "
        f"{r.ct_calib} ct, eval {r.eval})"
    )
    if r.error:
        return f"{head}\n   FAILED {r.error}"
    lines = [
        head,
        f"   {'recipe':<20} {'eval':<4} {'SQNR dB':>8} {'worst':>7} {'median':>7} {'cosine':>8} {'top-1':>6} "
        f"{'bytes':>10} {'cx':>4} {'edgeq-ct dB':>11} {'size e/ct':>9}",
        "   (SQNR pooled over samples and outputs; worst: the worst output's; median: of per-sample SQNRs; cx: "
        "compressed weights)",
    ]
    edgeq = {(row.mode, row.precision): row for row in r.rows if row.recipe == f"edgeq {row.mode}"}
    for row in r.rows:
        if row.error:
            lines.append(f"   {row.recipe:<20} {row.precision:<4} FAILED {row.error}")
            continue
        delta = ratio = None
        mine = edgeq.get((row.mode, row.precision))
        if row.recipe.startswith("ct") and mine is not None and mine.error is None:
            delta = _delta(mine, row)
            ratio = mine.size_bytes / row.size_bytes if mine.size_bytes and row.size_bytes else None
        lines.append(
            f"   {row.recipe:<20} {row.precision:<4} {_f(row.sqnr_db, '8.2f')} {_f(row.min_output_sqnr_db, '7.2f')} "
            f"{_f(row.median_sample_sqnr_db, '7.2f')} {_f(row.cosine, '8.5f')} {_f(row.top1_agreement, '6.3f')} "
            f"{row.size_bytes or 0:>10} {row.compressed or 0:>4} {_f(delta, '+11.2f')} {_f(ratio, '9.3f')}"
        )
        if row.per_output and len(row.per_output) > 1:
            outputs = "; ".join(f"{n} {_f(p, '.2f')} (median {_f(m, '.2f')})" for n, p, m in row.per_output)
            lines.append(f"   {'':<20} {'':<4} per output, pooled dB: {outputs}")
        if row.top_sample and row.top_sample[1] > 0.5:  # one sample holds most of the signal: say so
            k, signal, noise = row.top_sample
            lines.append(f"   {'':<20} {'':<4} eval sample {k} holds {100 * signal:.1f}% of the float outputs' "
                         f"energy and {100 * noise:.1f}% of the error")  # fmt: skip
    return "\n".join(lines)


def _delta(mine: Row, theirs: Row) -> float | None:
    if mine.sqnr_db is None or theirs.sqnr_db is None:
        return None
    if np.isinf(mine.sqnr_db) and np.isinf(theirs.sqnr_db):
        return 0.0
    return float(mine.sqnr_db - theirs.sqnr_db)


def summarize(results: list[ModelResult]) -> list[dict[str, Any]]:
    """Per ct recipe and precision: on how many models edgeq's SQNR >= theirs at <= their package size (and
    each half of that on its own)."""
    summary = []
    pairs = [(f"edgeq {CT_MODE[r]}{suffix}", r) for suffix in ("", GPTQ) for r in CT_RECIPES]
    pairs += [(f"edgeq w4{suffix}", "ct w4") for suffix in (CT_COVERAGE, CT_COVERAGE + GPTQ)]
    for ours, recipe in pairs:
        mode = CT_MODE[recipe]
        for precision in ("fp32", "fp16") if mode == "w8a8" else ("fp32",):
            entry: dict[str, Any] = {
                "ct": recipe,
                "edgeq": ours,
                "precision": precision,
                "compared": 0,
                "sqnr_ge": 0,
                "size_le": 0,
                "edgeq_wins": 0,
                "not_won": [],
            }
            for r in results:
                rows = {row.recipe: row for row in r.rows if row.precision == precision and row.error is None}
                mine, theirs = rows.get(ours), rows.get(recipe)
                if mine is None or theirs is None:
                    continue
                delta = _delta(mine, theirs)
                sqnr_ge = delta is not None and delta >= 0
                size_le = (mine.size_bytes or 0) <= (theirs.size_bytes or 0)
                entry["compared"] += 1
                entry["sqnr_ge"] += sqnr_ge
                entry["size_le"] += size_le
                entry["edgeq_wins"] += sqnr_ge and size_le
                if not (sqnr_ge and size_le):
                    entry["not_won"].append(r.model)
            if entry["compared"]:  # pairs of modes (and gptq rows) the run measured
                summary.append(entry)
    return summary


def format_summary(summary: list[dict[str, Any]], n_models: int) -> str:
    lines = ["== summary: edgeq SQNR >= coremltools SQNR at <= package size"]
    for s in summary:
        lines.append(
            f"   {s['edgeq']:<20} vs {s['ct']:<12} ({s['precision']}): {s['edgeq_wins']}/{s['compared']} models "
            f"(of {n_models}); SQNR >= on {s['sqnr_ge']}, size <= on {s['size_le']}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------


def run(
    names: list[str], n_calib: int, n_eval: int, ct_calib: int, out_dir: Path, jobs: int,
    modes: tuple[str, ...] = tuple(EDGEQ_MODES), gptq: bool = False, ct_coverage_only: bool = False,
) -> list[ModelResult]:
    """Measure the models, `jobs` at a time in spawned processes; each table is printed as its model ends."""
    order = sorted(names, key=lambda n: zoo.get(n).source == "keras")  # the big models first
    results: dict[str, ModelResult] = {}
    args = (n_calib, n_eval, ct_calib, str(out_dir), modes, gptq, ct_coverage_only)
    if jobs <= 1:
        for name in order:
            results[name] = measure_model(name, *args)
            print(format_model(results[name]), flush=True)
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(measure_model, name, *args): name for name in order}
            for future in as_completed(futures):
                name = futures[future]
                try:
                    results[name] = future.result()
                except Exception as e:  # a crashed worker
                    results[name] = ModelResult(
                        name, zoo.get(name).classifier, n_calib, ct_calib, n_eval, error=_error(e)
                    )
                print(format_model(results[name]), flush=True)
    return [results[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(zoo.ZOO), help="comma-separated zoo names (default: all)")
    ap.add_argument("--calib", type=int, default=64, help="calibration samples, entry.calib(n, 0)")
    ap.add_argument(
        "--ct-calib",
        type=int,
        default=None,
        help="the first n of those for coremltools' activation calibration (default: all of them)",
    )
    ap.add_argument("--eval", type=int, default=32, help="evaluation samples, entry.eval(n, 0)")
    ap.add_argument("--out", help="work directory for the packages (default: a temporary one, removed)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--jobs", type=int, default=2, help="models measured in parallel processes")
    ap.add_argument("--modes", default=",".join(EDGEQ_MODES), help="Core ML modes compared (default: all)")
    ap.add_argument("--gptq", action="store_true", help="also each mode's plan with algorithms=['gptq']")
    ap.add_argument("--ct-coverage-only", action="store_true", help="w4: only the plan in coremltools' form")
    args = ap.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    if any(m not in EDGEQ_MODES for m in modes):
        ap.error(f"--modes: choose from {', '.join(EDGEQ_MODES)}")
    names = [n for n in args.models.split(",") if n]
    for n in names:
        zoo.get(n)  # unknown names fail before any work
    ct_calib = args.calib if args.ct_calib is None else min(args.ct_calib, args.calib)
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="coreml_peers."))
    start = time.perf_counter()
    print("\n".join(f"note: {n}" for n in NOTES), flush=True)
    try:
        results = run(
            names, args.calib, args.eval, ct_calib, out_dir, args.jobs, modes, args.gptq, args.ct_coverage_only
        )
    finally:
        if not args.out:
            shutil.rmtree(out_dir, ignore_errors=True)
    summary = summarize(results)
    print(format_summary(summary, len(results)))
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        document = {
            "config": {
                "models": names,
                "calib": args.calib,
                "ct_calib": ct_calib,
                "eval": args.eval,
                "calib_seed": 0,
                "eval_seed": 0,
            },
            "notes": NOTES,
            "models": [{**asdict(r), "rows": [asdict(row) for row in r.rows]} for r in results],
            "summary": summary,
        }
        Path(args.json).write_text(json.dumps(document, indent=1, default=_json_default) + "\n")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


if __name__ == "__main__":
    sys.exit(main())
