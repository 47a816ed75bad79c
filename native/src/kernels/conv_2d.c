/* CONV_2D on int8 (per-channel or per-tensor int8 / INT4 filters), legacy uint8 and int16x8 (int8 / INT4
 * filters, int64 bias, or int32 bias when quantized_bias_type says so), with groups, strides, dilations and
 * fused activations, bit-exact with LiteRT's reference ConvPerChannel / Conv.
 *
 * The reference sums filter * (input - input_zero_point) over the taps that fall inside the image. Here the
 * filter is copied at load into zero-padded 8-bit rows (INT4 unpacked), the input-offset term
 * input_offset * sum(filter) is folded into the bias, and every output pixel becomes one row of a matrix
 * product whose rows are the windows copied into int16 scratch rows (im2col, 8-bit inputs widened), where
 * taps outside the image hold the input zero point. A padded tap adds filter * zero_point, which the folded
 * term cancels exactly (all in wrapping int32, as LiteRT's accumulator behaves), so borders need no special
 * case. */
#include "conv_common.h"

enum { KIND_S8, KIND_U8, KIND_S16_ACC32, KIND_S16_ACC64 };
enum { MAX_BLOCK = 64 }; /* output pixels per block of rows */

typedef struct conv2d_data {
  int kind;
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t kh, kw, groups, group_in, group_out;
  int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t k;       /* taps * channels of one group: the length of a row */
  int32_t kstride; /* k rounded up to 8: the length of a weight row and of a scratch row */
  int32_t block;   /* pixels per block of rows, a multiple of 4 */
  int32_t scratch; /* the int16 rows of a block of output pixels */
  const int8_t* weights;   /* [out_c][kstride], zero padded; uint8 filters as value - 128; INT8 filters
                            * whose rows are already a multiple of 8 long are the model's own bytes */
  int32_t row_factor;      /* uint8: 128 - filter zero point, times each row's sum; else 0 */
  uint32_t* bias32;        /* 8-bit: bias + input_offset * sum(weights); int16 acc32: bias */
  int64_t* bias64;         /* int16 acc64: bias */
  int32_t* multiplier;
  int32_t* shift;
  int32_t in_zp, out_zp, act_min, act_max;
  /* AVX2 8-bit path: per channel, each constant repeated 4 times (one channel + 1 of padding), so that
   * channels n and n + 1 load as one vector [n x4 | n+1 x4] */
  int avx2;
  int32_t* splat; /* [4][out_c + 1][4]: bias, multiplier, left shift, right shift */
} conv2d_data;

/* ----------------------------------------------------------------------------------------------------
 * 8-bit inputs: a block of output pixels becomes rows of int16 (the window, widened, with the zero point
 * in padded taps and zeros up to kstride), then out[r][n] = requantize(bias[n] + rows[r] . weights[n]).
 * Widening once per block, not once per output channel, leaves pmaddwd's multiply-adds to the inner loop.
 * Weights stay 8-bit (half the memory of int16 copies); a uint8 filter value w with zero point z is stored
 * as w - 128, and (w - z) . x = (w - 128) . x + (128 - z) * sum(x) takes each row's sum once. */

static CONV_INLINE void widen(int16_t* dst, const uint8_t* src, size_t n, int is_unsigned) {
  if (is_unsigned) {
    for (size_t i = 0; i < n; ++i) dst[i] = (int16_t)src[i];
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = (int16_t)(int8_t)src[i];
  }
}

static void fill_rows8(const conv2d_data* d, const uint8_t* image, int32_t group, int32_t p0, int32_t m,
                       int16_t* rows, uint32_t* row_terms) {
  const int is_unsigned = d->kind == KIND_U8;
  const size_t run = (size_t)d->group_in, in_c = (size_t)d->in_c;
  const int16_t zp = (int16_t)d->in_zp;
  /* a window row whose taps all fall inside the image is one contiguous run when taps are adjacent */
  const int whole_rows = d->groups == 1 && d->dil_w == 1;
  const size_t row_run = (size_t)d->kw * run;
  for (int32_t r = 0; r < m; ++r) {
    const int32_t oy = (p0 + r) / d->out_w, ox = (p0 + r) % d->out_w;
    const int64_t ix0 = (int64_t)ox * d->stride_w - d->pad_w;
    const int row_inside = whole_rows && ix0 >= 0 && ix0 + d->kw <= d->in_w;
    int16_t* dst = rows + (size_t)r * (size_t)d->kstride;
    for (int32_t fy = 0; fy < d->kh; ++fy) {
      const int64_t iy = (int64_t)oy * d->stride_h - d->pad_h + (int64_t)fy * d->dil_h;
      if (iy < 0 || iy >= d->in_h) {
        for (size_t i = 0; i < row_run; ++i) dst[i] = zp; /* cancelled by the folded bias */
        dst += row_run;
        continue;
      }
      const uint8_t* line = image + (size_t)iy * (size_t)d->in_w * in_c + (size_t)group * run;
      if (row_inside) {
        widen(dst, line + (size_t)ix0 * in_c, row_run, is_unsigned);
        dst += row_run;
        continue;
      }
      for (int32_t fx = 0; fx < d->kw; ++fx) {
        const int64_t ix = ix0 + (int64_t)fx * d->dil_w;
        if (ix >= 0 && ix < d->in_w) {
          widen(dst, line + (size_t)ix * in_c, run, is_unsigned);
        } else {
          for (size_t i = 0; i < run; ++i) dst[i] = zp;
        }
        dst += run;
      }
    }
    for (int32_t i = d->k; i < d->kstride; ++i) *dst++ = 0;
    uint32_t sum = 0;
    if (d->row_factor != 0) {
      const int16_t* row = rows + (size_t)r * (size_t)d->kstride;
      for (int32_t i = 0; i < d->k; ++i) sum += (uint32_t)(int32_t)row[i];
    }
    row_terms[r] = sum * (uint32_t)d->row_factor;
  }
  /* rows past m up to a multiple of 4 are computed (not stored): keep them defined */
  const int32_t padded = (m + 3) & ~3;
  memset(rows + (size_t)m * (size_t)d->kstride, 0, (size_t)(padded - m) * (size_t)d->kstride * sizeof(int16_t));
  for (int32_t r = m; r < padded; ++r) row_terms[r] = 0;
}

