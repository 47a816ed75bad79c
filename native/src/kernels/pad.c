/* PAD and PADV2 (one LiteRT kernel): the input placed at (left paddings) inside an output filled with the
 * pad value. The pad value is the constant_values input when there is one (both ops take an optional
 * third input); otherwise the output zero point for UINT8 and quantized INT8/INT16, and 0 for the rest.
 * Paddings come from a constant INT32/INT64 [rank, 2] tensor; rank is at most 5, as in LiteRT. */
#include <limits.h>

#include "../fixedpoint.h"
#include "movement.h"

#define PAD_DIMS 5

typedef struct pad_data {
  size_t elem;
  size_t in_dims[PAD_DIMS], out_dims[PAD_DIMS], left[PAD_DIMS]; /* front-extended to 5 dims */
  int from_input;                                                /* pad value from constant_values */
  uint8_t value[8];
} pad_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* paddings = eq_input(ctx, node, 1);
  eq_tensor* constant = eq_input(ctx, node, 2);
  eq_tensor* output = eq_output(ctx, node, 0);
  if ((node->ninputs != 2 && node->ninputs != 3) || node->noutputs != 1 || input == NULL || paddings == NULL ||
      output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 or 3 inputs (input, paddings[, constant_values]) and 1 "
                    "output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_COPY_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK && constant != NULL) s = mv_check_same_type(ctx, input, constant, "input", "constant_values");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, paddings, "paddings", 1);
  if (s != EDGEQ_OK) return s;
  const int32_t ndim = input->ndim;
  if (ndim > PAD_DIMS) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input has rank %d; LiteRT pads at most %d dimensions", (int)ndim,
                    PAD_DIMS);
  }
  if (paddings->ndim != 2 || paddings->dims[0] != ndim || paddings->dims[1] != 2) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "paddings must have shape [%d, 2]", (int)ndim);
  }
  pad_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->elem = eq_type_size(input->type);
  int64_t shape[EQ_MAX_DIMS];
  for (int32_t i = 0; i < PAD_DIMS; ++i) {
    data->in_dims[i] = data->out_dims[i] = 1;
    data->left[i] = 0;
  }
  for (int32_t i = 0; i < ndim; ++i) {
    const int64_t left = eq_const_int(paddings, 2 * (size_t)i), right = eq_const_int(paddings, 2 * (size_t)i + 1);
    if (left < 0 || right < 0 || left > INT32_MAX || right > INT32_MAX) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "paddings of dimension %d are (%lld, %lld); they must be in [0, "
                      "INT32_MAX]", (int)i, (long long)left, (long long)right);
    }
    shape[i] = input->dims[i] + left + right;
    const int32_t e = PAD_DIMS - ndim + i;
    data->in_dims[e] = (size_t)input->dims[i];
    data->left[e] = (size_t)left;
  }
  if ((s = mv_expect_shape(ctx, output, ndim, shape, "output")) != EDGEQ_OK) return s;
  for (int32_t i = 0; i < ndim; ++i) data->out_dims[PAD_DIMS - ndim + i] = (size_t)output->dims[i];

  /* LiteRT's EvalInt: UINT8 always, INT8/INT16 when the input carries quantization. */
  const int quantized =
      input->type == EQ_T_UINT8 || ((input->type == EQ_T_INT8 || input->type == EQ_T_INT16) && input->nq > 0);
  if (quantized && (s = mv_check_per_tensor(ctx, output, "output")) != EDGEQ_OK) return s;
  if (constant != NULL) {
    if (constant->count != 1) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "constant_values has %zu elements; it must have 1", constant->count);
    }
    if (quantized) {
      if ((s = mv_check_same_quant(ctx, constant, output, "constant_values", "output")) != EDGEQ_OK) return s;
    }
    data->from_input = 1;
  } else if (quantized) {
    int32_t lo, hi;
    eq_type_range(input->type, &lo, &hi);
    const int32_t zp = mv_zero_point(output);
    if (zp < lo || zp > hi) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output zero point %d lies outside the %s range", (int)zp,
                      eq_type_name(input->type));
    }
    if (input->type == EQ_T_INT16) {
      const int16_t v = (int16_t)zp;
      memcpy(data->value, &v, sizeof v);
    } else {
      data->value[0] = (uint8_t)(input->type == EQ_T_INT8 ? (uint8_t)(int8_t)zp : (uint8_t)zp);
    }
  } /* else: all-zero bytes are 0, 0.0f and false */
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const pad_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const uint8_t* value = d->from_input ? eq_input(ctx, node, 2)->data : d->value;
  mv_fill(output->data, output->count, value, d->elem);
  const size_t row = d->in_dims[4] * d->elem;
  if (row == 0) return EDGEQ_OK;
  const uint8_t* in = input->data;
  for (size_t b = 0; b < d->in_dims[0]; ++b) {
    for (size_t p = 0; p < d->in_dims[1]; ++p) {
      for (size_t h = 0; h < d->in_dims[2]; ++h) {
        size_t o = (((b + d->left[0]) * d->out_dims[1] + p + d->left[1]) * d->out_dims[2] + h + d->left[2]) *
                       d->out_dims[3] + d->left[3];
        for (size_t w = 0; w < d->in_dims[3]; ++w, ++o) {
          memcpy(output->data + (o * d->out_dims[4] + d->left[4]) * d->elem, in, row);
          in += row;
        }
      }
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_pad = {prepare, invoke};
const eq_kernel eq_kernel_padv2 = {prepare, invoke};
