/* BATCH_MATMUL as LiteRT's reference kernel computes it: out[..., i, j] = sum_k lhs[..., i, k] * rhs[..., k, j]
 * (adj_x / adj_y transpose the last two dimensions of an operand), batch dimensions broadcast, ranks 2..5.
 *   int8 x int8 -> int8: int32 accumulator, double-rounding MultiplyByQuantizedMultiplier;
 *   int8 x int8 -> int32: the raw sum of products (no zero points, no rescale);
 *   int16 x int16 -> int16 and int16 x int8 -> int16: int64 accumulator, MultiplyByQuantizedMultiplier(int64).
 * Every operand is brought to rows of `depth` contiguous values (a constant RHS is transposed once at load,
 * as LiteRT does), so each output is one contiguous dot product; zero points are folded in from row sums,
 * which is exact modulo 2^32 just as LiteRT's wrapping int32 accumulator is. Like LiteRT, only the
 * per-tensor ("legacy") scale and zero point of each operand are used. */
#include <stdio.h>
#include <string.h>

#include "matmul_common.h"

/* BatchMatMulOptions field ids in schema.fbs. */
enum { OPT_ADJ_X = 0, OPT_ADJ_Y = 1 };

typedef enum bmm_kind { BMM_S8, BMM_S8_S32, BMM_S16, BMM_S16_S8 } bmm_kind;

typedef struct bmm_data {
  bmm_kind kind;
  int adj_x, adj_y;
  size_t rows, cols, depth, nbatch;
  size_t lhs_esize, rhs_esize;
  size_t* lhs_mat; /* per output batch: the index of the LHS matrix it reads */
  size_t* rhs_mat;
  int32_t lhs_offset, rhs_offset, output_offset; /* -zp_lhs, -zp_rhs (int8 only), zp_out */
  int32_t multiplier;
  int shift;
  const uint8_t* rhs_rows;  /* constant RHS as [matrix][cols][depth]; NULL: prepared at invoke */
  const int64_t* rhs_sums;  /* constant RHS: [matrix][cols] row sums (int8 only) */
  int32_t lhs_slot;         /* scratch: the LHS matrix as int16 rows (int8 widened, adj_x transposed) */
  int32_t rhs_slot;         /* scratch: the RHS matrix as rows (non-constant RHS without adj_y) */
  int32_t sums_slot;        /* scratch: rows + cols int64 row sums, then one output row of raw dot products */
} bmm_data;

static edgeq_status check_quant(eq_context* ctx, const eq_tensor* t, const char* role) {
  edgeq_status s = eq_check_quantized(ctx, t, role);
  if (s != EDGEQ_OK) return s;
  const int64_t zp = mm_legacy_zero_point(t);
  if (zp < INT32_MIN || zp > INT32_MAX) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s '%s' has zero point %lld outside int32", role, t->name,
                    (long long)zp);
  }
  return EDGEQ_OK;
}

