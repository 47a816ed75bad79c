/* Helpers shared by the shape and data movement kernels (SQUEEZE, PAD, TRANSPOSE, CONCATENATION, SPLIT,
 * STRIDED_SLICE, GATHER, RESIZE_*, ...): type checks, LiteRT's legacy per-tensor quantization params,
 * stored-shape checks, and the row-of-pieces copy that CONCATENATION, SPLIT, PACK and UNPACK reduce to. */
#ifndef EDGEQ_KERNELS_MOVEMENT_H_
#define EDGEQ_KERNELS_MOVEMENT_H_

#include <stdio.h>
#include <string.h>

#include "../internal.h"

/* Sets of tensor types, as bit masks of TFLite type numbers. */
#define MV_T(type) (1u << (type))
#define MV_QUANT_TYPES (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_INT16))
#define MV_COPY_TYPES                                                                                      \
  (MV_QUANT_TYPES | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64) | MV_T(EQ_T_BOOL) | MV_T(EQ_T_FLOAT32))

static inline edgeq_status mv_check_type(eq_context* ctx, const eq_tensor* t, uint32_t allowed, const char* role) {
  if (t->type < 0 || t->type > 31 || !(allowed & MV_T(t->type))) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' has type %s, which this op does not support", role,
                    t->name, eq_type_name(t->type));
  }
  return EDGEQ_OK;
}

static inline edgeq_status mv_check_same_type(eq_context* ctx, const eq_tensor* a, const eq_tensor* b,
                                              const char* role_a, const char* role_b) {
  if (a->type != b->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s '%s' is %s but %s '%s' is %s", role_a, a->name,
                    eq_type_name(a->type), role_b, b->name, eq_type_name(b->type));
  }
  return EDGEQ_OK;
}

/* Element i of an INT16/INT32/INT64 index tensor (GATHER, GATHER_ND). */
static inline int64_t mv_index_at(const eq_tensor* t, size_t i) {
  switch (t->type) {
    case EQ_T_INT16:
      return ((const int16_t*)(const void*)t->data)[i];
    case EQ_T_INT32:
      return ((const int32_t*)(const void*)t->data)[i];
    default:
      return ((const int64_t*)(const void*)t->data)[i];
  }
}

/* The legacy TfLiteQuantizationParams LiteRT's kernels compare: scale and zero point of a per-tensor
 * quantized tensor, 0 and 0 for an unquantized one. Per-channel activations are refused by the callers
 * that compare them (mv_check_per_tensor). */
static inline float mv_scale(const eq_tensor* t) { return t->nq == 1 ? t->scale[0] : 0.0f; }
static inline int32_t mv_zero_point(const eq_tensor* t) { return t->nq == 1 ? (int32_t)t->zero_point[0] : 0; }

static inline edgeq_status mv_check_per_tensor(eq_context* ctx, const eq_tensor* t, const char* role) {
  if (t->nq > 1) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' is quantized per channel; this op needs per-tensor "
                    "quantization", role, t->name);
  }
  return EDGEQ_OK;
}

/* LiteRT's `a->params.scale == b->params.scale && zero points equal` checks. */
static inline edgeq_status mv_check_same_quant(eq_context* ctx, const eq_tensor* a, const eq_tensor* b,
                                               const char* role_a, const char* role_b) {
  edgeq_status s = mv_check_per_tensor(ctx, a, role_a);
  if (s == EDGEQ_OK) s = mv_check_per_tensor(ctx, b, role_b);
  if (s != EDGEQ_OK) return s;
  if (mv_scale(a) != mv_scale(b) || mv_zero_point(a) != mv_zero_point(b)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED,
                    "%s '%s' (scale %g, zero point %d) and %s '%s' (scale %g, zero point %d) must share "
                    "quantization",
                    role_a, a->name, (double)mv_scale(a), (int)mv_zero_point(a), role_b, b->name,
                    (double)mv_scale(b), (int)mv_zero_point(b));
  }
  return EDGEQ_OK;
}

static inline void mv_format_shape(char* buf, size_t size, int32_t ndim, const int64_t* dims) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, size - n, "[");
  for (int32_t i = 0; i < ndim && n < size; ++i) {
    n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (long long)dims[i]);
  }
  if (n < size) snprintf(buf + n, size - n, "]");
}

/* The stored shape must be what the op produces (edgeq does no shape inference). */
static inline edgeq_status mv_expect_shape(eq_context* ctx, const eq_tensor* t, int32_t ndim, const int64_t* dims,
                                           const char* role) {
  int same = t->ndim == ndim;
  for (int32_t i = 0; same && i < ndim; ++i) same = (int64_t)t->dims[i] == dims[i];
  if (same) return EDGEQ_OK;
  char want[160], have[160];
  int64_t stored[EQ_MAX_DIMS];
  for (int32_t i = 0; i < t->ndim; ++i) stored[i] = t->dims[i];
  mv_format_shape(want, sizeof want, ndim, dims);
  mv_format_shape(have, sizeof have, t->ndim, stored);
  return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s '%s' is stored with shape %s but the op produces %s", role,
                  t->name, have, want);
}

