/* What MEAN, SUM, REDUCE_MAX and REDUCE_MIN share: checking the op (constant int32 axes, possibly negative
 * or repeated, keep_dims, the stored output shape) and a plan that walks the input once in memory order.
 *
 * The plan drops size-1 dimensions and merges neighbours that are both reduced or both kept, so a global
 * average pool [N, H, W, C] -> [N, C] becomes rows of C contiguous values added into C accumulators, and a
 * reduction over the last axis becomes contiguous sums. The results equal LiteRT's index-by-index Reduce:
 * integer sums wrap the same way whatever the order, and max/min do not depend on it. */
#ifndef EDGEQ_KERNELS_REDUCE_COMMON_H_
#define EDGEQ_KERNELS_REDUCE_COMMON_H_

#include <stdio.h>

#include "../fixedpoint.h"


typedef struct eq_reduce_plan {
  int32_t ndim; /* merged dimensions: >= 1 when in_count > 0, else 0 */
  size_t dims[EQ_MAX_DIMS];
  int32_t reduced[EQ_MAX_DIMS];
  size_t out_stride[EQ_MAX_DIMS]; /* 0 along reduced dimensions */
  size_t in_count, out_count;
  int64_t reduce_count; /* input elements folded into each output: the product of the reduced dimensions */
} eq_reduce_plan;

/* LiteRT's TfLiteQuantizationParams: the scale and zero point of a per-tensor quantized tensor, 0 and 0 for
 * any other (absent or per-channel). */
static inline float eq_legacy_scale(const eq_tensor* t) { return t->nq == 1 ? t->scale[0] : 0.0f; }
static inline int32_t eq_legacy_zero_point(const eq_tensor* t) { return t->nq == 1 ? (int32_t)t->zero_point[0] : 0; }

/* Validates inputs (data, axes), the output and the options, and fills `plan`. Types are the caller's. */
static inline edgeq_status eq_reduce_prepare(eq_context* ctx, eq_node* node, eq_reduce_plan* plan) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* axes = eq_input(ctx, node, 1);
  const eq_tensor* output = eq_output(ctx, node, 0);
  if (input == NULL || axes == NULL || output == NULL || node->ninputs != 2 || node->noutputs != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (data, axes) and 1 output");
  }
  if (input->type != output->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input type %s and output type %s differ", eq_type_name(input->type),
                    eq_type_name(output->type));
  }
  if (axes->type != EQ_T_INT32) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axes are %s, not int32", eq_type_name(axes->type));
  if (!axes->is_constant) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "axes are not a constant tensor");

  /* Resolve the axes as LiteRT does: negative ones count from the end, repeats count once, and a scalar
   * input ignores them. */
  int32_t is_reduced[EQ_MAX_DIMS] = {0};
  const int32_t nd = input->ndim;
  if (nd > 0) {
    for (size_t i = 0; i < axes->count; ++i) {
      int64_t a = eq_const_int(axes, i);
      if (a < 0) a += nd;
      if (a < 0 || a >= nd) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %lld is out of range for %d dimensions",
                        (long long)eq_const_int(axes, i), (int)nd);
      }
      is_reduced[a] = 1;
    }
  }
  const int has = node->has_options; /* a mistyped table was dropped at load */
  const int keep_dims = has ? eq_opt_bool(node, 0, 0) : 0;

  /* The output shape LiteRT would give. */
  int32_t want[EQ_MAX_DIMS];
  int32_t want_nd = 0;
  for (int32_t d = 0; d < nd; ++d) {
    if (!is_reduced[d]) {
      want[want_nd++] = input->dims[d];
    } else if (keep_dims) {
      want[want_nd++] = 1;
    }
  }
  int same = output->ndim == want_nd;
  for (int32_t d = 0; same && d < want_nd; ++d) same = output->dims[d] == want[d];
  if (!same) {
    char text[12 * EQ_MAX_DIMS + 4];
    size_t at = 0;
    text[at++] = '[';
    for (int32_t d = 0; d < want_nd; ++d) {
      int n = snprintf(text + at, sizeof text - at, d ? ", %d" : "%d", (int)want[d]);
      if (n > 0) at += (size_t)n < sizeof text - at ? (size_t)n : sizeof text - at - 1;
    }
    snprintf(text + at, sizeof text - at, "]");
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape should be %s (keep_dims %d)", text, keep_dims);
  }

  plan->in_count = input->count;
  plan->out_count = output->count;
  plan->reduce_count = 0;
  plan->ndim = 0;
  if (input->count == 0) return EDGEQ_OK; /* nothing to walk (and the dimensions may be huge) */
  plan->reduce_count = 1;
  for (int32_t d = 0; d < nd; ++d) {
    if (is_reduced[d]) plan->reduce_count *= input->dims[d]; /* divides the element count: no overflow */
  }
  /* Merge: drop size-1 dimensions, join runs of the same kind. */
  for (int32_t d = 0; d < nd; ++d) {
    if (input->dims[d] == 1) continue;
    if (plan->ndim > 0 && plan->reduced[plan->ndim - 1] == is_reduced[d]) {
      plan->dims[plan->ndim - 1] *= (size_t)input->dims[d];
    } else {
      plan->dims[plan->ndim] = (size_t)input->dims[d];
      plan->reduced[plan->ndim] = is_reduced[d];
      plan->ndim++;
    }
  }
  if (plan->ndim == 0) { /* a single element */
    plan->ndim = 1;
    plan->dims[0] = 1;
    plan->reduced[0] = 0;
  }
  size_t stride = 1;
  for (int32_t d = plan->ndim - 1; d >= 0; --d) {
    plan->out_stride[d] = plan->reduced[d] ? 0 : stride;
    if (!plan->reduced[d]) stride *= plan->dims[d];
  }
  return EDGEQ_OK;
}

