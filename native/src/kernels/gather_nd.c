/* GATHER_ND: indices [..., K] (INT16/INT32/INT64) pick slices params[i0, ..., iK-1, :] of any copyable type;
 * output shape indices.shape[:-1] + params.shape[K:]. An index outside its dimension is an invoke-time
 * EDGEQ_ERROR_RUNTIME, as LiteRT's reference kernel fails the invoke. */
#include "movement.h"

typedef struct gather_nd_data {
  size_t slices, depth, slice_bytes;
  size_t dims[EQ_MAX_DIMS], strides[EQ_MAX_DIMS]; /* the first `depth` params dimensions, in slices */
} gather_nd_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  const eq_tensor* params = eq_input(ctx, node, 0);
  const eq_tensor* indices = eq_input(ctx, node, 1);
  const eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || params == NULL || indices == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (params, indices) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, params, MV_COPY_TYPES, "params");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, params, output, "params", "output");
  if (s == EDGEQ_OK) s = mv_check_type(ctx, indices, MV_T(EQ_T_INT16) | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64), "indices");
  if (s != EDGEQ_OK) return s;
  if (indices->ndim < 1 || params->ndim < 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "params and indices need at least one dimension");
  }
  const int32_t depth = indices->dims[indices->ndim - 1];
  if (depth < 1 || depth > params->ndim) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "index depth %d does not fit rank-%d params", (int)depth,
                    (int)params->ndim);
  }
  const int32_t out_ndim = indices->ndim - 1 + params->ndim - depth;
  if (out_ndim > EQ_MAX_DIMS) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "the output would have rank %d", (int)out_ndim);
  }
  int64_t shape[EQ_MAX_DIMS];
  int32_t k = 0;
  for (int32_t i = 0; i < indices->ndim - 1; ++i) shape[k++] = indices->dims[i];
  for (int32_t i = depth; i < params->ndim; ++i) shape[k++] = params->dims[i];
  if ((s = mv_expect_shape(ctx, output, out_ndim, shape, "output")) != EDGEQ_OK) return s;
  gather_nd_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  d->depth = (size_t)depth;
  d->slices = indices->count / (size_t)depth;
  d->slice_bytes = mv_inner(params, depth - 1) * eq_type_size(params->type);
  size_t stride = 1;
  for (int32_t i = depth - 1; i >= 0; --i) {
    d->dims[i] = (size_t)params->dims[i];
    d->strides[i] = stride;
    stride *= d->dims[i];
  }
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const gather_nd_data* d = node->user;
  const eq_tensor* params = eq_input(ctx, node, 0);
  const eq_tensor* indices = eq_input(ctx, node, 1);
  uint8_t* out = eq_output(ctx, node, 0)->data;
  for (size_t i = 0; i < indices->count; ++i) {
    const int64_t v = mv_index_at(indices, i);
    if (v < 0 || (uint64_t)v >= d->dims[i % d->depth]) {
      return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "index %lld (element %zu) is outside [0, %zu)", (long long)v, i,
                      d->dims[i % d->depth]);
    }
  }
  if (d->slice_bytes == 0) return EDGEQ_OK;
  for (size_t s = 0; s < d->slices; ++s, out += d->slice_bytes) {
    size_t slice = 0;
    for (size_t j = 0; j < d->depth; ++j) slice += (size_t)mv_index_at(indices, s * d->depth + j) * d->strides[j];
    memcpy(out, params->data + slice * d->slice_bytes, d->slice_bytes);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_gather_nd = {prepare, invoke};
