"""The QuantPlan: every tensor's integer encoding, decided once, read by every exporter."""

from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeq.errors import PlanError

PLAN_FORMAT = "edgeq.quantplan/1"


@dataclass
class Encoding:
    """How one tensor is stored: real = scale * (q - zero_point), per channel along `axis` when
    there is more than one scale. `rule` records why the plan chose it (calibrated range, fixed by
    the op, shared with a same-encoding group, derived for a bias...), so a reviewer can diff plans.

    With block_size B > 0 the tensor is a 2-D [out, in] weight quantized per block of B consecutive
    inputs: scale (and zero_point) hold one entry per block, flattened row-major [out][in / B], so every
    exporter (TFLite BlockwiseQuantization, Core ML constexpr_blockwise_shift_scale) reads the same list."""

    dtype: str  # int8, int16, int32, int64, uint8, int4
    scale: list[float]
    zero_point: list[int]
    axis: int = 0
    rule: str = ""
    narrow_range: bool = False  # weights use [-127, 127] so that -q never overflows (TFLite spec)
    block_size: int = 0  # 0: per-tensor or per-channel; B > 0: per block of B along the last axis

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def scales(self) -> np.ndarray:
        return np.asarray(self.scale, dtype=np.float32)

    def zero_points(self) -> np.ndarray:
        return np.asarray(self.zero_point, dtype=np.int64)

    def per_element(self, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """`values` (one per scale: scales, zero points) for every element of a weight of `shape`, float64, as
        quantize_array applies them: per block of the last axis (FC [out, in], CONV_2D [out, kh, kw, in]), per
        channel along `axis`, or one for the tensor."""
        values = np.asarray(values, dtype=np.float64)
        if self.block_size:
            return np.repeat(values.reshape(*shape[:-1], -1), self.block_size, axis=-1)
        if values.size > 1:
            bshape = [1] * len(shape)
            bshape[self.axis] = -1
            return np.broadcast_to(values.reshape(bshape), shape).copy()
        return np.full(shape, values[0])


@dataclass
class FloatOp:
    """An operator left in float, with the reason (custom op, or not quantizable and allowed)."""

    index: int
    kind: str
    reason: str


@dataclass
class Requantize:
    """Input `input` of op `op` reads its tensor re-encoded (a QUANTIZE int->int in TFLite): like tensor
    `like` where a same-encoding op meets a tensor whose encoding is fixed elsewhere, or as `encoding` where
    int8 and int16 activations meet (an op promoted to int16x8 reading an int8 tensor, or the reverse)."""

    op: int
    input: int
    like: str = ""
    encoding: Encoding | None = None

    def target(self, plan: QuantPlan) -> Encoding:
        """The encoding the op reads."""
        return self.encoding if self.encoding is not None else plan.tensors[self.like]


@dataclass
class QuantPlan:
    """The single source of truth for a quantized model. Keys are tensor names of the float graph."""

    scheme: str
    io_dtype: str  # "float32" keeps float I/O (QUANTIZE/DEQUANTIZE at the boundary); else int8/int16/uint8
    model_sha256: str  # fingerprint of the float graph the plan was made for
    tensors: dict[str, Encoding] = field(default_factory=dict)
    float_ops: list[FloatOp] = field(default_factory=list)
    requantize: list[Requantize] = field(default_factory=list)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # calibrated activation ranges
    notes: list[str] = field(default_factory=list)  # what the planner adjusted and why
    # Float constants (weights, biases) that fidelity algorithms changed, by tensor name: CLE rescales
    # weights, AdaRound and GPTQ pick each weight's rounding (stored as scale * q, which re-quantizes to
    # exactly q), bias correction shifts biases. The renderer reads these instead of the model's own.
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {
            "format": PLAN_FORMAT,
            "scheme": self.scheme,
            "io_dtype": self.io_dtype,
            "model_sha256": self.model_sha256,
            "tensors": {k: asdict(v) for k, v in sorted(self.tensors.items())},
            "float_ops": [asdict(f) for f in self.float_ops],
            "requantize": [asdict(r) for r in self.requantize],
            "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in sorted(self.ranges.items())},
            "notes": self.notes,
            "weights": {k: _array_to_json(v) for k, v in sorted(self.weights.items())},
        }
        return json.dumps(doc, indent=1, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> QuantPlan:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise PlanError(f"plan is not valid JSON: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
            raise PlanError(
                f"plan format {doc.get('format') if isinstance(doc, dict) else None!r}, expected {PLAN_FORMAT!r}"
            )
        try:
            return cls(
                scheme=doc["scheme"],
                io_dtype=doc["io_dtype"],
                model_sha256=doc["model_sha256"],
                tensors={k: Encoding(**v) for k, v in doc["tensors"].items()},
                float_ops=[FloatOp(**f) for f in doc.get("float_ops", [])],
                requantize=[_requantize_from_json(r) for r in doc.get("requantize", [])],
                ranges={k: (float(v[0]), float(v[1])) for k, v in doc.get("ranges", {}).items()},
                notes=list(doc.get("notes", [])),
                weights={k: _array_from_json(k, v) for k, v in doc.get("weights", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise PlanError(f"plan is missing or has a malformed field: {e}") from e

    def save(self, path: str | os.PathLike) -> None:
        from edgeq.export.atomic import write_atomic

        write_atomic(Path(path), self.to_json().encode())

    @classmethod
    def load(cls, path: str | os.PathLike) -> QuantPlan:
        return cls.from_json(Path(path).read_text())


def _requantize_from_json(doc: dict) -> Requantize:
    enc = doc.get("encoding")
    return Requantize(**{**doc, "encoding": Encoding(**enc) if enc is not None else None})


def _array_to_json(a: np.ndarray) -> dict:
    """float32 little-endian bytes, zlib level 9, base64: deterministic, and exact to the bit."""
    data = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(data.shape), "f32_zlib_b64": base64.b64encode(zlib.compress(data.tobytes(), 9)).decode()}


def _array_from_json(name: str, doc: dict) -> np.ndarray:
    try:
        raw = zlib.decompress(base64.b64decode(doc["f32_zlib_b64"], validate=True))
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(doc["shape"])
    except (zlib.error, ValueError, TypeError, KeyError) as e:
        raise PlanError(f'plan weight "{name}" is malformed: {e}') from e
