/* UNPACK: the input cut along `axis` into its num slices, each output dropping that dimension. LiteRT
 * requires every output to share the input's scale and zero point, so it is a byte copy. */
#include "movement.h"

enum { UNPACK_NUM = 0, UNPACK_AXIS = 1 };

#define UNPACK_TYPES \
  (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_INT16) | MV_T(EQ_T_INT32) | MV_T(EQ_T_BOOL) | MV_T(EQ_T_FLOAT32))

typedef struct unpack_data {
  size_t outer;
  size_t* row_bytes;
} unpack_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  const int32_t num = eq_opt_i32(node, UNPACK_NUM, 0);
  if (node->ninputs != 1 || input == NULL || node->noutputs < 1 || node->noutputs != num) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and num (%d) outputs, at least 1", (int)num);
  }
  edgeq_status s = mv_check_type(ctx, input, UNPACK_TYPES, "input");
  if (s != EDGEQ_OK) return s;
  if (input->count == 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input is empty");
  int32_t axis = eq_opt_i32(node, UNPACK_AXIS, 0);
  if (axis < 0) axis += input->ndim;
  if (axis < 0 || axis >= input->ndim || input->dims[axis] != num) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %d of the rank-%d input must have num = %d entries",
                    (int)eq_opt_i32(node, UNPACK_AXIS, 0), (int)input->ndim, (int)num);
  }
  unpack_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->row_bytes = eq_alloc(ctx, sizeof *data->row_bytes * (size_t)num);
  if (data->row_bytes == NULL) return EDGEQ_ERROR_MEMORY;
  int64_t shape[EQ_MAX_DIMS];
  for (int32_t i = 0, j = 0; i < input->ndim; ++i) {
    if (i != axis) shape[j++] = input->dims[i];
  }
  const size_t row = mv_inner(input, axis) * eq_type_size(input->type);
  for (int32_t i = 0; i < num; ++i) {
    eq_tensor* output = eq_output(ctx, node, i);
    if ((s = mv_check_same_type(ctx, input, output, "input", "output")) != EDGEQ_OK) return s;
    if ((s = mv_check_same_quant(ctx, input, output, "input", "output")) != EDGEQ_OK) return s;
    if ((s = mv_expect_shape(ctx, output, input->ndim - 1, shape, "output")) != EDGEQ_OK) return s;
    data->row_bytes[i] = row;
  }
  data->outer = mv_outer(input, axis);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const unpack_data* data = node->user;
  mv_split_rows(ctx, node, data->outer, data->row_bytes, eq_input(ctx, node, 0)->data);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_unpack = {prepare, invoke};