#if CONV_SSE2
/* The lane sums of a, b, c, d as one vector [sum a, sum b, sum c, sum d]. */
static CONV_INLINE __m128i hsum4(__m128i a, __m128i b, __m128i c, __m128i d) {
  const __m128i ab = _mm_add_epi32(_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b));
  const __m128i cd = _mm_add_epi32(_mm_unpacklo_epi32(c, d), _mm_unpackhi_epi32(c, d));
  return _mm_add_epi32(_mm_unpacklo_epi64(ab, cd), _mm_unpackhi_epi64(ab, cd));
}

static CONV_INLINE __m128i load16(const int16_t* p) { return _mm_loadu_si128((const __m128i*)(const void*)p); }

/* Eight int8 weights widened to int16. */
static CONV_INLINE __m128i load_w8(const int8_t* p) {
  const __m128i v = _mm_loadl_epi64((const __m128i*)(const void*)p);
  return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
}

/* Four rows by two weight rows: [rows . w0] and [rows . w1] as vectors over the four rows. pmaddwd
 * multiplies int16 pairs exactly and adds them in int32; its one overflow (two -32768 * -32768 pairs)
 * cannot occur with 8-bit values. Sums wrap in int32 like LiteRT's accumulator. */
static CONV_INLINE void dot_4x2(const int16_t* rows, size_t stride, const int8_t* w0, const int8_t* w1,
                                int32_t k, __m128i* out0, __m128i* out1) {
  const int16_t *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
  __m128i a00 = _mm_setzero_si128(), a10 = a00, a20 = a00, a30 = a00;
  __m128i a01 = a00, a11 = a00, a21 = a00, a31 = a00;
  for (int32_t i = 0; i < k; i += 8) {
    const __m128i v0 = load_w8(w0 + i), v1 = load_w8(w1 + i);
    const __m128i x0 = load16(r0 + i), x1 = load16(r1 + i), x2 = load16(r2 + i), x3 = load16(r3 + i);
    a00 = _mm_add_epi32(a00, _mm_madd_epi16(x0, v0));
    a01 = _mm_add_epi32(a01, _mm_madd_epi16(x0, v1));
    a10 = _mm_add_epi32(a10, _mm_madd_epi16(x1, v0));
    a11 = _mm_add_epi32(a11, _mm_madd_epi16(x1, v1));
    a20 = _mm_add_epi32(a20, _mm_madd_epi16(x2, v0));
    a21 = _mm_add_epi32(a21, _mm_madd_epi16(x2, v1));
    a30 = _mm_add_epi32(a30, _mm_madd_epi16(x3, v0));
    a31 = _mm_add_epi32(a31, _mm_madd_epi16(x3, v1));
  }
  *out0 = hsum4(a00, a10, a20, a30);
  *out1 = hsum4(a01, a11, a21, a31);
}

static CONV_INLINE __m128i dot_4x1(const int16_t* rows, size_t stride, const int8_t* w0, int32_t k) {
  const int16_t *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  for (int32_t i = 0; i < k; i += 8) {
    const __m128i v0 = load_w8(w0 + i);
    a0 = _mm_add_epi32(a0, _mm_madd_epi16(load16(r0 + i), v0));
    a1 = _mm_add_epi32(a1, _mm_madd_epi16(load16(r1 + i), v0));
    a2 = _mm_add_epi32(a2, _mm_madd_epi16(load16(r2 + i), v0));
    a3 = _mm_add_epi32(a3, _mm_madd_epi16(load16(r3 + i), v0));
  }
  return hsum4(a0, a1, a2, a3);
}

