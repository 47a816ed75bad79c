"""Fidelity of a quantized model against its float model: SQNR, cosine, top-1 agreement, worst layers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from edgeq.calibrate.data import validated
from edgeq.calibrate.runner import input_specs
from edgeq.ir.graph import Graph
from edgeq.ir.tflite_reader import read_tflite
from edgeq.runtime import LiteRT


def sqnr_db(reference: float, error: float) -> float:
    """10 log10(signal / noise) from accumulated sums of squares; inf when the error is zero."""
    if error == 0.0:
        return float("inf")
    if reference == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(reference / error))


class Accumulator:
    """Pooled sums over samples, so memory stays constant."""

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0
        self.cos_sum = 0.0
        self.count = 0

    def add(self, ref: np.ndarray, q: np.ndarray) -> None:
        r = ref.astype(np.float64).reshape(-1)
        x = q.astype(np.float64).reshape(-1)
        self.signal += float(r @ r)
        self.noise += float((r - x) @ (r - x))
        nr, nx = float(np.linalg.norm(r)), float(np.linalg.norm(x))
        self.cos_sum += float(r @ x) / (nr * nx) if nr > 0 and nx > 0 else float(nr == nx)
        self.count += 1

    @property
    def sqnr(self) -> float:
        return sqnr_db(self.signal, self.noise)

    @property
    def cosine(self) -> float:
        return self.cos_sum / max(self.count, 1)


@dataclass
class OutputFidelity:
    name: str
    sqnr_db: float
    cosine: float
    top1_agreement: float | None = None  # only for classifier-like outputs (last dim > 1)


@dataclass
class LayerFidelity:
    tensor: str
    op: str
    sqnr_db: float


@dataclass
class FidelityReport:
    samples: int
    outputs: list[OutputFidelity]
    worst_layers: list[LayerFidelity] = field(default_factory=list)
    pooled_sqnr_db: float = float("nan")  # all outputs' signal over all outputs' noise (baselines.md)

    @property
    def sqnr_db(self) -> float:
        """Lowest output SQNR: a model is as good as its worst output."""
        return min(o.sqnr_db for o in self.outputs)

    @property
    def top1_agreement(self) -> float | None:
        vals = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return vals[0] if vals else None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def __str__(self) -> str:
        lines = [
            f"fidelity over {self.samples} samples",
            f"{'output':<32} {'SQNR dB':>9} {'cosine':>9} {'top-1':>7}",
        ]
        for o in self.outputs:
            top1 = "" if o.top1_agreement is None else f"{o.top1_agreement:.4f}"
            lines.append(f"{o.name[:32]:<32} {o.sqnr_db:9.2f} {o.cosine:9.5f} {top1:>7}")
        if len(self.outputs) > 1:
            lines.append(f"{'all outputs pooled':<32} {self.pooled_sqnr_db:9.2f}")
        if self.worst_layers:
            lines.append("worst layers (SQNR of the quantized tensor against float, same inputs):")
            for layer in self.worst_layers:
                lines.append(f"  {layer.sqnr_db:7.2f} dB  {layer.op:<20} {layer.tensor}")
        return "\n".join(lines)


def compare(
    float_graph: Graph,
    float_model: bytes,
    quantized_model: bytes,
    data,
    max_samples: int | None = None,
    layers: int = 5,
    reference: bool = False,
) -> FidelityReport:
    """Run both models on the same inputs and pool the errors. `layers` > 0 also ranks intermediate
    tensors (matched by name) by SQNR, which needs every tensor preserved in both runs."""
    qgraph = read_tflite(quantized_model)
    preserve = layers > 0
    f_rt = LiteRT(float_model, preserve=preserve)
    q_rt = LiteRT(quantized_model, reference=reference, preserve=preserve)
    out_acc = [Accumulator() for _ in float_graph.outputs]
    agree = [0 for _ in float_graph.outputs]
    pairs = _matching_tensors(float_graph, qgraph) if preserve else []
    layer_acc = {name: Accumulator() for name, _, _, _ in pairs}
    shapes = [tuple(float_graph.tensors[t].shape) for t in float_graph.inputs]
    samples = 0
    for batch in validated(data, input_specs(float_graph)):
        for k in range(batch[0].shape[0]):
            if max_samples is not None and samples >= max_samples:
                break
            sample = [x[k : k + 1].reshape(s) for x, s in zip(batch, shapes, strict=True)]
            ref = f_rt.run(sample)
            got = q_rt.run(sample)
            for j, (r, q) in enumerate(zip(ref, got, strict=True)):
                out_acc[j].add(r, q)
                agree[j] += int(np.argmax(r) == np.argmax(q))
            for name, ft, qt, (scale, zp) in pairs:
                # Views into the interpreters: used within this statement, never held across a run.
                layer_acc[name].add(f_rt.tensor(ft), (q_rt.tensor(qt).astype(np.float64) - zp) * scale)
            samples += 1
        if max_samples is not None and samples >= max_samples:
            break
    outputs = []
    for j, t in enumerate(float_graph.outputs):
        tensor = float_graph.tensors[t]
        classifier = _is_class_vector(tensor.shape)
        outputs.append(
            OutputFidelity(
                name=tensor.name,
                sqnr_db=out_acc[j].sqnr,
                cosine=out_acc[j].cosine,
                top1_agreement=agree[j] / max(samples, 1) if classifier else None,
            )
        )
    producer = {qgraph.tensors[o].name: op.kind for op in qgraph.ops for o in op.outputs}
    ranked = sorted(
        (LayerFidelity(tensor=name, op=producer.get(name, "?"), sqnr_db=acc.sqnr) for name, acc in layer_acc.items()),
        key=lambda x: x.sqnr_db,
    )
    pooled = sqnr_db(sum(a.signal for a in out_acc), sum(a.noise for a in out_acc))
    return FidelityReport(samples=samples, outputs=outputs, worst_layers=ranked[:layers], pooled_sqnr_db=pooled)


def _is_class_vector(shape: tuple[int, ...]) -> bool:
    """One vector of scores per sample ([1, N] or [N], N > 1): top-1 agreement is meaningful."""
    return len(shape) >= 1 and shape[-1] > 1 and int(np.prod(shape)) == shape[-1]


def _matching_tensors(fg: Graph, qg: Graph) -> list[tuple[str, int, int, tuple[float, float]]]:
    """(name, float index, quantized index, (scale, zero point)) for per-tensor quantized activations
    present under the same name in both graphs."""
    q_by_name = {t.name: i for i, t in enumerate(qg.tensors)}
    out = []
    for t in fg.activations():
        name = fg.tensors[t].name
        qi = q_by_name.get(name)
        if qi is None:
            qi = q_by_name.get(f"{name}/quantized")
        if qi is None:
            continue
        qt = qg.tensors[qi]
        if qt.quant is None or qt.quant.per_channel or qt.dtype == "float32" or qt.is_constant:
            continue
        out.append((name, t, qi, (float(qt.quant.scale[0]), float(qt.quant.zero_point[0]))))
    return out
