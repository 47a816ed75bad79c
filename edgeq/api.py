"""The public Python API: quantize a float model, save the integer .tflite, measure fidelity."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeq.algorithms.budget import Budget, BudgetResult, check_int16_targets, meet_budget
from edgeq.algorithms.context import AlgorithmContext, AlgorithmReport, timed
from edgeq.algorithms.registry import resolve as resolve_algorithms
from edgeq.calibrate.data import validated
from edgeq.calibrate.padding import resolve_padding_mask
from edgeq.calibrate.runner import calibrate, input_specs
from edgeq.errors import PlanError
from edgeq.export.atomic import write_atomic
from edgeq.export.op_versions import assign_versions, min_runtime_version
from edgeq.export.tflite_lowering import lower_to_tflite
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.frontends.tflite import FloatModel
from edgeq.ir.graph import Graph
from edgeq.quant.overrides import resolve_overrides
from edgeq.quant.plan import QuantPlan
from edgeq.quant.planner import PlanOptions, build_plan, check_coverage_options, classify_ops
from edgeq.quant.schemes import get_scheme
from edgeq.runtime import LiteRT
from edgeq.verify.fidelity import Accumulator, FidelityReport
from edgeq.verify.fidelity import compare as _compare


@dataclass
class QuantizedModel:
    """The result of quantize(): the plan, the integer graph and its .tflite bytes."""

    float_model: FloatModel
    plan: QuantPlan
    graph: Graph
    tflite: bytes
    timings: dict[str, float] = field(default_factory=dict)
    calibration_samples: int = 0
    host_tflite: bytes = b""  # what LiteRT runs on the host (custom ops replaced by builtin stand-ins)
    algorithms: list[AlgorithmReport] = field(default_factory=list)  # what each fidelity algorithm did
    budget: BudgetResult | None = None  # what an accuracy budget promoted, when one was given

    def save(self, path: str | os.PathLike) -> Path:
        """Write the .tflite atomically: an interrupted save never leaves a partial or damaged file."""
        path = Path(path)
        write_atomic(path, self.tflite)
        return path

    @property
    def size_bytes(self) -> int:
        return len(self.tflite)

    def export_coreml(self, path: str | os.PathLike, mode: str = "w8a8", **options) -> Path:
        """The same plan as a Core ML .mlpackage: mode fp16, w8, w8a8 or w4; options are those of
        edgeq.export.coreml_writer.export_coreml (image_input, class_labels, minimum_os, author, ...)."""
        from edgeq.export.coreml_writer import export_coreml

        return export_coreml(self, path, mode=mode, **options)


_IO_DTYPES = {"float32", "int8", "int16"}


def quantize(
    model: FloatModel,
    calib=None,
    scheme: str = "int8",
    io: str = "float32",
    observer: str | None = None,
    allow_float_ops: bool = False,
    plan: QuantPlan | None = None,
    progress: bool = True,
    algorithms: Sequence[str] | str | None = None,
    overrides: Mapping[str, str] | None = None,
    accuracy_budget: Budget | None = None,
    fallback: str = "int8",
    targets: Sequence[str] | None = None,
    strict: bool = False,
    weight_threshold: int = 0,
    block_fallback: str = "channel",
    conv_blocks: str = "tap",
    padding_mask: str | None = "auto",
) -> QuantizedModel:
    """Calibrate, plan and lower. `io` is the model's input/output type: float32 (QUANTIZE/DEQUANTIZE
    at the boundary) or the activation type. A given `plan` skips calibration and is applied as is.

    `observer` defaults to "auto" for int8: one calibration pass yields both the 99.99th-percentile
    and the min/max ranges, both plans are rendered, and the one whose outputs are closer to float on
    calibration samples held out of the ranges (every 16th, up to 8) wins: clipping helps most models
    and ruins a few. With fewer than 16 samples the percentile plan is used. int16 activations
    default to "minmax": 65536 levels leave nothing for clipping to buy.

    `algorithms` (names from edgeq.algorithms.registry, e.g. ["cle", "bias_correction", "adaround"]) refine
    the result: float-stage ones change weights before calibration, plan-stage ones the chosen plan's
    rounding and biases; what they changed travels in plan.weights. They keep the calibration samples in
    memory.

    `overrides` maps fnmatch patterns over op names (an op's first output tensor) to the weight scheme of the
    ops they match: "int8", an INT4 scheme, "int16x8" (int16 activations for those ops) or "float"
    (edgeq.quant.overrides); the plan's notes list them.

    `accuracy_budget` (edgeq.Budget) promotes the fewest layers to `fallback` ("int8": INT4 weights to int8,
    "int16x8": int8 activations to int16, or "float") until the budget's metric holds on its evaluation data
    (edgeq.algorithms.budget); qm.budget and the plan's notes say which layers moved.

    `targets` (accelerator specs: "edgetpu", "nnapi:27", "hexagon:legacy", ...) adapt the plan to what they
    need (edgeq.targets.adapt): per-tensor weights, uint8 encodings, integer I/O, static shapes; the plan's
    notes say what changed and which rule asked; `strict` makes a constraint the scheme cannot meet an error.
    `io="uint8"` with targets writes the legacy uint8 encoding throughout.

    `weight_threshold`, `block_fallback` (w4-blockN schemes): weights of at most `weight_threshold` values stay
    float, and with block_fallback="float" so do convolution weights whose input channels the block does not
    divide (depthwise ones included) instead of INT4 per channel; `conv_blocks="window"` gives a CONV_2D block
    one scale over the whole kernel window (default "tap": one per kernel tap). 2048, "float" and "window" are
    coremltools' linear_quantize_weights per_block form, in the .tflite and the .mlpackage alike.

    `padding_mask` names the input of a sequence model whose zeros mark padding positions (by default the input
    named "attention_mask", if any; None: none): activation ranges and the algorithms' statistics then count
    only the real positions' rows of [S, F] tensors (edgeq.calibrate.padding).
    """
    timings: dict[str, float] = {}
    sch = get_scheme(scheme if plan is None else plan.scheme)
    io = {"float": "float32", "int": sch.activation_dtype}.get(io, io)
    adaptation = None
    if targets:
        from edgeq.targets.adapt import adapt_all

        if plan is not None:
            raise PlanError("targets adapt the plan when planning: a given plan already holds every encoding")
        adaptation = adapt_all(targets, sch, io, strict)
        io = adaptation.options(PlanOptions(sch, io)).io_dtype
    if io not in _IO_DTYPES or (io != "float32" and io != sch.activation_dtype):
        raise PlanError(f"io={io!r}: choose 'float32' or '{sch.activation_dtype}' for scheme {sch.name}")
    observer = observer or ("auto" if sch.activation_dtype == "int8" else "minmax")
    samples = 0
    reports: list[AlgorithmReport] = []
    budget = None
    if plan is not None:
        coverage = weight_threshold or block_fallback != "channel" or conv_blocks != "tap"
        if overrides or accuracy_budget is not None or coverage:
            raise PlanError(
                "overrides, budgets and coverage options apply when planning: a given plan already holds every encoding"
            )
        if plan.model_sha256 != model.sha256:
            raise PlanError(
                f"plan was made for model {plan.model_sha256[:12]}, this model is {model.sha256[:12]}; "
                f"re-plan or load the model it was made for"
            )
        rendered = _render(model, plan, timings)
    else:
        if calib is None:
            raise PlanError("quantize() needs calibration data (calib=...) or a plan (plan=...)")
        resolved = resolve_overrides(model.graph, overrides, sch)
        if resolved.int16_ops or (accuracy_budget is not None and fallback == "int16x8"):
            check_int16_targets(targets)
        options = PlanOptions(sch, io, allow_float_ops, resolved.weight_schemes, resolved.float_ops,
                              int16_ops=frozenset(resolved.int16_ops), weight_threshold=weight_threshold,
                              block_fallback=block_fallback, conv_blocks=conv_blocks)
        check_coverage_options(options)
        if adaptation is not None:
            options = adaptation.options(options)
        classify_ops(model.graph, options)  # an op that cannot be quantized fails before calibration
        chosen = resolve_algorithms(algorithms)
        padding = resolve_padding_mask(model.graph, padding_mask)
        work = model.graph.copy()
        ctx = AlgorithmContext(
            graph=work,
            scheme=sch,
            samples=_materialized(model.graph, calib) if chosen else [],
            render=lambda g, p: _render_graph(g, p, timings),
            progress=progress,
            padding=padding,
        )
        if chosen:
            calib = _SampleList(ctx.samples)
        reports = [timed(a.name, lambda a=a: a.load()(ctx)) for a in chosen if a.stage == "float"]
        result = calibrate(
            work,
            ctx.float_host_tflite() if reports else model.host_tflite,
            calib,
            observer="percentile" if observer == "auto" else observer,
            bits=8 if sch.activation_dtype == "int8" else 16,
            symmetric=sch.activation_symmetric,
            progress=progress,
            keep=_AUTO_SAMPLES if observer == "auto" else 0,
            padding=padding,
        )
        timings["calibrate_s"] = result.seconds
        samples = result.samples
        start = time.perf_counter()
        candidates = {"percentile" if observer == "auto" else observer: result.ranges}
        if observer == "auto" and result.minmax_ranges is not None:
            candidates["minmax"] = result.minmax_ranges
        # Ops promoted to int16 (overrides, an int16x8 budget) take min/max ranges when auto has them.
        wide = result.minmax_ranges if observer == "auto" else None
        plans = {name: build_plan(work, ranges, options, model.sha256, wide) for name, ranges in candidates.items()}
        timings["plan_s"] = time.perf_counter() - start
        renders = {name: _render_graph(work, p, timings) for name, p in plans.items()}
        if len(renders) > 1 and result.held_inputs:
            start = time.perf_counter()
            scores = {name: _held_sqnr(r[2], result) for name, r in renders.items()}
            best = max(scores, key=lambda name: scores[name])
            plans[best].notes.append(
                "activation ranges: "
                + ", ".join(f"{name} {scores[name]:.2f} dB" for name in sorted(scores))
                + f" pooled output SQNR on {len(result.held_inputs)} calibration samples held out of the ranges;"
                f" {best} kept"
            )
            timings["choose_s"] = time.perf_counter() - start
        else:  # fewer than 16 samples: none to spare for choosing
            best = next(iter(renders))
        plan, rendered = plans[best], renders[best]
        plan.notes += resolved.notes + result.notes
        ctx.plan = plan
        ctx.float_graph = work.copy() if chosen else None
        reports += [timed(a.name, lambda a=a: a.load()(ctx)) for a in chosen if a.stage == "plan"]
        if chosen:
            plan = ctx.plan
            plan.weights = _changed_constants(model.graph, work)
            plan.notes += [f"{r.name} ({r.seconds:.1f} s): {note}" for r in reports for note in r.notes]
            timings.update({f"{r.name}_s": r.seconds for r in reports})
            rendered = _render(model, plan, timings)
        if accuracy_budget is not None:
            start = time.perf_counter()
            base = work if ctx.float_graph is None else ctx.float_graph
            plan, budget = meet_budget(
                model, base, plan, options, accuracy_budget, fallback, lambda p: _render(model, p, {})[2], progress,
                wide,
            )
            plan.notes += budget.notes()
            rendered = _render(model, plan, timings)
            timings["budget_s"] = time.perf_counter() - start
    if adaptation is not None:
        plan.notes += [*adaptation.notes, *(f"warning: {w}" for w in adaptation.warnings)]
        if adaptation.static_shapes:
            rendered = _pinned(rendered, plan)
    graph, data, host_data = rendered
    return QuantizedModel(
        float_model=model,
        plan=plan,
        graph=graph,
        tflite=data,
        timings=timings,
        calibration_samples=samples,
        host_tflite=host_data,
        algorithms=reports,
        budget=budget,
    )


# Calibration samples held out of the ranges to choose between candidate plans.
_AUTO_SAMPLES = 8


def _render(model: FloatModel, plan: QuantPlan, timings: dict[str, float]) -> tuple[Graph, bytes, bytes]:
    """The integer graph, its .tflite bytes, and the bytes LiteRT runs on the host (custom-op stand-ins)."""
    graph = model.graph
    if plan.weights:
        graph = graph.copy()
        by_name = {t.name: t for t in graph.tensors}
        for name, values in plan.weights.items():
            tensor = by_name.get(name)
            if tensor is None or not tensor.is_constant or tuple(values.shape) != tuple(tensor.data.shape):
                raise PlanError(f'plan.weights["{name}"] {values.shape} matches no constant of the model')
            tensor.data = values
    return _render_graph(graph, plan, timings)


def _render_graph(graph: Graph, plan: QuantPlan, timings: dict[str, float]) -> tuple[Graph, bytes, bytes]:
    start = time.perf_counter()
    graph = lower_to_tflite(graph, plan)
    assign_versions(graph)
    # The float file's metadata travels with the model (MediaPipe's TFLITE_METADATA describes its inputs),
    # except what described the float conversion itself. min_runtime_version as TFLiteConverter writes it:
    # the oldest runtime that has every (op, version), NUL-padded to 16 bytes.
    graph.metadata.pop("CONVERSION_METADATA", None)
    graph.metadata["min_runtime_version"] = min_runtime_version(graph).encode().ljust(16, b"\0")
    data = write_tflite(graph, description=f"edgeq {plan.scheme}")
    host = host_graph(graph)
    timings["export_s"] = timings.get("export_s", 0.0) + time.perf_counter() - start
    return graph, data, data if host is None else write_tflite(host, description=f"edgeq {plan.scheme}")


def _pinned(rendered: tuple[Graph, bytes, bytes], plan: QuantPlan) -> tuple[Graph, bytes, bytes]:
    """The rendered model with every dynamic dimension made static (targets that need static shapes)."""
    from edgeq.targets.adapt import pin_static_shapes

    graph = rendered[0]
    pinned = pin_static_shapes(graph)
    if not pinned:
        return rendered
    plan.notes.append(f"static shapes: {len(pinned)} tensor(s) had dynamic dimensions, now the planned sizes "
                      f"(e.g. '{pinned[0]}')")
    data = write_tflite(graph, description=f"edgeq {plan.scheme}")
    host_g = host_graph(graph)
    return graph, data, data if host_g is None else write_tflite(host_g, description=f"edgeq {plan.scheme}")


def _changed_constants(original: Graph, work: Graph) -> dict[str, np.ndarray]:
    """Constants an algorithm changed, by name: what plan.weights must carry to reproduce `work`."""
    changed = {}
    for before, after in zip(original.tensors, work.tensors, strict=True):
        if after.is_constant and after.dtype == "float32" and not np.array_equal(before.data, after.data):
            changed[after.name] = np.asarray(after.data, dtype=np.float32)
    return changed


class _SampleList:
    """Calibration samples kept in memory (algorithms re-read them), served one per batch (the model's
    input shapes start with batch 1)."""

    def __init__(self, samples: list[list[np.ndarray]]) -> None:
        self.samples = samples

    def batches(self, specs):
        for sample in self.samples:
            yield list(sample)


def _materialized(graph: Graph, calib) -> list[list[np.ndarray]]:
    """Every calibration sample, validated, in the model's input shapes (batch 1)."""
    if calib is None:
        raise PlanError("quantize() needs calibration data (calib=...) or a plan (plan=...)")
    shapes = [tuple(graph.tensors[t].shape) for t in graph.inputs]
    out = []
    for batch in validated(calib, input_specs(graph)):
        for k in range(batch[0].shape[0]):
            out.append([x[k : k + 1].reshape(shape) for x, shape in zip(batch, shapes, strict=True)])
    return out


def _held_sqnr(quantized: bytes, result) -> float:
    """Pooled output SQNR of a quantized model against the float outputs recorded during calibration."""
    runtime = LiteRT(quantized)
    pooled = Accumulator()
    for inputs, expected in zip(result.held_inputs, result.held_outputs, strict=True):
        for got, ref in zip(runtime.run(inputs), expected, strict=True):
            pooled.add(ref, got)
    return pooled.sqnr


def compare(
    model: FloatModel,
    qm: QuantizedModel,
    data,
    max_samples: int | None = None,
    layers: int = 5,
    reference: bool = False,
) -> FidelityReport:
    """SQNR and cosine per output, top-1 agreement for classifiers, and the worst layers."""
    return _compare(
        model.graph,
        model.host_tflite,
        qm.host_tflite,
        data,
        max_samples=max_samples,
        layers=layers,
        reference=reference,
    )
