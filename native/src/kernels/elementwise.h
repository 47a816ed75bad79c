/* Helpers shared by the elementwise binary ops and the simple activations: operand checks, option
 * tables, multipliers computed the way LiteRT's Prepare functions compute them, and the ADD/SUB
 * requantization. */
#ifndef EDGEQ_KERNELS_ELEMENTWISE_H_
#define EDGEQ_KERNELS_ELEMENTWISE_H_

#include <math.h>

#include "../fixedpoint.h"
#include "broadcast.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define EW_SSE2 1
#else
#define EW_SSE2 0
#endif

/* The fused activation, NONE without an options table (a mistyped table was dropped at load, as LiteRT
 * reads it). */
static inline int32_t ew_activation(eq_node* node) { return eq_opt_i8(node, 0, EQ_ACT_NONE); }

static inline edgeq_status ew_operands(eq_context* ctx, const eq_node* node, int32_t ninputs, eq_tensor** in,
                                       eq_tensor** out) {
  *out = NULL;
  for (int32_t i = 0; i < ninputs; ++i) in[i] = NULL;
  if (node->ninputs != ninputs || node->noutputs != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects %d input%s and 1 output, has %d and %d", (int)ninputs,
                    ninputs == 1 ? "" : "s", (int)node->ninputs, (int)node->noutputs);
  }
  for (int32_t i = 0; i < ninputs; ++i) {
    in[i] = eq_input(ctx, node, i);
    if (in[i] == NULL) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d is omitted", (int)i);
  }
  *out = eq_output(ctx, node, 0);
  return EDGEQ_OK;
}

static inline int ew_is_quantizable(int32_t type) {
  return type == EQ_T_INT8 || type == EQ_T_UINT8 || type == EQ_T_INT16;
}

/* A quantized operand: positive finite scale, zero point inside its type's range (which keeps every
 * offset arithmetic below within int32), and 0 when `symmetric`. Only the first scale and zero point
 * count, as in LiteRT's TfLiteTensor.params. */
static inline edgeq_status ew_check_quant(eq_context* ctx, const eq_tensor* t, const char* role, int symmetric) {
  edgeq_status s = eq_check_quantized(ctx, t, role);
  if (s != EDGEQ_OK) return s;
  int32_t lo, hi;
  eq_type_range(t->type, &lo, &hi);
  const int64_t zp = t->zero_point[0];
  if (zp < lo || zp > hi) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' has zero point %lld outside the %s range", role, t->name,
                    (long long)zp, eq_type_name(t->type));
  }
  if (symmetric && zp != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' is %s with zero point %lld; LiteRT requires 0", role,
                    t->name, eq_type_name(t->type), (long long)zp);
  }
  return EDGEQ_OK;
}

/* tflite::QuantizeMultiplier, refusing what LiteRT's multiply cannot take: non-finite values and left
 * shifts of 32 or more (a shift by the full width). */
static inline edgeq_status ew_multiplier(eq_context* ctx, double real, int32_t* multiplier, int* shift,
                                         const char* what) {
  if (!isfinite(real)) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s multiplier is not finite", what);
  eq_quantize_multiplier(real, multiplier, shift);
  if (*shift > 31) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s multiplier %g needs a left shift of %d", what, real, *shift);
  }
  return EDGEQ_OK;
}

/* tflite::QuantizeMultiplierSmallerThanOneExp: LiteRT aborts unless 0 < real < 1 (and the rounded
 * significand keeps the shift <= 0). */
static inline edgeq_status ew_multiplier_below_one(eq_context* ctx, double real, int32_t* multiplier, int* shift,
                                                   const char* what) {
  if (!(real > 0.0 && real < 1.0)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s multiplier %g is outside (0, 1), which LiteRT refuses", what,
                    real);
  }
  eq_quantize_multiplier(real, multiplier, shift);
  if (*shift > 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s multiplier %.17g rounds up to 1, which LiteRT refuses", what,
                    real);
  }
  return EDGEQ_OK;
}

/* eq_activation_range, after checking that no bound overflows int32 once the zero point is added (the
 * sum is undefined in LiteRT and in the shared helper alike). */
