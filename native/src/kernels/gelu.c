/* GELU, as LiteRT's kernel computes it (it has one kernel, used by the reference resolver too): a table of
 * the float GELU built from the stored scales and zero points, 256 entries for int8/uint8, 513
 * interpolated entries for int16 (any zero points). GeluOptions.approximate picks the tanh form. */
#include <math.h>

#include "lut.h"
#include "transcendental.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* gcc ignores the STDC pragma; -std=gnu11 would contract */
#endif

enum { GELU_APPROXIMATE = 0 };

typedef union gelu_data {
  uint8_t lut8[256];
  int16_t lut16[EQ_LUT16_SIZE];
} gelu_data;

/* reference_ops::GeluTransform: 0.5 x erfc(-x / sqrt 2), in float, in this order. */
static float gelu_f32(float x, const void* params) {
  (void)params;
  return 0.5f * x * erfcf(x * (float)-0.70710678118654752440);
}

/* reference_ops::GeluTransformApproximate: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); sqrt(2/pi) is
 * the float nearest the double product M_2_SQRTPI * M_SQRT1_2. */
static float gelu_approximate_f32(float x, const void* params) {
  (void)params;
  const float sqrt_2_over_pi = (float)(1.12837916709551257390 * 0.70710678118654752440);
  return 0.5f * x * (1.f + tanhf(sqrt_2_over_pi * (x + 0.044715f * x * x * x)));
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s = eq_tr_prepare_unary(
      ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_UINT8) | EQ_TYPE_BIT(EQ_T_INT16), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  gelu_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  /* LiteRT reads the option only from a GeluOptions table; otherwise it is false. */
  const int approximate = eq_opt_bool(node, GELU_APPROXIMATE, 0);
  const eq_lut_fn fn = approximate ? gelu_approximate_f32 : gelu_f32;
  const int32_t in_zp = (int32_t)input->zero_point[0], out_zp = (int32_t)output->zero_point[0];
  if (input->type == EQ_T_INT16) {
    eq_lut_populate_16(input->scale[0], in_zp, output->scale[0], out_zp, fn, NULL, data->lut16);
  } else {
    eq_lut_populate_8(input->type == EQ_T_INT8, input->scale[0], in_zp, output->scale[0], out_zp, fn, NULL,
                      data->lut8);
  }
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const gelu_data* data = node->user;
  if (input->type == EQ_T_INT16) {
    eq_lut16_apply(data->lut16, (const int16_t*)input->data, (int16_t*)output->data, input->count);
  } else {
    eq_lut8_apply(data->lut8, input->data, output->data, input->count);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_gelu = {prepare, invoke};
