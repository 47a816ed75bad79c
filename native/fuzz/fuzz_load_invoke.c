/* libFuzzer target: the input bytes are a .tflite file. Whatever they hold, loading, invoking and
 * reading back must not crash, leak, hit undefined behaviour or return a status outside edgeq_status.
 * A model that loads is invoked twice (all ops at once, then one op at a time, inputs refilled): the
 * outputs must agree, which catches kernels that read memory they did not write. A third of the mutations
 * are structure-aware (tests/tflite_walk.h): a structural field overwritten with a value chosen for its
 * kind, every shape entry of one value rewritten (a consistent graph at a new geometry), or every tensor of
 * one type retyped; the rest are libFuzzer's byte-level mutations.
 *
 *   make -C native fuzz
 *   native/build-fuzz/fuzz_load_invoke -dict=native/fuzz/tflite.dict CORPUS_DIR */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/tflite_walk.h"
#include "edgeq/edgeq.h"

/* Activations beyond this are not invoked: a mutated shape can ask for gigabytes, and a mutated window
 * (pooling, convolution) for work quadratic in the activation size, both legitimate (LiteRT does the same
 * work) but they would only turn into timeouts. */
#define MAX_INVOKE_ARENA ((size_t)128 << 10)

/* Huge allocations a hostile shape asks for must come back as NULL (EDGEQ_ERROR_MEMORY), not abort. */
const char* __asan_default_options(void);
const char* __asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=4096:detect_leaks=1"; }

static void check(int ok) {
  if (!ok) abort();
}

static int valid_status(edgeq_status s) { return s >= EDGEQ_OK && s <= EDGEQ_ERROR_RUNTIME; }

static uint64_t hash_bytes(const uint8_t* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
  return h;
}

/* Input bytes: the file's own bytes mixed with a generator seeded by the file, so that inputs follow the
 * fuzzer's mutations but cover the full range. */
static void fill_inputs(edgeq_model* model, const uint8_t* data, size_t size, uint64_t seed) {
  for (int32_t i = 0; i < edgeq_num_inputs(model); ++i) {
    int32_t t = edgeq_input_tensor(model, i);
    edgeq_tensor_info info;
    check(edgeq_tensor_info_get(model, t, &info) == EDGEQ_OK);
    uint8_t* dst = edgeq_tensor_data(model, t);
    check(dst != NULL || info.bytes == 0);
    uint64_t state = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    for (size_t k = 0; k < info.bytes; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      dst[k] = (uint8_t)(state >> 56) ^ data[(k * 7 + (size_t)i) % size];
    }
  }
}

static size_t output_bytes(const edgeq_model* model) {
  size_t total = 0;
  for (int32_t i = 0; i < edgeq_num_outputs(model); ++i) {
    edgeq_tensor_info info;
    check(edgeq_tensor_info_get(model, edgeq_output_tensor(model, i), &info) == EDGEQ_OK);
    total += info.bytes;
  }
  return total;
}

static void copy_outputs(edgeq_model* model, uint8_t* out) {
  for (int32_t i = 0; i < edgeq_num_outputs(model); ++i) {
    int32_t t = edgeq_output_tensor(model, i);
    edgeq_tensor_info info;
    check(edgeq_tensor_info_get(model, t, &info) == EDGEQ_OK);
    const uint8_t* src = edgeq_tensor_data(model, t);
    if (info.bytes > 0) {
      check(src != NULL);
      memcpy(out, src, info.bytes);
    }
    out += info.bytes;
  }
}

/* Every accessor on every tensor and op, so their results are read (and checked by ASan). */
static volatile double sink;

static void read_infos(edgeq_model* model) {
  for (int32_t t = 0; t < edgeq_num_tensors(model); ++t) {
    edgeq_tensor_info info;
    check(edgeq_tensor_info_get(model, t, &info) == EDGEQ_OK);
    check(info.name != NULL && strlen(info.name) < 4096);
    check(info.ndim >= 0 && info.ndim <= EDGEQ_MAX_DIMS);
    for (int32_t q = 0; q < info.num_scales; ++q) sink += (double)info.scales[q] + (double)info.zero_points[q];
  }
  for (int32_t k = 0; k < edgeq_num_ops(model); ++k) {
    edgeq_op_info op;
    check(edgeq_op_info_get(model, k, &op) == EDGEQ_OK);
    check(op.name != NULL);
    for (int32_t i = 0; i < op.num_inputs; ++i) check(op.inputs[i] >= -1 && op.inputs[i] < edgeq_num_tensors(model));
    for (int32_t i = 0; i < op.num_outputs; ++i) check(op.outputs[i] >= 0 && op.outputs[i] < edgeq_num_tensors(model));
  }
  edgeq_tensor_info info;
  check(edgeq_tensor_info_get(model, -1, &info) == EDGEQ_ERROR_ARGUMENT);
  check(edgeq_tensor_info_get(model, edgeq_num_tensors(model), &info) == EDGEQ_ERROR_ARGUMENT);
  check(edgeq_input_tensor(model, edgeq_num_inputs(model)) == -1);
  check(edgeq_output_tensor(model, -1) == -1);
}

