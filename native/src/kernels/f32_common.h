/* What the float32 kernels share: LiteRT's float activation range (CalculateActivationRange) and clamp
 * (ActivationFunctionWithMinMax), and the checks of an op whose tensors are all FLOAT32. The float kernels
 * follow LiteRT's reference kernels' summation order, so most of them reproduce BUILTIN_REF bit for bit;
 * edgeq verify holds float tensors to a tolerance all the same (libm and Eigen differ in places). */
#ifndef EDGEQ_KERNELS_F32_COMMON_H_
#define EDGEQ_KERNELS_F32_COMMON_H_

#include <float.h>
#include <math.h>

#include "../internal.h"

/* a*b+c must round as LiteRT's reference kernels round it: never contracted into an FMA. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

typedef struct f32_range {
  float lo, hi;
} f32_range;

/* CalculateActivationRange<float>: NONE (and the activations LiteRT's float kernels ignore) is
 * [lowest, max], which still maps +-inf to the largest finite values, as LiteRT does. */
static inline edgeq_status f32_activation(eq_context* ctx, int32_t activation, f32_range* r) {
  switch (activation) {
    case EQ_ACT_NONE:
      r->lo = -FLT_MAX, r->hi = FLT_MAX;
      return EDGEQ_OK;
    case EQ_ACT_RELU:
      r->lo = 0.0f, r->hi = FLT_MAX;
      return EDGEQ_OK;
    case EQ_ACT_RELU_N1_TO_1:
      r->lo = -1.0f, r->hi = 1.0f;
      return EDGEQ_OK;
    case EQ_ACT_RELU6:
      r->lo = 0.0f, r->hi = 6.0f;
      return EDGEQ_OK;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "fused activation %d on a float op", (int)activation);
  }
}

/* std::min(std::max(x, lo), hi), NaN passing through as it does there. */
static inline float f32_clamp(float x, const f32_range* r) {
  const float y = x < r->lo ? r->lo : x;
  return r->hi < y ? r->hi : y;
}

/* Every tensor of the node (omitted optional inputs aside) FLOAT32, the ones in `except` (a bit mask of
 * input indices) excluded. */
static inline edgeq_status f32_check_types(eq_context* ctx, const eq_node* node, uint32_t except) {
  for (int32_t i = 0; i < node->ninputs; ++i) {
    const eq_tensor* t = eq_input(ctx, node, i);
    if (t != NULL && !(except & (1u << i)) && t->type != EQ_T_FLOAT32) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "FLOAT32 op with input %d '%s' of type %s", (int)i, t->name,
                      eq_type_name(t->type));
    }
  }
  for (int32_t i = 0; i < node->noutputs; ++i) {
    const eq_tensor* t = eq_output(ctx, node, i);
    if (t == NULL || t->type != EQ_T_FLOAT32) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "FLOAT32 op with output %d of type %s", (int)i,
                      t == NULL ? "none" : eq_type_name(t->type));
    }
  }
  return EDGEQ_OK;
}

#endif
