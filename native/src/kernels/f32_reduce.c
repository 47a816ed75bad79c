/* float32 reductions, SOFTMAX and pooling as LiteRT's reference kernels compute them. MEAN and SUM add
 * each input value into its output's float accumulator in memory order (reference ReduceSumImpl /
 * ReduceGeneric walk the input that way; the reduce plan walks it in the same order), MEAN then divides by
 * the reduced count. SOFTMAX: max, then exp((x - max) * beta) summed in float, then each divided by the
 * sum. AVERAGE_POOL_2D: the in-image part of each window summed row by row, divided by its size. */
#include <string.h>

#include "f32_common.h"
#include "pool_common.h"
#include "reduce_common.h"

typedef struct f32_reduce {
  eq_reduce_plan plan;
} f32_reduce;

static edgeq_status reduce_prepare(eq_context* ctx, eq_node* node) {
  f32_reduce* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  edgeq_status s = eq_reduce_prepare(ctx, node, &d->plan);
  if (s != EDGEQ_OK) return s;
  return f32_check_types(ctx, node, 1u << 1);
}

#define F32_FOLD_ADD(acc, v) ((acc) += (v))
#define F32_FOLD_MAX(acc, v) ((acc) = (v) > (acc) ? (v) : (acc))
EQ_DEFINE_REDUCE_LOOP(f32_sum_loop, float, float, F32_FOLD_ADD)
EQ_DEFINE_REDUCE_LOOP(f32_max_loop, float, float, F32_FOLD_MAX)

static void fill(float* y, size_t n, float v) {
  for (size_t i = 0; i < n; ++i) y[i] = v;
}

static edgeq_status sum_invoke(eq_context* ctx, eq_node* node) {
  const f32_reduce* d = node->user;
  eq_tensor* out = eq_output(ctx, node, 0);
  fill((float*)out->data, out->count, 0.0f);
  f32_sum_loop(&d->plan, (const float*)eq_input(ctx, node, 0)->data, (float*)out->data);
  return EDGEQ_OK;
}

static edgeq_status mean_invoke(eq_context* ctx, eq_node* node) {
  const f32_reduce* d = node->user;
  eq_tensor* out = eq_output(ctx, node, 0);
  float* y = (float*)out->data;
  fill(y, out->count, 0.0f);
  if (d->plan.in_count == 0) return EDGEQ_OK; /* LiteRT writes 0 for an empty input */
  f32_sum_loop(&d->plan, (const float*)eq_input(ctx, node, 0)->data, y);
  const float n = (float)d->plan.reduce_count;
  for (size_t i = 0; i < out->count; ++i) y[i] = y[i] / n;
  return EDGEQ_OK;
}

static edgeq_status max_invoke(eq_context* ctx, eq_node* node) {
  const f32_reduce* d = node->user;
  eq_tensor* out = eq_output(ctx, node, 0);
  fill((float*)out->data, out->count, -FLT_MAX);
  f32_max_loop(&d->plan, (const float*)eq_input(ctx, node, 0)->data, (float*)out->data);
  return EDGEQ_OK;
}

/* ---- SOFTMAX over the last dimension ---- */

typedef struct f32_softmax {
  size_t rows, depth;
  float beta;
} f32_softmax;

