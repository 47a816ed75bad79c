/* Mutation test: for each model file, thousands of damaged copies are loaded and, when they load,
 * invoked, all in one process under ASan+UBSan. Mutants: truncations on a stride, single- and multi-bit
 * flips and byte overwrites at random offsets, every bit of the 8-byte header (root offset, "TFL3"), and
 * chosen values written over the fields a schema walk finds (table and vtable offsets, vtable entries,
 * vector lengths, tensor shapes and types, buffer and tensor indices, scales, zero points, op codes,
 * option fields). Every call must return an edgeq_status with a message on failure, and a model that
 * invokes twice must give the same outputs. Prints the counts per status.
 *
 *   mutate [--mutants N] [--seed S] [--crash-dir DIR] [--verbose] MODEL.tflite...
 *   mutate --replay FILE...     (each file as it is, e.g. native/fuzz/crashes/: a regression check)
 *
 * Exit code 0 when everything was clean; 1 on a broken invariant (a sanitizer aborts by itself; with
 * --crash-dir the mutant that was running is written there first); 2 on a usage or I/O error. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgeq/edgeq.h"
#include "tflite_walk.h"

#if defined(__SANITIZE_ADDRESS__)
#define EQ_HAVE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define EQ_HAVE_SANITIZER 1
#endif
#endif
#ifdef EQ_HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

/* A hostile shape may ask for gigabytes: that must come back as EDGEQ_ERROR_MEMORY, not abort. Reports end
 * in abort(), whose handler below writes the running mutant out. */
const char* __asan_default_options(void);
const char* __asan_default_options(void) {
  return "allocator_may_return_null=1:max_allocation_size_mb=4096:abort_on_error=1";
}
const char* __ubsan_default_options(void);
const char* __ubsan_default_options(void) { return "print_stacktrace=1:abort_on_error=1"; }

/* Models whose activations exceed this load but are not invoked (a mutated dimension can legitimately
 * ask for gigabytes; filling them would only measure memset). */
#define MAX_INVOKE_ARENA ((size_t)32 << 20)
#define NSTATUS 6

/* ---------------------------------------------------------------- mutants */

static const char* const kind_names[NKINDS] = {"offset", "vtable", "length", "index", "float", "int64", "byte"};

static uint64_t rng_state;
static uint64_t next_random(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}
static size_t below(size_t n) { return n ? (size_t)(next_random() % n) : 0; }

typedef struct counts {
  long mutants;
  long load[NSTATUS];
  long invoke[NSTATUS];
  long skipped_big; /* loaded but not invoked: arena over MAX_INVOKE_ARENA */
  long by_kind[NKINDS];
} counts;

static const char* current_model;
static const uint8_t* current_data;
static size_t current_size;
static long current_index;
static const char* crash_dir;
static int failures;

/* Writes the running mutant where the user asked, so that a sanitizer abort leaves a reproducer. Only
 * async-signal-safe calls: it also runs from the SIGABRT handler. */
static volatile sig_atomic_t saving;
static void put_str(int fd, const char* s) {
  ssize_t r = write(fd, s, strlen(s));
  (void)r;
}
static void save_current(const char* why) {
  if (crash_dir == NULL || current_data == NULL || saving) return;
  saving = 1;
  const char* base = strrchr(current_model, '/');
  base = base ? base + 1 : current_model;
  char path[4096], number[24];
  int n = 0;
  long k = current_index;
  do {
    number[n++] = (char)('0' + k % 10);
    k /= 10;
  } while (k > 0 && n < 20);
  size_t len = 0;
  const char* parts[] = {crash_dir, "/", why, "-", base, "-"};
  for (size_t p = 0; p < sizeof parts / sizeof *parts; ++p) {
    for (const char* c = parts[p]; *c && len + 32 < sizeof path; ++c) path[len++] = *c;
  }
  while (n > 0) path[len++] = number[--n];
  memcpy(path + len, ".tflite", 8);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ssize_t w = write(fd, current_data, current_size);
    (void)w;
    close(fd);
    put_str(2, "mutate: wrote ");
    put_str(2, path);
    put_str(2, "\n");
  }
  saving = 0;
}

static void on_abort(int sig) {
  put_str(2, "mutate: crashed in ");
  put_str(2, current_model ? current_model : "?");
  put_str(2, "\n");
  save_current("crash");
  signal(sig, SIG_DFL);
  raise(sig);
}

#ifdef EQ_HAVE_SANITIZER
static void on_death(void) { save_current("crash"); }
#endif

static void fail(const char* what) {
  fprintf(stderr, "mutate: %s: mutant %ld: %s\n", current_model, current_index, what);
  save_current("fail");
  ++failures;
}

