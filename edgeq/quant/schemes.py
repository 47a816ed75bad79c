"""Quantization schemes and the arithmetic that turns a float range into (scale, zero point)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeq.errors import PlanError

# Smallest range given to a tensor that never moved during calibration (all zeros, say): any scale
# represents it exactly, and a sane one keeps downstream multipliers in range.
_DEGENERATE_RANGE = 1.0
# Smallest activation scales. LiteRT quantizes fused-activation bounds (6.0 for RELU6) to int32 at prepare
# and refuses the model when 6 / scale overflows (seen on a near-dead MobileNetV2 activation, 2.5e-9); its
# int8 SOFTMAX aborts the process unless beta * input_scale * 2^26 > 1 (seen on that model's logits). An
# int8 range below 1.5e-5 carries nothing anyway; int16 keeps finer steps where the bound allows.
MIN_ACTIVATION_SCALE = {"int8": 2.0**-24, "uint8": 2.0**-24, "int16": 2.0**-28}
# Core ML stores quantize/dequantize and constexpr weight scales in the program's float type, fp16 for the
# Neural Engine: 8-bit scales are kept fp16-representable so the .mlpackage carries the plan's scales exactly.
FP16_SCALE_DTYPES = ("int8", "uint8", "int4")
_FP16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class Scheme:
    """A named quantization scheme: the activation type and the weight/bias types that go with it."""

    name: str
    activation_dtype: str  # int8 or int16; float32: weight-only (activations stay float)
    weight_dtype: str  # int8 or int4
    bias_dtype: str  # int32 or int64; float32 under weight-only schemes
    block_size: int = 0  # > 0: FULLY_CONNECTED (and, weight-only, CONV_2D) weights per block of this many inputs

    @property
    def activation_symmetric(self) -> bool:
        return self.activation_dtype == "int16"

    @property
    def weight_only(self) -> bool:
        """Only weights that a LiteRT kernel reads as integers with float activations are quantized."""
        return self.activation_dtype == "float32"


# INT4 block sizes offered: XNNPACK computes blockwise FULLY_CONNECTED for multiples of 32; LiteRT's builtin
# kernel takes any size, so 16 runs too, only without XNNPACK.
INT4_BLOCK_SIZES = (16, 32, 64, 128, 256)

SCHEMES: dict[str, Scheme] = {
    "int8": Scheme("int8", "int8", "int8", "int32"),
    "int16x8": Scheme("int16x8", "int16", "int8", "int64"),
    "int4-channel": Scheme("int4-channel", "int8", "int4", "int32"),
    **{f"int4-block{b}": Scheme(f"int4-block{b}", "int8", "int4", "int32", b) for b in INT4_BLOCK_SIZES},
    # Weight-only INT4 (transformers, whose layer norms and softmaxes int8 activations ruin): blockwise
    # FULLY_CONNECTED, EMBEDDING_LOOKUP tables and CONV_2D (blocks along the input channels; the .tflite
    # dequantizes them to the float conv), per-channel DEPTHWISE_CONV_2D; every other op and activation float.
    **{f"w4-block{b}": Scheme(f"w4-block{b}", "float32", "int4", "float32", b) for b in INT4_BLOCK_SIZES},
}


def get_scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise PlanError(f"unknown scheme {name!r}; known schemes: {', '.join(sorted(SCHEMES))}")
    return SCHEMES[name]


def qrange(dtype: str) -> tuple[int, int]:
    if dtype == "int4":  # numpy has no 4-bit type: int4 values live in int8 arrays
        return -8, 7
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


def affine_params(lo: float, hi: float, dtype: str, symmetric: bool) -> tuple[float, int]:
    """Scale and zero point for a per-tensor activation, as the TFLite converter nudges them:
    zero must be exactly representable, so the zero point is rounded and the range shifts slightly."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmin, qmax = qrange(dtype)
    if symmetric:
        bound = max(abs(lo), abs(hi))
        if bound == 0.0:
            bound = _DEGENERATE_RANGE
        return fp16_representable(max(bound / qmax, MIN_ACTIVATION_SCALE.get(dtype, 0.0)), dtype), 0
    if hi - lo == 0.0:
        hi = _DEGENERATE_RANGE
    scale = fp16_representable(max((hi - lo) / (qmax - qmin), MIN_ACTIVATION_SCALE.get(dtype, 0.0)), dtype)
    zero_from_min = qmin - lo / scale
    zero_point = int(np.clip(np.round(zero_from_min), qmin, qmax))
    return scale, zero_point


