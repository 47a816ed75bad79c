/* TRANSPOSE_CONV on int8 (per-channel or per-tensor int8 filters), legacy uint8 and int16x8 (int8 filters;
 * int64 bias, or int32 bias and accumulator when quantized_bias_type says INT32), with an optional bias and
 * the fused activation of version 4+, bit-exact with LiteRT's reference TransposeConv.
 *
 * The reference scatters every input pixel through the filter into an int32 (int64) scratch image, then
 * rescales it. Here each output pixel gathers instead: tap (fy, fx) reaches output row oy from input row
 * (oy + pad - fy) / stride when that divides exactly and lies inside the input. The sums are the same
 * integers (wrapping int32 addition does not depend on order); for each tap, the input-offset term is
 * input_offset * the sum of that tap's filter row, precomputed. */
#include "conv_common.h"

enum { KIND_S8, KIND_U8, KIND_S16_ACC32, KIND_S16_ACC64 };

typedef struct transpose_data {
  int kind;
  int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, kh, kw, stride_h, stride_w, pad_h, pad_w;
  int16_t* weights;    /* [out_c][kh][kw][in_c], uint8 filter offset added */
  uint32_t* row_sums;  /* [out_c][kh * kw]: input_offset * sum of the tap's filter row (8-bit) */
  uint32_t* bias32;
  int64_t* bias64;
  int32_t* multiplier;
  int32_t* shift;
  int32_t in_zp, out_zp, act_min, act_max;
  int32_t scratch; /* out_c accumulators */
} transpose_data;

static uint32_t dot_s8(const int8_t* x, const int16_t* w, int32_t n) {
  uint32_t s = 0;
  for (int32_t i = 0; i < n; ++i) s += (uint32_t)((int32_t)x[i] * (int32_t)w[i]);
  return s;
}

static uint32_t dot_u8(const uint8_t* x, const int16_t* w, int32_t n) {
  uint32_t s = 0;
  for (int32_t i = 0; i < n; ++i) s += (uint32_t)((int32_t)x[i] * (int32_t)w[i]);
  return s;
}

/* int16 x int8 products are below 2^22 in magnitude, so 256 of them sum exactly in int32. */
static int64_t dot_s16(const int16_t* x, const int16_t* w, int32_t n) {
  int64_t total = 0;
  for (int32_t i0 = 0; i0 < n; i0 += 256) {
    const int32_t i1 = n - i0 < 256 ? n : i0 + 256;
    int32_t s = 0;
    for (int32_t i = i0; i < i1; ++i) s += (int32_t)x[i] * (int32_t)w[i];
    total += s;
  }
  return total;
}

