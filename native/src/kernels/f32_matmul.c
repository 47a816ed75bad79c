/* float32 FULLY_CONNECTED (float weights, constant or computed) and BATCH_MATMUL as LiteRT's reference
 * kernels compute them: each output a float sum of products in depth order (then the bias and the fused
 * activation for FULLY_CONNECTED). BATCH_MATMUL broadcasts batch dimensions (ranks 2..5) and honours
 * adj_x / adj_y. */
#include "f32_common.h"
#include "matmul_common.h"

/* FullyConnectedOptions and BatchMatMulOptions field ids in schema.fbs. */
enum { FC_OPT_ACTIVATION = 0, FC_OPT_WEIGHTS_FORMAT = 1, FC_OPT_KEEP_NUM_DIMS = 2 };
enum { BMM_OPT_ADJ_X = 0, BMM_OPT_ADJ_Y = 1 };

typedef struct f32_fc {
  size_t batches, units, depth;
  f32_range range;
} f32_fc;

static edgeq_status fc_prepare(eq_context* ctx, eq_node* node) {
  const eq_tensor* input = eq_input(ctx, node, 0);
  const eq_tensor* filter = eq_input(ctx, node, 1);
  const eq_tensor* bias = eq_input(ctx, node, 2);
  const eq_tensor* output = eq_output(ctx, node, 0);
  if ((node->ninputs != 2 && node->ninputs != 3) || node->noutputs != 1 || input == NULL || filter == NULL ||
      output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects input, filter, optional bias and 1 output");
  }
  if (filter->type != EQ_T_FLOAT32) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "FLOAT32 input with a %s filter: hybrid FULLY_CONNECTED is not "
                    "supported", eq_type_name(filter->type));
  }
  edgeq_status s = f32_check_types(ctx, node, 0);
  if (s != EDGEQ_OK) return s;
  if (eq_opt_i8(node, FC_OPT_WEIGHTS_FORMAT, 0) != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "float filter in a shuffled weights format");
  }
  if (filter->ndim != 2 || filter->dims[1] == 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "filter '%s' must be 2-D with a non-zero depth", filter->name);
  }
  f32_fc* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  if ((s = f32_activation(ctx, eq_opt_i8(node, FC_OPT_ACTIVATION, EQ_ACT_NONE), &d->range)) != EDGEQ_OK) return s;
  d->units = (size_t)filter->dims[0];
  d->depth = (size_t)filter->dims[1];
  if (input->count % d->depth != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has %zu values, not a multiple of the filter's depth %zu",
                    input->count, d->depth);
  }
  d->batches = input->count / d->depth;
  const int keep_num_dims = eq_opt_bool(node, FC_OPT_KEEP_NUM_DIMS, 0);
  if (output->ndim < 1 || (size_t)output->dims[output->ndim - 1] != d->units ||
      output->count != d->batches * d->units || (keep_num_dims && output->ndim != input->ndim)) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output '%s' does not hold %zu rows of %zu units", output->name,
                    d->batches, d->units);
  }
  if (bias != NULL && bias->count != d->units) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "bias has %zu values for %zu units", bias->count, d->units);
  }
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status fc_invoke(eq_context* ctx, eq_node* node) {
  const f32_fc* d = node->user;
  const float* x = (const float*)eq_input(ctx, node, 0)->data;
  const float* w = (const float*)eq_input(ctx, node, 1)->data;
  const eq_tensor* bias_t = eq_input(ctx, node, 2);
  const float* bias = bias_t != NULL ? (const float*)bias_t->data : NULL;
  float* y = (float*)eq_output(ctx, node, 0)->data;
  for (size_t b = 0; b < d->batches; ++b) {
    const float* row = x + b * d->depth;
    for (size_t o = 0; o < d->units; ++o) {
      const float* wrow = w + o * d->depth;
      float total = 0.0f;
      for (size_t k = 0; k < d->depth; ++k) total += row[k] * wrow[k];
      y[b * d->units + o] = f32_clamp(total + (bias != NULL ? bias[o] : 0.0f), &d->range);
    }
  }
  return EDGEQ_OK;
}

