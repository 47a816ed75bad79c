/* DEPTHWISE_CONV_2D on int8 (per-channel or per-tensor int8 / INT4 filters), legacy uint8 and int16x8
 * (int8 filters, int64 bias), with depth multipliers, strides, dilations and fused activations, bit-exact
 * with LiteRT's reference DepthwiseConvPerChannel / DepthwiseConv.
 *
 * The filter is widened to int16 at load (the uint8 filter offset added) and the input-offset term
 * input_offset * sum over taps of the filter is folded into the bias. Each output pixel then sums, channel
 * by channel with the channels innermost, filter * input over every tap; a tap outside the image reads a
 * row holding the input zero point, whose product the folded term cancels (in wrapping int32, as LiteRT's
 * accumulator behaves), so border pixels take the same loop. int16 activations have zero point 0, so their
 * padded taps add nothing either. 8-bit layers with depth multiplier 1 run vector kernels (AVX2 sixteen
 * channels at a time where the CPU has it, SSE2 eight), which feed two taps' inputs, interleaved per
 * channel, to one pmaddwd and rescale with per-lane multipliers exactly as eq_mbqm does. */
#include "conv_common.h"

enum { KIND_S8, KIND_U8, KIND_S16 };

typedef struct depthwise_data {
  int kind;
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, multiplier_depth;
  int32_t kh, kw, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int16_t* weights; /* [kh * kw][out_c] */
  uint32_t* bias32; /* 8-bit: bias + input_offset * sum over taps of the weights */
  int64_t* bias64;  /* int16 */
  uint8_t* padding_row; /* in_c input elements holding the zero point */
  int32_t* multiplier;
  int32_t* shift;
  int32_t out_zp, act_min, act_max;
  void* accumulators;    /* out_c int32 or int64 sums, load-time memory: the arena holds activations only */
  /* Vector paths (8-bit, multiplier 1, no left shifts): weights of tap pairs interleaved per channel, and
   * per-channel requantization constants by groups of four (SSE2) or eight (AVX2) lanes. */
  int vector;
  int16_t* pair_weights; /* [ceil(taps / 2)][channels8 - pair_base][2]: channels from pair_base */
  int32_t pair_base;     /* the first channel the SSE2 kernel takes: channels16 when AVX2 takes those */
  int32_t channels8;     /* out_c rounded down to a multiple of 8: the vector channels */
  struct rq_quad* rq;    /* [channels8 / 4] */
  /* AVX2: channels [0, channels16) sixteen at a time; pmaddwd's 128-bit halves interleave channels 0-3 with
   * 8-11 and 4-7 with 12-15, so weights and constants are stored in that order */
  int avx2;
  int32_t channels16;
  int16_t* pair_weights16; /* [ceil(taps / 2)][channels16 / 16][channels 0-3, 8-11 | 4-7, 12-15][2] */
  struct rq_oct* rq16;     /* [channels16 / 8]: (0-3, 8-11), (4-7, 12-15) of each block */
  const uint8_t** taps_rows; /* kh * kw row pointers, load-time memory like the accumulators */
} depthwise_data;

/* MultiplyByQuantizedMultiplier constants of four channels: the multiplier; for the rounding right shift
 * e, 2^(32 - e) (0 when e = 0), an all-ones lane when e = 0, 2^e - 1 and its half. */
typedef struct rq_quad {
  int32_t multiplier[4];
  uint32_t factor[4];
  int32_t unshifted[4];
  int32_t mask[4];
  int32_t half[4];
} rq_quad;

#if CONV_AVX2
typedef struct rq_oct {
  int32_t bias[8];
  int32_t multiplier[8];
  int32_t right[8];
} rq_oct;

/* Channel of lane j (0..15) of a 16-channel block as the AVX2 kernel holds it: low halves then high. */
static int32_t avx2_lane_channel(int32_t j) { return (j & 3) + ((j >> 2) & 1) * 8 + (j >> 3) * 4; }
#endif

/* The input row of tap (fy, fx) for output (oy, ox): a pixel of the image, or the padding row. */
static const uint8_t* tap_row(const depthwise_data* d, const uint8_t* image, int32_t oy, int32_t ox, int32_t fy,
                              int32_t fx, size_t elem) {
  const int64_t iy = (int64_t)oy * d->stride_h - d->pad_h + (int64_t)fy * d->dil_h;
  const int64_t ix = (int64_t)ox * d->stride_w - d->pad_w + (int64_t)fx * d->dil_w;
  if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) return d->padding_row;
  return image + ((size_t)iy * (size_t)d->in_w + (size_t)ix) * (size_t)d->in_c * elem;
}