/* The input position a tap reaches output position `o` from, or -1 when none. */
static int64_t source(int64_t o, int64_t pad, int64_t tap, int64_t stride, int64_t in) {
  const int64_t num = o + pad - tap;
  if (num < 0 || num % stride != 0) return -1;
  return num / stride < in ? num / stride : -1;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const transpose_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 2);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (output->count == 0) return EDGEQ_OK;
  const size_t elem = d->kind == KIND_S8 || d->kind == KIND_U8 ? 1 : 2;
  const size_t taps = (size_t)d->kh * (size_t)d->kw;
  const size_t in_c = (size_t)d->in_c;
  void* scratch = eq_scratch(ctx, node, d->scratch);
  uint32_t* acc32 = scratch;
  uint64_t* acc64 = scratch;
  for (int32_t b = 0; b < d->batches; ++b) {
    for (int32_t oy = 0; oy < d->out_h; ++oy) {
      for (int32_t ox = 0; ox < d->out_w; ++ox) {
        if (d->kind == KIND_S16_ACC64) {
          memset(acc64, 0, sizeof(uint64_t) * (size_t)d->out_c);
        } else {
          memset(acc32, 0, sizeof(uint32_t) * (size_t)d->out_c);
        }
        for (int32_t fy = 0; fy < d->kh; ++fy) {
          const int64_t iy = source(oy, d->pad_h, fy, d->stride_h, d->in_h);
          if (iy < 0) continue;
          for (int32_t fx = 0; fx < d->kw; ++fx) {
            const int64_t ix = source(ox, d->pad_w, fx, d->stride_w, d->in_w);
            if (ix < 0) continue;
            const size_t tap = (size_t)fy * (size_t)d->kw + (size_t)fx;
            const uint8_t* row =
                input->data + ((((size_t)b * (size_t)d->in_h + (size_t)iy) * (size_t)d->in_w + (size_t)ix) * in_c) * elem;
            for (int32_t oc = 0; oc < d->out_c; ++oc) {
              const int16_t* w = d->weights + ((size_t)oc * taps + tap) * in_c;
              switch (d->kind) {
                case KIND_S8:
                  acc32[oc] += dot_s8((const int8_t*)row, w, d->in_c) + d->row_sums[(size_t)oc * taps + tap];
                  break;
                case KIND_U8:
                  acc32[oc] += dot_u8(row, w, d->in_c) + d->row_sums[(size_t)oc * taps + tap];
                  break;
                case KIND_S16_ACC32:
                  acc32[oc] += (uint32_t)dot_s16((const int16_t*)(const void*)row, w, d->in_c);
                  break;
                default:
                  acc64[oc] += (uint64_t)dot_s16((const int16_t*)(const void*)row, w, d->in_c);
                  break;
              }
            }
          }
        }
        const size_t at = (((size_t)b * (size_t)d->out_h + (size_t)oy) * (size_t)d->out_w + (size_t)ox) * (size_t)d->out_c;
        for (int32_t oc = 0; oc < d->out_c; ++oc) {
          int32_t v;
          switch (d->kind) {
            case KIND_S8:
            case KIND_U8:
              output->data[at + (size_t)oc] = (uint8_t)conv_requantize8(
                  acc32[oc] + d->bias32[oc], d->multiplier[oc], d->shift[oc], d->out_zp, d->act_min, d->act_max);
              continue;
            case KIND_S16_ACC32:
              v = eq_mbqm((int32_t)(acc32[oc] + d->bias32[oc]), d->multiplier[oc], d->shift[oc]);
              break;
            default:
              v = conv_mbqm64((int64_t)(acc64[oc] + (uint64_t)d->bias64[oc]), d->multiplier[oc], d->shift[oc]);
              break;
          }
          ((int16_t*)(void*)output->data)[at + (size_t)oc] =
              (int16_t)(v < d->act_min ? d->act_min : (v > d->act_max ? d->act_max : v));
        }
      }
    }
  }
  return EDGEQ_OK;
}

