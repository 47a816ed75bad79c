/* SLICE: the box [begin, begin + size) of the input (size -1: to the end), begin and size constant
 * INT32/INT64 vectors with one entry per input dimension. */
#include "movement.h"

typedef struct slice_data {
  mv_walk walk;
  size_t elem;
} slice_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* begin = eq_input(ctx, node, 1);
  eq_tensor* size = eq_input(ctx, node, 2);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 3 || node->noutputs != 1 || input == NULL || begin == NULL || size == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 3 inputs (input, begin, size) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_COPY_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, begin, "begin", 1);
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, size, "size", 1);
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, begin, size, "begin", "size"); /* LiteRT reads both as begin's type */
  if (s != EDGEQ_OK) return s;
  const int32_t n = input->ndim;
  if (begin->ndim != 1 || size->ndim != 1 || begin->count != (size_t)n || size->count != (size_t)n) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "begin and size must have shape [%d]", (int)n);
  }
  slice_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  int64_t shape[EQ_MAX_DIMS], stride = 1;
  mv_walk* w = &data->walk;
  w->ndim = n;
  w->base = 0;
  for (int32_t i = n - 1; i >= 0; --i) {
    const int64_t b = eq_const_int(begin, (size_t)i), dim = input->dims[i];
    int64_t len = eq_const_int(size, (size_t)i);
    if (len == -1) len = dim - b;
    if (b < 0 || b > dim || len < 0 || b + len > dim) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "dimension %d: begin %lld and size %lld do not fit in %lld", (int)i,
                      (long long)b, (long long)eq_const_int(size, (size_t)i), (long long)dim);
    }
    shape[i] = len;
    w->dims[i] = (size_t)len;
    w->strides[i] = stride;
    w->base += b * stride;
    stride *= dim > 0 ? dim : 1;
  }
  if ((s = mv_expect_shape(ctx, output, n, shape, "output")) != EDGEQ_OK) return s;
  mv_walk_simplify(w);
  if (w->ndim == 1 && w->dims[0] == 0) w->base = 0;
  data->elem = eq_type_size(input->type);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const slice_data* data = node->user;
  mv_walk_copy(&data->walk, eq_input(ctx, node, 0)->data, eq_output(ctx, node, 0)->data, data->elem);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_slice = {prepare, invoke};