/* acc[c] += w[c] * x[c] for every channel (depth multiplier 1), 8-bit inputs. */
static void accumulate_s8(uint32_t* acc, const int16_t* w, const int8_t* x, int32_t n) {
  for (int32_t c = 0; c < n; ++c) acc[c] += (uint32_t)((int32_t)w[c] * (int32_t)x[c]);
}

static void accumulate_u8(uint32_t* acc, const int16_t* w, const uint8_t* x, int32_t n) {
  for (int32_t c = 0; c < n; ++c) acc[c] += (uint32_t)((int32_t)w[c] * (int32_t)x[c]);
}

/* int64 sums in unsigned arithmetic: a hostile int64 bias may wrap, as it does in LiteRT's compiled code. */
static void accumulate_s16(uint64_t* acc, const int16_t* w, const int16_t* x, int32_t n) {
  for (int32_t c = 0; c < n; ++c) acc[c] += (uint64_t)(int64_t)((int32_t)w[c] * (int32_t)x[c]);
}

/* Output channel o reads input channel o / multiplier. */
static int32_t input_value(const depthwise_data* d, const uint8_t* row, int32_t o) {
  const int32_t i = o / d->multiplier_depth;
  switch (d->kind) {
    case KIND_S8:
      return ((const int8_t*)row)[i];
    case KIND_U8:
      return row[i];
    default:
      return ((const int16_t*)(const void*)row)[i];
  }
}

#if CONV_SSE2
/* eq_mbqm on four lanes with their own multipliers and right shifts (no left shift): conv_mbqm_x4's
 * doubling high multiply, then gemmlowp's RoundingDivideByPOT whose arithmetic shift by a per-lane e is
 * the high half of t * 2^(32 - e) (unsigned multiply, corrected for negative t). */
static CONV_INLINE __m128i mbqm_lanes(__m128i x, const rq_quad* q) {
  const __m128i low = _mm_set_epi32(0, -1, 0, -1), high = _mm_set_epi32(-1, 0, -1, 0);
  const __m128i round = _mm_set_epi32(0, 1 << 30, 0, 1 << 30);
  const __m128i m = _mm_loadu_si128((const __m128i*)(const void*)q->multiplier);
  const __m128i even = _mm_srli_epi64(_mm_add_epi64(_mm_mul_epu32(x, m), round), 31);
  const __m128i odd = _mm_srli_epi64(_mm_add_epi64(_mm_mul_epu32(_mm_srli_epi64(x, 32), _mm_srli_epi64(m, 32)), round), 31);
  __m128i t = _mm_or_si128(_mm_and_si128(even, low), _mm_slli_epi64(odd, 32));
  t = _mm_sub_epi32(t, _mm_slli_epi32(_mm_and_si128(m, _mm_srai_epi32(x, 31)), 1));
  const __m128i f = _mm_loadu_si128((const __m128i*)(const void*)q->factor);
  const __m128i negative = _mm_srai_epi32(t, 31);
  const __m128i pe = _mm_mul_epu32(t, f), po = _mm_mul_epu32(_mm_srli_epi64(t, 32), _mm_srli_epi64(f, 32));
  __m128i shifted = _mm_or_si128(_mm_srli_epi64(pe, 32), _mm_and_si128(po, high));
  shifted = _mm_sub_epi32(shifted, _mm_and_si128(f, negative));
  shifted = _mm_or_si128(shifted, _mm_and_si128(t, _mm_loadu_si128((const __m128i*)(const void*)q->unshifted)));
  const __m128i remainder = _mm_and_si128(t, _mm_loadu_si128((const __m128i*)(const void*)q->mask));
  const __m128i threshold = _mm_sub_epi32(_mm_loadu_si128((const __m128i*)(const void*)q->half), negative);
  return _mm_sub_epi32(shifted, _mm_cmpgt_epi32(remainder, threshold));
}

static CONV_INLINE __m128i widen8(const uint8_t* p, int is_unsigned) {
  const __m128i v = _mm_loadl_epi64((const __m128i*)(const void*)p);
  return is_unsigned ? _mm_unpacklo_epi8(v, _mm_setzero_si128()) : _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
}

