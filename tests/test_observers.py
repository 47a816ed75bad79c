"""Range observers: the ranges they pick, measured by the quantization error they cause."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edgeq.calibrate.observers import (
    OBSERVERS,
    MinMaxObserver,
    MseObserver,
    PercentileObserver,
    make_observer,
)


def fake_quant(x: np.ndarray, lo: float, hi: float, symmetric: bool = False) -> np.ndarray:
    """TFLite int8 quantization: affine (scale from the range, zero point rounded to an integer), or
    symmetric (zero point 0, levels -127..127)."""
    if symmetric:
        scale = hi / 127
        return np.clip(np.round(x / scale), -127, 127) * scale
    scale = (hi - lo) / 255
    zp = np.round(-lo / scale)
    return (np.clip(np.round(x / scale) + zp, 0, 255) - zp) * scale


def quant_mse(x: np.ndarray, rng: tuple[float, float], symmetric: bool = False) -> float:
    return float(np.mean((fake_quant(x.astype(np.float64), *rng, symmetric) - x) ** 2))


def observed(name: str, chunks, symmetric: bool = False, bits: int = 8):
    obs = make_observer(name, bits=bits, symmetric=symmetric)
    for c in chunks:
        obs.update(c)
    return obs


@pytest.fixture(scope="module")
def heavy_tailed() -> np.ndarray:
    """Laplace bulk plus a handful of large outliers, like a transformer activation."""
    rng = np.random.default_rng(0)
    x = rng.laplace(size=200_000).astype(np.float32)
    x[rng.choice(x.size, 20, replace=False)] = rng.uniform(-60, 60, 20)
    return x


def test_minmax_tracks_running_extremes_and_contains_zero():
    obs = observed("minmax", [np.array([1.0, 2.0]), np.array([[3.5]]), np.array([0.5])])
    assert obs.range() == (0.0, 3.5)
    assert observed("minmax", [np.array([-2.0, 1.0])], symmetric=True).range() == (-2.0, 2.0)


def test_histogram_rebinning_keeps_every_count():
    rng = np.random.default_rng(1)
    chunks = [
        rng.normal(m, s, 5000).astype(np.float32)
        for s, m in [(0.01, 0), (1, 0), (3, 2), (0.5, -20), (100, 0)]
    ]
    obs = PercentileObserver()
    for c in chunks:
        obs.update(c)
    counts, edges = obs.histogram()
    data = np.concatenate(chunks)
    assert counts.size == 2048 and edges[0] <= data.min() and edges[-1] >= data.max()
    assert counts.sum() == data.size
    reference, _ = np.histogram(data, bins=2048, range=(edges[0], edges[-1]))
    # Old bins merge exactly into the aligned wider bins; float32 binning may move a value at an edge.
    assert np.abs(counts - reference).sum() <= 4
    # Each growth at least doubles the bin width, so the range is at most ~2x what the data needs.
    assert edges[-1] - edges[0] < 2.2 * (data.max() - data.min())


@pytest.mark.parametrize("name", sorted(OBSERVERS))
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize(
    ("chunks", "lo", "hi"),
    [
        ([np.zeros((4, 4))], 0.0, 0.0),
        ([np.zeros(3), np.zeros(5)], 0.0, 0.0),
        ([np.full(10, 5.0, np.float32)], 0.0, 5.0),
        ([np.full(7, -2.5, np.float32)], -2.5, 0.0),
        ([np.float32(3.0)], 0.0, 3.0),
        ([np.array([1e-30, 2e-30], np.float32)], 0.0, 2e-30),
        ([np.array([-3e38, 3e38], np.float32)], -3e38, 3e38),
        ([np.array([1e-30], np.float32), np.array([3e38], np.float32)], 0.0, 3e38),
        ([np.zeros(100), np.array([-1.0, 4.0])], -1.0, 4.0),
        ([], 0.0, 0.0),
    ],
)
def test_degenerate_tensors(name, symmetric, chunks, lo, hi):
    got = observed(name, chunks, symmetric).range()
    if symmetric:
        lo, hi = -max(-lo, hi), max(-lo, hi)
    assert np.all(np.isfinite(got)) and got[0] <= 0.0 <= got[1]
    assert got == pytest.approx((lo, hi), rel=0.03, abs=0.0)


def test_percentile_clips_an_injected_outlier():
    rng = np.random.default_rng(2)
    x = rng.normal(size=100_000).astype(np.float32)
    x[123] = 1000.0
    lo, hi = observed("percentile", np.split(x, 10)).range()
    assert observed("minmax", [x]).range()[1] == 1000.0
    assert hi == pytest.approx(np.percentile(x, 99.99), abs=0.5)  # 0.5 = one histogram bin
    assert lo == pytest.approx(np.percentile(x, 0.01), abs=0.5)


def test_percentile_interpolates_within_bins():
    x = np.random.default_rng(3).uniform(-1, 3, 400_000).astype(np.float32)
    obs = PercentileObserver(percentile=99.0)
    obs.update(x)
    lo, hi = obs.range()
    width = 4 / 2048
    assert hi == pytest.approx(np.percentile(x, 99.0), abs=width)
    assert lo == pytest.approx(np.percentile(x, 1.0), abs=width)


@pytest.mark.parametrize("symmetric", [False, True])
def test_mse_beats_minmax_on_heavy_tails_and_matches_brute_force(heavy_tailed, symmetric):
    x = heavy_tailed
    chunks = np.split(x, 20)
    mse_range = observed("mse", chunks, symmetric).range()
    minmax_range = observed("minmax", chunks, symmetric).range()
    err, err_minmax = quant_mse(x, mse_range, symmetric), quant_mse(x, minmax_range, symmetric)
    assert err < 0.8 * err_minmax
    # Brute force on the raw data: shrink the min/max range by 300 factors, keep the best.
    shrunk = [(minmax_range[0] * a, minmax_range[1] * a) for a in np.linspace(0.02, 1, 300)]
    best = min(quant_mse(x, r, symmetric) for r in shrunk)
    assert err <= 1.01 * best
    if symmetric:
        assert mse_range[0] == -mse_range[1]


def test_mse_keeps_the_full_range_when_nothing_is_worth_clipping():
    x = np.random.default_rng(4).uniform(-1, 3, 100_000).astype(np.float32)
    lo, hi = observed("mse", [x]).range()
    assert lo == pytest.approx(-1, rel=0.02) and hi == pytest.approx(3, rel=0.02)
    assert quant_mse(x, (lo, hi)) <= 1.01 * quant_mse(x, (-1.0, 3.0))


def test_mse_range_is_an_exact_quantization_grid(heavy_tailed):
    """The range is step * (-z, 255 - z) for an integer z: the quantizer recovers the scored grid."""
    lo, hi = observed("mse", [heavy_tailed]).range()
    zero_point = -lo / ((hi - lo) / 255)
    assert zero_point == pytest.approx(round(zero_point), abs=1e-6)
    relu = np.maximum(heavy_tailed, 0)
    assert observed("mse", [relu]).range()[0] == 0.0


def test_mse_sixteen_bits_clips_much_less():
    x = np.random.default_rng(5).laplace(size=100_000).astype(np.float32)
    r8 = observed("mse", [x], symmetric=True, bits=8).range()
    r16 = observed("mse", [x], symmetric=True, bits=16).range()
    assert r16[1] > r8[1]


def test_mse_range_is_fast(heavy_tailed):
    for symmetric in (False, True):
        obs = MseObserver(symmetric=symmetric)
        obs.update(heavy_tailed)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            obs.range()
            times.append(time.perf_counter() - start)
        assert min(times) < 0.05


def test_memory_does_not_grow_with_updates():
    rng = np.random.default_rng(6)
    obs = MseObserver()
    for i in range(500):
        obs.update(rng.normal(0, 1 + i, 64).astype(np.float32))
    counts, _ = obs.histogram()
    assert counts.size == 2048 and counts.sum() == 500 * 64


def test_registry_and_errors():
    assert isinstance(make_observer("minmax", 8, False), MinMaxObserver)
    assert isinstance(make_observer("percentile", 8, False), PercentileObserver)
    obs = make_observer("mse", bits=16, symmetric=True)
    assert isinstance(obs, MseObserver) and obs.bits == 16 and obs.symmetric
    with pytest.raises(ValueError, match="unknown observer 'kl'; valid names: minmax, mse, percentile"):
        make_observer("kl", 8, False)
    with pytest.raises(ValueError, match="bits must be in"):
        make_observer("mse", 1, False)
    with pytest.raises(ValueError, match="percentile must be in"):
        PercentileObserver(percentile=20)


def test_strided_histogram_of_large_tensors_keeps_percentiles():
    """Tensors above max_elements are histogrammed on a stride (calibration speed); the percentile range
    must stay within 2% of the exact one, and min/max stay exact."""
    rng = np.random.default_rng(7)
    exact = PercentileObserver(percentile=99.99)
    exact.max_elements = 0
    strided = PercentileObserver(percentile=99.99)
    for _ in range(8):
        x = rng.laplace(size=(1, 112, 112, 32)).astype(np.float32)
        exact.update(x)
        strided.update(x)
    assert strided.max_elements and x.size > 4 * strided.max_elements
    assert (strided.min, strided.max) == (exact.min, exact.max)
    np.testing.assert_allclose(strided.range(), exact.range(), rtol=0.02)
    assert strided.histogram()[0].sum() == pytest.approx(exact.histogram()[0].sum(), rel=1e-3)


@pytest.mark.parametrize("name", sorted(OBSERVERS))
def test_infinities_computed_by_the_model_are_left_out_of_the_range(name):
    """Attention masks add -inf on purpose; the range covers the finite values, the infinities saturate."""
    obs = make_observer(name)
    x = np.linspace(-2.0, 3.0, 1000, dtype=np.float32)
    x[::10] = -np.inf
    obs.update(x)
    lo, hi = obs.range()
    assert np.isfinite(lo) and np.isfinite(hi)
    assert -2.5 < lo <= 0.0 < hi < 3.5
