/* ELU for int8, as LiteRT's kernel computes it: a 256-entry table of x < 0 ? expm1f(x) : x built from the
 * stored scales and zero points. LiteRT's reference resolver does not register ELU; its one kernel (the
 * default resolver's) is what this matches. */
#include <math.h>

#include "lut.h"
#include "transcendental.h"

typedef struct elu_data {
  uint8_t lut[256];
} elu_data;

static float elu_f32(float x, const void* params) {
  (void)params;
  return x < 0.0f ? expm1f(x) : x;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s = eq_tr_prepare_unary(ctx, node, EQ_TYPE_BIT(EQ_T_INT8), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  elu_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  eq_lut_populate_8(1, input->scale[0], (int32_t)input->zero_point[0], output->scale[0],
                    (int32_t)output->zero_point[0], elu_f32, NULL, data->lut);
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const elu_data* data = node->user;
  eq_lut8_apply(data->lut, input->data, output->data, input->count);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_elu = {prepare, invoke};