/* One output pixel, channels [from, channels8) eight at a time: two taps' inputs interleaved per channel meet
 * their interleaved weights in one pmaddwd. An odd last tap pairs with a zero weight. */
static CONV_INLINE void pixel_vector(const depthwise_data* d, const uint8_t* const* rows, int32_t taps,
                                     uint8_t* out, size_t from, int is_unsigned) {
  const size_t c8 = (size_t)d->channels8;
  const __m128i zp = _mm_set1_epi32(d->out_zp);
  const __m128i lo = _mm_set1_epi16((int16_t)d->act_min), hi = _mm_set1_epi16((int16_t)d->act_max);
  for (size_t c = from; c < c8; c += 8) {
    __m128i acc0 = _mm_loadu_si128((const __m128i*)(const void*)(d->bias32 + c));
    __m128i acc1 = _mm_loadu_si128((const __m128i*)(const void*)(d->bias32 + c + 4));
    const size_t base = (size_t)d->pair_base, width = c8 - base;
    const int16_t* w = d->pair_weights + 2 * (c - base);
    int32_t t = 0;
    for (; t + 2 <= taps; t += 2, w += 2 * width) {
      const __m128i x0 = widen8(rows[t] + c, is_unsigned), x1 = widen8(rows[t + 1] + c, is_unsigned);
      acc0 = _mm_add_epi32(acc0, _mm_madd_epi16(_mm_unpacklo_epi16(x0, x1), _mm_loadu_si128((const __m128i*)(const void*)w)));
      acc1 = _mm_add_epi32(acc1, _mm_madd_epi16(_mm_unpackhi_epi16(x0, x1), _mm_loadu_si128((const __m128i*)(const void*)(w + 8))));
    }
    if (t < taps) {
      const __m128i x0 = widen8(rows[t] + c, is_unsigned);
      acc0 = _mm_add_epi32(acc0, _mm_madd_epi16(_mm_unpacklo_epi16(x0, x0), _mm_loadu_si128((const __m128i*)(const void*)w)));
      acc1 = _mm_add_epi32(acc1, _mm_madd_epi16(_mm_unpackhi_epi16(x0, x0), _mm_loadu_si128((const __m128i*)(const void*)(w + 8))));
    }
    acc0 = _mm_add_epi32(mbqm_lanes(acc0, &d->rq[c / 4]), zp);
    acc1 = _mm_add_epi32(mbqm_lanes(acc1, &d->rq[c / 4 + 1]), zp);
    __m128i v = _mm_min_epi16(_mm_max_epi16(_mm_packs_epi32(acc0, acc1), lo), hi);
    v = is_unsigned ? _mm_packus_epi16(v, v) : _mm_packs_epi16(v, v);
    _mm_storel_epi64((__m128i*)(void*)(out + c), v);
  }
}

static void pixel_vector_s8(const depthwise_data* d, const uint8_t* const* rows, int32_t taps, uint8_t* out,
                            size_t from) {
  pixel_vector(d, rows, taps, out, from, 0);
}

static void pixel_vector_u8(const depthwise_data* d, const uint8_t* const* rows, int32_t taps, uint8_t* out,
                            size_t from) {
  pixel_vector(d, rows, taps, out, from, 1);
}
#endif

#if CONV_AVX2
static CONV_AVX2_INLINE __m256i widen16(const uint8_t* p, int is_unsigned) {
  const __m128i v = _mm_loadu_si128((const __m128i*)(const void*)p);
  return is_unsigned ? _mm256_cvtepu8_epi16(v) : _mm256_cvtepi8_epi16(v);
}

static CONV_AVX2_INLINE __m256i load256(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }

