"""The reference for FULLY_CONNECTED ops with blockwise INT4 weights, which LiteRT's REF kernels do not compute
(they output the bias alone): LiteRT's default kernels, each op run alone on edgeq's own input. XNNPACK takes
blocks of 32k (qd8_f32_qb4w); LiteRT's builtin kernel takes the others (it omits the fused activation, so
its output is clamped here before comparing).

Float ops whose REF kernel edgeq reproduces only within a tolerance (INEXACT_FLOAT_OPS) are cut out the same
way, each run alone under REF on edgeq's input: the ops after them then read the same values in both
interpreters, so an ulp of difference cannot flip a later QUANTIZE's rounding."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from edgeq.export.tflite_writer import write_tflite
from edgeq.ir.graph import Graph
from edgeq.ir.tflite_reader import read_tflite
from edgeq.runtime import LiteRT
from edgeq.verify.native import NativeModel

# Largest |edgeq - LiteRT default| accepted, as a share of the op's output range (max |y| over the samples).
# Both quantize the input to the same integers and round the fp16 scales to bf16 the same way; XNNPACK sums
# the blocks and the input zero-point term in float, edgeq in double, and their difference grows where the
# two terms cancel (inputs all of one sign). Measured at most 3.0e-5 on single ops, 1.1e-6 on the zoo
# (docs/BENCHMARKS.md, "Blockwise INT4 in the C interpreter").
BLOCKWISE_TOLERANCE = 1e-4

# Float ops whose LiteRT REF kernel is not plain libm arithmetic edgeq can repeat: GELU goes through Eigen's
# vectorised tanh / erfc, an ulp or two away from libm's.
INEXACT_FLOAT_OPS = frozenset({"GELU"})

_CLAMP = {"NONE": (-np.inf, np.inf), "RELU": (0.0, np.inf), "RELU_N1_TO_1": (-1.0, 1.0), "RELU6": (0.0, 6.0)}


@dataclass(frozen=True)
class BlockwiseCheck:
    op_index: int
    op: str
    tensor: str
    block_size: int
    kernel: str  # which of LiteRT's default kernels computed the reference
    max_abs_diff: float  # over all samples
    output_range: float  # max |reference| over all samples
    relative: float  # max_abs_diff / output_range
    within: bool

    def line(self, tolerance: float) -> str:
        verdict = "within" if self.within else "EXCEEDS"
        return (f"  op {self.op_index} ({self.op}, '{self.tensor}', blocks of {self.block_size}, {self.kernel}): max "
                f"|diff| {self.max_abs_diff:.3g} = {self.relative:.2e} of the output range {self.output_range:.3g}, "
                f"{verdict} {tolerance:g}")


@dataclass
class _Op:
    block_size: int
    activation: str
    runtime: LiteRT  # the op alone under LiteRT's default kernels
    max_abs_diff: float = 0.0
    output_range: float = 0.0


class BlockwiseOps:
    """The blockwise FULLY_CONNECTED ops of a model: one single-op LiteRT model each, and the model REF runs
    with those ops cut out (their outputs become inputs, fed edgeq's values)."""

    def __init__(self, data: bytes):
        self._data = data
        self.ops: dict[int, _Op] = {}  # blockwise FULLY_CONNECTED ops
        self.inexact: dict[int, LiteRT] = {}  # INEXACT_FLOAT_OPS, each alone under REF
        self.cut_tensors: list[int] = []
        self._graph: Graph | None = None
        if not _may_be_cut(data):
            return
        graph = read_tflite(data)
        for i, op in enumerate(graph.ops):
            if op.kind in INEXACT_FLOAT_OPS and graph.tensors[op.inputs[0]].dtype == "float32":
                self.inexact[i] = LiteRT(_alone(graph, i), reference=True, threads=1)
                self.cut_tensors.append(op.outputs[0])
                continue
            w = graph.tensors[op.inputs[1]] if op.kind == "FULLY_CONNECTED" and len(op.inputs) > 1 else None
            if w is None or op.inputs[1] < 0 or w.quant is None or not w.quant.block_size:
                continue
            self.ops[i] = _Op(int(w.quant.block_size), op.fused_activation, LiteRT(_alone(graph, i), threads=1))
            self.cut_tensors.append(op.outputs[0])
        self._graph = graph

    def is_cut(self, op_index: int) -> bool:
        return op_index in self.ops or op_index in self.inexact

    def reference_model(self) -> bytes:
        """The model for LiteRT REF: unchanged, or without the cut ops (blockwise and inexact float ones), whose
        outputs become inputs."""
        if not self.cut_tensors or self._graph is None:
            return self._data
        g = self._graph
        cut = dataclasses.replace(g, ops=[op for i, op in enumerate(g.ops) if not self.is_cut(i)],
                                  inputs=g.inputs + self.cut_tensors, signature_key="", signature_inputs={},
                                  signature_outputs={})
        return write_tflite(cut)

    def reference_alone(self, op_index: int, x: np.ndarray) -> np.ndarray:
        """LiteRT REF's output of inexact float op `op_index` run alone on edgeq's input `x`."""
        return self.inexact[op_index].run([x])[0]

    def check(self, op_index: int, x: np.ndarray, mine: np.ndarray) -> None:
        """Runs op `op_index` alone in LiteRT on edgeq's input `x` and records its distance to edgeq's output."""
        op = self.ops[op_index]
        theirs = op.runtime.run([x])[0].astype(np.float64)
        if op.block_size % 32:
            lo, hi = _CLAMP[op.activation]
            theirs = np.clip(theirs, lo, hi)
        diff = np.abs(mine.astype(np.float64).reshape(theirs.shape) - theirs)
        op.max_abs_diff = max(op.max_abs_diff, float(np.max(diff, initial=0.0)))
        op.output_range = max(op.output_range, float(np.max(np.abs(theirs), initial=0.0)))

    def results(self, native: NativeModel) -> list[BlockwiseCheck]:
        out = []
        for i, op in self.ops.items():
            relative = op.max_abs_diff / op.output_range if op.output_range > 0 else float(op.max_abs_diff > 0)
            out.append(BlockwiseCheck(
                op_index=i, op=native.ops[i].name, tensor=native.tensors[native.ops[i].outputs[0]].name,
                block_size=op.block_size, kernel=_kernel_name(op.block_size), max_abs_diff=op.max_abs_diff,
                output_range=op.output_range, relative=relative, within=relative <= BLOCKWISE_TOLERANCE))
        return out

    def defects(self) -> list[str]:
        return [f"op {i} (FULLY_CONNECTED): LiteRT's builtin blockwise kernel (blocks of {op.block_size}, which "
                f"XNNPACK refuses) omits the fused {op.activation}; its output is clamped before comparing"
                for i, op in self.ops.items() if op.block_size % 32 and op.activation != "NONE"]

    @staticmethod
    def reference_name() -> str:
        try:
            release = f" (ai-edge-litert {version('ai-edge-litert')})"
        except PackageNotFoundError:
            release = ""
        return (f"LiteRT default kernels{release}, each op alone on edgeq's input: XNNPACK qd8_f32_qb4w for blocks "
                "of 32k, the builtin FULLY_CONNECTED for others (REF kernels do not compute blockwise INT4)")


def _alone(graph: Graph, index: int) -> bytes:
    """Op `index` of `graph` as a model of its own: its first input in, its first output out."""
    op = graph.ops[index]
    return write_tflite(dataclasses.replace(graph, ops=[op], inputs=[op.inputs[0]], outputs=[op.outputs[0]],
                                            signature_key="", signature_inputs={}, signature_outputs={}, metadata={}))


def _kernel_name(block_size: int) -> str:
    return "XNNPACK qd8_f32_qb4w" if block_size % 32 == 0 else "LiteRT builtin FULLY_CONNECTED"


def _may_be_cut(data: bytes) -> bool:
    """Cheap pre-check before parsing the model in Python: a blockwise weight (an INT4 FULLY_CONNECTED's) or
    an op code of INEXACT_FLOAT_OPS."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    sub = model.Subgraphs(0) if model.SubgraphsLength() else None
    if sub is None:
        return False
    codes = {getattr(schema.BuiltinOperator, name) for name in INEXACT_FLOAT_OPS}
    if any(max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode()) in codes
           for i in range(model.OperatorCodesLength())):
        return True
    quantizations = (sub.Tensors(i).Quantization() for i in range(sub.TensorsLength()))
    return any(q is not None and q.DetailsType() == schema.QuantizationDetails.BlockwiseQuantization
               for q in quantizations)
