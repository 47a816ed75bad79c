/* LUTPopulate, written to round exactly where LiteRT rounds: every intermediate is a float (or a double for
 * the _f64 variant) computed in LiteRT's order; C's int-to-float conversions and float arithmetic are the
 * same IEEE operations as C++'s. Contracting a*b+c into an FMA would change bits (it does with gcc
 * -std=gnu11 -march=native), so it is turned off below for clang and gcc. */
#include "lut.h"

#include <math.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* gcc ignores the STDC pragma; -std=gnu11 would contract */
#endif

/* sigmoid(i / 24) in Q0.16 for i = 0..255 (65535 at the end): the table TFLite's int16 LOGISTIC and TANH
 * interpolate (tanh(x) = 2 sigmoid(2x) - 1). Its values are not a plain rounding of the float function, so
 * they are data here, not computed. */
const uint16_t eq_sigmoid_table_q16[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
};

int32_t eq_f32_to_i32_sat(float x) {
  if (x != x) return 0;
  if (x >= 2147483648.0f) return INT32_MAX;
  if (x < -2147483648.0f) return INT32_MIN;
  return (int32_t)x;
}

int32_t eq_f32_to_i32_cvtt(float x) {
  if (!(x >= -2147483648.0f && x < 2147483648.0f)) return INT32_MIN; /* NaN too */
  return (int32_t)x;
}

void eq_lut_populate_8(int is_signed, float input_scale, int32_t input_zero_point, float output_scale,
                       int32_t output_zero_point, eq_lut_fn fn, const void* params, uint8_t lut[256]) {
  const float inverse_scale = 1 / output_scale;
  const int32_t minval = is_signed ? -128 : 0;
  const int32_t maxval = is_signed ? 127 : 255;
  for (int32_t val = minval; val <= maxval; ++val) {
    const float dequantized = input_scale * (float)(val - input_zero_point);
    const float transformed = fn(dequantized, params);
    const float rescaled = roundf(transformed * inverse_scale);
    /* Out of int32 range (huge ratios, inf, NaN) LiteRT's build converts int8 tables saturating (NaN: 0)
     * and uint8 tables with a bare cvttss2si (INT32_MIN); measured, not derivable from the source. */
    const float shifted = rescaled + (float)output_zero_point;
    int32_t quantized = is_signed ? eq_f32_to_i32_sat(shifted) : eq_f32_to_i32_cvtt(shifted);
    quantized = quantized < minval ? minval : (quantized > maxval ? maxval : quantized);
    lut[(uint8_t)val] = (uint8_t)quantized; /* int8 tables are indexed by the input's raw byte */
  }
}

/* std::min(std::max(v, lo), hi) lets NaN through; LiteRT's build then converts it to 0. */
static int16_t clamp_to_i16_f32(float v) {
  if (v != v) return 0;
  v = v < -32768.0f ? -32768.0f : v;
  v = 32767.0f < v ? 32767.0f : v;
  return (int16_t)v;
}

static int16_t clamp_to_i16_f64(double v) {
  if (v != v) return 0;
  v = v < -32768.0 ? -32768.0 : v;
  v = 32767.0 < v ? 32767.0 : v;
  return (int16_t)v;
}

void eq_lut_populate_16(float input_scale, int32_t input_zero_point, float output_scale, int32_t output_zero_point,
                        eq_lut_fn fn, const void* params, int16_t lut[EQ_LUT16_SIZE]) {
  const float input_min = input_scale * (float)(-32768 - input_zero_point);
  const float input_max = input_scale * (float)(32767 - input_zero_point);
  const float output_min = output_scale * (float)(-32768 - output_zero_point);
  const float output_max = output_scale * (float)(32767 - output_zero_point);
  const int nb_steps = 512;
  const float step = (input_max - input_min) / (float)nb_steps;
  const float half_step = step / 2.0f;
  const float output_scaling_inv = 65536.0f / (output_max - output_min);
  for (int i = 0; i < nb_steps; ++i) {
    const float val = fn(input_min + (float)i * step, params);
    const float val_midpoint = fn(input_min + (float)i * step + half_step, params);
    const float val_next = fn(input_min + (float)(i + 1) * step, params);
    const float sample_val = roundf(val * output_scaling_inv);
    const float midpoint_interp_val = roundf((val_next * output_scaling_inv + roundf(val * output_scaling_inv)) / 2.0f);
    const float midpoint_val = roundf(val_midpoint * output_scaling_inv);
    const float midpoint_err = midpoint_interp_val - midpoint_val;
    const float bias = roundf(midpoint_err / 2.0f);
    lut[i] = clamp_to_i16_f32(sample_val - bias);
  }
  lut[nb_steps] = clamp_to_i16_f32(roundf(fn(input_max, params) * output_scaling_inv));
}

void eq_lut_populate_16_f64(double input_scale, int32_t input_zero_point, double output_scale,
                            int32_t output_zero_point, eq_lut_fn_f64 fn, int16_t lut[EQ_LUT16_SIZE]) {
  const double input_min = input_scale * (double)(-32768 - input_zero_point);
  const double input_max = input_scale * (double)(32767 - input_zero_point);
  const double output_min = output_scale * (double)(-32768 - output_zero_point);
  const double output_max = output_scale * (double)(32767 - output_zero_point);
  const int nb_steps = 512;
  const double step = (input_max - input_min) / (double)nb_steps;
  const double half_step = step / 2.0;
  const double output_scaling_inv = 65536.0 / (output_max - output_min);
  for (int i = 0; i < nb_steps; ++i) {
    const double val = fn(input_min + (double)i * step);
    const double val_midpoint = fn(input_min + (double)i * step + half_step);
    const double val_next = fn(input_min + (double)(i + 1) * step);
    const double sample_val = round(val * output_scaling_inv);
    const double midpoint_interp_val = round((val_next * output_scaling_inv + round(val * output_scaling_inv)) / 2.0);
    const double midpoint_val = round(val_midpoint * output_scaling_inv);
    const double midpoint_err = midpoint_interp_val - midpoint_val;
    const double bias = round(midpoint_err / 2.0);
    lut[i] = clamp_to_i16_f64(sample_val - bias);
  }
  lut[nb_steps] = clamp_to_i16_f64(round(fn(input_max) * output_scaling_inv));
}

void eq_lut8_apply(const uint8_t* lut, const uint8_t* input, uint8_t* output, size_t count) {
  for (size_t i = 0; i < count; ++i) output[i] = lut[input[i]];
}

void eq_lut16_apply(const int16_t* lut, const int16_t* input, int16_t* output, size_t count) {
  for (size_t i = 0; i < count; ++i) output[i] = eq_lut16_lookup(input[i], lut);
}
