/* FULLY_CONNECTED as LiteRT's reference kernel computes it:
 *   int8 x int8/int4 -> int8, int16 x int8/int4 -> int16, uint8 x uint8 -> uint8 or int16: the accumulator
 *     (int32, or int64 for int16x8 unless quantized_bias_type is INT32) is requantized in double,
 *     round(acc * (in_scale * filter_scale / out_scale)), per channel or per tensor;
 *   int16 x int16 -> int16: int64 accumulator, fixed-point MultiplyByQuantizedMultiplier.
 * The input is flattened to [batches, depth]. Weights are rows of `depth` values, so each output is one
 * contiguous dot product; the zero-point terms are folded in from precomputed row sums and the input's
 * row sum, which is exact modulo 2^32 / 2^64 just as LiteRT's wrapping accumulators are. */
#include <stdio.h>
#include <string.h>

#include "matmul_common.h"

/* FullyConnectedOptions field ids in schema.fbs. */
enum { OPT_ACTIVATION = 0, OPT_WEIGHTS_FORMAT = 1, OPT_KEEP_NUM_DIMS = 2, OPT_QUANTIZED_BIAS_TYPE = 4 };

typedef enum fc_kind {
  FC_S8,     /* int8 in and out, int8 (or unpacked int4) weights */
  FC_S16_S8, /* int16 in and out, int8 (or unpacked int4) weights */
  FC_U8,     /* uint8 in, weights and out */
  FC_U8_S16, /* uint8 in and weights, int16 out */
  FC_S16_S16 /* int16 in, weights and out */
} fc_kind;

typedef struct fc_data {
  fc_kind kind;
  int acc64;   /* the accumulator is int64 (else int32, wrapping) */
  int literal; /* zero points so large that LiteRT's per-product wrap or int16 truncation matters */
  size_t batches, units, depth;
  int32_t input_offset, filter_offset, output_offset; /* -zp_in, -zp_filter (0 per channel), zp_out */
  int32_t act_min, act_max;
  const double* scale;       /* per unit: in_scale * filter_scale / out_scale (float requantization) */
  const int32_t* multiplier; /* per unit (int16 x int16) */
  const int* shift;
  const void* weights;      /* constant weights (int4 unpacked to int8); NULL: the filter tensor at invoke */
  const uint64_t* unit_off; /* per unit, constant weights: input_offset*rowsum + depth*filter_offset*input_offset */
  int32_t unit_off_slot;    /* scratch for unit_off when the weights are an activation */
  int32_t widen_slot;       /* scratch: FC_TILE input rows widened to int16 */
} fc_data;

enum { FC_TILE = 4 };

static int is_int8_like(int32_t type) { return type == EQ_T_INT8 || type == EQ_T_INT4; }

static const char* kind_name(fc_kind kind) {
  switch (kind) {
    case FC_S8:
      return "int8";
    case FC_S16_S8:
      return "int16x8";
    case FC_U8:
      return "uint8";
    case FC_U8_S16:
      return "uint8->int16";
    default:
      return "int16x16";
  }
}

static int64_t weight_sum(fc_kind kind, const void* w, size_t n) {
  switch (kind) {
    case FC_S8:
    case FC_S16_S8:
      return mm_sum_s8(w, n);
    case FC_U8:
    case FC_U8_S16:
      return mm_sum_u8(w, n);
    default:
      return mm_sum_s16(w, n);
  }
}

/* The per-unit constant of the expanded sum  sum_k (w+fo)(x+io) = w.x + io*sum(w) + fo*sum(x) + K*fo*io. */
static void unit_offsets(const fc_data* d, const void* weights, uint64_t* out) {
  const size_t esize = d->kind == FC_S16_S16 ? 2 : 1;
  const uint64_t k_term = (uint64_t)d->depth * (uint64_t)(int64_t)d->filter_offset * (uint64_t)(int64_t)d->input_offset;
  for (size_t o = 0; o < d->units; ++o) {
    const int64_t rowsum = weight_sum(d->kind, (const uint8_t*)weights + o * d->depth * esize, d->depth);
    out[o] = (uint64_t)(int64_t)d->input_offset * (uint64_t)rowsum + k_term;
  }
}

