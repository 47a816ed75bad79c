"""The public Python API: quantize a float model, save the integer .tflite, measure fidelity."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeq.calibrate.runner import calibrate
from edgeq.errors import PlanError
from edgeq.export.atomic import write_atomic
from edgeq.export.op_versions import assign_versions
from edgeq.export.tflite_lowering import lower_to_tflite
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.frontends.tflite import FloatModel
from edgeq.ir.graph import Graph
from edgeq.quant.plan import QuantPlan
from edgeq.quant.planner import PlanOptions, build_plan, classify_ops
from edgeq.quant.schemes import get_scheme
from edgeq.verify.fidelity import FidelityReport
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

    def save(self, path: str | os.PathLike) -> Path:
        """Write the .tflite atomically: an interrupted save never leaves a partial or damaged file."""
        path = Path(path)
        write_atomic(path, self.tflite)
        return path

    @property
    def size_bytes(self) -> int:
        return len(self.tflite)


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
) -> QuantizedModel:
    """Calibrate, plan and lower. `io` is the model's input/output type: float32 (QUANTIZE/DEQUANTIZE
    at the boundary) or the activation type. A given `plan` skips calibration and is applied as is.
    `observer` defaults to "percentile" for int8 activations (clipping rare outliers buys resolution)
    and "minmax" for int16 ones (65536 levels leave nothing to buy, so clipping only loses)."""
    timings: dict[str, float] = {}
    sch = get_scheme(scheme if plan is None else plan.scheme)
    io = {"float": "float32", "int": sch.activation_dtype}.get(io, io)
    if io not in _IO_DTYPES or (io != "float32" and io != sch.activation_dtype):
        raise PlanError(f"io={io!r}: choose 'float32' or '{sch.activation_dtype}' for scheme {sch.name}")
    samples = 0
    if plan is None:
        if calib is None:
            raise PlanError("quantize() needs calibration data (calib=...) or a plan (plan=...)")
        options = PlanOptions(sch, io, allow_float_ops)
        classify_ops(model.graph, options)  # an op that cannot be quantized fails before calibration
        result = calibrate(
            model.graph,
            model.host_tflite,
            calib,
            observer=observer or ("percentile" if sch.activation_dtype == "int8" else "minmax"),
            bits=8 if sch.activation_dtype == "int8" else 16,
            symmetric=sch.activation_symmetric,
            progress=progress,
        )
        timings["calibrate_s"] = result.seconds
        samples = result.samples
        start = time.perf_counter()
        plan = build_plan(model.graph, result.ranges, options, model.sha256)
        timings["plan_s"] = time.perf_counter() - start
    elif plan.model_sha256 != model.sha256:
        raise PlanError(
            f"plan was made for model {plan.model_sha256[:12]}, this model is {model.sha256[:12]}; "
            f"re-plan or load the model it was made for"
        )
    start = time.perf_counter()
    graph = lower_to_tflite(model.graph, plan)
    assign_versions(graph)
    data = write_tflite(graph, description=f"edgeq {plan.scheme}")
    host = host_graph(graph)
    timings["export_s"] = time.perf_counter() - start
    return QuantizedModel(
        float_model=model,
        plan=plan,
        graph=graph,
        tflite=data,
        timings=timings,
        calibration_samples=samples,
        host_tflite=data if host is None else write_tflite(host, description=f"edgeq {plan.scheme}"),
    )


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