def fp16_representable(scale: float, dtype: str) -> float:
    """The smallest fp16 value >= scale for 8- and 4-bit encodings (so no value leaves the range it was
    given); other types, and scales beyond fp16's range, are returned unchanged."""
    if dtype not in FP16_SCALE_DTYPES:
        return float(scale)
    return float(fp16_ceil(np.asarray([scale], dtype=np.float64))[0])


def fp16_ceil(scales: np.ndarray) -> np.ndarray:
    """fp16_representable for an array of scales (float64 out): each positive scale within fp16's range
    becomes the smallest fp16 value >= it; a scale below fp16's smallest subnormal becomes that subnormal."""
    scales = np.asarray(scales, dtype=np.float64)
    inside = (scales > 0.0) & (scales <= _FP16_MAX)
    half = np.where(inside, scales, 1.0).astype(np.float16)
    half = np.where(half.astype(np.float64) < scales, np.nextafter(half, np.float16(np.inf)), half)
    return np.where(inside, half.astype(np.float64), scales)


def fp16_bf16_ceil(scales: np.ndarray) -> np.ndarray:
    """The smallest value >= each scale that fp16 and bf16 both hold exactly (float64 out), for scales from
    fp16's smallest normal (2^-14) to its largest; larger ones come back unchanged. Blockwise INT4 scales are
    stored as fp16, and XNNPACK (the kernel that runs them) converts them to bf16 (round to nearest: measured
    on LiteRT 2.3): on both grids, every runtime multiplies by exactly the plan's scale."""
    f32 = np.asarray(scales, dtype=np.float64).astype(np.float32)
    f32 = np.where(f32.astype(np.float64) < scales, np.nextafter(f32, np.float32(np.inf)), f32)
    bf16 = ((f32.view(np.uint32).astype(np.uint64) + 0xFFFF) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return fp16_ceil(bf16.astype(np.float64))


def symmetric_weight_scales(w: np.ndarray, axis: int | None, qmax: int) -> np.ndarray:
    """max |w| / qmax per channel (or per tensor when axis is None), float64."""
    if axis is None:
        return np.asarray([np.max(np.abs(w)) / qmax], dtype=np.float64)
    moved = np.moveaxis(np.asarray(w, dtype=np.float64), axis, 0).reshape(w.shape[axis], -1)
    return np.max(np.abs(moved), axis=1) / qmax


def storage_dtype(dtype: str) -> np.dtype:
    """The numpy type holding a tensor's integers in memory: int4 values live in int8 arrays."""
    return np.dtype(np.int8) if dtype == "int4" else np.dtype(dtype)


def quantize_array(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray,
    axis: int,
    dtype: str,
    narrow: bool = False,
    block_size: int = 0,
) -> np.ndarray:
    """round(x / scale) + zero_point, clipped; per channel along `axis` when scale has several entries, or
    per block of `block_size` along the last axis of x (a 2-D FULLY_CONNECTED weight, a 4-D CONV_2D one;
    scales flattened row-major [leading axes][blocks]).
    `narrow` keeps weights in [-qmax, qmax] as the spec requires (int8 [-127, 127], int4 [-7, 7])."""
    x = np.asarray(x, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    zero_point = np.asarray(zero_point, dtype=np.int64)
    shape = x.shape
    if block_size:
        if x.ndim < 2 or shape[-1] % block_size or scale.size * block_size != x.size:
            raise PlanError(f"{scale.size} block scales of {block_size} do not tile a weight of shape {list(shape)}")
        x = x.reshape(-1, block_size)
        scale = scale.reshape(-1, 1)
        zero_point = zero_point.reshape(-1, 1)
    elif scale.size > 1:
        bshape = [1] * x.ndim
        bshape[axis] = -1
        scale = scale.reshape(bshape)
        zero_point = zero_point.reshape(bshape)
    qmin, qmax = qrange(dtype)
    if narrow:
        qmin = -qmax
    q = np.round(x / scale) + zero_point
    return np.clip(q, qmin, qmax).astype(storage_dtype(dtype)).reshape(shape)