/* Walks the input as rows of its last merged dimension. For each row the caller reads
 * `in + row * inner` and folds it into the output starting at `it.out`: one accumulator when the last
 * dimension is reduced, `inner` consecutive ones when it is kept. */
typedef struct eq_reduce_iter {
  size_t idx[EQ_MAX_DIMS];
  size_t out;
} eq_reduce_iter;

static inline size_t eq_reduce_rows(const eq_reduce_plan* plan) {
  return plan->in_count == 0 ? 0 : plan->in_count / plan->dims[plan->ndim - 1];
}

static inline void eq_reduce_next(const eq_reduce_plan* plan, eq_reduce_iter* it) {
  for (int32_t d = plan->ndim - 2; d >= 0; --d) {
    it->out += plan->out_stride[d];
    if (++it->idx[d] < plan->dims[d]) return;
    it->out -= plan->out_stride[d] * plan->dims[d];
    it->idx[d] = 0;
  }
}

/* Defines NAME(plan, in, acc): folds every input element into acc (already initialized) with
 * FOLD(acc_lvalue, value). ACC is the accumulator type, T the input's. */
#define EQ_DEFINE_REDUCE_LOOP(NAME, T, ACC, FOLD)                                     \
  static void NAME(const eq_reduce_plan* plan, const T* in, ACC* acc) {              \
    if (plan->in_count == 0) return; /* no dimensions were planned */                \
    const size_t inner = plan->dims[plan->ndim - 1];                                 \
    const int last_reduced = plan->reduced[plan->ndim - 1];                          \
    const size_t rows = eq_reduce_rows(plan);                                        \
    eq_reduce_iter it = {{0}, 0};                                                    \
    for (size_t r = 0; r < rows; ++r, in += inner) {                                 \
      ACC* a = acc + it.out;                                                         \
      if (last_reduced) {                                                            \
        ACC v = *a;                                                                  \
        for (size_t j = 0; j < inner; ++j) FOLD(v, in[j]);                           \
        *a = v;                                                                      \
      } else {                                                                       \
        for (size_t j = 0; j < inner; ++j) FOLD(a[j], in[j]);                        \
      }                                                                              \
      eq_reduce_next(plan, &it);                                                     \
    }                                                                                \
  }

/* REDUCE_MAX / REDUCE_MIN: int8, uint8, int16 (whose output must carry the input's scale and zero point,
 * which LiteRT checks with exact equality), int32 and int64. */
static inline edgeq_status eq_reduce_minmax_prepare(eq_context* ctx, eq_node* node, eq_reduce_plan* plan) {
  edgeq_status s = eq_reduce_prepare(ctx, node, plan);
  if (s != EDGEQ_OK) return s;
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* output = eq_output(ctx, node, 0);
  switch (input->type) {
    case EQ_T_INT8:
    case EQ_T_UINT8:
    case EQ_T_INT16:
      if (eq_legacy_scale(input) != eq_legacy_scale(output) ||
          eq_legacy_zero_point(input) != eq_legacy_zero_point(output)) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED,
                        "output quantization (scale %g, zero point %d) differs from the input's (%g, %d)",
                        (double)eq_legacy_scale(output), (int)eq_legacy_zero_point(output),
                        (double)eq_legacy_scale(input), (int)eq_legacy_zero_point(input));
      }
      return EDGEQ_OK;
    case EQ_T_INT32:
    case EQ_T_INT64:
      return EDGEQ_OK;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s (int8, uint8, int16, int32 and int64 are supported)",
                      eq_type_name(input->type));
  }
}

#endif
