/* ADD: int8, uint8 and int16 quantized (the general rescaling path; for int16 also the power-of-two path
 * that LiteRT picks when pot_scale_int16 is set and every scale is a power of two), and int32/int64 with
 * wraparound, all with numpy broadcasting and fused activations. */
#include "elementwise.h"

typedef struct add_pot {
  int swap;        /* input 2 is the unshifted one */
  int right_shift; /* of the other input */
  int32_t act_min, act_max;
} add_pot;

typedef struct add_data {
  eq_broadcast bc;
  eq_binary_row_fn row;
  size_t size; /* bytes per element, inputs and output alike */
  const void* params;
  ew_addsub q;
  add_pot pot;
  ew_int_range range;
} add_data;

static inline int32_t add_q(const ew_addsub* p, int32_t a, int32_t b) {
  const int32_t x = ew_addsub_scale(a + p->in1_offset, p->left_shift, p->in1_multiplier, p->in1_shift);
  const int32_t y = ew_addsub_scale(b + p->in2_offset, p->left_shift, p->in2_multiplier, p->in2_shift);
  return ew_addsub_finish(p, x + y);
}
static inline int16_t add_s16(const ew_addsub* p, int16_t a, int16_t b) { return (int16_t)add_q(p, a, b); }
static void add_row_s8(const void* p, const void* a, size_t a_inc, const void* b, size_t b_inc, void* out,
                       size_t n) {
  ew_addsub_row8((const ew_addsub*)p, (const uint8_t*)a, a_inc, (const uint8_t*)b, b_inc, (uint8_t*)out, n, 0, 1);
}
static void add_row_u8(const void* p, const void* a, size_t a_inc, const void* b, size_t b_inc, void* out,
                       size_t n) {
  ew_addsub_row8((const ew_addsub*)p, (const uint8_t*)a, a_inc, (const uint8_t*)b, b_inc, (uint8_t*)out, n, 0, 0);
}
EQ_BINARY_ROW(add_row_s16, int16_t, int16_t, int16_t, ew_addsub, add_s16)

/* int16 power-of-two path: the unshifted input plus the other rounded right by the scale ratio's log2,
 * saturated to int16 (a Q0.15 SaturatingAdd), then clamped. */
static inline int16_t add_s16_pot(const add_pot* p, int16_t a, int16_t b) {
  const int16_t keep = p->swap ? b : a, shifted = p->swap ? a : b;
  const int32_t sum = ew_clamp((int32_t)ew_rdbpot_s16(shifted, p->right_shift) + keep, INT16_MIN, INT16_MAX);
  return (int16_t)ew_clamp(sum, p->act_min, p->act_max);
}
EQ_BINARY_ROW(add_row_s16_pot, int16_t, int16_t, int16_t, add_pot, add_s16_pot)

/* Plain integer add; LiteRT's overflow wraps in practice, so wrap explicitly. */
static inline int32_t add_s32(const ew_int_range* p, int32_t a, int32_t b) {
  return (int32_t)ew_clamp64((int32_t)((uint32_t)a + (uint32_t)b), p->act_min, p->act_max);
}
static inline int64_t add_s64(const ew_int_range* p, int64_t a, int64_t b) {
  return ew_clamp64((int64_t)((uint64_t)a + (uint64_t)b), p->act_min, p->act_max);
}
EQ_BINARY_ROW(add_row_s32, int32_t, int32_t, int32_t, ew_int_range, add_s32)
EQ_BINARY_ROW(add_row_s64, int64_t, int64_t, int64_t, ew_int_range, add_s64)

