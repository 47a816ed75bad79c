/* SELECT_V2: out = condition ? x : y elementwise, the three inputs broadcast numpy-style to the output's
 * shape (BOOL condition; x, y and the output of one copyable type). */
#include "movement.h"

typedef struct select_data {
  int32_t ndim;
  size_t dims[EQ_MAX_DIMS];
  size_t strides[3][EQ_MAX_DIMS]; /* condition, x, y: elements per output step, 0 where broadcast */
  size_t elem;
} select_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  const eq_tensor* in[3] = {eq_input(ctx, node, 0), eq_input(ctx, node, 1), eq_input(ctx, node, 2)};
  const eq_tensor* out = eq_output(ctx, node, 0);
  if (node->ninputs != 3 || node->noutputs != 1 || in[0] == NULL || in[1] == NULL || in[2] == NULL || out == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 3 inputs (condition, x, y) and 1 output");
  }
  if (in[0]->type != EQ_T_BOOL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "condition is %s", eq_type_name(in[0]->type));
  }
  edgeq_status s = mv_check_type(ctx, in[1], MV_COPY_TYPES, "x");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, in[1], in[2], "x", "y");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, in[1], out, "x", "output");
  if (s != EDGEQ_OK) return s;
  select_data* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  d->ndim = out->ndim;
  d->elem = eq_type_size(out->type);
  for (int32_t k = 0; k < 3; ++k) {
    if (in[k]->ndim > out->ndim) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d has a higher rank", (int)k);
  }
  for (int32_t i = out->ndim - 1; i >= 0; --i) {
    int64_t want = 1;
    for (int32_t k = 0; k < 3; ++k) {
      const int32_t dim = eq_dim(in[k], i - out->ndim);
      if (dim != 1) {
        if (want != 1 && want != dim) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "inputs do not broadcast");
        want = dim;
      }
    }
    if (out->dims[i] != want) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output dimension %d is %d, the broadcast gives %lld", (int)i,
                      (int)out->dims[i], (long long)want);
    }
    d->dims[i] = (size_t)out->dims[i];
  }
  for (int32_t k = 0; k < 3; ++k) {
    size_t stride = 1;
    for (int32_t i = out->ndim - 1; i >= 0; --i) {
      const int32_t dim = eq_dim(in[k], i - out->ndim);
      const int present = i - out->ndim + in[k]->ndim >= 0;
      d->strides[k][i] = present && dim != 1 ? stride : 0;
      if (present) stride *= (size_t)dim;
    }
  }
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const select_data* d = node->user;
  const uint8_t* cond = eq_input(ctx, node, 0)->data;
  const uint8_t* x = eq_input(ctx, node, 1)->data;
  const uint8_t* y = eq_input(ctx, node, 2)->data;
  eq_tensor* out = eq_output(ctx, node, 0);
  size_t idx[EQ_MAX_DIMS] = {0}, off[3] = {0, 0, 0};
  for (size_t n = 0; n < out->count; ++n) {
    const uint8_t* src = cond[off[0]] ? x + off[1] * d->elem : y + off[2] * d->elem;
    memcpy(out->data + n * d->elem, src, d->elem);
    for (int32_t i = d->ndim - 1; i >= 0; --i) {
      for (int k = 0; k < 3; ++k) off[k] += d->strides[k][i];
      if (++idx[i] < d->dims[i]) break;
      for (int k = 0; k < 3; ++k) off[k] -= d->strides[k][i] * d->dims[i];
      idx[i] = 0;
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_select_v2 = {prepare, invoke};