size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  uint64_t r = (uint64_t)seed * 6364136223846793005ull + 1442695040888963407ull;
  if ((r >> 60) % 3 != 0 || size < 8) return LLVMFuzzerMutate(data, size, max_size);
  static walk w;
  fb_buffer buf = {data, size};
  memset(&w, 0, sizeof w);
  w.buf = &buf;
  walk_model(&w);
  uint8_t* original = malloc(size);
  if (w.failed || w.n == 0 || original == NULL) {
    free(w.items);
    free(original);
    return LLVMFuzzerMutate(data, size, max_size);
  }
  memcpy(original, data, size);
  r = r * 6364136223846793005ull + 1442695040888963407ull;
  const uint32_t pick = (uint32_t)(r >> 33);
  switch ((r >> 61) % 3) {
    case 0:
      if (w.ndims > 0) {
        const uint32_t d = get32(original + w.dims[pick % w.ndims]);
        const uint32_t choices[] = {0, 1, 2, 3, d + 1, d - 1, 2 * d + 1, 255, (pick >> 8) % 64};
        rewrite_dims(original, data, &w, d, choices[(pick >> 16) % (sizeof choices / sizeof *choices)]);
        break;
      }
      /* fall through */
    case 1:
      if (swap_types(original, data, &w, (int)(pick % NTYPE_SWAPS))) break;
      /* fall through */
    default:
      overwrite(data, &w.items[pick % w.n], (int)((pick >> 20) % NVALUES));
      break;
  }
  free(original);
  free(w.items);
  return size;
}

static void run(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  /* A quarter of the inputs sit at an odd address: the loader must copy misaligned constants. */
  if (size > 0 && (data[size - 1] & 6) == 6) {
    uint8_t* shifted = malloc(size + 1);
    check(shifted != NULL);
    memcpy(shifted + 1, data, size);
    run(shifted + 1, size);
    free(shifted);
  } else {
    run(data, size);
  }
  return 0;
}

static void run(const uint8_t* data, size_t size) {
  char error[256];
  /* Half of the inputs load with the SSE2 kernels (EDGEQ_NO_AVX2 is read at load), half with AVX2. */
  if (size > 0 && (data[size - 1] & 1)) {
    setenv("EDGEQ_NO_AVX2", "1", 1);
  } else {
    unsetenv("EDGEQ_NO_AVX2");
  }
  edgeq_model* model = (edgeq_model*)1;
  edgeq_status s = edgeq_model_load(data, size, &model, error, sizeof error);
  check(valid_status(s));
  check(memchr(error, '\0', sizeof error) != NULL);
  if (s != EDGEQ_OK) {
    check(model == NULL && error[0] != '\0');
    return;
  }
  check(model != NULL);
  read_infos(model);
  if (edgeq_arena_bytes(model) <= MAX_INVOKE_ARENA && size > 0) {
    const uint64_t seed = hash_bytes(data, size);
    const size_t nout = output_bytes(model);
    uint8_t* first = malloc(nout ? nout : 1);
    uint8_t* second = malloc(nout ? nout : 1);
    check(first != NULL && second != NULL);
    fill_inputs(model, data, size, seed);
    edgeq_status s1 = edgeq_invoke(model);
    check(valid_status(s1));
    check(s1 == EDGEQ_OK || edgeq_last_error(model)[0] != '\0');
    if (s1 == EDGEQ_OK) copy_outputs(model, first);
    fill_inputs(model, data, size, seed);
    edgeq_status s2 = EDGEQ_OK;
    for (int32_t k = 0; k < edgeq_num_ops(model) && s2 == EDGEQ_OK; ++k) s2 = edgeq_invoke_ops(model, k, k + 1);
    check(s2 == s1);
    if (s2 == EDGEQ_OK) {
      copy_outputs(model, second);
      check(memcmp(first, second, nout) == 0); /* a kernel read stale or unwritten memory */
    }
    free(first);
    free(second);
  }
  check(edgeq_invoke_ops(model, 1, 0) == EDGEQ_ERROR_ARGUMENT);
  edgeq_model_free(model);
}
