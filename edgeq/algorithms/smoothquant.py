"""SmoothQuant (Xiao et al. 2023): with int8 activations per tensor, a few outlier channels set the scale of
a FULLY_CONNECTED's input and every other channel rounds to a handful of levels. Dividing input channel c by
s_c = max|x_c|^alpha / max|W[:, c]|^(1 - alpha) and multiplying the weight column by s_c moves that range into
the weights, which are per channel (per output row) and absorb it.

The rescale uses AWQ's exact folds (edgeq.algorithms.awq: a layer norm's gamma/beta, or V's rows into the
attention output projection) and powers of two, so the float function is unchanged bit for bit. Inputs with
no per-channel constant in front (a normalised value whose gamma a converter folded into the next weights,
GELU outputs) are not touched and are counted in the notes.
"""

from __future__ import annotations

import numpy as np

from edgeq.algorithms.awq import apply, find_groups, power_of_two_scales
from edgeq.algorithms.context import AlgorithmContext

# Migration strength: 0.5 splits the range evenly between activations and weights (the paper's default).
ALPHA = 0.5


def smoothing_scales(act_max: np.ndarray, weight_max: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """max|x|^alpha / max|w|^(1-alpha) per channel, normalised to geometric mean 1, as powers of two; channels
    that are zero on either side keep 1."""
    live = (act_max > 0) & (weight_max > 0)
    raw = np.power(np.where(live, act_max, 1.0), alpha) / np.power(np.where(live, weight_max, 1.0), 1.0 - alpha)
    return power_of_two_scales(raw, live)


def run(ctx: AlgorithmContext) -> list[str]:
    """The registered entry (stage "float")."""
    graph = ctx.graph
    groups = find_groups(graph)
    fc_inputs = {op.inputs[0] for op in graph.ops if op.kind == "FULLY_CONNECTED"}
    if not groups or not ctx.samples:
        return [f"SmoothQuant: none of {len(fc_inputs)} FULLY_CONNECTED inputs can be rescaled exactly"]
    acts = ctx.float_activations([g.tensor for g in groups])
    notes = []
    for group in groups:
        values = acts[group.tensor]
        width = values[0].shape[-1]
        act_max = np.max([np.max(np.abs(x.reshape(-1, width)), axis=0) for x in values], axis=0).astype(np.float64)
        weights = [np.abs(graph.tensors[graph.ops[i].inputs[1]].data) for i in group.consumers]
        weight_max = np.max([w.max(axis=0) for w in weights], axis=0).astype(np.float64)
        s = smoothing_scales(act_max, weight_max)
        apply(graph, group, s)
        before = float(act_max.max() / np.median(act_max))
        after = float((act_max / s).max() / np.median(act_max / s))
        names = ", ".join(graph.tensors[graph.ops[i].outputs[0]].name for i in group.consumers)
        notes.append(f"{group.kind} fold into {names}: input channel max/median {before:.1f} -> {after:.1f}")
    return [
        f"SmoothQuant (alpha {ALPHA}): {len(groups)} of {len(fc_inputs)} FULLY_CONNECTED inputs smoothed",
        *notes,
    ]
