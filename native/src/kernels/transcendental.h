/* Shared prepare checks of the transcendental activations (LOGISTIC, TANH, SOFTMAX, HARD_SWISH, EXP, RSQRT,
 * SQRT, GELU, ELU, LOG_SOFTMAX): one quantized input, one quantized output of the same shape. */
#ifndef EDGEQ_KERNELS_TRANSCENDENTAL_H_
#define EDGEQ_KERNELS_TRANSCENDENTAL_H_

#include <math.h>

#include "../fixedpoint.h"

/* The float math of these kernels must round like LiteRT's: no a*b+c contracted into an FMA. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Bit i set: tensor type i accepted. */
#define EQ_TYPE_BIT(t) (1u << (t))

/* Checks 1 input and 1 output, both of a type in `types`, same shape and (unless `mixed`) same type, both
 * quantized with positive finite scales and zero points of at most 2^24 in magnitude (LiteRT reads the
 * first scale and zero point of each). */
static inline edgeq_status eq_tr_prepare_unary(eq_context* ctx, eq_node* node, uint32_t types, int mixed,
                                               eq_tensor** input_out, eq_tensor** output_out) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 1 || node->noutputs != 1 || input == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  if (input->type < 0 || input->type >= 32 || !(types & EQ_TYPE_BIT(input->type))) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input type %s", eq_type_name(input->type));
  }
  if (!mixed && output->type != input->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input is %s but output is %s", eq_type_name(input->type),
                    eq_type_name(output->type));
  }
  if (!eq_same_shape(input, output)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape differs from input shape");
  }
  edgeq_status s = eq_check_quantized(ctx, input, "input");
  if (s == EDGEQ_OK) s = eq_check_quantized(ctx, output, "output");
  if (s != EDGEQ_OK) return s;
  /* LiteRT never range-checks these zero points (nor do its kernels need it); beyond 2^24 they would stop
   * being exact as floats and could overflow int32 differences, so those are refused. */
  const eq_tensor* both[2] = {input, output};
  for (int i = 0; i < 2; ++i) {
    if (both[i]->zero_point[0] < -(1 << 24) || both[i]->zero_point[0] > (1 << 24)) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s zero point %lld beyond +-2^24", i == 0 ? "input" : "output",
                      (long long)both[i]->zero_point[0]);
    }
  }
  *input_out = input;
  *output_out = output;
  return EDGEQ_OK;
}

/* tflite::CheckedLog2 for a positive finite x: whether x is within 1e-3 (in log2, float math) of a power
 * of two, and that power. So a scale of 1.0005 * 2^-12 counts as 2^-12. */
static inline int eq_checked_log2(float x, int* log2_result) {
  const float x_log2 = logf(x) * (1.0f / logf(2.0f));
  const float x_log2_rounded = roundf(x_log2);
  *log2_result = (int)x_log2_rounded;
  return fabsf(x_log2 - x_log2_rounded) < 1e-3f;
}

/* The int16 input rescaling of LOGISTIC and TANH (SigmoidPrepare/TanhPrepare): to units of 1/(3*4096) by
 * an integer multiplier and a right shift, or, for a power-of-two scale whose shift (12 + log2 scale) is at
 * most pot_shift_ok_max, multiplier 0, which invoke reads as 3 << shift. */
static inline edgeq_status eq_tr_int16_input_rescale(eq_context* ctx, float input_scale, int pot_shift_ok_max,
                                                     int32_t* multiplier, int* left_shift) {
  int log2_rounded;
  int pot = eq_checked_log2(input_scale, &log2_rounded);
  const int shift = 12 + log2_rounded;
  if (pot && shift >= 0 && shift <= pot_shift_ok_max) {
    *multiplier = 0;
    *left_shift = shift;
    return EDGEQ_OK;
  }
  double m = (double)input_scale * 4096.0 * 3.0;
  int s = 0;
  while (m <= 32767.0 / 2.0 && s <= 30) {
    ++s;
    m *= 2.0;
  }
  if (!(m < 2147483648.0)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input scale %g too large for the int16 table", (double)input_scale);
  }
  *multiplier = (int32_t)m;
  *left_shift = s;
  return EDGEQ_OK;
}

#endif
