/* gemmlowp's scalar int32 fixed-point math (fixedpoint/fixedpoint.h) as TFLite's softmax-family reference
 * kernels use it, rewritten from its semantics. A value "Qm" has m integer bits and 31 - m fractional bits.
 * gemmlowp adds and subtracts int32 raw values with plain (wrapping in practice) arithmetic; here that is
 * done in unsigned arithmetic so C gives the same bits without undefined behaviour. */
#ifndef EDGEQ_KERNELS_GEMMLOWP_FIXEDPOINT_H_
#define EDGEQ_KERNELS_GEMMLOWP_FIXEDPOINT_H_

#include <stdint.h>

#include "../fixedpoint.h"

static inline int32_t eq_gl_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t eq_gl_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* SaturatingRoundingMultiplyByPOT<exponent>: saturating left shift, or rounding right shift. */
static inline int32_t eq_gl_mul_pot(int32_t x, int exponent) {
  if (exponent > 0) {
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return eq_wrap_shl32(x, exponent);
  }
  return exponent < 0 ? eq_rdbpot(x, -exponent) : x;
}

/* Rescale<dst_bits>(Q(src_bits) x). */
static inline int32_t eq_gl_rescale(int32_t x, int src_bits, int dst_bits) {
  return eq_gl_mul_pot(x, src_bits - dst_bits);
}

/* RoundingHalfSum(a, b): (a + b) / 2 rounded half away from zero. */
static inline int32_t eq_gl_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* exp(a) for Q0 a in [-1/4, 0): Taylor expansion around -1/8. */
static inline int32_t eq_gl_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
  const int32_t constant_term = 1895147668;    /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883; /* 1/3 */
  const int32_t x = eq_gl_add(a, 1 << 28);     /* a + 1/8 */
  const int32_t x2 = eq_srdhm(x, x);
  const int32_t x3 = eq_srdhm(x2, x);
  const int32_t x4 = eq_srdhm(x2, x2);
  const int32_t x4_over_4 = eq_rdbpot(x4, 2);
  const int32_t poly = eq_rdbpot(eq_gl_add(eq_srdhm(eq_gl_add(x4_over_4, x3), constant_1_over_3), x2), 1);
  return eq_gl_add(constant_term, eq_srdhm(constant_term, eq_gl_add(x, poly)));
}

/* exp(a) for a <= 0 in Q(integer_bits), result in Q0 (1.0 saturates to INT32_MAX). */
static inline int32_t eq_gl_exp_on_negative_values(int32_t a, int integer_bits) {
  static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int fractional_bits = 31 - integer_bits;
  const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
  const int32_t a_mod_quarter_minus_one_quarter = eq_gl_sub(a & (one_quarter - 1), one_quarter);
  int32_t result = eq_gl_exp_on_interval_between_negative_one_quarter_and_0_excl(
      eq_gl_rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0));
  const int32_t remainder = eq_gl_sub(a_mod_quarter_minus_one_quarter, a);
  /* barrel[k] = exp(-2^(k-2)) in Q0, applied when that bit of the remainder is set */
  for (int exponent = -2; exponent <= 4; ++exponent) {
    if (integer_bits > exponent && (remainder & ((int32_t)1 << (fractional_bits + exponent)))) {
      result = eq_srdhm(result, barrel[exponent + 2]);
    }
  }
  if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) result = 0; /* below -32 */
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for Q0 a in [0, 1), result in Q0: three Newton-Raphson steps in Q2. */
static inline int32_t eq_gl_one_over_one_plus_x_for_x_in_0_1(int32_t a) {
  const int32_t half_denominator = eq_gl_rounding_half_sum(a, INT32_MAX);
  const int32_t constant_48_over_17 = 1515870810;
  const int32_t constant_neg_32_over_17 = -1010580540;
  int32_t x = eq_gl_add(constant_48_over_17, eq_srdhm(half_denominator, constant_neg_32_over_17));
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = eq_srdhm(half_denominator, x);
    const int32_t one_minus_half_denominator_times_x = eq_gl_sub((int32_t)1 << 29, half_denominator_times_x);
    x = eq_gl_add(x, eq_gl_rescale(eq_srdhm(x, one_minus_half_denominator_times_x), 4, 2));
  }
  return eq_gl_rescale(x, 1, 0); /* ExactMulByPot<-1> makes Q2 a Q1 */
}

