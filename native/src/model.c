/* Reads a .tflite flatbuffer into tensors and nodes, checking every field before it is used. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin_ops.h"
#include "internal.h"

/* Field ids from TFLite's schema.fbs. */
enum { MODEL_OPERATOR_CODES = 1, MODEL_SUBGRAPHS = 2, MODEL_BUFFERS = 4 };
enum { SUBGRAPH_TENSORS = 0, SUBGRAPH_INPUTS = 1, SUBGRAPH_OUTPUTS = 2, SUBGRAPH_OPERATORS = 3 };
enum {
  TENSOR_SHAPE = 0,
  TENSOR_TYPE = 1,
  TENSOR_BUFFER = 2,
  TENSOR_NAME = 3,
  TENSOR_QUANTIZATION = 4,
  TENSOR_IS_VARIABLE = 5,
  TENSOR_SPARSITY = 6
};
enum { QUANT_SCALE = 2, QUANT_ZERO_POINT = 3, QUANT_DETAILS_TYPE = 4, QUANT_DETAILS = 5, QUANT_QUANTIZED_DIMENSION = 6 };
enum { DETAILS_BLOCKWISE = 2 }; /* QuantizationDetails union: 1 CustomQuantization, 2 BlockwiseQuantization */
enum { BLOCKWISE_SCALES = 0, BLOCKWISE_ZERO_POINTS = 1, BLOCKWISE_BLOCK_SIZE = 2 };
enum { BUFFER_DATA = 0, BUFFER_OFFSET = 1, BUFFER_SIZE = 2 };
enum { OPCODE_DEPRECATED_BUILTIN = 0, OPCODE_CUSTOM = 1, OPCODE_VERSION = 2, OPCODE_BUILTIN = 3 };
enum { OP_OPCODE_INDEX = 0, OP_INPUTS = 1, OP_OUTPUTS = 2, OP_OPTIONS_TYPE = 3, OP_OPTIONS = 4 };
enum { BUILTIN_CUSTOM = 32 };

#define MAX_TENSOR_BYTES ((size_t)1 << 31)
#define MAX_NAME 255

static edgeq_status malformed(eq_context* ctx, const char* what) {
  return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "malformed model: %s", what);
}

static char* copy_name(eq_context* ctx, const char* s, uint32_t len) {
  if (len > MAX_NAME) len = MAX_NAME;
  char* out = eq_alloc(ctx, (size_t)len + 1);
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < len; ++i) {
    char c = s[i];
    if (c == '\0') break;
    out[i] = (c >= 32 && c < 127) ? c : '?';
  }
  return out;
}

/* A BlockwiseQuantization table: LiteRT ignores the scale and zero_point vectors then, and so does edgeq.
 * Only the table's bounds and tensor indices are checked here; the kernel reading the weight checks the
 * rest (types, shapes, values) and names the op. */
static edgeq_status load_blockwise(eq_context* ctx, eq_tensor* t, const fb_table* q, int32_t index) {
  fb_table details;
  int present;
  int32_t scales, zero_points, block_size;
  if (fb_table_field(q, QUANT_DETAILS, &details, &present) != 0 ||
      (present && (fb_i32(&details, BLOCKWISE_SCALES, 0, &scales) != 0 ||
                   fb_i32(&details, BLOCKWISE_ZERO_POINTS, 0, &zero_points) != 0 ||
                   fb_i32(&details, BLOCKWISE_BLOCK_SIZE, 0, &block_size) != 0))) {
    return malformed(ctx, "blockwise quantization table out of bounds");
  }
  if (!present) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "tensor %d ('%s') says blockwise quantization but has no table",
                    (int)index, t->name);
  }
  if (block_size <= 0 || scales < 0 || scales >= ctx->ntensors || zero_points < -1 || zero_points >= ctx->ntensors) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED,
                    "tensor %d ('%s') has a blockwise table with block size %d, scales tensor %d, zero points tensor "
                    "%d (of %d tensors)", (int)index, t->name, (int)block_size, (int)scales, (int)zero_points,
                    (int)ctx->ntensors);
  }
  t->block_size = block_size;
  t->block_scales = scales;
  t->block_zero_points = zero_points;
  return EDGEQ_OK;
}

