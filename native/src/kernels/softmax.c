/* SOFTMAX over the last dimension, as LiteRT's reference kernel computes it:
 *   int8/uint8 input, int8/uint8 (same signedness) or int16 output: gemmlowp fixed point. Each difference
 *     to the row maximum is scaled by beta * input_scale into Q5, exponentiated, summed in Q12, and
 *     multiplied by the sum's reciprocal. The output encoding is fixed (1/256 or 1/65536 from the type's
 *     minimum): LiteRT only checks int8 -> int8 has zero point -128 and scale ~1/256, and never reads the
 *     output parameters otherwise; neither does this.
 *   int16: zero points 0, output scale ~1/32768; differences are scaled so [-65535, 0] covers [-10, 0], and
 *     exp and 1/(1+x) come from 513-entry interpolated tables LiteRT builds in double precision.
 * LiteRT aborts (TFLITE_CHECK) when an int8/uint8 row's sum of exponentials reaches 512 for 8-bit output,
 * e.g. 512 or more equal maxima: invoke reports that as a runtime error. */
#include <math.h>
#include <string.h>

#include "gemmlowp_fixedpoint.h"
#include "lut.h"
#include "transcendental.h"

enum { SOFTMAX_BETA = 0 };
enum { SCALED_DIFF_INTEGER_BITS = 5, ACCUMULATION_INTEGER_BITS = 12 };

typedef struct softmax_data {
  size_t outer, depth;
  int32_t input_multiplier;
  int input_shift; /* int8/uint8: left shift (>= 0); int16: MultiplyByQuantizedMultiplier shift */
  int32_t diff_min;
  int32_t scratch; /* int8/uint8: the row's exponentials */
  int16_t exp_lut[EQ_LUT16_SIZE];
  int16_t one_over_one_plus_x_lut[EQ_LUT16_SIZE];
} softmax_data;

static double exp_f64(double x) { return exp(x); }
static double one_over_one_plus_x_f64(double x) { return 1.0 / (1.0 + x); }

static int near_f32(float a, float b, float epsilon) {
  const float delta = a > b ? a - b : b - a;
  return !(delta > epsilon);
}

/* PreprocessSoftmaxScaling + CalculateInputRadius for the 8-bit paths. */
static edgeq_status prepare_8bit(eq_context* ctx, softmax_data* data, float beta, float input_scale) {
  double real = (double)beta * (double)input_scale * (double)(1 << (31 - SCALED_DIFF_INTEGER_BITS));
  const double max_real = 2147483647.0;
  if (max_real < real) real = max_real;
  if (!(real > 1.0)) { /* LiteRT's QuantizeMultiplierGreaterThanOne aborts */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "beta %g times input scale %g is too small (or not positive)",
                    (double)beta, (double)input_scale);
  }
  eq_quantize_multiplier(real, &data->input_multiplier, &data->input_shift);
  const double radius = 1.0 * ((1 << SCALED_DIFF_INTEGER_BITS) - 1) *
                        (double)(1LL << (31 - SCALED_DIFF_INTEGER_BITS)) / (double)(1LL << data->input_shift);
  data->diff_min = (int32_t)(-1.0 * (double)(int32_t)floor(radius));
  return EDGEQ_OK;
}

