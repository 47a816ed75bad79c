/* FULLY_CONNECTED with float input and output and blockwise INT4 weights (a BlockwiseQuantization table of
 * fp16 scales, one per block of `block_size` inputs of each unit), as LiteRT's default CPU path computes it:
 * XNNPACK's qd8_f32_qb4w. LiteRT's reference kernels do not compute it, so XNNPACK is the model here.
 *   - each input row is quantized on the fly to int8, asymmetric, from the row's range widened to hold 0
 *     (xnn_qd8_asymmetric_quantization_params in float; values rounded to nearest even, as cvtps2dq does);
 *   - each block's integer dot product sum (x_q - zp) * w is exact in int32;
 *   - block scales are the file's fp16 values rounded to bf16 (nearest even), as XNNPACK's delegate stores
 *     them, when the block size is a multiple of 32; other block sizes XNNPACK refuses and LiteRT's builtin
 *     kernel runs them with the fp16 values as they are;
 *   - the blocks are summed in double (XNNPACK sums in float: the stated tolerance covers the difference),
 *     scaled by the row's step, the float bias added, the fused activation applied.
 * Weights are unpacked (two per byte, low nibble first) and their block sums taken at prepare. */
#include <math.h>
#include <string.h>

#include "half.h"
#include "int4.h"
#include "matmul_common.h"

/* FullyConnectedOptions field ids in schema.fbs. */
enum { OPT_ACTIVATION = 0, OPT_WEIGHTS_FORMAT = 1, OPT_KEEP_NUM_DIMS = 2 };

typedef struct qb4w_data {
  size_t batches, units, depth, block, nblocks;
  const int8_t* weights;  /* units x depth, unpacked */
  const float* scales;    /* units x nblocks, as used (bf16-rounded or fp16) */
  const int32_t* wsums;   /* units x nblocks: sum of each block's weights */
  float act_min, act_max; /* fused activation */
  int32_t row_slot;       /* scratch: one quantized input row, widened to int16 */
} qb4w_data;

/* XNNPACK's math_cvt_bf16_fp32 and back: round to nearest even in the upper 16 bits (finite inputs). */
static float round_to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static edgeq_status fail(eq_context* ctx, const char* what, const eq_tensor* filter) {
  return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "blockwise filter '%s': %s", filter->name, what);
}

