"""Transformer block reconstruction (BRECQ, Li et al. 2021, for BERT-like encoders): the rounding of every
FULLY_CONNECTED weight of one encoder layer (query, key, value, attention output, feed-forward up and down)
is learned jointly, on the layer's output, rather than layer by layer (GPTQ, AdaRound).

A segment runs from a tensor that two or more FULLY_CONNECTED layers read (the normalised layer input that
Q, K and V share) to the next such tensor, the last one to the model's output. Its ops are evaluated in
torch op by op from the float graph (layer norms decomposed into MEAN / SQUARED_DIFFERENCE / RSQRT, masked
softmax, GELU, reshapes and transposes, with a leading batch of samples), so the float function is
reproduced as LiteRT computes it. Values the segment reads from outside (the attention mask's additive
term) come from the integer model. The segment's input is the integer model's (every earlier segment
already rounded), its target the float model's output; only real positions count (AlgorithmContext's
padding mask): padding rows reach no output. Each weight chooses between two neighbouring integers
(AdaRound's rectified sigmoid), starting next to its current integer (GPTQ's, or round to nearest), with
AdaRound's annealed regulariser driving every choice to 0 or 1. The learned integers replace the current
ones only where they lower the segment's output error on calibration samples held out of the learning.

Weights are stored as float scale * q, which the renderer re-quantizes to exactly q with the plan's scales.
Activations are taken as float (weight-only schemes such as w4-block32, where LiteRT runs every other op in
float); under an integer-activation scheme the learned rounding ignores activation rounding.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.adaround import WARMUP, _initial_v, rectified_sigmoid, rounding_penalty
from edgeq.algorithms.bias_correction import evenly_spaced
from edgeq.algorithms.context import AlgorithmContext, torch_single_thread
from edgeq.algorithms.gptq import integer_view
from edgeq.algorithms.layers import Layer, activate, linear_layers, weight_grid
from edgeq.calibrate.padding import positional
from edgeq.ir.graph import Graph
from edgeq.quant.schemes import qrange

SAMPLES = 512  # calibration samples used (evenly spaced over the calibration set): fewer overfit
HOLDOUT = 8  # every HOLDOUT-th of them is held out of the learning, to judge the result
ITERATIONS = 300
BATCH = 8  # samples per step
LEARNING_RATE = 0.01  # 0.05 overfits: MiniLM layer 1 at 56 samples, 6 dB lower in sample, worse held out
REG_WEIGHT = 1000.0  # over the mean per weight, against the reconstruction error relative to the start's
START_SOFT = 0.15  # h(V) at the start: this far from the current integer's side, so gradients still flow

_ELEMENTWISE = ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE")
_UNARY = ("RSQRT", "SQRT", "ABS", "GELU", "TANH", "LOGISTIC", "EXP", "NEG")
_REDUCE = ("MEAN", "SUM")
SUPPORTED = ("FULLY_CONNECTED", "RESHAPE", "TRANSPOSE", "BATCH_MATMUL", "SOFTMAX", *_ELEMENTWISE, *_UNARY, *_REDUCE)


class Segment:
    """One stretch of the graph between shared FULLY_CONNECTED inputs: its ops (graph order), the tensor it
    starts from, the one it ends at, the non-constant tensors it reads from outside, and its rounded layers."""

    def __init__(self, graph: Graph, start: int, end: int, layers: list[Layer]) -> None:
        after = {start}
        for op in graph.ops:
            if any(t in after for t in op.inputs):
                after.update(op.outputs)
        needed, ops = {end}, []
        for i in range(len(graph.ops) - 1, -1, -1):
            op = graph.ops[i]
            if any(t in needed for t in op.outputs) and any(t in after for t in op.inputs):
                ops.append(i)
                needed.update(t for t in op.inputs if t >= 0)
        self.ops = ops[::-1]
        self.start, self.end = start, end
        produced = {t for i in self.ops for t in graph.ops[i].outputs}
        self.external = sorted(
            {
                t
                for i in self.ops
                for t in graph.ops[i].inputs
                if t >= 0 and t != start and t not in produced and not graph.tensors[t].is_constant
            }
        )
        self.layers = [layer for layer in layers if layer.op in self.ops]
        self.unsupported = sorted({graph.ops[i].kind for i in self.ops if graph.ops[i].kind not in SUPPORTED})


def segments(graph: Graph, layers: list[Layer]) -> list[Segment]:
    """The encoder layers as segments: from each tensor read by two or more of the layers (Q, K, V's shared
    input) to the next one, the last to the graph's single output."""
    readers: dict[int, int] = {}
    for layer in layers:
        if layer.kind == "FULLY_CONNECTED":
            readers[layer.input] = readers.get(layer.input, 0) + 1
    starts = sorted((t for t, n in readers.items() if n >= 2), key=lambda t: _producer_position(graph, t))
    ends = starts[1:] + ([graph.outputs[0]] if len(graph.outputs) == 1 else [])
    return [Segment(graph, s, e, layers) for s, e in zip(starts, ends, strict=False)]


