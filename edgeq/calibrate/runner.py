"""Run the float model in LiteRT with every tensor preserved and feed the activation observers."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from edgeq.calibrate.data import InputSpec, validated
from edgeq.calibrate.observers import HistogramObserver, make_observer
from edgeq.calibrate.padding import PaddingMask
from edgeq.calibrate.softmax_ranges import Extremes, masked_softmax_ranges, softmax_inputs, tensors_read
from edgeq.ir.graph import Graph
from edgeq.runtime import LiteRT

_HOLD_EVERY = 16


@dataclass
class CalibrationResult:
    ranges: dict[int, tuple[float, float]]  # activation tensor index -> (lo, hi)
    samples: int
    seconds: float
    minmax_ranges: dict[int, tuple[float, float]] | None = None  # exact extremes, where the observer has them
    held_inputs: list[list[np.ndarray]] = field(default_factory=list)  # samples held out of the ranges
    held_outputs: list[list[np.ndarray]] = field(default_factory=list)  # the float model's outputs on them
    notes: list[str] = field(default_factory=list)  # ranges calibration adjusted, and why


def input_specs(graph: Graph) -> list[InputSpec]:
    specs = []
    for t in graph.inputs:
        tensor = graph.tensors[t]
        shape = tensor.shape_signature if tensor.shape_signature is not None else tensor.shape
        specs.append(InputSpec(name=tensor.name, shape=tuple(shape), dtype=tensor.dtype))
    return specs


def calibrate(
    graph: Graph,
    model: bytes,
    source,
    observer: str = "percentile",
    bits: int = 8,
    symmetric: bool = False,
    progress: bool = True,
    keep: int = 0,
    padding: PaddingMask | None = None,
) -> CalibrationResult:
    """Stream `source` through the float model one sample at a time, observing every float activation.

    Memory stays constant in the number of samples: observers keep fixed-size state, the data source
    yields batch by batch. With `keep`, every 16th sample (up to `keep` of them) is held out of the
    ranges, with its float outputs, for choosing between candidate plans afterwards. With a `padding` mask,
    tensors laid out by position are observed on their real positions' rows only.
    """
    start = time.perf_counter()
    runtime = LiteRT(model, preserve=True)
    watched = [t for t in graph.activations() if graph.tensors[t].dtype == "float32"]
    observers = {t: make_observer(observer, bits=bits, symmetric=symmetric) for t in watched}
    softmaxes = softmax_inputs(graph)
    extremes = {t: Extremes() for t in tensors_read(softmaxes) if t in observers}
    specs = input_specs(graph)
    model_shapes = [tuple(graph.tensors[t].shape) for t in graph.inputs]
    bar = tqdm(desc="calibrating", unit="sample", disable=not progress, file=sys.stderr, leave=False)
    samples = 0
    held_inputs: list[list[np.ndarray]] = []
    held_outputs: list[list[np.ndarray]] = []
    real_positions: list[float] = []
    for batch in validated(source, specs, on_batch=bar.update):
        count = batch[0].shape[0]
        for k in range(count):
            sample = [x[k : k + 1].reshape(shape) for x, shape in zip(batch, model_shapes, strict=True)]
            outputs = runtime.run(sample)
            if len(held_inputs) < keep and (samples + k) % _HOLD_EVERY == _HOLD_EVERY - 1:
                # Held out of the ranges: a plan scored on the samples it was fitted to favours min/max.
                held_inputs.append([x.copy() for x in sample])
                held_outputs.append(outputs)
                continue
            if padding is None:
                for t, obs in observers.items():  # no reference to LiteRT's buffers may outlive the loop
                    obs.update(runtime.tensor(t))
            else:
                live = padding.live(sample)
                real_positions.append(float(live.mean()))
                for t, obs in observers.items():
                    obs.update(padding.real_rows(runtime.tensor(t), live))
            for t, ext in extremes.items():
                ext.update(runtime.tensor(t))
        samples += count
    bar.close()
    ranges = {t: obs.range() for t, obs in observers.items()}
    minmax = None
    if all(isinstance(obs, HistogramObserver) for obs in observers.values()):
        minmax = {t: obs.minmax_range() for t, obs in observers.items()}
    ranges, notes = masked_softmax_ranges(graph, ranges, softmaxes, extremes, symmetric)
    if minmax is not None:
        minmax, _ = masked_softmax_ranges(graph, minmax, softmaxes, extremes, symmetric)
    if padding is not None:
        notes.append(padding.note(float(np.mean(real_positions)) if real_positions else 0.0))
    return CalibrationResult(
        ranges=ranges,
        samples=samples,
        seconds=time.perf_counter() - start,
        minmax_ranges=minmax,
        held_inputs=held_inputs,
        held_outputs=held_outputs,
        notes=notes,
    )