static inline edgeq_status ew_activation_range(eq_context* ctx, int32_t activation, const eq_tensor* out,
                                               int32_t* act_min, int32_t* act_max) {
  float bounds[2];
  size_t n = 0;
  if (activation == EQ_ACT_RELU) {
    bounds[n++] = 0.0f;
  } else if (activation == EQ_ACT_RELU6) {
    bounds[n++] = 0.0f;
    bounds[n++] = 6.0f;
  } else if (activation == EQ_ACT_RELU_N1_TO_1) {
    bounds[n++] = -1.0f;
    bounds[n++] = 1.0f;
  }
  for (size_t i = 0; i < n; ++i) {
    const float r = roundf(bounds[i] / out->scale[0]);
    const int64_t q = (r >= -2147483648.0f && r < 2147483648.0f) ? (int64_t)r + out->zero_point[0] : INT64_MAX;
    if (q < INT32_MIN || q > INT32_MAX) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "fused activation bound %g overflows int32 at output scale %g",
                      (double)bounds[i], (double)out->scale[0]);
    }
  }
  return eq_activation_range(ctx, activation, out, act_min, act_max);
}

/* LiteRT clamps with max first, then min: when a hostile range has min > max the result is max. */
static inline int32_t ew_clamp(int32_t x, int32_t lo, int32_t hi) {
  x = x > lo ? x : lo;
  return x < hi ? x : hi;
}

/* CheckedLog2: log2 of a float scale in float arithmetic, "power of two" when within 1e-3 of an integer. */
static inline int ew_checked_log2(float x, int* log2_result) {
  const float x_log2 = logf(x) * (1.0f / logf(2.0f));
  const float rounded = roundf(x_log2);
  *log2_result = (int)rounded;
  return fabsf(x_log2 - rounded) < 1e-3f;
}

/* gemmlowp::RoundingDivideByPOT instantiated for int16 (the power-of-two int16 paths): the mask is
 * formed in 64 bits and narrowed to int16, so exponents of 16 and more give LiteRT's odd results too. */
