/* float32 elementwise ops as LiteRT's reference kernels compute them: the binary ops (numpy broadcasting,
 * the fused activation clamped as ActivationFunctionWithMinMax does) and the unary activations, each
 * value through the same libm function LiteRT calls (std::exp, std::tanh, std::sqrt, ...). GELU's
 * reference goes through Eigen's vectorised tanh / erfc, which differ from libm's by an ulp or so. */
#include "broadcast.h"
#include "f32_common.h"

/* ---- binary ops ---- */

typedef struct f32_binary {
  eq_broadcast bc;
  eq_binary_row_fn row;
  f32_range range;
} f32_binary;

static inline float f_add(const f32_range* r, float a, float b) { return f32_clamp(a + b, r); }
static inline float f_sub(const f32_range* r, float a, float b) { return f32_clamp(a - b, r); }
static inline float f_mul(const f32_range* r, float a, float b) { return f32_clamp(a * b, r); }
static inline float f_div(const f32_range* r, float a, float b) { return f32_clamp(a / b, r); }
static inline float f_sqdiff(const f32_range* r, float a, float b) {
  (void)r;
  return (a - b) * (a - b);
}
static inline float f_max(const f32_range* r, float a, float b) {
  (void)r;
  return a > b ? a : b;
}
static inline float f_min(const f32_range* r, float a, float b) {
  (void)r;
  return a < b ? a : b;
}
static inline float f_prelu(const f32_range* r, float x, float alpha) {
  (void)r;
  return x >= 0.0f ? x : x * alpha;
}
static inline float f_pow(const f32_range* r, float a, float b) {
  (void)r;
  return powf(a, b);
}
EQ_BINARY_ROW(row_add, float, float, float, f32_range, f_add)
EQ_BINARY_ROW(row_sub, float, float, float, f32_range, f_sub)
EQ_BINARY_ROW(row_mul, float, float, float, f32_range, f_mul)
EQ_BINARY_ROW(row_div, float, float, float, f32_range, f_div)
EQ_BINARY_ROW(row_sqdiff, float, float, float, f32_range, f_sqdiff)
EQ_BINARY_ROW(row_max, float, float, float, f32_range, f_max)
EQ_BINARY_ROW(row_min, float, float, float, f32_range, f_min)
EQ_BINARY_ROW(row_prelu, float, float, float, f32_range, f_prelu)
EQ_BINARY_ROW(row_pow, float, float, float, f32_range, f_pow)

/* `fused`: whether the op's options carry a fused activation (field 0). */
static edgeq_status binary_prepare(eq_context* ctx, eq_node* node, eq_binary_row_fn row, int fused) {
  if (node->ninputs != 2 || node->noutputs != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs and 1 output");
  }
  const eq_tensor* a = eq_input(ctx, node, 0);
  const eq_tensor* b = eq_input(ctx, node, 1);
  const eq_tensor* out = eq_output(ctx, node, 0);
  if (a == NULL || b == NULL || out == NULL) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "an operand is omitted");
  edgeq_status s = f32_check_types(ctx, node, 0);
  if (s != EDGEQ_OK) return s;
  f32_binary* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  if ((s = eq_broadcast_prepare(ctx, a, b, out, &d->bc)) != EDGEQ_OK) return s;
  if ((s = f32_activation(ctx, fused ? eq_opt_i8(node, 0, EQ_ACT_NONE) : EQ_ACT_NONE, &d->range)) != EDGEQ_OK) {
    return s;
  }
  d->row = row;
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status binary_invoke(eq_context* ctx, eq_node* node) {
  const f32_binary* d = node->user;
  eq_broadcast_run(&d->bc, d->row, &d->range, eq_input(ctx, node, 0)->data, sizeof(float),
                   eq_input(ctx, node, 1)->data, sizeof(float), eq_output(ctx, node, 0)->data, sizeof(float));
  return EDGEQ_OK;
}

#define F32_BINARY(NAME, ROW, FUSED)                                                                     \
  static edgeq_status prepare_##NAME(eq_context* ctx, eq_node* node) {                                  \
    return binary_prepare(ctx, node, ROW, FUSED);                                                       \
  }                                                                                                     \
  const eq_kernel eq_kernel_f32_##NAME = {prepare_##NAME, binary_invoke};

F32_BINARY(add, row_add, 1)
F32_BINARY(sub, row_sub, 1)
F32_BINARY(mul, row_mul, 1)
F32_BINARY(div, row_div, 1)
F32_BINARY(squared_difference, row_sqdiff, 0)
F32_BINARY(maximum, row_max, 0)
F32_BINARY(minimum, row_min, 0)
F32_BINARY(prelu, row_prelu, 0)
F32_BINARY(pow, row_pow, 0)

