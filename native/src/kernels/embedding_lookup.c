/* EMBEDDING_LOOKUP: output row i is row lookup[i] of the value table (INT32 lookups, table rank >= 2).
 * Same input and output type: a byte copy of rows. INT8/UINT8 table with FLOAT32 output: LiteRT's
 * hybrid path, value * scale in float, reading the table as int8 even when it is UINT8, with the
 * row's scale when the table is quantized per row. A lookup outside the table is an invoke-time
 * EDGEQ_ERROR_RUNTIME, as in LiteRT. */
#include "movement.h"

typedef struct embedding_data {
  size_t rows, row_elems, row_bytes;
  int hybrid;
  float* scales; /* hybrid: one per row */
} embedding_data;

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
  edgeq_status s = mv_check_type(ctx, value, MV_COPY_TYPES, "value");
  if (s != EDGEQ_OK) return s;
  embedding_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->rows = (size_t)value->dims[0];
  data->row_elems = mv_inner(value, 0);
  if (value->type != output->type) {
    if (output->type != EQ_T_FLOAT32 || (value->type != EQ_T_INT8 && value->type != EQ_T_UINT8)) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "value %s with output %s; edgeq copies equal types or "
                      "dequantizes INT8/UINT8 to FLOAT32", eq_type_name(value->type), eq_type_name(output->type));
    }
    data->hybrid = 1;
    data->scales = eq_alloc(ctx, sizeof(float) * (data->rows ? data->rows : 1));
    if (data->scales == NULL) return EDGEQ_ERROR_MEMORY;
    if (value->nq > 0 && value->zero_point[0] != 0) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "value zero point %lld; LiteRT's hybrid lookup needs 0",
                      (long long)value->zero_point[0]);
    }
    if (value->nq > 1 && (value->qdim != 0 || (size_t)value->nq != data->rows)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "per-channel value must be quantized along dimension 0");
    }
    /* params.scale: the single scale, 0 when unquantized; per row scales otherwise */
    for (size_t r = 0; r < data->rows; ++r) data->scales[r] = value->nq > 1 ? value->scale[r] : mv_scale(value);
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
    if (d->hybrid) {
      const int8_t* src = (const int8_t*)(const void*)value->data + (size_t)r * d->row_elems;
      float* dst = (float*)(void*)out + i * d->row_elems;
      const float scale = d->scales[r];
      for (size_t j = 0; j < d->row_elems; ++j) dst[j] = (float)src[j] * scale;
    } else if (d->row_bytes) {
      memcpy(out + i * d->row_bytes, value->data + (size_t)r * d->row_bytes, d->row_bytes);
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_embedding_lookup = {prepare, invoke};