static edgeq_status load_quantization(eq_context* ctx, eq_tensor* t, const fb_table* q, int32_t index) {
  fb_vector scales, zero_points;
  uint8_t details_type;
  int32_t qdim;
  if (fb_vector_field(q, QUANT_SCALE, 4, &scales) != 0 || fb_vector_field(q, QUANT_ZERO_POINT, 8, &zero_points) != 0 ||
      fb_u8(q, QUANT_DETAILS_TYPE, 0, &details_type) != 0 || fb_i32(q, QUANT_QUANTIZED_DIMENSION, 0, &qdim) != 0) {
    return malformed(ctx, "quantization parameters out of bounds");
  }
  if (details_type == DETAILS_BLOCKWISE) return load_blockwise(ctx, t, q, index);
  if (details_type != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "tensor %d ('%s') has quantization details of type %d (only "
                    "BlockwiseQuantization is supported)", (int)index, t->name, (int)details_type);
  }
  if (scales.length == 0) return EDGEQ_OK; /* min/max only: not quantized for a kernel's purposes */
  if (zero_points.length != scales.length) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "tensor %d ('%s') has %u scales but %u zero points", (int)index,
                    t->name, scales.length, zero_points.length);
  }
  if (scales.length > 1) {
    if (qdim < 0 || qdim >= t->ndim || (uint32_t)t->dims[qdim] != scales.length) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED,
                      "tensor %d ('%s') has %u scales but quantized dimension %d does not have that many entries",
                      (int)index, t->name, scales.length, (int)qdim);
    }
  }
  t->nq = (int32_t)scales.length;
  t->qdim = scales.length > 1 ? qdim : 0;
  t->scale = eq_alloc(ctx, sizeof(float) * scales.length);
  t->zero_point = eq_alloc(ctx, sizeof(int64_t) * scales.length);
  if (t->scale == NULL || t->zero_point == NULL) return EDGEQ_ERROR_MEMORY;
  for (uint32_t i = 0; i < scales.length; ++i) {
    t->scale[i] = fb_vec_f32(&scales, i);
    t->zero_point[i] = fb_vec_i64(&zero_points, i);
  }
  return EDGEQ_OK;
}

/* Points t->data at the buffer's bytes, which must be exactly the tensor's size; copies them when the
 * file leaves them misaligned for the element type. */
static edgeq_status load_constant(eq_context* ctx, eq_tensor* t, const fb_vector* buffers, uint32_t b, int32_t index) {
  fb_table buffer;
  fb_vector data;
  uint64_t offset, size;
  if (fb_vector_table(buffers, b, &buffer) != 0 || fb_vector_field(&buffer, BUFFER_DATA, 1, &data) != 0 ||
      fb_u64(&buffer, BUFFER_OFFSET, 0, &offset) != 0 || fb_u64(&buffer, BUFFER_SIZE, 0, &size) != 0) {
    return malformed(ctx, "buffer table out of bounds");
  }
  const uint8_t* bytes = NULL;
  size_t nbytes = 0;
  if (data.length > 0) {
    bytes = ctx->buf.data + data.pos;
    nbytes = data.length;
  } else if (offset > 1) {
    if (offset > ctx->buf.size || size > ctx->buf.size - offset) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "tensor %d ('%s'): buffer %u lies outside the file", (int)index,
                      t->name, b);
    }
    bytes = ctx->buf.data + offset;
    nbytes = (size_t)size;
  }
  if (bytes == NULL) return EDGEQ_OK; /* no data: an activation */
  if (nbytes != t->bytes) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "tensor %d ('%s') needs %zu bytes but its buffer holds %zu", (int)index,
                    t->name, t->bytes, nbytes);
  }
  size_t align = eq_type_size(t->type);
  if (align > 8) align = 8;
  if (align > 1 && ((uintptr_t)bytes % align) != 0) {
    uint8_t* copy = eq_alloc(ctx, nbytes);
    if (copy == NULL) return EDGEQ_ERROR_MEMORY;
    memcpy(copy, bytes, nbytes);
    bytes = copy;
  }
  t->data = (uint8_t*)bytes; /* kernels never write constants */
  t->is_constant = 1;
  return EDGEQ_OK;
}