/* Requantized lanes [row 0..3] of channels n and n1 (n + 1, or n again for a last odd channel) as bytes. */
static CONV_INLINE __m128i requantize_pair(const conv2d_data* d, int32_t n, int32_t n1, __m128i s0, __m128i s1) {
  const int32_t sh0 = d->shift[n], sh1 = d->shift[n1];
  const __m128i zp = _mm_set1_epi32(d->out_zp);
  s0 = _mm_add_epi32(conv_mbqm_x4(_mm_add_epi32(s0, _mm_set1_epi32((int32_t)d->bias32[n])), d->multiplier[n],
                                  sh0 > 0 ? sh0 : 0, sh0 > 0 ? 0 : -sh0), zp);
  s1 = _mm_add_epi32(conv_mbqm_x4(_mm_add_epi32(s1, _mm_set1_epi32((int32_t)d->bias32[n1])), d->multiplier[n1],
                                  sh1 > 0 ? sh1 : 0, sh1 > 0 ? 0 : -sh1), zp);
  /* saturating to int16 keeps the order, so clamping there equals clamping the int32 values */
  __m128i v = _mm_packs_epi32(s0, s1);
  v = _mm_min_epi16(_mm_max_epi16(v, _mm_set1_epi16((int16_t)d->act_min)), _mm_set1_epi16((int16_t)d->act_max));
  return d->kind == KIND_U8 ? _mm_packus_epi16(v, v) : _mm_packs_epi16(v, v);
}

static void gemm8(const conv2d_data* d, const int16_t* rows, const uint32_t* row_terms, int32_t m,
                  int32_t first_channel, uint8_t* out) {
  const size_t ks = (size_t)d->kstride, os = (size_t)d->out_c;
  const int8_t* weights = d->weights + (size_t)first_channel * ks;
  int32_t n = 0;
  for (; n + 2 <= d->group_out; n += 2) {
    const int8_t* w0 = weights + (size_t)n * ks;
    for (int32_t r = 0; r < m; r += 4) {
      __m128i s0, s1;
      dot_4x2(rows + (size_t)r * ks, ks, w0, w0 + ks, d->kstride, &s0, &s1);
      const __m128i terms = _mm_loadu_si128((const __m128i*)(const void*)(row_terms + r));
      __m128i v = requantize_pair(d, first_channel + n, first_channel + n + 1, _mm_add_epi32(s0, terms),
                                  _mm_add_epi32(s1, terms));
      v = _mm_unpacklo_epi8(v, _mm_srli_si128(v, 4)); /* (channel n, n + 1) byte pairs, row by row */
      uint8_t pairs[16];
      _mm_storeu_si128((__m128i*)(void*)pairs, v);
      uint8_t* o = out + (size_t)r * os + (size_t)n;
      const int32_t rows_left = m - r < 4 ? m - r : 4;
      for (int32_t j = 0; j < rows_left; ++j) memcpy(o + (size_t)j * os, pairs + 2 * j, 2);
    }
  }
  if (n < d->group_out) {
    const int8_t* w0 = weights + (size_t)n * ks;
    for (int32_t r = 0; r < m; r += 4) {
      const __m128i s = _mm_add_epi32(dot_4x1(rows + (size_t)r * ks, ks, w0, d->kstride),
                                      _mm_loadu_si128((const __m128i*)(const void*)(row_terms + r)));
      const __m128i v = requantize_pair(d, first_channel + n, first_channel + n, s, s); /* one channel: rare */
      const uint32_t bytes = (uint32_t)_mm_cvtsi128_si32(v);
      const int32_t rows_left = m - r < 4 ? m - r : 4;
      for (int32_t j = 0; j < rows_left; ++j) out[(size_t)(r + j) * os + (size_t)n] = (uint8_t)(bytes >> (8 * j));
    }
  }
}
#if CONV_AVX2
static CONV_AVX2_INLINE __m256i load256(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }

/* [a.lo + a.hi | b.lo + b.hi] */
static CONV_AVX2_INLINE __m256i fold(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* Four rows by two weight rows, 16 products per pmaddwd; a last group of 8 (kstride is a multiple of 8)
 * meets weights zero-extended to 256 bits. Returns [rows . w0 | rows . w1], four rows each. */
static CONV_AVX2_INLINE __m256i load_w16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(const void*)p));
}

static CONV_AVX2_INLINE __m256i dot_4x2_avx2(const int16_t* rows, size_t stride, const int8_t* w0, const int8_t* w1,
                                             int32_t k) {
  const int16_t *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
  __m256i a00 = _mm256_setzero_si256(), a10 = a00, a20 = a00, a30 = a00;
  __m256i a01 = a00, a11 = a00, a21 = a00, a31 = a00;
  int32_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256i v0 = load_w16(w0 + i), v1 = load_w16(w1 + i);
    const __m256i x0 = load256(r0 + i), x1 = load256(r1 + i), x2 = load256(r2 + i), x3 = load256(r3 + i);
    a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x0, v0));
    a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x0, v1));
    a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x1, v0));
    a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x1, v1));
    a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x2, v0));
    a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x2, v1));
    a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x3, v0));
    a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x3, v1));
  }
  if (i < k) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i v0 = _mm256_inserti128_si256(zero, load_w8(w0 + i), 0);
    const __m256i v1 = _mm256_inserti128_si256(zero, load_w8(w1 + i), 0);
    const __m256i x0 = _mm256_inserti128_si256(zero, load16(r0 + i), 0);
    const __m256i x1 = _mm256_inserti128_si256(zero, load16(r1 + i), 0);
    const __m256i x2 = _mm256_inserti128_si256(zero, load16(r2 + i), 0);
    const __m256i x3 = _mm256_inserti128_si256(zero, load16(r3 + i), 0);
    a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x0, v0));
    a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x0, v1));
    a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x1, v0));
    a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x1, v1));
    a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x2, v0));
    a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x2, v1));
    a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x3, v0));
    a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x3, v1));
  }
  const __m256i s0 = fold(a00, a01), s1 = fold(a10, a11), s2 = fold(a20, a21), s3 = fold(a30, a31);
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(s0, s1), _mm256_unpackhi_epi32(s0, s1));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(s2, s3), _mm256_unpackhi_epi32(s2, s3));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

