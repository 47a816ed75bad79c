/* SPLIT: input 1 cut along the constant axis (input 0) into num_splits equal pieces, one per output. */
#include "movement.h"

enum { SPLIT_NUM_SPLITS = 0 };

#define SPLIT_TYPES \
  (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_INT16) | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64) | MV_T(EQ_T_FLOAT32))

typedef struct split_data {
  size_t outer;
  size_t* row_bytes;
} split_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* axis = eq_input(ctx, node, 0);
  eq_tensor* input = eq_input(ctx, node, 1);
  if (node->ninputs != 2 || node->noutputs < 1 || axis == NULL || input == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (axis, input) and at least 1 output");
  }
  const int32_t num_splits = eq_opt_i32(node, SPLIT_NUM_SPLITS, 0);
  if (num_splits != node->noutputs) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "num_splits is %d but the op has %d outputs", (int)num_splits,
                    (int)node->noutputs);
  }
  edgeq_status s = mv_check_type(ctx, input, SPLIT_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, axis, "axis", 0);
  if (s != EDGEQ_OK) return s;
  if (axis->count < 1) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis is empty");
  int32_t a = (int32_t)eq_const_int(axis, 0);
  if (a < 0) a += input->ndim;
  if (a < 0 || a >= input->ndim) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %d is out of range for a rank-%d input",
                    (int)eq_const_int(axis, 0), (int)input->ndim);
  }
  if (input->dims[a] % num_splits != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "dimension %d (%d) does not split evenly into %d", (int)a,
                    (int)input->dims[a], (int)num_splits);
  }
  split_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->row_bytes = eq_alloc(ctx, sizeof *data->row_bytes * (size_t)num_splits);
  if (data->row_bytes == NULL) return EDGEQ_ERROR_MEMORY;
  int64_t shape[EQ_MAX_DIMS];
  for (int32_t d = 0; d < input->ndim; ++d) shape[d] = input->dims[d];
  shape[a] = input->dims[a] / num_splits;
  const size_t row = (size_t)shape[a] * mv_inner(input, a) * eq_type_size(input->type);
  for (int32_t i = 0; i < node->noutputs; ++i) {
    eq_tensor* output = eq_output(ctx, node, i);
    if ((s = mv_check_same_type(ctx, input, output, "input", "output")) != EDGEQ_OK) return s;
    if ((s = mv_expect_shape(ctx, output, input->ndim, shape, "output")) != EDGEQ_OK) return s;
    data->row_bytes[i] = row;
  }
  data->outer = mv_outer(input, a);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const split_data* data = node->user;
  mv_split_rows(ctx, node, data->outer, data->row_bytes, eq_input(ctx, node, 1)->data);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_split = {prepare, invoke};