static edgeq_status check_scales(eq_context* ctx, const eq_tensor* t, const char* role) {
  edgeq_status s = eq_check_quantized(ctx, t, role);
  if (s != EDGEQ_OK) return s;
  if (t->nq != 1) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s '%s' is quantized per channel", role, t->name);
  if (t->zero_point[0] < INT32_MIN || t->zero_point[0] > INT32_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s '%s' has zero point %lld outside int32", role, t->name,
                    (long long)t->zero_point[0]);
  }
  return EDGEQ_OK;
}

static edgeq_status check_output_shape(eq_context* ctx, const eq_tensor* input, const eq_tensor* output, size_t units,
                                       size_t depth, int keep_num_dims, size_t* batches) {
  int32_t want[EQ_MAX_DIMS];
  int32_t rank;
  if (keep_num_dims) {
    if (input->ndim < 1) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "keep_num_dims with a scalar input");
    if ((size_t)input->dims[input->ndim - 1] != depth) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED,
                      "keep_num_dims: input's last dimension %d is not the filter's depth %zu",
                      (int)input->dims[input->ndim - 1], depth);
    }
    rank = input->ndim;
    for (int32_t i = 0; i < rank; ++i) want[i] = input->dims[i];
    want[rank - 1] = (int32_t)units;
  } else {
    size_t b = 1;
    if (depth == 0) {
      /* LiteRT sizes this case from the input's leading dimensions. */
      for (int32_t i = 0; i + 1 < input->ndim; ++i) {
        const size_t dim = (size_t)input->dims[i];
        b = (dim != 0 && b > (size_t)INT32_MAX / dim) ? (size_t)INT32_MAX + 1 : b * dim; /* saturates */
      }
      for (int32_t i = 0; i + 1 < input->ndim; ++i) {
        if (input->dims[i] == 0) b = 0;
      }
    } else {
      if (input->count % depth != 0) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has %zu values, not a multiple of the filter's depth %zu",
                        input->count, depth);
      }
      b = input->count / depth;
    }
    if (b > INT32_MAX) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "batch count %zu overflows", b);
    rank = 2;
    want[0] = (int32_t)b;
    want[1] = (int32_t)units;
  }
  int same = output->ndim == rank;
  for (int32_t i = 0; same && i < rank; ++i) same = output->dims[i] == want[i];
  if (!same) {
    char buf[160];
    size_t n = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < rank && n < sizeof buf - 16; ++i) {
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d", i ? "," : "", (int)want[i]);
    }
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output '%s' should have shape [%s]", output->name, buf);
  }
  *batches = 1;
  for (int32_t i = 0; i + 1 < output->ndim; ++i) *batches *= (size_t)output->dims[i];
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
  const int32_t weights_format = eq_opt_i8(node, OPT_WEIGHTS_FORMAT, 0);
  if (weights_format == 1) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "SHUFFLED4x16INT8 weights format");
  if (weights_format != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "unknown weights format %d", (int)weights_format);
  }
  const int32_t activation = eq_opt_i8(node, OPT_ACTIVATION, EQ_ACT_NONE);
  if (activation != EQ_ACT_NONE && activation != EQ_ACT_RELU && activation != EQ_ACT_RELU_N1_TO_1 &&
      activation != EQ_ACT_RELU6) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "fused activation %d (LiteRT allows only NONE, RELU, RELU_N1_TO_1, RELU6)",
                    (int)activation);
  }
  const int keep_num_dims = eq_opt_bool(node, OPT_KEEP_NUM_DIMS, 0);

  /* Type combinations LiteRT's reference kernel computes (others it rejects or misreads). */
  fc_kind kind;
  const int32_t it = input->type, ft = filter->type, ot = output->type;
  if (it == EQ_T_INT8 && is_int8_like(ft) && ot == EQ_T_INT8) {
    kind = FC_S8;
  } else if (it == EQ_T_INT16 && is_int8_like(ft) && ot == EQ_T_INT16) {
    kind = FC_S16_S8;
  } else if (it == EQ_T_UINT8 && ft == EQ_T_UINT8 && ot == EQ_T_UINT8) {
    kind = FC_U8;
  } else if (it == EQ_T_UINT8 && ft == EQ_T_UINT8 && ot == EQ_T_INT16) {
    kind = FC_U8_S16;
  } else if (it == EQ_T_INT16 && ft == EQ_T_INT16 && ot == EQ_T_INT16) {
    kind = FC_S16_S16;
  } else if (it == EQ_T_FLOAT32) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                    "float input (%s weights): float and hybrid FULLY_CONNECTED are not supported",
                    eq_type_name(ft));
  } else {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input %s, filter %s, output %s", eq_type_name(it), eq_type_name(ft),
                    eq_type_name(ot));
  }

  /* Shapes. */
  if (filter->ndim != 2) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter has rank %d, not 2", (int)filter->ndim);
  const size_t units = (size_t)filter->dims[0], depth = (size_t)filter->dims[1];
  size_t batches = 0;
  edgeq_status s = check_output_shape(ctx, input, output, units, depth, keep_num_dims, &batches);
  if (s != EDGEQ_OK) return s;
  if (bias != NULL) {
    if (bias->count != units) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias has %zu values for %zu units", bias->count, units);
    }
  }

  /* Bias type and accumulator width. */
  int acc64 = 0;
  const int int16_io = kind == FC_S16_S8 || kind == FC_S16_S16;
  if (int16_io) {
    /* LiteRT reads quantized_bias_type from options; without options it holds an invalid type. */
    if (!node->has_options) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int16 FULLY_CONNECTED without options (LiteRT rejects it)");
    }
    const int32_t qbt = eq_opt_i8(node, OPT_QUANTIZED_BIAS_TYPE, EQ_T_FLOAT32);
    if (qbt != EQ_T_FLOAT32 && qbt != EQ_T_INT32 && qbt != EQ_T_INT64) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "quantized_bias_type %s (must be INT32 or INT64)",
                      eq_type_name(qbt));
    }
    /* Unset (FLOAT32): int16x8 accumulates in int64 and reads an int64 bias; int16x16 reads an int32 one. */
    if (kind == FC_S16_S8) {
      acc64 = qbt != EQ_T_INT32;
    } else {
      acc64 = 1;
    }
    const int32_t want_bias = (kind == FC_S16_S8 ? acc64 : qbt == EQ_T_INT64) ? EQ_T_INT64 : EQ_T_INT32;
    if (bias != NULL && bias->type != want_bias) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "bias is %s but quantized_bias_type %s makes LiteRT read it as %s",
                      eq_type_name(bias->type), eq_type_name(qbt), eq_type_name(want_bias));
    }
  } else if (bias != NULL && bias->type != EQ_T_INT32) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "%s FULLY_CONNECTED with a %s bias (must be INT32)", kind_name(kind),
                    eq_type_name(bias->type));
  }
  if (kind == FC_U8_S16 && bias == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "uint8->int16 FULLY_CONNECTED without bias (LiteRT dereferences it)");
  }

  /* Quantization. */
  if ((s = check_scales(ctx, input, "input")) != EDGEQ_OK) return s;
  if ((s = check_scales(ctx, output, "output")) != EDGEQ_OK) return s;
  if ((s = eq_check_quantized(ctx, filter, "filter")) != EDGEQ_OK) return s;
  for (int32_t i = 0; i < filter->nq; ++i) {
    if (filter->zero_point[i] < INT32_MIN || filter->zero_point[i] > INT32_MAX) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter zero point %lld outside int32",
                      (long long)filter->zero_point[i]);
    }
    if (ft == EQ_T_INT4 && filter->zero_point[i] != 0) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int4 filter with zero point %lld (must be 0)",
                      (long long)filter->zero_point[i]);
    }
  }
  const int per_channel = filter->nq > 1;
  if (per_channel) {
    if (kind == FC_U8 || kind == FC_U8_S16) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "per-channel uint8 filter");
    }
    if (filter->qdim != 0) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "per-channel filter quantized along dimension %d, not 0",
                      (int)filter->qdim);
    }
  }
  const int32_t in_zp = (int32_t)input->zero_point[0], out_zp = (int32_t)output->zero_point[0];
  if (int16_io && (in_zp != 0 || out_zp != 0)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "int16 input and output need zero point 0 (have %d and %d)", (int)in_zp,
                    (int)out_zp);
  }
  const float in_scale = input->scale[0], out_scale = output->scale[0];
  if (!per_channel && bias != NULL) {
    /* LiteRT's GetQuantizedConvolutionMultipler: the bias scale must match input * filter scale. */
    const double product = (double)in_scale * (double)filter->scale[0];
    const double diff = fabs(product - (double)mm_legacy_scale(bias));
    if (!(diff / (double)out_scale <= 0.02)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias scale %g does not match input scale * filter scale %g",
                      (double)mm_legacy_scale(bias), product);
    }
  }

  fc_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  d->kind = kind;
  d->acc64 = acc64;
  d->batches = batches;
  d->units = units;
  d->depth = depth;
  d->input_offset = mm_wrap32(0u - (uint32_t)in_zp); /* -INT32_MIN wraps, as LiteRT's negation does */
  d->filter_offset = per_channel ? 0 : mm_wrap32(0u - (uint32_t)(int32_t)filter->zero_point[0]);
  d->output_offset = out_zp;
  if ((s = eq_activation_range(ctx, activation, output, &d->act_min, &d->act_max)) != EDGEQ_OK) return s;

  /* Requantization constants. */
  if (kind == FC_S16_S16) {
    int32_t* mult = eq_alloc(ctx, sizeof(int32_t) * (units ? units : 1));
    int* shift = eq_alloc(ctx, sizeof(int) * (units ? units : 1));
    if (mult == NULL || shift == NULL) return EDGEQ_ERROR_MEMORY;
    for (size_t o = 0; o < units; ++o) {
      double real;
      if (per_channel) {
        real = (double)in_scale * (double)filter->scale[o] / (double)out_scale;
      } else {
        real = (double)(float)(in_scale * filter->scale[0]) / (double)out_scale; /* float product, as LiteRT */
      }
      eq_quantize_multiplier(real, &mult[o], &shift[o]);
      if (shift[o] > 14) {
        return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output multiplier %g is too large for the int64 rescale", real);
      }
    }
    d->multiplier = mult;
    d->shift = shift;
  } else {
    double* scale = eq_alloc(ctx, sizeof(double) * (units ? units : 1));
    if (scale == NULL) return EDGEQ_ERROR_MEMORY;
    for (size_t o = 0; o < units; ++o) {
      const float fs = per_channel ? filter->scale[o] : filter->scale[0];
      scale[o] = (double)in_scale * (double)fs / (double)out_scale;
    }
    d->scale = scale;
  }

  /* Cases where the expanded zero-point sum would not match LiteRT's arithmetic. */
  if (kind == FC_S16_S8 && acc64 && (d->filter_offset > 65407 || d->filter_offset < -65407)) {
    d->literal = 1; /* (w + fo) * x can wrap in LiteRT's int32 product */
  }
  if (kind == FC_U8_S16 && (d->input_offset < -32768 || d->input_offset > 32767 - 255 || d->filter_offset < -32768 ||
                            d->filter_offset > 32767 - 255)) {
    d->literal = 1; /* LiteRT truncates x + offset to int16 */
  }

  /* Weights: int4 unpacked once; constant weights get their zero-point terms now. */
  if (ft == EQ_T_INT4) {
    if (!filter->is_constant) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "int4 filter that is not a constant");
    int8_t* w = eq_alloc(ctx, filter->count ? filter->count : 1);
    if (w == NULL) return EDGEQ_ERROR_MEMORY;
    const uint8_t* packed = filter->data;
    for (size_t i = 0; i < filter->count; ++i) {
      const uint8_t byte = packed[i / 2];
      const int nibble = (i % 2) ? (byte >> 4) : (byte & 0x0F);
      w[i] = (int8_t)(nibble >= 8 ? nibble - 16 : nibble); /* low nibble first, sign-extended */
    }
    d->weights = w;
  } else if (filter->is_constant) {
    d->weights = filter->data;
  }
  d->unit_off_slot = d->widen_slot = -1;
  if (kind == FC_S8 || kind == FC_U8 || kind == FC_U8_S16) {
    const size_t tile = d->batches < FC_TILE ? d->batches : FC_TILE; /* rows widened at once */
    d->widen_slot = eq_request_scratch(ctx, node, sizeof(int16_t) * tile * depth + 1);
    if (d->widen_slot < 0) return EDGEQ_ERROR_MEMORY;
  }
  if (d->weights != NULL) {
    uint64_t* off = eq_alloc(ctx, sizeof(uint64_t) * (units ? units : 1));
    if (off == NULL) return EDGEQ_ERROR_MEMORY;
    unit_offsets(d, d->weights, off);
    d->unit_off = off;
  } else {
    d->unit_off_slot = eq_request_scratch(ctx, node, sizeof(uint64_t) * (units ? units : 1));
    if (d->unit_off_slot < 0) return EDGEQ_ERROR_MEMORY;
  }
  node->user = d;
  return EDGEQ_OK;
}

