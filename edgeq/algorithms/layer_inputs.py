"""A weighted layer's inputs as the rows its weight multiplies: im2col patches for convolutions, feature rows
for fully connected layers, and their Gram matrices (X^T X), the second-order statistics GPTQ needs.

Kept apart from GPTQ so the patch geometry (TFLite SAME/VALID padding, stride, dilation) is tested once.
"""

from __future__ import annotations

import numpy as np

# TFLite's Padding enum.
SAME, VALID = 0, 1


def conv_geometry(options: dict, kh: int, kw: int, height: int, width: int) -> tuple[int, int, int, int, int, int]:
    """(out_h, out_w, pad_top, pad_bottom, pad_left, pad_right) of a TFLite convolution."""
    sh, sw = options.get("strideH", 1), options.get("strideW", 1)
    dh, dw = options.get("dilationHFactor", 1), options.get("dilationWFactor", 1)
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if options.get("padding", SAME) == VALID:
        return (height - ekh) // sh + 1, (width - ekw) // sw + 1, 0, 0, 0, 0
    out_h, out_w = -(-height // sh), -(-width // sw)
    pad_h = max((out_h - 1) * sh + ekh - height, 0)
    pad_w = max((out_w - 1) * sw + ekw - width, 0)
    return out_h, out_w, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2


def patches(x: np.ndarray, options: dict, kh: int, kw: int, positions: np.ndarray | None = None) -> np.ndarray:
    """[batch * positions, kh, kw, channels] input patches of an NHWC tensor, zero padded as TFLite pads, in
    the order a [out, kh, kw, in] conv weight (or a [1, kh, kw, C] depthwise one) is laid out. `positions`
    (flat indices into the out_h x out_w output grid) picks some output positions; all by default."""
    n, height, width, channels = x.shape
    out_h, out_w, top, bottom, left, right = conv_geometry(options, kh, kw, height, width)
    sh, sw = options.get("strideH", 1), options.get("strideW", 1)
    dh, dw = options.get("dilationHFactor", 1), options.get("dilationWFactor", 1)
    if positions is None:
        positions = np.arange(out_h * out_w)
    rows, cols = (positions // out_w) * sh, (positions % out_w) * sw
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out = np.empty((n, positions.size, kh, kw, channels), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i, j, :] = padded[:, rows + i * dh, cols + j * dw, :]
    return out.reshape(n * positions.size, kh, kw, channels)


def output_positions(options: dict, kh: int, kw: int, height: int, width: int) -> int:
    """How many output positions a convolution has."""
    out_h, out_w, *_ = conv_geometry(options, kh, kw, height, width)
    return out_h * out_w


def sample_positions(total: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most `limit` of `total` indices, sorted, drawn without replacement: bounds one sample's cost."""
    if limit <= 0 or total <= limit:
        return np.arange(total)
    return np.sort(rng.choice(total, limit, replace=False))


def gram(rows: np.ndarray) -> np.ndarray:
    """X^T X of [n, k] rows: one sample's rows multiplied in float32, returned float64 to sum over samples."""
    x = np.ascontiguousarray(rows, dtype=np.float32)
    return (x.T @ x).astype(np.float64)


def depthwise_gram(p: np.ndarray, multiplier: int) -> np.ndarray:
    """One [kh*kw, kh*kw] Gram matrix per depthwise output channel, from [n, kh, kw, C] patches of its
    input channel (output channel o reads input channel o // multiplier), float64."""
    n, kh, kw, channels = p.shape
    per_channel = np.ascontiguousarray(np.asarray(p, dtype=np.float32).reshape(n, kh * kw, channels).transpose(2, 1, 0))
    g = np.matmul(per_channel, per_channel.transpose(0, 2, 1)).astype(np.float64)  # [C, k, k]
    return np.repeat(g, multiplier, axis=0)
