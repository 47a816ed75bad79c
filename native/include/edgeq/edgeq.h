/* edgeq native interpreter: runs integer .tflite models bit-exactly like LiteRT's BUILTIN_REF kernels.
 *
 * C11, libc and libm only. Every model file is treated as hostile: each offset, length, index and enum
 * is checked before use, and a bad file gives an error code and a message, never a crash. All memory
 * is allocated by edgeq_model_load(); edgeq_invoke() allocates nothing. */
#ifndef EDGEQ_EDGEQ_H_
#define EDGEQ_EDGEQ_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEQ_MAX_DIMS 8

typedef enum edgeq_status {
  EDGEQ_OK = 0,
  EDGEQ_ERROR_ARGUMENT = 1,    /* a caller passed a bad argument (index out of range, NULL, ...) */
  EDGEQ_ERROR_MALFORMED = 2,   /* the model file breaks the TFLite schema or its own invariants */
  EDGEQ_ERROR_UNSUPPORTED = 3, /* a valid model uses an op, type or option edgeq does not implement */
  EDGEQ_ERROR_MEMORY = 4,      /* an allocation failed at load time */
  EDGEQ_ERROR_RUNTIME = 5      /* invoke could not compute (e.g. an index input out of range) */
} edgeq_status;

/* Tensor element types, numbered as TFLite's TensorType. */
typedef enum edgeq_type {
  EDGEQ_FLOAT32 = 0,
  EDGEQ_FLOAT16 = 1,
  EDGEQ_INT32 = 2,
  EDGEQ_UINT8 = 3,
  EDGEQ_INT64 = 4,
  EDGEQ_BOOL = 6,
  EDGEQ_INT16 = 7,
  EDGEQ_INT8 = 9,
  EDGEQ_INT4 = 17
} edgeq_type;

typedef struct edgeq_model edgeq_model;

typedef struct edgeq_tensor_info {
  const char* name;
  int32_t type; /* an edgeq_type value (TFLite numbering) */
  int32_t ndim;
  int32_t dims[EDGEQ_MAX_DIMS];
  size_t bytes;
  int32_t num_scales; /* 0: not quantized; 1: per tensor; >1: per channel along quantized_dimension */
  const float* scales;
  const int64_t* zero_points;
  int32_t quantized_dimension;
  int32_t is_constant;
} edgeq_tensor_info;

typedef struct edgeq_op_info {
  int32_t builtin_code; /* TFLite BuiltinOperator */
  const char* name;     /* e.g. "CONV_2D" */
  int32_t num_inputs;
  const int32_t* inputs; /* tensor indices; -1 for an omitted optional input */
  int32_t num_outputs;
  const int32_t* outputs;
} edgeq_op_info;

/* Loads a model from `data`, which must stay valid and unchanged until edgeq_model_free(): weights are
 * read in place. On failure *out is NULL and `error` (if not NULL) holds a NUL-terminated message. */
edgeq_status edgeq_model_load(const void* data, size_t size, edgeq_model** out, char* error, size_t error_size);
void edgeq_model_free(edgeq_model* model);

int32_t edgeq_num_inputs(const edgeq_model* model);
int32_t edgeq_num_outputs(const edgeq_model* model);
int32_t edgeq_input_tensor(const edgeq_model* model, int32_t i);  /* tensor index, -1 if out of range */
int32_t edgeq_output_tensor(const edgeq_model* model, int32_t i); /* tensor index, -1 if out of range */
int32_t edgeq_num_tensors(const edgeq_model* model);
int32_t edgeq_num_ops(const edgeq_model* model);
edgeq_status edgeq_tensor_info_get(const edgeq_model* model, int32_t tensor, edgeq_tensor_info* info);
edgeq_status edgeq_op_info_get(const edgeq_model* model, int32_t op, edgeq_op_info* info);

/* The tensor's bytes. Activations live in the shared arena: a tensor's contents are valid from the op
 * that writes it until its memory is reused by a later op. Inputs are written here before invoking. */
void* edgeq_tensor_data(edgeq_model* model, int32_t tensor);

/* Runs every op in order. */
edgeq_status edgeq_invoke(edgeq_model* model);
/* Runs ops [first, last) only: a verifier steps one op at a time and reads each op's outputs. */
edgeq_status edgeq_invoke_ops(edgeq_model* model, int32_t first, int32_t last);

/* Bytes of the one arena that holds every activation and scratch buffer. */
size_t edgeq_arena_bytes(const edgeq_model* model);
/* Bytes allocated at load besides the arena: tensor and op tables, names, quantization parameters,
 * kernels' precomputed data (multipliers, LUTs, repacked weights). Weights stay in the model buffer. */
size_t edgeq_persistent_bytes(const edgeq_model* model);
/* The message of the last failed call on this model ("" if none). */
const char* edgeq_last_error(const edgeq_model* model);
const char* edgeq_status_name(edgeq_status status);

#ifdef __cplusplus
}
#endif
#endif /* EDGEQ_EDGEQ_H_ */