def _producer_position(graph: Graph, tensor: int) -> int:
    for i, op in enumerate(graph.ops):
        if tensor in op.outputs:
            return i
    return -1


class Evaluator:
    """The segment's ops in torch on a leading batch of samples: every value is [B, *graph shape]."""

    def __init__(self, graph: Graph, segment: Segment) -> None:
        import torch

        self.graph, self.segment = graph, segment
        self.constants = {}
        for i in segment.ops:
            for t in graph.ops[i].inputs:
                tensor = graph.tensors[t] if t >= 0 else None
                if tensor is not None and tensor.is_constant and np.issubdtype(tensor.data.dtype, np.floating):
                    self.constants[t] = torch.from_numpy(np.asarray(tensor.data, dtype=np.float32))

    def run(self, x, external: dict, weights: dict):
        """x [B, *start shape]; external: tensor -> [B, *shape]; weights: weight tensor -> torch [out, in]
        (the rounded ones; the rest are the graph's constants). Returns [B, *end shape]."""
        import torch
        import torch.nn.functional as F

        graph = self.graph
        batch = x.shape[0]
        values = {self.segment.start: x, **external}

        def value(t: int, rank: int):
            """Batched values aligned to `rank` graph dims ([B, 1.., *shape]); constants as they are."""
            if t in values:
                v = values[t]
                shape = tuple(graph.tensors[t].shape)
                return v.reshape(batch, *([1] * (rank - len(shape))), *shape)
            return self.constants[t]

        for i in self.segment.ops:
            op = graph.ops[i]
            out_shape = tuple(graph.tensors[op.outputs[0]].shape)
            rank = len(out_shape)
            kind = op.kind
            if kind == "FULLY_CONNECTED":
                w = weights.get(op.inputs[1], self.constants.get(op.inputs[1]))
                xin = values[op.inputs[0]].reshape(batch, -1, w.shape[1])
                y = xin @ w.T
                if len(op.inputs) > 2 and op.inputs[2] >= 0:
                    y = y + self.constants[op.inputs[2]]
                y = activate(op.fused_activation, y)
            elif kind == "RESHAPE":
                y = values[op.inputs[0]]
            elif kind == "TRANSPOSE":
                perm = [int(p) for p in graph.tensors[op.inputs[1]].data]
                y = values[op.inputs[0]].permute(0, *(p + 1 for p in perm))
            elif kind == "BATCH_MATMUL":
                r = max(len(graph.tensors[op.inputs[0]].shape), len(graph.tensors[op.inputs[1]].shape))
                a, b = value(op.inputs[0], r), value(op.inputs[1], r)
                if op.options.get("adjX", False):
                    a = a.transpose(-1, -2)
                if op.options.get("adjY", False):
                    b = b.transpose(-1, -2)
                y = torch.matmul(a, b)
            elif kind == "SOFTMAX":
                y = torch.softmax(values[op.inputs[0]] * float(op.options.get("beta", 1.0)), dim=-1)
            elif kind in _REDUCE:
                xin = values[op.inputs[0]]
                in_rank = len(graph.tensors[op.inputs[0]].shape)
                axes = sorted({int(a) % in_rank + 1 for a in np.asarray(graph.tensors[op.inputs[1]].data).reshape(-1)})
                keep = bool(op.options.get("keepDims", False))
                y = xin.mean(dim=axes, keepdim=keep) if kind == "MEAN" else xin.sum(dim=axes, keepdim=keep)
            elif kind in _ELEMENTWISE:
                a, b = value(op.inputs[0], rank), value(op.inputs[1], rank)
                if kind == "ADD":
                    y = a + b
                elif kind == "SUB":
                    y = a - b
                elif kind == "MUL":
                    y = a * b
                elif kind == "DIV":
                    y = a / b
                elif kind == "MAXIMUM":
                    y = torch.maximum(a, b)
                elif kind == "MINIMUM":
                    y = torch.minimum(a, b)
                else:
                    y = torch.square(a - b)
                y = activate(op.fused_activation, y)
            else:
                y = _unary(kind, values[op.inputs[0]], op.options, F)
            values[op.outputs[0]] = y.reshape(batch, *out_shape)
        return values[self.segment.end]


