/* TANH, as LiteRT's reference kernel computes it:
 *   int8, uint8: a 256-entry table of tanhf built from the stored scales and zero points (any output
 *     scale).
 *   int16: zero points 0, output scale 2^-15 within CheckedLog2's tolerance; the input is rescaled to
 *     1/(3*4096) units (or taken as is for scales 2^-12 and 2^-11) and interpolated in the Q0.16 sigmoid
 *     table, tanh(x) = 2 sigmoid(2x) - 1. */
#include <math.h>

#include "lut.h"
#include "transcendental.h"

typedef struct tanh_data {
  uint8_t lut[256];
  int32_t input_multiplier;
  int input_left_shift;
} tanh_data;

static float tanh_f32(float x, const void* params) {
  (void)params;
  return tanhf(x);
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s = eq_tr_prepare_unary(
      ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_UINT8) | EQ_TYPE_BIT(EQ_T_INT16), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  tanh_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  const float in_scale = input->scale[0], out_scale = output->scale[0];
  const int32_t in_zp = (int32_t)input->zero_point[0], out_zp = (int32_t)output->zero_point[0];
  if (input->type == EQ_T_INT16) {
    if (in_zp != 0 || out_zp != 0) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 needs zero points 0");
    int log2_out;
    if (!eq_checked_log2(out_scale, &log2_out) || log2_out != -15) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 output scale %g is not 2^-15", (double)out_scale);
    }
    return eq_tr_int16_input_rescale(ctx, in_scale, 1, &data->input_multiplier, &data->input_left_shift);
  }
  eq_lut_populate_8(input->type == EQ_T_INT8, in_scale, in_zp, out_scale, out_zp, tanh_f32, NULL, data->lut);
  return EDGEQ_OK;
}

/* reference_integer_ops::Tanh for int16; int32 products wrap as on LiteRT's hardware. */
static void tanh_s16(const int16_t* input, int16_t* output, size_t count, int32_t multiplier, int left_shift) {
  if (multiplier == 0) {
    multiplier = (int32_t)(3u << left_shift); /* wraps for tiny scales, as in LiteRT */
    left_shift = 0;
  }
  const uint32_t round = left_shift > 0 ? 1u << (left_shift - 1) : 0;
  for (size_t i = 0; i < count; ++i) {
    const int32_t x = (int32_t)((uint32_t)(int32_t)input[i] * (uint32_t)multiplier + round) >> left_shift;
    const uint32_t abs_x = x < 0 ? 0u - (uint32_t)x : (uint32_t)x;
    const uint32_t uh = abs_x >> 8;
    uint32_t result; /* LiteRT holds it in an int32; the bits are the same */
    if (uh >= 255) {
      result = 0xFFFFu << 8;
    } else {
      const uint32_t ua = eq_sigmoid_table_q16[uh];
      const uint32_t ub = eq_sigmoid_table_q16[uh + 1];
      result = (ua << 8) + (abs_x & 0xff) * (ub - ua);
    }
    result = x >= 0 ? result - (1u << 23) + (1u << 7) : (1u << 23) + (1u << 7) - 1u - result;
    output[i] = (int16_t)((int32_t)result >> 8); /* arithmetic shift of the signed value */
  }
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const tanh_data* data = node->user;
  if (input->type == EQ_T_INT16) {
    tanh_s16((const int16_t*)input->data, (int16_t*)output->data, input->count, data->input_multiplier,
             data->input_left_shift);
  } else {
    eq_lut8_apply(data->lut, input->data, output->data, input->count);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_tanh = {prepare, invoke};
