/* PRELU on quantized int8 (int8 alpha), uint8 (uint8 alpha) and int16 (int8 alpha): alpha broadcasts to
 * the input's shape, which is also the output's. Non-negative offset inputs are requantized by input
 * scale / output scale; negative ones are multiplied by the offset alpha and requantized by input scale *
 * alpha scale / output scale (both float quotients, as PreluPrepare computes them). */
#include "elementwise.h"

typedef struct prelu_q {
  int32_t in_offset, alpha_offset, out_offset;
  int32_t multiplier1, multiplier2;
  int shift1, shift2;
  int32_t lo, hi;
} prelu_q;

typedef struct prelu_data {
  eq_broadcast bc;
  eq_binary_row_fn row;
  size_t in_size, alpha_size;
  prelu_q q;
} prelu_data;

static inline int32_t prelu_one(const prelu_q* p, int32_t x, int32_t a) {
  const int32_t v = p->in_offset + x;
  int32_t y;
  if (v >= 0) {
    y = eq_mbqm(v, p->multiplier1, p->shift1);
  } else {
    y = eq_mbqm(v * (p->alpha_offset + a), p->multiplier2, p->shift2); /* |product| < 2^24 */
  }
  return ew_clamp((int32_t)((uint32_t)y + (uint32_t)p->out_offset), p->lo, p->hi);
}
static inline int8_t prelu_s8(const prelu_q* p, int8_t x, int8_t a) { return (int8_t)prelu_one(p, x, a); }
static inline uint8_t prelu_u8(const prelu_q* p, uint8_t x, uint8_t a) { return (uint8_t)prelu_one(p, x, a); }
static inline int16_t prelu_s16(const prelu_q* p, int16_t x, int8_t a) { return (int16_t)prelu_one(p, x, a); }
EQ_BINARY_ROW(prelu_row_s8, int8_t, int8_t, int8_t, prelu_q, prelu_s8)
EQ_BINARY_ROW(prelu_row_u8, uint8_t, uint8_t, uint8_t, prelu_q, prelu_u8)
EQ_BINARY_ROW(prelu_row_s16, int16_t, int8_t, int16_t, prelu_q, prelu_s16)

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* in[2] = {NULL, NULL};
  eq_tensor* out = NULL;
  edgeq_status s = ew_operands(ctx, node, 2, in, &out);
  if (s != EDGEQ_OK) return s;
  const eq_tensor* input = in[0];
  const eq_tensor* alpha = in[1];
  if (out->type != input->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input type %s and output type %s differ", eq_type_name(input->type),
                    eq_type_name(out->type));
  }
  /* LiteRT reads alpha as int8 for int8/int16 inputs and as uint8 for uint8 ones, whatever its type. */
  const int32_t alpha_type = input->type == EQ_T_UINT8 ? EQ_T_UINT8 : EQ_T_INT8;
  if (!ew_is_quantizable(input->type)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(input->type));
  }
  if (alpha->type != alpha_type) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s input with %s alpha (LiteRT takes %s alpha)",
                    eq_type_name(input->type), eq_type_name(alpha->type), eq_type_name(alpha_type));
  }
  prelu_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  if ((s = eq_broadcast_prepare(ctx, input, alpha, out, &data->bc)) != EDGEQ_OK) return s;
  if (!eq_same_shape(input, out)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "alpha must broadcast to the input's shape, not widen it");
  }
  if ((s = ew_check_quant(ctx, input, "input", 0)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, alpha, "alpha", 0)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, out, "output", 0)) != EDGEQ_OK) return s;
  prelu_q* q = &data->q;
  q->in_offset = -(int32_t)input->zero_point[0];
  q->alpha_offset = -(int32_t)alpha->zero_point[0];
  q->out_offset = (int32_t)out->zero_point[0];
  const float real1 = input->scale[0] / out->scale[0];
  const float real2 = input->scale[0] * alpha->scale[0] / out->scale[0];
  if ((s = ew_multiplier(ctx, (double)real1, &q->multiplier1, &q->shift1, "positive")) != EDGEQ_OK) return s;
  if ((s = ew_multiplier(ctx, (double)real2, &q->multiplier2, &q->shift2, "negative")) != EDGEQ_OK) return s;
  eq_type_range(out->type, &q->lo, &q->hi);
  data->in_size = eq_type_size(input->type);
  data->alpha_size = eq_type_size(alpha_type);
  data->row = input->type == EQ_T_INT8 ? prelu_row_s8 : input->type == EQ_T_UINT8 ? prelu_row_u8 : prelu_row_s16;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const prelu_data* data = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* alpha = eq_input(ctx, node, 1);
  eq_tensor* out = eq_output(ctx, node, 0);
  eq_broadcast_run(&data->bc, data->row, &data->q, input->data, data->in_size, alpha->data, data->alpha_size,
                   out->data, data->in_size);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_prelu = {prepare, invoke};
