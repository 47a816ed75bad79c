/* TFLite's fixed-point arithmetic (gemmlowp rounding, double-rounding MultiplyByQuantizedMultiplier as
 * LiteRT's pip build compiles it), written so that C's rules give the same bits: products that TFLite
 * lets wrap are formed in unsigned arithmetic, right shifts of negatives are arithmetic (as gcc and
 * clang define them). */
#ifndef EDGEQ_FIXEDPOINT_H_
#define EDGEQ_FIXEDPOINT_H_

#include <stdint.h>

#include "internal.h"

/* x * 2^shift wrapped to 32 bits. A hostile scale ratio can ask for a shift of 32 or more (undefined in C
 * and in LiteRT); the wrapped product is then 0. */
static inline int32_t eq_wrap_shl32(int32_t x, int shift) {
  return shift < 32 ? (int32_t)((uint32_t)x << shift) : 0;
}

/* gemmlowp::SaturatingRoundingDoublingHighMul */
static inline int32_t eq_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp::RoundingDivideByPOT: round half away from zero. */
static inline int32_t eq_rdbpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* tflite::MultiplyByQuantizedMultiplier(int32_t, ...), double rounding. */
static inline int32_t eq_mbqm(int32_t x, int32_t multiplier, int shift) {
  int left = shift > 0 ? shift : 0;
  int right = shift > 0 ? 0 : -shift;
  return eq_rdbpot(eq_srdhm(eq_wrap_shl32(x, left), multiplier), right);
}

/* tflite::MultiplyByQuantizedMultiplier(int64_t, ...): 16-bit reduced multiplier, one rounding. */
static inline int32_t eq_mbqm64(int64_t x, int32_t multiplier, int shift) {
  int32_t reduced = multiplier < 0x7FFF0000 ? ((multiplier + (1 << 15)) >> 16) : 0x7FFF;
  int total_shift = 15 - shift;
  uint64_t product = (uint64_t)x * (uint64_t)(int64_t)reduced;
  /* LiteRT assumes shift in [-31, 8); outside it (hostile scales) the result only has to be defined. */
  if (total_shift < 1) return total_shift > -32 ? (int32_t)(uint32_t)(product << -total_shift) : 0;
  if (total_shift > 63) return 0;
  x = (int64_t)(product + ((uint64_t)1 << (total_shift - 1)));
  return (int32_t)(x >> total_shift);
}

/* tflite::MultiplyByQuantizedMultiplierSmallerThanOneExp (double rounding). */
static inline int32_t eq_mbqm_smaller_than_one(int32_t x, int32_t multiplier, int left_shift) {
  return eq_rdbpot(eq_srdhm(x, multiplier), -left_shift);
}

/* tflite::MultiplyByQuantizedMultiplierGreaterThanOne (double rounding). */
static inline int32_t eq_mbqm_greater_than_one(int32_t x, int32_t multiplier, int left_shift) {
  return eq_srdhm(eq_wrap_shl32(x, left_shift), multiplier);
}

static inline int32_t eq_clamp32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* tflite::QuantizeMultiplier: a double as a Q31 significand and a power-of-two exponent. */
void eq_quantize_multiplier(double m, int32_t* multiplier, int* shift);

/* The range of the output type narrowed by a fused activation, as CalculateActivationRangeQuantized
 * computes it from the output's (first) scale and zero point. Like LiteRT, other
 * activations (TANH, SIGN_BIT) leave the range unclamped. */
edgeq_status eq_activation_range(eq_context* ctx, int32_t activation, const eq_tensor* output, int32_t* act_min,
                                 int32_t* act_max);

/* The type's integer limits (INT8, UINT8, INT16, INT32). */
void eq_type_range(int32_t type, int32_t* lo, int32_t* hi);

/* Checks that a tensor is per-tensor quantized with a positive finite scale (kernels' inputs/outputs). */
edgeq_status eq_check_quantized(eq_context* ctx, const eq_tensor* t, const char* role);

#endif