static edgeq_status prepare_16bit(eq_context* ctx, softmax_data* data, float beta, const eq_tensor* input,
                                  const eq_tensor* output) {
  if (input->zero_point[0] != 0 || output->zero_point[0] != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 needs zero points 0");
  }
  /* Row sums stay below 2^31 only up to 65536 entries (each exponential is at most 32767). */
  if (data->depth > 65536) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 rows longer than 65536");
  const int32_t range = 32767 - (-32768);
  eq_lut_populate_16_f64(10.0 / range, 32767, 2.0 / range, 0, exp_f64, data->exp_lut);
  eq_lut_populate_16_f64(1.0 / range, -32768, 2.0 / range, 0, one_over_one_plus_x_f64, data->one_over_one_plus_x_lut);
  /* the product of the two floats is a float, then divided in double */
  const float scale_beta = input->scale[0] * beta;
  const double rescale = (double)scale_beta / (10.0 / 65535.0);
  if (!isfinite(rescale)) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "beta %g is not finite", (double)beta);
  eq_quantize_multiplier(rescale, &data->input_multiplier, &data->input_shift);
  if (data->input_shift > 30) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "beta %g times input scale %g is too large", (double)beta,
                    (double)input->scale[0]);
  }
  return EDGEQ_OK;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s = eq_tr_prepare_unary(
      ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_UINT8) | EQ_TYPE_BIT(EQ_T_INT16), 1, &input, &output);
  if (s != EDGEQ_OK) return s;
  if (!(output->type == input->type || (input->type != EQ_T_INT16 && output->type == EQ_T_INT16))) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s input with %s output", eq_type_name(input->type),
                    eq_type_name(output->type));
  }
  if (input->ndim < 1) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "scalar input (LiteRT needs a dimension)");
  softmax_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  data->depth = (size_t)input->dims[input->ndim - 1];
  data->outer = data->depth == 0 ? 0 : input->count / data->depth;
  /* LiteRT reads beta only from a SoftmaxOptions table; otherwise it is 0. */
  const float beta = eq_opt_f32(node, SOFTMAX_BETA, 0.0f);
  if (input->type == EQ_T_INT8 && output->type == EQ_T_INT8 &&
      (output->zero_point[0] != -128 || !near_f32(output->scale[0], 1.f / 256, 0.001f * 1.f / 256))) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int8 output must have zero point -128 and scale 1/256");
  }
  if (input->type == EQ_T_INT16) {
    if (!near_f32(output->scale[0], 1.f / 32768, 0.001f * 1.f / 32768)) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 output must have scale 1/32768");
    }
    return prepare_16bit(ctx, data, beta, input, output);
  }
  if ((s = prepare_8bit(ctx, data, beta, input->scale[0])) != EDGEQ_OK) return s;
  if (data->depth > SIZE_MAX / sizeof(int32_t)) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "row too long");
  data->scratch = eq_request_scratch(ctx, node, data->depth * sizeof(int32_t));
  return data->scratch < 0 ? EDGEQ_ERROR_MEMORY : EDGEQ_OK;
}

/* reference_ops::Softmax for one row of 8-bit input, read through `load`. exps[c] keeps the Q0 exponential
 * of each entry within diff_min of the maximum, -1 for the others (exponentials are never negative). */
#define SOFTMAX_ROW_8BIT(T)                                                                                      \
  static edgeq_status softmax_row_##T(eq_context* ctx, const softmax_data* data, const T* x, int32_t* exps,       \
                                      int32_t* shifted_scale, int* exponent, int out_bits) {                     \
    const size_t depth = data->depth;                                                                            \
    int32_t max_in_row = (T)0 < (T)-1 ? 0 : -128;                                                              \
    for (size_t c = 0; c < depth; ++c) max_in_row = x[c] > max_in_row ? x[c] : max_in_row;                      \
    int32_t sum_of_exps = 0; /* Q12, wrapping like LiteRT's int32 adds */                                      \
    for (size_t c = 0; c < depth; ++c) {                                                                         \
      const int32_t diff = x[c] - max_in_row;                                                                    \
      exps[c] = -1;                                                                                              \
      if (diff >= data->diff_min) {                                                                              \
        const int32_t scaled = eq_mbqm_greater_than_one(diff, data->input_multiplier, data->input_shift);       \
        exps[c] = eq_gl_exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS);                               \
        sum_of_exps = eq_gl_add(sum_of_exps, eq_gl_rescale(exps[c], 0, ACCUMULATION_INTEGER_BITS));             \
      }                                                                                                          \
    }                                                                                                            \
    int num_bits_over_unit;                                                                                      \
    *shifted_scale = eq_gl_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS, &num_bits_over_unit);             \
    *exponent = num_bits_over_unit + 31 - out_bits;                                                              \
    if (*exponent < 0 || *exponent > 31) {                                                                       \
      return eq_error(ctx, EDGEQ_ERROR_RUNTIME,                                                                  \
                      "sum of exponentials too large for %d-bit output (LiteRT aborts here too)", out_bits);     \
    }                                                                                                            \
    return EDGEQ_OK;                                                                                             \
  }