/* As pixel_vector, sixteen channels at a time. */
static CONV_AVX2_INLINE void pixel_avx2(const depthwise_data* d, const uint8_t* const* rows, int32_t taps,
                                        uint8_t* out, int is_unsigned) {
  const size_t c16 = (size_t)d->channels16;
  const __m256i zp = _mm256_set1_epi32(d->out_zp), zero = _mm256_setzero_si256();
  const __m256i lo = _mm256_set1_epi16((int16_t)d->act_min), hi = _mm256_set1_epi16((int16_t)d->act_max);
  for (size_t c = 0; c < c16; c += 16) {
    const rq_oct* q = &d->rq16[c / 8];
    __m256i acc0 = load256(q[0].bias), acc1 = load256(q[1].bias);
    const int16_t* w = d->pair_weights16 + 2 * c;
    int32_t t = 0;
    for (; t + 2 <= taps; t += 2, w += 2 * c16) {
      const __m256i x0 = widen16(rows[t] + c, is_unsigned), x1 = widen16(rows[t + 1] + c, is_unsigned);
      acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), load256(w)));
      acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), load256(w + 16)));
    }
    if (t < taps) {
      const __m256i x0 = widen16(rows[t] + c, is_unsigned);
      acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x0), load256(w)));
      acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x0), load256(w + 16)));
    }
    acc0 = _mm256_add_epi32(conv_mbqm_x8(acc0, load256(q[0].multiplier), zero, load256(q[0].right)), zp);
    acc1 = _mm256_add_epi32(conv_mbqm_x8(acc1, load256(q[1].multiplier), zero, load256(q[1].right)), zp);
    __m256i v = _mm256_min_epi16(_mm256_max_epi16(_mm256_packs_epi32(acc0, acc1), lo), hi);
    v = is_unsigned ? _mm256_packus_epi16(v, v) : _mm256_packs_epi16(v, v);
    v = _mm256_permute4x64_epi64(v, 0x08); /* the low 8 bytes of each half, in channel order */
    _mm_storeu_si128((__m128i*)(void*)(out + c), _mm256_castsi256_si128(v));
  }
}

static CONV_AVX2_TARGET void pixel_avx2_s8(const depthwise_data* d, const uint8_t* const* rows, int32_t taps,
                                           uint8_t* out) {
  pixel_avx2(d, rows, taps, out, 0);
}

static CONV_AVX2_TARGET void pixel_avx2_u8(const depthwise_data* d, const uint8_t* const* rows, int32_t taps,
                                           uint8_t* out) {
  pixel_avx2(d, rows, taps, out, 1);
}
#endif

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const depthwise_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (output->count == 0) return EDGEQ_OK;
  const size_t elem = d->kind == KIND_S16 ? 2 : 1;
  const int32_t channels = d->out_c;
  void* scratch = d->accumulators;
  uint32_t* acc32 = scratch;
  uint64_t* acc64 = scratch;
  const size_t image_bytes = (size_t)d->in_h * (size_t)d->in_w * (size_t)d->in_c * elem;
#if CONV_SSE2
  if (d->vector) {
    const uint8_t** rows = d->taps_rows;
    const int32_t taps = d->kh * d->kw;
    for (int32_t b = 0; b < d->batches; ++b) {
      const uint8_t* image = input->data + (size_t)b * image_bytes;
      for (int32_t oy = 0; oy < d->out_h; ++oy) {
        for (int32_t ox = 0; ox < d->out_w; ++ox) {
          for (int32_t fy = 0; fy < d->kh; ++fy) {
            for (int32_t fx = 0; fx < d->kw; ++fx) rows[fy * d->kw + fx] = tap_row(d, image, oy, ox, fy, fx, 1);
          }
          uint8_t* out = output->data + (((size_t)b * (size_t)d->out_h + (size_t)oy) * (size_t)d->out_w + (size_t)ox) * (size_t)channels;
          size_t from = 0;
#if CONV_AVX2
          if (d->avx2) {
            if (d->kind == KIND_U8) {
              pixel_avx2_u8(d, rows, taps, out);
            } else {
              pixel_avx2_s8(d, rows, taps, out);
            }
            from = (size_t)d->channels16;
          }
#endif
          if (d->kind == KIND_U8) {
            pixel_vector_u8(d, rows, taps, out, from);
          } else {
            pixel_vector_s8(d, rows, taps, out, from);
          }
          for (int32_t c = d->channels8; c < channels; ++c) { /* the last channels, one by one */
            uint32_t acc = d->bias32[c];
            for (int32_t t = 0; t < taps; ++t) {
              const int32_t x = d->kind == KIND_U8 ? (int32_t)rows[t][c] : (int32_t)(int8_t)rows[t][c];
              acc += (uint32_t)(x * (int32_t)d->weights[(size_t)t * (size_t)channels + (size_t)c]);
            }
            out[c] = (uint8_t)conv_requantize8(acc, d->multiplier[c], d->shift[c], d->out_zp, d->act_min, d->act_max);
          }
        }
      }
    }
    return EDGEQ_OK;
  }
