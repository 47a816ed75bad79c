"""Verify an .mlpackage edgeq wrote, on a host where Core ML cannot run.

Two proofs: every weight in the package decodes to exactly the integers and scales of the .tflite rendered
from the same plan (both files read back from their bytes), and the MIL program, evaluated by edgeq's own
evaluator, computes what it should: the float model's function within fp32 rounding (fp16 weights aside) and,
under w8a8, the integer model's outputs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgeq.calibrate.data import arrays, validated
from edgeq.calibrate.runner import input_specs
from edgeq.errors import CoreMLError
from edgeq.export.coreml_program import dequantize, stored_block_scales, weight_scales
from edgeq.export.coreml_writer import rebuild_tensor_map
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.ir.tflite_reader import read_tflite
from edgeq.runtime import LiteRT
from edgeq.verify.fidelity import Accumulator, sqnr_db
from edgeq.verify.mil_eval import MILProgram

if TYPE_CHECKING:
    from edgeq.api import QuantizedModel

META = "com.github.edgeq."


@dataclass
class CoreMLOutput:
    name: str
    sqnr_vs_float_db: float
    relative_error_vs_float: float  # max over samples of ||y - y_float|| / ||y_float||
    # fp16 / w8 / w4: the same, against the float model carrying the package's parameters (weights as the plan
    # dequantizes them, other constants rounded to fp16): what the lowering must match within fp32 rounding.
    relative_error_vs_stored: float | None = None
    sqnr_vs_integer_db: float | None = None  # w8a8: against the .tflite in LiteRT BUILTIN_REF
    top1_agreement: float | None = None  # with the float model, for class-vector outputs


@dataclass
class PerOpAgreement:
    """w8a8, op by op: every op of the package fed the integer model's own (dequantized) inputs, its int8
    output compared with the integer model's. Differences are rounding conventions at near-ties (LiteRT's
    fixed-point requantization rounds twice, Core ML's quantize once, half to even), never more than 1."""

    tensors: int = 0
    values: int = 0
    equal: int = 0
    max_abs_diff: int = 0
    sqnr_db: float = float("inf")  # pooled over every op output
    worst: list[tuple[str, float]] = field(default_factory=list)  # (tensor, share of values that differ)

    @property
    def equal_share(self) -> float:
        return self.equal / self.values if self.values else 1.0


@dataclass
class CoreMLVerifyResult:
    package: str
    mode: str
    precision: str
    weights_checked: int
    weight_mismatches: list[str] = field(default_factory=list)
    weights_float: int = 0  # small weights a weight-only package keeps in fp16 (export's weight_threshold)
    samples: int = 0
    outputs: list[CoreMLOutput] = field(default_factory=list)
    per_op: PerOpAgreement | None = None  # w8a8 only

    @property
    def weights_exact(self) -> bool:
        return not self.weight_mismatches

    def to_dict(self) -> dict:
        return {**asdict(self), "weights_exact": self.weights_exact}

    def summary(self) -> str:
        lines = [
            f"{self.package}: mode {self.mode}; {self.weights_checked} weights "
            + ("decode exactly to the plan" if self.weights_exact else f"MISMATCH: {self.weight_mismatches[:3]}")
            + (f"; {self.weights_float} small weights kept fp16" if self.weights_float else "")
        ]
        for o in self.outputs:
            line = (
                f"  {o.name}: vs float SQNR {o.sqnr_vs_float_db:.2f} dB, relative error "
                f"{o.relative_error_vs_float:.2e}"
            )
            if o.relative_error_vs_stored is not None:
                line += f" (with the package's own parameters: {o.relative_error_vs_stored:.2e})"
            if o.sqnr_vs_integer_db is not None:
                line += f"; vs the integer model SQNR {o.sqnr_vs_integer_db:.2f} dB"
            if o.top1_agreement is not None:
                line += f"; top-1 agreement {o.top1_agreement:.4f}"
            lines.append(line)
        if self.per_op is not None:
            p = self.per_op
            lines.append(
                f"  op by op on the integer model's inputs: {p.tensors} int8 tensors, {100 * p.equal_share:.3f}% of "
                f"{p.values} values equal, max |diff| {p.max_abs_diff}, SQNR {p.sqnr_db:.1f} dB"
            )
        lines.append(f"  ({self.samples} samples, MIL evaluated in {self.precision})")
        return "\n".join(lines)


