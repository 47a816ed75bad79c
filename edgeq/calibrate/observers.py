"""Streaming range observers: fed one activation tensor at a time, constant memory in the number of updates.

Every `range()` contains 0, because the TFLite quantization spec needs zero to be exactly representable
(zero padding, ReLU). Observers assume finite input: `validated` rejects NaN/Inf calibration data.
An all-zero (or never fed) tensor gives (0.0, 0.0); picking a minimum scale is the quantizer's job.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np


class Observer(ABC):
    """Collects statistics of one tensor and proposes its quantization range [lo, hi], lo <= 0 <= hi.

    `bits` and `symmetric` describe the quantizer the range is for: a symmetric observer returns
    (-a, a), since a symmetric quantizer has zero point 0.
    """

    def __init__(self, bits: int = 8, symmetric: bool = False) -> None:
        if not 2 <= bits <= 16:
            raise ValueError(f"bits must be in [2, 16], got {bits}")
        self.bits = bits
        self.symmetric = symmetric

    @abstractmethod
    def update(self, x: np.ndarray) -> None: ...

    @abstractmethod
    def range(self) -> tuple[float, float]: ...

    def _finish(self, lo: float, hi: float) -> tuple[float, float]:
        lo, hi = min(lo, 0.0) + 0.0, max(hi, 0.0)  # + 0.0 turns -0.0 into 0.0
        if self.symmetric:
            a = max(abs(lo), abs(hi))
            return 0.0 - a, a
        return lo, hi


def finite_values(x: np.ndarray) -> np.ndarray:
    """`x` itself when all finite (the common case, checked with one min and max), else its finite values.

    Models compute infinities on purpose (attention masks add -inf before a softmax); the quantized
    tensor then saturates at the end of its range, which is the same after the softmax. Calibration
    data itself is checked for NaN/Inf before it reaches the model.
    """
    x = np.asarray(x)
    if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        return x[np.isfinite(x)]
    return x


class MinMaxObserver(Observer):
    """The full observed range: never clips, so one outlier costs resolution for every other value."""

    def __init__(self, bits: int = 8, symmetric: bool = False) -> None:
        super().__init__(bits, symmetric)
        self.min = math.inf
        self.max = -math.inf

    def update(self, x: np.ndarray) -> None:
        x = finite_values(x)
        if x.size:
            self.min = min(self.min, float(x.min()))
            self.max = max(self.max, float(x.max()))

    def range(self) -> tuple[float, float]:
        if self.min > self.max:
            return 0.0, 0.0
        return self._finish(self.min, self.max)


class HistogramObserver(Observer):
    """Running min/max plus a fixed-size histogram over [lo, hi], a range that always contains 0.

    When a tensor falls outside the range, the range grows to a whole multiple k of the old bin width,
    aligned on the old bin edges, so the old counts merge exactly (k old bins -> 1 new bin), as in
    PyTorch's HistogramObserver. Subclasses turn the histogram into a range.
    """

    def __init__(self, bits: int = 8, symmetric: bool = False, bins: int = 2048, max_elements: int = 1 << 16) -> None:
        super().__init__(bits, symmetric)
        self.max_elements = max_elements  # 0: histogram every value
        if bins < 16:
            raise ValueError(f"bins must be >= 16, got {bins}")
        self.bins = bins
        self.min = math.inf
        self.max = -math.inf
        self._lo = 0.0
        self._hi = 0.0
        self._counts = np.zeros(bins, dtype=np.float64)

    def update(self, x: np.ndarray) -> None:
        x = finite_values(x)
        if not x.size:
            return
        mn, mx = float(x.min()), float(x.max())
        self.min, self.max = min(self.min, mn), max(self.max, mx)
        lo, hi = min(mn, 0.0), max(mx, 0.0)
        if lo < self._lo or hi > self._hi:
            self._grow(lo, hi)
        if self._hi == self._lo:  # everything seen so far is exactly 0
            self._counts[0] += x.size
            return
        span = self._hi - self._lo
        flat = x.reshape(-1)
        # Large tensors are histogrammed on an even stride (min and max above stay exact): a 400k-value
        # feature map then costs what a 64k one does, and each kept value stands for `step` values.
        step = max(1, flat.size // self.max_elements) if self.max_elements else 1
        if step > 1:
            flat = flat[::step]
        dtype = np.float32 if span < 1e38 else np.float64  # float32 is ~5x faster; float64 cannot overflow
        idx = np.subtract(flat, self._lo, dtype=dtype)
        idx *= dtype(self.bins / span)
        np.clip(idx, 0, self.bins - 1, out=idx)
        self._counts += step * np.bincount(idx.astype(np.intp), minlength=self.bins)

    def minmax_range(self) -> tuple[float, float]:
        """What MinMaxObserver would say of the same data (the extremes are tracked exactly)."""
        if self.min > self.max:
            return 0.0, 0.0
        return self._finish(self.min, self.max)

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) like np.histogram: `bins` counts and `bins + 1` edges."""
        return self._counts.copy(), np.linspace(self._lo, self._hi, self.bins + 1)

    def _grow(self, lo: float, hi: float) -> None:
        """Widen the histogram to cover [lo, hi], re-binning the counts already collected."""
        width = (self._hi - self._lo) / self.bins
        if width == 0:  # only zeros so far: they all land in the new bin holding 0
            new_lo, new_width = lo, (hi - lo) / self.bins
        else:
            left = max(0, math.ceil((self._lo - lo) / width))  # old-bin units needed below
            right = max(0, math.ceil((hi - self._hi) / width))
            k = -(-(left + self.bins + right) // self.bins)
            slack = k * self.bins - (left + self.bins + right)  # spare old-bin units, < one old range
            if left and right:
                left += slack // 2
            elif left:
                left += slack  # the range grew downwards only: keep the spare room there
            new_lo, new_width = self._lo - left * width, k * width
        # Old bin centers never sit on a new edge (the grids are aligned), so floor() is exact.
        centers = self._lo + (np.arange(self.bins) + 0.5) * width
        idx = np.clip(((centers - new_lo) / new_width).astype(np.int64), 0, self.bins - 1)
        self._counts = np.bincount(idx, weights=self._counts, minlength=self.bins)
        self._lo, self._hi = new_lo, new_lo + self.bins * new_width


class PercentileObserver(HistogramObserver):
    """Range between the (100 - p)th and pth percentiles: clips rare outliers, whatever their size."""

    def __init__(self, percentile: float = 99.99, bits: int = 8, symmetric: bool = False, bins: int = 2048) -> None:
        super().__init__(bits, symmetric, bins)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile

    def range(self) -> tuple[float, float]:
        total = self._counts.sum()
        if total == 0 or self._hi == self._lo:
            return 0.0, 0.0
        lo = max(self._quantile((100.0 - self.percentile) / 100.0 * total), self.min)
        hi = min(self._quantile(self.percentile / 100.0 * total), self.max)
        return self._finish(lo, hi)

    def _quantile(self, rank: float) -> float:
        """The value below which `rank` counts lie, interpolating linearly inside a bin."""
        cum = np.cumsum(self._counts)
        j = min(int(np.searchsorted(cum, rank)), self.bins - 1)
        below = cum[j - 1] if j else 0.0
        frac = (rank - below) / self._counts[j] if self._counts[j] else 0.0
        width = (self._hi - self._lo) / self.bins
        return float(self._lo + (j + frac) * width)


class MseObserver(HistogramObserver):
    """Range minimizing the expected squared error (clipping + rounding) of the quantized histogram.

    Candidates are the quantizers themselves: a step and an integer zero point (fixed at the middle
    when symmetric), so 0 is on the grid and the error of the exact TFLite rounding is scored.
    Each bin's count is spread uniformly over the bin; the error integrals then have closed forms,
    evaluated for all candidates at once from prefix sums (a few ms per tensor).
    """

    STEPS = 32  # candidate steps per pass: a coarse geometric pass, then a fine one around its best
    MAX_ZERO_POINTS = 257  # zero points tried per step (all of them up to 8 bits)

    def range(self) -> tuple[float, float]:
        if self._counts.sum() == 0 or self._hi == self._lo:
            return 0.0, 0.0
        if self.symmetric:
            levels = 2 ** (self.bits - 1) - 1  # [-levels, levels]
            full = max(-self.min, self.max, 0.0) / levels
            zero_points = np.array([levels], dtype=np.float64)
            levels *= 2
        else:
            levels = 2**self.bits - 1
            full = (max(self.max, 0.0) - min(self.min, 0.0)) / levels
            count = min(levels + 1, self.MAX_ZERO_POINTS)
            zero_points = np.unique(np.round(np.linspace(0, levels, count)))
        bin_width = (self._hi - self._lo) / self.bins

        def best(steps: np.ndarray) -> tuple[int, int]:
            err = _expected_sq_error(self._counts, self._lo, bin_width, steps, zero_points, levels)
            i, j = np.unravel_index(int(np.argmin(err)), err.shape)
            return int(i), int(j)

        # Steps from a range of a few histogram bins (finer is below the histogram's resolution) to min/max.
        smallest = min(1.0, 4 * bin_width / (levels * full))
        coarse = full * np.geomspace(smallest, 1.0, self.STEPS)
        i, _ = best(coarse)
        fine = np.geomspace(coarse[max(i - 1, 0)], coarse[min(i + 1, self.STEPS - 1)], self.STEPS)
        i, j = best(fine)
        lo = -zero_points[j] * fine[i]
        return self._finish(float(lo), float(lo + levels * fine[i]))


def _expected_sq_error(
    counts: np.ndarray, lo: float, width: float, steps: np.ndarray, zero_points: np.ndarray, levels: int
) -> np.ndarray:
    """Sum over the histogram of E[(x - q(x))^2], q(x) = step * clip(round(x / step), -z, levels - z),
    for every (step, z): an array of shape (len(steps), len(zero_points))."""
    bins = counts.size
    edges = lo + width * np.arange(bins + 1)
    density = counts / width
    a, b = edges[:-1], edges[1:]

    def prefix(per_bin: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((*per_bin.shape[:-1], 1)), np.cumsum(per_bin, axis=-1)], axis=-1)

    # Moments of the piecewise-uniform density up to each edge: sum c, c*x, c*x^2.
    m0, m1, m2 = prefix(counts), prefix(counts * (a + b) / 2), prefix(counts * (a * a + a * b + b * b) / 3)

    def locate(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        j = np.clip(np.floor((x - lo) / width), 0, bins - 1).astype(np.int64)
        return j, np.clip(x, edges[0], edges[-1]), edges[j]

    def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        j, xc, e = locate(x)
        d = density[j]
        x2, e2 = xc * xc, e * e
        return m0[j] + d * (xc - e), m1[j] + d * (x2 - e2) / 2, m2[j] + d * (x2 * xc - e2 * e) / 3

    step = steps[:, None]
    step3 = step * step * step
    q_lo = -zero_points[None, :] * step
    q_hi = q_lo + levels * step

    # Clipping: mass below q_lo lands on q_lo, mass above q_hi on q_hi.
    l0, l1, l2 = moments(q_lo)
    h0, h1, h2 = moments(q_hi)
    clip_lo = l2 - 2 * q_lo * l1 + q_lo**2 * l0
    clip_hi = (m2[-1] - h2) - 2 * q_hi * (m1[-1] - h1) + q_hi**2 * (m0[-1] - h0)

    # Rounding inside [q_lo, q_hi]: the integral of (x - step*round(x/step))^2 from 0 to x is
    # step^3 * (r/12 + (s - r)^3 / 3) with s = x/step, r = round(s).
    def rounding_integral(x: np.ndarray) -> np.ndarray:
        s = x / step
        r = np.floor(s + 0.5)
        f = s - r
        return step3 * (r / 12 + f * f * f / 3)

    at_edges = rounding_integral(edges[None, :])  # (steps, bins + 1)
    acc = prefix(density * np.diff(at_edges, axis=1))

    def rounding_upto(x: np.ndarray) -> np.ndarray:
        j, xc, _ = locate(x)
        rows = np.arange(x.shape[0])[:, None]
        return acc[rows, j] + density[j] * (rounding_integral(xc) - at_edges[rows, j])

    return clip_lo + clip_hi + rounding_upto(q_hi) - rounding_upto(q_lo)


OBSERVERS: dict[str, Callable[..., Observer]] = {
    "minmax": MinMaxObserver,
    "percentile": PercentileObserver,
    "mse": MseObserver,
}


def make_observer(name: str, bits: int = 8, symmetric: bool = False) -> Observer:
    """A fresh observer by registry name, for a `bits`-bit (a)symmetric quantizer."""
    if name not in OBSERVERS:
        raise ValueError(f"unknown observer {name!r}; valid names: {', '.join(sorted(OBSERVERS))}")
    return OBSERVERS[name](bits=bits, symmetric=symmetric)
