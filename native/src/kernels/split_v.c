/* SPLIT_V: input 0 cut along the constant axis (input 2) into pieces of the constant size_splits
 * (input 1; one entry may be -1, meaning the rest), one per output. */
#include "movement.h"

enum { SPLIT_V_NUM_SPLITS = 0 };

#define SPLIT_V_TYPES \
  (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_INT16) | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64) | MV_T(EQ_T_FLOAT32))

typedef struct split_v_data {
  size_t outer;
  size_t* row_bytes;
} split_v_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* sizes = eq_input(ctx, node, 1);
  eq_tensor* axis = eq_input(ctx, node, 2);
  if (node->ninputs != 3 || node->noutputs < 1 || input == NULL || sizes == NULL || axis == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 3 inputs (input, size_splits, axis) and at least 1 output");
  }
  const int32_t num_splits = eq_opt_i32(node, SPLIT_V_NUM_SPLITS, 0);
  if (num_splits != node->noutputs) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "num_splits is %d but the op has %d outputs", (int)num_splits,
                    (int)node->noutputs);
  }
  edgeq_status s = mv_check_type(ctx, input, SPLIT_V_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, sizes, "size_splits", 1);
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, axis, "axis", 0);
  if (s != EDGEQ_OK) return s;
  if (sizes->ndim != 1 || sizes->count != (size_t)num_splits) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "size_splits must have shape [%d]", (int)num_splits);
  }
  if (axis->count < 1) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis is empty");
  int32_t a = (int32_t)eq_const_int(axis, 0);
  if (a < 0) a += input->ndim;
  if (a < 0 || a >= input->ndim) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %d is out of range for a rank-%d input",
                    (int)eq_const_int(axis, 0), (int)input->ndim);
  }
  int64_t sum = 0;
  int32_t rest = -1;
  for (int32_t i = 0; i < num_splits; ++i) {
    const int64_t v = eq_const_int(sizes, (size_t)i);
    if (v == -1 && rest < 0) {
      rest = i;
    } else if (v < 0 || v > input->dims[a]) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "size_splits[%d] = %lld is invalid", (int)i, (long long)v);
    } else {
      sum += v;
    }
  }
  if (rest < 0 ? sum != input->dims[a] : sum > input->dims[a]) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "size_splits add up to %lld; dimension %d has %d", (long long)sum,
                    (int)a, (int)input->dims[a]);
  }
  split_v_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->row_bytes = eq_alloc(ctx, sizeof *data->row_bytes * (size_t)num_splits);
  if (data->row_bytes == NULL) return EDGEQ_ERROR_MEMORY;
  const size_t inner_bytes = mv_inner(input, a) * eq_type_size(input->type);
  int64_t shape[EQ_MAX_DIMS];
  for (int32_t d = 0; d < input->ndim; ++d) shape[d] = input->dims[d];
  for (int32_t i = 0; i < num_splits; ++i) {
    eq_tensor* output = eq_output(ctx, node, i);
    shape[a] = i == rest ? input->dims[a] - sum : eq_const_int(sizes, (size_t)i);
    if ((s = mv_check_same_type(ctx, input, output, "input", "output")) != EDGEQ_OK) return s;
    if ((s = mv_expect_shape(ctx, output, input->ndim, shape, "output")) != EDGEQ_OK) return s;
    data->row_bytes[i] = (size_t)shape[a] * inner_bytes;
  }
  data->outer = mv_outer(input, a);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const split_v_data* data = node->user;
  mv_split_rows(ctx, node, data->outer, data->row_bytes, eq_input(ctx, node, 0)->data);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_split_v = {prepare, invoke};
