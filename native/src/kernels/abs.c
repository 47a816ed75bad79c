/* ABS on quantized int8 and int16 (|x - input zero point|, then either just offset by the output zero
 * point when the two scales are equal floats, or requantized by input scale / output scale, a float
 * quotient), on unquantized int16, and on int32 (LiteRT's abs of the most negative value stays
 * negative: done here with wraparound). */
#include "elementwise.h"

typedef struct abs_data {
  int quantized, rescale;
  int32_t in_zp, out_zp;
  int32_t multiplier;
  int shift;
  int32_t lo, hi;
} abs_data;

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
  if (input->type != EQ_T_INT8 && input->type != EQ_T_INT16 && input->type != EQ_T_INT32) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(input->type));
  }
  abs_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  /* int8 is always quantized; int16 is when the input says so; int32 never. */
  d->quantized = input->type == EQ_T_INT8 || (input->type == EQ_T_INT16 && input->nq > 0);
  if (!d->quantized) return EDGEQ_OK;
  const int symmetric = input->type == EQ_T_INT16;
  if ((s = ew_check_quant(ctx, input, "input", symmetric)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, out, "output", symmetric)) != EDGEQ_OK) return s;
  d->in_zp = (int32_t)input->zero_point[0];
  d->out_zp = (int32_t)out->zero_point[0];
  d->rescale = input->scale[0] != out->scale[0];
  if (d->rescale) {
    const float real = input->scale[0] / out->scale[0];
    if ((s = ew_multiplier(ctx, (double)real, &d->multiplier, &d->shift, "output")) != EDGEQ_OK) return s;
  }
  eq_type_range(out->type, &d->lo, &d->hi);
  return EDGEQ_OK;
}

static inline int32_t abs_quantized(const abs_data* d, int32_t x) {
  int32_t v = x - d->in_zp;
  v = v < 0 ? -v : v; /* |v| <= 65535 */
  if (d->rescale) v = eq_mbqm(v, d->multiplier, d->shift);
  return ew_clamp((int32_t)((uint32_t)v + (uint32_t)d->out_zp), d->lo, d->hi);
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const abs_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* out = eq_output(ctx, node, 0);
  const size_t n = out->count;
  if (out->type == EQ_T_INT8) {
    const int8_t* x = (const int8_t*)input->data;
    int8_t* y = (int8_t*)out->data;
    for (size_t i = 0; i < n; ++i) y[i] = (int8_t)abs_quantized(d, x[i]);
  } else if (out->type == EQ_T_INT16) {
    const int16_t* x = (const int16_t*)input->data;
    int16_t* y = (int16_t*)out->data;
    if (d->quantized) {
      for (size_t i = 0; i < n; ++i) y[i] = (int16_t)abs_quantized(d, x[i]);
    } else {
      for (size_t i = 0; i < n; ++i) y[i] = (int16_t)(uint16_t)(x[i] < 0 ? -x[i] : x[i]); /* 32768 wraps */
    }
  } else {
    const int32_t* x = (const int32_t*)input->data;
    int32_t* y = (int32_t*)out->data;
    for (size_t i = 0; i < n; ++i) y[i] = (int32_t)(x[i] < 0 ? 0u - (uint32_t)x[i] : (uint32_t)x[i]);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_abs = {prepare, invoke};