static edgeq_status load_tensor(eq_context* ctx, eq_tensor* t, const fb_table* tt, const fb_vector* buffers,
                                int32_t index) {
  fb_vector shape;
  int8_t type;
  uint32_t buffer;
  uint8_t is_variable;
  const char* name;
  uint32_t name_len;
  if (fb_vector_field(tt, TENSOR_SHAPE, 4, &shape) != 0 || fb_i8(tt, TENSOR_TYPE, 0, &type) != 0 ||
      fb_u32(tt, TENSOR_BUFFER, 0, &buffer) != 0 || fb_u8(tt, TENSOR_IS_VARIABLE, 0, &is_variable) != 0 ||
      fb_string_field(tt, TENSOR_NAME, &name, &name_len) != 0) {
    return malformed(ctx, "tensor table out of bounds");
  }
  t->name = copy_name(ctx, name, name_len);
  if (t->name == NULL) return EDGEQ_ERROR_MEMORY;
  t->type = type;
  t->first_op = t->last_op = -1;
  if (shape.length > EQ_MAX_DIMS) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "tensor %d ('%s') has rank %u; at most %d is supported", (int)index,
                    t->name, shape.length, EQ_MAX_DIMS);
  }
  t->ndim = (int32_t)shape.length;
  size_t count = 1;
  for (uint32_t i = 0; i < shape.length; ++i) {
    int32_t d = fb_vec_i32(&shape, i);
    if (d < 0) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "tensor %d ('%s') has negative dimension %d", (int)index, t->name,
                      (int)d);
    }
    t->dims[i] = d;
    if (d != 0 && count > MAX_TENSOR_BYTES / (size_t)d) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "tensor %d ('%s') is larger than 2 GiB", (int)index, t->name);
    }
    count *= (size_t)d;
  }
  t->count = count;
  if (type == EQ_T_INT4) {
    t->bytes = (count + 1) / 2;
  } else {
    size_t size = eq_type_size(type);
    if (size == 0) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "tensor %d ('%s') has type %s, which edgeq does not support",
                      (int)index, t->name, eq_type_name(type));
    }
    if (count > MAX_TENSOR_BYTES / size) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "tensor %d ('%s') is larger than 2 GiB", (int)index, t->name);
    }
    t->bytes = count * size;
  }
  if (is_variable) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "tensor %d ('%s') is a variable (stateful) tensor", (int)index,
                    t->name);
  }
  if (fb_has(tt, TENSOR_SPARSITY)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "tensor %d ('%s') is sparse; densify it first", (int)index, t->name);
  }
  if (buffer >= buffers->length && buffer != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "tensor %d ('%s') refers to buffer %u of %u", (int)index, t->name,
                    buffer, buffers->length);
  }
  if (buffer != 0) {
    edgeq_status s = load_constant(ctx, t, buffers, buffer, index);
    if (s != EDGEQ_OK) return s;
  }
  fb_table q;
  int has_q;
  if (fb_table_field(tt, TENSOR_QUANTIZATION, &q, &has_q) != 0) return malformed(ctx, "quantization table out of bounds");
  if (has_q) return load_quantization(ctx, t, &q, index);
  return EDGEQ_OK;
}

static edgeq_status load_index_list(eq_context* ctx, const fb_table* table, int id, int allow_omitted, int32_t** out,
                                    int32_t* n, const char* what) {
  fb_vector v;
  if (fb_vector_field(table, id, 4, &v) != 0) return malformed(ctx, what);
  *n = (int32_t)v.length;
  *out = eq_alloc(ctx, sizeof(int32_t) * (v.length ? v.length : 1));
  if (*out == NULL) return EDGEQ_ERROR_MEMORY;
  for (uint32_t i = 0; i < v.length; ++i) {
    int32_t k = fb_vec_i32(&v, i);
    if (k < -1 || k >= ctx->ntensors || (k == -1 && !allow_omitted)) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "malformed model: %s lists tensor %d of %d", what, (int)k,
                      (int)ctx->ntensors);
    }
    (*out)[i] = k;
  }
  return EDGEQ_OK;
}

static edgeq_status load_node(eq_context* ctx, eq_node* node, const fb_table* ot, const fb_vector* opcodes) {
  uint32_t opcode_index;
  uint8_t options_type;
  if (fb_u32(ot, OP_OPCODE_INDEX, 0, &opcode_index) != 0 || fb_u8(ot, OP_OPTIONS_TYPE, 0, &options_type) != 0) {
    return malformed(ctx, "operator table out of bounds");
  }
  fb_table code;
  int8_t deprecated;
  int32_t builtin, version;
  if (opcode_index >= opcodes->length || fb_vector_table(opcodes, opcode_index, &code) != 0 ||
      fb_i8(&code, OPCODE_DEPRECATED_BUILTIN, 0, &deprecated) != 0 || fb_i32(&code, OPCODE_BUILTIN, 0, &builtin) != 0 ||
      fb_i32(&code, OPCODE_VERSION, 1, &version) != 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "malformed model: op %d has a bad operator code %u", (int)node->index,
                    opcode_index);
  }
  node->builtin = builtin > deprecated ? builtin : deprecated;
  node->version = version;
  node->options_type = options_type;
  if (node->builtin == BUILTIN_CUSTOM) {
    const char* name;
    uint32_t len;
    if (fb_string_field(&code, OPCODE_CUSTOM, &name, &len) != 0) return malformed(ctx, "custom code out of bounds");
    char* custom = copy_name(ctx, name, len);
    if (custom == NULL) return EDGEQ_ERROR_MEMORY;
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "op %d is the custom op '%s', which edgeq cannot run",
                    (int)node->index, custom);
  }
  int has_options;
  if (fb_table_field(ot, OP_OPTIONS, &node->options, &has_options) != 0) return malformed(ctx, "op options out of bounds");
  /* LiteRT parses a table of another union type as absent (defaults); so does edgeq. */
  const int32_t expected = eq_expected_options_type(node->builtin);
  node->has_options = has_options && (expected < 0 || expected == options_type);
  edgeq_status s = load_index_list(ctx, ot, OP_INPUTS, 1, &node->inputs, &node->ninputs, "an op's inputs");
  if (s == EDGEQ_OK) s = load_index_list(ctx, ot, OP_OUTPUTS, 0, &node->outputs, &node->noutputs, "an op's outputs");
  if (s != EDGEQ_OK) return s;
  node->kernel = eq_node_kernel(ctx, node);
  if (node->kernel == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "op %d is %s (builtin %d), which edgeq does not implement",
                    (int)node->index, eq_builtin_name(node->builtin), (int)node->builtin);
  }
  /* Only FULLY_CONNECTED's filter and EMBEDDING_LOOKUP's table may be blockwise: other kernels would read
   * its integers without scales. */
  for (int32_t i = 0; i < node->ninputs; ++i) {
    const eq_tensor* t = node->inputs[i] >= 0 ? &ctx->tensors[node->inputs[i]] : NULL;
    const int reads_blocks =
        (node->builtin == EQ_OP_FULLY_CONNECTED || node->builtin == EQ_OP_EMBEDDING_LOOKUP) && i == 1;
    if (t != NULL && t->block_size > 0 && !reads_blocks) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED,
                      "op %d (%s) reads blockwise-quantized tensor '%s' as input %d; only a FULLY_CONNECTED filter "
                      "or an EMBEDDING_LOOKUP table can be blockwise", (int)node->index, eq_builtin_name(node->builtin),
                      t->name, (int)i);
    }
  }
  return EDGEQ_OK;
}