def verify_coreml(
    package: str | os.PathLike,
    qm: QuantizedModel,
    data=None,
    samples: int = 64,
    precision: str = "fp32",
    seed: int = 0,
) -> CoreMLVerifyResult:
    """Check the package against `qm` (the QuantizedModel whose plan it renders). `data`: inputs as for
    edgeq.compare (arrays batch-first, or a calibration source); default `samples` random inputs drawn within
    each input's calibrated range."""
    prog = MILProgram.load(package)
    meta = prog.metadata
    if not prog.written_by_edgeq:
        raise CoreMLError(f"{package}: not written by edgeq (no {META}version metadata); nothing to verify against")
    plan_hash = hashlib.sha256(qm.plan.to_json().encode()).hexdigest()
    if meta.get(META + "plan_sha256") != plan_hash:
        raise CoreMLError(f"{package}: written from another plan than this QuantizedModel's ({plan_hash[:12]})")
    tensor_map = rebuild_tensor_map(qm, meta)  # what this plan's package holds where, by MIL name
    rebuilt = {op for op, _ in tensor_map["weights"].values()}
    if rebuilt != prog.constexpr_ops:
        differ = sorted(rebuilt ^ prog.constexpr_ops)
        raise CoreMLError(
            f"{package}: the program differs from the one this plan builds (compressed weights {differ[:3]} in one "
            f"only): modified, or written by another edgeq version than {meta.get(META + 'version')}'s export"
        )
    names = (host_graph(qm.float_model.graph) or qm.float_model.graph).tensors
    for key in ("values", "weights"):
        tensor_map[key] = {names[int(t)].name: v for t, v in tensor_map[key].items()}
    tensor_map["float_weights"] = {names[int(t)].name for t in tensor_map["float_weights"]}
    mode = meta[META + "mode"]
    result = CoreMLVerifyResult(str(package), mode, precision, 0)
    tfl = {t.name: t for t in read_tflite(qm.tflite).tensors}  # the Android artifact, read from its bytes
    _check_weights(prog, qm, tfl, tensor_map, mode, result)
    _check_outputs(prog, qm, tfl, tensor_map, mode, data, samples, precision, seed, result)
    return result


def _check_weights(prog: MILProgram, qm: QuantizedModel, tfl: dict, tensor_map: dict, mode: str, result):
    """Every planned weight: the package's constexpr integers and scales equal the .tflite's, read from bytes
    (except the small ones a weight-only package keeps in fp16, counted in `weights_float`)."""
    weights = tensor_map["weights"]
    result.weights_float = len(tensor_map["float_weights"])
    expected = [n for n, e in qm.plan.tensors.items() if e.narrow_range or e.dtype == "int4"]
    if mode == "fp16":
        if weights:
            result.weight_mismatches.append(f"fp16 package holds {len(weights)} quantized weights")
        return
    float_ops = {qm.float_model.graph.tensors[t].name for f in qm.plan.float_ops for t in _op_inputs(qm, f.index)}
    # A blockwise CONV_2D weight is stored [blocks, block size] in the .tflite: compared in the model's layout.
    shapes = {t.name: t.shape for t in qm.float_model.graph.tensors}
    for name in expected:
        if name in float_ops or name in tensor_map["float_weights"]:
            continue
        if name not in weights:
            result.weight_mismatches.append(f'"{name}": planned weight missing from the package')
            continue
        op_name, to_mil = weights[name]
        result.weights_checked += 1
        tensor, enc = tfl.get(name), qm.plan.tensors[name]
        if tensor is None or tensor.data is None:
            result.weight_mismatches.append(f'"{name}": not a constant of the .tflite')
            continue
        params = prog.constexpr_params(op_name)
        data = params.get("data", params.get("quantized_data"))
        shape = shapes.get(name, tensor.shape)
        want_q = np.transpose(np.asarray(tensor.data).reshape(shape), to_mil)
        if data is None or data.shape != want_q.shape or not np.array_equal(data.astype(np.int64), want_q):
            result.weight_mismatches.append(f'"{name}": integers differ from the .tflite\'s')
            continue
        want_scale = weight_scales(enc, shape, tuple(to_mil), name).astype(np.float32)
        tfl_scale = np.asarray(tensor.quant.scale, dtype=np.float32) if tensor.quant is not None else None
        scale = np.asarray(params["scale"], dtype=np.float32)
        stored = stored_block_scales(want_scale) if enc.dtype == "int4" else want_scale  # as the writer stores them
        if tfl_scale is None or not np.array_equal(np.sort(tfl_scale.reshape(-1)), np.sort(want_scale.reshape(-1))):
            result.weight_mismatches.append(f'"{name}": the .tflite\'s scales differ from the plan\'s')
        elif scale.size != stored.size or not np.array_equal(scale.reshape(-1), stored.reshape(-1)):
            result.weight_mismatches.append(f'"{name}": package scales differ from the plan\'s')
        offset = params.get("offset", params.get("zero_point"))
        if offset is not None and np.any(np.asarray(offset) != 0):
            result.weight_mismatches.append(f'"{name}": nonzero weight offset in the package')


