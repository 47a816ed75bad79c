/* What the loader, the planner and the kernels share. */
#ifndef EDGEQ_INTERNAL_H_
#define EDGEQ_INTERNAL_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "edgeq/edgeq.h"
#include "flatbuffer.h"

#define EQ_MAX_DIMS EDGEQ_MAX_DIMS
#define EQ_MAX_SCRATCH 4
#define EQ_ALIGN 16

typedef struct eq_tensor {
  char* name;
  int32_t type;
  int32_t ndim;
  int32_t dims[EQ_MAX_DIMS];
  size_t count; /* elements */
  size_t bytes;
  uint8_t* data; /* constants: in the model buffer (or an aligned copy); activations: in the arena */
  int32_t is_constant;
  int32_t is_variable;
  /* quantization: nq == 0 when absent */
  int32_t nq;
  float* scale;
  int64_t* zero_point;
  int32_t qdim;
  /* BlockwiseQuantization (block_size > 0): per-block scales in tensor block_scales, zero points in tensor
   * block_zero_points (-1: none); indices checked against the tensor count, the rest by the kernel */
  int32_t block_size;
  int32_t block_scales;
  int32_t block_zero_points;
  /* planning */
  int32_t first_op, last_op; /* lifetime in op indices; -1 when unused */
  size_t arena_offset;
} eq_tensor;

struct eq_context;
struct eq_node;

typedef edgeq_status (*eq_prepare_fn)(struct eq_context* ctx, struct eq_node* node);
typedef edgeq_status (*eq_invoke_fn)(struct eq_context* ctx, struct eq_node* node);

typedef struct eq_kernel {
  eq_prepare_fn prepare; /* checks types, shapes, options; precomputes into node->user; asks for scratch */
  eq_invoke_fn invoke;   /* computes; never allocates */
} eq_kernel;

typedef struct eq_node {
  int32_t index;
  int32_t builtin;
  int32_t version;
  int32_t ninputs, noutputs;
  int32_t* inputs; /* -1: omitted optional input */
  int32_t* outputs;
  int32_t options_type;
  int32_t has_options;
  int32_t options_broken;
  fb_table options; /* builtin_options table, valid when has_options */
  const eq_kernel* kernel;
  void* user; /* kernel's precomputed data, allocated at prepare */
  int32_t nscratch;
  size_t scratch_bytes[EQ_MAX_SCRATCH];
  size_t scratch_offset[EQ_MAX_SCRATCH];
} eq_node;

typedef struct eq_alloc_block {
  struct eq_alloc_block* next;
} eq_alloc_block;

typedef struct eq_context {
  fb_buffer buf;
  int32_t ntensors, nnodes, ninputs, noutputs;
  eq_tensor* tensors;
  eq_node* nodes;
  int32_t* inputs;
  int32_t* outputs;
  uint8_t* arena;
  size_t arena_bytes;
  eq_alloc_block* allocations; /* everything malloc'ed at load, freed together */
  size_t persistent_bytes;     /* bytes of those allocations, the arena excluded */
  eq_node* current;            /* the node being prepared or invoked, for error messages */
  char error[512];
} eq_context;

struct edgeq_model {
  eq_context ctx;
};

/* Load-time allocation, zeroed, owned by the context; NULL (with the error set) on failure. */
void* eq_alloc(eq_context* ctx, size_t bytes);
/* Records a formatted message (prefixed with the current op) and returns `status`. */
edgeq_status eq_error(eq_context* ctx, edgeq_status status, const char* fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The node's i-th input or output tensor; NULL when omitted or out of range. */
eq_tensor* eq_input(eq_context* ctx, const eq_node* node, int32_t i);
eq_tensor* eq_output(eq_context* ctx, const eq_node* node, int32_t i);
/* A scratch buffer of `bytes` for the duration of one invoke; returns its slot or -1 (error set). */
int32_t eq_request_scratch(eq_context* ctx, eq_node* node, size_t bytes);
void* eq_scratch(eq_context* ctx, const eq_node* node, int32_t slot);

const char* eq_builtin_name(int32_t builtin);
const char* eq_type_name(int32_t type);
size_t eq_type_size(int32_t type); /* bytes per element; 0 for INT4 (packed) and unknown types */
const eq_kernel* eq_find_kernel(int32_t builtin);
/* The kernel for a loaded node (its inputs indexed and checked): the builtin's or a variant of it. */
const eq_kernel* eq_node_kernel(const eq_context* ctx, const eq_node* node);
/* The BuiltinOptions type LiteRT reads for `builtin`, or -1 when it reads none. */
int32_t eq_expected_options_type(int32_t builtin);

/* Shape helpers. */
int32_t eq_dim(const eq_tensor* t, int32_t i); /* negative i counts from the end; 1 when out of range */
int eq_same_shape(const eq_tensor* a, const eq_tensor* b);
/* Reads an INT32 or INT64 constant tensor element; the kernel must have checked type and count. */
int64_t eq_const_int(const eq_tensor* t, size_t i);

/* Option readers: the field's value, or `def` when the node has no options or the field is absent. A
 * field whose bounds are broken reads as `def` and marks the node, which the interpreter rejects as
 * malformed right after prepare. */
int32_t eq_opt_i32(eq_node* node, int id, int32_t def);
float eq_opt_f32(eq_node* node, int id, float def);
int eq_opt_bool(eq_node* node, int id, int def);
int32_t eq_opt_i8(eq_node* node, int id, int32_t def); /* byte enums: Padding, ActivationFunctionType */

/* Tensor types and fused activations as TFLite numbers them. */
enum {
  EQ_T_FLOAT32 = 0,
  EQ_T_FLOAT16 = 1,
  EQ_T_INT32 = 2,
  EQ_T_UINT8 = 3,
  EQ_T_INT64 = 4,
  EQ_T_STRING = 5,
  EQ_T_BOOL = 6,
  EQ_T_INT16 = 7,
  EQ_T_INT8 = 9,
  EQ_T_INT4 = 17
};
enum { EQ_ACT_NONE = 0, EQ_ACT_RELU = 1, EQ_ACT_RELU_N1_TO_1 = 2, EQ_ACT_RELU6 = 3, EQ_ACT_TANH = 4 };
enum { EQ_PAD_SAME = 0, EQ_PAD_VALID = 1 };

#endif