/* ---- unary ops ---- */

typedef float (*f32_unary_fn)(const eq_node* node, float x);

typedef struct f32_unary {
  f32_unary_fn fn;
  float alpha;     /* LEAKY_RELU */
  int approximate; /* GELU */
} f32_unary;

static float u_relu(const eq_node* n, float x) {
  (void)n;
  return x < 0.0f ? 0.0f : x;
}
static float u_relu6(const eq_node* n, float x) {
  (void)n;
  const float y = x < 0.0f ? 0.0f : x;
  return 6.0f < y ? 6.0f : y;
}
static float u_relu_n1_to_1(const eq_node* n, float x) {
  (void)n;
  const float y = x < -1.0f ? -1.0f : x;
  return 1.0f < y ? 1.0f : y;
}
static float u_leaky_relu(const eq_node* n, float x) {
  const f32_unary* d = n->user;
  return x > 0.0f ? x : x * d->alpha;
}
static float u_neg(const eq_node* n, float x) {
  (void)n;
  return -x;
}
static float u_abs(const eq_node* n, float x) {
  (void)n;
  return fabsf(x);
}
static float u_sqrt(const eq_node* n, float x) {
  (void)n;
  return sqrtf(x);
}
static float u_rsqrt(const eq_node* n, float x) {
  (void)n;
  return 1.0f / sqrtf(x);
}
static float u_exp(const eq_node* n, float x) {
  (void)n;
  return expf(x);
}
static float u_log(const eq_node* n, float x) {
  (void)n;
  return logf(x);
}
static float u_tanh(const eq_node* n, float x) {
  (void)n;
  return tanhf(x);
}
/* reference_ops::Logistic: its cut-offs keep exp from overflowing. */
static float u_logistic(const eq_node* n, float x) {
  (void)n;
  if (x > 16.619047164916992188f) return 1.0f;
  if (x < -9.0f) return expf(x);
  return 1.0f / (1.0f + expf(-x));
}
static float u_hard_swish(const eq_node* n, float x) {
  (void)n;
  const float r = x + 3.0f < 0.0f ? 0.0f : x + 3.0f;
  return x * (6.0f < r ? 6.0f : r) / 6.0f;
}
static float u_gelu(const eq_node* n, float x) {
  const f32_unary* d = n->user;
  if (d->approximate) {
    const float sqrt_2_over_pi = (float)(1.12837916709551257390 * 0.70710678118654752440);
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * (x + 0.044715f * x * x * x)));
  }
  return 0.5f * x * erfcf(x * (float)-0.70710678118654752440);
}

static edgeq_status unary_prepare(eq_context* ctx, eq_node* node, f32_unary_fn fn) {
  const eq_tensor* in = eq_input(ctx, node, 0);
  const eq_tensor* out = eq_output(ctx, node, 0);
  if (node->ninputs != 1 || node->noutputs != 1 || in == NULL || out == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  edgeq_status s = f32_check_types(ctx, node, 0);
  if (s != EDGEQ_OK) return s;
  if (in->count != out->count) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and output sizes differ");
  f32_unary* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  d->fn = fn;
  if (fn == u_leaky_relu) d->alpha = eq_opt_f32(node, 0, 0.0f);
  if (fn == u_gelu) d->approximate = eq_opt_bool(node, 0, 0);
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status unary_invoke(eq_context* ctx, eq_node* node) {
  const f32_unary* d = node->user;
  const float* x = (const float*)eq_input(ctx, node, 0)->data;
  eq_tensor* out = eq_output(ctx, node, 0);
  float* y = (float*)out->data;
  for (size_t i = 0; i < out->count; ++i) y[i] = d->fn(node, x[i]);
  return EDGEQ_OK;
}

#define F32_UNARY(NAME)                                                                                  \
  static edgeq_status prepare_##NAME(eq_context* ctx, eq_node* node) {                                  \
    return unary_prepare(ctx, node, u_##NAME);                                                          \
  }                                                                                                     \
  const eq_kernel eq_kernel_f32_##NAME = {prepare_##NAME, unary_invoke};

F32_UNARY(relu)
F32_UNARY(relu6)
F32_UNARY(relu_n1_to_1)
F32_UNARY(leaky_relu)
F32_UNARY(neg)
F32_UNARY(abs)
F32_UNARY(sqrt)
F32_UNARY(rsqrt)
F32_UNARY(exp)
F32_UNARY(log)
F32_UNARY(tanh)
F32_UNARY(logistic)
F32_UNARY(hard_swish)
F32_UNARY(gelu)
