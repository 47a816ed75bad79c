/* SQRT for int8 and int16 (zero points 0), as LiteRT's elementwise kernel computes it: per element in
 * float, dequantize, sqrtf, divide by the output scale and TRUNCATE (no rounding) to int, add the output
 * zero point, clamp. A negative dequantized input is a runtime error, as in LiteRT. */
#include <math.h>

#include "lut.h"
#include "transcendental.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor *input = NULL, *output = NULL;
  edgeq_status s =
      eq_tr_prepare_unary(ctx, node, EQ_TYPE_BIT(EQ_T_INT8) | EQ_TYPE_BIT(EQ_T_INT16), 0, &input, &output);
  if (s != EDGEQ_OK) return s;
  if (input->type == EQ_T_INT16 && (input->zero_point[0] != 0 || output->zero_point[0] != 0)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 needs zero points 0");
  }
  return EDGEQ_OK;
}

/* One element; -1 in *bad when the input is negative. The quotient's conversion is the bare cvttss2si
 * of LiteRT's x86 build (INT32_MIN when out of range), and the zero point is added with wraparound. */
static int32_t sqrt_one(int32_t x, float input_scale, int32_t input_zp, float output_scale, int32_t output_zp,
                        int* bad) {
  const float dequantized = input_scale * (float)(x - input_zp);
  if (!(dequantized >= 0.0f)) {
    *bad = 1;
    return 0;
  }
  const float r = sqrtf(dequantized);
  return (int32_t)((uint32_t)eq_f32_to_i32_cvtt(r / output_scale) + (uint32_t)output_zp);
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const float in_scale = input->scale[0], out_scale = output->scale[0];
  const int32_t in_zp = (int32_t)input->zero_point[0], out_zp = (int32_t)output->zero_point[0];
  int bad = 0;
  if (input->type == EQ_T_INT8) {
    const int8_t* x = (const int8_t*)input->data;
    int8_t* y = (int8_t*)output->data;
    for (size_t i = 0; i < input->count && !bad; ++i) {
      y[i] = (int8_t)eq_clamp32(sqrt_one(x[i], in_scale, in_zp, out_scale, out_zp, &bad), -128, 127);
    }
  } else {
    const int16_t* x = (const int16_t*)input->data;
    int16_t* y = (int16_t*)output->data;
    for (size_t i = 0; i < input->count && !bad; ++i) {
      y[i] = (int16_t)eq_clamp32(sqrt_one(x[i], in_scale, in_zp, out_scale, out_zp, &bad), -32768, 32767);
    }
  }
  if (bad) return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "Sqrt is only defined for non-negative values");
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_sqrt = {prepare, invoke};