edgeq_status eq_load_model(eq_context* ctx) {
  fb_table model, subgraph;
  fb_vector opcodes, subgraphs, buffers, tensors, operators;
  if (fb_root(&ctx->buf, &model) != 0) return malformed(ctx, "not a flatbuffer (bad root table)");
  if (ctx->buf.size >= 8 && memcmp(ctx->buf.data + 4, "TFL3", 4) != 0) {
    return malformed(ctx, "file identifier is not TFL3 (not a .tflite file)");
  }
  if (fb_vector_field(&model, MODEL_OPERATOR_CODES, 4, &opcodes) != 0 ||
      fb_vector_field(&model, MODEL_SUBGRAPHS, 4, &subgraphs) != 0 ||
      fb_vector_field(&model, MODEL_BUFFERS, 4, &buffers) != 0) {
    return malformed(ctx, "model table out of bounds");
  }
  if (subgraphs.length == 0 || fb_vector_table(&subgraphs, 0, &subgraph) != 0) return malformed(ctx, "no subgraph");
  if (fb_vector_field(&subgraph, SUBGRAPH_TENSORS, 4, &tensors) != 0 ||
      fb_vector_field(&subgraph, SUBGRAPH_OPERATORS, 4, &operators) != 0) {
    return malformed(ctx, "subgraph table out of bounds");
  }
  ctx->ntensors = (int32_t)tensors.length;
  ctx->nnodes = (int32_t)operators.length;
  ctx->tensors = eq_alloc(ctx, sizeof(eq_tensor) * (tensors.length ? tensors.length : 1));
  ctx->nodes = eq_alloc(ctx, sizeof(eq_node) * (operators.length ? operators.length : 1));
  if (ctx->tensors == NULL || ctx->nodes == NULL) return EDGEQ_ERROR_MEMORY;
  for (uint32_t i = 0; i < tensors.length; ++i) {
    fb_table tt;
    if (fb_vector_table(&tensors, i, &tt) != 0) return malformed(ctx, "tensor table out of bounds");
    edgeq_status s = load_tensor(ctx, &ctx->tensors[i], &tt, &buffers, (int32_t)i);
    if (s != EDGEQ_OK) return s;
  }
  edgeq_status s = load_index_list(ctx, &subgraph, SUBGRAPH_INPUTS, 0, &ctx->inputs, &ctx->ninputs, "the model inputs");
  if (s == EDGEQ_OK) {
    s = load_index_list(ctx, &subgraph, SUBGRAPH_OUTPUTS, 0, &ctx->outputs, &ctx->noutputs, "the model outputs");
  }
  if (s != EDGEQ_OK) return s;
  for (uint32_t i = 0; i < operators.length; ++i) {
    fb_table ot;
    eq_node* node = &ctx->nodes[i];
    node->index = (int32_t)i;
    if (fb_vector_table(&operators, i, &ot) != 0) return malformed(ctx, "operator table out of bounds");
    s = load_node(ctx, node, &ot, &opcodes);
    if (s != EDGEQ_OK) return s;
  }
  return EDGEQ_OK;
}