#endif
  for (int32_t b = 0; b < d->batches; ++b) {
    const uint8_t* image = input->data + (size_t)b * image_bytes;
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      for (int32_t ox = 0; ox < d->out_w; ++ox) {
        const size_t at = (((size_t)b * (size_t)d->out_h + (size_t)oy) * (size_t)d->out_w + (size_t)ox) * (size_t)channels;
        if (d->kind == KIND_S16) {
          memcpy(acc64, d->bias64, sizeof(int64_t) * (size_t)channels);
        } else {
          memcpy(acc32, d->bias32, sizeof(uint32_t) * (size_t)channels);
        }
        for (int32_t fy = 0; fy < d->kh; ++fy) {
          for (int32_t fx = 0; fx < d->kw; ++fx) {
            const uint8_t* row = tap_row(d, image, oy, ox, fy, fx, elem);
            const int16_t* w = d->weights + ((size_t)fy * (size_t)d->kw + (size_t)fx) * (size_t)channels;
            if (d->multiplier_depth == 1) {
              switch (d->kind) {
                case KIND_S8:
                  accumulate_s8(acc32, w, (const int8_t*)row, channels);
                  break;
                case KIND_U8:
                  accumulate_u8(acc32, w, row, channels);
                  break;
                default:
                  accumulate_s16(acc64, w, (const int16_t*)(const void*)row, channels);
                  break;
              }
            } else if (d->kind == KIND_S16) {
              for (int32_t c = 0; c < channels; ++c) acc64[c] += (uint64_t)(int64_t)(w[c] * input_value(d, row, c));
            } else {
              for (int32_t c = 0; c < channels; ++c) acc32[c] += (uint32_t)((int32_t)w[c] * input_value(d, row, c));
            }
          }
        }
        if (d->kind == KIND_S16) {
          int16_t* out = (int16_t*)(void*)output->data + at;
          for (int32_t c = 0; c < channels; ++c) {
            const int32_t v = conv_mbqm64((int64_t)acc64[c], d->multiplier[c], d->shift[c]);
            out[c] = (int16_t)(v < d->act_min ? d->act_min : (v > d->act_max ? d->act_max : v));
          }
        } else {
          uint8_t* out = output->data + at;
          for (int32_t c = 0; c < channels; ++c) {
            out[c] = (uint8_t)conv_requantize8(acc32[c], d->multiplier[c], d->shift[c], d->out_zp, d->act_min,
                                                d->act_max);
          }
        }
      }
    }
  }
  return EDGEQ_OK;
}

/* The SSE2 path's interleaved tap-pair weights and per-lane constants, when it applies: 8-bit, depth
 * multiplier 1, at least 8 channels, no channel that shifts left. */
