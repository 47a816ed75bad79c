#include "fixedpoint.h"

#include <math.h>

void eq_quantize_multiplier(double m, int32_t* multiplier, int* shift) {
  if (m == 0.0 || !isfinite(m)) {
    *multiplier = 0;
    *shift = 0;
    return;
  }
  int exponent;
  const double q = frexp(m, &exponent);
  int64_t q_fixed = (int64_t)round(q * (double)(1LL << 31));
  if (q_fixed == (1LL << 31)) {
    q_fixed /= 2;
    ++exponent;
  }
  if (exponent < -31) {
    exponent = 0;
    q_fixed = 0;
  }
  *multiplier = (int32_t)q_fixed;
  *shift = exponent;
}

void eq_type_range(int32_t type, int32_t* lo, int32_t* hi) {
  switch (type) {
    case EQ_T_UINT8:
      *lo = 0;
      *hi = 255;
      return;
    case EQ_T_INT8:
      *lo = -128;
      *hi = 127;
      return;
    case EQ_T_INT16:
      *lo = -32768;
      *hi = 32767;
      return;
    default:
      *lo = INT32_MIN;
      *hi = INT32_MAX;
      return;
  }
}

static edgeq_status quantize_value(eq_context* ctx, const eq_tensor* output, float f, int32_t* q) {
  const float tmp = roundf(f / output->scale[0]);
  if (!(tmp >= -2147483648.0f && tmp <= 2147483520.0f)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "activation bound %g overflows int32 at scale %g", (double)f,
                    (double)output->scale[0]);
  }
  const int64_t zero_point = output->zero_point[0];
  const int64_t q64 = (zero_point < INT32_MIN || zero_point > INT32_MAX) ? INT64_MAX : zero_point + (int64_t)tmp;
  if (q64 < INT32_MIN || q64 > INT32_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "activation bound %g with zero point %lld overflows int32", (double)f,
                    (long long)output->zero_point[0]);
  }
  *q = (int32_t)q64;
  return EDGEQ_OK;
}

edgeq_status eq_activation_range(eq_context* ctx, int32_t activation, const eq_tensor* output, int32_t* act_min,
                                 int32_t* act_max) {
  int32_t qmin, qmax, q = 0;
  eq_type_range(output->type, &qmin, &qmax);
  edgeq_status s = EDGEQ_OK;
  *act_min = qmin;
  *act_max = qmax;
  switch (activation) {
    case EQ_ACT_NONE:
      return EDGEQ_OK;
    case EQ_ACT_RELU:
      if ((s = quantize_value(ctx, output, 0.0f, &q)) != EDGEQ_OK) return s;
      *act_min = q > qmin ? q : qmin;
      return EDGEQ_OK;
    case EQ_ACT_RELU6:
      if ((s = quantize_value(ctx, output, 0.0f, &q)) != EDGEQ_OK) return s;
      *act_min = q > qmin ? q : qmin;
      if ((s = quantize_value(ctx, output, 6.0f, &q)) != EDGEQ_OK) return s;
      *act_max = q < qmax ? q : qmax;
      return EDGEQ_OK;
    case EQ_ACT_RELU_N1_TO_1:
      if ((s = quantize_value(ctx, output, -1.0f, &q)) != EDGEQ_OK) return s;
      *act_min = q > qmin ? q : qmin;
      if ((s = quantize_value(ctx, output, 1.0f, &q)) != EDGEQ_OK) return s;
      *act_max = q < qmax ? q : qmax;
      return EDGEQ_OK;
    default: /* LiteRT leaves TANH, SIGN_BIT and unknown values unclamped on quantized outputs */
      return EDGEQ_OK;
  }
}

edgeq_status eq_check_quantized(eq_context* ctx, const eq_tensor* t, const char* role) {
  if (t->nq < 1) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s '%s' is not quantized", role, t->name);
  for (int32_t i = 0; i < t->nq; ++i) {
    if (!(t->scale[i] > 0.0f) || !isfinite(t->scale[i])) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s '%s' has scale %g; scales must be positive and finite", role,
                      t->name, (double)t->scale[i]);
    }
  }
  return EDGEQ_OK;
}
