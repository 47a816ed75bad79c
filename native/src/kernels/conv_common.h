/* What CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV share: LiteRT's window arithmetic (padding.h), the
 * output multipliers of PopulateConvolutionQuantizationParams, bias and filter checks, INT4 unpacking and
 * the requantization step of the reference kernels. Everything is static inline: each kernel file is its
 * own translation unit. */
#ifndef EDGEQ_CONV_COMMON_H_
#define EDGEQ_CONV_COMMON_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../fixedpoint.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define CONV_SSE2 1
#else
#define CONV_SSE2 0
#endif

#if defined(__GNUC__)
#define CONV_INLINE inline __attribute__((always_inline))
#else
#define CONV_INLINE inline
#endif

/* AVX2 kernels are compiled for that target alone (the rest of the library stays baseline x86-64) and
 * chosen at load when the CPU and OS support them. Compiling with EDGEQ_NO_AVX2, or loading with the
 * environment variable EDGEQ_NO_AVX2 set (not "0"), keeps the SSE2 kernels, so tests can run both. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(EDGEQ_NO_AVX2)
#include <immintrin.h>
#include <stdlib.h>
#define CONV_AVX2 1
#define CONV_AVX2_TARGET __attribute__((target("avx2")))
#define CONV_AVX2_INLINE inline __attribute__((always_inline, target("avx2")))
static inline int conv_have_avx2(void) {
  const char* off = getenv("EDGEQ_NO_AVX2");
  if (off != NULL && off[0] != '\0' && strcmp(off, "0") != 0) return 0;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}
#else
#define CONV_AVX2 0
static inline int conv_have_avx2(void) { return 0; }
#endif

/* BuiltinOptions union members and TensorType values as schema.fbs numbers them. */
enum { CONV_TENSOR_TYPE_FLOAT32 = 0, CONV_TENSOR_TYPE_INT32 = 2, CONV_TENSOR_TYPE_INT64 = 4 };

/* ComputeOutSizeChecked and ComputePaddingWithOffsetChecked: how many positions a window of `filter` taps
 * spaced `dilation` apart takes over `in` with `stride`, and the padding before the first row. 0 where
 * LiteRT refuses (unknown padding, non-positive stride or dilation, a negative or oversized result). C's
 * division truncates toward zero as C++'s does, so VALID sizes that round up from a negative fraction
 * give 0 here as there. */
static inline int conv_window(int32_t padding, int64_t in, int64_t filter, int64_t stride, int64_t dilation,
                              int32_t* out, int32_t* pad_before) {
  if ((padding != EQ_PAD_SAME && padding != EQ_PAD_VALID) || in < 0 || filter <= 0 || stride <= 0 ||
      dilation <= 0) {
    return 0;
  }
  const int64_t effective = (filter - 1) * dilation + 1;
  const int64_t size = padding == EQ_PAD_SAME ? (in + stride - 1) / stride : (in + stride - effective) / stride;
  if (size < 0 || size > INT32_MAX) return 0;
  int64_t total = (size - 1) * stride + effective - in;
  if (total < 0) total = 0;
  if (total / 2 > INT32_MAX) return 0;
  *out = (int32_t)size;
  *pad_before = (int32_t)(total / 2);
  return 1;
}

/* The zero point of a quantized activation tensor, which must lie in its type's range (else a padded
 * value could not be stored in the type, and LiteRT's arithmetic would be meaningless anyway). */
static inline edgeq_status conv_check_activation(eq_context* ctx, const eq_tensor* t, const char* role) {
  edgeq_status s = eq_check_quantized(ctx, t, role);
  if (s != EDGEQ_OK) return s;
  if (t->nq != 1) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' has %d scales; it must be quantized per tensor", role,
                    t->name, (int)t->nq);
  }
  int32_t lo, hi;
  eq_type_range(t->type, &lo, &hi);
  if (t->zero_point[0] < lo || t->zero_point[0] > hi) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s '%s' has zero point %lld outside its type's range", role, t->name,
                    (long long)t->zero_point[0]);
  }
  if (t->type == EQ_T_INT16 && t->zero_point[0] != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 %s '%s' has zero point %lld; LiteRT needs 0", role, t->name,
                    (long long)t->zero_point[0]);
  }
  return EDGEQ_OK;
}

/* Filter quantization: one scale or one per output channel (`channels`), positive and finite; a
 * per-channel filter must be quantized along a dimension of that size, as PopulateConvolutionQuantizationParams
 * checks. */
static inline edgeq_status conv_check_filter_quant(eq_context* ctx, const eq_tensor* filter, int32_t channels) {
  edgeq_status s = eq_check_quantized(ctx, filter, "filter");
  if (s != EDGEQ_OK) return s;
  if (filter->nq != 1 && filter->nq != channels) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter '%s' has %d scales for %d output channels", filter->name,
                    (int)filter->nq, (int)channels);
  }
  if (filter->nq > 1 && filter->dims[filter->qdim] != channels) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter '%s' is quantized along dimension %d, not the output channels",
                    filter->name, (int)filter->qdim);
  }
  return EDGEQ_OK;
}

