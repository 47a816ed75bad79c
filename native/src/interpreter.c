/* The public API: load (read, check lifetimes, prepare every op, plan the arena) and invoke. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

edgeq_status eq_load_model(eq_context* ctx);
edgeq_status eq_plan_arena(eq_context* ctx);

/* Lifetimes in op indices; also rejects graphs that read a tensor nothing writes, or write one twice. */
static edgeq_status compute_lifetimes(eq_context* ctx) {
  for (int32_t i = 0; i < ctx->ninputs; ++i) {
    eq_tensor* t = &ctx->tensors[ctx->inputs[i]];
    if (t->is_constant) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "model input '%s' is a constant", t->name);
    t->first_op = 0;
    t->last_op = 0;
  }
  for (int32_t k = 0; k < ctx->nnodes; ++k) {
    eq_node* node = &ctx->nodes[k];
    ctx->current = node;
    for (int32_t i = 0; i < node->ninputs; ++i) {
      if (node->inputs[i] < 0) continue;
      eq_tensor* t = &ctx->tensors[node->inputs[i]];
      if (t->is_constant) continue;
      if (t->first_op < 0) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input %d ('%s') is neither a constant, a model input nor "
                        "written by an earlier op", (int)i, t->name);
      }
      t->last_op = k;
    }
    for (int32_t i = 0; i < node->noutputs; ++i) {
      eq_tensor* t = &ctx->tensors[node->outputs[i]];
      if (t->is_constant || t->first_op >= 0) {
        return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "output %d ('%s') is a constant, a model input or written twice",
                        (int)i, t->name);
      }
      t->first_op = k;
      t->last_op = k;
    }
  }
  ctx->current = NULL;
  for (int32_t i = 0; i < ctx->noutputs; ++i) {
    eq_tensor* t = &ctx->tensors[ctx->outputs[i]];
    if (t->first_op < 0 && !t->is_constant) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "model output '%s' is never written", t->name);
    }
    if (!t->is_constant) t->last_op = ctx->nnodes;
  }
  return EDGEQ_OK;
}

static edgeq_status prepare_all(eq_context* ctx) {
  for (int32_t k = 0; k < ctx->nnodes; ++k) {
    eq_node* node = &ctx->nodes[k];
    ctx->current = node;
    edgeq_status s = node->kernel->prepare(ctx, node);
    if (s != EDGEQ_OK) return s;
    if (node->options_broken) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "an option field lies out of bounds");
  }
  ctx->current = NULL;
  return EDGEQ_OK;
}

static void free_context(eq_context* ctx) {
  eq_alloc_block* block = ctx->allocations;
  while (block != NULL) {
    eq_alloc_block* next = block->next;
    free(block);
    block = next;
  }
}

edgeq_status edgeq_model_load(const void* data, size_t size, edgeq_model** out, char* error, size_t error_size) {
  if (error != NULL && error_size > 0) error[0] = '\0';
  if (out == NULL) return EDGEQ_ERROR_ARGUMENT;
  *out = NULL;
  edgeq_model* model = calloc(1, sizeof *model);
  if (model == NULL) {
    if (error != NULL && error_size > 0) snprintf(error, error_size, "out of memory");
    return EDGEQ_ERROR_MEMORY;
  }
  eq_context* ctx = &model->ctx;
  ctx->buf.data = data;
  ctx->buf.size = data == NULL ? 0 : size;
  edgeq_status s = eq_load_model(ctx);
  if (s == EDGEQ_OK) s = compute_lifetimes(ctx);
  if (s == EDGEQ_OK) s = prepare_all(ctx);
  if (s == EDGEQ_OK) s = eq_plan_arena(ctx);
  if (s != EDGEQ_OK) {
    if (error != NULL && error_size > 0) snprintf(error, error_size, "%s", ctx->error);
    free_context(ctx);
    free(model);
    return s;
  }
  *out = model;
  return EDGEQ_OK;
}

void edgeq_model_free(edgeq_model* model) {
  if (model == NULL) return;
  free_context(&model->ctx);
  free(model);
}

int32_t edgeq_num_inputs(const edgeq_model* model) { return model->ctx.ninputs; }
int32_t edgeq_num_outputs(const edgeq_model* model) { return model->ctx.noutputs; }
int32_t edgeq_num_tensors(const edgeq_model* model) { return model->ctx.ntensors; }
int32_t edgeq_num_ops(const edgeq_model* model) { return model->ctx.nnodes; }

