/* TRANSPOSE: output dimension i is input dimension perm[i] (perm a constant INT32 permutation, negative
 * entries counting from the end as in LiteRT). Pure data movement for every 1/2/4/8-byte type. */
#include "movement.h"

typedef struct transpose_data {
  mv_walk walk;
  size_t elem;
} transpose_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* perm = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || input == NULL || perm == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (input, perm) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_COPY_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, perm, "perm", 0); /* LiteRT reads perm as int32 only */
  if (s != EDGEQ_OK) return s;
  const int32_t n = input->ndim;
  if (perm->ndim != 1 || perm->dims[0] != n) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "perm must have shape [%d]", (int)n);
  }
  transpose_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  int64_t in_strides[EQ_MAX_DIMS], shape[EQ_MAX_DIMS];
  int used[EQ_MAX_DIMS] = {0};
  int64_t stride = 1;
  for (int32_t i = n - 1; i >= 0; --i) {
    in_strides[i] = stride;
    stride *= input->dims[i] ? input->dims[i] : 1; /* strides are never used when the tensor is empty */
  }
  for (int32_t i = 0; i < n; ++i) {
    int64_t p = eq_const_int(perm, (size_t)i);
    if (p < -n || p >= n) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "perm[%d] = %lld is out of range for rank %d", (int)i, (long long)p,
                      (int)n);
    }
    if (p < 0) p += n;
    if (used[p]) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "perm repeats dimension %lld; it must be a permutation", (long long)p);
    }
    used[p] = 1;
    shape[i] = input->dims[p];
    data->walk.dims[i] = (size_t)input->dims[p];
    data->walk.strides[i] = in_strides[p];
  }
  if ((s = mv_expect_shape(ctx, output, n, shape, "output")) != EDGEQ_OK) return s;
  data->walk.ndim = n;
  data->walk.base = 0;
  mv_walk_simplify(&data->walk);
  data->elem = eq_type_size(input->type);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const transpose_data* data = node->user;
  mv_walk_copy(&data->walk, eq_input(ctx, node, 0)->data, eq_output(ctx, node, 0)->data, data->elem);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_transpose = {prepare, invoke};
