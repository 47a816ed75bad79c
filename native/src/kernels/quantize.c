/* QUANTIZE: float32 -> int8/uint8/int16 (AffineQuantize, per tensor or per channel), and integer ->
 * integer requantization (reference Requantize, double-rounding multiplier). */
#include <math.h>

#include "../fixedpoint.h"

typedef struct quantize_data {
  int32_t multiplier;
  int shift;
} quantize_data;

static int is_int_type(int32_t type) {
  return type == EQ_T_INT8 || type == EQ_T_UINT8 || type == EQ_T_INT16 || type == EQ_T_INT32;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input == NULL || output == NULL || node->ninputs != 1 || node->noutputs != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  if (input->count != output->count) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and output sizes differ");
  if (output->type != EQ_T_INT8 && output->type != EQ_T_UINT8 && output->type != EQ_T_INT16 &&
      !(output->type == EQ_T_INT32 && input->type == EQ_T_INT16)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output type %s", eq_type_name(output->type));
  }
  edgeq_status s = eq_check_quantized(ctx, output, "output");
  if (s != EDGEQ_OK) return s;
  if (input->type == EQ_T_FLOAT32) {
    if (output->nq > 1 && (output->qdim >= output->ndim)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bad quantized dimension");
    }
    return EDGEQ_OK;
  }
  if (!is_int_type(input->type)) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input type %s", eq_type_name(input->type));
  if ((s = eq_check_quantized(ctx, input, "input")) != EDGEQ_OK) return s;
  quantize_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  eq_quantize_multiplier((double)input->scale[0] / (double)output->scale[0], &data->multiplier, &data->shift);
  node->user = data;
  return EDGEQ_OK;
}

static int32_t load_int(const eq_tensor* t, size_t i) {
  switch (t->type) {
    case EQ_T_INT8:
      return ((const int8_t*)t->data)[i];
    case EQ_T_UINT8:
      return ((const uint8_t*)t->data)[i];
    case EQ_T_INT16:
      return ((const int16_t*)t->data)[i];
    default:
      return ((const int32_t*)t->data)[i];
  }
}

static void store_int(eq_tensor* t, size_t i, int32_t v) {
  switch (t->type) {
    case EQ_T_INT8:
      ((int8_t*)t->data)[i] = (int8_t)v;
      return;
    case EQ_T_UINT8:
      ((uint8_t*)t->data)[i] = (uint8_t)v;
      return;
    case EQ_T_INT16:
      ((int16_t*)t->data)[i] = (int16_t)v;
      return;
    default:
      ((int32_t*)t->data)[i] = v;
      return;
  }
}

/* Index of element i along the quantized dimension of a row-major tensor. */
static size_t channel_of(const eq_tensor* t, size_t i) {
  size_t inner = 1;
  for (int32_t d = t->qdim + 1; d < t->ndim; ++d) inner *= (size_t)t->dims[d];
  return (i / inner) % (size_t)t->dims[t->qdim];
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  int32_t lo, hi;
  eq_type_range(output->type, &lo, &hi);
  if (input->type == EQ_T_FLOAT32) {
    const float* x = (const float*)input->data;
    for (size_t i = 0; i < output->count; ++i) {
      size_t c = output->nq > 1 ? channel_of(output, i) : 0;
      /* AffineQuantize: float division by the float scale, round half away from zero, then clamp. A
       * value beyond int32 is undefined in LiteRT; here it saturates. */
      float r = roundf(x[i] / output->scale[c]);
      int32_t q = r >= 2147483520.0f ? INT32_MAX : (r <= -2147483648.0f || r != r) ? INT32_MIN : (int32_t)r;
      int64_t v = (int64_t)q + (int32_t)output->zero_point[c]; /* LiteRT keeps an int32 zero point */
      store_int(output, i, (int32_t)(v < lo ? lo : (v > hi ? hi : v)));
    }
    return EDGEQ_OK;
  }
  const quantize_data* data = node->user;
  const int32_t in_zp = (int32_t)input->zero_point[0], out_zp = (int32_t)output->zero_point[0];
  if (data->multiplier == (1 << 30) && data->shift == 1 &&
      ((input->type == EQ_T_INT8 && output->type == EQ_T_UINT8 && in_zp - out_zp == -128) ||
       (input->type == EQ_T_UINT8 && output->type == EQ_T_INT8 && in_zp - out_zp == 128))) {
    for (size_t i = 0; i < output->count; ++i) ((uint8_t*)output->data)[i] = input->data[i] ^ 0x80;
    return EDGEQ_OK;
  }
  for (size_t i = 0; i < output->count; ++i) {
    /* int32 arithmetic that wraps as LiteRT's build does (hostile zero points must not be UB here) */
    int32_t x = (int32_t)((uint32_t)load_int(input, i) - (uint32_t)in_zp);
    int32_t v = (int32_t)((uint32_t)eq_mbqm(x, data->multiplier, data->shift) + (uint32_t)out_zp);
    store_int(output, i, eq_clamp32(v, lo, hi));
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_quantize = {prepare, invoke};
