/* float32 CONV_2D and DEPTHWISE_CONV_2D (NHWC; filters OHWI and 1HWO) as LiteRT's reference Conv and
 * DepthwiseConv compute them: each output value a float sum over the window in (filter_y, filter_x,
 * input channel) order, taps outside the image skipped, then the bias added and the fused activation
 * applied. CONV_2D reads its filter transposed to [kh][kw][in][out]: once at prepare for a constant
 * filter, at every invoke for one computed at run time (edgeq's weight-only INT4 models DEQUANTIZE it).
 * Keeping one accumulator per output channel and looping over the channels innermost keeps each sum in
 * the reference's order while the compiler vectorizes across channels, so the results are the
 * reference's bit for bit. */
#include <string.h>

#include "conv_common.h"
#include "f32_common.h"

typedef struct f32_conv {
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, kh, kw;
  int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t groups, group_in, group_out; /* CONV_2D: filter input depth and output channels per group */
  int32_t depth_multiplier;            /* DEPTHWISE_CONV_2D */
  f32_range range;
  int32_t acc_slot, filter_slot; /* scratch: out_c accumulators; CONV_2D: the computed filter transposed */
  float* filter_t;                /* CONV_2D with a constant filter: transposed at prepare */
} f32_conv;

/* The checks and geometry both ops share; options at `opt_act` (fused activation) and `opt_dil` (dilation
 * width, then height) differ between Conv2DOptions and DepthwiseConv2DOptions. */
static edgeq_status conv_prepare_common(eq_context* ctx, eq_node* node, int opt_act, int opt_dil, f32_conv** out) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* filter = eq_input(ctx, node, 1);
  const eq_tensor* bias = eq_input(ctx, node, 2);
  const eq_tensor* output = eq_output(ctx, node, 0);
  if ((node->ninputs != 2 && node->ninputs != 3) || node->noutputs != 1 || input == NULL || filter == NULL ||
      output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects input, filter, optional bias and 1 output");
  }
  edgeq_status s = f32_check_types(ctx, node, 0);
  if (s != EDGEQ_OK || (s = conv_check_output(ctx, node, input, output)) != EDGEQ_OK) return s;
  if (input->ndim != 4 || filter->ndim != 4) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and filter must be 4-D (ranks %d and %d)", (int)input->ndim,
                    (int)filter->ndim);
  }
  const int32_t out_c = output->dims[3];
  if (bias != NULL && bias->count != (size_t)out_c) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias has %zu values for %d output channels", bias->count, (int)out_c);
  }
  const int32_t padding = eq_opt_i8(node, 0, EQ_PAD_SAME);
  const int32_t stride_w = eq_opt_i32(node, 1, 0), stride_h = eq_opt_i32(node, 2, 0);
  const int32_t dil_w = eq_opt_i32(node, opt_dil, 1), dil_h = eq_opt_i32(node, opt_dil + 1, 1);
  int32_t out_h, out_w, pad_h, pad_w;
  if (!conv_window(padding, input->dims[1], filter->dims[1], stride_h, dil_h, &out_h, &pad_h) ||
      !conv_window(padding, input->dims[2], filter->dims[2], stride_w, dil_w, &out_w, &pad_w)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "padding %d, strides (%d, %d), dilations (%d, %d) do not fit the input",
                    (int)padding, (int)stride_h, (int)stride_w, (int)dil_h, (int)dil_w);
  }
  if (output->dims[0] != input->dims[0] || output->dims[1] != out_h || output->dims[2] != out_w) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape [%d, %d, %d, %d] should be [%d, %d, %d, %d]",
                    (int)output->dims[0], (int)output->dims[1], (int)output->dims[2], (int)output->dims[3],
                    (int)input->dims[0], (int)out_h, (int)out_w, (int)out_c);
  }
  f32_conv* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  if ((s = f32_activation(ctx, eq_opt_i8(node, opt_act, EQ_ACT_NONE), &d->range)) != EDGEQ_OK) return s;
  d->batches = input->dims[0];
  d->in_h = input->dims[1];
  d->in_w = input->dims[2];
  d->in_c = input->dims[3];
  d->out_h = out_h;
  d->out_w = out_w;
  d->out_c = out_c;
  d->kh = filter->dims[1];
  d->kw = filter->dims[2];
  d->stride_h = stride_h;
  d->stride_w = stride_w;
  d->dil_h = dil_h;
  d->dil_w = dil_w;
  d->pad_h = pad_h;
  d->pad_w = pad_w;
  d->acc_slot = eq_request_scratch(ctx, node, sizeof(float) * (size_t)(out_c > 0 ? out_c : 1));
  if (d->acc_slot < 0) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  *out = d;
  return EDGEQ_OK;
}