/* LiteRT's loop term by term, for zero points where the folded sums would differ. */
static uint64_t literal_acc(const fc_data* d, const void* x, const void* w) {
  uint64_t acc = 0;
  for (size_t k = 0; k < d->depth; ++k) {
    if (d->kind == FC_U8_S16) {
      const int16_t xv = (int16_t)(uint16_t)(((const uint8_t*)x)[k] + (uint32_t)d->input_offset);
      const int16_t wv = (int16_t)(uint16_t)(((const uint8_t*)w)[k] + (uint32_t)d->filter_offset);
      acc += (uint64_t)(int64_t)((int32_t)xv * (int32_t)wv);
    } else { /* int16 x int8, int64 accumulator of int32 products */
      const uint32_t xv = (uint32_t)(int32_t)((const int16_t*)x)[k] + (uint32_t)d->input_offset;
      const uint32_t wv = (uint32_t)(int32_t)((const int8_t*)w)[k] + (uint32_t)d->filter_offset;
      acc += (uint64_t)(int64_t)mm_wrap32(xv * wv);
    }
  }
  return acc;
}

static int32_t requantize(const fc_data* d, uint64_t acc, size_t o) {
  if (d->kind == FC_S16_S16) {
    const int32_t v = mm_add_wrap32(eq_mbqm64((int64_t)acc, d->multiplier[o], d->shift[o]), d->output_offset);
    return mm_clamp(v, d->act_min, d->act_max);
  }
  const double a = d->acc64 ? (double)(int64_t)acc : (double)mm_wrap32((uint32_t)acc);
  const int32_t v = mm_round_scale(a, d->scale[o]);
  if (d->kind == FC_U8_S16) {
    /* The legacy uint8->int16 kernel clamps before adding the output offset. */
    const int32_t lo = mm_sub_wrap32(d->act_min, d->output_offset), hi = mm_sub_wrap32(d->act_max, d->output_offset);
    return mm_add_wrap32(mm_clamp(v, lo, hi), d->output_offset);
  }
  return mm_clamp(mm_add_wrap32(v, d->output_offset), d->act_min, d->act_max);
}