static edgeq_status prepare_vector(eq_context* ctx, depthwise_data* d) {
#if CONV_SSE2
  if (d->kind == KIND_S16 || d->multiplier_depth != 1 || d->out_c < 8) return EDGEQ_OK;
  for (int32_t c = 0; c < d->out_c; ++c) {
    if (d->shift[c] > 0) return EDGEQ_OK;
  }
  const size_t taps = (size_t)d->kh * (size_t)d->kw, c8 = (size_t)(d->out_c & ~7), channels = (size_t)d->out_c;
  d->channels8 = (int32_t)c8;
  d->taps_rows = eq_alloc(ctx, taps * sizeof(const uint8_t*));
  if (d->taps_rows == NULL) return EDGEQ_ERROR_MEMORY;
  d->vector = 1;
#if CONV_AVX2
  const size_t c16 = (size_t)(d->out_c & ~15);
  if (c16 > 0 && conv_have_avx2()) {
    d->channels16 = (int32_t)c16;
    d->pair_weights16 = eq_alloc(ctx, ((taps + 1) / 2) * c16 * 2 * sizeof(int16_t));
    d->rq16 = eq_alloc(ctx, (c16 / 8) * sizeof(rq_oct));
    if (d->pair_weights16 == NULL || d->rq16 == NULL) return EDGEQ_ERROR_MEMORY;
    for (size_t t = 0; t < taps; ++t) {
      for (size_t b = 0; b < c16; b += 16) {
        for (int32_t j = 0; j < 16; ++j) {
          const size_t c = b + (size_t)avx2_lane_channel(j);
          d->pair_weights16[((t / 2) * c16 + b + (size_t)j) * 2 + (t & 1)] = d->weights[t * channels + c];
        }
      }
    }
    for (size_t b = 0; b < c16; b += 16) {
      for (int32_t j = 0; j < 16; ++j) {
        const size_t c = b + (size_t)avx2_lane_channel(j);
        rq_oct* q = &d->rq16[b / 8 + (size_t)(j / 8)];
        q->bias[j % 8] = (int32_t)d->bias32[c];
        q->multiplier[j % 8] = d->multiplier[c];
        q->right[j % 8] = -d->shift[c];
      }
    }
    d->avx2 = 1;
    d->pair_base = (int32_t)c16;
  }
#endif
  const size_t base = (size_t)d->pair_base;
  if (c8 > base) {
    d->pair_weights = eq_alloc(ctx, ((taps + 1) / 2) * (c8 - base) * 2 * sizeof(int16_t));
    d->rq = eq_alloc(ctx, (c8 / 4) * sizeof(rq_quad));
    if (d->pair_weights == NULL || d->rq == NULL) return EDGEQ_ERROR_MEMORY;
    for (size_t t = 0; t < taps; ++t) {
      for (size_t c = base; c < c8; ++c) {
        d->pair_weights[((t / 2) * (c8 - base) + c - base) * 2 + (t & 1)] = d->weights[t * channels + c];
      }
    }
    for (size_t c = base; c < c8; ++c) {
      rq_quad* q = &d->rq[c / 4];
      const int e = -d->shift[c];
      q->multiplier[c % 4] = d->multiplier[c];
      q->factor[c % 4] = e == 0 ? 0u : (uint32_t)1 << (32 - e);
      q->unshifted[c % 4] = e == 0 ? -1 : 0;
      q->mask[c % 4] = (int32_t)((1u << e) - 1u);
      q->half[c % 4] = q->mask[c % 4] >> 1;
    }
  }
#else
  (void)ctx;
  (void)d;
#endif
  return EDGEQ_OK;
}

