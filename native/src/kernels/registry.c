/* The one place kernels are registered: each kernel file defines `const eq_kernel eq_kernel_<op>` and
 * list.h names it here; variants of one builtin (float32 ones in list_f32.h, FULLY_CONNECTED with blockwise
 * INT4 weights) are picked by eq_node_kernel. */
#include "../builtin_ops.h"
#include "../internal.h"

#define EQ_KERNEL(op, symbol) extern const eq_kernel symbol;
#include "list.h"
#include "list_f32.h"
#undef EQ_KERNEL

typedef struct registration {
  int32_t builtin;
  const eq_kernel* kernel;
} registration;

static const registration registry[] = {
#define EQ_KERNEL(op, symbol) {EQ_OP_##op, &symbol},
#include "list.h"
#undef EQ_KERNEL
};

static const registration float_registry[] = {
#define EQ_KERNEL(op, symbol) {EQ_OP_##op, &symbol},
#include "list_f32.h"
#undef EQ_KERNEL
};

/* Variants of a builtin, chosen by the encodings of the node's tensors. */
extern const eq_kernel eq_kernel_fully_connected_f32_qb4w;

const eq_kernel* eq_node_kernel(const eq_context* ctx, const eq_node* node) {
  if (node->builtin == EQ_OP_FULLY_CONNECTED && node->ninputs >= 2 && node->inputs[1] >= 0 &&
      ctx->tensors[node->inputs[1]].block_size > 0) {
    return &eq_kernel_fully_connected_f32_qb4w;
  }
  if (node->ninputs >= 1 && node->inputs[0] >= 0 && ctx->tensors[node->inputs[0]].type == EQ_T_FLOAT32) {
    for (size_t i = 0; i < sizeof float_registry / sizeof *float_registry; ++i) {
      if (float_registry[i].builtin == node->builtin) return float_registry[i].kernel;
    }
  }
  return eq_find_kernel(node->builtin);
}

const eq_kernel* eq_find_kernel(int32_t builtin) {
  for (size_t i = 0; i < sizeof registry / sizeof *registry; ++i) {
    if (registry[i].builtin == builtin) return registry[i].kernel;
  }
  return NULL;
}