static int valid_status(edgeq_status s) { return s >= EDGEQ_OK && s <= EDGEQ_ERROR_RUNTIME; }

static void fill_inputs(edgeq_model* model, uint64_t seed) {
  for (int32_t i = 0; i < edgeq_num_inputs(model); ++i) {
    int32_t t = edgeq_input_tensor(model, i);
    edgeq_tensor_info info;
    edgeq_tensor_info_get(model, t, &info);
    uint8_t* dst = edgeq_tensor_data(model, t);
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i + 1;
    for (size_t k = 0; k < info.bytes; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      dst[k] = (uint8_t)(state >> 56);
    }
  }
}

/* Output bytes of the model, or copies them into `out` when it is not NULL. */
static size_t outputs(edgeq_model* model, uint8_t* out) {
  size_t total = 0;
  for (int32_t i = 0; i < edgeq_num_outputs(model); ++i) {
    int32_t t = edgeq_output_tensor(model, i);
    edgeq_tensor_info info;
    edgeq_tensor_info_get(model, t, &info);
    if (out != NULL && info.bytes > 0) memcpy(out + total, edgeq_tensor_data(model, t), info.bytes);
    total += info.bytes;
  }
  return total;
}

static volatile double sink;

/* Loads (and when possible invokes, twice) one buffer; updates counts; checks every invariant. */
static void run_one(const uint8_t* data, size_t size, counts* c, uint64_t seed) {
  char error[512];
  memset(error, 'x', sizeof error);
  edgeq_model* model = (edgeq_model*)&error; /* must be overwritten with NULL on failure */
  edgeq_status s = edgeq_model_load(data, size, &model, error, sizeof error);
  ++c->mutants;
  if (!valid_status(s)) {
    fail("load returned a status outside edgeq_status");
    return;
  }
  ++c->load[s];
  if (memchr(error, '\0', sizeof error) == NULL) fail("load left the error message unterminated");
  if (s != EDGEQ_OK) {
    if (model != NULL) fail("failed load left *out non-NULL");
    if (error[0] == '\0') fail("failed load gave no message");
    return;
  }
  for (int32_t t = 0; t < edgeq_num_tensors(model); ++t) {
    edgeq_tensor_info info;
    if (edgeq_tensor_info_get(model, t, &info) != EDGEQ_OK) fail("tensor_info_get failed on a valid index");
    sink += (double)strlen(info.name) + (double)info.bytes;
    for (int32_t q = 0; q < info.num_scales; ++q) sink += (double)info.scales[q] + (double)info.zero_points[q];
  }
  for (int32_t k = 0; k < edgeq_num_ops(model); ++k) {
    edgeq_op_info op;
    if (edgeq_op_info_get(model, k, &op) != EDGEQ_OK) fail("op_info_get failed on a valid index");
    for (int32_t i = 0; i < op.num_inputs; ++i) sink += op.inputs[i];
  }
  if (edgeq_arena_bytes(model) > MAX_INVOKE_ARENA) {
    ++c->skipped_big;
    edgeq_model_free(model);
    return;
  }
  size_t nout = outputs(model, NULL);
  uint8_t* first = malloc(nout + 1);
  uint8_t* second = malloc(nout + 1);
  if (first == NULL || second == NULL) {
    fprintf(stderr, "mutate: out of memory\n");
    exit(2);
  }
  fill_inputs(model, seed);
  edgeq_status s1 = edgeq_invoke(model);
  if (!valid_status(s1)) {
    fail("invoke returned a status outside edgeq_status");
  } else {
    ++c->invoke[s1];
    if (s1 != EDGEQ_OK && edgeq_last_error(model)[0] == '\0') fail("failed invoke gave no message");
    if (s1 == EDGEQ_OK) outputs(model, first);
    /* Again one op at a time, on a dirty arena: a kernel that reads memory it did not write differs. */
    fill_inputs(model, seed);
    edgeq_status s2 = EDGEQ_OK;
    for (int32_t k = 0; k < edgeq_num_ops(model) && s2 == EDGEQ_OK; ++k) s2 = edgeq_invoke_ops(model, k, k + 1);
    if (s2 != s1) {
      fail("the second invoke returned a different status");
    } else if (s1 == EDGEQ_OK) {
      outputs(model, second);
      if (memcmp(first, second, nout) != 0) fail("the second invoke gave different outputs (stale memory read?)");
    }
  }
  free(first);
  free(second);
  edgeq_model_free(model);
}

