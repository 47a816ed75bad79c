/* REDUCE_PROD over constant axes.
 *
 * Quantized int8 / int16 (LiteRT's reference QuantizedReduceProd): each output starts from its first input
 * element minus the zero point; every further element multiplies it in int64 and is rescaled at once by
 * MultiplyByQuantizedMultiplier(int64) with input_scale / output_scale^(1/n), n the reduced count; the
 * product is rescaled once more, offset by the output zero point and saturated. The rounding at each step
 * makes the order matter: elements are folded in row-major input order, as LiteRT's Reduce visits them.
 *
 * Unquantized int8 / uint8 / int16 / int32 / int64: the product wraps in the type. */
#include <math.h>

#include "reduce_common.h"

typedef struct prod_data {
  eq_reduce_plan plan;
  int quantized;
  int32_t multiplier;
  int shift;
  int32_t input_zero_point, output_zero_point;
  int32_t acc_slot; /* quantized: one int32 running product per output */
} prod_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  prod_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  edgeq_status s = eq_reduce_prepare(ctx, node, &d->plan);
  if (s != EDGEQ_OK) return s;
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* output = eq_output(ctx, node, 0);
  const int32_t type = input->type;
  if (type != EQ_T_INT8 && type != EQ_T_UINT8 && type != EQ_T_INT16 && type != EQ_T_INT32 && type != EQ_T_INT64) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s (int8, uint8, int16, int32 and int64 are supported)",
                    eq_type_name(type));
  }
  d->quantized = input->nq > 0;
  if (!d->quantized) return EDGEQ_OK;
  if (type != EQ_T_INT8 && type != EQ_T_INT16) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "quantized %s (LiteRT quantizes only int8 and int16)",
                    eq_type_name(type));
  }
  if ((s = eq_check_quantized(ctx, input, "input")) != EDGEQ_OK ||
      (s = eq_check_quantized(ctx, output, "output")) != EDGEQ_OK) {
    return s;
  }
  if (input->nq != 1 || output->nq != 1) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "per-channel quantized %s", input->nq != 1 ? "input" : "output");
  }
  d->input_zero_point = (int32_t)input->zero_point[0];
  d->output_zero_point = (int32_t)output->zero_point[0];
  if (type == EQ_T_INT16 && (d->input_zero_point != 0 || d->output_zero_point != 0)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "int16 zero points must be 0 (input %d, output %d)",
                    (int)d->input_zero_point, (int)d->output_zero_point);
  }
  if (d->plan.in_count == 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "empty input (LiteRT leaves the output unwritten)");
  }
  if (input->is_constant && d->plan.out_count <= 8) {
    /* LiteRT folds this case at prepare with its optimized kernel, whose order of steps differs. */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "constant quantized input");
  }
  const double scaling = (double)input->scale[0] / pow((double)output->scale[0], 1.0 / (double)d->plan.reduce_count);
  eq_quantize_multiplier(scaling, &d->multiplier, &d->shift);
  if (d->shift > 14) {
    /* MultiplyByQuantizedMultiplier(int64) would shift by a negative amount. */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "per-step scaling %g is too large", scaling);
  }
  d->acc_slot = eq_request_scratch(ctx, node, sizeof(int32_t) * (d->plan.out_count > 0 ? d->plan.out_count : 1));
  return d->acc_slot < 0 ? EDGEQ_ERROR_MEMORY : EDGEQ_OK;
}

/* The value minus the zero point, in int32 arithmetic that wraps as LiteRT's does for hostile zero points. */
static inline int32_t centered(const prod_data* d, int32_t value) {
  return (int32_t)((uint32_t)value - (uint32_t)d->input_zero_point);
}

/* reducer_next: the running product times the next centered value, rescaled. */
static inline int32_t step(const prod_data* d, int32_t current, int32_t value) {
  return eq_mbqm64((int64_t)current * (int64_t)centered(d, value), d->multiplier, d->shift);
}

