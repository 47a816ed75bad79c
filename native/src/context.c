/* Load-time allocation, error messages, and the small accessors every kernel uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void* eq_alloc(eq_context* ctx, size_t bytes) {
  if (bytes > SIZE_MAX - 2 * EQ_ALIGN) {
    eq_error(ctx, EDGEQ_ERROR_MEMORY, "allocation of %zu bytes is too large", bytes);
    return NULL;
  }
  /* The block header is padded to EQ_ALIGN so the payload keeps malloc's alignment. */
  uint8_t* raw = calloc(1, EQ_ALIGN + bytes);
  if (raw == NULL) {
    eq_error(ctx, EDGEQ_ERROR_MEMORY, "out of memory allocating %zu bytes", bytes);
    return NULL;
  }
  eq_alloc_block* block = (eq_alloc_block*)raw;
  block->next = ctx->allocations;
  ctx->allocations = block;
  ctx->persistent_bytes += bytes;
  return raw + EQ_ALIGN;
}

edgeq_status eq_error(eq_context* ctx, edgeq_status status, const char* fmt, ...) {
  char message[384];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  if (ctx->current != NULL) {
    snprintf(ctx->error, sizeof ctx->error, "op %d (%s): %s", (int)ctx->current->index,
             eq_builtin_name(ctx->current->builtin), message);
  } else {
    snprintf(ctx->error, sizeof ctx->error, "%s", message);
  }
  return status;
}

eq_tensor* eq_input(eq_context* ctx, const eq_node* node, int32_t i) {
  if (i < 0 || i >= node->ninputs || node->inputs[i] < 0) return NULL;
  return &ctx->tensors[node->inputs[i]];
}

eq_tensor* eq_output(eq_context* ctx, const eq_node* node, int32_t i) {
  if (i < 0 || i >= node->noutputs) return NULL;
  return &ctx->tensors[node->outputs[i]];
}

int32_t eq_request_scratch(eq_context* ctx, eq_node* node, size_t bytes) {
  if (node->nscratch >= EQ_MAX_SCRATCH) {
    eq_error(ctx, EDGEQ_ERROR_MEMORY, "more than %d scratch buffers requested", EQ_MAX_SCRATCH);
    return -1;
  }
  node->scratch_bytes[node->nscratch] = bytes;
  return node->nscratch++;
}

void* eq_scratch(eq_context* ctx, const eq_node* node, int32_t slot) {
  return ctx->arena + node->scratch_offset[slot];
}

size_t eq_type_size(int32_t type) {
  switch (type) {
    case EQ_T_FLOAT32:
    case EQ_T_INT32:
      return 4;
    case EQ_T_FLOAT16:
    case EQ_T_INT16:
      return 2;
    case EQ_T_UINT8:
    case EQ_T_INT8:
    case EQ_T_BOOL:
      return 1;
    case EQ_T_INT64:
      return 8;
    default:
      return 0;
  }
}

int32_t eq_dim(const eq_tensor* t, int32_t i) {
  if (i < 0) i += t->ndim;
  if (i < 0 || i >= t->ndim) return 1;
  return t->dims[i];
}

int eq_same_shape(const eq_tensor* a, const eq_tensor* b) {
  if (a->ndim != b->ndim) return 0;
  for (int32_t i = 0; i < a->ndim; ++i) {
    if (a->dims[i] != b->dims[i]) return 0;
  }
  return 1;
}

int64_t eq_const_int(const eq_tensor* t, size_t i) {
  if (t->type == EQ_T_INT64) return ((const int64_t*)t->data)[i];
  return ((const int32_t*)t->data)[i];
}

int32_t eq_opt_i32(eq_node* node, int id, int32_t def) {
  int32_t v = def;
  if (node->has_options && fb_i32(&node->options, id, def, &v) != 0) {
    node->options_broken = 1;
    v = def;
  }
  return v;
}

float eq_opt_f32(eq_node* node, int id, float def) {
  float v = def;
  if (node->has_options && fb_f32(&node->options, id, def, &v) != 0) {
    node->options_broken = 1;
    v = def;
  }
  return v;
}

int eq_opt_bool(eq_node* node, int id, int def) {
  uint8_t v = (uint8_t)def;
  if (node->has_options && fb_u8(&node->options, id, (uint8_t)def, &v) != 0) {
    node->options_broken = 1;
    v = (uint8_t)def;
  }
  return v != 0;
}

int32_t eq_opt_i8(eq_node* node, int id, int32_t def) {
  int8_t v = (int8_t)def;
  if (node->has_options && fb_i8(&node->options, id, (int8_t)def, &v) != 0) {
    node->options_broken = 1;
    v = (int8_t)def;
  }
  return v;
}