static int read_file(const char* path, uint8_t** data, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return -1;
  if (fseek(f, 0, SEEK_END) != 0) {
    fclose(f);
    return -1;
  }
  long n = ftell(f);
  rewind(f);
  *data = n > 0 ? malloc((size_t)n) : NULL;
  int ok = n > 0 && *data != NULL && fread(*data, 1, (size_t)n, f) == (size_t)n;
  fclose(f);
  if (!ok) {
    free(*data);
    return -1;
  }
  *size = (size_t)n;
  return 0;
}

/* Runs `mutated` (already a private exact-size copy, so ASan sees reads past its end). */
static void run_mutant(uint8_t* mutated, size_t size, counts* c, uint64_t seed) {
  /* Every other mutant loads with the SSE2 kernels (EDGEQ_NO_AVX2 is read at load), the rest with AVX2. */
  if (current_index & 1) {
    setenv("EDGEQ_NO_AVX2", "1", 1);
  } else {
    unsetenv("EDGEQ_NO_AVX2");
  }
  current_data = mutated;
  current_size = size;
  if (current_index % 4 == 3) {
    /* one mutant in four from an odd address: the loader must copy misaligned constants */
    uint8_t* shifted = malloc(size + 1);
    if (shifted == NULL) exit(2);
    memcpy(shifted + 1, mutated, size);
    run_one(shifted + 1, size, c, seed);
    free(shifted);
  } else {
    run_one(mutated, size, c, seed);
  }
  current_data = NULL;
  ++current_index;
}

static uint8_t* copy_of(const uint8_t* data, size_t size) {
  uint8_t* m = malloc(size ? size : 1);
  if (m == NULL) {
    fprintf(stderr, "mutate: out of memory\n");
    exit(2);
  }
  memcpy(m, data, size);
  return m;
}

static void print_counts(const char* label, const counts* c) {
  printf("%s: %ld mutants; load:", label, c->mutants);
  for (int s = 0; s < NSTATUS; ++s) {
    if (c->load[s]) printf(" %s %ld", edgeq_status_name((edgeq_status)s), c->load[s]);
  }
  printf("; invoke:");
  for (int s = 0; s < NSTATUS; ++s) {
    if (c->invoke[s]) printf(" %s %ld", edgeq_status_name((edgeq_status)s), c->invoke[s]);
  }
  if (c->skipped_big) printf(" (not invoked, arena > %zu MiB: %ld)", MAX_INVOKE_ARENA >> 20, c->skipped_big);
  printf("\n");
}

