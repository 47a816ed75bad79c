/* DEPTH_TO_SPACE: the inverse of SPACE_TO_DEPTH; output pixel (h * block + by, w * block + bx) channel c
 * is input channel (by * block + bx) * C_out + c. FLOAT32, UINT8, INT8, INT32 and INT64, as in LiteRT. */
#include "movement.h"

enum { D2S_BLOCK_SIZE = 0 };

#define D2S_TYPES (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64) | MV_T(EQ_T_FLOAT32))

typedef struct d2s_data {
  mv_walk walk;
  size_t elem;
} d2s_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 1 || node->noutputs != 1 || input == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, output, D2S_TYPES, "output");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s != EDGEQ_OK) return s;
  if (input->ndim != 4) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has rank %d; it must be 4", (int)input->ndim);
  const int32_t block = eq_opt_i32(node, D2S_BLOCK_SIZE, 0);
  const int64_t n = input->dims[0], h = input->dims[1], w = input->dims[2], c = input->dims[3];
  if (block > 65535) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "block_size %d is larger than 65535", (int)block);
  if (block <= 0 || c % ((int64_t)block * block) != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "block_size %d must be positive and its square divide the %d channels",
                    (int)block, (int)c);
  }
  const int64_t c_out = c / block / block;
  const int64_t shape[4] = {n, h * block, w * block, c_out};
  if ((s = mv_expect_shape(ctx, output, 4, shape, "output")) != EDGEQ_OK) return s;
  d2s_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  /* Output viewed as [n, h, by, w, bx, c_out] read from the input [n, h, w, (by, bx, c_out)]. */
  mv_walk* walk = &data->walk;
  walk->ndim = 6;
  walk->base = 0;
  const size_t dims[6] = {(size_t)n, (size_t)h, (size_t)block, (size_t)w, (size_t)block, (size_t)c_out};
  const int64_t strides[6] = {h * w * c, w * c, block * c_out, c, c_out, 1};
  for (int i = 0; i < 6; ++i) {
    walk->dims[i] = dims[i];
    walk->strides[i] = strides[i];
  }
  mv_walk_simplify(walk);
  data->elem = eq_type_size(input->type);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const d2s_data* data = node->user;
  mv_walk_copy(&data->walk, eq_input(ctx, node, 0)->data, eq_output(ctx, node, 0)->data, data->elem);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_depth_to_space = {prepare, invoke};
