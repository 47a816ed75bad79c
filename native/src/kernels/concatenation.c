/* CONCATENATION along `axis`. INT8 inputs must share the output's scale and zero point and INT16 ones
 * must have zero point 0 (LiteRT's checks), so both are byte copies. UINT8 follows LiteRT's
 * ConcatenationWithScaling: an input whose (scale, zero point) differs from the output's is requantized
 * in float, round(q * s + b) + out_zp with s = in_scale * (1 / out_scale) and b = -in_zp * s. */
#include <math.h>

#include "../fixedpoint.h"
#include "movement.h"

enum { CONCAT_AXIS = 0, CONCAT_ACTIVATION = 1 };

typedef struct concat_data {
  size_t outer;
  size_t* row_bytes; /* per input */
  int any_rescale;
  uint8_t** lut; /* per input: NULL (byte copy) or the 256 requantized UINT8 values */
} concat_data;

/* (int32_t)roundf(x) as x86 computes it in LiteRT: values outside int32 (and NaN) become INT32_MIN. */
static int32_t round_to_int32(float x) {
  const float r = roundf(x);
  return (r >= -2147483648.0f && r < 2147483648.0f) ? (int32_t)r : INT32_MIN;
}

/* LiteRT's per-element float requantization depends only on the byte, so it is tabulated. */
static void fill_requantize_lut(uint8_t* lut, float in_scale, int32_t in_zp, float out_scale, int32_t out_zp) {
  /* float math exactly as LiteRT: each step rounded to float */
  const float inverse_output_scale = 1.0f / out_scale;
  const float scale = in_scale * inverse_output_scale;
  const float bias = (float)(int32_t)(0u - (uint32_t)in_zp) * scale; /* -zp, wrapping */
  for (int32_t q = 0; q < 256; ++q) {
    const float product = (float)q * scale;
    const int32_t v = (int32_t)((uint32_t)round_to_int32(product + bias) + (uint32_t)out_zp); /* wraps like x86 */
    lut[q] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* t0 = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs < 1 || node->noutputs != 1 || t0 == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects at least 1 input and 1 output");
  }
  int32_t axis = eq_opt_i32(node, CONCAT_AXIS, 0);
  const int32_t activation = eq_opt_i8(node, CONCAT_ACTIVATION, EQ_ACT_NONE);
  if (activation != EQ_ACT_NONE) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "fused activation %d; LiteRT's reference kernel only accepts NONE",
                    (int)activation);
  }
  edgeq_status s = mv_check_type(ctx, t0, MV_COPY_TYPES, "input 0");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, t0, output, "input 0", "output");
  if (s != EDGEQ_OK) return s;
  const int32_t ndim = t0->ndim;
  if (axis < 0) axis += ndim;
  if (axis < 0 || axis >= ndim) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "axis %d is out of range for rank-%d inputs",
                    (int)eq_opt_i32(node, CONCAT_AXIS, 0), (int)ndim);
  }
  int64_t shape[EQ_MAX_DIMS];
  for (int32_t d = 0; d < ndim; ++d) shape[d] = t0->dims[d];
  shape[axis] = 0;
  for (int32_t i = 0; i < node->ninputs; ++i) {
    eq_tensor* t = eq_input(ctx, node, i);
    if (t == NULL) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d is omitted", (int)i);
    if ((s = mv_check_same_type(ctx, t, t0, "input", "input 0")) != EDGEQ_OK) return s;
    if (t->ndim != ndim) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d has rank %d; input 0 has rank %d", (int)i, (int)t->ndim,
                      (int)ndim);
    }
    for (int32_t d = 0; d < ndim; ++d) {
      if (d != axis && t->dims[d] != t0->dims[d]) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d differs from input 0 in dimension %d", (int)i, (int)d);
      }
    }
    shape[axis] += t->dims[axis];
  }
  if ((s = mv_expect_shape(ctx, output, ndim, shape, "output")) != EDGEQ_OK) return s;

  concat_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  const size_t n = (size_t)node->ninputs;
  data->row_bytes = eq_alloc(ctx, n * sizeof *data->row_bytes);
  data->lut = eq_alloc(ctx, n * sizeof *data->lut);
  if (data->row_bytes == NULL || data->lut == NULL) return EDGEQ_ERROR_MEMORY;
  if (output->type == EQ_T_INT16 || output->type == EQ_T_UINT8) {
    if ((s = mv_check_per_tensor(ctx, output, "output")) != EDGEQ_OK) return s;
    if (output->type == EQ_T_INT16 && mv_zero_point(output) != 0) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "INT16 output has zero point %d; it must be 0",
                      (int)mv_zero_point(output));
    }
  }
  data->outer = mv_outer(output, axis);
  const size_t inner_bytes = mv_inner(output, axis) * eq_type_size(output->type);
  for (int32_t i = 0; i < node->ninputs; ++i) {
    eq_tensor* t = eq_input(ctx, node, i);
    data->row_bytes[i] = (size_t)t->dims[axis] * inner_bytes;
    if (output->type == EQ_T_INT8) {
      if ((s = mv_check_same_quant(ctx, t, output, "input", "output")) != EDGEQ_OK) return s;
    } else if (output->type == EQ_T_INT16) {
      if ((s = mv_check_per_tensor(ctx, t, "input")) != EDGEQ_OK) return s;
      if (mv_zero_point(t) != 0) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "INT16 input '%s' has zero point %d; it must be 0", t->name,
                        (int)mv_zero_point(t));
      }
    } else if (output->type == EQ_T_UINT8) {
      if ((s = mv_check_per_tensor(ctx, t, "input")) != EDGEQ_OK) return s;
      if (mv_zero_point(t) == mv_zero_point(output) && mv_scale(t) == mv_scale(output)) continue;
      if ((s = eq_check_quantized(ctx, t, "input")) != EDGEQ_OK) return s;
      if ((s = eq_check_quantized(ctx, output, "output")) != EDGEQ_OK) return s;
      if ((data->lut[i] = eq_alloc(ctx, 256)) == NULL) return EDGEQ_ERROR_MEMORY;
      fill_requantize_lut(data->lut[i], mv_scale(t), mv_zero_point(t), mv_scale(output), mv_zero_point(output));
      data->any_rescale = 1;
    }
  }
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const concat_data* data = node->user;
  uint8_t* out = eq_output(ctx, node, 0)->data;
  if (!data->any_rescale) {
    mv_concat_rows(ctx, node, data->outer, data->row_bytes, out);
    return EDGEQ_OK;
  }
  for (size_t k = 0; k < data->outer; ++k) {
    for (int32_t i = 0; i < node->ninputs; ++i) {
      const size_t n = data->row_bytes[i];
      const uint8_t* in = eq_input(ctx, node, i)->data + k * n;
      const uint8_t* lut = data->lut[i];
      if (lut != NULL) {
        for (size_t j = 0; j < n; ++j) out[j] = lut[in[j]];
      } else if (n) {
        memcpy(out, in, n);
      }
      out += n;
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_concatenation = {prepare, invoke};