static void store(eq_tensor* output, size_t i, int32_t v) {
  switch (output->type) {
    case EQ_T_INT8:
      ((int8_t*)output->data)[i] = (int8_t)v;
      break;
    case EQ_T_UINT8:
      ((uint8_t*)output->data)[i] = (uint8_t)v;
      break;
    default:
      ((int16_t*)output->data)[i] = (int16_t)v;
      break;
  }
}

static int64_t dot(fc_kind kind, const int16_t* x, const void* w, size_t n) {
  switch (kind) {
    case FC_S8:
      return mm_dot_s8wide_s8(x, w, n);
    case FC_S16_S8:
      return mm_dot_s16s8(x, w, n);
    case FC_S16_S16:
      return mm_dot_s16s16(x, w, n);
    default:
      return mm_dot_u8wide_u8(x, w, n);
  }
}

/* What a unit adds to its dot product: the zero-point terms (unless the literal sum has them) and the bias. */
static uint64_t unit_add(const fc_data* d, const uint64_t* unit_off, const int32_t* bias32, const int64_t* bias64,
                         size_t o) {
  uint64_t add = d->literal ? 0 : unit_off[o];
  if (bias32 != NULL) add += (uint64_t)(int64_t)bias32[o];
  if (bias64 != NULL) add += (uint64_t)bias64[o];
  return add;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const fc_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* filter = eq_input(ctx, node, 1);
  const eq_tensor* bias = eq_input(ctx, node, 2);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (output->count == 0) return EDGEQ_OK;
  if (d->depth == 0) {
    memset(output->data, 0, output->bytes); /* LiteRT writes zeros, not the zero point */
    return EDGEQ_OK;
  }
  const void* weights = d->weights != NULL ? d->weights : filter->data;
  const uint64_t* unit_off = d->unit_off;
  if (unit_off == NULL) {
    uint64_t* off = eq_scratch(ctx, node, d->unit_off_slot);
    unit_offsets(d, weights, off);
    unit_off = off;
  }
  const int32_t* bias32 = bias != NULL && bias->type == EQ_T_INT32 ? (const int32_t*)bias->data : NULL;
  const int64_t* bias64 = bias != NULL && bias->type == EQ_T_INT64 ? (const int64_t*)bias->data : NULL;
  const size_t K = d->depth, units = d->units;
  const int wide_input = d->kind == FC_S16_S8 || d->kind == FC_S16_S16;
  const size_t in_esize = wide_input ? 2 : 1, w_esize = d->kind == FC_S16_S16 ? 2 : 1;
  int16_t* widened = wide_input ? NULL : eq_scratch(ctx, node, d->widen_slot);
  const int16_t* xs[FC_TILE];
  uint64_t batch_off[FC_TILE];
  /* A tile of input rows shares each weight row while it is in cache. */
  for (size_t b0 = 0; b0 < d->batches; b0 += FC_TILE) {
    const size_t nb = d->batches - b0 < FC_TILE ? d->batches - b0 : FC_TILE;
    for (size_t t = 0; t < nb; ++t) {
      const uint8_t* row = input->data + (b0 + t) * K * in_esize;
      if (wide_input) {
        xs[t] = (const int16_t*)(const void*)row;
      } else {
        int16_t* w16 = widened + t * K;
        if (d->kind == FC_S8) {
          mm_widen_s8((const int8_t*)row, w16, K);
        } else {
          mm_widen_u8(row, w16, K);
        }
        xs[t] = w16;
      }
      int64_t xsum = 0;
      if (d->filter_offset != 0) {
        xsum = wide_input ? mm_sum_s16(xs[t], K)
                          : (d->kind == FC_S8 ? mm_sum_s8((const int8_t*)row, K) : mm_sum_u8(row, K));
      }
      batch_off[t] = (uint64_t)(int64_t)d->filter_offset * (uint64_t)xsum;
    }
    size_t o = 0;
    if (!d->literal && d->kind != FC_S16_S16) {
      /* Four weight rows at a time: each widened input value is loaded once for four outputs. */
      for (; o + 4 <= units; o += 4) {
        const void* w = (const uint8_t*)weights + o * K * w_esize;
        for (size_t t = 0; t < nb; ++t) {
          int64_t dots[4];
          if (d->kind == FC_S8) {
            mm_dot4_s8wide_s8(xs[t], w, K, K, dots);
          } else if (d->kind == FC_S16_S8) {
            mm_dot4_s16s8(xs[t], w, K, K, dots);
          } else {
            mm_dot4_u8wide_u8(xs[t], w, K, K, dots);
          }
          for (size_t q = 0; q < 4; ++q) {
            const uint64_t acc = (uint64_t)dots[q] + batch_off[t] + unit_add(d, unit_off, bias32, bias64, o + q);
            store(output, (b0 + t) * units + o + q, requantize(d, acc, o + q));
          }
        }
      }
    }
    for (; o < units; ++o) {
      const void* w = (const uint8_t*)weights + o * K * w_esize;
      const uint64_t add = unit_add(d, unit_off, bias32, bias64, o);
      for (size_t t = 0; t < nb; ++t) {
        uint64_t acc;
        if (d->literal) {
          acc = literal_acc(d, input->data + (b0 + t) * K * in_esize, w);
        } else {
          acc = (uint64_t)dot(d->kind, xs[t], w, K) + batch_off[t];
        }
        store(output, (b0 + t) * units + o, requantize(d, acc + add, o));
      }
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_fully_connected = {prepare, invoke};
