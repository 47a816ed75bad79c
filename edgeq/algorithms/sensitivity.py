"""Per-layer sensitivity: how far the model's outputs move from float when only one layer is quantized.

One calibration and one plan (quantize()'s), then, for each layer, a sub-plan that keeps that layer's
encodings (its weights, bias, inputs and output) and leaves every other op float: the existing lowering puts
QUANTIZE before the layer and DEQUANTIZE after it, and LiteRT runs the real integer kernel for it. This is
exact where a numpy fake-quant simulation is not (LiteRT cannot overwrite an intermediate tensor, so a
simulation would need edgeq's own float kernels for every op downstream), and costs one render plus one
pass over the evaluation samples per layer: measured on EfficientNet-Lite0 in docs/BENCHMARKS.md.

A layer is an op that computes new values under its own encoding: ops with weights, and value ops whose
output encoding is not shared with their input (ADD, MUL, MEAN, SOFTMAX...); data movement (RESHAPE,
pooling, CONCATENATION...) only re-carries its input's encoding and is left out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from edgeq.errors import PlanError
from edgeq.frontends.tflite import FloatModel
from edgeq.quant.op_rules import RULES, SHAPE_OPS
from edgeq.quant.overrides import op_name, short_name
from edgeq.quant.plan import FloatOp, QuantPlan
from edgeq.runtime import LiteRT
from edgeq.verify.fidelity import Accumulator, _is_class_vector, sqnr_db

METRICS = ("sqnr", "top1_agreement", "cosine")


@dataclass
class LayerSensitivity:
    """The model's fidelity to float when only this op is quantized."""

    op: int
    kind: str
    name: str  # the op's first output tensor
    sqnr_db: float  # pooled over every output and sample
    top1_agreement: float | None = None  # classifiers with evaluation data only
    cosine: float | None = None  # mean over samples of the outputs' cosine to float