static void mutate_model(const char* path, const uint8_t* data, size_t size, long budget, uint64_t seed, counts* c,
                         int verbose) {
  current_model = path;
  current_index = 0;
  rng_state = seed ^ 0x2545F4914F6CDD1Dull;
  for (size_t i = 0; i < size; ++i) rng_state = (rng_state ^ data[i]) * 0x100000001B3ull + (rng_state == 0);
  if (rng_state == 0) rng_state = 1;

  /* The original must behave too (it may be unsupported: the interesting part is how it fails). */
  uint8_t* m = copy_of(data, size);
  run_mutant(m, size, c, seed);
  free(m);
  if (verbose) printf("%s: the original loads with %s\n", path, c->load[EDGEQ_OK] ? "OK" : "an error");

  fb_buffer buf = {data, size};
  static walk w; /* 64 KiB: not on the stack */
  memset(&w, 0, sizeof w);
  w.buf = &buf;
  walk_model(&w);
  if (w.failed) {
    fprintf(stderr, "mutate: out of memory\n");
    exit(2);
  }

  /* Truncations: every length on a stride, plus the last few bytes. */
  long ntrunc = budget / 8;
  size_t stride = size / (size_t)(ntrunc > 0 ? ntrunc : 1);
  if (stride == 0) stride = 1;
  for (size_t len = 0; len < size; len += stride) {
    m = copy_of(data, len);
    run_mutant(m, len, c, seed);
    free(m);
  }
  for (size_t cut = 1; cut <= 8 && cut < size; ++cut) {
    m = copy_of(data, size - cut);
    run_mutant(m, size - cut, c, seed);
    free(m);
  }
  /* Every single-bit flip of the header: root offset and file identifier. */
  for (size_t bit = 0; bit < 64 && bit / 8 < size; ++bit) {
    m = copy_of(data, size);
    m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    run_mutant(m, size, c, seed);
    free(m);
  }
  /* Random single-bit flips, multi-bit flips, byte overwrites anywhere. */
  for (long k = 0; k < budget / 4; ++k) {
    m = copy_of(data, size);
    size_t p = below(size);
    m[p] ^= (uint8_t)(1u << below(8));
    run_mutant(m, size, c, seed);
    free(m);
  }
  for (long k = 0; k < budget / 8; ++k) {
    m = copy_of(data, size);
    size_t nbits = 2 + below(15);
    size_t base = below(size);
    for (size_t b = 0; b < nbits; ++b) {
      /* half of them clustered (one field), half spread over the file */
      size_t p = (k & 1) ? (base + below(8)) % size : below(size);
      m[p] ^= (uint8_t)(1u << below(8));
    }
    run_mutant(m, size, c, seed);
    free(m);
  }
  for (long k = 0; k < budget / 8; ++k) {
    static const uint8_t bytes[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE};
    m = copy_of(data, size);
    m[below(size)] = bytes[below(sizeof bytes)];
    run_mutant(m, size, c, seed);
    free(m);
  }
  /* Whole-model rewrites that keep the graph consistent, so that kernels run at geometries and types the
   * model was not made for: every shape entry equal to d becomes r (activation sizes change together; a
   * constant whose size no longer matches its buffer is rejected), every tensor of one type becomes another. */
  for (size_t i = 0; i < w.ndims; ++i) {
    const uint32_t d = get32(data + w.dims[i]);
    int seen = 0;
    for (size_t j = 0; j < i && !seen; ++j) seen = get32(data + w.dims[j]) == d;
    if (seen) continue;
    const uint32_t replacements[] = {0, 1, 2, 3, d + 1, d - 1, 2 * d + 1, 255};
    for (size_t r = 0; r < sizeof replacements / sizeof *replacements; ++r) {
      if (replacements[r] == d) continue;
      m = copy_of(data, size);
      rewrite_dims(data, m, &w, d, replacements[r]);
      run_mutant(m, size, c, seed);
      free(m);
    }
  }
  for (int k = 0; k < NTYPE_SWAPS; ++k) {
    m = copy_of(data, size);
    if (swap_types(data, m, &w, k)) run_mutant(m, size, c, seed);
    free(m);
  }
  /* Fields found by the walk, each overwritten with values chosen for its kind, plus a random bit flip
   * within the field. When there are more (field, value) pairs than the budget, a random subset. */
  long pairs = (long)w.n * (NVALUES + 1);
  long field_budget = budget - c->mutants;
  if (field_budget < budget / 4) field_budget = budget / 4;
  for (long k = 0; k < pairs && k < field_budget; ++k) {
    long pick = pairs <= field_budget ? k : (long)below((size_t)pairs);
    const target* t = &w.items[pick / (NVALUES + 1)];
    int v = (int)(pick % (NVALUES + 1));
    m = copy_of(data, size);
    if (v == NVALUES) {
      size_t width = t->kind == K_U16 ? 2 : t->kind == K_I64 ? 8 : t->kind == K_BYTE ? 1 : 4;
      m[t->pos + below(width)] ^= (uint8_t)(1u << below(8));
    } else {
      overwrite(m, t, v);
    }
    ++c->by_kind[t->kind];
    run_mutant(m, size, c, seed);
    free(m);
  }
  if (verbose) {
    printf("  %zu fields found by the schema walk;", w.n);
    for (int k = 0; k < NKINDS; ++k) printf(" %s %ld", kind_names[k], c->by_kind[k]);
    printf(" mutants\n");
  }
  free(w.items);
}

