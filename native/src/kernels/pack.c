/* PACK: values_count equal-shaped inputs stacked along a new output dimension `axis`. LiteRT requires
 * every input to share the output's scale and zero point, so it is a byte copy. */
#include "movement.h"

enum { PACK_VALUES_COUNT = 0, PACK_AXIS = 1 };

#define PACK_TYPES \
  (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_INT16) | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64) | MV_T(EQ_T_FLOAT32))

typedef struct pack_data {
  size_t outer;
  size_t* row_bytes;
} pack_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* t0 = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const int32_t values_count = eq_opt_i32(node, PACK_VALUES_COUNT, 0);
  if (node->ninputs < 1 || node->ninputs != values_count || node->noutputs != 1 || t0 == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects values_count (%d) inputs, at least 1, and 1 output",
                    (int)values_count);
  }
  edgeq_status s = mv_check_type(ctx, t0, PACK_TYPES, "input 0");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, t0, output, "input 0", "output");
  if (s != EDGEQ_OK) return s;
  int32_t axis = eq_opt_i32(node, PACK_AXIS, 0);
  if (axis < 0) axis += t0->ndim + 1;
  if (axis < 0 || axis > t0->ndim || t0->ndim >= EQ_MAX_DIMS) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %d is out of range for rank-%d inputs",
                    (int)eq_opt_i32(node, PACK_AXIS, 0), (int)t0->ndim);
  }
  pack_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->row_bytes = eq_alloc(ctx, sizeof *data->row_bytes * (size_t)values_count);
  if (data->row_bytes == NULL) return EDGEQ_ERROR_MEMORY;
  const size_t row = mv_inner(t0, axis - 1) * eq_type_size(t0->type);
  for (int32_t i = 0; i < values_count; ++i) {
    eq_tensor* t = eq_input(ctx, node, i);
    if (t == NULL) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d is omitted", (int)i);
    if ((s = mv_check_same_type(ctx, t, t0, "input", "input 0")) != EDGEQ_OK) return s;
    if (!eq_same_shape(t, t0)) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d differs in shape from input 0", (int)i);
    if ((s = mv_check_same_quant(ctx, t, output, "input", "output")) != EDGEQ_OK) return s;
    data->row_bytes[i] = row;
  }
  int64_t shape[EQ_MAX_DIMS];
  for (int32_t i = 0, j = 0; i <= t0->ndim; ++i) shape[i] = i == axis ? values_count : t0->dims[j++];
  if ((s = mv_expect_shape(ctx, output, t0->ndim + 1, shape, "output")) != EDGEQ_OK) return s;
  data->outer = mv_outer(t0, axis);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const pack_data* data = node->user;
  mv_concat_rows(ctx, node, data->outer, data->row_bytes, eq_output(ctx, node, 0)->data);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_pack = {prepare, invoke};