/* A constant bias of `channels` elements of type int32 or int64 (as allowed), with zero point 0 when it
 * has a single (legacy) zero point and `check_zero_point`: LiteRT reads only that one. */
static inline edgeq_status conv_check_bias(eq_context* ctx, const eq_tensor* bias, int32_t channels, int allow32,
                                           int allow64, int check_zero_point) {
  if (!((bias->type == EQ_T_INT32 && allow32) || (bias->type == EQ_T_INT64 && allow64))) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "bias '%s' has type %s; this input type takes %s", bias->name,
                    eq_type_name(bias->type), allow32 && allow64 ? "INT32 or INT64" : (allow64 ? "INT64" : "INT32"));
  }
  if (bias->count != (size_t)channels) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias '%s' has %zu elements for %d output channels", bias->name,
                    bias->count, (int)channels);
  }
  if (check_zero_point && bias->nq == 1 && bias->zero_point[0] != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias '%s' has zero point %lld; it must be 0", bias->name,
                    (long long)bias->zero_point[0]);
  }
  if (!bias->is_constant || bias->data == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "bias '%s' is not a constant; edgeq folds biases at load",
                    bias->name);
  }
  return EDGEQ_OK;
}

static inline int64_t conv_bias_at(const eq_tensor* bias, size_t i) {
  if (bias == NULL) return 0;
  return bias->type == EQ_T_INT64 ? ((const int64_t*)bias->data)[i] : ((const int32_t*)bias->data)[i];
}

/* Per output channel multipliers as PopulateConvolutionQuantizationParams computes them: the input scale
 * times the channel's filter scale (the first scale broadcast when per tensor) over the output scale, all
 * in double. Legacy uint8 instead uses one multiplier from the FLOAT product of the input and filter scales
 * (GetQuantizedConvolutionMultipler), after checking that a bias' scale is within 2% of the output scale
 * of that product. `max_shift` is the largest left shift the chosen MultiplyByQuantizedMultiplier variant
 * can take without undefined behaviour (31 for the int32 one, 14 for the int64 one). */
static inline edgeq_status conv_multipliers(eq_context* ctx, const eq_tensor* input, const eq_tensor* filter,
                                            const eq_tensor* bias, const eq_tensor* output, int32_t channels,
                                            int max_shift, int32_t* multiplier, int32_t* shift) {
  const double out_scale = (double)output->scale[0];
  double legacy = 0.0;
  if (input->type == EQ_T_UINT8) {
    const double product = (double)input->scale[0] * (double)filter->scale[0];
    if (bias != NULL) {
      const double bias_scale = bias->nq == 1 ? (double)bias->scale[0] : 0.0; /* LiteRT's params.scale */
      if (!(fabs(product - bias_scale) / out_scale <= 0.02)) {
        return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                        "bias scale %g differs from input scale x filter scale %g by more than 2%% of the output "
                        "scale; LiteRT refuses such uint8 models",
                        bias_scale, product);
      }
    }
    legacy = (double)(input->scale[0] * filter->scale[0]) / out_scale;
  }
  for (int32_t c = 0; c < channels; ++c) {
    const double real = input->type == EQ_T_UINT8
                            ? legacy
                            : (double)input->scale[0] * (double)filter->scale[filter->nq > 1 ? c : 0] / out_scale;
    int s;
    eq_quantize_multiplier(real, &multiplier[c], &s);
    if (s > max_shift) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                      "output channel %d has effective scale %g, too large for LiteRT's fixed-point rescaling",
                      (int)c, real);
    }
    shift[c] = s;
  }
  return EDGEQ_OK;
}

/* tflite::MultiplyByQuantizedMultiplier(int64_t, ...) with the product and rounding formed in unsigned
 * arithmetic, so hostile accumulators wrap as LiteRT's compiled code does instead of being undefined. */
static inline int32_t conv_mbqm64(int64_t x, int32_t multiplier, int shift) {
  const int32_t reduced = multiplier < 0x7FFF0000 ? ((multiplier + (1 << 15)) >> 16) : 0x7FFF;
  const int total_shift = 15 - shift;
  const uint64_t y = (uint64_t)x * (uint64_t)(int64_t)reduced + ((uint64_t)1 << (total_shift - 1));
  return (int32_t)((int64_t)y >> total_shift);
}

/* The reference kernels' last steps for 8-bit outputs: rescale, add the output zero point in int32 (which
 * wraps in LiteRT's compiled code when the rescaled value is extreme), clamp to the activation range. */
static inline int32_t conv_requantize8(uint32_t acc, int32_t multiplier, int shift, int32_t zero_point, int32_t lo,
                                       int32_t hi) {
  const int32_t v = (int32_t)((uint32_t)eq_mbqm((int32_t)acc, multiplier, shift) + (uint32_t)zero_point);
  return v < lo ? lo : (v > hi ? hi : v);
}

