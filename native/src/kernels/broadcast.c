/* Broadcast planning and the row loop (see broadcast.h). */
#include "broadcast.h"

#include <stdio.h>

static void shape_string(const eq_tensor* t, char* buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int32_t i = 0; i < t->ndim && used < size; ++i) {
    used += (size_t)snprintf(buf + used, size - used, i ? ",%d" : "%d", (int)t->dims[i]);
  }
  if (used < size) snprintf(buf + used, size - used, "]");
}

static edgeq_status shape_error(eq_context* ctx, const eq_tensor* a, const eq_tensor* b, const eq_tensor* out,
                                const char* what) {
  char sa[96], sb[96], so[96];
  shape_string(a, sa, sizeof sa);
  shape_string(b, sb, sizeof sb);
  shape_string(out, so, sizeof so);
  return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%s: inputs %s and %s, output %s", what, sa, sb, so);
}

edgeq_status eq_broadcast_prepare(eq_context* ctx, const eq_tensor* a, const eq_tensor* b, const eq_tensor* out,
                                  eq_broadcast* bc) {
  const int32_t rank = a->ndim > b->ndim ? a->ndim : b->ndim;
  if (out->ndim != rank) return shape_error(ctx, a, b, out, "output rank is not the broadcast rank");
  size_t da[EQ_MAX_DIMS], db[EQ_MAX_DIMS], dout[EQ_MAX_DIMS];
  for (int32_t i = 0; i < rank; ++i) {
    const int32_t ia = i - (rank - a->ndim), ib = i - (rank - b->ndim);
    const int32_t x = ia >= 0 ? a->dims[ia] : 1, y = ib >= 0 ? b->dims[ib] : 1;
    if (x != y && x != 1 && y != 1) return shape_error(ctx, a, b, out, "inputs do not broadcast");
    const int32_t expected = (x == 0 || y == 0) ? 0 : (x > y ? x : y);
    if (out->dims[i] != expected) return shape_error(ctx, a, b, out, "output shape is not the broadcast shape");
    da[i] = (size_t)x;
    db[i] = (size_t)y;
    dout[i] = (size_t)expected;
  }
  bc->count = out->count;
  bc->nloops = 0;
  if (bc->count == 0) return EDGEQ_OK;
  /* Innermost first: a dimension joins the loop inside it when both inputs keep walking linearly across
   * the seam (stride == inner stride * inner extent, which also covers stride 0 on both sides). */
  size_t shape[EQ_MAX_DIMS], sa[EQ_MAX_DIMS], sb[EQ_MAX_DIMS];
  size_t acc_a = 1, acc_b = 1;
  int32_t n = 0;
  for (int32_t i = rank - 1; i >= 0; --i) {
    if (dout[i] == 1) continue; /* every operand's extent is 1 here: no loop */
    const size_t stride_a = da[i] == 1 ? 0 : acc_a, stride_b = db[i] == 1 ? 0 : acc_b;
    if (n > 0 && stride_a == sa[n - 1] * shape[n - 1] && stride_b == sb[n - 1] * shape[n - 1]) {
      shape[n - 1] *= dout[i];
    } else {
      shape[n] = dout[i];
      sa[n] = stride_a;
      sb[n] = stride_b;
      ++n;
    }
    acc_a *= da[i];
    acc_b *= db[i];
  }
  if (n == 0) { /* every dimension is 1: one element */
    shape[0] = 1;
    sa[0] = sb[0] = 0;
    n = 1;
  }
  bc->nloops = n;
  for (int32_t k = 0; k < n; ++k) {
    bc->shape[k] = shape[n - 1 - k];
    bc->a_stride[k] = sa[n - 1 - k];
    bc->b_stride[k] = sb[n - 1 - k];
  }
  return EDGEQ_OK;
}

void eq_broadcast_run(const eq_broadcast* bc, eq_binary_row_fn row, const void* params, const void* a,
                      size_t a_size, const void* b, size_t b_size, void* out, size_t out_size) {
  if (bc->count == 0) return;
  const int32_t last = bc->nloops - 1;
  const size_t n = bc->shape[last];
  const size_t a_inc = bc->a_stride[last] != 0, b_inc = bc->b_stride[last] != 0;
  const uint8_t* pa = (const uint8_t*)a;
  const uint8_t* pb = (const uint8_t*)b;
  uint8_t* po = (uint8_t*)out;
  if (last == 0) {
    row(params, pa, a_inc, pb, b_inc, po, n);
    return;
  }
  size_t idx[EQ_MAX_DIMS] = {0};
  size_t a_off = 0, b_off = 0;
  const size_t rows = bc->count / n;
  for (size_t r = 0; r < rows; ++r) {
    row(params, pa + a_off * a_size, a_inc, pb + b_off * b_size, b_inc, po + r * n * out_size, n);
    for (int32_t k = last - 1; k >= 0; --k) { /* odometer over the outer loops */
      a_off += bc->a_stride[k];
      b_off += bc->b_stride[k];
      if (++idx[k] < bc->shape[k]) break;
      a_off -= bc->a_stride[k] * bc->shape[k];
      b_off -= bc->b_stride[k] * bc->shape[k];
      idx[k] = 0;
    }
  }
}
