/* LOGICAL_AND and LOGICAL_OR on BOOL tensors, numpy broadcasting. */
#include "broadcast.h"

static inline uint8_t op_and(const void* p, uint8_t a, uint8_t b) {
  (void)p;
  return (uint8_t)(a != 0 && b != 0);
}
static inline uint8_t op_or(const void* p, uint8_t a, uint8_t b) {
  (void)p;
  return (uint8_t)(a != 0 || b != 0);
}
EQ_BINARY_ROW(row_and, uint8_t, uint8_t, uint8_t, void, op_and)
EQ_BINARY_ROW(row_or, uint8_t, uint8_t, uint8_t, void, op_or)

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  const eq_tensor* a = eq_input(ctx, node, 0);
  const eq_tensor* b = eq_input(ctx, node, 1);
  const eq_tensor* out = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || a == NULL || b == NULL || out == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs and 1 output");
  }
  if (a->type != EQ_T_BOOL || b->type != EQ_T_BOOL || out->type != EQ_T_BOOL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "types %s, %s -> %s (BOOL only)", eq_type_name(a->type),
                    eq_type_name(b->type), eq_type_name(out->type));
  }
  eq_broadcast* bc = eq_alloc(ctx, sizeof *bc);
  if (bc == NULL) return EDGEQ_ERROR_MEMORY;
  node->user = bc;
  return eq_broadcast_prepare(ctx, a, b, out, bc);
}

static edgeq_status invoke_with(eq_context* ctx, eq_node* node, eq_binary_row_fn row) {
  eq_broadcast_run(node->user, row, NULL, eq_input(ctx, node, 0)->data, 1, eq_input(ctx, node, 1)->data, 1,
                   eq_output(ctx, node, 0)->data, 1);
  return EDGEQ_OK;
}
static edgeq_status invoke_and(eq_context* ctx, eq_node* node) { return invoke_with(ctx, node, row_and); }
static edgeq_status invoke_or(eq_context* ctx, eq_node* node) { return invoke_with(ctx, node, row_or); }

const eq_kernel eq_kernel_logical_and = {prepare, invoke_and};
const eq_kernel eq_kernel_logical_or = {prepare, invoke_or};