/* The API's own argument checks, once: NULL and out-of-range arguments are EDGEQ_ERROR_ARGUMENT. */
static void api_checks(const uint8_t* data, size_t size) {
  current_model = "(API arguments)";
  char error[64];
  edgeq_model* model = NULL;
  if (edgeq_model_load(data, size, NULL, error, sizeof error) != EDGEQ_ERROR_ARGUMENT) fail("load with out == NULL");
  if (edgeq_model_load(NULL, 0, &model, error, sizeof error) != EDGEQ_ERROR_MALFORMED || model != NULL) {
    fail("load of NULL data is not MALFORMED");
  }
  if (edgeq_model_load(NULL, 1000, &model, NULL, 0) != EDGEQ_ERROR_MALFORMED) fail("load of NULL data, no message");
  error[0] = 'x';
  if (edgeq_model_load("TFL3", 4, &model, error, 1) == EDGEQ_OK || error[0] != '\0') fail("1-byte message buffer");
  edgeq_model_free(NULL);
  edgeq_tensor_info info;
  edgeq_op_info op;
  if (edgeq_tensor_info_get(NULL, 0, &info) != EDGEQ_ERROR_ARGUMENT) fail("tensor_info_get(NULL)");
  if (edgeq_op_info_get(NULL, 0, &op) != EDGEQ_ERROR_ARGUMENT) fail("op_info_get(NULL)");
  if (edgeq_invoke(NULL) != EDGEQ_ERROR_ARGUMENT || edgeq_invoke_ops(NULL, 0, 0) != EDGEQ_ERROR_ARGUMENT) {
    fail("invoke(NULL)");
  }
  if (edgeq_tensor_data(NULL, 0) != NULL || edgeq_arena_bytes(NULL) != 0 || edgeq_last_error(NULL)[0] != '\0') {
    fail("accessors on NULL");
  }
  if (edgeq_model_load(data, size, &model, error, sizeof error) != EDGEQ_OK) return;
  if (edgeq_tensor_info_get(model, -1, &info) != EDGEQ_ERROR_ARGUMENT ||
      edgeq_tensor_info_get(model, edgeq_num_tensors(model), &info) != EDGEQ_ERROR_ARGUMENT ||
      edgeq_tensor_info_get(model, 0, NULL) != EDGEQ_ERROR_ARGUMENT) {
    fail("tensor_info_get out of range");
  }
  if (edgeq_op_info_get(model, edgeq_num_ops(model), &op) != EDGEQ_ERROR_ARGUMENT) fail("op_info_get out of range");
  if (edgeq_invoke_ops(model, 0, edgeq_num_ops(model) + 1) != EDGEQ_ERROR_ARGUMENT ||
      edgeq_invoke_ops(model, -1, 0) != EDGEQ_ERROR_ARGUMENT || edgeq_invoke_ops(model, 1, 0) != EDGEQ_ERROR_ARGUMENT) {
    fail("invoke_ops out of range");
  }
  if (edgeq_last_error(model)[0] == '\0') fail("invoke_ops out of range left no message");
  if (edgeq_input_tensor(model, -1) != -1 || edgeq_output_tensor(model, edgeq_num_outputs(model)) != -1 ||
      edgeq_tensor_data(model, -1) != NULL || edgeq_tensor_data(model, edgeq_num_tensors(model)) != NULL) {
    fail("index accessors out of range");
  }
  edgeq_model_free(model);
}

static int usage(void) {
  fprintf(stderr, "usage: mutate [--mutants N] [--seed S] [--crash-dir DIR] [--verbose] [--replay] MODEL.tflite...\n");
  return 2;
}

int main(int argc, char** argv) {
  long budget = 4000;
  uint64_t seed = 1;
  int verbose = 0, nmodels = 0, replay = 0;
  counts total;
  memset(&total, 0, sizeof total);
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress survives a sanitizer abort */
#ifdef EQ_HAVE_SANITIZER
  __sanitizer_set_death_callback(on_death);
#endif
  signal(SIGABRT, on_abort);
  signal(SIGSEGV, on_abort);
  for (int a = 1; a < argc; ++a) {
    if (strcmp(argv[a], "--mutants") == 0 && a + 1 < argc) {
      budget = strtol(argv[++a], NULL, 10);
      if (budget < 8) return usage();
    } else if (strcmp(argv[a], "--seed") == 0 && a + 1 < argc) {
      seed = strtoull(argv[++a], NULL, 10);
    } else if (strcmp(argv[a], "--crash-dir") == 0 && a + 1 < argc) {
      crash_dir = argv[++a];
    } else if (strcmp(argv[a], "--verbose") == 0) {
      verbose = 1;
    } else if (strcmp(argv[a], "--replay") == 0) {
      replay = 1;
    } else if (argv[a][0] == '-') {
      return usage();
    } else {
      uint8_t* data;
      size_t size;
      if (read_file(argv[a], &data, &size) != 0) {
        fprintf(stderr, "mutate: cannot read %s\n", argv[a]);
        return 2;
      }
      counts c;
      memset(&c, 0, sizeof c);
      if (replay) {
        current_model = argv[a];
        current_index = 0;
        uint8_t* m = copy_of(data, size);
        run_mutant(m, size, &c, seed); /* with the AVX2 kernels where the CPU has them */
        run_mutant(m, size, &c, seed); /* with the SSE2 kernels */
        free(m);
      } else {
        if (nmodels == 0) api_checks(data, size);
        mutate_model(argv[a], data, size, budget, seed, &c, verbose);
      }
      print_counts(argv[a], &c);
      total.mutants += c.mutants;
      total.skipped_big += c.skipped_big;
      for (int s = 0; s < NSTATUS; ++s) {
        total.load[s] += c.load[s];
        total.invoke[s] += c.invoke[s];
      }
      free(data);
      ++nmodels;
    }
  }
  if (nmodels == 0) return usage();
  print_counts("total", &total);
  printf("%s: %d broken invariants\n", failures ? "FAIL" : "OK", failures);
  return failures ? 1 : 0;
}
