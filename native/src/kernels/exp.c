/* EXP, as LiteRT's reference kernel computes it: int8 through a 256-entry table of expf, int16 (zero
 * points 0) through a 513-entry interpolated table of expf, both built from the stored scales and zero
 * points. uint8 is not supported by LiteRT's kernel. */
#include <math.h>

#include "lut.h"
#include "transcendental.h"

typedef union exp_data {
  uint8_t lut8[256];
  int16_t lut16[EQ_LUT16_SIZE];
} exp_data;

static float exp_f32(float x, const void* params) {
  (void)params;
  return expf(x);
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s =
      eq_tr_prepare_unary(ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_INT16), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  exp_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  const int32_t in_zp = (int32_t)input->zero_point[0], out_zp = (int32_t)output->zero_point[0];
  if (input->type == EQ_T_INT16) {
    if (in_zp != 0 || out_zp != 0) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 needs zero points 0");
    eq_lut_populate_16(input->scale[0], in_zp, output->scale[0], out_zp, exp_f32, NULL, data->lut16);
  } else {
    eq_lut_populate_8(1, input->scale[0], in_zp, output->scale[0], out_zp, exp_f32, NULL, data->lut8);
  }
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const exp_data* data = node->user;
  if (input->type == EQ_T_INT16) {
    eq_lut16_apply(data->lut16, (const int16_t*)input->data, (int16_t*)output->data, input->count);
  } else {
    eq_lut8_apply(data->lut8, input->data, output->data, input->count);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_exp = {prepare, invoke};