static inline int eq_gl_clz32(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

/* tflite::GetReciprocal: 1/x for a positive Q(x_integer_digits) x, as a Q0 scale and a power of two. */
static inline int32_t eq_gl_reciprocal(int32_t x, int x_integer_digits, int* num_bits_over_unit) {
  const int headroom_plus_one = eq_gl_clz32((uint32_t)x); /* x > 0 so at most 31 */
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - (1u << 31));
  return eq_gl_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

/* SaturatingRoundingMultiplyByPOTParam for 0 <= exponent <= 31: a saturating left shift. */
static inline int32_t eq_gl_mul_pot_param(int32_t x, int exponent) {
  if (exponent == 0) return x;
  const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return eq_wrap_shl32(x, exponent);
}

static inline int32_t eq_gl_saturating_add(int32_t a, int32_t b) {
  const int64_t s = (int64_t)a + b;
  return s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : (int32_t)s);
}

static inline int32_t eq_gl_saturating_sub(int32_t a, int32_t b) {
  const int64_t s = (int64_t)a - b;
  return s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : (int32_t)s);
}

/* tflite::log_x_for_x_greater_than_or_equal_to_1<output_bits>(Q(input_bits) x) for x >= 1 (raw > 0):
 * log2 of the leading power of two (picked from x and x / sqrt 2) times log 2, plus a rational
 * approximation of the log of the remaining factor around 2^-1/4. */
static inline int32_t eq_gl_log_x_for_x_greater_than_or_equal_to_1(int32_t x, int input_bits, int output_bits) {
  const int accum_bits = output_bits + 1;
  const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
  const int32_t one_quarter = 536870912;
  const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769, alpha_f = 638450708;
  const int32_t shifted_quarter = eq_gl_rescale(one_quarter, 0, accum_bits);
  /* x read as a Q0 value; the shift is found here rather than by Rescale */
  const int z_a_headroom_plus_1 = eq_gl_clz32((uint32_t)x);
  const int32_t r_a_tmp = eq_gl_mul_pot_param(x, z_a_headroom_plus_1 - 1);
  const int32_t r_a_raw = eq_gl_mul_pot_param(eq_srdhm(r_a_tmp, sqrt_half), 1);
  const int32_t z_a_pow_2_adj =
      eq_gl_saturating_add(eq_gl_mul_pot_param(input_bits - z_a_headroom_plus_1, 31 - accum_bits), shifted_quarter);
  const int32_t z_b = eq_srdhm(x, sqrt_half);
  const int z_b_headroom = eq_gl_clz32((uint32_t)z_b) - 1;
  const int32_t r_b_raw = eq_gl_mul_pot_param(x, z_b_headroom);
  const int32_t z_b_pow_2_adj =
      eq_gl_saturating_sub(eq_gl_mul_pot_param(input_bits - z_b_headroom, 31 - accum_bits), shifted_quarter);
  const int32_t r = r_a_raw < r_b_raw ? r_a_raw : r_b_raw;
  const int32_t z_pow_2_adj = z_a_pow_2_adj > z_b_pow_2_adj ? z_a_pow_2_adj : z_b_pow_2_adj;
  const int32_t p = eq_gl_rounding_half_sum(r, sqrt_sqrt_half);
  int32_t q = eq_gl_sub(r, sqrt_sqrt_half);
  q = eq_gl_add(q, q);
  const int32_t common_sq = eq_srdhm(q, q);
  const int32_t num = eq_gl_add(eq_srdhm(q, r), eq_srdhm(eq_srdhm(q, common_sq), alpha_n));
  const int32_t denom_minus_one_0 = eq_gl_add(
      eq_srdhm(p, eq_gl_add(eq_gl_add(alpha_i, q), eq_srdhm(alpha_d, common_sq))), eq_srdhm(alpha_f, q));
  const int32_t recip_denom = eq_gl_one_over_one_plus_x_for_x_in_0_1(denom_minus_one_0);
  const int32_t num_scaled = eq_gl_rescale(num, 0, accum_bits);
  return eq_gl_rescale(eq_gl_add(eq_srdhm(z_pow_2_adj, log_2), eq_srdhm(num_scaled, recip_denom)), accum_bits,
                       output_bits);
}

#endif