static edgeq_status softmax_prepare(eq_context* ctx, eq_node* node) {
  const eq_tensor* in = eq_input(ctx, node, 0);
  const eq_tensor* out = eq_output(ctx, node, 0);
  if (node->ninputs != 1 || node->noutputs != 1 || in == NULL || out == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  edgeq_status s = f32_check_types(ctx, node, 0);
  if (s != EDGEQ_OK) return s;
  if (!eq_same_shape(in, out) || in->ndim < 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape differs from input shape (or the input is a scalar)");
  }
  f32_softmax* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  d->depth = (size_t)in->dims[in->ndim - 1];
  d->rows = d->depth == 0 ? 0 : in->count / d->depth;
  d->beta = eq_opt_f32(node, 0, 0.0f);
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status softmax_invoke(eq_context* ctx, eq_node* node) {
  const f32_softmax* d = node->user;
  const float* x = (const float*)eq_input(ctx, node, 0)->data;
  float* y = (float*)eq_output(ctx, node, 0)->data;
  for (size_t r = 0; r < d->rows; ++r, x += d->depth, y += d->depth) {
    float max = -FLT_MAX;
    for (size_t c = 0; c < d->depth; ++c) max = max < x[c] ? x[c] : max;
    float sum = 0.0f;
    for (size_t c = 0; c < d->depth; ++c) {
      y[c] = expf((x[c] - max) * d->beta);
      sum += y[c];
    }
    for (size_t c = 0; c < d->depth; ++c) y[c] = y[c] / sum;
  }
  return EDGEQ_OK;
}

/* ---- AVERAGE_POOL_2D and MAX_POOL_2D ---- */

typedef struct f32_pool {
  eq_pool_params p;
  f32_range range;
} f32_pool;

static edgeq_status pool_prepare(eq_context* ctx, eq_node* node) {
  f32_pool* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  int32_t activation = EQ_ACT_NONE;
  edgeq_status s = eq_pool_geometry(ctx, node, &d->p, &activation);
  if (s != EDGEQ_OK || (s = f32_check_types(ctx, node, 0)) != EDGEQ_OK) return s;
  if ((s = f32_activation(ctx, activation, &d->range)) != EDGEQ_OK) return s;
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status pool_invoke(eq_context* ctx, eq_node* node, int average) {
  const f32_pool* d = node->user;
  const eq_pool_params* p = &d->p;
  const float* in = (const float*)eq_input(ctx, node, 0)->data;
  float* out = (float*)eq_output(ctx, node, 0)->data;
  const size_t C = (size_t)p->channels;
  for (int32_t b = 0; b < p->batches; ++b) {
    const float* image = in + (size_t)b * (size_t)p->in_h * (size_t)p->in_w * C;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
      int32_t y0, y1;
      eq_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, p->in_h, &y0, &y1);
      for (int32_t ox = 0; ox < p->out_w; ++ox, out += C) {
        int32_t x0, x1;
        eq_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, p->in_w, &x0, &x1);
        const int32_t count = (y1 - y0) * (x1 - x0);
        if (average && count == 0) {
          return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "an average pool window lies outside the image");
        }
        fill(out, C, average ? 0.0f : -FLT_MAX);
        for (int32_t y = y0; y < y1; ++y) {
          const float* row = image + ((size_t)y * (size_t)p->in_w + (size_t)x0) * C;
          for (int32_t x = x0; x < x1; ++x, row += C) {
            if (average) {
              for (size_t c = 0; c < C; ++c) out[c] += row[c];
            } else {
              for (size_t c = 0; c < C; ++c) out[c] = out[c] < row[c] ? row[c] : out[c];
            }
          }
        }
        for (size_t c = 0; c < C; ++c) out[c] = f32_clamp(average ? out[c] / (float)count : out[c], &d->range);
      }
    }
  }
  return EDGEQ_OK;
}

static edgeq_status average_pool_invoke(eq_context* ctx, eq_node* node) { return pool_invoke(ctx, node, 1); }
static edgeq_status max_pool_invoke(eq_context* ctx, eq_node* node) { return pool_invoke(ctx, node, 0); }

const eq_kernel eq_kernel_f32_mean = {reduce_prepare, mean_invoke};
const eq_kernel eq_kernel_f32_sum = {reduce_prepare, sum_invoke};
const eq_kernel eq_kernel_f32_reduce_max = {reduce_prepare, max_invoke};
const eq_kernel eq_kernel_f32_softmax = {softmax_prepare, softmax_invoke};
const eq_kernel eq_kernel_f32_average_pool_2d = {pool_prepare, average_pool_invoke};
const eq_kernel eq_kernel_f32_max_pool_2d = {pool_prepare, max_pool_invoke};
