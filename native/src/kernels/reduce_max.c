/* REDUCE_MAX over constant axes: int8 / uint8 / int16 (same quantization in and out), int32, int64. The
 * output starts at the type's lowest value, so reducing an empty input leaves that value. */
#include "reduce_common.h"

#define FOLD_MAX(acc, v) ((acc) = (v) > (acc) ? (v) : (acc))
EQ_DEFINE_REDUCE_LOOP(reduce_max_s8, int8_t, int8_t, FOLD_MAX)
EQ_DEFINE_REDUCE_LOOP(reduce_max_u8, uint8_t, uint8_t, FOLD_MAX)
EQ_DEFINE_REDUCE_LOOP(reduce_max_s16, int16_t, int16_t, FOLD_MAX)
EQ_DEFINE_REDUCE_LOOP(reduce_max_s32, int32_t, int32_t, FOLD_MAX)
EQ_DEFINE_REDUCE_LOOP(reduce_max_s64, int64_t, int64_t, FOLD_MAX)

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_reduce_plan* plan = eq_alloc(ctx, sizeof *plan);
  if (plan == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = plan;
  return eq_reduce_minmax_prepare(ctx, node, plan);
}

/* The output is the accumulator: fill it with LOWEST, then fold the input in. */
#define RUN(FN, T, LOWEST)                                                      \
  do {                                                                          \
    T* out = (T*)output->data;                                                  \
    for (size_t i = 0; i < plan->out_count; ++i) out[i] = (LOWEST);             \
    FN(plan, (const T*)input->data, out);                                       \
  } while (0)

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_reduce_plan* plan = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  switch (input->type) {
    case EQ_T_INT8:
      RUN(reduce_max_s8, int8_t, INT8_MIN);
      break;
    case EQ_T_UINT8:
      RUN(reduce_max_u8, uint8_t, 0);
      break;
    case EQ_T_INT16:
      RUN(reduce_max_s16, int16_t, INT16_MIN);
      break;
    case EQ_T_INT32:
      RUN(reduce_max_s32, int32_t, INT32_MIN);
      break;
    default:
      RUN(reduce_max_s64, int64_t, INT64_MIN);
      break;
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_reduce_max = {prepare, invoke};
