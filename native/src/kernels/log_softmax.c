/* LOG_SOFTMAX over the last dimension for int8 and uint8, as LiteRT's reference kernel computes it: gemmlowp
 * fixed point like SOFTMAX (differences to the row maximum scaled into Q5, exponentials summed in Q12), then
 * the log of the sum is subtracted from each scaled difference. The output encoding is fixed: scale 16/256
 * with zero point 127 (int8) or 255 (uint8), which LiteRT requires. int16 is not supported by LiteRT. */
#include <math.h>

#include "gemmlowp_fixedpoint.h"
#include "transcendental.h"

enum { SCALED_DIFF_INTEGER_BITS = 5, ACCUMULATION_INTEGER_BITS = 12, OUTPUT_INTEGER_BITS = 4 };

typedef struct log_softmax_data {
  size_t outer, depth;
  int32_t input_multiplier;
  int input_left_shift;
  int32_t reverse_scaling_divisor;
  int reverse_scaling_left_shift; /* <= 0 */
  int32_t diff_min;
} log_softmax_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s =
      eq_tr_prepare_unary(ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_UINT8), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  if (input->ndim < 1) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "scalar input (LiteRT needs a dimension)");
  const int64_t zp = input->type == EQ_T_INT8 ? 127 : 255;
  if ((double)output->scale[0] != 16.0 / 256 || output->zero_point[0] != zp) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output must have scale 16/256 and zero point %lld", (long long)zp);
  }
  log_softmax_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  data->depth = (size_t)input->dims[input->ndim - 1];
  data->outer = data->depth == 0 ? 0 : input->count / data->depth;
  /* PreprocessLogSoftmaxScalingExp with beta 1 */
  double real = (double)input->scale[0] * (double)(1 << (31 - SCALED_DIFF_INTEGER_BITS));
  if (2147483647.0 < real) real = 2147483647.0;
  if (!(real > 1.0)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input scale %g too small", (double)input->scale[0]);
  }
  eq_quantize_multiplier(real, &data->input_multiplier, &data->input_left_shift);
  const double reverse = (double)(1 << (31 - data->input_left_shift)) / (double)data->input_multiplier;
  if (!(reverse > 0.0 && reverse < 1.0)) { /* QuantizeMultiplierSmallerThanOneExp aborts */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input scale %g gives no reverse scaling", (double)input->scale[0]);
  }
  eq_quantize_multiplier(reverse, &data->reverse_scaling_divisor, &data->reverse_scaling_left_shift);
  const double radius = 1.0 * ((1 << SCALED_DIFF_INTEGER_BITS) - 1) *
                        (double)(1LL << (31 - SCALED_DIFF_INTEGER_BITS)) / (double)(1LL << data->input_left_shift);
  data->diff_min = -(int32_t)floor(radius);
  return EDGEQ_OK;
}

/* One row; T is int8_t or uint8_t, with out_max 127 or 255 and out_min -128 or 0. */
#define LOG_SOFTMAX_ROW(T, out_min, out_max)                                                                     \
  static edgeq_status log_softmax_row_##T(eq_context* ctx, const log_softmax_data* d, const T* x, T* y) {      \
    const size_t depth = d->depth;                                                                               \
    int32_t max_in_row = out_min;                                                                                \
    for (size_t c = 0; c < depth; ++c) max_in_row = x[c] > max_in_row ? x[c] : max_in_row;                      \
    int32_t sum_of_exps = 0; /* Q12, wrapping like LiteRT's int32 adds */                                      \
    for (size_t c = 0; c < depth; ++c) {                                                                         \
      const int32_t diff = x[c] - max_in_row;                                                                    \
      if (diff >= d->diff_min) {                                                                                 \
        const int32_t scaled = eq_mbqm_greater_than_one(diff, d->input_multiplier, d->input_left_shift);        \
        sum_of_exps = eq_gl_add(sum_of_exps, eq_gl_rescale(eq_gl_exp_on_negative_values(scaled,                 \
                                                                                        SCALED_DIFF_INTEGER_BITS), \
                                                           0, ACCUMULATION_INTEGER_BITS));                       \
      }                                                                                                          \
    }                                                                                                            \
    if (sum_of_exps <= 0) { /* only when more than 4095 entries wrap the sum; LiteRT's log is undefined */      \
      return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "sum of exponentials overflows");                                \
    }                                                                                                            \
    const int32_t log_sum = eq_gl_log_x_for_x_greater_than_or_equal_to_1(sum_of_exps, ACCUMULATION_INTEGER_BITS, \
                                                                         SCALED_DIFF_INTEGER_BITS);              \
    const int32_t reverse = eq_mbqm_smaller_than_one(eq_gl_add(log_sum, INT32_MIN),                             \
                                                     d->reverse_scaling_divisor, d->reverse_scaling_left_shift); \
    const int32_t adjusted_diff_min = d->diff_min - 1 > reverse ? d->diff_min - 1 : reverse;                     \
    for (size_t c = 0; c < depth; ++c) {                                                                         \
      const int32_t diff = x[c] - max_in_row;                                                                    \
      int32_t v = out_min;                                                                                       \
      if (diff > adjusted_diff_min) {                                                                            \
        const int32_t scaled = eq_mbqm_greater_than_one(diff, d->input_multiplier, d->input_left_shift);        \
        v = eq_rdbpot(eq_gl_sub(scaled, log_sum), 31 - SCALED_DIFF_INTEGER_BITS - OUTPUT_INTEGER_BITS) + out_max; \
        v = eq_clamp32(v, out_min, out_max);                                                                     \
      }                                                                                                          \
      y[c] = (T)v;                                                                                               \
    }                                                                                                            \
    return EDGEQ_OK;                                                                                             \
  }
LOG_SOFTMAX_ROW(int8_t, -128, 127)
LOG_SOFTMAX_ROW(uint8_t, 0, 255)
#undef LOG_SOFTMAX_ROW

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const log_softmax_data* d = node->user;
  for (size_t i = 0; i < d->outer; ++i) {
    const size_t at = i * d->depth;
    edgeq_status s = input->type == EQ_T_INT8
                         ? log_softmax_row_int8_t(ctx, d, (const int8_t*)input->data + at, (int8_t*)output->data + at)
                         : log_softmax_row_uint8_t(ctx, d, input->data + at, output->data + at);
    if (s != EDGEQ_OK) return s;
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_log_softmax = {prepare, invoke};