/* OHWI -> HWIO, so the output channels of one tap lie side by side. */
static void transpose_filter(const f32_conv* d, const float* w, float* wt) {
  const size_t O = (size_t)d->out_c, K = (size_t)d->kh * (size_t)d->kw * (size_t)d->group_in;
  for (size_t o = 0; o < O; ++o) {
    for (size_t k = 0; k < K; ++k) wt[k * O + o] = w[o * K + k];
  }
}

static edgeq_status conv_prepare(eq_context* ctx, eq_node* node) {
  f32_conv* d;
  edgeq_status s = conv_prepare_common(ctx, node, 3, 4, &d);
  if (s != EDGEQ_OK) return s;
  const eq_tensor* filter = eq_input(ctx, node, 1);
  d->group_in = filter->dims[3];
  if (filter->dims[0] != d->out_c || d->group_in <= 0 || d->in_c % d->group_in != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter [%d, %d, %d, %d] does not fit %d input and %d output channels",
                    (int)filter->dims[0], (int)filter->dims[1], (int)filter->dims[2], (int)filter->dims[3],
                    (int)d->in_c, (int)d->out_c);
  }
  d->groups = d->in_c / d->group_in;
  if (d->groups == 0 || d->out_c % d->groups != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%d output channels do not split into %d groups", (int)d->out_c,
                    (int)d->groups);
  }
  d->group_out = d->out_c / d->groups;
  const size_t bytes = sizeof(float) * (filter->count > 0 ? filter->count : 1);
  if (filter->is_constant) {
    d->filter_t = eq_alloc(ctx, bytes);
    if (d->filter_t == NULL) return EDGEQ_ERROR_MEMORY;
    transpose_filter(d, (const float*)filter->data, d->filter_t);
    return EDGEQ_OK;
  }
  d->filter_slot = eq_request_scratch(ctx, node, bytes);
  return d->filter_slot < 0 ? EDGEQ_ERROR_MEMORY : EDGEQ_OK;
}

static void finish_pixel(const f32_conv* d, const float* acc, const float* bias, float* y) {
  for (int32_t oc = 0; oc < d->out_c; ++oc) y[oc] = f32_clamp(acc[oc] + (bias != NULL ? bias[oc] : 0.0f), &d->range);
}

static edgeq_status conv_invoke(eq_context* ctx, eq_node* node) {
  const f32_conv* d = node->user;
  const float* x = (const float*)eq_input(ctx, node, 0)->data;
  const eq_tensor* filter = eq_input(ctx, node, 1);
  const eq_tensor* bias_t = eq_input(ctx, node, 2);
  const float* bias = bias_t != NULL ? (const float*)bias_t->data : NULL;
  float* y = (float*)eq_output(ctx, node, 0)->data;
  float* acc = eq_scratch(ctx, node, d->acc_slot);
  const float* wt = d->filter_t;
  if (wt == NULL) {
    float* scratch = eq_scratch(ctx, node, d->filter_slot);
    transpose_filter(d, (const float*)filter->data, scratch);
    wt = scratch;
  }
  const size_t O = (size_t)d->out_c, KW = (size_t)d->kw, I = (size_t)d->group_in;
  for (int32_t b = 0; b < d->batches; ++b) {
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      const int32_t iy0 = oy * d->stride_h - d->pad_h;
      for (int32_t ox = 0; ox < d->out_w; ++ox, y += O) {
        const int32_t ix0 = ox * d->stride_w - d->pad_w;
        memset(acc, 0, sizeof(float) * O);
        for (int32_t fy = 0; fy < d->kh; ++fy) {
          const int32_t iy = iy0 + d->dil_h * fy;
          if (iy < 0 || iy >= d->in_h) continue;
          for (int32_t fx = 0; fx < d->kw; ++fx) {
            const int32_t ix = ix0 + d->dil_w * fx;
            if (ix < 0 || ix >= d->in_w) continue;
            const float* px = x + (((size_t)b * (size_t)d->in_h + (size_t)iy) * (size_t)d->in_w + (size_t)ix) *
                                      (size_t)d->in_c;
            const float* tap = wt + ((size_t)fy * KW + (size_t)fx) * I * O;
            for (int32_t g = 0; g < d->groups; ++g) {
              const size_t o0 = (size_t)g * (size_t)d->group_out, o1 = o0 + (size_t)d->group_out;
              for (size_t ic = 0; ic < I; ++ic) {
                const float v = px[(size_t)g * I + ic];
                const float* wrow = tap + ic * O;
                for (size_t o = o0; o < o1; ++o) acc[o] += v * wrow[o];
              }
            }
          }
        }
        finish_pixel(d, acc, bias, y);
      }
    }
  }
  return EDGEQ_OK;
}

