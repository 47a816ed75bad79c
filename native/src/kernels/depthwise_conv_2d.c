/* DEPTHWISE_CONV_2D on int8 (per-channel or per-tensor int8 / INT4 filters), legacy uint8 and int16x8
 * (int8 filters, int64 bias), with depth multipliers, strides, dilations and fused activations, bit-exact
 * with LiteRT's reference DepthwiseConvPerChannel / DepthwiseConv.
 *
 * The filter is widened to int16 at load (the uint8 filter offset added) and the input-offset term
 * input_offset * sum over taps of the filter is folded into the bias. Each output pixel then sums, channel
 * by channel with the channels innermost, filter * input over every tap; a tap outside the image reads a
 * row holding the input zero point, whose product the folded term cancels (in wrapping int32, as LiteRT's
 * accumulator behaves), so border pixels take the same loop. int16 activations have zero point 0, so their
 * padded taps add nothing either. */
#include "conv_common.h"

enum { KIND_S8, KIND_U8, KIND_S16 };

typedef struct depthwise_data {
  int kind;
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, multiplier_depth;
  int32_t kh, kw, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int16_t* weights; /* [kh * kw][out_c] */
  uint32_t* bias32; /* 8-bit: bias + input_offset * sum over taps of the weights */
  int64_t* bias64;  /* int16 */
  uint8_t* padding_row; /* in_c input elements holding the zero point */
  int32_t* multiplier;
  int32_t* shift;
  int32_t out_zp, act_min, act_max;
  int32_t scratch; /* out_c accumulators */
} depthwise_data;

/* The input row of tap (fy, fx) for output (oy, ox): a pixel of the image, or the padding row. */
static const uint8_t* tap_row(const depthwise_data* d, const uint8_t* image, int32_t oy, int32_t ox, int32_t fy,
                              int32_t fx, size_t elem) {
  const int64_t iy = (int64_t)oy * d->stride_h - d->pad_h + (int64_t)fy * d->dil_h;
  const int64_t ix = (int64_t)ox * d->stride_w - d->pad_w + (int64_t)fx * d->dil_w;
  if (iy < 0 || iy >= d->in_h || ix < 0 || ix >= d->in_w) return d->padding_row;
  return image + ((size_t)iy * (size_t)d->in_w + (size_t)ix) * (size_t)d->in_c * elem;
}

/* acc[c] += w[c] * x[c] for every channel (depth multiplier 1), 8-bit inputs. */
static void accumulate_s8(uint32_t* acc, const int16_t* w, const int8_t* x, int32_t n) {
  for (int32_t c = 0; c < n; ++c) acc[c] += (uint32_t)((int32_t)w[c] * (int32_t)x[c]);
}

static void accumulate_u8(uint32_t* acc, const int16_t* w, const uint8_t* x, int32_t n) {
  for (int32_t c = 0; c < n; ++c) acc[c] += (uint32_t)((int32_t)w[c] * (int32_t)x[c]);
}

/* int64 sums in unsigned arithmetic: a hostile int64 bias may wrap, as it does in LiteRT's compiled code. */
static void accumulate_s16(uint64_t* acc, const int16_t* w, const int16_t* x, int32_t n) {
  for (int32_t c = 0; c < n; ++c) acc[c] += (uint64_t)(int64_t)((int32_t)w[c] * (int32_t)x[c]);
}

