"""Bit-exactness proof: the same inputs through edgeq's C interpreter and LiteRT's BUILTIN_REF kernels,
every output and every intermediate tensor compared, the first differing op named. Integer tensors must be
equal bit for bit. FLOAT32 tensors (weight-only models, ops left float by overrides or budgets) must lie
within FLOAT_TOLERANCE of the tensor's range: edgeq's float kernels add in the reference's order and call
the same libm functions, so they are mostly bit-exact too, and the report says how many were and the worst
error of the rest. Float ops whose REF is not libm arithmetic (GELU, via Eigen) are run alone under REF on
edgeq's input and REF continues from edgeq's values there (edgeq.verify.blockwise), so their ulps never
reach a later op.

FULLY_CONNECTED ops with blockwise INT4 weights are the exception: LiteRT's REF kernels output the bias
alone there, so each such op is checked on edgeq's own input against LiteRT's default kernels (XNNPACK,
which rounds its float sums differently) within BLOCKWISE_TOLERANCE of the op's output range, and the
REF model gets edgeq's outputs of those ops as inputs, so every other op stays compared bit for bit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from edgeq.errors import InputDataError
from edgeq.runtime import LiteRT
from edgeq.verify.blockwise import BLOCKWISE_TOLERANCE, BlockwiseCheck, BlockwiseOps
from edgeq.verify.native import NativeModel, TensorInfo, coerce_input

# Largest |edgeq - REF| accepted in a FLOAT32 tensor, as a share of the tensor's range (max |REF| over the
# samples). Measured on the zoo's w4-block32 models: every float tensor bit-exact but GELU's, at most
# 7.5e-8 of its range (MiniLM, 8 texts; docs/BENCHMARKS.md, "Float ops in the C interpreter"); a libm other
# than the one LiteRT calls (another machine) moves transcendental results by an ulp or two, far below this.
FLOAT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class FloatCheck:
    """A FLOAT32 tensor that was not bit-exact in every sample: its worst distance to REF."""

    op_index: int
    op: str
    tensor: str
    max_abs_diff: float
    tensor_range: float  # max |REF| over all samples
    relative: float  # max_abs_diff / tensor_range
    within: bool


@dataclass(frozen=True)
class Divergence:
    sample: int
    op_index: int
    op: str
    tensor_index: int
    tensor: str
    mismatched: int  # values that differ
    values: int  # values in the tensor
    max_abs_diff: float
    first_index: tuple[int, ...]  # where the first differing value sits
    native_value: float
    reference_value: float


@dataclass
class VerifyResult:
    bit_exact: bool
    reference: str
    samples: int
    ops: int
    tensors_compared: int  # per sample: outputs of every op
    values_compared: int  # over all samples
    arena_bytes: int
    integer_tensors: int = 0  # per sample: tensors held to bit equality
    float_tensors: int = 0  # per sample: FLOAT32 tensors held to FLOAT_TOLERANCE
    float_bit_exact: int = 0  # of those, bit-exact in every sample
    first_divergence: Divergence | None = None
    per_op_mismatches: dict[str, int] = field(default_factory=dict)  # "index:OP" -> differing values, all samples
    # Ops where the reference itself computes something other than the op's meaning (bit-exact with it is
    # then bit-exact with a defect that LiteRT's default kernels and devices do not share).
    reference_defects: list[str] = field(default_factory=list)
    # Blockwise INT4 FULLY_CONNECTED ops: compared with LiteRT's default kernels within `tolerance` (a share
    # of the op's output range), not bit for bit; `passed` needs both.
    blockwise: list[BlockwiseCheck] = field(default_factory=list)
    blockwise_reference: str | None = None
    tolerance: float | None = None
    # FLOAT32 tensors that differ from REF somewhere, worst first; `passed` needs all within float_tolerance.
    float_checks: list[FloatCheck] = field(default_factory=list)
    float_tolerance: float = FLOAT_TOLERANCE
    integer_exact: bool = True  # every integer tensor bit-exact
    passed: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        warnings = "".join(f"\nnote: {d}" for d in self.reference_defects)
        blockwise = "".join(f"\n{check.line(self.tolerance or 0.0)}" for check in self.blockwise)
        if self.blockwise:
            blockwise = (f"\nreference for {len(self.blockwise)} blockwise INT4 FULLY_CONNECTED op(s): "
                         f"{self.blockwise_reference}; tolerance {self.tolerance:g} of the op's output range (max "
                         f"|y|){blockwise}")
        floats = self._float_lines()
        if self.integer_exact:
            if self.bit_exact:
                exact = "bit-exact" if not self.blockwise else "other ops bit-exact"
            else:
                exact = "integer tensors bit-exact, float tensors within tolerance"
            verdict = "" if self.passed else "\nFAILED: a blockwise op or a float tensor exceeds its tolerance"
            return (f"{exact}: {self.samples} samples, {self.ops} ops, {self.tensors_compared} tensors per sample, "
                    f"{self.values_compared} values compared with {self.reference}{floats}{blockwise}{warnings}"
                    f"{verdict}")
        d = self.first_divergence
        assert d is not None
        return (f"NOT bit-exact against {self.reference}: first divergence at op {d.op_index} ({d.op}), tensor "
                f"{d.tensor_index} '{d.tensor}', sample {d.sample}: {d.mismatched} of {d.values} values differ, max "
                f"|diff| {d.max_abs_diff:g} (at {list(d.first_index)}: edgeq {d.native_value:g}, reference "
                f"{d.reference_value:g}){floats}{blockwise}{warnings}")

    def _float_lines(self) -> str:
        if not self.float_tensors:
            return ""
        text = (f"\n{self.integer_tensors} integer tensors held to bit equality; {self.float_tensors} FLOAT32 tensors "
                f"to {self.float_tolerance:g} of their range (max |REF|), {self.float_bit_exact} of them bit-exact")
        for c in self.float_checks[:8]:
            verdict = "within" if c.within else "EXCEEDS"
            text += (f"\n  op {c.op_index} ({c.op}): max |diff| {c.max_abs_diff:.3g} = {c.relative:.2e} of the range "
                     f"{c.tensor_range:.3g}, {verdict} {self.float_tolerance:g}: '{c.tensor}'")
        if len(self.float_checks) > 8:
            text += f"\n  ... {len(self.float_checks) - 8} more, all {'within' if self.passed else 'listed in JSON'}"
        return text


# (op, input type) -> what LiteRT's BUILTIN_REF gets wrong there, measured against its default kernels.
KNOWN_REFERENCE_DEFECTS = {
    ("SUM", "INT8"): "BUILTIN_REF's int8 SUM adds the bytes as uint8 and clamps to [0, 255]; LiteRT's default "
    "kernels compute the real sum",
}


def reference_defects(native: NativeModel) -> list[str]:
    found = []
    for op in native.ops:
        if op.inputs and op.inputs[0] >= 0:
            defect = KNOWN_REFERENCE_DEFECTS.get((op.name, native.tensors[op.inputs[0]].type))
            if defect:
                found.append(f"op {op.index} ({op.name}): {defect}")
    return found


def reference_name() -> str:
    try:
        return f"LiteRT BUILTIN_REF (ai-edge-litert {version('ai-edge-litert')})"
    except PackageNotFoundError:
        return "LiteRT BUILTIN_REF"


def random_inputs(native: NativeModel, samples: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Inputs that exercise the whole integer range: uniform integers for integer inputs; for float inputs,
    values spanning the range the first QUANTIZE op can represent (and a little beyond, to clamp)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(samples):
        arrays = []
        for t in native.inputs:
            if np.issubdtype(t.dtype, np.integer):
                info = np.iinfo(t.dtype)
                arrays.append(rng.integers(info.min, info.max, size=t.shape, endpoint=True, dtype=t.dtype))
            elif t.dtype == np.bool_:
                arrays.append(rng.integers(0, 2, size=t.shape).astype(np.bool_))
            else:
                lo, hi = _float_input_range(native, t)
                span = hi - lo
                arrays.append(rng.uniform(lo - 0.05 * span, hi + 0.05 * span, size=t.shape).astype(t.dtype))
        out.append(arrays)
    return out


def _float_input_range(native: NativeModel, t: TensorInfo) -> tuple[float, float]:
    for op in native.ops:
        if op.name == "QUANTIZE" and op.inputs and op.inputs[0] == t.index:
            q = native.tensors[op.outputs[0]]
            if q.scales and np.issubdtype(q.dtype, np.integer):
                info = np.iinfo(q.dtype)
                return ((info.min - q.zero_points[0]) * q.scales[0], (info.max - q.zero_points[0]) * q.scales[0])
    return -3.0, 3.0


def load_npz_arrays(path: str | Path, native: NativeModel) -> list[np.ndarray]:
    """Arrays in model input order: arr_0, arr_1, ... (numpy.savez's names) or the input tensor names."""
    try:
        npz = np.load(path)
    except (OSError, ValueError) as e:
        raise InputDataError(f"{path}: not a readable .npz: {e}") from e
    with npz:
        names = list(npz.files)
        arrays = []
        for i, t in enumerate(native.inputs):
            key = f"arr_{i}" if f"arr_{i}" in names else t.name if t.name in names else None
            if key is None:
                raise InputDataError(f"{path}: no array for input {i} ('{t.name}'); it has {names}")
            arrays.append(np.asarray(npz[key]))
    return arrays


def verify(model: bytes | str | Path, inputs: list[list[np.ndarray]] | None = None, samples: int = 16,
           seed: int = 0) -> VerifyResult:
    """Runs each sample (a list of arrays in model input order) through both interpreters op by op.

    Without `inputs`, `samples` random samples are drawn (see random_inputs)."""
    data = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    native = NativeModel(data)
    blockwise = BlockwiseOps(data)
    reference = LiteRT(blockwise.reference_model(), reference=True, preserve=True, threads=1)
    batch = inputs if inputs is not None else random_inputs(native, samples, seed)
    batch = [[coerce_input(x, t, f"sample {s}") for x, t in zip(sample, native.inputs, strict=True)]
             for s, sample in enumerate(batch)]
    result = VerifyResult(bit_exact=True, reference=reference_name(), samples=len(batch), ops=len(native.ops),
                          tensors_compared=sum(len(op.outputs) for op in native.ops) or len(native.outputs),
                          values_compared=0, arena_bytes=native.arena_bytes,
                          reference_defects=reference_defects(native) + blockwise.defects())
    floats = {t: op for op in native.ops if op.index not in blockwise.ops for t in op.outputs
              if native.tensors[t].type == "FLOAT32"}
    result.float_tensors = len(floats)
    result.integer_tensors = sum(len(op.outputs) for op in native.ops if op.index not in blockwise.ops) - len(floats)
    worst: dict[int, float] = {}  # tensor -> max |diff|, float tensors that differ
    ranges: dict[int, float] = {}  # tensor -> max |REF|
    if blockwise.ops:
        result.blockwise_reference = blockwise.reference_name()
        result.tolerance = BLOCKWISE_TOLERANCE
    for s, sample in enumerate(batch):
        native.set_inputs(sample)
        outputs: dict[int, np.ndarray] = {}
        alone: dict[int, np.ndarray] = {}  # REF outputs of inexact float ops run alone on edgeq's input
        for op in native.ops:
            if op.index in blockwise.ops:
                x = native.tensor(op.inputs[0])
                native.invoke(op.index, op.index + 1)
                blockwise.check(op.index, x, native.tensor(op.outputs[0]))
            elif op.index in blockwise.inexact:
                alone[op.outputs[0]] = blockwise.reference_alone(op.index, native.tensor(op.inputs[0]))
                native.invoke(op.index, op.index + 1)
            else:
                native.invoke(op.index, op.index + 1)
            outputs.update((t, native.tensor(t)) for t in op.outputs)
        # The REF model reads edgeq's outputs of the cut ops as extra inputs, after the model's own.
        feeds = list(sample) + [outputs[t] for t in blockwise.cut_tensors]
        for detail, x in zip(reference.inputs, feeds, strict=True):
            reference.interpreter.set_tensor(detail["index"], x.reshape(detail["shape"]))
        reference.interpreter.invoke()
        for op in native.ops:
            for t in op.outputs:
                if op.index in blockwise.ops:
                    result.values_compared += outputs[t].size
                    continue
                # A copy: a view would pin the interpreter's memory through the next invoke.
                theirs = alone[t] if t in alone else np.array(reference.tensor(t))
                if t in floats:
                    _compare_float(result, t, outputs[t], theirs, worst, ranges)
                else:
                    _compare(result, s, op.index, op.name, native.tensors[t], outputs[t], theirs)
    result.blockwise = blockwise.results(native)
    result.float_bit_exact = result.float_tensors - len(worst)
    for t, diff in worst.items():
        op, rng = floats[t], ranges[t]
        relative = diff / rng if rng > 0 else (np.inf if diff > 0 else 0.0)
        result.float_checks.append(FloatCheck(op.index, op.name, native.tensors[t].name, diff, rng, relative,
                                              relative <= FLOAT_TOLERANCE))
    result.float_checks.sort(key=lambda c: -c.relative)
    result.bit_exact = result.integer_exact and not worst
    result.passed = (result.integer_exact and all(c.within for c in result.float_checks)
                     and all(check.within for check in result.blockwise))
    return result


def _compare_float(result: VerifyResult, t: int, mine: np.ndarray, theirs: np.ndarray,
                   worst: dict[int, float], ranges: dict[int, float]) -> None:
    """Records a FLOAT32 tensor's range and, where it is not bit-exact, its largest difference (NaN against
    NaN counts as equal, NaN against a number as infinitely far)."""
    theirs = np.asarray(theirs, dtype=np.float32).reshape(mine.shape)
    result.values_compared += mine.size
    finite = theirs[np.isfinite(theirs)]
    ranges[t] = max(ranges.get(t, 0.0), float(np.max(np.abs(finite), initial=0.0)))
    if np.array_equal(mine.view(np.uint32), theirs.view(np.uint32)):
        return
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(mine.astype(np.float64) - theirs.astype(np.float64))
    both_nan = np.isnan(mine) & np.isnan(theirs)
    diff = np.where(both_nan, 0.0, np.where(np.isnan(diff), np.inf, diff))
    worst[t] = max(worst.get(t, 0.0), float(np.max(diff, initial=0.0)))


def _compare(result: VerifyResult, sample: int, op_index: int, op: str, info: TensorInfo, mine: np.ndarray,
             theirs: np.ndarray) -> None:
    theirs = np.asarray(theirs).reshape(mine.shape)
    result.values_compared += mine.size
    differ = mine.view(np.uint8) != theirs.astype(mine.dtype).view(np.uint8) if mine.dtype.itemsize == 1 else (
        mine.view(f"u{mine.dtype.itemsize}") != theirs.astype(mine.dtype).view(f"u{mine.dtype.itemsize}"))
    mismatched = int(np.count_nonzero(differ))
    if not mismatched:
        return
    key = f"{op_index}:{op}"
    result.per_op_mismatches[key] = result.per_op_mismatches.get(key, 0) + mismatched
    if result.first_divergence is not None and (result.first_divergence.sample, result.first_divergence.op_index) <= (
            sample, op_index):
        return
    result.integer_exact = False
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(differ)), differ.shape))
    diff = np.abs(mine.astype(np.float64) - theirs.astype(np.float64))
    result.first_divergence = Divergence(
        sample=sample, op_index=op_index, op=op, tensor_index=info.index, tensor=info.name, mismatched=mismatched,
        values=int(mine.size), max_abs_diff=float(np.nanmax(diff)) if diff.size else 0.0, first_index=where,
        native_value=float(mine[where]), reference_value=float(theirs[where]))