/* Requantized [channel c: rows 0..3 | channel c + 1: rows 0..3] as (c, c + 1) byte pairs, row by row. */
static CONV_AVX2_INLINE __m128i requantize_pair_avx2(const conv2d_data* d, int32_t c, __m256i acc) {
  const size_t plane = ((size_t)d->out_c + 1) * 4, at = (size_t)c * 4;
  acc = _mm256_add_epi32(acc, load256(d->splat + at));
  acc = conv_mbqm_x8(acc, load256(d->splat + plane + at), load256(d->splat + 2 * plane + at),
                     load256(d->splat + 3 * plane + at));
  acc = _mm256_add_epi32(acc, _mm256_set1_epi32(d->out_zp));
  acc = _mm256_min_epi32(_mm256_max_epi32(acc, _mm256_set1_epi32(d->act_min)), _mm256_set1_epi32(d->act_max));
  __m256i v = _mm256_packs_epi32(acc, acc); /* values are in the output type's range now */
  v = d->kind == KIND_U8 ? _mm256_packus_epi16(v, v) : _mm256_packs_epi16(v, v);
  return _mm_unpacklo_epi8(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

static CONV_AVX2_TARGET void gemm8_avx2(const conv2d_data* d, const int16_t* rows, const uint32_t* row_terms,
                                        int32_t m, int32_t first_channel, uint8_t* out) {
  const size_t ks = (size_t)d->kstride, os = (size_t)d->out_c;
  const int8_t* weights = d->weights + (size_t)first_channel * ks;
  for (int32_t n = 0; n < d->group_out; n += 2) {
    const int8_t* w0 = weights + (size_t)n * ks;
    const int pair = n + 1 < d->group_out; /* a last odd channel multiplies its own row twice */
    for (int32_t r = 0; r < m; r += 4) {
      const __m256i terms = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(const void*)(row_terms + r)));
      const __m256i acc = _mm256_add_epi32(
          dot_4x2_avx2(rows + (size_t)r * ks, ks, w0, pair ? w0 + ks : w0, d->kstride), terms);
      uint8_t pairs[16];
      _mm_storeu_si128((__m128i*)(void*)pairs, requantize_pair_avx2(d, first_channel + n, acc));
      uint8_t* o = out + (size_t)r * os + (size_t)n;
      const int32_t rows_left = m - r < 4 ? m - r : 4;
      for (int32_t j = 0; j < rows_left; ++j) {
        if (pair) {
          memcpy(o + (size_t)j * os, pairs + 2 * j, 2);
        } else {
          o[(size_t)j * os] = pairs[2 * j];
        }
      }
    }
  }
}
#endif

#else
/* Portable: the same rows, one output at a time. */
static void gemm8(const conv2d_data* d, const int16_t* rows, const uint32_t* row_terms, int32_t m,
                  int32_t first_channel, uint8_t* out) {
  const size_t ks = (size_t)d->kstride, os = (size_t)d->out_c;
  for (int32_t r = 0; r < m; ++r) {
    const int16_t* a = rows + (size_t)r * ks;
    for (int32_t n = 0; n < d->group_out; ++n) {
      const int32_t c = first_channel + n;
      const int8_t* w = d->weights + (size_t)c * ks;
      uint32_t acc = d->bias32[c] + row_terms[r];
      for (int32_t i = 0; i < d->kstride; ++i) acc += (uint32_t)((int32_t)a[i] * (int32_t)w[i]);
      out[(size_t)r * os + (size_t)n] =
          (uint8_t)conv_requantize8(acc, d->multiplier[c], d->shift[c], d->out_zp, d->act_min, d->act_max);
    }
  }
}
#endif

/* ----------------------------------------------------------------------------------------------------
 * int16 activations: the same blocks of rows (copied, zeros in padded taps as int16 zero points are 0).
 * Products are at most 2^15 * 2^7 = 2^22 in magnitude, so the dot product of 256 of them is exact in
 * int32; chunks of 256 join an int64 accumulator (the int32-bias variant wraps like LiteRT's int32 one). */

