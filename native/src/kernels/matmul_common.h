/* Shared by FULLY_CONNECTED and BATCH_MATMUL: dot products that vectorize (contiguous rows, narrow
 * products summed in int32 lanes over chunks short enough never to overflow, chunks summed in int64),
 * LiteRT's zero-point-free "legacy" quantization parameters, and the float requantization of LiteRT's
 * reference FULLY_CONNECTED. */
#ifndef EDGEQ_KERNELS_MATMUL_COMMON_H_
#define EDGEQ_KERNELS_MATMUL_COMMON_H_

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../fixedpoint.h"

/* BATCH_MATMUL operands and output right-aligned to this rank. */
enum { BMM_RANK = 5 };

/* BATCH_MATMUL shapes as LiteRT checks them: ranks 2..5, read right-aligned into l and r; batch dimensions
 * broadcast into o[0..2]; the depths agree; o[3], o[4] are the output's rows and columns, and the output holds
 * o. Shared by the integer and the float kernel. */
static inline edgeq_status bmm_shapes(eq_context* ctx, const eq_tensor* lhs, const eq_tensor* rhs,
                                      const eq_tensor* output, int adj_x, int adj_y, int32_t l[BMM_RANK],
                                      int32_t r[BMM_RANK], int32_t o[BMM_RANK]) {
  if (lhs->ndim < 2 || lhs->ndim > BMM_RANK || rhs->ndim < 2 || rhs->ndim > BMM_RANK) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "ranks %d and %d (LiteRT supports 2 to 5)", (int)lhs->ndim,
                    (int)rhs->ndim);
  }
  for (int i = 0; i < BMM_RANK; ++i) {
    l[i] = eq_dim(lhs, i - BMM_RANK);
    r[i] = eq_dim(rhs, i - BMM_RANK);
  }
  for (int i = 0; i < BMM_RANK - 2; ++i) {
    if (l[i] != r[i] && l[i] != 1 && r[i] != 1) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "batch dimensions %d and %d do not broadcast", (int)l[i], (int)r[i]);
    }
    o[i] = (l[i] != r[i] && l[i] == 1) ? r[i] : l[i];
  }
  const int32_t depth_l = adj_x ? l[3] : l[4], depth_r = adj_y ? r[4] : r[3];
  if (depth_l != depth_r) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "LHS depth %d differs from RHS depth %d", (int)depth_l, (int)depth_r);
  }
  o[3] = adj_x ? l[4] : l[3];
  o[4] = adj_y ? r[3] : r[4];
  const int32_t out_rank = lhs->ndim > rhs->ndim ? lhs->ndim : rhs->ndim;
  int same = output->ndim == out_rank;
  for (int32_t i = 0; same && i < out_rank; ++i) same = output->dims[i] == o[BMM_RANK - out_rank + i];
  if (!same) {
    char buf[96];
    size_t n = 0;
    for (int32_t i = 0; i < out_rank; ++i) {
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d", i ? "," : "", (int)o[BMM_RANK - out_rank + i]);
    }
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output '%s' should have shape [%s]", output->name, buf);
  }
  return EDGEQ_OK;
}

/* Activations are widened to int16 first (once per row): gcc turns int16 x int8 sums into pmaddwd, int8 x
 * int8 ones it does not. A chunk's int32 sum must not overflow: |a*b| <= 2^14 when `a` holds int8 values,
 * < 2^16 for uint8 x uint8, <= 2^22 for genuine int16 x int8, so chunks keep every partial sum below 2^30. */
#define MM_CHUNK_NARROW_S8 65536
#define MM_CHUNK_NARROW_U8 16384
#define MM_CHUNK_S16 256

/* sum a[k]*b[k], a holding values of int8 range (widened to int16), b int8. */
static inline int64_t mm_dot_s8wide_s8(const int16_t* a, const int8_t* b, size_t n) {
  int64_t total = 0;
  while (n > 0) {
    const size_t m = n < MM_CHUNK_NARROW_S8 ? n : MM_CHUNK_NARROW_S8;
    int32_t acc = 0;
    for (size_t k = 0; k < m; ++k) acc += (int32_t)a[k] * (int32_t)b[k];
    total += acc;
    a += m;
    b += m;
    n -= m;
  }
  return total;
}

/* a holding uint8 values (widened to int16), b uint8. */
static inline int64_t mm_dot_u8wide_u8(const int16_t* a, const uint8_t* b, size_t n) {
  int64_t total = 0;
  while (n > 0) {
    const size_t m = n < MM_CHUNK_NARROW_U8 ? n : MM_CHUNK_NARROW_U8;
    int32_t acc = 0;
    for (size_t k = 0; k < m; ++k) acc += (int32_t)a[k] * (int32_t)b[k];
    total += acc;
    a += m;
    b += m;
    n -= m;
  }
  return total;
}

static inline int64_t mm_dot_s16s8(const int16_t* a, const int8_t* b, size_t n) {
  int64_t total = 0;
  while (n > 0) {
    const size_t m = n < MM_CHUNK_S16 ? n : MM_CHUNK_S16;
    int32_t acc = 0;
    for (size_t k = 0; k < m; ++k) acc += (int32_t)a[k] * (int32_t)b[k];
    total += acc;
    a += m;
    b += m;
    n -= m;
  }
  return total;
}

