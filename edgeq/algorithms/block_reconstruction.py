"""Block reconstruction (BRECQ, Li et al. 2021): the rounding of a short chain of convolutions (an inverted
residual block's expand, depthwise and project convolutions) is learned jointly, on the chain's output,
rather than layer by layer.

Layer-wise reconstruction (GPTQ, AdaRound) fits each layer's own output, so a layer cannot trade its error
against the next one's; at INT4 on EfficientNet-Lite0 the first block alone (stem convolution, depthwise,
project) takes the int8 model from 18.9 dB to 6.2 dB even after GPTQ (docs/BENCHMARKS.md). Here each chain
of at most BLOCK_LAYERS consecutive CONV_2D / DEPTHWISE_CONV_2D layers (each one's output read only by the
next) is run in torch on whole feature maps: the integer model's input to the chain (every earlier chain
already rounded), AdaRound's rectified-sigmoid rounding of every weight between floor and ceil, the fused
activation, and the int8 activation encoding of every layer output (rounding with a straight-through
gradient), against the float model's output of the chain. AdaRound's regulariser drives each rounding to
0 or 1, here at 100x AdaRound's weight: with few steps the soft rounding otherwise ends far better than any
hard one (EfficientNet-Lite0's first chain at 0.01: soft 17.8 dB below GPTQ's error, hard 3 dB above it).
The better of the learned integers and the chain's current ones (GPTQ's, or round to nearest) on the
calibration samples is then refined hard: the soft phase leaves roundings whose hard choice it never saw
(the first chain's soft error is 9x below its hard one), so batches of flips ranked by the gradient are
kept only where the exact chain output error falls (the first chain: 6 flips, 2.4 dB lower). The
refinement is off by default (REFINE_TRIALS): on EfficientNet-Lite0 it raises the logit SQNR and loses
top-1 agreement.

Integers are stored as float weights scale * q, which the renderer re-quantizes to exactly q.
"""

from __future__ import annotations

import itertools

import numpy as np
from tqdm import tqdm

from edgeq.algorithms.adaround import WARMUP, _initial_v, rectified_sigmoid, rounding_penalty
from edgeq.algorithms.bias_correction import evenly_spaced
from edgeq.algorithms.context import AlgorithmContext, torch_single_thread
from edgeq.algorithms.gptq import integer_view
from edgeq.algorithms.layers import Layer, linear_layers, padding, weight_grid
from edgeq.ir.graph import Graph

BLOCK_LAYERS = 3  # expand, depthwise, project: one inverted residual block
ITERATIONS = 300
BATCH = 2  # calibration samples (whole feature maps) per step
SAMPLES = 32
LEARNING_RATE = 0.05
REG_WEIGHT = 1.0  # AdaRound's lambda, 100x: at 0.01 most roundings stay undecided after 300 steps (BENCHMARKS)
# Exact evaluations of flip batches per chain after the soft phase. Off (0) by default: on EfficientNet-Lite0
# at INT4, 60 trials lower every chain's calibration error and raise the logit SQNR (7.42 -> 7.99 dB) but
# lose top-1 agreement (0.725 -> 0.692, 480 crops; BENCHMARKS, session 8); the conv chain test gains 2.5 dB.
REFINE_TRIALS = 0
REFINE_BATCH = 16  # flips in the first batch
REFINE_CHUNK = 8  # samples per forward pass while refining (bounds memory on the early, large feature maps)
START_SOFT = 0.15  # h(V) at the start: this far from the current integer's side, so gradients still flow