static void fill_rows16(const conv2d_data* d, const int16_t* image, int32_t group, int32_t p0, int32_t m,
                        int16_t* rows) {
  const size_t run = (size_t)d->group_in, in_c = (size_t)d->in_c;
  for (int32_t r = 0; r < m; ++r) {
    const int32_t oy = (p0 + r) / d->out_w, ox = (p0 + r) % d->out_w;
    int16_t* dst = rows + (size_t)r * (size_t)d->kstride;
    for (int32_t fy = 0; fy < d->kh; ++fy) {
      const int64_t iy = (int64_t)oy * d->stride_h - d->pad_h + (int64_t)fy * d->dil_h;
      for (int32_t fx = 0; fx < d->kw; ++fx) {
        const int64_t ix = (int64_t)ox * d->stride_w - d->pad_w + (int64_t)fx * d->dil_w;
        if (iy >= 0 && iy < d->in_h && ix >= 0 && ix < d->in_w) {
          memcpy(dst, image + ((size_t)iy * (size_t)d->in_w + (size_t)ix) * in_c + (size_t)group * run,
                 run * sizeof(int16_t));
        } else {
          memset(dst, 0, run * sizeof(int16_t));
        }
        dst += run;
      }
    }
    memset(dst, 0, (size_t)(d->kstride - d->k) * sizeof(int16_t));
  }
  const int32_t padded = (m + 3) & ~3;
  memset(rows + (size_t)m * (size_t)d->kstride, 0, (size_t)(padded - m) * (size_t)d->kstride * sizeof(int16_t));
}

/* Rescales and stores four rows of channels c (and c + 1 when `pair`) from their wide sums. */
static void store16(const conv2d_data* d, const uint64_t acc[2][4], int32_t c, int pair, int32_t rows_left,
                    int16_t* out) {
  const size_t os = (size_t)d->out_c;
  for (int j = 0; j < 1 + pair; ++j) {
    for (int32_t p = 0; p < rows_left; ++p) {
      int32_t v;
      if (d->kind == KIND_S16_ACC64) {
        v = conv_mbqm64((int64_t)(acc[j][p] + (uint64_t)d->bias64[c + j]), d->multiplier[c + j], d->shift[c + j]);
      } else {
        v = eq_mbqm((int32_t)(uint32_t)(acc[j][p] + d->bias32[c + j]), d->multiplier[c + j], d->shift[c + j]);
      }
      v = v < d->act_min ? d->act_min : (v > d->act_max ? d->act_max : v);
      out[(size_t)p * os + (size_t)j] = (int16_t)v;
    }
  }
}

#if CONV_SSE2
static void gemm16(const conv2d_data* d, const int16_t* rows, int32_t m, int32_t first_channel, int16_t* out) {
  const size_t ks = (size_t)d->kstride, os = (size_t)d->out_c;
  const int8_t* weights = d->weights + (size_t)first_channel * ks;
  for (int32_t n = 0; n < d->group_out; n += 2) {
    const int8_t* w0 = weights + (size_t)n * ks;
    const int pair = n + 1 < d->group_out;
    const int8_t* w1 = pair ? w0 + ks : w0;
    for (int32_t r = 0; r < m; r += 4) {
      uint64_t acc[2][4] = {{0}};
      for (int32_t k0 = 0; k0 < d->kstride; k0 += 256) {
        const int32_t len = d->kstride - k0 < 256 ? d->kstride - k0 : 256;
        __m128i s0, s1;
        int32_t part[8];
        dot_4x2(rows + (size_t)r * ks + (size_t)k0, ks, w0 + k0, w1 + k0, len, &s0, &s1);
        _mm_storeu_si128((__m128i*)(void*)part, s0);
        _mm_storeu_si128((__m128i*)(void*)(part + 4), s1);
        for (int i = 0; i < 8; ++i) acc[i / 4][i % 4] += (uint64_t)(int64_t)part[i];
      }
      store16(d, acc, first_channel + n, pair, m - r < 4 ? m - r : 4, out + (size_t)r * os + (size_t)n);
    }
  }
}
#endif

#if CONV_AVX2
static CONV_AVX2_TARGET void gemm16_avx2(const conv2d_data* d, const int16_t* rows, int32_t m, int32_t first_channel,
                                         int16_t* out) {
  const size_t ks = (size_t)d->kstride, os = (size_t)d->out_c;
  const int8_t* weights = d->weights + (size_t)first_channel * ks;
  for (int32_t n = 0; n < d->group_out; n += 2) {
    const int8_t* w0 = weights + (size_t)n * ks;
    const int pair = n + 1 < d->group_out;
    const int8_t* w1 = pair ? w0 + ks : w0;
    for (int32_t r = 0; r < m; r += 4) {
      uint64_t acc[2][4] = {{0}};
      for (int32_t k0 = 0; k0 < d->kstride; k0 += 256) {
        const int32_t len = d->kstride - k0 < 256 ? d->kstride - k0 : 256;
        int32_t part[8];
        _mm256_storeu_si256((__m256i*)(void*)part, dot_4x2_avx2(rows + (size_t)r * ks + (size_t)k0, ks, w0 + k0, w1 + k0, len));
        for (int i = 0; i < 8; ++i) acc[i / 4][i % 4] += (uint64_t)(int64_t)part[i];
      }
      store16(d, acc, first_channel + n, pair, m - r < 4 ? m - r : 4, out + (size_t)r * os + (size_t)n);
    }
  }
}
#endif

