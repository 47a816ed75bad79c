/* DEQUANTIZE: int8/uint8/int16/int4 (per tensor or per channel) and float16 -> float32, as the reference
 * Dequantize computes it: the float scale widened to double times (q - zero_point), narrowed to float.
 * INT4 values are packed two a byte, low nibble first (LiteRT unpacks them to int8 first): the weight-only
 * INT4 convolutions edgeq writes as INT4 constant -> DEQUANTIZE -> float conv. */
#include <string.h>

#include "../internal.h"
#include "half.h"
#include "int4.h"

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input == NULL || output == NULL || node->ninputs != 1 || node->noutputs != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  if (output->type != EQ_T_FLOAT32) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output type %s", eq_type_name(output->type));
  if (input->count != output->count) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and output sizes differ");
  if (input->type == EQ_T_FLOAT16) return EDGEQ_OK;
  if (input->type != EQ_T_INT8 && input->type != EQ_T_UINT8 && input->type != EQ_T_INT16 && input->type != EQ_T_INT4) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input type %s", eq_type_name(input->type));
  }
  if (input->nq < 1) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input '%s' is not quantized", input->name);
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  float* y = (float*)output->data;
  if (input->type == EQ_T_FLOAT16) {
    for (size_t i = 0; i < output->count; ++i) y[i] = half_to_float(((const uint16_t*)input->data)[i]);
    return EDGEQ_OK;
  }
  size_t inner = 1, channels = 1;
  if (input->nq > 1) {
    for (int32_t d = input->qdim + 1; d < input->ndim; ++d) inner *= (size_t)input->dims[d];
    channels = (size_t)input->dims[input->qdim];
  }
  for (size_t i = 0; i < output->count; ++i) {
    size_t c = input->nq > 1 ? (i / inner) % channels : 0;
    int32_t q;
    if (input->type == EQ_T_INT4) {
      q = s4_at(input->data, i);
    } else {
      q = input->type == EQ_T_INT8    ? ((const int8_t*)input->data)[i]
          : input->type == EQ_T_UINT8 ? ((const uint8_t*)input->data)[i]
                                      : ((const int16_t*)input->data)[i];
    }
    /* LiteRT subtracts the int32 zero point in int32; int64 gives the same value without overflow. */
    y[i] = (float)((double)input->scale[c] * (double)((int64_t)q - (int32_t)input->zero_point[c]));
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_dequantize = {prepare, invoke};
