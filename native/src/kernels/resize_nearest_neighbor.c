/* RESIZE_NEAREST_NEIGHBOR (NHWC, constant INT32 size): each output row and column copies the input
 * row and column LiteRT's GetNearestNeighbor picks in float math (scale = in / out, or (in - 1) /
 * (out - 1) with align_corners; round with align_corners, floor otherwise; +0.5 with
 * half_pixel_centers). The picks are computed once at prepare. */
#include <math.h>

#include "movement.h"

enum { RNN_ALIGN_CORNERS = 0, RNN_HALF_PIXEL_CENTERS = 1 };

#define RNN_TYPES \
  (MV_T(EQ_T_INT8) | MV_T(EQ_T_UINT8) | MV_T(EQ_T_BOOL) | MV_T(EQ_T_INT16) | MV_T(EQ_T_INT32) | MV_T(EQ_T_FLOAT32))

typedef struct rnn_data {
  size_t* rows; /* input row for each output row */
  size_t* cols; /* input column for each output column */
  size_t batches, out_h, out_w, in_h, in_w, pixel_bytes;
} rnn_data;

static int32_t nearest(int32_t value, int32_t in_size, int32_t out_size, int align_corners, int half_pixel) {
  const float scale = (align_corners && out_size > 1) ? (float)(in_size - 1) / (float)(out_size - 1)
                                                      : (float)in_size / (float)out_size;
  const float offset = half_pixel ? 0.5f : 0.0f;
  const float x = ((float)value + offset) * scale;
  const float r = align_corners ? roundf(x) : floorf(x);
  int32_t v = (r >= -2147483648.0f && r < 2147483648.0f) ? (int32_t)r : INT32_MIN;
  if (v > in_size - 1) v = in_size - 1;
  if (half_pixel && v < 0) v = 0;
  return v;
}

static edgeq_status fill_table(eq_context* ctx, size_t* table, int32_t in_size, int32_t out_size, int align,
                               int half, const char* what) {
  for (int32_t i = 0; i < out_size; ++i) {
    const int32_t v = nearest(i, in_size, out_size, align, half);
    if (v < 0 || v >= in_size) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output %s %d maps to input %s %d of %d", what, (int)i, what,
                      (int)v, (int)in_size);
    }
    table[i] = (size_t)v;
  }
  return EDGEQ_OK;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* size = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || input == NULL || size == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (input, size) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, RNN_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, size, "size", 0);
  if (s != EDGEQ_OK) return s;
  if (input->ndim != 4) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has rank %d; it must be 4", (int)input->ndim);
  if (size->ndim != 1 || size->dims[0] != 2) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "size must have shape [2]");
  const int align = eq_opt_bool(node, RNN_ALIGN_CORNERS, 0), half = eq_opt_bool(node, RNN_HALF_PIXEL_CENTERS, 0);
  const int32_t out_h = (int32_t)eq_const_int(size, 0), out_w = (int32_t)eq_const_int(size, 1);
  const int64_t shape[4] = {input->dims[0], out_h, out_w, input->dims[3]};
  if ((s = mv_expect_shape(ctx, output, 4, shape, "output")) != EDGEQ_OK) return s;
  rnn_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->rows = eq_alloc(ctx, sizeof(size_t) * (size_t)(out_h ? out_h : 1));
  data->cols = eq_alloc(ctx, sizeof(size_t) * (size_t)(out_w ? out_w : 1));
  if (data->rows == NULL || data->cols == NULL) return EDGEQ_ERROR_MEMORY;
  if (output->count > 0) {
    if ((s = fill_table(ctx, data->rows, input->dims[1], out_h, align, half, "row")) != EDGEQ_OK) return s;
    if ((s = fill_table(ctx, data->cols, input->dims[2], out_w, align, half, "column")) != EDGEQ_OK) return s;
  }
  data->batches = (size_t)input->dims[0];
  data->out_h = (size_t)out_h;
  data->out_w = (size_t)out_w;
  data->in_h = (size_t)input->dims[1];
  data->in_w = (size_t)input->dims[2];
  data->pixel_bytes = (size_t)input->dims[3] * eq_type_size(input->type);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const rnn_data* d = node->user;
  const uint8_t* in = eq_input(ctx, node, 0)->data;
  uint8_t* out = eq_output(ctx, node, 0)->data;
  if (d->pixel_bytes == 0) return EDGEQ_OK;
  for (size_t b = 0; b < d->batches; ++b) {
    const uint8_t* image = in + b * d->in_h * d->in_w * d->pixel_bytes;
    for (size_t y = 0; y < d->out_h; ++y) {
      const uint8_t* row = image + d->rows[y] * d->in_w * d->pixel_bytes;
      for (size_t x = 0; x < d->out_w; ++x) {
        memcpy(out, row + d->cols[x] * d->pixel_bytes, d->pixel_bytes);
        out += d->pixel_bytes;
      }
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_resize_nearest_neighbor = {prepare, invoke};