/* Output channel o reads input channel o / multiplier. */
static int32_t input_value(const depthwise_data* d, const uint8_t* row, int32_t o) {
  const int32_t i = o / d->multiplier_depth;
  switch (d->kind) {
    case KIND_S8:
      return ((const int8_t*)row)[i];
    case KIND_U8:
      return row[i];
    default:
      return ((const int16_t*)(const void*)row)[i];
  }
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const depthwise_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (output->count == 0) return EDGEQ_OK;
  const size_t elem = d->kind == KIND_S16 ? 2 : 1;
  const int32_t channels = d->out_c;
  void* scratch = eq_scratch(ctx, node, d->scratch);
  uint32_t* acc32 = scratch;
  uint64_t* acc64 = scratch;
  const size_t image_bytes = (size_t)d->in_h * (size_t)d->in_w * (size_t)d->in_c * elem;
  for (int32_t b = 0; b < d->batches; ++b) {
    const uint8_t* image = input->data + (size_t)b * image_bytes;
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      for (int32_t ox = 0; ox < d->out_w; ++ox) {
        const size_t at = (((size_t)b * (size_t)d->out_h + (size_t)oy) * (size_t)d->out_w + (size_t)ox) * (size_t)channels;
        if (d->kind == KIND_S16) {
          memcpy(acc64, d->bias64, sizeof(int64_t) * (size_t)channels);
        } else {
          memcpy(acc32, d->bias32, sizeof(uint32_t) * (size_t)channels);
        }
        for (int32_t fy = 0; fy < d->kh; ++fy) {
          for (int32_t fx = 0; fx < d->kw; ++fx) {
            const uint8_t* row = tap_row(d, image, oy, ox, fy, fx, elem);
            const int16_t* w = d->weights + ((size_t)fy * (size_t)d->kw + (size_t)fx) * (size_t)channels;
            if (d->multiplier_depth == 1) {
              switch (d->kind) {
                case KIND_S8:
                  accumulate_s8(acc32, w, (const int8_t*)row, channels);
                  break;
                case KIND_U8:
                  accumulate_u8(acc32, w, row, channels);
                  break;
                default:
                  accumulate_s16(acc64, w, (const int16_t*)(const void*)row, channels);
                  break;
              }
            } else if (d->kind == KIND_S16) {
              for (int32_t c = 0; c < channels; ++c) acc64[c] += (uint64_t)(int64_t)(w[c] * input_value(d, row, c));
            } else {
              for (int32_t c = 0; c < channels; ++c) acc32[c] += (uint32_t)((int32_t)w[c] * input_value(d, row, c));
            }
          }
        }
        if (d->kind == KIND_S16) {
          int16_t* out = (int16_t*)(void*)output->data + at;
          for (int32_t c = 0; c < channels; ++c) {
            const int32_t v = conv_mbqm64((int64_t)acc64[c], d->multiplier[c], d->shift[c]);
            out[c] = (int16_t)(v < d->act_min ? d->act_min : (v > d->act_max ? d->act_max : v));
          }
        } else {
          uint8_t* out = output->data + at;
          for (int32_t c = 0; c < channels; ++c) {
            out[c] = (uint8_t)conv_requantize8(acc32[c], d->multiplier[c], d->shift[c], d->out_zp, d->act_min,
                                                d->act_max);
          }
        }
      }
    }
  }
  return EDGEQ_OK;
}