/* LiteRT's depthwise_conv.cc Prepare checks, then widened weights, folded biases and multipliers. */
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
    if (filter->dims[i] <= 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter dimension %d is %d", i, (int)filter->dims[i]);
  }
  if (filter->dims[0] != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter dimension 0 is %d, not 1", (int)filter->dims[0]);
  }
  const int32_t in_c = input->dims[3], out_c = filter->dims[3];
  if (out_c % in_c != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%d output channels are not a multiple of %d input channels",
                    (int)out_c, (int)in_c);
  }
  const int32_t multiplier_depth = out_c / in_c;
  if (multiplier_depth > INT16_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "depth multiplier %d exceeds LiteRT's int16 field",
                    (int)multiplier_depth);
  }
  /* LiteRT reads UINT8 filters as uint8 and INT8 / INT4 (unpacked) as int8; for int16 activations it reads
   * the stored bytes as int8 without unpacking INT4. */
  const int filter_ok = input->type == EQ_T_UINT8 ? filter->type == EQ_T_UINT8
                        : input->type == EQ_T_INT8 ? (filter->type == EQ_T_INT8 || filter->type == EQ_T_INT4)
                                                   : filter->type == EQ_T_INT8;
  if (!filter_ok) {
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
  /* Per-channel int8 reference kernels take weights_offset 0: the filter's zero points are ignored. */
  int32_t filter_offset = 0;
  if (input->type == EQ_T_UINT8) {
    if (filter->nq != 1) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "uint8 convolution with per-channel filter scales");
    }
    if (filter->zero_point[0] < 0 || filter->zero_point[0] > 255) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "uint8 filter zero point %lld", (long long)filter->zero_point[0]);
    }
    filter_offset = -(int32_t)filter->zero_point[0];
  }
  if (bias != NULL) {
    if ((s = conv_check_bias(ctx, bias, out_c, input->type != EQ_T_INT16, input->type == EQ_T_INT16, 1)) != EDGEQ_OK) {
      return s;
    }
  }

  /* Options (DepthwiseConv2DOptions field ids). */
  const int32_t padding = eq_opt_i8(node, 0, EQ_PAD_SAME);
  const int32_t stride_w = eq_opt_i32(node, 1, 0), stride_h = eq_opt_i32(node, 2, 0);
  const int32_t option_multiplier = eq_opt_i32(node, 3, 0);
  const int32_t activation = eq_opt_i8(node, 4, EQ_ACT_NONE);
  const int32_t dil_w = eq_opt_i32(node, 5, 1), dil_h = eq_opt_i32(node, 6, 1);
  if (stride_w <= 0 || stride_h <= 0 || dil_w <= 0 || dil_h <= 0 || stride_w > INT16_MAX || stride_h > INT16_MAX ||
      dil_w > INT16_MAX || dil_h > INT16_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "strides (%d, %d) and dilations (%d, %d) must be in [1, 32767]",
                    (int)stride_h, (int)stride_w, (int)dil_h, (int)dil_w);
  }
  if (input->type == EQ_T_INT16 && option_multiplier != multiplier_depth) {
    /* LiteRT's int16 kernel loops over the option's multiplier, not the shapes' */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "depth_multiplier option %d differs from the shapes' %d; LiteRT's int16 kernel would use the option",
                    (int)option_multiplier, (int)multiplier_depth);
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

  depthwise_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  d->kind = input->type == EQ_T_INT8 ? KIND_S8 : (input->type == EQ_T_UINT8 ? KIND_U8 : KIND_S16);
  d->batches = input->dims[0];
  d->in_h = input->dims[1];
  d->in_w = input->dims[2];
  d->in_c = in_c;
  d->out_h = out_h;
  d->out_w = out_w;
  d->out_c = out_c;
  d->multiplier_depth = multiplier_depth;
  d->kh = filter->dims[1];
  d->kw = filter->dims[2];
  d->stride_h = stride_h;
  d->stride_w = stride_w;
  d->dil_h = dil_h;
  d->dil_w = dil_w;
  d->pad_h = pad_h;
  d->pad_w = pad_w;
  d->out_zp = (int32_t)output->zero_point[0];
  const size_t elem = d->kind == KIND_S16 ? 2 : 1;
  d->accumulators = eq_alloc(ctx, (size_t)out_c * (d->kind == KIND_S16 ? sizeof(int64_t) : sizeof(uint32_t)));
  if (d->accumulators == NULL) return EDGEQ_ERROR_MEMORY;

  d->weights = eq_alloc(ctx, filter->count * sizeof(int16_t));
  d->padding_row = eq_alloc(ctx, (size_t)in_c * elem);
  d->multiplier = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  d->shift = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  if (d->weights == NULL || d->padding_row == NULL || d->multiplier == NULL || d->shift == NULL) {
    return EDGEQ_ERROR_MEMORY;
  }
  for (size_t i = 0; i < filter->count; ++i) d->weights[i] = (int16_t)(conv_filter_at(filter, i) + filter_offset);
  if (elem == 1) memset(d->padding_row, (int)(input->zero_point[0] & 0xFF), (size_t)in_c);
  const size_t taps = (size_t)d->kh * (size_t)d->kw;
  if (d->kind == KIND_S16) {
    d->bias64 = eq_alloc(ctx, sizeof(int64_t) * (size_t)out_c);
    if (d->bias64 == NULL) return EDGEQ_ERROR_MEMORY;
    for (int32_t c = 0; c < out_c; ++c) d->bias64[c] = conv_bias_at(bias, (size_t)c);
  } else {
    d->bias32 = eq_alloc(ctx, sizeof(uint32_t) * (size_t)out_c);
    if (d->bias32 == NULL) return EDGEQ_ERROR_MEMORY;
    const uint32_t input_offset = (uint32_t)-(int32_t)input->zero_point[0];
    for (int32_t c = 0; c < out_c; ++c) {
      uint32_t sum = 0;
      for (size_t t = 0; t < taps; ++t) sum += (uint32_t)(int32_t)d->weights[t * (size_t)out_c + (size_t)c];
      d->bias32[c] = (uint32_t)conv_bias_at(bias, (size_t)c) + input_offset * sum;
    }
  }
  if ((s = conv_multipliers(ctx, input, filter, bias, output, out_c, d->kind == KIND_S16 ? 14 : 31, d->multiplier,
                            d->shift)) != EDGEQ_OK) {
    return s;
  }
  if ((s = eq_activation_range(ctx, activation, output, &d->act_min, &d->act_max)) != EDGEQ_OK) return s;
  return prepare_vector(ctx, d);
}

const eq_kernel eq_kernel_depthwise_conv_2d = {prepare, invoke};