@dataclass
class SensitivityResult:
    """Layers ranked most sensitive first (lowest metric), with the fully quantized model for scale."""

    scheme: str
    metric: str
    samples: int
    seconds: float
    full_sqnr_db: float
    full_top1_agreement: float | None
    layers: list[LayerSensitivity] = field(default_factory=list)
    full_cosine: float | None = None

    def ranked(self, top: int | None = None) -> list[LayerSensitivity]:
        return self.layers[:top]

    def table(self, top: int | None = None) -> str:
        """A ranked text table: rank, SQNR, top-1 agreement, op kind and (the tail of) the op's name."""
        top1 = self.full_top1_agreement is not None
        cosine = self.metric == "cosine"
        lines = [
            f"sensitivity ({self.scheme}, ranked by {self.metric}) over {self.samples} samples, {self.seconds:.1f} s;"
            f" whole model quantized: {self.full_sqnr_db:.2f} dB"
            + (f", top-1 {self.full_top1_agreement:.4f}" if top1 else "")
            + (f", cosine {self.full_cosine:.4f}" if cosine else ""),
            f"{'#':>3} {'SQNR dB':>8} " + (f"{'top-1':>7} " if top1 else "") + (f"{'cosine':>7} " if cosine else "")
            + f"{'op':>4} {'kind':<18} layer",
        ]
        for rank, layer in enumerate(self.ranked(top), 1):
            agree = f"{layer.top1_agreement:7.4f} " if top1 and layer.top1_agreement is not None else ""
            cos = f"{layer.cosine:7.4f} " if cosine else ""
            name = short_name(layer.name)
            lines.append(f"{rank:>3} {layer.sqnr_db:8.2f} {agree}{cos}{layer.op:>4} {layer.kind:<18} {name}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        return asdict(self)


def sensitivity(
    model: FloatModel,
    calib,
    scheme: str = "int8",
    eval=None,
    metric: str = "sqnr",
    max_samples: int | None = None,
    progress: bool = True,
) -> SensitivityResult:
    """Per quantizable layer, the output SQNR (and top-1 agreement for classifiers, when `eval` data is given)
    with only that layer quantized under `scheme` (its weights and output activation; everything else float).
    Measured on `eval`, else on the calibration samples; `max_samples` bounds either. `metric` ranks: "sqnr",
    "top1_agreement" (needs eval data and a classifier output) or "cosine" (embedding models: the mean over
    samples of the cosine between the float and quantized outputs)."""
    from edgeq.api import _materialized, _SampleList, quantize

    if metric not in METRICS:
        raise PlanError(f"metric {metric!r}: choose {' or '.join(METRICS)}")
    if metric == "top1_agreement" and eval is None:
        raise PlanError("metric 'top1_agreement' needs evaluation data (eval=...)")
    start = time.perf_counter()
    calib_samples = _materialized(model.graph, calib)
    qm = quantize(model, _SampleList(calib_samples), scheme=scheme, progress=progress)
    samples = calib_samples if eval is None else _materialized(model.graph, eval)
    evaluator = Evaluator(model, samples[:max_samples], top1=eval is not None)
    if metric == "top1_agreement" and evaluator.classifier is None:
        raise PlanError("metric 'top1_agreement' needs a classifier output (one vector of scores per sample)")
    full = evaluator.score(qm.host_tflite)
    layers = layer_sensitivities(model, qm.plan, evaluator, progress)
    keys = {"top1_agreement": lambda x: (x.top1_agreement, x.sqnr_db), "cosine": lambda x: (x.cosine, x.sqnr_db)}
    layers.sort(key=keys.get(metric, lambda x: x.sqnr_db))
    return SensitivityResult(
        scheme=qm.plan.scheme,
        metric=metric,
        samples=len(evaluator.samples),
        seconds=time.perf_counter() - start,
        full_sqnr_db=full.sqnr_db,
        full_top1_agreement=full.top1_agreement,
        layers=layers,
        full_cosine=full.cosine,
    )


@dataclass(frozen=True)
class Score:
    """A quantized model's closeness to float on the evaluator's samples."""

    sqnr_db: float  # pooled over every output and sample
    top1_agreement: float | None  # None without a classifier output
    cosine: float  # mean over samples of the cosine between all outputs, flattened together


class Evaluator:
    """The float model's outputs over fixed samples, and how close another model's outputs come to them."""

    def __init__(self, model: FloatModel, samples: list[list[np.ndarray]], top1: bool) -> None:
        self.samples = samples
        runtime = LiteRT(model.host_tflite)
        self.reference = [runtime.run(s) for s in samples]
        shapes = [model.graph.tensors[t].shape for t in model.graph.outputs]
        # Top-1 agreement of the first classifier output (one vector of scores per sample), when asked for.
        self.classifier = next((k for k, shape in enumerate(shapes) if _is_class_vector(shape)), None) if top1 else None

    def score(self, host: bytes) -> Score:
        """Pooled output SQNR, top-1 agreement and mean cosine of the model `host` on the samples."""
        runtime = LiteRT(host)
        pooled = Accumulator()
        agree = 0
        whole = Accumulator()  # one add per sample: every output flattened together
        for sample, ref in zip(self.samples, self.reference, strict=True):
            got = runtime.run(sample)
            for r, q in zip(ref, got, strict=True):
                pooled.add(r, q)
            if self.classifier is not None:
                agree += int(np.argmax(ref[self.classifier]) == np.argmax(got[self.classifier]))
            whole.add(np.concatenate([r.ravel() for r in ref]), np.concatenate([q.ravel() for q in got]))
        top1 = agree / max(len(self.samples), 1) if self.classifier is not None else None
        return Score(sqnr_db(pooled.signal, pooled.noise), top1, whole.cosine if whole.count else 1.0)


def layer_sensitivities(
    model: FloatModel, plan: QuantPlan, evaluator: Evaluator, progress: bool = False
) -> list[LayerSensitivity]:
    """Each layer of `plan` alone quantized, in graph order."""
    layers = []
    for i in tqdm(layer_ops(plan, model), desc="sensitivity", disable=not progress, leave=False):
        score = evaluator.score(_render_one(model, plan, i))
        layers.append(LayerSensitivity(i, model.graph.ops[i].kind, op_name(model.graph, i), score.sqnr_db,
                                       score.top1_agreement, score.cosine))
    return layers


def layer_ops(plan: QuantPlan, model: FloatModel) -> list[int]:
    """Indices of the ops the plan quantizes that compute new values (see the module docstring)."""
    floats = {f.index for f in plan.float_ops}
    out = []
    for i, op in enumerate(model.graph.ops):
        rule = RULES.get(op.kind)
        if i in floats or rule is None or op.kind in SHAPE_OPS or (rule.same_encoding and not rule.weights):
            continue
        if model.graph.tensors[op.outputs[0]].name in plan.tensors:
            out.append(i)
    return out


def single_layer_plan(plan: QuantPlan, model: FloatModel, index: int) -> QuantPlan:
    """`plan` restricted to op `index`: its tensors' encodings kept, every other op float."""
    graph = model.graph
    op = graph.ops[index]
    names = {graph.tensors[t].name for t in [*op.inputs, *op.outputs] if t >= 0}
    return QuantPlan(
        scheme=plan.scheme,
        io_dtype="float32",
        model_sha256=plan.model_sha256,
        tensors={n: e for n, e in plan.tensors.items() if n in names},
        float_ops=[
            FloatOp(index=j, kind=o.kind, reason=f"sensitivity: only op {index} quantized")
            for j, o in enumerate(graph.ops)
            if j != index
        ],
        requantize=[r for r in plan.requantize if r.op == index],
        weights={n: w for n, w in plan.weights.items() if n in names},
    )


def _render_one(model: FloatModel, plan: QuantPlan, index: int) -> bytes:
    from edgeq.api import _render

    return _render(model, single_layer_plan(plan, model, index), {})[2]