def chains(graph: Graph, layers: list[Layer]) -> list[list[Layer]]:
    """Runs of consecutive convolutions, each output read by the next layer only, cut into pieces of at most
    BLOCK_LAYERS layers."""
    readers: dict[int, int] = {}
    for op in graph.ops:
        for t in set(op.inputs):
            readers[t] = readers.get(t, 0) + 1
    convs = [layer for layer in layers if layer.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    runs: list[list[Layer]] = []
    for layer in convs:
        prev = runs[-1][-1] if runs else None
        if prev is not None and prev.output == layer.input and readers.get(prev.output, 0) == 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    out = []
    for run in runs:
        pieces = -(-len(run) // BLOCK_LAYERS)
        bounds = np.linspace(0, len(run), pieces + 1).round().astype(int)
        out += [run[a:b] for a, b in itertools.pairwise(bounds)]
    return out


class _Chain:
    """The chain's torch forward pass with learnable rounding, and its fixed data."""

    def __init__(self, ctx: AlgorithmContext, chain: list[Layer], reference: Graph) -> None:
        import torch

        assert ctx.plan is not None
        self.layers = chain
        self.parts = []
        for layer in chain:
            w = reference.tensors[layer.weight].data.astype(np.float64)
            scale, current, qmax = weight_grid(ctx.plan, ctx.graph, layer)
            # Each weight chooses between lo and lo + 1: floor and ceil of w / s, or the pair holding the
            # current integer where an earlier algorithm (GPTQ) moved it further; the soft start leans to it.
            floor = np.floor(w / scale)
            floor = np.where(current < floor, current, np.where(current > floor + 1, current - 1, floor))
            v0 = _initial_v(START_SOFT + (1 - 2 * START_SOFT) * (current - floor))
            out_enc = ctx.plan.tensors[ctx.graph.tensors[layer.output].name]
            bias = reference.tensors[layer.bias].data if layer.bias >= 0 else np.zeros(scale.shape[0])
            self.parts.append(
                {
                    "scale": torch.from_numpy(_torch_layout(layer, scale).astype(np.float32)),
                    "floor": torch.from_numpy(_torch_layout(layer, floor).astype(np.float32)),
                    "start": torch.from_numpy(_torch_layout(layer, current - floor).astype(np.float32)),
                    "v": torch.nn.Parameter(torch.from_numpy(_torch_layout(layer, v0).astype(np.float32))),
                    "qmax": qmax,
                    "bias": torch.from_numpy(np.asarray(bias, dtype=np.float32).reshape(-1)),
                    "out_scale": float(out_enc.scale[0]),
                    "out_zero": int(out_enc.zero_points()[0]),
                }
            )

    def roundings(self, mode: str) -> list:
        """Per layer, h in [0, 1] (torch layout): "soft" (h(V)), "hard" (V >= 0) or "start" (the current
        integers)."""
        if mode == "soft":
            return self.soft_h()
        if mode == "hard":
            return [(p["v"] >= 0).float() for p in self.parts]
        return [p["start"] for p in self.parts]

    def forward(self, x, mode: str):
        """x [N, C, H, W]; mode as in roundings()."""
        return self.forward_h(x, self.roundings(mode))

    def forward_h(self, x, hs: list):
        """The chain's output for roundings hs (one per layer: 0 floor, 1 floor + 1, or in between)."""
        import torch
        import torch.nn.functional as F

        from edgeq.algorithms.layers import activate

        for layer, p, h in zip(self.layers, self.parts, hs, strict=True):
            w = p["scale"] * torch.clamp(p["floor"] + h, -p["qmax"], p["qmax"])
            (top, bottom), (left, right) = padding(layer, (1, x.shape[2], x.shape[3], x.shape[1]))
            x = F.pad(x, (left, right, top, bottom))
            groups = x.shape[1] if layer.kind == "DEPTHWISE_CONV_2D" else 1
            y = F.conv2d(x, w, p["bias"], stride=layer.stride, dilation=layer.dilation, groups=groups)
            y = activate(layer.activation, y)
            s, z = p["out_scale"], p["out_zero"]
            q = (torch.clamp(torch.round(y / s) + z, -128, 127) - z) * s
            x = y + (q - y).detach()  # int8 activation, straight-through gradient
        return x

    def soft_h(self):

        return [rectified_sigmoid(p["v"]) for p in self.parts]


def _torch_layout(layer: Layer, a: np.ndarray) -> np.ndarray:
    """CONV_2D [out, kh, kw, in] -> [out, in, kh, kw]; DEPTHWISE [1, kh, kw, C] -> [C, 1, kh, kw]."""
    if layer.kind == "DEPTHWISE_CONV_2D":
        return np.ascontiguousarray(a[0].transpose(2, 0, 1)[:, None])
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _tflite_layout(layer: Layer, a: np.ndarray) -> np.ndarray:
    if layer.kind == "DEPTHWISE_CONV_2D":
        return np.ascontiguousarray(a[:, 0].transpose(1, 2, 0)[None])
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def reconstruct_chain(
    ctx: AlgorithmContext, chain: list[Layer], x_q: np.ndarray, target: np.ndarray, seed: int
) -> tuple[list[np.ndarray], float, float, int]:
    """Learned integers of each layer (TFLite layout), the chain's output error with the current integers
    and with the result (the better of the current and the learned ones, then refined by flips), and the
    number of flips the refinement kept. x_q, target: NHWC stacks."""
    import torch

    torch.manual_seed(seed)
    model = _Chain(ctx, chain, ctx.float_graph or ctx.graph)
    xq = torch.from_numpy(np.ascontiguousarray(x_q.transpose(0, 3, 1, 2)))
    tgt = torch.from_numpy(np.ascontiguousarray(target.transpose(0, 3, 1, 2)))
    params = [p["v"] for p in model.parts]
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)
    warm = int(WARMUP * ITERATIONS)
    n = xq.shape[0]
    for step in range(ITERATIONS):
        idx = torch.randint(0, n, (min(BATCH, n),))
        rec = torch.square(model.forward(xq[idx], "soft") - tgt[idx]).sum(dim=1).mean()
        rec = rec + REG_WEIGHT * rounding_penalty(model.soft_h(), step, warm, ITERATIONS)
        optimizer.zero_grad()
        rec.backward()
        optimizer.step()

    def error(mode: str) -> float:
        with torch.no_grad():
            return float(sum(torch.sum(torch.square(model.forward(xq[i : i + 1], mode) - tgt[i : i + 1]))
                             for i in range(n)))

    before, after = error("start"), error("hard")
    hs, refined, flips = model.roundings("hard" if after < before else "start"), after, 0
    if REFINE_TRIALS > 0:
        hs, refined, flips = refine(model, xq, tgt, hs, REFINE_TRIALS)
    out = []
    with torch.no_grad():
        for layer, p, h in zip(chain, model.parts, hs, strict=True):
            q = torch.clamp(p["floor"] + h, -p["qmax"], p["qmax"]).numpy().astype(np.float64)
            out.append(_tflite_layout(layer, q))
    return out, before, min(before, after, refined), flips


def refine(model: _Chain, xq, tgt, hs: list, trials: int) -> tuple[list, float, int]:
    """Hard refinement of roundings hs (0 or 1 each): batches of flips (floor <-> floor + 1) ranked by the
    gradient of the chain's output error (straight-through through the int8 activations), each batch kept
    only if the exact output error over all samples falls; the batch doubles after a kept one and halves
    after a rejected one, and a rejected single flip is not tried again. Returns the roundings, their
    error and the number of flips kept."""
    import torch

    n = xq.shape[0]

    def error(hs: list, grad: bool) -> tuple[float, list | None]:
        total, grads = 0.0, [torch.zeros_like(h) for h in hs] if grad else None
        for i in range(0, n, REFINE_CHUNK):
            leaves = [h.clone().requires_grad_(grad) for h in hs]
            part = slice(i, i + REFINE_CHUNK)
            with torch.set_grad_enabled(grad):
                e = torch.sum(torch.square(model.forward_h(xq[part], leaves) - tgt[part]))
            if grads is not None:
                e.backward()
                for g, leaf in zip(grads, leaves, strict=True):
                    g += leaf.grad
            total += float(e.detach())
        return total, grads

    hs = [h.detach().clone() for h in hs]
    sizes = [h.numel() for h in hs]
    fixed = torch.cat(  # flips the clamp to [-qmax, qmax] would undo
        [((p["floor"] + 1 - h).abs() > p["qmax"]).flatten() for p, h in zip(model.parts, hs, strict=True)]
    )
    tabu = torch.zeros(sum(sizes), dtype=torch.bool)
    best, grads = error(hs, grad=True)
    batch, flips = REFINE_BATCH, 0
    for _ in range(trials):
        assert grads is not None
        flat = torch.cat([h.flatten() for h in hs])
        gain = torch.cat([g.flatten() for g in grads]) * (1 - 2 * flat)  # first-order change of the error
        gain = torch.where(fixed | tabu, torch.inf, gain)
        order = torch.argsort(gain)[:batch]
        order = order[gain[order] < 0]
        if order.numel() == 0:
            break
        trial = flat.clone()
        trial[order] = 1 - trial[order]
        candidate = [t.reshape(h.shape) for t, h in zip(torch.split(trial, sizes), hs, strict=True)]
        e, _ = error(candidate, grad=False)
        if e < best:
            hs, flips, batch = candidate, flips + order.numel(), batch * 2
            best, grads = error(hs, grad=True)
        else:
            if order.numel() == 1:
                tabu[order] = True
            batch = max(1, batch // 2)
    return hs, best, flips


def _run(ctx: AlgorithmContext) -> list[str]:
    assert ctx.plan is not None
    graph = ctx.graph
    samples = evenly_spaced(ctx.samples, SAMPLES)
    blocks = chains(graph, linear_layers(graph, ctx.plan))
    targets = ctx.float_activations(sorted({b[-1].output for b in blocks}), samples, original=True)
    gains, kept, flips = [], 0, 0
    for k, chain in enumerate(tqdm(blocks, desc="block reconstruction", disable=not ctx.progress)):
        quant = integer_view(ctx).quantized_activations([chain[0].input], samples).get(chain[0].input)
        if quant is None:
            continue
        target = np.concatenate(targets[chain[-1].output])
        q, before, after, flipped = reconstruct_chain(ctx, chain, np.concatenate(quant), target, seed=k)
        flips += flipped
        for layer, ints in zip(chain, q, strict=True):
            scale, _, _ = weight_grid(ctx.plan, graph, layer)
            graph.tensors[layer.weight].data = (scale * ints).astype(np.float32)
        kept += int(after >= before)
        gains.append(10 * np.log10(max(before, 1e-30) / max(after, 1e-30)))
    refined = f", then up to {REFINE_TRIALS} batches of rounding flips a chain: {flips} kept" if REFINE_TRIALS else ""
    notes = [
        f"learned the rounding of {len(gains)} chains of up to {BLOCK_LAYERS} convolutions jointly ({ITERATIONS} "
        f"steps of {BATCH} whole samples, {len(samples)} calibration samples{refined}); {kept} kept their integers"
    ]
    if gains:
        notes.append(
            f"chain output error vs the previous integers: median {np.median(gains):.2f} dB lower, least "
            f"{min(gains):.2f} dB, most {max(gains):.2f} dB"
        )
    return notes


run = torch_single_thread(_run)  # the registered entry point (stage "plan")
