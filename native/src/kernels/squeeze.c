/* SQUEEZE: the input's bytes under the output's stored shape, which must be the input shape without the
 * squeezed size-1 dimensions (all of them when squeeze_dims is empty). */
#include "movement.h"

#include "../flatbuffer.h"

enum { SQUEEZE_DIMS = 0 };

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 1 || node->noutputs != 1 || input == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_COPY_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s != EDGEQ_OK) return s;
  fb_vector dims = {0};
  if (node->has_options && fb_vector_field(&node->options, SQUEEZE_DIMS, 4, &dims) != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "squeeze_dims lies out of bounds");
  }
  if (dims.length > EQ_MAX_DIMS) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%u squeeze_dims; at most %d", dims.length, EQ_MAX_DIMS);
  }
  int squeeze[EQ_MAX_DIMS] = {0};
  if (dims.length == 0) {
    for (int32_t i = 0; i < input->ndim; ++i) squeeze[i] = input->dims[i] == 1;
  }
  for (uint32_t k = 0; k < dims.length; ++k) {
    int64_t d = fb_vec_i32(&dims, k);
    if (d < 0) d += input->ndim;
    if (d < 0 || d >= input->ndim || input->dims[d] != 1) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "squeeze_dims[%u] = %d is not a size-1 dimension of the rank-%d "
                      "input", k, (int)fb_vec_i32(&dims, k), (int)input->ndim);
    }
    squeeze[d] = 1;
  }
  int64_t shape[EQ_MAX_DIMS];
  int32_t n = 0;
  for (int32_t i = 0; i < input->ndim; ++i) {
    if (!squeeze[i]) shape[n++] = input->dims[i];
  }
  return mv_expect_shape(ctx, output, n, shape, "output");
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  memcpy(output->data, input->data, input->bytes);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_squeeze = {prepare, invoke};
