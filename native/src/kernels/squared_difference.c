/* SQUARED_DIFFERENCE: int8 (both inputs shifted left by 7 and rescaled to twice the larger input scale,
 * the difference squared, then rescaled to the output; no fused activation) and int32 (wrapping), with
 * numpy broadcasting. LiteRT has no int16 or uint8 kernel for it. */
#include "elementwise.h"

typedef struct sqdiff_q {
  int32_t in1_offset, in2_offset, out_offset;
  int32_t in1_multiplier, in2_multiplier, out_multiplier;
  int in1_shift, in2_shift, out_shift;
  int32_t table1[256], table2[256]; /* each input's rescaled value for every stored byte */
} sqdiff_q;

typedef struct sqdiff_data {
  eq_broadcast bc;
  eq_binary_row_fn row;
  size_t size;
  sqdiff_q q;
} sqdiff_data;

enum { SQDIFF_LEFT_SHIFT = 7 };

static inline int8_t sqdiff_s8(const sqdiff_q* p, int8_t a, int8_t b) {
  const int32_t d = p->table1[(uint8_t)a] - p->table2[(uint8_t)b]; /* |d| < 2^15: the square fits int32 */
  const int32_t v = ew_rescale_down(d * d, p->out_multiplier, p->out_shift) + p->out_offset;
  return (int8_t)ew_clamp(v, INT8_MIN, INT8_MAX);
}
EQ_BINARY_ROW(sqdiff_row_s8, int8_t, int8_t, int8_t, sqdiff_q, sqdiff_s8)

static inline int32_t sqdiff_s32(const sqdiff_q* p, int32_t a, int32_t b) {
  (void)p;
  const uint32_t d = (uint32_t)a - (uint32_t)b;
  return (int32_t)(d * d);
}
EQ_BINARY_ROW(sqdiff_row_s32, int32_t, int32_t, int32_t, sqdiff_q, sqdiff_s32)

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* in[2] = {NULL, NULL};
  eq_tensor* out = NULL;
  edgeq_status s = ew_operands(ctx, node, 2, in, &out);
  if (s != EDGEQ_OK) return s;
  if (in[0]->type != in[1]->type || out->type != in[0]->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input types %s and %s and output type %s differ",
                    eq_type_name(in[0]->type), eq_type_name(in[1]->type), eq_type_name(out->type));
  }
  if (out->type != EQ_T_INT8 && out->type != EQ_T_INT32) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s (LiteRT's kernel takes int8 and int32)",
                    eq_type_name(out->type));
  }
  sqdiff_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  if ((s = eq_broadcast_prepare(ctx, in[0], in[1], out, &data->bc)) != EDGEQ_OK) return s;
  data->size = eq_type_size(out->type);
  if (out->type == EQ_T_INT32) {
    data->row = sqdiff_row_s32;
    return EDGEQ_OK;
  }
  if ((s = ew_check_quant(ctx, in[0], "input 1", 0)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, in[1], "input 2", 0)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, out, "output", 0)) != EDGEQ_OK) return s;
  sqdiff_q* q = &data->q;
  q->in1_offset = -(int32_t)in[0]->zero_point[0];
  q->in2_offset = -(int32_t)in[1]->zero_point[0];
  q->out_offset = (int32_t)out->zero_point[0];
  /* As Prepare: float max doubled, double quotients; the output divisor (1 << 14) * scale is a float. */
  const float s1 = in[0]->scale[0], s2 = in[1]->scale[0];
  const double twice_max = (double)(2.0f * (s1 > s2 ? s1 : s2));
  const float divisor = (float)(1 << (2 * SQDIFF_LEFT_SHIFT)) * out->scale[0];
  s = ew_multiplier_below_one(ctx, (double)s1 / twice_max, &q->in1_multiplier, &q->in1_shift, "input 1");
  if (s == EDGEQ_OK) {
    s = ew_multiplier_below_one(ctx, (double)s2 / twice_max, &q->in2_multiplier, &q->in2_shift, "input 2");
  }
  if (s == EDGEQ_OK) {
    s = ew_multiplier_below_one(ctx, twice_max * twice_max / (double)divisor, &q->out_multiplier, &q->out_shift,
                                "output");
  }
  if (s != EDGEQ_OK) return s;
  for (int k = 0; k < 256; ++k) {
    const int32_t v = (int8_t)(uint8_t)k;
    q->table1[k] = ew_addsub_scale(v + q->in1_offset, SQDIFF_LEFT_SHIFT, q->in1_multiplier, q->in1_shift);
    q->table2[k] = ew_addsub_scale(v + q->in2_offset, SQDIFF_LEFT_SHIFT, q->in2_multiplier, q->in2_shift);
  }
  data->row = sqdiff_row_s8;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const sqdiff_data* data = node->user;
  const eq_tensor* in1 = eq_input(ctx, node, 0);
  const eq_tensor* in2 = eq_input(ctx, node, 1);
  eq_tensor* out = eq_output(ctx, node, 0);
  eq_broadcast_run(&data->bc, data->row, &data->q, in1->data, data->size, in2->data, data->size, out->data,
                   data->size);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_squared_difference = {prepare, invoke};
