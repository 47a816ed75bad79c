/* MEAN and SUM share LiteRT's reference QuantizedMeanOrSum for int8 / uint8 / int16: raw values summed in
 * int32 (wrapping), the input zero point times the reduced count subtracted (wrapping to int32), then one
 * MultiplyByQuantizedMultiplier(int32) by input_scale / output_scale -- for MEAN with 1/count folded into
 * the multiplier -- plus the output zero point, saturated to the type. Every configuration (any axes,
 * keep_dims or not, equal or different scales) takes this one path under kReference -- but SUM calls the
 * uint8 instantiation whatever the type: int8 data is summed as uint8 bytes and saturated to [0, 255]
 * (reproduced here), int16 is mangled beyond reproducing (refused). int32 / int64 take the plain paths:
 * SUM wraps in the type, MEAN sums in int64 and divides truncating toward zero. */
#ifndef EDGEQ_KERNELS_MEAN_SUM_H_
#define EDGEQ_KERNELS_MEAN_SUM_H_

#include "reduce_common.h"

typedef struct mean_sum_data {
  eq_reduce_plan plan;
  int32_t multiplier;
  int shift;
  int32_t output_zero_point;
  uint32_t zero_point_sum; /* input zero point * reduced count, modulo 2^32 */
  int32_t acc_slot;        /* one accumulator per output: uint32 (quantized) or uint64 (int32/int64 MEAN) */
} mean_sum_data;

/* Folds 1/count into the multiplier as QuantizedMeanOrSum does: count's power of two goes into the shift
 * (at most 32, and never below a total shift of -31), the rest into an integer division of the
 * multiplier. */
static inline void eq_mean_multiplier(int64_t count, int32_t* multiplier, int* shift) {
  int log2 = 0;
  while (log2 < 63 && ((uint64_t)count >> (log2 + 1)) != 0) ++log2;
  if (log2 > 32) log2 = 32;
  if (log2 > 31 + *shift) log2 = 31 + *shift;
  *multiplier = (int32_t)(((int64_t)*multiplier << log2) / count);
  *shift -= log2;
}

static inline edgeq_status eq_mean_sum_prepare(eq_context* ctx, eq_node* node, int is_mean) {
  mean_sum_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  edgeq_status s = eq_reduce_prepare(ctx, node, &data->plan);
  if (s != EDGEQ_OK) return s;
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* output = eq_output(ctx, node, 0);
  const size_t nout = data->plan.out_count > 0 ? data->plan.out_count : 1;
  switch (input->type) {
    case EQ_T_INT8:
    case EQ_T_UINT8:
    case EQ_T_INT16:
      break;
    case EQ_T_INT32:
    case EQ_T_INT64:
      if (is_mean) {
        data->acc_slot = eq_request_scratch(ctx, node, sizeof(uint64_t) * nout);
        if (data->acc_slot < 0) return EDGEQ_ERROR_MEMORY;
      }
      return EDGEQ_OK;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s (int8, uint8, int16, int32 and int64 are supported)",
                      eq_type_name(input->type));
  }
  if ((s = eq_check_quantized(ctx, input, "input")) != EDGEQ_OK ||
      (s = eq_check_quantized(ctx, output, "output")) != EDGEQ_OK) {
    return s;
  }
  if (input->nq != 1 || output->nq != 1) {
    /* LiteRT's kernel reads the per-tensor params, which are 0 for per-channel tensors. */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "per-channel quantized %s", input->nq != 1 ? "input" : "output");
  }
  const int32_t in_zp = (int32_t)input->zero_point[0];
  data->output_zero_point = (int32_t)output->zero_point[0];
  if (input->type == EQ_T_INT16 && !is_mean) {
    /* Its reference SUM reads int16 data as uint8 too: the first half of the input bytes, written as uint8
     * into the first half of the output, the other half left holding whatever the arena held before. */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "int16 SUM: LiteRT's reference kernel reads int16 as uint8 and leaves half the output unwritten, "
                    "so there is no defined result to match");
  }
  if (input->type == EQ_T_INT16 && (in_zp != 0 || data->output_zero_point != 0)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "int16 zero points must be 0 (input %d, output %d)", (int)in_zp,
                    (int)data->output_zero_point);
  }
  eq_quantize_multiplier((double)input->scale[0] / (double)output->scale[0], &data->multiplier, &data->shift);
  if (is_mean && data->plan.reduce_count > 0) eq_mean_multiplier(data->plan.reduce_count, &data->multiplier, &data->shift);
  if (data->shift > 30) {
    /* LiteRT would shift 1 by 31 or more bits (undefined). */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input/output scale ratio %g is too large",
                    (double)input->scale[0] / (double)output->scale[0]);
  }
  data->zero_point_sum = (uint32_t)((int64_t)in_zp * data->plan.reduce_count);
  data->acc_slot = eq_request_scratch(ctx, node, sizeof(uint32_t) * nout);
  if (data->acc_slot < 0) return EDGEQ_ERROR_MEMORY;
  return EDGEQ_OK;
}

