/* STRIDED_SLICE with constant INT32 begin/end/strides and every mask (begin, end, ellipsis, new_axis,
 * shrink_axis) and `offset`, resolved at prepare exactly as LiteRT's BuildStridedSliceParams,
 * StartForAxis and EndForAxis do, into one strided walk over the input. */
#include "movement.h"

enum { SS_BEGIN_MASK = 0, SS_END_MASK = 1, SS_ELLIPSIS_MASK = 2, SS_NEW_AXIS_MASK = 3, SS_SHRINK_AXIS_MASK = 4, SS_OFFSET = 5 };

#define SS_MAX_INDICES 31 /* LiteRT's limit on begin/end/strides entries */
#define SS_MAX_EFFECTIVE (EQ_MAX_DIMS + SS_MAX_INDICES)

typedef struct strided_slice_data {
  mv_walk walk;
  size_t elem;
} strided_slice_data;

static int bit(uint64_t mask, int32_t i) { return i >= 0 && i < 64 && ((mask >> i) & 1u); }

static int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi) { return v > hi ? hi : (v < lo ? lo : v); }

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* begin = eq_input(ctx, node, 1);
  eq_tensor* end = eq_input(ctx, node, 2);
  eq_tensor* strides = eq_input(ctx, node, 3);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 4 || node->noutputs != 1 || input == NULL || begin == NULL || end == NULL || strides == NULL ||
      output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 4 inputs (input, begin, end, strides) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_COPY_TYPES, "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, begin, "begin", 0);
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, end, "end", 0);
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, strides, "strides", 0);
  if (s != EDGEQ_OK) return s;
  if (begin->ndim != 1 || end->ndim != 1 || strides->ndim != 1 || end->count != begin->count ||
      strides->count != begin->count) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "begin, end and strides must be vectors of one length");
  }
  const int32_t count = (int32_t)begin->count, in_dims = input->ndim;
  if (count > SS_MAX_INDICES) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "%d indices; LiteRT allows at most %d", (int)count, SS_MAX_INDICES);
  }
  const int32_t* begin_data = (const int32_t*)(const void*)begin->data;
  const int32_t* end_data = (const int32_t*)(const void*)end->data;
  const int32_t* strides_data = (const int32_t*)(const void*)strides->data;
  const uint32_t begin_mask = (uint32_t)eq_opt_i32(node, SS_BEGIN_MASK, 0);
  const uint32_t end_mask = (uint32_t)eq_opt_i32(node, SS_END_MASK, 0);
  const uint32_t ellipsis_mask = (uint32_t)eq_opt_i32(node, SS_ELLIPSIS_MASK, 0);
  const uint32_t new_axis_mask = (uint32_t)eq_opt_i32(node, SS_NEW_AXIS_MASK, 0);
  const uint32_t shrink_mask = (uint32_t)eq_opt_i32(node, SS_SHRINK_AXIS_MASK, 0);
  const int offset = eq_opt_bool(node, SS_OFFSET, 0);
  const uint32_t valid = count >= 32 ? 0xFFFFFFFFu : ((1u << count) - 1u);
  if (((begin_mask | end_mask | ellipsis_mask | new_axis_mask | shrink_mask) & ~valid) != 0 ||
      (ellipsis_mask & (ellipsis_mask - 1)) != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "masks with bits beyond the %d indices or more than one ellipsis",
                    (int)count);
  }

  /* BuildStridedSliceParams: the effective dimensions after expanding the ellipsis and new axes. */
  int32_t num_add_axis = 0;
  for (int32_t i = 0; i < count; ++i) num_add_axis += !bit(ellipsis_mask, i) && bit(new_axis_mask, i);
  const int32_t eff_dims = in_dims + num_add_axis;
  uint64_t eff_ellipsis = 0, eff_new_axis = 0;
  int32_t ellipsis_start = eff_dims, expanded = 0;
  for (int32_t i = 0; i < eff_dims;) {
    if (bit(ellipsis_mask, i)) {
      ellipsis_start = i;
      int32_t stop = i + 1 + num_add_axis + in_dims - count;
      if (stop > eff_dims) stop = eff_dims;
      if (stop < i + 1) stop = i + 1;
      expanded = stop - ellipsis_start - 1;
      for (; i < stop; ++i) eff_ellipsis |= (uint64_t)1 << i;
      continue;
    }
    if (bit(new_axis_mask, i - expanded)) eff_new_axis |= (uint64_t)1 << i;
    ++i;
  }
  int32_t start[SS_MAX_EFFECTIVE], step[SS_MAX_EFFECTIVE], size[SS_MAX_EFFECTIVE];
  int32_t eff_begin[SS_MAX_EFFECTIVE], eff_end[SS_MAX_EFFECTIVE], shrink[SS_MAX_EFFECTIVE];
  int32_t bmask[SS_MAX_EFFECTIVE], emask[SS_MAX_EFFECTIVE];
  int32_t added_ellipsis = 0, added_axes = 0;
  for (int32_t i = 0; i < eff_dims; ++i) {
    eff_begin[i] = eff_end[i] = 0;
    step[i] = 1;
    bmask[i] = emask[i] = shrink[i] = 0;
    const int is_new = !bit(eff_ellipsis, i) && bit(eff_new_axis, i);
    if (!is_new && (i - added_axes < 0 || i - added_axes >= in_dims)) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "the masks do not map onto the rank-%d input", (int)in_dims);
    }
    if (bit(eff_ellipsis, i)) {
      added_ellipsis = i - ellipsis_start > 0 ? i - ellipsis_start : 0;
      bmask[i] = emask[i] = 1;
      size[i] = input->dims[i - added_axes];
    } else if (is_new) {
      eff_end[i] = 1;
      size[i] = 1;
      ++added_axes;
    } else if (i >= count + expanded) {
      bmask[i] = emask[i] = 1;
      size[i] = input->dims[i - added_axes];
    } else {
      const int32_t orig = i - added_ellipsis;
      if (orig < 0 || orig >= count) {
        return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "the masks do not map onto the %d indices", (int)count);
      }
      eff_begin[i] = begin_data[orig];
      eff_end[i] = end_data[orig];
      step[i] = strides_data[orig];
      bmask[i] = bit(begin_mask, orig);
      emask[i] = bit(end_mask, orig);
      shrink[i] = bit(shrink_mask, orig);
      size[i] = input->dims[i - added_axes];
    }
  }
  if (added_axes != num_add_axis) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "the masks do not map onto the rank-%d input", (int)in_dims);
  }

  /* StartForAxis / EndForAxis, the output shape LiteRT computes, and how many elements the copy loop
   * visits per dimension (they must agree, and agree with the stored output shape). */
  int64_t out_shape[SS_MAX_EFFECTIVE], visits[SS_MAX_EFFECTIVE];
  int32_t out_ndim = 0;
  int shrunk_empty = 0;
  for (int32_t i = 0; i < eff_dims; ++i) {
    const int32_t stride = step[i], axis_size = size[i];
    if (stride == 0 || stride == INT32_MIN) {
      return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "stride %d is not allowed", (int)stride);
    }
    int32_t b = eff_begin[i];
    if (b < 0) b += axis_size;
    b = stride > 0 ? clamp_i32(b, 0, axis_size) : clamp_i32(b, -1, axis_size - 1);
    if (bmask[i]) b = stride > 0 ? 0 : axis_size - 1;
    int32_t e;
    if (shrink[i]) {
      e = b >= axis_size ? b : b + 1;
    } else {
      int64_t e64 = (int64_t)eff_end[i] + (offset ? b : 0);
      if (e64 < INT32_MIN || e64 > INT32_MAX) {
        return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "end index of dimension %d overflows int32", (int)i);
      }
      e = (int32_t)e64;
      if (e < 0) e += axis_size;
      e = stride > 0 ? clamp_i32(e, 0, axis_size) : clamp_i32(e, -1, axis_size - 1);
      if (emask[i]) e = stride > 0 ? axis_size : -1;
    }
    start[i] = b;
    const int64_t span = stride > 0 ? (int64_t)e - b : (int64_t)b - e;
    const int64_t mag = stride > 0 ? stride : -(int64_t)stride;
    visits[i] = span > 0 ? (span + mag - 1) / mag : 0;
    if (shrink[i]) {
      shrunk_empty |= visits[i] == 0; /* LiteRT's output then has no elements to write, or it stays unwritten */
      continue;
    }
    int64_t dim;
    if (offset) {
      if (i >= count) {
        return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "offset with more effective dimensions than indices");
      }
      dim = end_data[i]; /* LiteRT sizes offset slices by the raw end value at the effective index */
    } else {
      dim = (int64_t)e - b;
    }
    if ((dim < 0) != (stride < 0)) {
      dim = 0;
    } else if (stride < 0) {
      dim = (dim + 1) / stride + 1;
    } else {
      dim = dim == 0 ? 0 : (dim - 1) / stride + 1;
    }
    if (dim != visits[i]) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "dimension %d: LiteRT sizes the output %lld but copies %lld "
                      "elements", (int)i, (long long)dim, (long long)visits[i]);
    }
    out_shape[out_ndim++] = dim;
  }
  if (out_ndim > EQ_MAX_DIMS) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "the output would have rank %d", (int)out_ndim);
  }
  if ((s = mv_expect_shape(ctx, output, out_ndim, out_shape, "output")) != EDGEQ_OK) return s;
  if (shrunk_empty && output->count != 0) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "a shrunk dimension selects no element; LiteRT would leave the "
                    "output unwritten");
  }

  strided_slice_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->elem = eq_type_size(input->type);
  /* Element strides of the effective input shape; dimensions visited once fold into the base. */
  int64_t in_stride = 1, base = 0;
  int32_t n = 0;
  int empty = 0;
  mv_walk* w = &data->walk;
  size_t rev_dims[EQ_MAX_DIMS];
  int64_t rev_strides[EQ_MAX_DIMS];
  for (int32_t i = eff_dims - 1; i >= 0; --i) {
    if (visits[i] == 0) empty = 1;
    if (visits[i] >= 1) base += (int64_t)start[i] * in_stride;
    if (visits[i] > 1) {
      if (n >= EQ_MAX_DIMS) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "too many sliced dimensions");
      rev_dims[n] = (size_t)visits[i];
      rev_strides[n] = (int64_t)step[i] * in_stride;
      ++n; /* only input dimensions can be visited more than once, so n <= rank */
    }
    in_stride *= size[i] > 0 ? size[i] : 1;
  }
  w->ndim = empty ? 1 : n;
  for (int32_t k = 0; k < n; ++k) {
    w->dims[k] = rev_dims[n - 1 - k];
    w->strides[k] = rev_strides[n - 1 - k];
  }
  if (empty) {
    w->dims[0] = 0;
    w->strides[0] = 1;
  }
  w->base = empty ? 0 : base;
  mv_walk_simplify(w);
  node->user = data;
  return EDGEQ_OK;
}

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const strided_slice_data* data = node->user;
  mv_walk_copy(&data->walk, eq_input(ctx, node, 0)->data, eq_output(ctx, node, 0)->data, data->elem);
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_strided_slice = {prepare, invoke};
