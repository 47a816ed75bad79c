/* MUL: int8, uint8 and int16 quantized (offset product times one requantizing multiplier), int16 inputs
 * into an int8/uint8 output (LiteRT's Q0.15 product path, which ignores the scales), and int32/int64 with
 * wraparound; numpy broadcasting and fused activations. */
#include "elementwise.h"

typedef struct mul_q {
  int32_t in1_offset, in2_offset, out_offset;
  int32_t multiplier;
  int shift;
  int32_t act_min, act_max;
} mul_q;

typedef struct mul_data {
  eq_broadcast bc;
  eq_binary_row_fn row;
  size_t in_size, out_size;
  const void* params;
  mul_q q;
  ew_int_range range;
} mul_data;

static inline int32_t mul_general(const mul_q* p, int32_t a, int32_t b) {
  const int32_t product = (a + p->in1_offset) * (b + p->in2_offset); /* |product| <= 2^30 */
  /* Unsigned: a hostile multiplier can bring the product near INT32_MAX, where the offset would overflow. */
  const uint32_t v = (uint32_t)p->out_offset + (uint32_t)eq_mbqm(product, p->multiplier, p->shift);
  return ew_clamp((int32_t)v, p->act_min, p->act_max);
}
static inline int8_t mul_s8(const mul_q* p, int8_t a, int8_t b) { return (int8_t)mul_general(p, a, b); }
static inline uint8_t mul_u8(const mul_q* p, uint8_t a, uint8_t b) { return (uint8_t)mul_general(p, a, b); }
static inline int16_t mul_s16(const mul_q* p, int16_t a, int16_t b) { return (int16_t)mul_general(p, a, b); }
EQ_BINARY_ROW(mul_row_s8, int8_t, int8_t, int8_t, mul_q, mul_s8)
EQ_BINARY_ROW(mul_row_u8, uint8_t, uint8_t, uint8_t, mul_q, mul_u8)
EQ_BINARY_ROW(mul_row_s16, int16_t, int16_t, int16_t, mul_q, mul_s16)

/* gemmlowp::SaturatingRoundingDoublingHighMul on int16 (a Q0.15 fixed-point product). */
static inline int16_t srdhm_s16(int16_t a, int16_t b) {
  if (a == INT16_MIN && b == INT16_MIN) return INT16_MAX;
  const int32_t ab = (int32_t)a * b;
  const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
  return (int16_t)((ab + nudge) / (1 << 15));
}

/* int16 x int16 -> 8 bits: the Q0.15 product rounded right by 8, clamped to the activation range less
 * the output zero point (both narrowed to int16, which they fit), then offset. */
static inline int32_t mul_s16_to_8bit(const mul_q* p, int16_t a, int16_t b) {
  const int16_t rescaled = ew_rdbpot_s16(srdhm_s16(a, b), 8);
  int16_t v = (int16_t)(p->act_max - p->out_offset) < rescaled ? (int16_t)(p->act_max - p->out_offset) : rescaled;
  v = (int16_t)(p->act_min - p->out_offset) > v ? (int16_t)(p->act_min - p->out_offset) : v;
  return p->out_offset + v;
}
static inline int8_t mul_s16_s8(const mul_q* p, int16_t a, int16_t b) { return (int8_t)mul_s16_to_8bit(p, a, b); }
static inline uint8_t mul_s16_u8(const mul_q* p, int16_t a, int16_t b) { return (uint8_t)mul_s16_to_8bit(p, a, b); }
EQ_BINARY_ROW(mul_row_s16_s8, int16_t, int16_t, int8_t, mul_q, mul_s16_s8)
EQ_BINARY_ROW(mul_row_s16_u8, int16_t, int16_t, uint8_t, mul_q, mul_s16_u8)