def _unary(kind: str, x, options: dict, F):
    import torch

    if kind == "GELU":
        return F.gelu(x, approximate="tanh" if options.get("approximate", False) else "none")
    functions = {
        "RSQRT": torch.rsqrt,
        "SQRT": torch.sqrt,
        "ABS": torch.abs,
        "TANH": torch.tanh,
        "LOGISTIC": torch.sigmoid,
        "EXP": torch.exp,
        "NEG": torch.neg,
    }
    return functions[kind](x)


class _Rounding:
    """The learnable rounding of one layer: weight = scale * clip(floor + h(V), qmin, qmax)."""

    def __init__(self, ctx: AlgorithmContext, layer: Layer, reference: Graph) -> None:
        import torch

        assert ctx.plan is not None
        enc = ctx.plan.tensors[ctx.graph.tensors[layer.weight].name]
        w = np.asarray(reference.tensors[layer.weight].data, dtype=np.float64)
        scale, current, qmax = weight_grid(ctx.plan, ctx.graph, layer)
        self.qmin = -qmax if enc.narrow_range or qrange(enc.dtype)[0] == -qmax else qrange(enc.dtype)[0]
        self.qmax = qmax
        # Each weight chooses between lo and lo + 1: floor and ceil of w / s, or the pair holding the current
        # integer where an earlier algorithm (GPTQ) moved it further; the soft start leans to the current one.
        floor = np.floor(w / scale)
        floor = np.where(current < floor, current, np.where(current > floor + 1, current - 1, floor))
        self.scale_np = scale
        self.scale = torch.from_numpy(scale.astype(np.float32))
        self.floor = torch.from_numpy(floor.astype(np.float32))
        self.start = torch.from_numpy((current - floor).astype(np.float32))
        v0 = _initial_v(START_SOFT + (1 - 2 * START_SOFT) * (current - floor))
        self.v = torch.nn.Parameter(torch.from_numpy(v0.astype(np.float32)))

    def h(self, mode: str):

        if mode == "soft":
            return rectified_sigmoid(self.v)
        if mode == "hard":
            return (self.v >= 0).float()
        return self.start

    def weight(self, mode: str):
        import torch

        return self.scale * torch.clamp(self.floor + self.h(mode), self.qmin, self.qmax)

    def integers(self, mode: str) -> np.ndarray:
        import torch

        with torch.no_grad():
            return torch.clamp(self.floor + self.h(mode), self.qmin, self.qmax).numpy().astype(np.float64)


def _real_rows(values, live):
    """[B, S, F] rows of positional values at the real positions (all rows when `live` is None)."""
    if live is None:
        return values.reshape(values.shape[0], -1)
    return values.reshape(values.shape[0], live.shape[1], -1)[live]


def reconstruct_segment(
    ctx: AlgorithmContext,
    segment: Segment,
    x_q: np.ndarray,
    external: dict[int, np.ndarray],
    target: np.ndarray,
    live: np.ndarray | None,
    held: np.ndarray,
    seed: int = 0,
    iterations: int = ITERATIONS,
) -> tuple[dict[int, np.ndarray], float, float, float]:
    """Learned integers of the segment's layers (weight tensor -> [out, in]), and the held-out output error
    of the current integers, of the learned ones, and the share of soft roundings left undecided. x_q, target
    and external values are stacked over samples; live bool [N, S] marks real positions (None: all rows);
    held bool [N] marks the samples held out of the learning."""
    import torch

    torch.manual_seed(seed)
    graph = ctx.float_graph or ctx.graph
    evaluator = Evaluator(graph, segment)
    rounding = {layer.weight: _Rounding(ctx, layer, graph) for layer in segment.layers}
    xq = torch.from_numpy(x_q)
    ext = {t: torch.from_numpy(v) for t, v in external.items()}
    tgt = torch.from_numpy(target)
    mask = None if live is None else torch.from_numpy(live)
    train = np.flatnonzero(~held)
    test = np.flatnonzero(held) if held.any() else train

    def error(mode: str, idx: np.ndarray) -> float:
        total = 0.0
        with torch.no_grad():
            weights = {t: r.weight(mode) for t, r in rounding.items()}
            for k in range(0, idx.size, BATCH):
                j = torch.from_numpy(idx[k : k + BATCH])
                out = evaluator.run(xq[j], {t: v[j] for t, v in ext.items()}, weights)
                m = None if mask is None else mask[j]
                total += float(torch.sum(torch.square(_real_rows(out, m) - _real_rows(tgt[j], m))))
        return total

    scale = max(error("start", train) / max(train.size, 1), 1e-30)  # per-sample error at the start
    params = [r.v for r in rounding.values()]
    count = sum(p.numel() for p in params)
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)
    warm = int(WARMUP * iterations)
    rng = np.random.default_rng(seed)
    for step in range(iterations):
        j = torch.from_numpy(rng.choice(train, size=min(BATCH, train.size), replace=False))
        weights = {t: r.weight("soft") for t, r in rounding.items()}
        out = evaluator.run(xq[j], {t: v[j] for t, v in ext.items()}, weights)
        m = None if mask is None else mask[j]
        loss = torch.sum(torch.square(_real_rows(out, m) - _real_rows(tgt[j], m))) / (len(j) * scale)
        penalty = rounding_penalty([r.h("soft") for r in rounding.values()], step, warm, iterations)
        loss = loss + REG_WEIGHT * penalty / count
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        soft = torch.cat([r.h("soft").reshape(-1) for r in rounding.values()])
        undecided = float(torch.mean(((soft > 0.01) & (soft < 0.99)).float()))
    before, after = error("start", test), error("hard", test)
    mode = "hard" if after < before else "start"
    return {t: r.integers(mode) for t, r in rounding.items()}, before, min(before, after), undecided