/* Checks the BlockwiseQuantization table against the filter and reads it into scales, weights and sums. */
static edgeq_status load_blocks(eq_context* ctx, const eq_tensor* filter, qb4w_data* d) {
  const size_t block = (size_t)filter->block_size;
  if (block > d->depth || d->depth % block != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "blockwise filter '%s': block size %zu does not divide its %zu inputs",
                    filter->name, block, d->depth);
  }
  if (block % 2 != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "blockwise filter '%s': odd block size %zu (XNNPACK needs multiples of 32, LiteRT's builtin kernel "
                    "reads odd rows padded)", filter->name, block);
  }
  if (filter->block_zero_points != -1) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "blockwise filter '%s' has a zero-point tensor (%d); LiteRT's kernels ignore it, edgeq refuses it",
                    filter->name, (int)filter->block_zero_points);
  }
  const eq_tensor* st = &ctx->tensors[filter->block_scales];
  d->block = block;
  d->nblocks = d->depth / block;
  const size_t n = d->units * d->nblocks;
  if (st->type != EQ_T_FLOAT16) return fail(ctx, "its scales tensor is not FLOAT16", filter);
  if (!st->is_constant) return fail(ctx, "its scales tensor is not a constant", filter);
  if (st->ndim != 2 || (size_t)st->dims[0] != d->units || (size_t)st->dims[1] != d->nblocks) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "blockwise filter '%s': scales tensor '%s' should have shape [%zu,%zu]",
                    filter->name, st->name, d->units, d->nblocks);
  }
  if (!filter->is_constant) return fail(ctx, "not a constant", filter);
  const int to_bf16 = block % 32 == 0;
  float* scales = eq_alloc(ctx, sizeof(float) * (n ? n : 1));
  int8_t* w = eq_alloc(ctx, d->units * d->depth);
  int32_t* sums = eq_alloc(ctx, sizeof(int32_t) * (n ? n : 1));
  if (scales == NULL || w == NULL || sums == NULL) return EDGEQ_ERROR_MEMORY;
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    memcpy(&h, st->data + 2 * i, sizeof h);
    const float s = half_to_float(h);
    if (!(s > 0.0f) || isinf(s)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "blockwise filter '%s': scale %g of block %zu of unit %zu is not a "
                      "positive finite number", filter->name, (double)s, i % d->nblocks, i / d->nblocks);
    }
    scales[i] = to_bf16 ? round_to_bf16(s) : s;
  }
  for (size_t i = 0; i < d->units * d->depth; ++i) w[i] = s4_at(filter->data, i);
  for (size_t i = 0; i < n; ++i) sums[i] = (int32_t)mm_sum_s8(w + i * block, block);
  d->scales = scales;
  d->weights = w;
  d->wsums = sums;
  return EDGEQ_OK;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* filter = eq_input(ctx, node, 1);
  eq_tensor* bias = eq_input(ctx, node, 2);
  eq_tensor* output = eq_output(ctx, node, 0);
  if ((node->ninputs != 2 && node->ninputs != 3) || node->noutputs != 1 || input == NULL || filter == NULL ||
      output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects input, filter, optional bias and 1 output");
  }
  if (input->type != EQ_T_FLOAT32 || filter->type != EQ_T_INT4 || output->type != EQ_T_FLOAT32 ||
      (bias != NULL && bias->type != EQ_T_FLOAT32)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "blockwise FULLY_CONNECTED takes FLOAT32 input, INT4 filter, FLOAT32 bias and output; got %s, %s, "
                    "%s, %s", eq_type_name(input->type), eq_type_name(filter->type),
                    bias != NULL ? eq_type_name(bias->type) : "no bias", eq_type_name(output->type));
  }
  if (eq_opt_i8(node, OPT_WEIGHTS_FORMAT, 0) != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "blockwise filter in a shuffled weights format");
  }
  const int32_t activation = eq_opt_i8(node, OPT_ACTIVATION, EQ_ACT_NONE);
  qb4w_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  switch (activation) {
    case EQ_ACT_NONE:
      d->act_min = -INFINITY, d->act_max = INFINITY;
      break;
    case EQ_ACT_RELU:
      d->act_min = 0.0f, d->act_max = INFINITY;
      break;
    case EQ_ACT_RELU_N1_TO_1:
      d->act_min = -1.0f, d->act_max = 1.0f;
      break;
    case EQ_ACT_RELU6:
      d->act_min = 0.0f, d->act_max = 6.0f;
      break;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "fused activation %d (LiteRT allows only NONE, RELU, RELU_N1_TO_1, "
                      "RELU6)", (int)activation);
  }
  if (filter->ndim != 2 || filter->dims[0] == 0 || filter->dims[1] == 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "blockwise filter '%s' must be 2-D and not empty", filter->name);
  }
  d->units = (size_t)filter->dims[0];
  d->depth = (size_t)filter->dims[1];
  if (input->count % d->depth != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has %zu values, not a multiple of the filter's depth %zu",
                    input->count, d->depth);
  }
  d->batches = input->count / d->depth;
  const int keep_num_dims = eq_opt_bool(node, OPT_KEEP_NUM_DIMS, 0);
  const int rank_ok = keep_num_dims ? output->ndim == input->ndim : output->ndim == 2;
  if (!rank_ok || output->ndim < 1 || (size_t)output->dims[output->ndim - 1] != d->units ||
      output->count != d->batches * d->units ||
      (keep_num_dims && (size_t)input->dims[input->ndim - 1] != d->depth)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output '%s' does not hold %zu rows of %zu units%s", output->name,
                    d->batches, d->units, keep_num_dims ? " in the input's shape" : "");
  }
  if (bias != NULL && bias->count != d->units) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias has %zu values for %zu units", bias->count, d->units);
  }
  edgeq_status s = load_blocks(ctx, filter, d);
  if (s != EDGEQ_OK) return s;
  d->row_slot = eq_request_scratch(ctx, node, sizeof(int16_t) * d->depth);
  if (d->row_slot < 0) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  return EDGEQ_OK;
}

