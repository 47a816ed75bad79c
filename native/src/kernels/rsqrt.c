/* RSQRT, as LiteRT's elementwise kernel computes it:
 *   int8: per element in fixed point: 1/sqrt of the integer input (minus its zero point) by gemmlowp's
 *     Newton-Raphson (GetInvSqrtQuantizedMultiplierExp), then rescaled by 1/(sqrt(input_scale) *
 *     output_scale). An input equal to the zero point gives 127.
 *   int16 (zero points 0): a 513-entry interpolated table of 1/sqrtf (32767 * output_scale at and below 0).
 * An input below the zero point is a runtime error, as in LiteRT. */
#include <math.h>

#include "gemmlowp_fixedpoint.h"
#include "lut.h"
#include "transcendental.h"

enum { RSQRT_SHIFT = 20 }; /* keeps the intermediate 1/sqrt an integer */

typedef struct rsqrt_data {
  int32_t multiplier;
  int shift;
  int16_t lut[EQ_LUT16_SIZE];
} rsqrt_data;

static float rsqrt_f32(float x, const void* params) {
  if (x <= 0.0f) return 32767 * *(const float*)params;
  return 1.0f / sqrtf(x);
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s =
      eq_tr_prepare_unary(ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_INT16), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  rsqrt_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  const float in_scale = input->scale[0], out_scale = output->scale[0];
  if (input->type == EQ_T_INT16) {
    if (input->zero_point[0] != 0 || output->zero_point[0] != 0) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 needs zero points 0");
    }
    eq_lut_populate_16(in_scale, 0, out_scale, 0, rsqrt_f32, &out_scale, data->lut);
    return EDGEQ_OK;
  }
  /* SetRsqrtOutputMultiplier: the float product, inverted in double */
  const double real_multiplier = 1. / (double)(sqrtf(in_scale) * out_scale);
  eq_quantize_multiplier(real_multiplier, &data->multiplier, &data->shift);
  /* the final rescale shifts by shift - 20: keep that a valid int32 shift */
  if (!isfinite(real_multiplier) || data->shift - RSQRT_SHIFT < -31 || data->shift - RSQRT_SHIFT > 30) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "scales %g and %g out of range", (double)in_scale,
                    (double)out_scale);
  }
  return EDGEQ_OK;
}

/* GetInvSqrtQuantizedMultiplierExp(input, kReverseShift = -1): 1/sqrt(input) as a Q0 multiplier and a
 * left shift, for 2 <= input < 2^8 here (0 and 1 give INT32_MAX, shift 0). */
static void inv_sqrt_multiplier_exp(int32_t input, int32_t* out_multiplier, int* out_shift) {
  if (input <= 1) {
    *out_multiplier = INT32_MAX;
    *out_shift = 0;
    return;
  }
  int shift = 11;
  while (input >= (1 << 29)) {
    input /= 4;
    ++shift;
  }
  const int max_left_shift_bit_pairs = (eq_gl_clz32((uint32_t)input) - 1) / 2;
  const int left_shift_bit_pairs = max_left_shift_bit_pairs - 1;
  shift -= left_shift_bit_pairs;
  input = eq_wrap_shl32(input, 2 * left_shift_bit_pairs);
  /* Newton-Raphson for 1/sqrt in Q3: x <- 1.5 x - (input/2) x^3, from x = 1 */
  const int32_t half_input = eq_rdbpot(input >> 1, 1);
  const int32_t half_three = (1 << 28) + (1 << 27);
  int32_t x = 1 << 28;
  for (int i = 0; i < 5; ++i) {
    const int32_t x3 = eq_gl_rescale(eq_srdhm(eq_srdhm(x, x), x), 9, 3);
    x = eq_gl_rescale(eq_gl_sub(eq_srdhm(half_three, x), eq_srdhm(half_input, x3)), 6, 3);
  }
  x = eq_srdhm(x, 1518500250); /* times sqrt(2)/2 */
  if (shift < 0) {
    x = eq_wrap_shl32(x, -shift);
    shift = 0;
  }
  *out_multiplier = x;
  *out_shift = -shift;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const rsqrt_data* data = node->user;
  const int32_t in_zp = (int32_t)input->zero_point[0];
  if (input->type == EQ_T_INT16) {
    const int16_t* x = (const int16_t*)input->data;
    for (size_t i = 0; i < input->count; ++i) {
      if (x[i] < in_zp) return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "Rsqrt is only defined for positive values");
    }
    eq_lut16_apply(data->lut, x, (int16_t*)output->data, input->count);
    return EDGEQ_OK;
  }
  const int8_t* x = (const int8_t*)input->data;
  int8_t* y = (int8_t*)output->data;
  const int32_t out_zp = (int32_t)output->zero_point[0];
  for (size_t i = 0; i < input->count; ++i) {
    const int32_t value = x[i] - in_zp;
    if (value < 0) return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "Rsqrt is only defined for positive values");
    if (value == 0) { /* read as the largest output */
      y[i] = 127;
      continue;
    }
    int32_t inv_multiplier;
    int inv_shift;
    inv_sqrt_multiplier_exp(value, &inv_multiplier, &inv_shift);
    const int32_t inv = eq_mbqm(1, inv_multiplier, inv_shift + RSQRT_SHIFT);
    const int32_t v = eq_gl_add(eq_mbqm(inv, data->multiplier, data->shift - RSQRT_SHIFT), out_zp);
    y[i] = (int8_t)eq_clamp32(v, -128, 127);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_rsqrt = {prepare, invoke};