/* LiteRT's depthwise_conv.cc Prepare checks, then widened weights, folded biases and multipliers. */
static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  if (node->noutputs != 1 || (node->ninputs != 2 && node->ninputs != 3)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 or 3 inputs and 1 output, has %d and %d",
                    (int)node->ninputs, (int)node->noutputs);
  }
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* filter = eq_input(ctx, node, 1);
  eq_tensor* bias = node->ninputs == 3 ? eq_input(ctx, node, 2) : NULL;
  eq_tensor* output = eq_output(ctx, node, 0);
  if (input == NULL || filter == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input, filter and output are required");
  }
  edgeq_status s = conv_check_options(ctx, node, CONV_OPTIONS_DEPTHWISE);
  if (s != EDGEQ_OK) return s;
  if (input->type != EQ_T_INT8 && input->type != EQ_T_UINT8 && input->type != EQ_T_INT16) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input type %s; edgeq runs INT8, UINT8 and INT16 convolutions",
                    eq_type_name(input->type));
  }
  if ((s = conv_check_output(ctx, node, input, output)) != EDGEQ_OK) return s;
  if (input->ndim != 4 || filter->ndim != 4) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and filter must be 4-D, are %d-D and %d-D", (int)input->ndim,
                    (int)filter->ndim);
  }
  for (int i = 1; i < 4; ++i) {
    if (input->dims[i] <= 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input dimension %d is %d", i, (int)input->dims[i]);
    if (filter->dims[i] <= 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter dimension %d is %d", i, (int)filter->dims[i]);
  }
  if (filter->dims[0] != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter dimension 0 is %d, not 1", (int)filter->dims[0]);
  }
  const int32_t in_c = input->dims[3], out_c = filter->dims[3];
  if (out_c % in_c != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%d output channels are not a multiple of %d input channels",
                    (int)out_c, (int)in_c);
  }
  const int32_t multiplier_depth = out_c / in_c;
  if (multiplier_depth > INT16_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "depth multiplier %d exceeds LiteRT's int16 field",
                    (int)multiplier_depth);
  }
  /* LiteRT reads UINT8 filters as uint8 and INT8 / INT4 (unpacked) as int8; for int16 activations it reads
   * the stored bytes as int8 without unpacking INT4. */
  const int filter_ok = input->type == EQ_T_UINT8 ? filter->type == EQ_T_UINT8
                        : input->type == EQ_T_INT8 ? (filter->type == EQ_T_INT8 || filter->type == EQ_T_INT4)
                                                   : filter->type == EQ_T_INT8;
  if (!filter_ok) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "filter type %s with input type %s", eq_type_name(filter->type),
                    eq_type_name(input->type));
  }
  if (!filter->is_constant || filter->data == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "filter '%s' is not a constant; edgeq prepares filters at load",
                    filter->name);
  }
  if ((s = conv_check_activation(ctx, input, "input")) != EDGEQ_OK) return s;
  if ((s = conv_check_activation(ctx, output, "output")) != EDGEQ_OK) return s;
  if ((s = conv_check_filter_quant(ctx, filter, out_c)) != EDGEQ_OK) return s;
  /* Per-channel int8 reference kernels take weights_offset 0: the filter's zero points are ignored. */
  int32_t filter_offset = 0;
  if (input->type == EQ_T_UINT8) {
    if (filter->nq != 1) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "uint8 convolution with per-channel filter scales");
    }
    if (filter->zero_point[0] < 0 || filter->zero_point[0] > 255) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "uint8 filter zero point %lld", (long long)filter->zero_point[0]);
    }
    filter_offset = -(int32_t)filter->zero_point[0];
  }
  if (bias != NULL) {
    if ((s = conv_check_bias(ctx, bias, out_c, input->type != EQ_T_INT16, input->type == EQ_T_INT16, 1)) != EDGEQ_OK) {
      return s;
    }
  }

  /* Options (DepthwiseConv2DOptions field ids). */
  const int32_t padding = eq_opt_i8(node, 0, EQ_PAD_SAME);
  const int32_t stride_w = eq_opt_i32(node, 1, 0), stride_h = eq_opt_i32(node, 2, 0);
  const int32_t option_multiplier = eq_opt_i32(node, 3, 0);
  const int32_t activation = eq_opt_i8(node, 4, EQ_ACT_NONE);
  const int32_t dil_w = eq_opt_i32(node, 5, 1), dil_h = eq_opt_i32(node, 6, 1);
  if (stride_w <= 0 || stride_h <= 0 || dil_w <= 0 || dil_h <= 0 || stride_w > INT16_MAX || stride_h > INT16_MAX ||
      dil_w > INT16_MAX || dil_h > INT16_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "strides (%d, %d) and dilations (%d, %d) must be in [1, 32767]",
                    (int)stride_h, (int)stride_w, (int)dil_h, (int)dil_w);
  }
  if (input->type == EQ_T_INT16 && option_multiplier != multiplier_depth) {
    /* LiteRT's int16 kernel loops over the option's multiplier, not the shapes' */
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "depth_multiplier option %d differs from the shapes' %d; LiteRT's int16 kernel would use the option",
                    (int)option_multiplier, (int)multiplier_depth);
  }
  int32_t out_h, out_w, pad_h, pad_w;
  if (!conv_window(padding, input->dims[1], filter->dims[1], stride_h, dil_h, &out_h, &pad_h) ||
      !conv_window(padding, input->dims[2], filter->dims[2], stride_w, dil_w, &out_w, &pad_w)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "padding %d, strides (%d, %d), dilations (%d, %d) do not fit the input",
                    (int)padding, (int)stride_h, (int)stride_w, (int)dil_h, (int)dil_w);
  }
  if (output->dims[0] != input->dims[0] || output->dims[1] != out_h || output->dims[2] != out_w ||
      output->dims[3] != out_c) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape [%d, %d, %d, %d] should be [%d, %d, %d, %d]",
                    (int)output->dims[0], (int)output->dims[1], (int)output->dims[2], (int)output->dims[3],
                    (int)input->dims[0], (int)out_h, (int)out_w, (int)out_c);
  }

  depthwise_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  d->kind = input->type == EQ_T_INT8 ? KIND_S8 : (input->type == EQ_T_UINT8 ? KIND_U8 : KIND_S16);
  d->batches = input->dims[0];
  d->in_h = input->dims[1];
  d->in_w = input->dims[2];
  d->in_c = in_c;
  d->out_h = out_h;
  d->out_w = out_w;
  d->out_c = out_c;
  d->multiplier_depth = multiplier_depth;
  d->kh = filter->dims[1];
  d->kw = filter->dims[2];
  d->stride_h = stride_h;
  d->stride_w = stride_w;
  d->dil_h = dil_h;
  d->dil_w = dil_w;
  d->pad_h = pad_h;
  d->pad_w = pad_w;
  d->out_zp = (int32_t)output->zero_point[0];
  const size_t elem = d->kind == KIND_S16 ? 2 : 1;
  d->scratch = eq_request_scratch(ctx, node, (size_t)out_c * (d->kind == KIND_S16 ? sizeof(int64_t) : sizeof(uint32_t)));
  if (d->scratch < 0) return EDGEQ_ERROR_MEMORY;

  d->weights = eq_alloc(ctx, filter->count * sizeof(int16_t));
  d->padding_row = eq_alloc(ctx, (size_t)in_c * elem);
  d->multiplier = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  d->shift = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  if (d->weights == NULL || d->padding_row == NULL || d->multiplier == NULL || d->shift == NULL) {
    return EDGEQ_ERROR_MEMORY;
  }
  for (size_t i = 0; i < filter->count; ++i) d->weights[i] = (int16_t)(conv_filter_at(filter, i) + filter_offset);
  if (elem == 1) memset(d->padding_row, (int)(input->zero_point[0] & 0xFF), (size_t)in_c);
  const size_t taps = (size_t)d->kh * (size_t)d->kw;
  if (d->kind == KIND_S16) {
    d->bias64 = eq_alloc(ctx, sizeof(int64_t) * (size_t)out_c);
    if (d->bias64 == NULL) return EDGEQ_ERROR_MEMORY;
    for (int32_t c = 0; c < out_c; ++c) d->bias64[c] = conv_bias_at(bias, (size_t)c);
  } else {
    d->bias32 = eq_alloc(ctx, sizeof(uint32_t) * (size_t)out_c);
    if (d->bias32 == NULL) return EDGEQ_ERROR_MEMORY;
    const uint32_t input_offset = (uint32_t)-(int32_t)input->zero_point[0];
    for (int32_t c = 0; c < out_c; ++c) {
      uint32_t sum = 0;
      for (size_t t = 0; t < taps; ++t) sum += (uint32_t)(int32_t)d->weights[t * (size_t)out_c + (size_t)c];
      d->bias32[c] = (uint32_t)conv_bias_at(bias, (size_t)c) + input_offset * sum;
    }
  }
  if ((s = conv_multipliers(ctx, input, filter, bias, output, out_c, d->kind == KIND_S16 ? 14 : 31, d->multiplier,
                            d->shift)) != EDGEQ_OK) {
    return s;
  }
  return eq_activation_range(ctx, activation, output, &d->act_min, &d->act_max);
}

const eq_kernel eq_kernel_depthwise_conv_2d = {prepare, invoke};