#if !CONV_SSE2
/* Portable: one output at a time, the same 256-product chunks. */
static void gemm16(const conv2d_data* d, const int16_t* rows, int32_t m, int32_t first_channel, int16_t* out) {
  const size_t ks = (size_t)d->kstride, os = (size_t)d->out_c;
  for (int32_t r = 0; r < m; r += 4) {
    for (int32_t n = 0; n < d->group_out; ++n) {
      const int8_t* w = d->weights + (size_t)(first_channel + n) * ks;
      uint64_t acc[2][4] = {{0}};
      for (int32_t p = 0; p < 4; ++p) {
        const int16_t* a = rows + (size_t)(r + p) * ks;
        for (int32_t i0 = 0; i0 < d->kstride; i0 += 256) {
          const int32_t i1 = d->kstride - i0 < 256 ? d->kstride : i0 + 256;
          int32_t sum = 0;
          for (int32_t i = i0; i < i1; ++i) sum += (int32_t)a[i] * (int32_t)w[i];
          acc[0][p] += (uint64_t)(int64_t)sum;
        }
      }
      store16(d, acc, first_channel + n, 0, m - r < 4 ? m - r : 4, out + (size_t)r * os + (size_t)n);
    }
  }
}
#endif

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const conv2d_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (output->count == 0) return EDGEQ_OK;
  const int is8 = d->kind == KIND_S8 || d->kind == KIND_U8;
  const size_t elem = is8 ? 1 : 2;
  int16_t* scratch = eq_scratch(ctx, node, d->scratch);
  const size_t image_elems = (size_t)d->in_h * (size_t)d->in_w * (size_t)d->in_c;
  const int32_t pixels = d->out_h * d->out_w;
  uint32_t row_terms[MAX_BLOCK];
  for (int32_t b = 0; b < d->batches; ++b) {
    const uint8_t* image = input->data + (size_t)b * image_elems * elem;
    uint8_t* out_image = output->data + (size_t)b * (size_t)pixels * (size_t)d->out_c * elem;
    for (int32_t group = 0; group < d->groups; ++group) {
      const int32_t first_channel = group * d->group_out;
      for (int32_t p0 = 0; p0 < pixels; p0 += d->block) {
        const int32_t m = pixels - p0 < d->block ? pixels - p0 : d->block;
        uint8_t* out = out_image + ((size_t)p0 * (size_t)d->out_c + (size_t)first_channel) * elem;
        if (is8) {
          fill_rows8(d, image, group, p0, m, scratch, row_terms);
#if CONV_AVX2
          if (d->avx2) {
            gemm8_avx2(d, scratch, row_terms, m, first_channel, out);
            continue;
          }
#endif
          gemm8(d, scratch, row_terms, m, first_channel, out);
        } else {
          fill_rows16(d, (const int16_t*)(const void*)image, group, p0, m, scratch);
#if CONV_AVX2
          if (d->avx2) {
            gemm16_avx2(d, scratch, m, first_channel, (int16_t*)(void*)out);
            continue;
          }
#endif
          gemm16(d, scratch, m, first_channel, (int16_t*)(void*)out);
        }
      }
    }
  }
  return EDGEQ_OK;
}