static edgeq_status depthwise_prepare(eq_context* ctx, eq_node* node) {
  f32_conv* d;
  edgeq_status s = conv_prepare_common(ctx, node, 4, 5, &d);
  if (s != EDGEQ_OK) return s;
  const eq_tensor* filter = eq_input(ctx, node, 1);
  if (filter->dims[0] != 1 || filter->dims[3] != d->out_c || d->in_c <= 0 || d->out_c % d->in_c != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter [%d, %d, %d, %d] does not fit %d input and %d output channels",
                    (int)filter->dims[0], (int)filter->dims[1], (int)filter->dims[2], (int)filter->dims[3],
                    (int)d->in_c, (int)d->out_c);
  }
  d->depth_multiplier = d->out_c / d->in_c;
  return EDGEQ_OK;
}

static edgeq_status depthwise_invoke(eq_context* ctx, eq_node* node) {
  const f32_conv* d = node->user;
  const float* x = (const float*)eq_input(ctx, node, 0)->data;
  const float* w = (const float*)eq_input(ctx, node, 1)->data;
  const eq_tensor* bias_t = eq_input(ctx, node, 2);
  const float* bias = bias_t != NULL ? (const float*)bias_t->data : NULL;
  float* y = (float*)eq_output(ctx, node, 0)->data;
  float* acc = eq_scratch(ctx, node, d->acc_slot);
  const size_t O = (size_t)d->out_c, M = (size_t)d->depth_multiplier, C = (size_t)d->in_c;
  for (int32_t b = 0; b < d->batches; ++b) {
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      const int32_t iy0 = oy * d->stride_h - d->pad_h;
      for (int32_t ox = 0; ox < d->out_w; ++ox, y += O) {
        const int32_t ix0 = ox * d->stride_w - d->pad_w;
        memset(acc, 0, sizeof(float) * O);
        for (int32_t fy = 0; fy < d->kh; ++fy) {
          const int32_t iy = iy0 + d->dil_h * fy;
          if (iy < 0 || iy >= d->in_h) continue;
          for (int32_t fx = 0; fx < d->kw; ++fx) {
            const int32_t ix = ix0 + d->dil_w * fx;
            if (ix < 0 || ix >= d->in_w) continue;
            const float* px = x + (((size_t)b * (size_t)d->in_h + (size_t)iy) * (size_t)d->in_w + (size_t)ix) * C;
            const float* tap = w + ((size_t)fy * (size_t)d->kw + (size_t)fx) * O;
            if (M == 1) {
              for (size_t o = 0; o < O; ++o) acc[o] += px[o] * tap[o];
            } else {
              for (size_t o = 0; o < O; ++o) acc[o] += px[o / M] * tap[o];
            }
          }
        }
        finish_pixel(d, acc, bias, y);
      }
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_f32_conv_2d = {conv_prepare, conv_invoke};
const eq_kernel eq_kernel_f32_depthwise_conv_2d = {depthwise_prepare, depthwise_invoke};
