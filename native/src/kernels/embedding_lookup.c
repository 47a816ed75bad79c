/* EMBEDDING_LOOKUP: output row i is row lookup[i] of the value table (INT32 lookups, table rank >= 2).
 * Same input and output type: a byte copy of rows. A quantized table with FLOAT32 output is LiteRT's hybrid
 * path (EvalHybrid), value * scale in float with the row's scale when the table is quantized per row:
 *   - INT8/UINT8 tables, read as int8 even when UINT8;
 *   - INT4 tables (two per byte, low nibble first): each nibble is shifted into an int8's high bits and
 *     multiplied by scale / 16, as Unpack4Bit does. A row starts at byte (row * row_elems) / 2 and is read
 *     from its low nibble, so tables with rows of odd length read LiteRT's way (the wrong nibble for odd
 *     rows); edgeq's writer never emits them.
 * An INT4 table with a BlockwiseQuantization (fp16 scales [rows, row_elems / block]) is EvalBlockwise: each
 * block is unpacked with its own scale. FLOAT16 outputs, which LiteRT also writes, are refused. A lookup
 * outside the table is an invoke-time EDGEQ_ERROR_RUNTIME, as in LiteRT. */
#include "half.h"
#include "movement.h"

typedef enum { EMB_COPY, EMB_HYBRID_S8, EMB_HYBRID_S4, EMB_BLOCKWISE_S4 } embedding_mode;

typedef struct embedding_data {
  size_t rows, row_elems, row_bytes;
  embedding_mode mode;
  size_t block;  /* EMB_BLOCKWISE_S4: elements per block; else row_elems */
  float* scales; /* hybrid: one per row; blockwise: rows x (row_elems / block) */
} embedding_data;

/* Hybrid tables: zero point 0; per row along dimension 0 or one scale. */
static edgeq_status prepare_hybrid(eq_context* ctx, const eq_tensor* value, embedding_data* data) {
  if (value->nq > 0 && value->zero_point[0] != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "value zero point %lld; LiteRT's hybrid lookup needs 0",
                    (long long)value->zero_point[0]);
  }
  if (value->nq > 1 && (value->qdim != 0 || (size_t)value->nq != data->rows)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "per-channel value must be quantized along dimension 0");
  }
  data->scales = eq_alloc(ctx, sizeof(float) * (data->rows ? data->rows : 1));
  if (data->scales == NULL) return EDGEQ_ERROR_MEMORY;
  /* params.scale: the single scale, 0 when unquantized; per row scales otherwise */
  for (size_t r = 0; r < data->rows; ++r) data->scales[r] = value->nq > 1 ? value->scale[r] : mv_scale(value);
  return EDGEQ_OK;
}