static inline int16_t ew_rdbpot_s16(int16_t x, int exponent) {
  const int16_t mask = (int16_t)(uint16_t)(((uint64_t)1 << exponent) - 1);
  const int16_t remainder = (int16_t)(x & mask);
  const int16_t threshold = (int16_t)((mask >> 1) + (x < 0 ? 1 : 0));
  return (int16_t)((x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* ADD/SUB general quantized path (int8, uint8, and int16 when not power-of-two): both inputs are shifted
 * left, rescaled to twice the larger input scale, summed, and rescaled to the output. */
typedef struct ew_addsub {
  int32_t in1_offset, in2_offset, out_offset;
  int32_t in1_multiplier, in2_multiplier, out_multiplier;
  int in1_shift, in2_shift, out_shift;
  int left_shift;
  int32_t act_min, act_max;
  /* 8-bit types: each input's rescaled value for every stored byte, so a row does one multiply. */
  int32_t table1[256], table2[256];
} ew_addsub;

/* One input's offset value, shifted left and rescaled (MultiplyByQuantizedMultiplierSmallerThanOneExp). */
static inline int32_t ew_addsub_scale(int32_t x, int left_shift, int32_t multiplier, int shift) {
  return eq_mbqm_smaller_than_one((int32_t)((uint32_t)x << left_shift), multiplier, shift);
}

/* eq_mbqm_smaller_than_one when the multiplier is positive: SaturatingRoundingDoublingHighMul's one
 * saturating case (both operands INT32_MIN) cannot arise, and the loop stays branch-free. */
static inline int32_t ew_rescale_down(int32_t x, int32_t multiplier, int shift) {
  const int64_t ab = (int64_t)x * multiplier;
  const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : 1 - ((int64_t)1 << 30);
  return eq_rdbpot((int32_t)((ab + nudge) / ((int64_t)1 << 31)), -shift);
}

/* Fills the 8-bit tables: byte k stands for int8 (int8_t)k or uint8 k. */
static inline void ew_addsub_tables(ew_addsub* p, int32_t type) {
  for (int k = 0; k < 256; ++k) {
    const int32_t q = type == EQ_T_INT8 ? (int32_t)(int8_t)(uint8_t)k : k;
    p->table1[k] = ew_addsub_scale(q + p->in1_offset, p->left_shift, p->in1_multiplier, p->in1_shift);
    p->table2[k] = ew_addsub_scale(q + p->in2_offset, p->left_shift, p->in2_multiplier, p->in2_shift);
  }
}

static inline edgeq_status ew_addsub_prepare(eq_context* ctx, const eq_tensor* in1, const eq_tensor* in2,
                                             const eq_tensor* out, int32_t activation, ew_addsub* p) {
  p->in1_offset = -(int32_t)in1->zero_point[0];
  p->in2_offset = -(int32_t)in2->zero_point[0];
  p->out_offset = (int32_t)out->zero_point[0];
  p->left_shift = out->type == EQ_T_INT16 ? 15 : 20;
  /* float max, doubled (exact), then double divisions; the output's divisor is a float product. */
  const float s1 = in1->scale[0], s2 = in2->scale[0];
  const double twice_max = (double)(2.0f * (s1 > s2 ? s1 : s2));
  const float divisor = (float)(1 << p->left_shift) * out->scale[0];
  edgeq_status s = ew_multiplier_below_one(ctx, (double)s1 / twice_max, &p->in1_multiplier, &p->in1_shift, "input 1");
  if (s == EDGEQ_OK) {
    s = ew_multiplier_below_one(ctx, (double)s2 / twice_max, &p->in2_multiplier, &p->in2_shift, "input 2");
  }
  const double real_out = twice_max / (double)divisor;
  if (s == EDGEQ_OK && !(real_out < 1.0)) {
    /* ADD aborts here; SUB goes on to a rounding shift by a negative amount (undefined; on x86 it
     * leaves only the sign), so neither has a result to match. */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "output multiplier %g >= 1: the output scale %g is too small for input scales %g and %g",
                    real_out, (double)out->scale[0], (double)s1, (double)s2);
  }
  if (s == EDGEQ_OK) s = ew_multiplier_below_one(ctx, real_out, &p->out_multiplier, &p->out_shift, "output");
  if (s == EDGEQ_OK) s = ew_activation_range(ctx, activation, out, &p->act_min, &p->act_max);
  if (s == EDGEQ_OK && out->type != EQ_T_INT16) ew_addsub_tables(p, out->type);
  return s;
}

static inline int32_t ew_addsub_finish(const ew_addsub* p, int32_t raw) {
  return ew_clamp(ew_rescale_down(raw, p->out_multiplier, p->out_shift) + p->out_offset, p->act_min, p->act_max);
}

#if EW_SSE2
/* ew_rescale_down on four lanes (multiplier >= 0, right shift 0..31). For M >= 0,
 * SaturatingRoundingDoublingHighMul(x, M) equals floor((x * M + 2^30) / 2^31) for either sign of the
 * product. SSE2 only multiplies unsigned 32 x 32 -> 64: a negative x reads as x + 2^32, which adds exactly
 * 2 * M after the shift by 31, taken back off modulo 2^32. RoundingDivideByPOT then follows gemmlowp. */
static inline __m128i ew_rescale_down_x4(__m128i x, __m128i multiplier, __m128i mask, __m128i half_mask,
                                         __m128i right) {
  const __m128i round = _mm_set_epi32(0, 1 << 30, 0, 1 << 30);
  const __m128i even = _mm_srli_epi64(_mm_add_epi64(_mm_mul_epu32(x, multiplier), round), 31);
  const __m128i odd = _mm_srli_epi64(_mm_add_epi64(_mm_mul_epu32(_mm_srli_epi64(x, 32), multiplier), round), 31);
  __m128i t = _mm_or_si128(_mm_and_si128(even, _mm_set_epi32(0, -1, 0, -1)), _mm_slli_epi64(odd, 32));
  t = _mm_sub_epi32(t, _mm_slli_epi32(_mm_and_si128(multiplier, _mm_srai_epi32(x, 31)), 1));
  const __m128i remainder = _mm_and_si128(t, mask);
  const __m128i threshold = _mm_sub_epi32(half_mask, _mm_srai_epi32(t, 31));
  return _mm_sub_epi32(_mm_sra_epi32(t, right), _mm_cmpgt_epi32(remainder, threshold));
}
#endif

/* An 8-bit ADD or SUB row (the residual-connection hot path): each element is table1[a] +/- table2[b],
 * rescaled to the output, offset and clamped; with SSE2, sixteen at a time. */
static inline void ew_addsub_row8(const ew_addsub* p, const uint8_t* a, size_t a_inc, const uint8_t* b, size_t b_inc,
                                  uint8_t* out, size_t n, int subtract, int is_signed) {
  const int32_t* t1 = p->table1;
  const int32_t* t2 = p->table2;
  size_t i = 0;
  (void)is_signed; /* only the SIMD path packs by signedness */
#if EW_SSE2
  const __m128i multiplier = _mm_set1_epi32(p->out_multiplier);
  const int right_shift = -p->out_shift;
  const __m128i mask = _mm_set1_epi32((int32_t)(((uint32_t)1 << right_shift) - 1u));
  const __m128i half_mask = _mm_srai_epi32(mask, 1);
  const __m128i right = _mm_cvtsi32_si128(right_shift);
  const __m128i offset = _mm_set1_epi32(p->out_offset);
  /* The clamp runs on int16 lanes after a saturating pack, which keeps values outside int16 at its ends:
   * both bounds lie inside the 8-bit type, so the result is the same as clamping the int32. */
  const __m128i lo = _mm_set1_epi16((int16_t)p->act_min), hi = _mm_set1_epi16((int16_t)p->act_max);
  for (; i + 16 <= n; i += 16) {
    int32_t raw[16];
    for (int k = 0; k < 16; ++k) {
      const int32_t x = t1[a[(i + (size_t)k) * a_inc]], y = t2[b[(i + (size_t)k) * b_inc]];
      raw[k] = subtract ? x - y : x + y;
    }
    __m128i v[4];
    for (int k = 0; k < 4; ++k) {
      const __m128i r = _mm_loadu_si128((const __m128i*)(const void*)(raw + 4 * k));
      v[k] = _mm_add_epi32(ew_rescale_down_x4(r, multiplier, mask, half_mask, right), offset);
    }
    const __m128i w0 = _mm_min_epi16(_mm_max_epi16(_mm_packs_epi32(v[0], v[1]), lo), hi);
    const __m128i w1 = _mm_min_epi16(_mm_max_epi16(_mm_packs_epi32(v[2], v[3]), lo), hi);
    const __m128i bytes = is_signed ? _mm_packs_epi16(w0, w1) : _mm_packus_epi16(w0, w1);
    _mm_storeu_si128((__m128i*)(void*)(out + i), bytes);
  }
#endif
  for (; i < n; ++i) {
    const int32_t x = t1[a[i * a_inc]], y = t2[b[i * b_inc]];
    out[i] = (uint8_t)ew_addsub_finish(p, subtract ? x - y : x + y);
  }
}

/* Unquantized integer outputs: CalculateActivationRange<T> bounds. */
typedef struct ew_int_range {
  int64_t act_min, act_max;
} ew_int_range;

static inline void ew_int_activation_range(int32_t activation, int64_t lowest, int64_t highest, ew_int_range* r) {
  r->act_min = lowest;
  r->act_max = highest;
  if (activation == EQ_ACT_RELU) {
    r->act_min = 0;
  } else if (activation == EQ_ACT_RELU6) {
    r->act_min = 0;
    r->act_max = 6;
  } else if (activation == EQ_ACT_RELU_N1_TO_1) {
    r->act_min = -1;
    r->act_max = 1;
  }
}

static inline int64_t ew_clamp64(int64_t x, int64_t lo, int64_t hi) {
  x = x > lo ? x : lo;
  return x < hi ? x : hi;
}

#endif