/* ----------------------------------------------------------------------------------------------------
 * Prepare: LiteRT's conv.cc Prepare checks, then the widened weights, folded biases and multipliers. */

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  if (node->noutputs != 1 || (node->ninputs != 2 && node->ninputs != 3)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 or 3 inputs and 1 output, has %d and %d",
                    (int)node->ninputs, (int)node->noutputs);
  }
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* filter = eq_input(ctx, node, 1);
  eq_tensor* bias = node->ninputs == 3 ? eq_input(ctx, node, 2) : NULL;
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input == NULL || filter == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input, filter and output are required");
  }
  edgeq_status s = EDGEQ_OK;
  if (input->type != EQ_T_INT8 && input->type != EQ_T_UINT8 && input->type != EQ_T_INT16) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input type %s; edgeq runs INT8, UINT8 and INT16 convolutions",
                    eq_type_name(input->type));
  }
  if ((s = conv_check_output(ctx, node, input, output)) != EDGEQ_OK) return s;
  if (input->ndim != 4 || filter->ndim != 4) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and filter must be 4-D, are %d-D and %d-D", (int)input->ndim,
                    (int)filter->ndim);
  }
  for (int i = 1; i < 4; ++i) {
    if (input->dims[i] <= 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input dimension %d is %d", i, (int)input->dims[i]);
  }
  for (int i = 0; i < 4; ++i) {
    if (filter->dims[i] <= 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter dimension %d is %d", i, (int)filter->dims[i]);
  }
  const int32_t in_c = input->dims[3], out_c = filter->dims[0], group_in = filter->dims[3];
  if (in_c % group_in != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has %d channels, not a multiple of the filter's %d", (int)in_c,
                    (int)group_in);
  }
  const int32_t groups = in_c / group_in;
  if (out_c % groups != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%d output channels do not split into %d groups", (int)out_c,
                    (int)groups);
  }
  const int is8 = input->type != EQ_T_INT16;
  if (input->type == EQ_T_UINT8 ? filter->type != EQ_T_UINT8 : (filter->type != EQ_T_INT8 && filter->type != EQ_T_INT4)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "filter type %s with input type %s", eq_type_name(filter->type),
                    eq_type_name(input->type));
  }
  if (!filter->is_constant || filter->data == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "filter '%s' is not a constant; edgeq prepares filters at load",
                    filter->name);
  }
  if ((s = conv_check_activation(ctx, input, "input")) != EDGEQ_OK) return s;
  if ((s = conv_check_activation(ctx, output, "output")) != EDGEQ_OK) return s;
  if ((s = conv_check_filter_quant(ctx, filter, out_c)) != EDGEQ_OK) return s;
  int32_t filter_offset = 0;
  if (input->type == EQ_T_UINT8) {
    if (filter->nq != 1) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "uint8 convolution with per-channel filter scales");
    }
    if (filter->zero_point[0] < 0 || filter->zero_point[0] > 255) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "uint8 filter zero point %lld", (long long)filter->zero_point[0]);
    }
    filter_offset = -(int32_t)filter->zero_point[0];
  } else {
    for (int32_t i = 0; i < filter->nq; ++i) {
      if (filter->zero_point[i] != 0) {
        return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "filter zero point %lld at channel %d; LiteRT needs 0",
                        (long long)filter->zero_point[i], (int)i);
      }
    }
  }

  /* Options (Conv2DOptions field ids). */
  const int32_t padding = eq_opt_i8(node, 0, EQ_PAD_SAME);
  const int32_t stride_w = eq_opt_i32(node, 1, 0), stride_h = eq_opt_i32(node, 2, 0);
  const int32_t activation = eq_opt_i8(node, 3, EQ_ACT_NONE);
  const int32_t dil_w = eq_opt_i32(node, 4, 1), dil_h = eq_opt_i32(node, 5, 1);
  const int32_t bias_type = eq_opt_i8(node, 6, CONV_TENSOR_TYPE_FLOAT32);
  if (stride_w <= 0 || stride_h <= 0 || dil_w <= 0 || dil_h <= 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "strides (%d, %d) and dilations (%d, %d) must be positive",
                    (int)stride_h, (int)stride_w, (int)dil_h, (int)dil_w);
  }

  int kind = input->type == EQ_T_INT8 ? KIND_S8 : (input->type == EQ_T_UINT8 ? KIND_U8 : KIND_S16_ACC64);
  if (bias != NULL) {
    if ((s = conv_check_bias(ctx, bias, out_c, 1, !is8, 1)) != EDGEQ_OK) return s;
  }
  if (!is8) {
    /* LiteRT takes the int32 accumulator only when quantized_bias_type says INT32; otherwise it reads the
     * bias as int64 whatever its type. */
    if (bias_type != CONV_TENSOR_TYPE_FLOAT32 && bias_type != CONV_TENSOR_TYPE_INT32 &&
        bias_type != CONV_TENSOR_TYPE_INT64) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "quantized_bias_type %d; LiteRT takes INT32 or INT64",
                      (int)bias_type);
    }
    if (bias_type == CONV_TENSOR_TYPE_INT32) kind = KIND_S16_ACC32;
    if (bias != NULL && bias_type != CONV_TENSOR_TYPE_FLOAT32 &&
        bias->type != (bias_type == CONV_TENSOR_TYPE_INT32 ? EQ_T_INT32 : EQ_T_INT64)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias type %s differs from quantized_bias_type",
                      eq_type_name(bias->type));
    }
    if (bias != NULL && kind == KIND_S16_ACC64 && bias->type != EQ_T_INT64) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                      "int16 convolution with an INT32 bias needs quantized_bias_type INT32 (LiteRT would read the "
                      "bias as int64)");
    }
  }

  int32_t out_h, out_w, pad_h, pad_w;
  if (!conv_window(padding, input->dims[1], filter->dims[1], stride_h, dil_h, &out_h, &pad_h) ||
      !conv_window(padding, input->dims[2], filter->dims[2], stride_w, dil_w, &out_w, &pad_w)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "padding %d, strides (%d, %d), dilations (%d, %d) do not fit the input",
                    (int)padding, (int)stride_h, (int)stride_w, (int)dil_h, (int)dil_w);
  }
  if (output->dims[0] != input->dims[0] || output->dims[1] != out_h || output->dims[2] != out_w ||
      output->dims[3] != out_c) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape [%d, %d, %d, %d] should be [%d, %d, %d, %d]",
                    (int)output->dims[0], (int)output->dims[1], (int)output->dims[2], (int)output->dims[3],
                    (int)input->dims[0], (int)out_h, (int)out_w, (int)out_c);
  }

  conv2d_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  d->kind = kind;
  d->batches = input->dims[0];
  d->in_h = input->dims[1];
  d->in_w = input->dims[2];
  d->in_c = in_c;
  d->out_h = out_h;
  d->out_w = out_w;
  d->out_c = out_c;
  d->kh = filter->dims[1];
  d->kw = filter->dims[2];
  d->groups = groups;
  d->group_in = group_in;
  d->group_out = out_c / groups;
  d->stride_h = stride_h;
  d->stride_w = stride_w;
  d->dil_h = dil_h;
  d->dil_w = dil_w;
  d->pad_h = pad_h;
  d->pad_w = pad_w;
  const size_t k = filter->count / (size_t)out_c;
  if (k > (size_t)INT32_MAX - 8) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "filter rows of %zu values", k);
  d->k = (int32_t)k;
  d->kstride = (int32_t)((k + 7) & ~(size_t)7);
  d->in_zp = (int32_t)input->zero_point[0];
  d->out_zp = (int32_t)output->zero_point[0];
  /* A block's rows stay near 16 KiB so they remain in L1 while each pair of weight rows passes them. */
  const size_t row_bytes = (size_t)d->kstride * sizeof(int16_t);
  size_t block = (((size_t)16 << 10) / row_bytes) & ~(size_t)3;
  if (block > MAX_BLOCK) block = MAX_BLOCK;
  if (block < 4) block = 4;
  d->block = (int32_t)block;
  d->scratch = eq_request_scratch(ctx, node, block * row_bytes);
  if (d->scratch < 0) return EDGEQ_ERROR_MEMORY;

  /* Weights widened to int16 with the uint8 offset added, rows padded with zeros. */
  d->multiplier = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  d->shift = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  if (d->multiplier == NULL || d->shift == NULL) return EDGEQ_ERROR_MEMORY;
  d->row_factor = input->type == EQ_T_UINT8 ? 128 + filter_offset : 0;
  if (filter->type == EQ_T_INT8 && (size_t)d->kstride == k) {
    d->weights = (int8_t*)filter->data; /* already rows of kstride int8 values: read in place */
  } else {
    int8_t* weights = eq_alloc(ctx, (size_t)out_c * (size_t)d->kstride);
    if (weights == NULL) return EDGEQ_ERROR_MEMORY;
    const int32_t stored_offset = input->type == EQ_T_UINT8 ? -128 : 0;
    for (int32_t c = 0; c < out_c; ++c) {
      for (size_t i = 0; i < k; ++i) {
        weights[(size_t)c * (size_t)d->kstride + i] = (int8_t)(conv_filter_at(filter, (size_t)c * k + i) + stored_offset);
      }
    }
    d->weights = weights;
  }
  if (kind == KIND_S16_ACC64) {
    d->bias64 = eq_alloc(ctx, sizeof(int64_t) * (size_t)out_c);
    if (d->bias64 == NULL) return EDGEQ_ERROR_MEMORY;
    for (int32_t c = 0; c < out_c; ++c) d->bias64[c] = conv_bias_at(bias, (size_t)c);
  } else {
    d->bias32 = eq_alloc(ctx, sizeof(uint32_t) * (size_t)out_c);
    if (d->bias32 == NULL) return EDGEQ_ERROR_MEMORY;
    const uint32_t input_offset = (uint32_t)-d->in_zp;
    for (int32_t c = 0; c < out_c; ++c) {
      uint32_t sum = 0;
      for (size_t i = 0; i < k; ++i) sum += (uint32_t)(conv_filter_at(filter, (size_t)c * k + i) + filter_offset);
      d->bias32[c] = (uint32_t)conv_bias_at(bias, (size_t)c) + (is8 ? input_offset * sum : 0u);
    }
  }
  if ((s = conv_multipliers(ctx, input, filter, bias, output, out_c, kind == KIND_S16_ACC64 ? 14 : 31,
                            d->multiplier, d->shift)) != EDGEQ_OK) {
    return s;
  }
  if ((s = eq_activation_range(ctx, activation, output, &d->act_min, &d->act_max)) != EDGEQ_OK) return s;
  if (!is8) {
    d->avx2 = conv_have_avx2();
  } else if (conv_have_avx2()) {
    const size_t plane = ((size_t)out_c + 1) * 4;
    d->splat = eq_alloc(ctx, 4 * plane * sizeof(int32_t)); /* zeroed: the padding channel's constants are 0 */
    if (d->splat == NULL) return EDGEQ_ERROR_MEMORY;
    for (size_t c = 0; c < (size_t)out_c; ++c) {
      const int32_t shift = d->shift[c];
      for (size_t j = 0; j < 4; ++j) {
        d->splat[c * 4 + j] = (int32_t)d->bias32[c];
        d->splat[plane + c * 4 + j] = d->multiplier[c];
        d->splat[2 * plane + c * 4 + j] = shift > 0 ? shift : 0;
        d->splat[3 * plane + c * 4 + j] = shift > 0 ? 0 : -shift;
      }
    }
    d->avx2 = 1;
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_conv_2d = {prepare, invoke};
