/* CAST between FLOAT32, INT32, INT64, INT16, INT8, UINT8 and BOOL as LiteRT's static_cast does: integers
 * wrap to the narrower type, floats truncate toward zero, anything to BOOL is `!= 0`. A float outside the
 * target's range (or NaN) has no defined C++ result, so edgeq stops with a runtime error there. */
#include <math.h>

#include "../internal.h"

static int castable(int32_t type) {
  return type == EQ_T_FLOAT32 || type == EQ_T_INT32 || type == EQ_T_INT64 || type == EQ_T_INT16 ||
         type == EQ_T_INT8 || type == EQ_T_UINT8 || type == EQ_T_BOOL;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  const eq_tensor* in = eq_input(ctx, node, 0);
  const eq_tensor* out = eq_output(ctx, node, 0);
  if (node->ninputs != 1 || node->noutputs != 1 || in == NULL || out == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  if (!castable(in->type) || !castable(out->type)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "CAST from %s to %s", eq_type_name(in->type),
                    eq_type_name(out->type));
  }
  if (in->count != out->count) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and output sizes differ");
  return EDGEQ_OK;
}

/* Integer inputs read exactly as int64; floats stay floats. */
static int64_t int_at(const eq_tensor* t, size_t i) {
  switch (t->type) {
    case EQ_T_INT64:
      return ((const int64_t*)t->data)[i];
    case EQ_T_INT32:
      return ((const int32_t*)t->data)[i];
    case EQ_T_INT16:
      return ((const int16_t*)t->data)[i];
    case EQ_T_INT8:
      return ((const int8_t*)t->data)[i];
    case EQ_T_UINT8:
      return ((const uint8_t*)t->data)[i];
    default: /* BOOL */
      return ((const uint8_t*)t->data)[i] != 0;
  }
}

static void store_int(eq_tensor* t, size_t i, int64_t v) {
  switch (t->type) {
    case EQ_T_INT64:
      ((int64_t*)t->data)[i] = v;
      break;
    case EQ_T_INT32:
      ((int32_t*)t->data)[i] = (int32_t)(uint32_t)(uint64_t)v;
      break;
    case EQ_T_INT16:
      ((int16_t*)t->data)[i] = (int16_t)(uint16_t)(uint64_t)v;
      break;
    case EQ_T_INT8:
      ((int8_t*)t->data)[i] = (int8_t)(uint8_t)(uint64_t)v;
      break;
    case EQ_T_UINT8:
      ((uint8_t*)t->data)[i] = (uint8_t)(uint64_t)v;
      break;
    default: /* BOOL */
      ((uint8_t*)t->data)[i] = v != 0;
      break;
  }
}

/* The float range each integer type holds after truncation: (lo, hi) exclusive. */
static void float_bounds(int32_t type, double* lo, double* hi) {
  switch (type) {
    case EQ_T_INT64:
      *lo = -9223372036854775808.0 - 1.0, *hi = 9223372036854775808.0;
      break;
    case EQ_T_INT32:
      *lo = -2147483649.0, *hi = 2147483648.0;
      break;
    case EQ_T_INT16:
      *lo = -32769.0, *hi = 32768.0;
      break;
    case EQ_T_INT8:
      *lo = -129.0, *hi = 128.0;
      break;
    default: /* UINT8 */
      *lo = -1.0, *hi = 256.0;
      break;
  }
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_tensor* in = eq_input(ctx, node, 0);
  eq_tensor* out = eq_output(ctx, node, 0);
  if (out->type == EQ_T_FLOAT32) {
    float* y = (float*)out->data;
    for (size_t i = 0; i < out->count; ++i) {
      y[i] = in->type == EQ_T_FLOAT32 ? ((const float*)in->data)[i] : (float)int_at(in, i);
    }
    return EDGEQ_OK;
  }
  if (in->type != EQ_T_FLOAT32) {
    for (size_t i = 0; i < out->count; ++i) store_int(out, i, int_at(in, i));
    return EDGEQ_OK;
  }
  double lo, hi;
  float_bounds(out->type, &lo, &hi);
  for (size_t i = 0; i < out->count; ++i) {
    const float v = ((const float*)in->data)[i];
    if (out->type == EQ_T_BOOL) {
      ((uint8_t*)out->data)[i] = v != 0.0f;
      continue;
    }
    if (!((double)v > lo && (double)v < hi)) {
      return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "value %g at %zu does not fit %s", (double)v, i,
                      eq_type_name(out->type));
    }
    store_int(out, i, (int64_t)v);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_cast = {prepare, invoke};
