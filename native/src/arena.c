/* One arena for every activation and scratch buffer, planned ahead from lifetimes: buffers are placed
 * largest first, each at the lowest offset that does not overlap a placed buffer whose lifetime
 * intersects its own (the greedy-by-size plan of TFLite Micro). */
#include <stdlib.h>

#include "internal.h"

typedef struct plan_item {
  size_t bytes;
  int32_t first, last;
  size_t* offset; /* where the result goes */
  int32_t order;  /* tie-break, so equal sizes place deterministically */
} plan_item;

static int by_size_desc(const void* a, const void* b) {
  const plan_item* x = a;
  const plan_item* y = b;
  if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
  return x->order - y->order;
}

static size_t align_up(size_t n) { return (n + EQ_ALIGN - 1) & ~(size_t)(EQ_ALIGN - 1); }

static int by_offset(const void* a, const void* b) {
  const plan_item* x = *(plan_item* const*)a;
  const plan_item* y = *(plan_item* const*)b;
  if (*x->offset != *y->offset) return *x->offset < *y->offset ? -1 : 1;
  return 0;
}

static edgeq_status place(eq_context* ctx, plan_item* items, int32_t n, size_t* total) {
  qsort(items, (size_t)n, sizeof *items, by_size_desc);
  plan_item** live = eq_alloc(ctx, sizeof(plan_item*) * (size_t)(n ? n : 1));
  if (live == NULL) return EDGEQ_ERROR_MEMORY;
  size_t end = 0;
  for (int32_t i = 0; i < n; ++i) {
    size_t bytes = align_up(items[i].bytes);
    int32_t m = 0;
    for (int32_t j = 0; j < i; ++j) {
      if (items[j].last >= items[i].first && items[j].first <= items[i].last) live[m++] = &items[j];
    }
    qsort(live, (size_t)m, sizeof *live, by_offset);
    size_t offset = 0; /* first gap, in offset order, that holds the buffer */
    for (int32_t j = 0; j < m; ++j) {
      size_t p_start = *live[j]->offset, p_end = p_start + align_up(live[j]->bytes);
      if (p_start >= offset + bytes) break;
      if (p_end > offset) offset = p_end;
    }
    if (offset > SIZE_MAX / 4 || bytes > SIZE_MAX / 4) return eq_error(ctx, EDGEQ_ERROR_MEMORY, "arena too large");
    *items[i].offset = offset;
    if (offset + bytes > end) end = offset + bytes;
  }
  *total = end;
  return EDGEQ_OK;
}

edgeq_status eq_plan_arena(eq_context* ctx) {
  int32_t n = 0;
  for (int32_t t = 0; t < ctx->ntensors; ++t) n += (ctx->tensors[t].first_op >= 0 && !ctx->tensors[t].is_constant);
  for (int32_t k = 0; k < ctx->nnodes; ++k) n += ctx->nodes[k].nscratch;
  plan_item* items = eq_alloc(ctx, sizeof(plan_item) * (size_t)(n ? n : 1));
  if (items == NULL) return EDGEQ_ERROR_MEMORY;
  int32_t m = 0;
  for (int32_t t = 0; t < ctx->ntensors; ++t) {
    eq_tensor* tensor = &ctx->tensors[t];
    if (tensor->first_op < 0 || tensor->is_constant) continue;
    items[m] = (plan_item){tensor->bytes, tensor->first_op, tensor->last_op, &tensor->arena_offset, m};
    ++m;
  }
  for (int32_t k = 0; k < ctx->nnodes; ++k) {
    eq_node* node = &ctx->nodes[k];
    for (int32_t s = 0; s < node->nscratch; ++s) {
      items[m] = (plan_item){node->scratch_bytes[s], k, k, &node->scratch_offset[s], m};
      ++m;
    }
  }
  size_t total = 0;
  edgeq_status status = place(ctx, items, m, &total);
  if (status != EDGEQ_OK) return status;
  ctx->arena_bytes = total;
  ctx->arena = eq_alloc(ctx, total ? total : EQ_ALIGN);
  if (ctx->arena == NULL) return EDGEQ_ERROR_MEMORY;
  ctx->persistent_bytes -= total ? total : EQ_ALIGN;
  for (int32_t t = 0; t < ctx->ntensors; ++t) {
    eq_tensor* tensor = &ctx->tensors[t];
    if (tensor->first_op >= 0 && !tensor->is_constant) tensor->data = ctx->arena + tensor->arena_offset;
  }
  return EDGEQ_OK;
}