/* Row sums of `n` rows of `depth` values. */
static void row_sums(bmm_kind kind, const void* rows, size_t n, size_t depth, int64_t* out) {
  for (size_t r = 0; r < n; ++r) {
    out[r] = kind == BMM_S16 || kind == BMM_S16_S8 ? 0 : mm_sum_s8((const int8_t*)rows + r * depth, depth);
  }
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* lhs = eq_input(ctx, node, 0);
  eq_tensor* rhs = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || lhs == NULL || rhs == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs and 1 output");
  }
  bmm_kind kind;
  if (lhs->type == EQ_T_INT8 && rhs->type == EQ_T_INT8 && output->type == EQ_T_INT8) {
    kind = BMM_S8;
  } else if (lhs->type == EQ_T_INT8 && rhs->type == EQ_T_INT8 && output->type == EQ_T_INT32) {
    kind = BMM_S8_S32;
  } else if (lhs->type == EQ_T_INT16 && rhs->type == EQ_T_INT16 && output->type == EQ_T_INT16) {
    kind = BMM_S16;
  } else if (lhs->type == EQ_T_INT16 && rhs->type == EQ_T_INT8 && output->type == EQ_T_INT16) {
    kind = BMM_S16_S8;
  } else if (lhs->type == EQ_T_FLOAT32) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "float LHS (%s RHS): float and hybrid BATCH_MATMUL are not supported",
                    eq_type_name(rhs->type));
  } else {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "LHS %s, RHS %s, output %s", eq_type_name(lhs->type),
                    eq_type_name(rhs->type), eq_type_name(output->type));
  }
  const int adj_x = eq_opt_bool(node, OPT_ADJ_X, 0), adj_y = eq_opt_bool(node, OPT_ADJ_Y, 0);

  int32_t l[BMM_RANK], r[BMM_RANK], o[BMM_RANK];
  edgeq_status s = bmm_shapes(ctx, lhs, rhs, output, adj_x, adj_y, l, r, o);
  if (s != EDGEQ_OK) return s;

  bmm_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  d->kind = kind;
  d->adj_x = adj_x;
  d->adj_y = adj_y;
  d->rows = (size_t)o[3];
  d->cols = (size_t)o[4];
  d->depth = (size_t)(adj_x ? l[3] : l[4]);
  d->lhs_esize = eq_type_size(lhs->type);
  d->rhs_esize = eq_type_size(rhs->type);

  /* Quantization: int32 output is the raw sum; the others rescale with per-tensor parameters. */
  if (kind != BMM_S8_S32) {
    if ((s = check_quant(ctx, lhs, "LHS")) != EDGEQ_OK) return s;
    if ((s = check_quant(ctx, rhs, "RHS")) != EDGEQ_OK) return s;
    if ((s = check_quant(ctx, output, "output")) != EDGEQ_OK) return s;
    if (output->nq != 1) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output quantized per channel");
    const int32_t zl = (int32_t)mm_legacy_zero_point(lhs), zr = (int32_t)mm_legacy_zero_point(rhs);
    const int32_t zo = (int32_t)mm_legacy_zero_point(output);
    if (kind != BMM_S8 && (zl != 0 || zr != 0 || zo != 0)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "int16 BATCH_MATMUL needs zero points 0 (have %d, %d, %d)", (int)zl,
                      (int)zr, (int)zo);
    }
    d->lhs_offset = mm_wrap32(0u - (uint32_t)zl);
    d->rhs_offset = mm_wrap32(0u - (uint32_t)zr);
    d->output_offset = zo;
    /* GetQuantizedConvolutionMultipler: the scale product is formed in float. */
    const float product = mm_legacy_scale(lhs) * mm_legacy_scale(rhs);
    const double real = (double)product / (double)output->scale[0];
    if (!isfinite(real)) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output multiplier is not finite");
    eq_quantize_multiplier(real, &d->multiplier, &d->shift);
    if (d->shift > (kind == BMM_S8 ? 31 : 14)) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output multiplier %g is too large", real);
    }
  }

  if (output->count == 0) {
    /* Nothing to compute; batch dimensions may be huge next to a zero, so nothing is sized from them. */
    d->nbatch = 0;
    node->user = d;
    return EDGEQ_OK;
  }

  /* Which LHS and RHS matrix each output batch reads (output has values, so every count here is bounded by
   * its element count). */
  d->nbatch = (size_t)o[0] * (size_t)o[1] * (size_t)o[2];
  const size_t nb = d->nbatch ? d->nbatch : 1;
  d->lhs_mat = eq_alloc(ctx, sizeof(size_t) * nb);
  d->rhs_mat = eq_alloc(ctx, sizeof(size_t) * nb);
  if (d->lhs_mat == NULL || d->rhs_mat == NULL) return EDGEQ_ERROR_MEMORY;
  size_t bi = 0;
  for (int32_t b0 = 0; b0 < o[0]; ++b0) {
    for (int32_t b1 = 0; b1 < o[1]; ++b1) {
      for (int32_t b2 = 0; b2 < o[2]; ++b2, ++bi) {
        const size_t i0 = (size_t)b0, i1 = (size_t)b1, i2 = (size_t)b2;
        /* a dimension of 1 broadcasts: it always reads index 0 */
        d->lhs_mat[bi] =
            ((l[0] == 1 ? 0 : i0) * (size_t)l[1] + (l[1] == 1 ? 0 : i1)) * (size_t)l[2] + (l[2] == 1 ? 0 : i2);
        d->rhs_mat[bi] =
            ((r[0] == 1 ? 0 : i0) * (size_t)r[1] + (r[1] == 1 ? 0 : i1)) * (size_t)r[2] + (r[2] == 1 ? 0 : i2);
      }
    }
  }

  /* A constant RHS becomes rows of depth values (and their sums) once. */
  const size_t mat_elems = d->cols * d->depth;
  d->lhs_slot = d->rhs_slot = -1;
  if (rhs->is_constant) {
    const size_t nmat = (size_t)r[0] * (size_t)r[1] * (size_t)r[2];
    if (adj_y) {
      d->rhs_rows = rhs->data;
    } else {
      uint8_t* t = eq_alloc(ctx, rhs->bytes ? rhs->bytes : 1);
      if (t == NULL) return EDGEQ_ERROR_MEMORY;
      for (size_t m = 0; m < nmat; ++m) {
        mm_transpose(rhs->data + m * mat_elems * d->rhs_esize, t + m * mat_elems * d->rhs_esize, d->depth, d->cols,
                     d->rhs_esize);
      }
      d->rhs_rows = t;
    }
    int64_t* sums = eq_alloc(ctx, sizeof(int64_t) * (nmat * d->cols + 1));
    if (sums == NULL) return EDGEQ_ERROR_MEMORY;
    row_sums(kind, d->rhs_rows, nmat * d->cols, d->depth, sums);
    d->rhs_sums = sums;
  } else if (!adj_y) {
    d->rhs_slot = eq_request_scratch(ctx, node, mat_elems * d->rhs_esize + 1);
    if (d->rhs_slot < 0) return EDGEQ_ERROR_MEMORY;
  }
  if (adj_x || kind == BMM_S8 || kind == BMM_S8_S32) {
    d->lhs_slot = eq_request_scratch(ctx, node, d->rows * d->depth * sizeof(int16_t) + 1);
    if (d->lhs_slot < 0) return EDGEQ_ERROR_MEMORY;
  }
  d->sums_slot = eq_request_scratch(ctx, node, sizeof(int64_t) * (d->rows + 2 * d->cols + 1));
  if (d->sums_slot < 0) return EDGEQ_ERROR_MEMORY;
  node->user = d;
  return EDGEQ_OK;
}

