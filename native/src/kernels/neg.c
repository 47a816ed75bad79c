/* NEG on int8, int16, int32 and int64: the stored integer negated with wraparound (-(-128) is -128 in
 * int8), with no regard to quantization, as LiteRT's Negate does. */
#include "elementwise.h"

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* in[1] = {NULL};
  eq_tensor* out = NULL;
  edgeq_status s = ew_operands(ctx, node, 1, in, &out);
  if (s != EDGEQ_OK) return s;
  if (in[0]->type != out->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input type %s and output type %s differ", eq_type_name(in[0]->type),
                    eq_type_name(out->type));
  }
  if (!eq_same_shape(in[0], out)) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and output shapes differ");
  switch (out->type) {
    case EQ_T_INT8:
    case EQ_T_INT16:
    case EQ_T_INT32:
    case EQ_T_INT64:
      return EDGEQ_OK;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(out->type));
  }
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* out = eq_output(ctx, node, 0);
  const size_t n = out->count;
  switch (out->type) {
    case EQ_T_INT8: {
      const uint8_t* x = input->data;
      int8_t* y = (int8_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int8_t)(uint8_t)(0u - x[i]);
      break;
    }
    case EQ_T_INT16: {
      const uint16_t* x = (const uint16_t*)input->data;
      int16_t* y = (int16_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int16_t)(uint16_t)(0u - x[i]);
      break;
    }
    case EQ_T_INT32: {
      const uint32_t* x = (const uint32_t*)input->data;
      int32_t* y = (int32_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int32_t)(0u - x[i]);
      break;
    }
    default: {
      const uint64_t* x = (const uint64_t*)input->data;
      int64_t* y = (int64_t*)out->data;
      for (size_t i = 0; i < n; ++i) y[i] = (int64_t)(0u - x[i]);
      break;
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_neg = {prepare, invoke};