/* xnn_qd8_asymmetric_quantization_params: `multiplier` quantizes, 1 / multiplier dequantizes. */
static void row_params(const float* x, size_t n, float* multiplier, int32_t* zero_point) {
  float lo = INFINITY, hi = -INFINITY;
  for (size_t k = 0; k < n; ++k) {
    lo = x[k] < lo ? x[k] : lo;
    hi = x[k] > hi ? x[k] : hi;
  }
  const float rmin = lo < 0.0f ? lo : 0.0f, rmax = hi > 0.0f ? hi : 0.0f;
  const float scale = rmin == rmax ? 1.0f : 255.0f / (rmax - rmin);
  const float descaled_min = rmin * scale, descaled_max = rmax * scale;
  float zp = (-128.0f + descaled_min) + (127.0f + descaled_max) > 0.0f ? -128.0f - descaled_min : 127.0f - descaled_max;
  zp = zp > -128.0f ? zp : -128.0f; /* max then min, as XNNPACK; a NaN range lands on -128 here */
  zp = zp < 127.0f ? zp : 127.0f;
  *multiplier = scale;
  *zero_point = (int32_t)lrintf(zp);
}

/* f32 -> qs8 as XNNPACK's vcvt does: x * multiplier capped at INT16_MAX, rounded to nearest even (NaN and
 * values below int32 give INT32_MIN), saturated to int16, zero point added with int16 saturation, then int8. */
static int32_t quantize_value(float x, float multiplier, int32_t zero_point) {
  float v = x * multiplier;
  v = v < 32767.0f ? v : 32767.0f;
  int32_t r = v >= -2147483648.0f ? (int32_t)lrintf(v) : INT32_MIN;
  r = r < -32768 ? -32768 : r;
  r += zero_point;
  r = r < -32768 ? -32768 : r;
  return r < -128 ? -128 : (r > 127 ? 127 : r);
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const qb4w_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* bias = eq_input(ctx, node, 2);
  eq_tensor* output = eq_output(ctx, node, 0);
  int16_t* q = eq_scratch(ctx, node, d->row_slot);
  const float* bias_data = bias != NULL ? (const float*)bias->data : NULL;
  for (size_t b = 0; b < d->batches; ++b) {
    const float* x = (const float*)input->data + b * d->depth;
    float* y = (float*)output->data + b * d->units;
    float multiplier;
    int32_t zp;
    row_params(x, d->depth, &multiplier, &zp);
    const float step = 1.0f / multiplier;
    for (size_t k = 0; k < d->depth; ++k) q[k] = (int16_t)quantize_value(x[k], multiplier, zp);
    for (size_t o = 0; o < d->units; ++o) {
      const int8_t* w = d->weights + o * d->depth;
      const float* scales = d->scales + o * d->nblocks;
      const int32_t* sums = d->wsums + o * d->nblocks;
      double acc = 0.0;
      for (size_t blk = 0; blk < d->nblocks; ++blk) {
        /* |dot| <= block * 255 * 8: int64 for blocks of any size */
        const int64_t dot = mm_dot_s8wide_s8(q + blk * d->block, w + blk * d->block, d->block) - (int64_t)zp * sums[blk];
        acc += (double)scales[blk] * (double)dot;
      }
      float v = (float)(acc * (double)step);
      if (bias_data != NULL) v += bias_data[o];
      v = v > d->act_min ? v : d->act_min;
      y[o] = v < d->act_max ? v : d->act_max;
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_fully_connected_f32_qb4w = {prepare, invoke};