/* LiteRT's transpose_conv.cc Prepare and Eval checks, then widened weights, tap sums and multipliers. */
static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  if (node->noutputs != 1 || (node->ninputs != 3 && node->ninputs != 4)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 3 or 4 inputs and 1 output, has %d and %d",
                    (int)node->ninputs, (int)node->noutputs);
  }
  eq_tensor* shape = eq_input(ctx, node, 0);
  eq_tensor* filter = eq_input(ctx, node, 1);
  eq_tensor* input = eq_input(ctx, node, 2);
  eq_tensor* bias = node->ninputs == 4 ? eq_input(ctx, node, 3) : NULL; /* may be omitted (-1) */
  eq_tensor* output = eq_output(ctx, node, 0);
  if (shape == NULL || filter == NULL || input == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape, filter, input and output are required");
  }
  edgeq_status s = EDGEQ_OK;
  if (input->type != EQ_T_INT8 && input->type != EQ_T_UINT8 && input->type != EQ_T_INT16) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input type %s; edgeq runs INT8, UINT8 and INT16 convolutions",
                    eq_type_name(input->type));
  }
  if ((s = conv_check_output(ctx, node, input, output)) != EDGEQ_OK) return s;
  if (shape->ndim != 1 || shape->type != EQ_T_INT32 || shape->count != 4) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape input must be 4 INT32 values");
  }
  if (!shape->is_constant || shape->data == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output shape input is not a constant");
  }
  for (int i = 0; i < 4; ++i) {
    if (eq_const_int(shape, (size_t)i) != output->dims[i]) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape input says %lld at dimension %d, the output has %d",
                      (long long)eq_const_int(shape, (size_t)i), i, (int)output->dims[i]);
    }
  }
  if (input->ndim != 4 || filter->ndim != 4) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input and filter must be 4-D, are %d-D and %d-D", (int)input->ndim,
                    (int)filter->ndim);
  }
  for (int i = 1; i < 4; ++i) {
    if (input->dims[i] <= 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input dimension %d is %d", i, (int)input->dims[i]);
  }
  for (int i = 0; i < 3; ++i) {
    if (filter->dims[i] <= 0) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter dimension %d is %d", i, (int)filter->dims[i]);
  }
  const int32_t out_c = filter->dims[0];
  if (filter->dims[3] != input->dims[3]) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter has %d input channels, the input %d", (int)filter->dims[3],
                    (int)input->dims[3]);
  }
  if (output->dims[0] != input->dims[0] || output->dims[1] <= 0 || output->dims[2] <= 0 || output->dims[3] != out_c) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output shape [%d, %d, %d, %d] does not fit batch %d and %d channels",
                    (int)output->dims[0], (int)output->dims[1], (int)output->dims[2], (int)output->dims[3],
                    (int)input->dims[0], (int)out_c);
  }
  const int filter_ok = input->type == EQ_T_UINT8 ? filter->type == EQ_T_UINT8 : filter->type == EQ_T_INT8;
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
  /* The int8 and int16 reference kernels ignore the filter's zero points; uint8 subtracts its one. */
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

  /* Options (TransposeConvOptions field ids). */
  const int32_t padding = eq_opt_i8(node, 0, EQ_PAD_SAME);
  const int32_t stride_w = eq_opt_i32(node, 1, 0), stride_h = eq_opt_i32(node, 2, 0);
  const int32_t activation = eq_opt_i8(node, 3, EQ_ACT_NONE);
  const int32_t bias_type = eq_opt_i8(node, 4, CONV_TENSOR_TYPE_FLOAT32);
  if (stride_w <= 0 || stride_h <= 0 || stride_w > INT16_MAX || stride_h > INT16_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "strides (%d, %d) must be in [1, 32767]", (int)stride_h, (int)stride_w);
  }
  int kind = input->type == EQ_T_INT8 ? KIND_S8 : (input->type == EQ_T_UINT8 ? KIND_U8 : KIND_S16_ACC64);
  if (bias != NULL) {
    if ((s = conv_check_bias(ctx, bias, out_c, 1, kind == KIND_S16_ACC64, input->type != EQ_T_UINT8)) != EDGEQ_OK) {
      return s;
    }
  }
  if (input->type == EQ_T_INT16) {
    /* As for CONV_2D: the int32 accumulator only when quantized_bias_type says INT32; otherwise LiteRT
     * reads the bias as int64 whatever its type. */
    if (bias_type != CONV_TENSOR_TYPE_FLOAT32 && bias_type != CONV_TENSOR_TYPE_INT32 &&
        bias_type != CONV_TENSOR_TYPE_INT64) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "quantized_bias_type %d; LiteRT takes INT32 or INT64",
                      (int)bias_type);
    }
    if (bias_type == CONV_TENSOR_TYPE_INT32) kind = KIND_S16_ACC32;
    if (bias != NULL && bias_type != CONV_TENSOR_TYPE_FLOAT32 &&
        bias->type != (bias_type == CONV_TENSOR_TYPE_INT32 ? EQ_T_INT32 : EQ_T_INT64)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias type %s differs from quantized_bias_type",
                      eq_type_name(bias->type));
    }
    if (bias != NULL && kind == KIND_S16_ACC64 && bias->type != EQ_T_INT64) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                      "int16 transposed convolution with an INT32 bias needs quantized_bias_type INT32 (LiteRT would "
                      "read the bias as int64)");
    }
  }
  /* The forward convolution of the output's size must give the input's size. */
  int32_t in_h, in_w, pad_h, pad_w;
  if (!conv_window(padding, output->dims[1], filter->dims[1], stride_h, 1, &in_h, &pad_h) ||
      !conv_window(padding, output->dims[2], filter->dims[2], stride_w, 1, &in_w, &pad_w)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "padding %d and strides (%d, %d) do not fit the output", (int)padding,
                    (int)stride_h, (int)stride_w);
  }
  if (in_h != input->dims[1] || in_w != input->dims[2]) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "an output of %d x %d comes from a %d x %d input, not %d x %d",
                    (int)output->dims[1], (int)output->dims[2], (int)in_h, (int)in_w, (int)input->dims[1],
                    (int)input->dims[2]);
  }

  transpose_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  d->kind = kind;
  d->batches = input->dims[0];
  d->in_h = input->dims[1];
  d->in_w = input->dims[2];
  d->in_c = input->dims[3];
  d->out_h = output->dims[1];
  d->out_w = output->dims[2];
  d->out_c = out_c;
  d->kh = filter->dims[1];
  d->kw = filter->dims[2];
  d->stride_h = stride_h;
  d->stride_w = stride_w;
  d->pad_h = pad_h;
  d->pad_w = pad_w;
  d->in_zp = (int32_t)input->zero_point[0];
  d->out_zp = (int32_t)output->zero_point[0];
  d->scratch =
      eq_request_scratch(ctx, node, (size_t)out_c * (kind == KIND_S16_ACC64 ? sizeof(uint64_t) : sizeof(uint32_t)));
  if (d->scratch < 0) return EDGEQ_ERROR_MEMORY;

  const size_t taps = (size_t)d->kh * (size_t)d->kw, in_c = (size_t)d->in_c;
  d->weights = eq_alloc(ctx, filter->count * sizeof(int16_t));
  d->multiplier = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  d->shift = eq_alloc(ctx, sizeof(int32_t) * (size_t)out_c);
  if (d->weights == NULL || d->multiplier == NULL || d->shift == NULL) return EDGEQ_ERROR_MEMORY;
  for (size_t i = 0; i < filter->count; ++i) d->weights[i] = (int16_t)(conv_filter_at(filter, i) + filter_offset);
  if (kind == KIND_S16_ACC64) {
    d->bias64 = eq_alloc(ctx, sizeof(int64_t) * (size_t)out_c);
    if (d->bias64 == NULL) return EDGEQ_ERROR_MEMORY;
    for (int32_t c = 0; c < out_c; ++c) d->bias64[c] = conv_bias_at(bias, (size_t)c);
  } else {
    d->bias32 = eq_alloc(ctx, sizeof(uint32_t) * (size_t)out_c);
    if (d->bias32 == NULL) return EDGEQ_ERROR_MEMORY;
    for (int32_t c = 0; c < out_c; ++c) d->bias32[c] = (uint32_t)conv_bias_at(bias, (size_t)c);
  }
  if (kind == KIND_S8 || kind == KIND_U8) {
    d->row_sums = eq_alloc(ctx, sizeof(uint32_t) * (size_t)out_c * taps);
    if (d->row_sums == NULL) return EDGEQ_ERROR_MEMORY;
    const uint32_t input_offset = (uint32_t)-d->in_zp;
    for (size_t r = 0; r < (size_t)out_c * taps; ++r) {
      uint32_t sum = 0;
      for (size_t i = 0; i < in_c; ++i) sum += (uint32_t)(int32_t)d->weights[r * in_c + i];
      d->row_sums[r] = input_offset * sum;
    }
  }
  if ((s = conv_multipliers(ctx, input, filter, bias, output, out_c, kind == KIND_S16_ACC64 ? 14 : 31, d->multiplier,
                            d->shift)) != EDGEQ_OK) {
    return s;
  }
  return eq_activation_range(ctx, activation, output, &d->act_min, &d->act_max);
}

const eq_kernel eq_kernel_transpose_conv = {prepare, invoke};