/* |int16*int16| <= 2^30: two of them can overflow int32, so the sum is int64. */
static inline int64_t mm_dot_s16s16(const int16_t* a, const int16_t* b, size_t n) {
  int64_t total = 0;
  for (size_t k = 0; k < n; ++k) total += (int32_t)a[k] * (int32_t)b[k];
  return total;
}

/* Four dot products of `a` with four consecutive rows of `b` (row stride `stride`): each `a` value is
 * loaded once for four rows, about 1.5x faster than four single dots. Same chunking as above. */
#define MM_DEFINE_DOT4(name, TA, TB, CHUNK)                                                        \
  static inline void name(const int16_t* a, const TB* b, size_t stride, size_t n, int64_t out[4]) { \
    const TB* b0 = b;                                                                              \
    const TB* b1 = b + stride;                                                                     \
    const TB* b2 = b + 2 * stride;                                                                 \
    const TB* b3 = b + 3 * stride;                                                                 \
    out[0] = out[1] = out[2] = out[3] = 0;                                                         \
    for (size_t k0 = 0; k0 < n; k0 += (CHUNK)) {                                                   \
      const size_t m = n - k0 < (CHUNK) ? n - k0 : (CHUNK);                                        \
      int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                      \
      for (size_t k = k0; k < k0 + m; ++k) {                                                       \
        const int32_t x = (TA)a[k];                                                                \
        s0 += x * (int32_t)b0[k];                                                                  \
        s1 += x * (int32_t)b1[k];                                                                  \
        s2 += x * (int32_t)b2[k];                                                                  \
        s3 += x * (int32_t)b3[k];                                                                  \
      }                                                                                            \
      out[0] += s0;                                                                                \
      out[1] += s1;                                                                                \
      out[2] += s2;                                                                                \
      out[3] += s3;                                                                                \
    }                                                                                              \
  }

MM_DEFINE_DOT4(mm_dot4_s8wide_s8, int32_t, int8_t, MM_CHUNK_NARROW_S8)
MM_DEFINE_DOT4(mm_dot4_u8wide_u8, int32_t, uint8_t, MM_CHUNK_NARROW_U8)
MM_DEFINE_DOT4(mm_dot4_s16s8, int32_t, int8_t, MM_CHUNK_S16)

static inline void mm_widen_s8(const int8_t* src, int16_t* dst, size_t n) {
  for (size_t k = 0; k < n; ++k) dst[k] = src[k];
}

static inline void mm_widen_u8(const uint8_t* src, int16_t* dst, size_t n) {
  for (size_t k = 0; k < n; ++k) dst[k] = src[k];
}

static inline int64_t mm_sum_s8(const int8_t* a, size_t n) {
  int64_t total = 0;
  for (size_t k = 0; k < n; ++k) total += a[k];
  return total;
}

static inline int64_t mm_sum_u8(const uint8_t* a, size_t n) {
  int64_t total = 0;
  for (size_t k = 0; k < n; ++k) total += a[k];
  return total;
}

static inline int64_t mm_sum_s16(const int16_t* a, size_t n) {
  int64_t total = 0;
  for (size_t k = 0; k < n; ++k) total += a[k];
  return total;
}

/* LiteRT's TfLiteTensor::params: the scale and zero point of a per-tensor quantized tensor, 0 and 0 for a
 * per-channel (or unquantized) one. Kernels that read params see per-channel tensors that way. */
static inline float mm_legacy_scale(const eq_tensor* t) { return t->nq == 1 ? t->scale[0] : 0.0f; }
static inline int64_t mm_legacy_zero_point(const eq_tensor* t) { return t->nq == 1 ? t->zero_point[0] : 0; }

/* Two's-complement int32 arithmetic, as LiteRT's int32 accumulators and offsets wrap in practice. */
static inline int32_t mm_wrap32(uint32_t x) { return (int32_t)x; }
static inline int32_t mm_add_wrap32(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t mm_sub_wrap32(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* static_cast<int32_t>(round(acc * scale)) as x86-64 executes it: cvttsd2si gives INT32_MIN for NaN and
 * for values outside int32. */
static inline int32_t mm_round_scale(double acc, double scale) {
  const double r = round(acc * scale);
  if (!(r >= -2147483648.0 && r < 2147483648.0)) return INT32_MIN;
  return (int32_t)r;
}

/* std::max then std::min, in that order: a lower bound above the upper one yields the upper one. */
static inline int32_t mm_clamp(int32_t v, int32_t lo, int32_t hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

/* Copies a rows x cols matrix of `size`-byte elements to its cols x rows transpose. */
static inline void mm_transpose(const uint8_t* src, uint8_t* dst, size_t rows, size_t cols, size_t size) {
  if (size == 1) {
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
    }
  } else {
    const int16_t* s = (const int16_t*)(const void*)src;
    int16_t* d = (int16_t*)(void*)dst;
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) d[c * rows + r] = s[r * cols + c];
    }
  }
}

#endif
