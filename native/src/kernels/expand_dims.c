/* EXPAND_DIMS: the input's bytes under the output's stored shape, which must be the input shape with a
 * 1 inserted at the (constant) axis. Like LiteRT, input and output must share scale and zero point. */
#include "movement.h"

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* axis = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || input == NULL || axis == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (input, axis) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_COPY_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_same_quant(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, axis, "axis", 1);
  if (s != EDGEQ_OK) return s;
  if (input->type == EQ_T_INT16 && mv_zero_point(input) != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "INT16 input '%s' has zero point %d; it must be 0", input->name,
                    (int)mv_zero_point(input));
  }
  if (axis->count != 1) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis has %zu elements; it must have 1", axis->count);
  int64_t a = eq_const_int(axis, 0);
  if (axis->type == EQ_T_INT64) a = (int32_t)a; /* LiteRT narrows an INT64 axis to int */
  if (a < 0) a += input->ndim + 1;
  if (a < 0 || a > input->ndim || input->ndim >= EQ_MAX_DIMS) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %lld is out of range for a rank-%d input",
                    (long long)eq_const_int(axis, 0), (int)input->ndim);
  }
  int64_t shape[EQ_MAX_DIMS];
  for (int32_t i = 0, j = 0; i <= input->ndim; ++i) shape[i] = i == a ? 1 : input->dims[j++];
  return mv_expect_shape(ctx, output, input->ndim + 1, shape, "output");
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  memcpy(output->data, input->data, input->bytes);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_expand_dims = {prepare, invoke};