/* A constant INT32/INT64 index tensor with `count` elements (for axes, paddings, sizes). */
static inline edgeq_status mv_check_const_ints(eq_context* ctx, const eq_tensor* t, const char* role, int allow_int64) {
  if (t->type != EQ_T_INT32 && !(allow_int64 && t->type == EQ_T_INT64)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' has type %s; it must be INT32%s", role, t->name,
                    eq_type_name(t->type), allow_int64 ? " or INT64" : "");
  }
  if (!t->is_constant || t->data == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' is not a constant tensor", role, t->name);
  }
  return EDGEQ_OK;
}

/* Elements before and after `axis` in a row-major shape. */
static inline size_t mv_outer(const eq_tensor* t, int32_t axis) {
  size_t n = 1;
  for (int32_t i = 0; i < axis && i < t->ndim; ++i) n *= (size_t)t->dims[i];
  return n;
}
static inline size_t mv_inner(const eq_tensor* t, int32_t axis) {
  size_t n = 1;
  for (int32_t i = axis + 1; i < t->ndim; ++i) n *= (size_t)t->dims[i];
  return n;
}

/* Writes `count` copies of the `elem`-byte value at dst. */
static inline void mv_fill(uint8_t* dst, size_t count, const uint8_t* value, size_t elem) {
  if (count == 0) return;
  if (elem == 1) {
    memset(dst, value[0], count);
    return;
  }
  memcpy(dst, value, elem);
  for (size_t done = 1; done < count;) {
    const size_t n = done < count - done ? done : count - done;
    memcpy(dst + done * elem, dst, n * elem);
    done += n;
  }
}

/* A strided walk over the input that produces the output in row-major order: output index (i0, i1, ...)
 * reads input element base + sum(ik * strides[k]). TRANSPOSE and STRIDED_SLICE are such walks. */
typedef struct mv_walk {
  int32_t ndim;
  size_t dims[EQ_MAX_DIMS];
  int64_t strides[EQ_MAX_DIMS]; /* in elements; negative walks backwards */
  int64_t base;
} mv_walk;

/* Drops size-1 dimensions and merges neighbours that are contiguous in the input, so the inner loop
 * runs as long (and as often as a memcpy) as possible. A walk with no elements keeps a 0 dimension. */
static inline void mv_walk_simplify(mv_walk* w) {
  int32_t n = 0;
  for (int32_t k = 0; k < w->ndim; ++k) {
    if (w->dims[k] == 0) {
      w->ndim = 1;
      w->dims[0] = 0;
      w->strides[0] = 1;
      return;
    }
    if (w->dims[k] == 1) continue;
    if (n > 0 && w->strides[n - 1] == w->strides[k] * (int64_t)w->dims[k]) {
      w->dims[n - 1] *= w->dims[k];
      w->strides[n - 1] = w->strides[k];
      continue;
    }
    w->dims[n] = w->dims[k];
    w->strides[n] = w->strides[k];
    ++n;
  }
  w->ndim = n;
}

#define MV_WALK_INNER(T)                                                            \
  do {                                                                              \
    const T* src = (const T*)(const void*)in + off;                                 \
    T* dst = (T*)(void*)out + o;                                                    \
    for (size_t j = 0; j < len; ++j) dst[j] = src[(int64_t)j * step];              \
  } while (0)

static inline void mv_walk_copy(const mv_walk* w, const uint8_t* in, uint8_t* out, size_t elem) {
  if (w->ndim == 0) {
    memcpy(out, in + w->base * (int64_t)elem, elem);
    return;
  }
  const int32_t last = w->ndim - 1;
  const size_t len = w->dims[last];
  const int64_t step = w->strides[last];
  if (len == 0) return;
  size_t idx[EQ_MAX_DIMS] = {0};
  int64_t off = w->base;
  for (size_t o = 0;;) {
    if (step == 1) {
      memcpy(out + o * elem, in + off * (int64_t)elem, len * elem);
    } else {
      switch (elem) {
        case 1: MV_WALK_INNER(uint8_t); break;
        case 2: MV_WALK_INNER(uint16_t); break;
        case 4: MV_WALK_INNER(uint32_t); break;
        default: MV_WALK_INNER(uint64_t); break;
      }
    }
    o += len;
    int32_t k = last - 1;
    for (; k >= 0; --k) {
      off += w->strides[k];
      if (++idx[k] < w->dims[k]) break;
      off -= w->strides[k] * (int64_t)w->dims[k];
      idx[k] = 0;
    }
    if (k < 0) return;
  }
}

/* CONCATENATION and PACK: output row k is piece 0 row k, piece 1 row k, ...; piece_bytes[i] is the size
 * of one row of input i. */
static inline void mv_concat_rows(eq_context* ctx, const eq_node* node, size_t outer, const size_t* piece_bytes,
                                  uint8_t* out) {
  for (size_t k = 0; k < outer; ++k) {
    for (int32_t i = 0; i < node->ninputs; ++i) {
      const size_t n = piece_bytes[i];
      if (n) memcpy(out, eq_input(ctx, node, i)->data + k * n, n);
      out += n;
    }
  }
}

/* SPLIT, SPLIT_V and UNPACK: the inverse of mv_concat_rows, over the node's outputs. */
static inline void mv_split_rows(eq_context* ctx, const eq_node* node, size_t outer, const size_t* piece_bytes,
                                 const uint8_t* in) {
  for (size_t k = 0; k < outer; ++k) {
    for (int32_t i = 0; i < node->noutputs; ++i) {
      const size_t n = piece_bytes[i];
      if (n) memcpy(eq_output(ctx, node, i)->data + k * n, in, n);
      in += n;
    }
  }
}

#endif