#if CONV_SSE2
/* MultiplyByQuantizedMultiplier (double rounding) on four int32 lanes that share one channel's multiplier
 * and shift, exactly as eq_mbqm. With a multiplier M >= 0, SaturatingRoundingDoublingHighMul(x, M) is
 * floor((x * M + 2^30) / 2^31): its saturating case needs M = INT32_MIN and its nudge for negative
 * products rounds the same way. SSE2 multiplies unsigned 32 x 32 -> 64 bits; for x < 0 that adds
 * M * 2^32, i.e. 2 * M after the shift by 31, which is subtracted back (all modulo 2^32, and only the
 * low 32 bits of the shifted product are kept). RoundingDivideByPOT is gemmlowp's formula. */
static CONV_INLINE __m128i conv_mbqm_x4(__m128i x, int32_t multiplier, int left, int right) {
  x = _mm_sll_epi32(x, _mm_cvtsi32_si128(left));
  const __m128i m = _mm_set1_epi32(multiplier);
  const __m128i round = _mm_set_epi32(0, 1 << 30, 0, 1 << 30);
  const __m128i even = _mm_srli_epi64(_mm_add_epi64(_mm_mul_epu32(x, m), round), 31);
  const __m128i odd = _mm_srli_epi64(_mm_add_epi64(_mm_mul_epu32(_mm_srli_epi64(x, 32), m), round), 31);
  __m128i t = _mm_or_si128(_mm_and_si128(even, _mm_set_epi32(0, -1, 0, -1)), _mm_slli_epi64(odd, 32));
  t = _mm_sub_epi32(t, _mm_slli_epi32(_mm_and_si128(m, _mm_srai_epi32(x, 31)), 1));
  const __m128i mask = _mm_set1_epi32((int32_t)((1u << right) - 1u));
  const __m128i remainder = _mm_and_si128(t, mask);
  const __m128i threshold = _mm_sub_epi32(_mm_srai_epi32(mask, 1), _mm_srai_epi32(t, 31));
  return _mm_sub_epi32(_mm_sra_epi32(t, _mm_cvtsi32_si128(right)), _mm_cmpgt_epi32(remainder, threshold));
}
#endif

#if CONV_AVX2
/* eq_mbqm on eight lanes, each with its own multiplier, left and right shift (AVX2 has signed 32 x 32 -> 64
 * bit products and per-lane shifts): SaturatingRoundingDoublingHighMul as floor((x * M + 2^30) / 2^31)
 * (M >= 0; only the low 32 bits of the shifted product are kept), then gemmlowp's RoundingDivideByPOT. */
static CONV_AVX2_INLINE __m256i conv_mbqm_x8(__m256i x, __m256i multiplier, __m256i left, __m256i right) {
  x = _mm256_sllv_epi32(x, left);
  const __m256i round = _mm256_set1_epi64x((int64_t)1 << 30);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, multiplier), round), 31);
  const __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(multiplier, 32)), round);
  const __m256i t = _mm256_blend_epi32(even, _mm256_slli_epi64(_mm256_srli_epi64(odd, 31), 32), 0xAA);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
  const __m256i remainder = _mm256_and_si256(t, mask);
  const __m256i threshold = _mm256_sub_epi32(_mm256_srai_epi32(mask, 1), _mm256_srai_epi32(t, 31));
  return _mm256_sub_epi32(_mm256_srav_epi32(t, right), _mm256_cmpgt_epi32(remainder, threshold));
}
#endif

/* Filter element i: INT4 as UnpackPackedIntToInt8 reads it (two a byte, the low nibble first, each
 * sign-extended), INT8 signed, UINT8 unsigned. */
static inline int32_t conv_filter_at(const eq_tensor* filter, size_t i) {
  switch (filter->type) {
    case EQ_T_INT4: {
      const int v = (i & 1) ? (filter->data[i / 2] >> 4) : (filter->data[i / 2] & 15);
      return v >= 8 ? v - 16 : v;
    }
    case EQ_T_UINT8:
      return filter->data[i];
    default:
      return ((const int8_t*)filter->data)[i];
  }
}

/* Output tensor sanity common to the three ops: a distinct, non-constant 4-D tensor of the input's type.
 * Every tensor of the op holds fewer than 2^31 elements, so int32 pixel and tap counts cannot overflow. */
static inline edgeq_status conv_check_output(eq_context* ctx, const eq_node* node, const eq_tensor* input,
                                             const eq_tensor* output) {
  for (int32_t i = 0; i < node->ninputs; ++i) {
    const eq_tensor* t = eq_input(ctx, node, i);
    if (t != NULL && t->count > (size_t)INT32_MAX) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input %d has %zu elements; at most 2^31 - 1", (int)i, t->count);
    }
  }
  if (output->count > (size_t)INT32_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output has %zu elements; at most 2^31 - 1", output->count);
  }
  for (int32_t i = 0; i < node->ninputs; ++i) {
    if (node->inputs[i] == node->outputs[0]) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output tensor is also input %d", (int)i);
    }
  }
  if (output->is_constant) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output '%s' is a constant", output->name);
  if (output->type != input->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output type %s differs from input type %s",
                    eq_type_name(output->type), eq_type_name(input->type));
  }
  if (output->ndim != 4) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output '%s' has rank %d, not 4", output->name, (int)output->ndim);
  }
  return EDGEQ_OK;
}

#endif
