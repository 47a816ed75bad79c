/* SPACE_TO_DEPTH: NHWC blocks of block_size x block_size pixels moved into channels, output channel
 * (by * block + bx) * C + c. LiteRT's kernel takes FLOAT32, UINT8, INT8, INT32 and INT64 (not INT16). */
#include "movement.h"

enum { S2D_BLOCK_SIZE = 0 };

#define S2D_TYPES (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_INT32) | MV_T(EQ_T_INT64) | MV_T(EQ_T_FLOAT32))

typedef struct s2d_data {
  mv_walk walk;
  size_t elem;
} s2d_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 1 || node->noutputs != 1 || input == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, output, S2D_TYPES, "output");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s != EDGEQ_OK) return s;
  if (input->ndim != 4) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has rank %d; it must be 4", (int)input->ndim);
  const int32_t block = eq_opt_i32(node, S2D_BLOCK_SIZE, 0);
  const int64_t n = input->dims[0], h = input->dims[1], w = input->dims[2], c = input->dims[3];
  if (block > 65535) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "block_size %d is larger than 65535", (int)block);
  if (block <= 0 || h % block != 0 || w % block != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "block_size %d must be positive and divide height %d and width %d",
                    (int)block, (int)h, (int)w);
  }
  const int64_t shape[4] = {n, h / block, w / block, c * block * block};
  if ((s = mv_expect_shape(ctx, output, 4, shape, "output")) != EDGEQ_OK) return s;
  s2d_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  /* Output [n, h/b, w/b, by, bx, c] read from the input viewed as [n, h/b, by, w/b, bx, c]. */
  mv_walk* walk = &data->walk;
  walk->ndim = 6;
  walk->base = 0;
  const size_t dims[6] = {(size_t)n, (size_t)(h / block), (size_t)(w / block), (size_t)block, (size_t)block, (size_t)c};
  const int64_t strides[6] = {h * w * c, block * w * c, block * c, w * c, c, 1};
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
  const s2d_data* data = node->user;
  mv_walk_copy(&data->walk, eq_input(ctx, node, 0)->data, eq_output(ctx, node, 0)->data, data->elem);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_space_to_depth = {prepare, invoke};