SOFTMAX_ROW_8BIT(int8_t)
SOFTMAX_ROW_8BIT(uint8_t)
#undef SOFTMAX_ROW_8BIT

static edgeq_status invoke_8bit(eq_context* ctx, eq_node* node, const eq_tensor* input, eq_tensor* output) {
  const softmax_data* data = node->user;
  int32_t* exps = eq_scratch(ctx, node, data->scratch);
  const size_t depth = data->depth;
  const int out_bits = output->type == EQ_T_INT16 ? 16 : 8;
  int32_t out_min, out_max;
  eq_type_range(output->type, &out_min, &out_max);
  for (size_t i = 0; i < data->outer; ++i) {
    int32_t shifted_scale;
    int exponent;
    edgeq_status s = input->type == EQ_T_INT8
                         ? softmax_row_int8_t(ctx, data, (const int8_t*)input->data + i * depth, exps,
                                              &shifted_scale, &exponent, out_bits)
                         : softmax_row_uint8_t(ctx, data, input->data + i * depth, exps, &shifted_scale,
                                               &exponent, out_bits);
    if (s != EDGEQ_OK) return s;
    for (size_t c = 0; c < depth; ++c) {
      int32_t v = out_min;
      if (exps[c] >= 0) {
        v = eq_clamp32(eq_rdbpot(eq_srdhm(shifted_scale, exps[c]), exponent) + out_min, out_min, out_max);
      }
      if (out_bits == 16) {
        ((int16_t*)output->data)[i * depth + c] = (int16_t)v;
      } else {
        output->data[i * depth + c] = (uint8_t)v; /* int8 and uint8 share the byte */
      }
    }
  }
  return EDGEQ_OK;
}

static int clz32(uint32_t x) { return eq_gl_clz32(x); }

/* reference_ops::SoftmaxInt16. The exponentials go to the output row first, as in LiteRT. */
static void invoke_16bit(const softmax_data* data, const int16_t* input, int16_t* output) {
  const size_t depth = data->depth;
  for (size_t i = 0; i < data->outer; ++i) {
    const int16_t* x = input + i * depth;
    int16_t* y = output + i * depth;
    int32_t max_in_row = INT16_MIN;
    for (size_t c = 0; c < depth; ++c) max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
    int32_t sum_of_exps = 0; /* Q16.15; depth <= 65536 keeps it below 2^31 */
    for (size_t c = 0; c < depth; ++c) {
      const int32_t scaled = eq_mbqm(x[c] - max_in_row, data->input_multiplier, data->input_shift);
      const int32_t sym = eq_gl_add(scaled, 32767);
      y[c] = eq_lut16_lookup((int16_t)eq_clamp32(sym, -32768, 32767), data->exp_lut);
      sum_of_exps += y[c];
    }
    /* every exponential is positive and the maximum's is about 32767, so 1 <= headroom_plus_one <= 17 */
    const int headroom_plus_one = clz32((uint32_t)sum_of_exps);
    const int32_t shifted_sum = (int32_t)((((int64_t)sum_of_exps << (headroom_plus_one - 1)) + (1 << 13)) >> 14);
    const int32_t sym_shifted_sum = shifted_sum - ((1 << 15) + (1 << 16));
    const int16_t reciprocal =
        eq_lut16_lookup((int16_t)eq_clamp32(sym_shifted_sum, -32768, 32767), data->one_over_one_plus_x_lut);
    const int right_shift = 31 - headroom_plus_one;
    const int64_t round = (int64_t)1 << (right_shift - 1);
    for (size_t c = 0; c < depth; ++c) {
      const int32_t r = (int32_t)(((int64_t)y[c] * reciprocal + round) >> right_shift);
      y[c] = (int16_t)eq_clamp32(r, 0, 32767);
    }
  }
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input->type == EQ_T_INT16) {
    invoke_16bit(node->user, (const int16_t*)input->data, (int16_t*)output->data);
    return EDGEQ_OK;
  }
  return invoke_8bit(ctx, node, input, output);
}

const eq_kernel eq_kernel_softmax = {prepare, invoke};
