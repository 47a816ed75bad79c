/* MAXIMUM and MINIMUM: compare the stored integers (int8, uint8, int16, int32, int64) with numpy
 * broadcasting. LiteRT does no requantization here (the converter gives inputs and output one encoding),
 * so neither do we, whatever the quantization says. */
#include "elementwise.h"

typedef struct minmax_data {
  eq_broadcast bc;
  eq_binary_row_fn row;
  size_t size;
} minmax_data;

#define MINMAX_ROWS(T, SUFFIX)                                                                   \
  static inline T max_##SUFFIX(const void* p, T a, T b) {                                      \
    (void)p;                                                                                    \
    return a > b ? a : b;                                                                       \
  }                                                                                             \
  static inline T min_##SUFFIX(const void* p, T a, T b) {                                      \
    (void)p;                                                                                    \
    return a < b ? a : b;                                                                       \
  }                                                                                             \
  EQ_BINARY_ROW(max_row_##SUFFIX, T, T, T, void, max_##SUFFIX)                                  \
  EQ_BINARY_ROW(min_row_##SUFFIX, T, T, T, void, min_##SUFFIX)

MINMAX_ROWS(int8_t, s8)
MINMAX_ROWS(uint8_t, u8)
MINMAX_ROWS(int16_t, s16)
MINMAX_ROWS(int32_t, s32)
MINMAX_ROWS(int64_t, s64)

static edgeq_status prepare(eq_context* ctx, eq_node* node, int is_max) {
  eq_tensor* in[2] = {NULL, NULL};
  eq_tensor* out = NULL;
  edgeq_status s = ew_operands(ctx, node, 2, in, &out);
  if (s != EDGEQ_OK) return s;
  if (in[0]->type != in[1]->type || out->type != in[0]->type) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input types %s and %s and output type %s differ",
                    eq_type_name(in[0]->type), eq_type_name(in[1]->type), eq_type_name(out->type));
  }
  minmax_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  if ((s = eq_broadcast_prepare(ctx, in[0], in[1], out, &data->bc)) != EDGEQ_OK) return s;
  data->size = eq_type_size(out->type);
  switch (out->type) {
    case EQ_T_INT8:
      data->row = is_max ? max_row_s8 : min_row_s8;
      return EDGEQ_OK;
    case EQ_T_UINT8:
      data->row = is_max ? max_row_u8 : min_row_u8;
      return EDGEQ_OK;
    case EQ_T_INT16:
      data->row = is_max ? max_row_s16 : min_row_s16;
      return EDGEQ_OK;
    case EQ_T_INT32:
      data->row = is_max ? max_row_s32 : min_row_s32;
      return EDGEQ_OK;
    case EQ_T_INT64:
      data->row = is_max ? max_row_s64 : min_row_s64;
      return EDGEQ_OK;
    default:
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "type %s", eq_type_name(out->type));
  }
}

static edgeq_status prepare_max(eq_context* ctx, eq_node* node) { return prepare(ctx, node, 1); }
static edgeq_status prepare_min(eq_context* ctx, eq_node* node) { return prepare(ctx, node, 0); }

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const minmax_data* data = node->user;
  const eq_tensor* in1 = eq_input(ctx, node, 0);
  const eq_tensor* in2 = eq_input(ctx, node, 1);
  eq_tensor* out = eq_output(ctx, node, 0);
  eq_broadcast_run(&data->bc, data->row, NULL, in1->data, data->size, in2->data, data->size, out->data, data->size);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_maximum = {prepare_max, invoke};
const eq_kernel eq_kernel_minimum = {prepare_min, invoke};
