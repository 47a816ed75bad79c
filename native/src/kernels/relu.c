/* RELU, RELU6, RELU_N1_TO_1 and RELU_0_TO_1 on quantized int8/uint8 (and int16 for RELU and RELU6): as
 * LiteRT's ReluPrepare and QuantizedReluX, the input is requantized to the output's scale by one
 * multiplier and clamped to the bounds quantized with the output's scale. */
#include "elementwise.h"

typedef struct relu_data {
  int32_t in_zp, out_zp;
  int32_t multiplier;
  int shift;
  int32_t act_min, act_max;
} relu_data;

/* One bound as QuantizedReluX computes it: zero point + (int32)roundf(bound / scale), in float. */
static edgeq_status quantize_bound(eq_context* ctx, const eq_tensor* out, float bound, int32_t* q) {
  const float r = roundf(bound / out->scale[0]);
  const int64_t sum = (r >= -2147483648.0f && r < 2147483648.0f) ? out->zero_point[0] + (int64_t)r : INT64_MAX;
  if (sum < INT32_MIN || sum > INT32_MAX) { /* the cast, or LiteRT's int32 sum, would overflow */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "bound %g overflows int32 at output scale %g", (double)bound,
                    (double)out->scale[0]);
  }
  *q = (int32_t)sum;
  return EDGEQ_OK;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node, float lo, float hi, int has_hi, int allow_int16) {
  eq_tensor* in[1] = {NULL};
  eq_tensor* out = NULL;
  edgeq_status s = ew_operands(ctx, node, 1, in, &out);
  if (s != EDGEQ_OK) return s;
  const eq_tensor* input = in[0];
  if (input->type != out->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input type %s and output type %s differ", eq_type_name(input->type),
                    eq_type_name(out->type));
  }
  if (!eq_same_shape(input, out)) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and output shapes differ");
  if (input->type != EQ_T_INT8 && input->type != EQ_T_UINT8 && !(allow_int16 && input->type == EQ_T_INT16)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(input->type));
  }
  const int symmetric = input->type == EQ_T_INT16;
  if ((s = ew_check_quant(ctx, input, "input", symmetric)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, out, "output", symmetric)) != EDGEQ_OK) return s;
  relu_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  data->in_zp = (int32_t)input->zero_point[0];
  data->out_zp = (int32_t)out->zero_point[0];
  /* The scale ratio is a float quotient, widened to double. */
  const float real = input->scale[0] / out->scale[0];
  if ((s = ew_multiplier(ctx, (double)real, &data->multiplier, &data->shift, "output")) != EDGEQ_OK) return s;
  int32_t type_min, type_max, q = 0;
  eq_type_range(out->type, &type_min, &type_max);
  if ((s = quantize_bound(ctx, out, lo, &q)) != EDGEQ_OK) return s;
  data->act_min = q > type_min ? q : type_min;
  data->act_max = type_max;
  if (has_hi) {
    if ((s = quantize_bound(ctx, out, hi, &q)) != EDGEQ_OK) return s;
    data->act_max = q < type_max ? q : type_max;
  }
  return EDGEQ_OK;
}

static edgeq_status prepare_relu(eq_context* ctx, eq_node* node) { return prepare(ctx, node, 0.0f, 0.0f, 0, 1); }
static edgeq_status prepare_relu6(eq_context* ctx, eq_node* node) { return prepare(ctx, node, 0.0f, 6.0f, 1, 1); }
static edgeq_status prepare_relu_n1_to_1(eq_context* ctx, eq_node* node) {
  return prepare(ctx, node, -1.0f, 1.0f, 1, 0);
}
static edgeq_status prepare_relu_0_to_1(eq_context* ctx, eq_node* node) { return prepare(ctx, node, 0.0f, 1.0f, 1, 0); }

static inline int32_t relu_one(const relu_data* d, int32_t x) {
  /* Unsigned: with a large multiplier the offset sum can leave int32 (undefined in LiteRT, wraps here). */
  const uint32_t v = (uint32_t)d->out_zp + (uint32_t)eq_mbqm(x - d->in_zp, d->multiplier, d->shift);
  return ew_clamp((int32_t)v, d->act_min, d->act_max);
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const relu_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* out = eq_output(ctx, node, 0);
  const size_t n = out->count;
  switch (out->type) {
    case EQ_T_INT8: {
      const int8_t* x = (const int8_t*)input->data;
      int8_t* y = (int8_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int8_t)relu_one(d, x[i]);
      break;
    }
    case EQ_T_UINT8: {
      const uint8_t* x = input->data;
      uint8_t* y = out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (uint8_t)relu_one(d, x[i]);
      break;
    }
    default: {
      const int16_t* x = (const int16_t*)input->data;
      int16_t* y = (int16_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int16_t)relu_one(d, x[i]);
      break;
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_relu = {prepare_relu, invoke};
const eq_kernel eq_kernel_relu6 = {prepare_relu6, invoke};
const eq_kernel eq_kernel_relu_n1_to_1 = {prepare_relu_n1_to_1, invoke};
const eq_kernel eq_kernel_relu_0_to_1 = {prepare_relu_0_to_1, invoke};
