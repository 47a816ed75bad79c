"""What an algorithm works on: the float graph (whose constants it may change), the plan, the calibration
samples, and ways to run the float and the quantized model over them with intermediate tensors kept."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgeq.calibrate.padding import PaddingMask
from edgeq.export.tflite_writer import write_tflite
from edgeq.frontends.host_ops import host_graph
from edgeq.ir.graph import Graph
from edgeq.quant.plan import QuantPlan
from edgeq.quant.schemes import Scheme
from edgeq.runtime import LiteRT


@dataclass
class AlgorithmReport:
    """What one algorithm did, for the user and the report: wall time and notes (which layers, how much)."""

    name: str
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class AlgorithmContext:
    """Shared state of one quantize() call. Algorithms change `graph` constants (weights, biases) in place
    and may refine `plan` encodings; quantize() records the changed constants in the plan (plan.weights),
    so the plan alone reproduces the artifact. `render` gives the integer model of the current state."""

    graph: Graph
    scheme: Scheme
    samples: list[list[np.ndarray]]  # calibration inputs, one list of arrays (model input shapes) per sample
    render: Callable[[Graph, QuantPlan], tuple[Graph, bytes, bytes]]  # -> (integer graph, .tflite, host bytes)
    plan: QuantPlan | None = None
    progress: bool = True
    # The float graph as calibrated (after float-stage algorithms), never changed by plan-stage ones: what
    # they measure against once an earlier one (AdaRound) has replaced weights by their rounded values.
    float_graph: Graph | None = None
    # The input marking padding positions of sequence models (edgeq.calibrate.padding): statistics over
    # activation rows count the real positions only.
    padding: PaddingMask | None = None

    def live_positions(self, samples: Sequence[list[np.ndarray]]) -> list[np.ndarray] | None:
        """Per sample, bool [S] of its real positions; None without a padding mask."""
        return None if self.padding is None else [self.padding.live(s) for s in samples]

    def float_host_tflite(self) -> bytes:
        """The current float graph as LiteRT runs it on the host (custom ops replaced by stand-ins)."""
        return _host_tflite(self.graph)

    def float_activations(
        self, tensors: Sequence[int], samples: Iterable[list[np.ndarray]] | None = None, original: bool = False
    ) -> dict[int, list[np.ndarray]]:
        """Values of float-graph tensors (by index) for each sample, from the current float weights, or with
        `original` from the float model's (`float_graph`: before plan-stage algorithms stored their integers
        as weights), the targets a rounding reconstructs."""
        runtime = LiteRT(_host_tflite((self.float_graph or self.graph) if original else self.graph), preserve=True)
        out: dict[int, list[np.ndarray]] = {t: [] for t in tensors}
        for sample in self.samples if samples is None else samples:
            runtime.run(sample)
            for t in tensors:
                out[t].append(np.array(runtime.tensor(t), dtype=np.float32))
        return out

    def quantized_activations(
        self, tensors: Sequence[int], samples: Iterable[list[np.ndarray]] | None = None, reference: bool = False
    ) -> dict[int, list[np.ndarray]]:
        """Values of float-graph tensors (by index) as the integer model of the current plan and weights
        computes them, dequantized to float. Tensors the integer model does not hold are absent."""
        assert self.plan is not None, "quantized_activations needs a plan (stage 'plan')"
        qgraph, _, host = self.render(self.graph, self.plan)
        located = quantized_tensor_index(qgraph)
        runtime = LiteRT(host, reference=reference, preserve=True)
        wanted = {t: located[self.graph.tensors[t].name] for t in tensors if self.graph.tensors[t].name in located}
        out: dict[int, list[np.ndarray]] = {t: [] for t in wanted}
        for sample in self.samples if samples is None else samples:
            runtime.run(sample)
            for t, qi in wanted.items():
                out[t].append(_dequantized(runtime.tensor(qi), qgraph, qi))
        return out


def _host_tflite(graph: Graph) -> bytes:
    host = host_graph(graph)
    return write_tflite(graph if host is None else host)


def quantized_tensor_index(qgraph: Graph) -> dict[str, int]:
    """Float-graph tensor name -> index of the tensor holding its value in the lowered graph (the lowering
    keeps names; a value quantized after a float op is '<name>/quantized')."""
    located: dict[str, int] = {}
    for i, t in enumerate(qgraph.tensors):
        base = t.name[: -len("/quantized")] if t.name.endswith("/quantized") else t.name
        if t.name.endswith("/quantized") or base not in located:
            located[base] = i
    return located


def _dequantized(values: np.ndarray, qgraph: Graph, index: int) -> np.ndarray:
    tensor = qgraph.tensors[index]
    if tensor.quant is None or np.issubdtype(values.dtype, np.floating):
        return np.array(values, dtype=np.float32)
    return tensor.quant.dequantize(values).astype(np.float32)


def torch_single_thread(run: Callable[[AlgorithmContext], list[str]]) -> Callable[[AlgorithmContext], list[str]]:
    """`run` with torch on one thread: the learned-rounding steps are small, and torch's spinning worker
    threads made them 12x slower on a 2-core machine when other processes competed for the cores (measured
    on AdaRound: 67 s vs 5.4 s for one layer)."""

    @functools.wraps(run)
    def single(ctx: AlgorithmContext) -> list[str]:
        import torch

        assert ctx.plan is not None
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run(ctx)
        finally:
            torch.set_num_threads(threads)

    return single


def timed(name: str, run: Callable[[], list[str]]) -> AlgorithmReport:
    start = time.perf_counter()
    notes = run()
    return AlgorithmReport(name=name, seconds=time.perf_counter() - start, notes=list(notes or []))
