"""Symmetric weight scales chosen by weight MSE, per channel or per block.

At 4 bits a max-abs scale spends most of the 15 levels on the few largest weights; clipping those
(a scale below max|w| / 7) rounds the bulk of the weights more finely. For each group (a channel or a
block) the scale is searched over clipping ratios of max|w| and the one whose fp16-rounded value
reconstructs the group with least squared error is kept, so what is measured is what is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgeq.quant.schemes import fp16_ceil

# Clipping ratios searched, largest first: ties keep the larger ratio (less clipping). Ratio 1.0 alone is
# max-abs, so the search never does worse than it on the weights it measures.
CLIP_RATIOS: tuple[float, ...] = tuple(float(r) for r in np.linspace(1.0, 0.5, 41))
# The smallest fp16-stored scale (a normal half): XNNPACK refuses subnormal fp16 scales.
FP16_MIN_NORMAL = float(np.finfo(np.float16).smallest_normal)


def weight_groups(w: np.ndarray, axis: int, block_size: int = 0) -> np.ndarray:
    """The weights as [groups, values]: one row per channel along `axis`, or, with block_size, one row
    per block of `block_size` consecutive values of the last axis (row-major: FULLY_CONNECTED [out][in/B],
    CONV_2D [out][kh][kw][in/B])."""
    w = np.asarray(w, dtype=np.float64)
    if block_size:
        return w.reshape(-1, block_size)
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def mse_scales(
    groups: np.ndarray,
    qmax: int,
    floor: np.ndarray | float,
    ratios: Sequence[float] = CLIP_RATIOS,
    ceil: Callable[[np.ndarray], np.ndarray] = fp16_ceil,
) -> np.ndarray:
    """One scale per row of `groups` (float64), minimising sum (w - s * clip(round(w / s), -qmax, qmax))^2
    over s = ceil(max(r * max|w| / qmax, floor)); `floor` must be positive, `ceil` rounds up to the grid
    the scales are stored on (fp16 by default)."""
    groups = np.asarray(groups, dtype=np.float64)
    amax = np.max(np.abs(groups), axis=1) if groups.shape[1] else np.zeros(groups.shape[0])
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), amax.shape)
    best_scale = np.zeros_like(amax)
    best_err = np.full_like(amax, np.inf)
    for r in ratios:
        scale = ceil(np.maximum(r * amax / qmax, floor))
        q = np.clip(np.rint(groups / scale[:, None]), -qmax, qmax)
        err = np.sum(np.square(groups - scale[:, None] * q), axis=1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
    return best_scale
