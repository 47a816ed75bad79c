/* LEAKY_RELU on quantized int8, uint8 and int16: non-negative offset inputs are requantized by the
 * identity multiplier (input scale / output scale), negative ones by the alpha multiplier (input scale *
 * alpha / output scale), both float quotients as LeakyReluPrepare computes them. A negative alpha is
 * applied as the negated product with its magnitude, as the reference QuantizeLeakyRelu does. */
#include "elementwise.h"

typedef struct leaky_data {
  int32_t in_zp, out_zp;
  int32_t identity_multiplier, alpha_multiplier; /* alpha_multiplier >= 0 */
  int identity_shift, alpha_shift;
  int alpha_negative;
  int32_t lo, hi;
} leaky_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
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
  if (!ew_is_quantizable(input->type)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(input->type));
  }
  const int symmetric = input->type == EQ_T_INT16;
  if ((s = ew_check_quant(ctx, input, "input", symmetric)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, out, "output", symmetric)) != EDGEQ_OK) return s;
  leaky_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  /* No LeakyReluOptions table: LiteRT's zeroed params give alpha 0. */
  const float alpha = node->has_options ? eq_opt_f32(node, 0, 0.0f) : 0.0f;
  const float alpha_real = input->scale[0] * alpha / out->scale[0];
  const float identity_real = input->scale[0] / out->scale[0];
  int32_t alpha_multiplier;
  if ((s = ew_multiplier(ctx, (double)alpha_real, &alpha_multiplier, &d->alpha_shift, "alpha")) != EDGEQ_OK) return s;
  if ((s = ew_multiplier(ctx, (double)identity_real, &d->identity_multiplier, &d->identity_shift, "identity")) !=
      EDGEQ_OK) {
    return s;
  }
  if (alpha_multiplier == INT32_MIN) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "alpha multiplier %.17g rounds to -2^31", (double)alpha_real);
  }
  d->alpha_negative = alpha_multiplier < 0;
  d->alpha_multiplier = alpha_multiplier < 0 ? -alpha_multiplier : alpha_multiplier;
  d->in_zp = (int32_t)input->zero_point[0];
  d->out_zp = (int32_t)out->zero_point[0];
  eq_type_range(out->type, &d->lo, &d->hi);
  return EDGEQ_OK;
}

static inline int32_t leaky_one(const leaky_data* d, int32_t x) {
  const int32_t v = x - d->in_zp;
  int32_t y;
  if (v >= 0) {
    y = eq_mbqm(v, d->identity_multiplier, d->identity_shift);
  } else {
    y = eq_mbqm(v, d->alpha_multiplier, d->alpha_shift);
    if (d->alpha_negative) y = (int32_t)(0u - (uint32_t)y);
  }
  /* Unsigned: under hostile multipliers the negation and the offset can wrap (undefined in LiteRT). */
  return ew_clamp((int32_t)((uint32_t)d->out_zp + (uint32_t)y), d->lo, d->hi);
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const leaky_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* out = eq_output(ctx, node, 0);
  const size_t n = out->count;
  switch (out->type) {
    case EQ_T_INT8: {
      const int8_t* x = (const int8_t*)input->data;
      int8_t* y = (int8_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int8_t)leaky_one(d, x[i]);
      break;
    }
    case EQ_T_UINT8: {
      const uint8_t* x = input->data;
      uint8_t* y = out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (uint8_t)leaky_one(d, x[i]);
      break;
    }
    default: {
      const int16_t* x = (const int16_t*)input->data;
      int16_t* y = (int16_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int16_t)leaky_one(d, x[i]);
      break;
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_leaky_relu = {prepare, invoke};
