/* edgeq-run: load a .tflite, feed raw inputs, invoke, write raw outputs.
 *
 *   edgeq-run MODEL [-i INPUT.bin]... [-o OUTPUT.bin]... [--random SEED] [--repeat N] [--stats]
 *
 * Inputs are the tensors' raw little-endian bytes in model input order (exactly the tensor's size);
 * --random fills inputs with deterministic pseudo-random bytes instead. Outputs are written atomically
 * (temporary file, then rename). --repeat N invokes N times and prints the median latency. Exit code: 0,
 * or 10 + the edgeq_status of the failing call, or 2 on a usage or I/O error. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgeq/edgeq.h"

#define MAX_FILES 64

static int read_file(const char* path, unsigned char** data, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return -1;
  size_t cap = 1 << 16, n = 0;
  unsigned char* buf = malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    unsigned char* bigger = realloc(buf, cap * 2);
    if (bigger == NULL) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = bigger;
    cap *= 2;
  }
  int err = ferror(f) || buf == NULL;
  fclose(f);
  if (err) {
    free(buf);
    return -1;
  }
  *data = buf;
  *size = n;
  return 0;
}

static int write_atomic(const char* path, const void* data, size_t size) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-edgeq", path) >= (int)sizeof tmp) return -1;
  FILE* f = fopen(tmp, "wb");
  if (f == NULL) return -1;
  int ok = fwrite(data, 1, size, f) == size;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    return -1;
  }
  return 0;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static int usage(void) {
  fprintf(stderr, "usage: edgeq-run MODEL [-i INPUT.bin]... [-o OUTPUT.bin]... [--random SEED] [--repeat N] [--stats]\n");
  return 2;
}

int main(int argc, char** argv) {
  const char* model_path = NULL;
  const char* inputs[MAX_FILES];
  const char* outputs[MAX_FILES];
  int ninputs = 0, noutputs = 0, stats = 0, repeat = 1, random = 0;
  unsigned long seed = 0;
  for (int a = 1; a < argc; ++a) {
    if (strcmp(argv[a], "-i") == 0 && a + 1 < argc && ninputs < MAX_FILES) {
      inputs[ninputs++] = argv[++a];
    } else if (strcmp(argv[a], "-o") == 0 && a + 1 < argc && noutputs < MAX_FILES) {
      outputs[noutputs++] = argv[++a];
    } else if (strcmp(argv[a], "--random") == 0 && a + 1 < argc) {
      random = 1;
      seed = strtoul(argv[++a], NULL, 10);
    } else if (strcmp(argv[a], "--repeat") == 0 && a + 1 < argc) {
      repeat = atoi(argv[++a]);
      if (repeat < 1 || repeat > 1000000) return usage();
    } else if (strcmp(argv[a], "--stats") == 0) {
      stats = 1;
    } else if (argv[a][0] != '-' && model_path == NULL) {
      model_path = argv[a];
    } else {
      return usage();
    }
  }
  if (model_path == NULL) return usage();
  unsigned char* data;
  size_t size;
  if (read_file(model_path, &data, &size) != 0) {
    fprintf(stderr, "edgeq-run: cannot read %s\n", model_path);
    return 2;
  }
  char error[512];
  edgeq_model* model;
  edgeq_status s = edgeq_model_load(data, size, &model, error, sizeof error);
  if (s != EDGEQ_OK) {
    fprintf(stderr, "edgeq-run: %s: %s: %s\n", model_path, edgeq_status_name(s), error);
    free(data);
    return 10 + (int)s;
  }
  int rc = 0;
  if (ninputs != 0 && ninputs != edgeq_num_inputs(model)) {
    fprintf(stderr, "edgeq-run: the model has %d inputs, %d given\n", (int)edgeq_num_inputs(model), ninputs);
    rc = 2;
  }
  for (int i = 0; rc == 0 && i < edgeq_num_inputs(model); ++i) {
    edgeq_tensor_info info;
    int32_t t = edgeq_input_tensor(model, i);
    edgeq_tensor_info_get(model, t, &info);
    unsigned char* dst = edgeq_tensor_data(model, t);
    if (i < ninputs) {
      unsigned char* raw;
      size_t n;
      if (read_file(inputs[i], &raw, &n) != 0 || n != info.bytes) {
        fprintf(stderr, "edgeq-run: input %d ('%s') needs %zu bytes from %s\n", i, info.name, info.bytes, inputs[i]);
        if (n != info.bytes) free(raw);
        rc = 2;
        break;
      }
      memcpy(dst, raw, n);
      free(raw);
    } else {
      unsigned long state = seed * 2654435761ul + (unsigned long)i + 1;
      for (size_t k = 0; k < info.bytes; ++k) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        dst[k] = random ? (unsigned char)(state >> 33) : 0;
      }
    }
  }
  double* times = rc == 0 ? malloc(sizeof(double) * (size_t)repeat) : NULL;
  if (rc == 0 && times == NULL) rc = 2;
  for (int r = 0; rc == 0 && r < repeat; ++r) {
    double start = now_seconds();
    s = edgeq_invoke(model);
    times[r] = now_seconds() - start;
    if (s != EDGEQ_OK) {
      fprintf(stderr, "edgeq-run: invoke: %s: %s\n", edgeq_status_name(s), edgeq_last_error(model));
      rc = 10 + (int)s;
    }
  }
  for (int i = 0; rc == 0 && i < noutputs && i < edgeq_num_outputs(model); ++i) {
    edgeq_tensor_info info;
    int32_t t = edgeq_output_tensor(model, i);
    edgeq_tensor_info_get(model, t, &info);
    if (write_atomic(outputs[i], edgeq_tensor_data(model, t), info.bytes) != 0) {
      fprintf(stderr, "edgeq-run: cannot write %s\n", outputs[i]);
      rc = 2;
    }
  }
  if (rc == 0 && stats) {
    qsort(times, (size_t)repeat, sizeof *times, compare_double);
    printf("ops %d\ntensors %d\narena_bytes %zu\npersistent_bytes %zu\nmedian_ms %.4f\n", (int)edgeq_num_ops(model),
           (int)edgeq_num_tensors(model), edgeq_arena_bytes(model), edgeq_persistent_bytes(model),
           1e3 * times[repeat / 2]);
  }
  free(times);
  edgeq_model_free(model);
  free(data);
  return rc;
}