/* Blockwise INT4 tables: 2-D, blocks dividing the row, a constant FLOAT16 scale per block. */
static edgeq_status prepare_blockwise(eq_context* ctx, const eq_tensor* value, embedding_data* data) {
  const size_t block = (size_t)value->block_size;
  if (value->ndim != 2) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "blockwise value '%s' has rank %d; LiteRT takes 2-D tables",
                    value->name, (int)value->ndim);
  }
  if (block % 2 != 0 || data->row_elems % block != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "blockwise value '%s': block size %zu must be even and divide its rows "
                    "of %zu", value->name, block, data->row_elems);
  }
  const size_t nblocks = data->row_elems / block, n = data->rows * nblocks;
  const eq_tensor* st = &ctx->tensors[value->block_scales];
  if (st->type != EQ_T_FLOAT16 || !st->is_constant || st->ndim != 2 || (size_t)st->dims[0] != data->rows ||
      (size_t)st->dims[1] != nblocks) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "blockwise value '%s': scales tensor '%s' must be a constant FLOAT16 "
                    "[%zu,%zu]", value->name, st->name, data->rows, nblocks);
  }
  data->scales = eq_alloc(ctx, sizeof(float) * (n ? n : 1));
  if (data->scales == NULL) return EDGEQ_ERROR_MEMORY;
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    memcpy(&h, st->data + 2 * i, sizeof h);
    data->scales[i] = half_to_float(h);
  }
  data->block = block;
  return EDGEQ_OK;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* lookup = eq_input(ctx, node, 0);
  eq_tensor* value = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || lookup == NULL || value == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (lookup, value) and 1 output");
  }
  if (lookup->type != EQ_T_INT32 || lookup->ndim != 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "lookup must be a 1-D INT32 tensor");
  }
  if (value->ndim < 2) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "value has rank %d; it needs 2 or more", (int)value->ndim);
  edgeq_status s = mv_check_type(ctx, value, MV_COPY_TYPES | MV_T(EQ_T_INT4), "value");
  if (s != EDGEQ_OK) return s;
  embedding_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->rows = (size_t)value->dims[0];
  data->row_elems = mv_inner(value, 0);
  data->block = data->row_elems;
  if (value->type != output->type) {
    if (output->type != EQ_T_FLOAT32 ||
        (value->type != EQ_T_INT8 && value->type != EQ_T_UINT8 && value->type != EQ_T_INT4)) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "value %s with output %s; edgeq copies equal types or "
                      "dequantizes INT8/UINT8/INT4 to FLOAT32", eq_type_name(value->type), eq_type_name(output->type));
    }
    if (value->block_size > 0) {
      data->mode = EMB_BLOCKWISE_S4;
      s = prepare_blockwise(ctx, value, data);
    } else {
      data->mode = value->type == EQ_T_INT4 ? EMB_HYBRID_S4 : EMB_HYBRID_S8;
      s = prepare_hybrid(ctx, value, data);
    }
    if (s != EDGEQ_OK) return s;
  } else if (value->type == EQ_T_INT4) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "an INT4 value needs a FLOAT32 output");
  } else if (value->nq > 1) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "a per-channel value needs a FLOAT32 output");
  }
  int64_t shape[EQ_MAX_DIMS];
  shape[0] = lookup->dims[0];
  for (int32_t i = 1; i < value->ndim; ++i) shape[i] = value->dims[i];
  if ((s = mv_expect_shape(ctx, output, value->ndim, shape, "output")) != EDGEQ_OK) return s;
  if (data->rows == 0 && output->count > 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "value has no rows; LiteRT would leave the output unwritten");
  }
  data->row_bytes = data->row_elems * eq_type_size(output->type);
  node->user = data;
  return EDGEQ_OK;
}

/* LiteRT's Unpack4Bit: `count` nibbles from `src`, low nibble first, each as (int8)(nibble << 4) * (scale / 16). */
static void unpack_s4(float scale, size_t count, const uint8_t* src, float* dst) {
  const float step = scale / 16;
  size_t j = 0;
  for (; j + 1 < count; j += 2, ++src) {
    dst[j] = (float)(int8_t)(uint8_t)(*src << 4) * step;
    dst[j + 1] = (float)(int8_t)(*src & 0xF0) * step;
  }
  if (count & 1) dst[j] = (float)(int8_t)(uint8_t)(*src << 4) * step;
}

static void lookup_row(const embedding_data* d, const eq_tensor* value, size_t r, uint8_t* out_row) {
  float* dst = (float*)(void*)out_row;
  switch (d->mode) {
    case EMB_HYBRID_S8: {
      const int8_t* src = (const int8_t*)(const void*)value->data + r * d->row_elems;
      const float scale = d->scales[r];
      for (size_t j = 0; j < d->row_elems; ++j) dst[j] = (float)src[j] * scale;
      break;
    }
    case EMB_HYBRID_S4:
      unpack_s4(d->scales[r], d->row_elems, value->data + (r * d->row_elems) / 2, dst);
      break;
    case EMB_BLOCKWISE_S4: {
      const size_t nblocks = d->row_elems / d->block;
      for (size_t b = 0; b < nblocks; ++b) {
        const size_t first = r * d->row_elems + b * d->block; /* even: blocks are even */
        unpack_s4(d->scales[r * nblocks + b], d->block, value->data + first / 2, dst + b * d->block);
      }
      break;
    }
    case EMB_COPY:
      if (d->row_bytes) memcpy(out_row, value->data + r * d->row_bytes, d->row_bytes);
      break;
  }
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const embedding_data* d = node->user;
  const eq_tensor* lookup = eq_input(ctx, node, 0);
  const eq_tensor* value = eq_input(ctx, node, 1);
  uint8_t* out = eq_output(ctx, node, 0)->data;
  const int32_t* index = (const int32_t*)(const void*)lookup->data;
  if (d->rows == 0) return EDGEQ_OK;
  for (size_t i = 0; i < lookup->count; ++i) {
    const int32_t r = index[i];
    if (r < 0 || (size_t)r >= d->rows) {
      return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "lookup %d (element %zu) is outside [0, %zu)", (int)r, i, d->rows);
    }
    lookup_row(d, value, (size_t)r, out + i * d->row_bytes);
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_embedding_lookup = {prepare, invoke};