typedef struct f32_bmm {
  size_t batch[BMM_RANK - 2];                          /* output batch dimensions */
  size_t lhs_batch[BMM_RANK - 2], rhs_batch[BMM_RANK - 2]; /* element strides, 0 where broadcast */
  size_t rows, cols, depth;
  size_t lhs_row, lhs_k, rhs_k, rhs_col; /* element strides inside one matrix */
} f32_bmm;

static edgeq_status bmm_prepare(eq_context* ctx, eq_node* node) {
  const eq_tensor* lhs = eq_input(ctx, node, 0);
  const eq_tensor* rhs = eq_input(ctx, node, 1);
  const eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || lhs == NULL || rhs == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs and 1 output");
  }
  if (rhs->type != EQ_T_FLOAT32) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "FLOAT32 LHS with a %s RHS: hybrid BATCH_MATMUL is not supported",
                    eq_type_name(rhs->type));
  }
  edgeq_status s = f32_check_types(ctx, node, 0);
  if (s != EDGEQ_OK) return s;
  const int adj_x = eq_opt_bool(node, BMM_OPT_ADJ_X, 0), adj_y = eq_opt_bool(node, BMM_OPT_ADJ_Y, 0);
  int32_t l[BMM_RANK], r[BMM_RANK], o[BMM_RANK];
  if ((s = bmm_shapes(ctx, lhs, rhs, output, adj_x, adj_y, l, r, o)) != EDGEQ_OK) return s;
  f32_bmm* d = eq_alloc(ctx, sizeof *d);
  if (d == NULL) return EDGEQ_ERROR_MEMORY;
  size_t ls = (size_t)l[3] * (size_t)l[4], rs = (size_t)r[3] * (size_t)r[4];
  for (int i = BMM_RANK - 3; i >= 0; --i) {
    d->batch[i] = (size_t)o[i];
    d->lhs_batch[i] = l[i] == 1 ? 0 : ls;
    d->rhs_batch[i] = r[i] == 1 ? 0 : rs;
    ls *= (size_t)l[i];
    rs *= (size_t)r[i];
  }
  d->rows = (size_t)o[3];
  d->cols = (size_t)o[4];
  d->depth = (size_t)(adj_x ? l[3] : l[4]);
  d->lhs_row = adj_x ? 1 : (size_t)l[4];
  d->lhs_k = adj_x ? (size_t)l[4] : 1;
  d->rhs_k = adj_y ? 1 : (size_t)r[4];
  d->rhs_col = adj_y ? (size_t)r[4] : 1;
  node->user = d;
  return EDGEQ_OK;
}

static edgeq_status bmm_invoke(eq_context* ctx, eq_node* node) {
  const f32_bmm* d = node->user;
  const float* lhs = (const float*)eq_input(ctx, node, 0)->data;
  const float* rhs = (const float*)eq_input(ctx, node, 1)->data;
  float* y = (float*)eq_output(ctx, node, 0)->data;
  for (size_t b0 = 0; b0 < d->batch[0]; ++b0) {
    for (size_t b1 = 0; b1 < d->batch[1]; ++b1) {
      for (size_t b2 = 0; b2 < d->batch[2]; ++b2) {
        const float* a = lhs + b0 * d->lhs_batch[0] + b1 * d->lhs_batch[1] + b2 * d->lhs_batch[2];
        const float* bm = rhs + b0 * d->rhs_batch[0] + b1 * d->rhs_batch[1] + b2 * d->rhs_batch[2];
        for (size_t i = 0; i < d->rows; ++i) {
          for (size_t j = 0; j < d->cols; ++j) {
            float total = 0.0f;
            for (size_t k = 0; k < d->depth; ++k) {
              total += a[i * d->lhs_row + k * d->lhs_k] * bm[k * d->rhs_k + j * d->rhs_col];
            }
            *y++ = total;
          }
        }
      }
    }
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_f32_fully_connected = {fc_prepare, fc_invoke};
const eq_kernel eq_kernel_f32_batch_matmul = {bmm_prepare, bmm_invoke};