def _run(ctx: AlgorithmContext) -> list[str]:
    assert ctx.plan is not None
    graph = ctx.graph
    samples = evenly_spaced(ctx.samples, SAMPLES)
    layers = [layer for layer in linear_layers(graph, ctx.plan, blocks=True) if layer.kind == "FULLY_CONNECTED"]
    found = segments(graph, layers)
    usable = [s for s in found if s.layers and not s.unsupported]
    notes = [f"skipped a segment from '{graph.tensors[s.start].name}': ops {', '.join(s.unsupported)} not evaluated"
             for s in found if s.unsupported]  # fmt: skip
    if not usable or not samples:
        return [*notes, "transformer reconstruction: no segment of shared FULLY_CONNECTED inputs to learn"]
    live_list = ctx.live_positions(samples)
    held = np.arange(len(samples)) % HOLDOUT == HOLDOUT - 1
    if len(samples) < 2 * HOLDOUT:  # too few to spare: judge on the learning samples
        held[:] = False
    targets = ctx.float_activations(sorted({s.end for s in usable}), samples, original=True)
    gains, kept, undecided = [], 0, []
    for k, segment in enumerate(tqdm(usable, desc="transformer reconstruction", disable=not ctx.progress)):
        wanted = [segment.start, *segment.external]
        acts = integer_view(ctx).quantized_activations(wanted, samples)
        missing = [t for t in wanted if t not in acts]
        if missing:
            acts.update(ctx.float_activations(missing, samples, original=True))
        end_shape = tuple(graph.tensors[segment.end].shape)
        live = None
        if live_list is not None and ctx.padding is not None and positional(end_shape, ctx.padding.length):
            live = np.stack(live_list)
        ints, before, after, soft = reconstruct_segment(
            ctx,
            segment,
            np.stack(acts[segment.start]).astype(np.float32),
            {t: np.stack(acts[t]).astype(np.float32) for t in segment.external},
            np.stack(targets[segment.end]).astype(np.float32),
            live,
            held,
            seed=k,
        )
        for layer in segment.layers:
            scale, _, _ = weight_grid(ctx.plan, graph, layer)
            graph.tensors[layer.weight].data = (scale * ints[layer.weight]).astype(np.float32)
        kept += int(after >= before)
        undecided.append(soft)
        gains.append(10 * np.log10(max(before, 1e-30) / max(after, 1e-30)))
    notes.append(
        f"learned the rounding of {sum(len(s.layers) for s in usable)} FULLY_CONNECTED layers in {len(usable)} "
        f"segments jointly ({ITERATIONS} steps of {BATCH} samples, {len(samples)} calibration samples, "
        f"{int(held.sum())} held out to judge); {kept} segments kept their integers"
    )
    notes.append(
        "segment output error (real positions, held-out samples) vs the previous integers: "
        + ", ".join(f"{g:.2f}" for g in gains)
        + f" dB lower; undecided soft roundings at the end: {100 * max(undecided):.1f}% at most"
    )
    return notes


run = torch_single_thread(_run)  # the registered entry point (stage "plan")