#define EQ_FOLD_ADD(acc, v) ((acc) += (v))
EQ_DEFINE_REDUCE_LOOP(eq_sum_s8_u32, int8_t, uint32_t, EQ_FOLD_ADD)
EQ_DEFINE_REDUCE_LOOP(eq_sum_u8_u32, uint8_t, uint32_t, EQ_FOLD_ADD)
EQ_DEFINE_REDUCE_LOOP(eq_sum_s16_u32, int16_t, uint32_t, EQ_FOLD_ADD)
EQ_DEFINE_REDUCE_LOOP(eq_sum_s32_u32, int32_t, uint32_t, EQ_FOLD_ADD)
EQ_DEFINE_REDUCE_LOOP(eq_sum_s32_u64, int32_t, uint64_t, EQ_FOLD_ADD)
EQ_DEFINE_REDUCE_LOOP(eq_sum_s64_u64, int64_t, uint64_t, EQ_FOLD_ADD)

/* Requantizes the wrapped int32 sums into the output. */
#define EQ_DEFINE_MEAN_SUM_OUTPUT(NAME, T, LO, HI)                                                       \
  static void NAME(const mean_sum_data* d, const uint32_t* acc, T* out) {                               \
    for (size_t i = 0; i < d->plan.out_count; ++i) {                                                    \
      const int32_t centered = (int32_t)(acc[i] - d->zero_point_sum);                                   \
      const int32_t v = (int32_t)((uint32_t)eq_mbqm(centered, d->multiplier, d->shift) +                \
                                  (uint32_t)d->output_zero_point);                                      \
      out[i] = (T)eq_clamp32(v, LO, HI);                                                                \
    }                                                                                                   \
  }
EQ_DEFINE_MEAN_SUM_OUTPUT(eq_mean_sum_out_s8, int8_t, INT8_MIN, INT8_MAX)
EQ_DEFINE_MEAN_SUM_OUTPUT(eq_mean_sum_out_u8, uint8_t, 0, UINT8_MAX)
EQ_DEFINE_MEAN_SUM_OUTPUT(eq_mean_sum_out_s16, int16_t, INT16_MIN, INT16_MAX)

static inline edgeq_status eq_mean_sum_invoke(eq_context* ctx, eq_node* node, int is_mean) {
  const mean_sum_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const size_t nout = d->plan.out_count;
  if (d->plan.in_count == 0) {
    /* LiteRT writes T() (0, not the zero point) when the input is empty. */
    for (size_t i = 0; i < output->bytes; ++i) output->data[i] = 0;
    return EDGEQ_OK;
  }
  if (input->type == EQ_T_INT32 || input->type == EQ_T_INT64) {
    if (!is_mean) { /* SUM: the type's own wrapping sum, accumulated in the output */
      if (input->type == EQ_T_INT32) {
        uint32_t* out = (uint32_t*)output->data;
        for (size_t i = 0; i < nout; ++i) out[i] = 0;
        eq_sum_s32_u32(&d->plan, (const int32_t*)input->data, out);
      } else {
        uint64_t* out = (uint64_t*)output->data;
        for (size_t i = 0; i < nout; ++i) out[i] = 0;
        eq_sum_s64_u64(&d->plan, (const int64_t*)input->data, out);
      }
      return EDGEQ_OK;
    }
    /* MEAN: int64 sums (wrapping), truncating division, narrowed to the type. */
    uint64_t* acc = eq_scratch(ctx, node, d->acc_slot);
    for (size_t i = 0; i < nout; ++i) acc[i] = 0;
    if (input->type == EQ_T_INT32) {
      eq_sum_s32_u64(&d->plan, (const int32_t*)input->data, acc);
      for (size_t i = 0; i < nout; ++i) {
        ((int32_t*)output->data)[i] = (int32_t)(uint32_t)(uint64_t)((int64_t)acc[i] / d->plan.reduce_count);
      }
    } else {
      eq_sum_s64_u64(&d->plan, (const int64_t*)input->data, acc);
      for (size_t i = 0; i < nout; ++i) ((int64_t*)output->data)[i] = (int64_t)acc[i] / d->plan.reduce_count;
    }
    return EDGEQ_OK;
  }
  uint32_t* acc = eq_scratch(ctx, node, d->acc_slot);
  for (size_t i = 0; i < nout; ++i) acc[i] = 0;
  if (!is_mean && input->type == EQ_T_INT8) {
    /* LiteRT's reference SUM hands int8 tensors to the uint8 instantiation of QuantizedMeanOrSum: the bytes
     * are summed as uint8 (with the int8 zero points), clamped to [0, 255] and stored as bytes. */
    eq_sum_u8_u32(&d->plan, input->data, acc);
    eq_mean_sum_out_u8(d, acc, output->data);
    return EDGEQ_OK;
  }
  switch (input->type) {
    case EQ_T_INT8:
      eq_sum_s8_u32(&d->plan, (const int8_t*)input->data, acc);
      eq_mean_sum_out_s8(d, acc, (int8_t*)output->data);
      break;
    case EQ_T_UINT8:
      eq_sum_u8_u32(&d->plan, (const uint8_t*)input->data, acc);
      eq_mean_sum_out_u8(d, acc, (uint8_t*)output->data);
      break;
    default:
      eq_sum_s16_u32(&d->plan, (const int16_t*)input->data, acc);
      eq_mean_sum_out_s16(d, acc, (int16_t*)output->data);
      break;
  }
  return EDGEQ_OK;
}

#endif
