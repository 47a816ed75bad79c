/* GATHER along `axis` with `batch_dims`, INT16/INT32/INT64 indices. An index outside [0, axis size) is
 * an invoke-time EDGEQ_ERROR_RUNTIME (LiteRT fails the invoke too); constant indices are checked at
 * prepare. Nothing is read before every index has been checked. */
#include "movement.h"

enum { GATHER_AXIS = 0, GATHER_BATCH_DIMS = 1 };

typedef struct gather_data {
  size_t batch, outer, coords, inner_bytes, axis_size;
} gather_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* positions = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || input == NULL || positions == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (params, indices) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_COPY_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_type(ctx, positions, MV_T(EQ_T_INT16) | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64), "indices");
  if (s != EDGEQ_OK) return s;
  int32_t axis = eq_opt_i32(node, GATHER_AXIS, 0), batch_dims = eq_opt_i32(node, GATHER_BATCH_DIMS, 0);
  if (axis < 0) axis += input->ndim;
  if (batch_dims < 0) batch_dims += positions->ndim;
  if (axis < 0 || axis >= input->ndim || batch_dims < 0 || batch_dims > axis || batch_dims > positions->ndim) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %d and batch_dims %d do not fit a rank-%d input and rank-%d "
                    "indices", (int)eq_opt_i32(node, GATHER_AXIS, 0), (int)eq_opt_i32(node, GATHER_BATCH_DIMS, 0),
                    (int)input->ndim, (int)positions->ndim);
  }
  for (int32_t i = 0; i < batch_dims; ++i) {
    if (input->dims[i] != positions->dims[i]) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "batch dimension %d differs between input and indices", (int)i);
    }
  }
  const int32_t out_ndim = input->ndim + positions->ndim - 1 - batch_dims;
  if (out_ndim > EQ_MAX_DIMS) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "the output would have rank %d", (int)out_ndim);
  int64_t shape[EQ_MAX_DIMS];
  int32_t k = 0;
  for (int32_t i = 0; i < axis; ++i) shape[k++] = input->dims[i];
  for (int32_t i = batch_dims; i < positions->ndim; ++i) shape[k++] = positions->dims[i];
  for (int32_t i = axis + 1; i < input->ndim; ++i) shape[k++] = input->dims[i];
  if ((s = mv_expect_shape(ctx, output, out_ndim, shape, "output")) != EDGEQ_OK) return s;

  gather_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->batch = mv_outer(input, batch_dims);
  data->outer = 1;
  for (int32_t i = batch_dims; i < axis; ++i) data->outer *= (size_t)input->dims[i];
  data->coords = 1;
  for (int32_t i = batch_dims; i < positions->ndim; ++i) data->coords *= (size_t)positions->dims[i];
  data->inner_bytes = mv_inner(input, axis) * eq_type_size(input->type);
  data->axis_size = (size_t)input->dims[axis];
  if (positions->is_constant) {
    for (size_t i = 0; i < positions->count; ++i) {
      const int64_t v = mv_index_at(positions, i);
      if (v < 0 || (uint64_t)v >= data->axis_size) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "constant index %lld (element %zu) is outside [0, %zu)",
                        (long long)v, i, data->axis_size);
      }
    }
  }
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const gather_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* positions = eq_input(ctx, node, 1);
  uint8_t* out = eq_output(ctx, node, 0)->data;
  for (size_t i = 0; i < positions->count; ++i) {
    const int64_t v = mv_index_at(positions, i);
    if (v < 0 || (uint64_t)v >= d->axis_size) {
      return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "index %lld (element %zu) is outside [0, %zu)", (long long)v, i,
                      d->axis_size);
    }
  }
  if (d->inner_bytes == 0) return EDGEQ_OK;
  for (size_t b = 0; b < d->batch; ++b) {
    for (size_t o = 0; o < d->outer; ++o) {
      const uint8_t* in = input->data + (b * d->outer + o) * d->axis_size * d->inner_bytes;
      for (size_t i = 0; i < d->coords; ++i) {
        const size_t c = (size_t)mv_index_at(positions, b * d->coords + i);
        memcpy(out, in + c * d->inner_bytes, d->inner_bytes);
        out += d->inner_bytes;
      }
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_gather = {prepare, invoke};
