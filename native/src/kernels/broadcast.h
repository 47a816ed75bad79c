/* Numpy-style broadcasting of two inputs to the output's stored shape (any rank up to EQ_MAX_DIMS), run as
 * rows: prepare collapses the output's dimensions into as few loops as the inputs' strides allow, and
 * invoke calls a row function on each contiguous run of the innermost loop. Two same-shape tensors
 * become a single row, so the common no-broadcast case is one tight loop. */
#ifndef EDGEQ_KERNELS_BROADCAST_H_
#define EDGEQ_KERNELS_BROADCAST_H_

#include <stddef.h>
#include <stdint.h>

#include "../internal.h"

typedef struct eq_broadcast {
  int32_t nloops;               /* collapsed loops, outermost first; the last one is the row */
  size_t shape[EQ_MAX_DIMS];    /* output extent of each loop */
  size_t a_stride[EQ_MAX_DIMS]; /* elements of a per step of the loop; 0 where a is broadcast */
  size_t b_stride[EQ_MAX_DIMS];
  size_t count; /* output elements; 0 means nothing to do */
} eq_broadcast;

/* out[i] = f(a[i * a_inc], b[i * b_inc]) for i < n, with a_inc and b_inc 0 or 1. */
typedef void (*eq_binary_row_fn)(const void* params, const void* a, size_t a_inc, const void* b, size_t b_inc,
                                 void* out, size_t n);

/* Checks that a and b broadcast together (trailing-aligned; each pair of dimensions equal or one of them 1)
 * and that the output's stored shape is exactly the broadcast shape, as LiteRT's
 * CalculateShapeForBroadcast computes it (a 0 beside a 1 gives 0); MALFORMED otherwise. Then plans the
 * loops. */
edgeq_status eq_broadcast_prepare(eq_context* ctx, const eq_tensor* a, const eq_tensor* b, const eq_tensor* out,
                                  eq_broadcast* bc);

/* Runs `row` over every output row. Element sizes are in bytes. */
void eq_broadcast_run(const eq_broadcast* bc, eq_binary_row_fn row, const void* params, const void* a,
                      size_t a_size, const void* b, size_t b_size, void* out, size_t out_size);

/* Defines `static void NAME(...)`, an eq_binary_row_fn applying `static inline TO FN(const PT* p, TA a,
 * TB b)` elementwise, with the broadcast operand hoisted out of the loop. */
#define EQ_BINARY_ROW(NAME, TA, TB, TO, PT, FN)                                                          \
  static void NAME(const void* params_, const void* a_, size_t a_inc, const void* b_, size_t b_inc,     \
                   void* out_, size_t n) {                                                              \
    const PT* p = (const PT*)params_;                                                                   \
    const TA* a = (const TA*)a_;                                                                        \
    const TB* b = (const TB*)b_;                                                                        \
    TO* restrict o = (TO*)out_;                                                                         \
    if (a_inc && b_inc) {                                                                               \
      for (size_t i = 0; i < n; ++i) o[i] = FN(p, a[i], b[i]);                                          \
    } else if (b_inc) {                                                                                 \
      const TA a0 = a[0];                                                                               \
      for (size_t i = 0; i < n; ++i) o[i] = FN(p, a0, b[i]);                                            \
    } else if (a_inc) {                                                                                 \
      const TB b0 = b[0];                                                                               \
      for (size_t i = 0; i < n; ++i) o[i] = FN(p, a[i], b0);                                            \
    } else {                                                                                            \
      const TO v = FN(p, a[0], b[0]);                                                                   \
      for (size_t i = 0; i < n; ++i) o[i] = v;                                                          \
    }                                                                                                   \
  }

#endif