int32_t edgeq_input_tensor(const edgeq_model* model, int32_t i) {
  return (i >= 0 && i < model->ctx.ninputs) ? model->ctx.inputs[i] : -1;
}

int32_t edgeq_output_tensor(const edgeq_model* model, int32_t i) {
  return (i >= 0 && i < model->ctx.noutputs) ? model->ctx.outputs[i] : -1;
}

edgeq_status edgeq_tensor_info_get(const edgeq_model* model, int32_t tensor, edgeq_tensor_info* info) {
  if (model == NULL || info == NULL || tensor < 0 || tensor >= model->ctx.ntensors) return EDGEQ_ERROR_ARGUMENT;
  const eq_tensor* t = &model->ctx.tensors[tensor];
  memset(info, 0, sizeof *info);
  info->name = t->name;
  info->type = t->type;
  info->ndim = t->ndim;
  memcpy(info->dims, t->dims, sizeof t->dims);
  info->bytes = t->bytes;
  info->num_scales = t->nq;
  info->scales = t->scale;
  info->zero_points = t->zero_point;
  info->quantized_dimension = t->qdim;
  info->is_constant = t->is_constant;
  return EDGEQ_OK;
}

edgeq_status edgeq_op_info_get(const edgeq_model* model, int32_t op, edgeq_op_info* info) {
  if (model == NULL || info == NULL || op < 0 || op >= model->ctx.nnodes) return EDGEQ_ERROR_ARGUMENT;
  const eq_node* node = &model->ctx.nodes[op];
  info->builtin_code = node->builtin;
  info->name = eq_builtin_name(node->builtin);
  info->num_inputs = node->ninputs;
  info->inputs = node->inputs;
  info->num_outputs = node->noutputs;
  info->outputs = node->outputs;
  return EDGEQ_OK;
}

void* edgeq_tensor_data(edgeq_model* model, int32_t tensor) {
  if (model == NULL || tensor < 0 || tensor >= model->ctx.ntensors) return NULL;
  return model->ctx.tensors[tensor].data;
}

edgeq_status edgeq_invoke_ops(edgeq_model* model, int32_t first, int32_t last) {
  if (model == NULL) return EDGEQ_ERROR_ARGUMENT;
  eq_context* ctx = &model->ctx;
  if (first < 0 || last > ctx->nnodes || first > last) {
    ctx->current = NULL;
    return eq_error(ctx, EDGEQ_ERROR_ARGUMENT, "op range [%d, %d) is outside [0, %d)", (int)first, (int)last,
                    (int)ctx->nnodes);
  }
  ctx->error[0] = '\0';
  for (int32_t k = first; k < last; ++k) {
    eq_node* node = &ctx->nodes[k];
    ctx->current = node;
    edgeq_status s = node->kernel->invoke(ctx, node);
    if (s != EDGEQ_OK) return s;
  }
  ctx->current = NULL;
  return EDGEQ_OK;
}

edgeq_status edgeq_invoke(edgeq_model* model) {
  if (model == NULL) return EDGEQ_ERROR_ARGUMENT;
  return edgeq_invoke_ops(model, 0, model->ctx.nnodes);
}

size_t edgeq_arena_bytes(const edgeq_model* model) { return model == NULL ? 0 : model->ctx.arena_bytes; }

size_t edgeq_persistent_bytes(const edgeq_model* model) { return model == NULL ? 0 : model->ctx.persistent_bytes; }

const char* edgeq_last_error(const edgeq_model* model) { return model == NULL ? "" : model->ctx.error; }

const char* edgeq_status_name(edgeq_status status) {
  switch (status) {
    case EDGEQ_OK:
      return "OK";
    case EDGEQ_ERROR_ARGUMENT:
      return "ERROR_ARGUMENT";
    case EDGEQ_ERROR_MALFORMED:
      return "ERROR_MALFORMED";
    case EDGEQ_ERROR_UNSUPPORTED:
      return "ERROR_UNSUPPORTED";
    case EDGEQ_ERROR_MEMORY:
      return "ERROR_MEMORY";
    case EDGEQ_ERROR_RUNTIME:
      return "ERROR_RUNTIME";
  }
  return "UNKNOWN_STATUS";
}