#define DEFINE_QUANTIZED_PROD(NAME, T, LO, HI)                                                    \
  static void NAME(const prod_data* d, const T* in, int32_t* acc, T* out) {                     \
    const eq_reduce_plan* plan = &d->plan;                                                      \
    const int32_t last = plan->ndim - 1;                                                        \
    const size_t inner = plan->dims[last];                                                      \
    const size_t rows = eq_reduce_rows(plan);                                                   \
    eq_reduce_iter it = {{0}, 0};                                                               \
    for (size_t r = 0; r < rows; ++r, in += inner) {                                            \
      /* An output's first element is the one at index 0 along every reduced dimension. */     \
      int first = 1;                                                                            \
      for (int32_t k = 0; k < last; ++k) first &= !(plan->reduced[k] && it.idx[k] != 0);       \
      int32_t* a = acc + it.out;                                                                \
      if (plan->reduced[last]) {                                                                \
        size_t j = 0;                                                                           \
        int32_t v = *a;                                                                         \
        if (first) v = centered(d, in[j++]);                                           \
        for (; j < inner; ++j) v = step(d, v, in[j]);                                           \
        *a = v;                                                                                 \
      } else if (first) {                                                                       \
        for (size_t j = 0; j < inner; ++j) a[j] = centered(d, in[j]);                      \
      } else {                                                                                  \
        for (size_t j = 0; j < inner; ++j) a[j] = step(d, a[j], in[j]);                         \
      }                                                                                         \
      eq_reduce_next(plan, &it);                                                                \
    }                                                                                           \
    for (size_t i = 0; i < plan->out_count; ++i) {                                              \
      const int32_t v = (int32_t)((uint32_t)eq_mbqm64(acc[i], d->multiplier, d->shift) +        \
                                  (uint32_t)d->output_zero_point);                              \
      out[i] = (T)eq_clamp32(v, LO, HI);                                                        \
    }                                                                                           \
  }

DEFINE_QUANTIZED_PROD(prod_s8_quantized, int8_t, INT8_MIN, INT8_MAX)
DEFINE_QUANTIZED_PROD(prod_s16_quantized, int16_t, INT16_MIN, INT16_MAX)

/* Wrapping products, formed in unsigned types wide enough that no promotion to int can overflow. */
#define FOLD_MUL8(acc, v) ((acc) = (uint8_t)((uint32_t)(acc) * (uint8_t)(v)))
#define FOLD_MUL16(acc, v) ((acc) = (uint16_t)((uint32_t)(acc) * (uint16_t)(v)))
#define FOLD_MUL32(acc, v) ((acc) = (uint32_t)(acc) * (uint32_t)(v))
#define FOLD_MUL64(acc, v) ((acc) = (uint64_t)(acc) * (uint64_t)(v))
EQ_DEFINE_REDUCE_LOOP(prod_s8_wrap, int8_t, uint8_t, FOLD_MUL8)
EQ_DEFINE_REDUCE_LOOP(prod_u8_wrap, uint8_t, uint8_t, FOLD_MUL8)
EQ_DEFINE_REDUCE_LOOP(prod_s16_wrap, int16_t, uint16_t, FOLD_MUL16)
EQ_DEFINE_REDUCE_LOOP(prod_s32_wrap, int32_t, uint32_t, FOLD_MUL32)
EQ_DEFINE_REDUCE_LOOP(prod_s64_wrap, int64_t, uint64_t, FOLD_MUL64)

#define RUN_WRAP(FN, T, UT)                                            \
  do {                                                                 \
    UT* out = (UT*)output->data;                                       \
    for (size_t i = 0; i < d->plan.out_count; ++i) out[i] = 1;         \
    FN(&d->plan, (const T*)input->data, out);                          \
  } while (0)

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const prod_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (d->quantized) {
    int32_t* acc = eq_scratch(ctx, node, d->acc_slot);
    if (input->type == EQ_T_INT8) {
      prod_s8_quantized(d, (const int8_t*)input->data, acc, (int8_t*)output->data);
    } else {
      prod_s16_quantized(d, (const int16_t*)input->data, acc, (int16_t*)output->data);
    }
    return EDGEQ_OK;
  }
  switch (input->type) {
    case EQ_T_INT8:
      RUN_WRAP(prod_s8_wrap, int8_t, uint8_t);
      break;
    case EQ_T_UINT8:
      RUN_WRAP(prod_u8_wrap, uint8_t, uint8_t);
      break;
    case EQ_T_INT16:
      RUN_WRAP(prod_s16_wrap, int16_t, uint16_t);
      break;
    case EQ_T_INT32:
      RUN_WRAP(prod_s32_wrap, int32_t, uint32_t);
      break;
    default:
      RUN_WRAP(prod_s64_wrap, int64_t, uint64_t);
      break;
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_reduce_prod = {prepare, invoke};