def _op_inputs(qm: QuantizedModel, index: int) -> list[int]:
    return [t for t in qm.float_model.graph.ops[index].inputs if t >= 0]


def _feeds(prog: MILProgram, images: dict, sample: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One sample in the .tflite's layout and normalisation as the package's inputs (pixels for an image)."""
    feeds = {}
    for (name, shape, _), x in zip(prog.inputs, sample, strict=True):
        image = images.get(name)
        if image is None:
            feeds[name] = np.asarray(x).reshape(shape)
            continue
        scale, bias = image
        arr = np.asarray(x, dtype=np.float64)
        if arr.shape != tuple(shape):  # NHWC in the .tflite, NCHW pixels in Core ML
            arr = np.transpose(arr, (0, 3, 1, 2))
        feeds[name] = ((arr - np.asarray(bias).reshape(1, -1, 1, 1)) / scale).astype(np.float32)
    return feeds


def _random_inputs(qm: QuantizedModel, samples: int, seed: int) -> list[np.ndarray]:
    graph = qm.float_model.graph
    rng = np.random.default_rng(seed)
    arrays = []
    for t in graph.inputs:
        tensor = graph.tensors[t]
        lo, hi = qm.plan.ranges.get(tensor.name, (-1.0, 1.0))
        arrays.append(rng.uniform(lo, hi, size=(samples, *tensor.shape[1:])).astype(np.float32))
    return arrays


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    norm = float(np.linalg.norm(want))
    return float(np.linalg.norm(got - want.reshape(got.shape))) / norm if norm else float(np.any(got != 0))


def _stored_parameters_model(qm: QuantizedModel, tfl: dict, mode: str, weights: dict) -> bytes:
    """The float model with the package's parameters: each quantized weight as its plan integers times scales
    (exact in float32), every other float constant rounded through fp16 as the package stores it."""
    graph = (host_graph(qm.float_model.graph) or qm.float_model.graph).copy()
    for t in graph.tensors:
        if t.data is None or not str(t.data.dtype).startswith("float"):
            continue
        if mode != "fp16" and t.name in weights:
            src = tfl[t.name]
            t.data = dequantize(src.data, qm.plan.tensors[t.name], src.shape)
        else:
            t.data = t.data.astype(np.float16).astype(np.float32)
    for op in graph.ops:  # scalar parameters too (LEAKY_RELU's alpha, SOFTMAX's beta): fp16 constants in the package
        op.options = {k: float(np.float16(v)) if isinstance(v, float) else v for k, v in op.options.items()}
    return write_tflite(graph)


class _TeacherForcing:
    """Accumulates the per-op comparison: each dequantize output of the package is overridden by the integer
    model's tensor, so each quantize op computes from exactly the integer model's inputs."""

    def __init__(self, qm: QuantizedModel, tensor_map: dict) -> None:
        graph = read_tflite(qm.host_tflite)
        index = {t.name: i for i, t in enumerate(graph.tensors)}
        self.pairs = []  # (tflite name, tensor index, scale, zero point, dequantize name, quantize name, perm)
        for name, (mil, perm) in tensor_map["values"].items():
            q_name = tensor_map["quantize"].get(mil)
            # A tensor kept float at the model's boundary has its integer twin under "<name>/quantized".
            ints = [i for i in (index.get(name), index.get(f"{name}/quantized")) if i is not None]
            ints = [i for i in ints if graph.tensors[i].quant is not None and graph.tensors[i].dtype == "int8"]
            if q_name is None or not ints:
                continue
            t = ints[0]
            quant = graph.tensors[t].quant
            self.pairs.append((name, t, float(quant.scale[0]), int(quant.zero_point[0]), mil, q_name, perm))
        self.acc = PerOpAgreement(tensors=len(self.pairs))
        self.signal = self.noise = 0.0
        self.differ: dict[str, list[int]] = {}

    def step(self, prog: MILProgram, int_rt: LiteRT, feeds: dict, precision: str) -> None:
        ref = {name: int_rt.tensor(t).astype(np.int64) for name, t, *_ in self.pairs}  # after int_rt.run
        overrides = {}
        for name, _, scale, zp, mil, _, perm in self.pairs:
            overrides[mil] = np.transpose((ref[name] - zp) * scale, perm).astype(np.float32)
        out = prog.run(feeds, precision=precision, keep=True, overrides=overrides)
        for name, _, scale, zp, _, q_name, perm in self.pairs:
            got = np.transpose(np.asarray(out[q_name], dtype=np.int64), np.argsort(perm)).reshape(ref[name].shape)
            diff = np.abs(got - ref[name])
            self.acc.values += diff.size
            self.acc.equal += int((diff == 0).sum())
            self.acc.max_abs_diff = max(self.acc.max_abs_diff, int(diff.max(initial=0)))
            self.signal += float(np.sum(((ref[name] - zp) * scale) ** 2))
            self.noise += float(np.sum((diff * scale) ** 2))
            counts = self.differ.setdefault(name, [0, 0])
            counts[0] += int((diff != 0).sum())
            counts[1] += diff.size

    def result(self) -> PerOpAgreement:
        self.acc.sqnr_db = sqnr_db(self.signal, self.noise)
        ranked = sorted(self.differ.items(), key=lambda kv: -kv[1][0] / max(kv[1][1], 1))
        self.acc.worst = [(name, c / max(n, 1)) for name, (c, n) in ranked[:5] if c]
        return self.acc


def _check_outputs(prog, qm, tfl, tensor_map, mode, data, samples, precision, seed, result: CoreMLVerifyResult) -> None:
    graph = qm.float_model.graph
    float_rt = LiteRT(qm.float_model.host_tflite)
    int_rt = LiteRT(qm.host_tflite, reference=True, preserve=True) if mode == "w8a8" else None
    forced = _TeacherForcing(qm, tensor_map) if int_rt is not None else None
    stored_rt = LiteRT(_stored_parameters_model(qm, tfl, mode, tensor_map["weights"])) if int_rt is None else None
    out_names = tensor_map["outputs"]  # the model's outputs (a classifier's probabilities, not its label)
    vs_float = [Accumulator() for _ in out_names]
    vs_int = [Accumulator() for _ in out_names]
    worst = [0.0 for _ in out_names]
    worst_stored = [0.0 for _ in out_names]
    agree = [0 for _ in out_names]
    shapes = [tuple(graph.tensors[t].shape) for t in graph.inputs]
    if data is None:
        data = _random_inputs(qm, samples, seed)
    source = arrays(*data) if isinstance(data, (list, tuple)) else data  # arrays batch-first, or a source
    count = 0
    for batch in validated(source, input_specs(graph)):
        for k in range(batch[0].shape[0]):
            if count >= samples:
                break
            sample = [x[k : k + 1].reshape(s) for x, s in zip(batch, shapes, strict=True)]
            got = prog.run(_feeds(prog, tensor_map["images"], sample), precision=precision)
            want = float_rt.run(sample)
            ints = int_rt.run(sample) if int_rt is not None else None
            if forced is not None:
                forced.step(prog, int_rt, _feeds(prog, tensor_map["images"], sample), precision)
            stored = stored_rt.run(sample) if stored_rt is not None else None
            for j, (name, w) in enumerate(zip(out_names, want, strict=True)):
                g = np.asarray(got[name], dtype=np.float64).reshape(w.shape)
                vs_float[j].add(w, g)
                worst[j] = max(worst[j], _relative(g, w))
                if stored is not None:
                    worst_stored[j] = max(worst_stored[j], _relative(g, stored[j]))
                agree[j] += int(np.argmax(g) == np.argmax(w))
                if ints is not None:
                    vs_int[j].add(ints[j], g)
            count += 1
        if count >= samples:
            break
    if count == 0:
        raise CoreMLError("verify_coreml: no samples to evaluate")
    result.samples = count
    if forced is not None:
        result.per_op = forced.result()
    for j, (name, t) in enumerate(zip(out_names, graph.outputs, strict=True)):
        shape = graph.tensors[t].shape
        classifier = len(shape) in (1, 2) and shape[-1] > 1
        result.outputs.append(
            CoreMLOutput(
                name=name,
                sqnr_vs_float_db=vs_float[j].sqnr,
                relative_error_vs_float=worst[j],
                relative_error_vs_stored=worst_stored[j] if stored_rt is not None else None,
                sqnr_vs_integer_db=vs_int[j].sqnr if int_rt is not None else None,
                top1_agreement=agree[j] / count if classifier else None,
            )
        )