/* The raw dot products of one LHS row (int16, int8 values widened) with every RHS row. */
static void row_dots(bmm_kind kind, const int16_t* li, const uint8_t* R, size_t cols, size_t K, int64_t* dots) {
  size_t j = 0;
  if (kind == BMM_S16) {
    const int16_t* r = (const int16_t*)(const void*)R;
    for (; j < cols; ++j) dots[j] = mm_dot_s16s16(li, r + j * K, K);
    return;
  }
  const int8_t* r = (const int8_t*)R;
  const int narrow = kind != BMM_S16_S8; /* li holds int8 values: longer int32 chunks are safe */
  for (; j + 4 <= cols; j += 4) {
    if (narrow) {
      mm_dot4_s8wide_s8(li, r + j * K, K, K, dots + j);
    } else {
      mm_dot4_s16s8(li, r + j * K, K, K, dots + j);
    }
  }
  for (; j < cols; ++j) dots[j] = narrow ? mm_dot_s8wide_s8(li, r + j * K, K) : mm_dot_s16s8(li, r + j * K, K);
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const bmm_data* d = node->user;
  const eq_tensor* lhs = eq_input(ctx, node, 0);
  const eq_tensor* rhs = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (output->count == 0) return EDGEQ_OK;
  const size_t rows = d->rows, cols = d->cols, K = d->depth;
  const size_t lhs_mat_bytes = rows * K * d->lhs_esize, rhs_mat_bytes = cols * K * d->rhs_esize;
  int64_t* lsum = eq_scratch(ctx, node, d->sums_slot);
  int64_t* rsum_scratch = lsum + rows;
  int64_t* dots = rsum_scratch + cols;
  uint8_t* lhs_t = d->lhs_slot >= 0 ? eq_scratch(ctx, node, d->lhs_slot) : NULL;
  uint8_t* rhs_t = d->rhs_slot >= 0 ? eq_scratch(ctx, node, d->rhs_slot) : NULL;
  const int s8 = d->kind == BMM_S8;
  const uint32_t k_term = (uint32_t)K * (uint32_t)d->lhs_offset * (uint32_t)d->rhs_offset;
  size_t last_lhs = (size_t)-1, last_rhs = (size_t)-1;
  const uint8_t* L = NULL;
  const uint8_t* R = NULL;
  const int64_t* rsum = NULL;
  for (size_t b = 0; b < d->nbatch; ++b) {
    /* Operands as rows of K values; reused while consecutive batches broadcast the same matrix. */
    if (d->lhs_mat[b] != last_lhs) {
      last_lhs = d->lhs_mat[b];
      L = lhs->data + last_lhs * lhs_mat_bytes;
      if (s8 || d->kind == BMM_S8_S32) {
        /* int8 rows widened to int16 (and transposed for adj_x): the dot products then vectorize well */
        int16_t* w = (int16_t*)(void*)lhs_t;
        const int8_t* src = (const int8_t*)L;
        for (size_t i = 0; i < rows; ++i) {
          for (size_t k = 0; k < K; ++k) w[i * K + k] = d->adj_x ? src[k * rows + i] : src[i * K + k];
          if (s8) lsum[i] = mm_sum_s16(w + i * K, K);
        }
        L = lhs_t;
      } else if (lhs_t != NULL) {
        mm_transpose(L, lhs_t, K, rows, d->lhs_esize);
        L = lhs_t;
      }
    }
    if (d->rhs_mat[b] != last_rhs) {
      last_rhs = d->rhs_mat[b];
      if (d->rhs_rows != NULL) {
        R = d->rhs_rows + last_rhs * rhs_mat_bytes;
        rsum = d->rhs_sums + last_rhs * cols;
      } else {
        R = rhs->data + last_rhs * rhs_mat_bytes;
        if (rhs_t != NULL) {
          mm_transpose(R, rhs_t, K, cols, d->rhs_esize);
          R = rhs_t;
        }
        if (s8) row_sums(d->kind, R, cols, K, rsum_scratch);
        rsum = rsum_scratch;
      }
    }
    for (size_t i = 0; i < rows; ++i) {
      const size_t l_esize = (s8 || d->kind == BMM_S8_S32) ? sizeof(int16_t) : d->lhs_esize;
      const int16_t* li = (const int16_t*)(const void*)(L + i * K * l_esize);
      row_dots(d->kind, li, R, cols, K, dots);
      const size_t out_base = (b * rows + i) * cols;
      switch (d->kind) {
        case BMM_S8: {
          /* sum_k (l - zl)(r - zr) = l.r - zl*sum(r) - zr*sum(l) + K*zl*zr, modulo 2^32 */
          const uint32_t row_term = (uint32_t)d->rhs_offset * (uint32_t)lsum[i] + k_term;
          int8_t* out = (int8_t*)output->data + out_base;
          for (size_t j = 0; j < cols; ++j) {
            const uint32_t acc = (uint32_t)dots[j] + (uint32_t)d->lhs_offset * (uint32_t)rsum[j] + row_term;
            const int32_t v = mm_add_wrap32(eq_mbqm(mm_wrap32(acc), d->multiplier, d->shift), d->output_offset);
            out[j] = (int8_t)mm_clamp(v, -128, 127);
          }
          break;
        }
        case BMM_S8_S32: {
          int32_t* out = (int32_t*)output->data + out_base;
          for (size_t j = 0; j < cols; ++j) out[j] = mm_wrap32((uint32_t)dots[j]); /* LiteRT's wrapping int32 sum */
          break;
        }
        default: {
          int16_t* out = (int16_t*)output->data + out_base;
          for (size_t j = 0; j < cols; ++j) {
            out[j] = (int16_t)mm_clamp(eq_mbqm64(dots[j], d->multiplier, d->shift), -32768, 32767);
          }
          break;
        }
      }
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_batch_matmul = {prepare, invoke};
