/* HARD_SWISH (x * relu6(x + 3) / 6) for int8 and uint8, as LiteRT's reference kernel computes it: in int16
 * fixed point, the input at 2^7 times its resolution, a "reluish" factor at scale 3/32768 and 16-bit
 * multipliers (float scale ratios, QuantizeMultiplier, rounded down to 16 bits). int16 is not supported
 * by LiteRT's kernel.
 *
 * LiteRT keeps every intermediate in an int16_t, so values that do not fit wrap; the helpers below do
 * the same (C's conversion to int16_t is modular on every compiler edgeq supports). */
#include "transcendental.h"

typedef struct hard_swish_data {
  int16_t input_zero_point, output_zero_point;
  int16_t reluish_multiplier;
  int reluish_exponent;
  int16_t output_multiplier;
  int output_exponent;
} hard_swish_data;

/* DownScaleInt32ToInt16Multiplier */
static int16_t downscale_multiplier(int32_t m) {
  if (m >= INT32_MAX - (1 << 15)) return INT16_MAX;
  return (int16_t)((m + (1 << 15)) >> 16);
}

/* gemmlowp::SaturatingRoundingDoublingHighMul for int16 */
static int16_t srdhm16(int16_t a, int16_t b) {
  if (a == INT16_MIN && b == INT16_MIN) return INT16_MAX;
  const int32_t ab = (int32_t)a * (int32_t)b;
  const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
  return (int16_t)((ab + nudge) / (1 << 15));
}

/* reference_ops::SaturatingDoublingHighMul: like srdhm16 but truncating */
static int16_t sdhm16(int16_t a, int16_t b) {
  if (a == INT16_MIN && b == INT16_MIN) return INT16_MAX;
  return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* gemmlowp::RoundingDivideByPOT for int16 with its int16 mask: for exponents of 16 and more the mask is
 * all ones, which gives 1 for x >= 0 and -1 for x < 0. */
static int16_t rdbpot16(int16_t x, int exponent) {
  const int16_t mask = (int16_t)(((int64_t)1 << exponent) - 1);
  const int16_t remainder = (int16_t)(x & mask);
  const int16_t threshold = (int16_t)((mask >> 1) + (x < 0 ? 1 : 0));
  return (int16_t)((x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* reference_ops::SaturatingLeftShift */
static int16_t saturating_left_shift16(int16_t value, int amount) {
  const int64_t r = (int64_t)value * ((int64_t)1 << amount);
  return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s =
      eq_tr_prepare_unary(ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_UINT8), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  hard_swish_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  /* LiteRT keeps the zero points in int16_t and checks they fit */
  if (input->zero_point[0] < INT16_MIN || input->zero_point[0] > INT16_MAX || output->zero_point[0] < INT16_MIN ||
      output->zero_point[0] > INT16_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "zero points must fit in int16");
  }
  data->input_zero_point = (int16_t)input->zero_point[0];
  data->output_zero_point = (int16_t)output->zero_point[0];
  /* HardSwishPrepare's float arithmetic, then QuantizeMultiplier on the float widened to double */
  const float hires_input_scale = (1.0f / 128.0f) * input->scale[0];
  const float reluish_scale = 3.0f / 32768.0f;
  const float output_multiplier = hires_input_scale / output->scale[0];
  const float reluish_multiplier = hires_input_scale / reluish_scale;
  if (!isfinite(output_multiplier) || !isfinite(reluish_multiplier)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "scale ratio not finite");
  }
  int32_t m32;
  eq_quantize_multiplier((double)output_multiplier, &m32, &data->output_exponent);
  data->output_multiplier = downscale_multiplier(m32);
  if (data->output_exponent > 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input scale / 128 must not exceed the output scale");
  }
  eq_quantize_multiplier((double)reluish_multiplier, &m32, &data->reluish_exponent);
  data->reluish_multiplier = downscale_multiplier(m32);
  if (data->reluish_exponent > 31) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input scale %g too large", (double)input->scale[0]);
  }
  return EDGEQ_OK;
}

static int16_t hard_swish_one(const hard_swish_data* d, int32_t x) {
  const int16_t input_value = (int16_t)(x - d->input_zero_point);
  const int16_t hires = (int16_t)(input_value * (1 << 7));
  const int16_t preshift = srdhm16(hires, d->output_multiplier);
  int16_t reluish = hires;
  if (d->reluish_exponent > 0) reluish = saturating_left_shift16(reluish, d->reluish_exponent - 1);
  reluish = srdhm16(reluish, d->reluish_multiplier);
  if (d->reluish_exponent > 0) reluish = saturating_left_shift16(reluish, 1);
  if (d->reluish_exponent < 0) reluish = rdbpot16(reluish, -d->reluish_exponent);
  reluish = (int16_t)((reluish + (1 << 15)) >> 1); /* [-1, 1] to [0, 1] */
  const int16_t preshift_output = sdhm16(reluish, preshift);
  return (int16_t)(rdbpot16(preshift_output, -d->output_exponent) + d->output_zero_point);
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const hard_swish_data* d = node->user;
  if (input->type == EQ_T_INT8) {
    const int8_t* x = (const int8_t*)input->data;
    int8_t* y = (int8_t*)output->data;
    for (size_t i = 0; i < input->count; ++i) y[i] = (int8_t)eq_clamp32(hard_swish_one(d, x[i]), -128, 127);
  } else {
    for (size_t i = 0; i < input->count; ++i) {
      output->data[i] = (uint8_t)eq_clamp32(hard_swish_one(d, input->data[i]), 0, 255);
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_hard_swish = {prepare, invoke};