/* Plain integer products wrap (WrappingMul). */
static inline int32_t mul_s32(const ew_int_range* p, int32_t a, int32_t b) {
  return (int32_t)ew_clamp64((int32_t)((uint32_t)a * (uint32_t)b), p->act_min, p->act_max);
}
static inline int64_t mul_s64(const ew_int_range* p, int64_t a, int64_t b) {
  return ew_clamp64((int64_t)((uint64_t)a * (uint64_t)b), p->act_min, p->act_max);
}
EQ_BINARY_ROW(mul_row_s32, int32_t, int32_t, int32_t, ew_int_range, mul_s32)
EQ_BINARY_ROW(mul_row_s64, int64_t, int64_t, int64_t, ew_int_range, mul_s64)

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* in[2] = {NULL, NULL};
  eq_tensor* out = NULL;
  edgeq_status s = ew_operands(ctx, node, 2, in, &out);
  if (s != EDGEQ_OK) return s;
  const int32_t type = in[0]->type;
  const int narrowing = type == EQ_T_INT16 && (out->type == EQ_T_INT8 || out->type == EQ_T_UINT8);
  if (in[1]->type != type || (out->type != type && !narrowing)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input types %s and %s and output type %s do not match",
                    eq_type_name(type), eq_type_name(in[1]->type), eq_type_name(out->type));
  }
  mul_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  if ((s = eq_broadcast_prepare(ctx, in[0], in[1], out, &data->bc)) != EDGEQ_OK) return s;
  const int32_t activation = ew_activation(node);
  data->in_size = eq_type_size(type);
  data->out_size = eq_type_size(out->type);
  node->user = data;
  switch (out->type) {
    case EQ_T_INT32:
      ew_int_activation_range(activation, INT32_MIN, INT32_MAX, &data->range);
      data->row = mul_row_s32;
      data->params = &data->range;
      return EDGEQ_OK;
    case EQ_T_INT64:
      ew_int_activation_range(activation, INT64_MIN, INT64_MAX, &data->range);
      data->row = mul_row_s64;
      data->params = &data->range;
      return EDGEQ_OK;
    case EQ_T_INT8:
    case EQ_T_UINT8:
    case EQ_T_INT16:
      break;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(out->type));
  }
  mul_q* q = &data->q;
  data->params = q;
  if (narrowing) {
    /* Only the output's zero point and activation range matter here; this path never broadcasts. */
    if ((s = ew_check_quant(ctx, out, "output", 0)) != EDGEQ_OK) return s;
    if (in[0]->count != out->count || in[1]->count != out->count) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "LiteRT's int16 -> %s MUL does not broadcast",
                      eq_type_name(out->type));
    }
    q->out_offset = (int32_t)out->zero_point[0];
    if ((s = ew_activation_range(ctx, activation, out, &q->act_min, &q->act_max)) != EDGEQ_OK) return s;
    data->row = out->type == EQ_T_INT8 ? mul_row_s16_s8 : mul_row_s16_u8;
    return EDGEQ_OK;
  }
  if (out->type == EQ_T_INT16 && out->nq == 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "unquantized int16 MUL");
  }
  /* int16 products must not overflow int32, so LiteRT requires zero points of 0. */
  const int symmetric = type == EQ_T_INT16;
  if ((s = ew_check_quant(ctx, in[0], "input 1", symmetric)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, in[1], "input 2", symmetric)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, out, "output", symmetric)) != EDGEQ_OK) return s;
  q->in1_offset = -(int32_t)in[0]->zero_point[0];
  q->in2_offset = -(int32_t)in[1]->zero_point[0];
  q->out_offset = (int32_t)out->zero_point[0];
  /* The scale product and quotient are float arithmetic, widened to double afterwards. */
  const float real = in[0]->scale[0] * in[1]->scale[0] / out->scale[0];
  if ((s = ew_multiplier(ctx, (double)real, &q->multiplier, &q->shift, "output")) != EDGEQ_OK) return s;
  if ((s = ew_activation_range(ctx, activation, out, &q->act_min, &q->act_max)) != EDGEQ_OK) return s;
  data->row = type == EQ_T_INT8 ? mul_row_s8 : type == EQ_T_UINT8 ? mul_row_u8 : mul_row_s16;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const mul_data* data = node->user;
  const eq_tensor* in1 = eq_input(ctx, node, 0);
  const eq_tensor* in2 = eq_input(ctx, node, 1);
  eq_tensor* out = eq_output(ctx, node, 0);
  eq_broadcast_run(&data->bc, data->row, data->params, in1->data, data->in_size, in2->data, data->in_size, out->data,
                   data->out_size);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_mul = {prepare, invoke};
