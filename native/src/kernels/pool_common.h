/* What AVERAGE_POOL_2D and MAX_POOL_2D share: Pool2DOptions, LiteRT's windowed output size and padding
 * (ComputePaddingHeightWidth with dilation 1) and the fused activation range. */
#ifndef EDGEQ_KERNELS_POOL_COMMON_H_
#define EDGEQ_KERNELS_POOL_COMMON_H_

#include "../fixedpoint.h"


typedef struct eq_pool_params {
  int32_t batches, in_h, in_w, channels, out_h, out_w;
  int32_t stride_h, stride_w, filter_h, filter_w, pad_h, pad_w;
  int32_t act_min, act_max;
} eq_pool_params;

/* One spatial dimension: the output size for the padding mode and the leading padding. */
static inline edgeq_status eq_pool_dim(eq_context* ctx, const char* what, int32_t padding, int32_t in, int32_t filter,
                                       int32_t stride, int32_t* out, int32_t* pad) {
  int64_t n = padding == EQ_PAD_SAME ? ((int64_t)in + stride - 1) / stride
                                     : ((int64_t)in + stride - (int64_t)filter) / stride;
  if (n < 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s: filter %d is larger than the input %d plus the stride %d", what,
                    (int)filter, (int)in, (int)stride);
  }
  const int64_t total = (n - 1) * stride + filter - in;
  *out = (int32_t)n; /* n <= max(in, 0): fits */
  *pad = (int32_t)((total > 0 ? total : 0) / 2); /* < filter: fits */
  return EDGEQ_OK;
}

/* Pool2DOptions and the 4-D input and output shapes: fills `p` but the activation range, and returns the
 * fused activation in `activation`. */
static inline edgeq_status eq_pool_geometry(eq_context* ctx, eq_node* node, eq_pool_params* p, int32_t* activation) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input == NULL || output == NULL || node->ninputs != 1 || node->noutputs != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 1 input and 1 output");
  }
  if (input->type != output->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input type %s and output type %s differ", eq_type_name(input->type),
                    eq_type_name(output->type));
  }
  if (input->ndim != 4) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has %d dimensions, not 4", (int)input->ndim);
  const int has = node->has_options; /* a mistyped table was dropped at load, as LiteRT reads it */
  const int32_t padding = has ? eq_opt_i8(node, 0, EQ_PAD_SAME) : EQ_PAD_SAME;
  p->stride_w = has ? eq_opt_i32(node, 1, 0) : 0;
  p->stride_h = has ? eq_opt_i32(node, 2, 0) : 0;
  p->filter_w = has ? eq_opt_i32(node, 3, 0) : 0;
  p->filter_h = has ? eq_opt_i32(node, 4, 0) : 0;
  *activation = has ? eq_opt_i8(node, 5, EQ_ACT_NONE) : EQ_ACT_NONE;
  if (padding != EQ_PAD_SAME && padding != EQ_PAD_VALID) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "padding %d is neither SAME nor VALID", (int)padding);
  }
  if (p->stride_w <= 0 || p->stride_h <= 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "strides %dx%d must be positive", (int)p->stride_h, (int)p->stride_w);
  }
  if (p->filter_w <= 0 || p->filter_h <= 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter %dx%d must be positive", (int)p->filter_h, (int)p->filter_w);
  }
  p->batches = input->dims[0];
  p->in_h = input->dims[1];
  p->in_w = input->dims[2];
  p->channels = input->dims[3];
  edgeq_status s;
  if ((s = eq_pool_dim(ctx, "height", padding, p->in_h, p->filter_h, p->stride_h, &p->out_h, &p->pad_h)) != EDGEQ_OK ||
      (s = eq_pool_dim(ctx, "width", padding, p->in_w, p->filter_w, p->stride_w, &p->out_w, &p->pad_w)) != EDGEQ_OK) {
    return s;
  }
  if (output->ndim != 4 || output->dims[0] != p->batches || output->dims[1] != p->out_h ||
      output->dims[2] != p->out_w || output->dims[3] != p->channels) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape should be [%d, %d, %d, %d]", (int)p->batches,
                    (int)p->out_h, (int)p->out_w, (int)p->channels);
  }
  return EDGEQ_OK;
}

/* Validates a quantized 4D pool and fills `p`. Like LiteRT, the input's quantization carries over to the
 * output unchanged (its scale and zero point are only DCHECKed equal); the activation range comes from the
 * output's. */
static inline edgeq_status eq_pool_prepare(eq_context* ctx, eq_node* node, eq_pool_params* p) {
  int32_t activation = EQ_ACT_NONE;
  edgeq_status s = eq_pool_geometry(ctx, node, p, &activation);
  if (s != EDGEQ_OK) return s;
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input->type != EQ_T_INT8 && input->type != EQ_T_UINT8 && input->type != EQ_T_INT16) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s (int8, uint8 and int16 are supported)",
                    eq_type_name(input->type));
  }
  if ((s = eq_check_quantized(ctx, input, "input")) != EDGEQ_OK ||
      (s = eq_check_quantized(ctx, output, "output")) != EDGEQ_OK) {
    return s;
  }
  if (input->nq != 1 || output->nq != 1) {
    /* LiteRT reads per-tensor params, which are 0 for per-channel tensors (the activation range breaks). */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "per-channel quantized %s", input->nq != 1 ? "input" : "output");
  }
  int32_t qmin, qmax;
  eq_type_range(output->type, &qmin, &qmax);
  if (output->zero_point[0] < qmin || output->zero_point[0] > qmax) {
    /* Only the activation range reads it, and a zero point outside the type makes no range. */
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output zero point %lld is outside %s",
                    (long long)output->zero_point[0], eq_type_name(output->type));
  }
  return eq_activation_range(ctx, activation, output, &p->act_min, &p->act_max);
}

/* The window of output position `o` clipped to the image: [*start, *end) in input coordinates. */
static inline void eq_pool_window(int32_t o, int32_t stride, int32_t pad, int32_t filter, int32_t in, int32_t* start,
                                  int32_t* end) {
  const int64_t origin = (int64_t)o * stride - pad;
  const int64_t lo = origin > 0 ? origin : 0;
  const int64_t hi = origin + filter < in ? origin + filter : in;
  *start = (int32_t)lo;
  *end = (int32_t)(hi > lo ? hi : lo);
}

#endif