static edgeq_status prepare_pot(eq_context* ctx, const eq_tensor* in1, const eq_tensor* in2, const eq_tensor* out,
                                int32_t activation, add_pot* p) {
  int l1, l2, lo;
  ew_checked_log2(in1->scale[0], &l1);
  ew_checked_log2(in2->scale[0], &l2);
  ew_checked_log2(out->scale[0], &lo);
  const int shift1 = l1 - lo, shift2 = l2 - lo;
  if (!(shift1 == 0 || shift2 == 0) || shift1 > 0 || shift2 > 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "power-of-two int16 ADD needs one input at the output's scale and the other at a smaller one "
                    "(input shifts %d and %d)", shift1, shift2);
  }
  p->swap = shift1 != 0;
  p->right_shift = shift1 != 0 ? -shift1 : -shift2;
  if (p->right_shift > 31) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "power-of-two int16 ADD right shift %d", p->right_shift);
  }
  if (in1->count != out->count || in2->count != out->count) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "LiteRT's power-of-two int16 ADD does not broadcast");
  }
  return ew_activation_range(ctx, activation, out, &p->act_min, &p->act_max);
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* in[2] = {NULL, NULL};
  eq_tensor* out = NULL;
  edgeq_status s = ew_operands(ctx, node, 2, in, &out);
  if (s != EDGEQ_OK) return s;
  if (in[0]->type != in[1]->type || out->type != in[0]->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input types %s and %s and output type %s differ",
                    eq_type_name(in[0]->type), eq_type_name(in[1]->type), eq_type_name(out->type));
  }
  add_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  if ((s = eq_broadcast_prepare(ctx, in[0], in[1], out, &data->bc)) != EDGEQ_OK) return s;
  const int32_t activation = ew_activation(node);
  data->size = eq_type_size(out->type);
  switch (out->type) {
    case EQ_T_INT32:
    case EQ_T_INT64:
      if (out->type == EQ_T_INT32) {
        ew_int_activation_range(activation, INT32_MIN, INT32_MAX, &data->range);
        data->row = add_row_s32;
      } else {
        ew_int_activation_range(activation, INT64_MIN, INT64_MAX, &data->range);
        data->row = add_row_s64;
      }
      data->params = &data->range;
      node->user = data;
      return EDGEQ_OK;
    case EQ_T_INT8:
    case EQ_T_UINT8:
    case EQ_T_INT16:
      break;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(out->type));
  }
  if (in[0]->nq == 0 || in[1]->nq == 0 || out->nq == 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s ADD without quantization on every operand",
                    eq_type_name(out->type));
  }
  const int symmetric = out->type == EQ_T_INT16;
  if ((s = ew_check_quant(ctx, in[0], "input 1", symmetric)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, in[1], "input 2", symmetric)) != EDGEQ_OK) return s;
  if ((s = ew_check_quant(ctx, out, "output", symmetric)) != EDGEQ_OK) return s;
  if (out->type == EQ_T_INT16) {
    /* A missing AddOptions table reads as pot_scale_int16 = false; a present one defaults to true. */
    const int pot_option = node->has_options ? eq_opt_bool(node, 1, 1) : 0;
    int unused;
    if (pot_option && ew_checked_log2(in[0]->scale[0], &unused) && ew_checked_log2(in[1]->scale[0], &unused) &&
        ew_checked_log2(out->scale[0], &unused)) {
      if ((s = prepare_pot(ctx, in[0], in[1], out, activation, &data->pot)) != EDGEQ_OK) return s;
      data->row = add_row_s16_pot;
      data->params = &data->pot;
      node->user = data;
      return EDGEQ_OK;
    }
  }
  if ((s = ew_addsub_prepare(ctx, in[0], in[1], out, activation, &data->q)) != EDGEQ_OK) return s;
  data->row = out->type == EQ_T_INT8 ? add_row_s8 : out->type == EQ_T_UINT8 ? add_row_u8 : add_row_s16;
  data->params = &data->q;
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const add_data* data = node->user;
  const eq_tensor* in1 = eq_input(ctx, node, 0);
  const eq_tensor* in2 = eq_input(ctx, node, 1);
  eq_tensor* out = eq_output(ctx, node, 0);
  eq_broadcast_run(&data->bc, data->row, data->params, in1->data, data->size, in2->data, data->size, out->data,
                   data->size);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_add = {prepare, invoke};
