/* RESIZE_BILINEAR (NHWC, constant INT32 size). INT8 and INT16 follow LiteRT's ResizeBilinearInteger:
 * 10-bit fixed-point source coordinates, a 20-bit weighted sum of the four neighbours rounded half
 * away from zero (double rounding build). UINT8 and FLOAT32 follow the generic reference ResizeBilinear in
 * float (UINT8 truncating value + 0.5). Source coordinates and neighbours are computed once at prepare. */
#include <math.h>

#include "movement.h"

enum { RB_ALIGN_CORNERS = 2, RB_HALF_PIXEL_CENTERS = 3 };

typedef struct rb_axis {
  int32_t lo, hi; /* neighbours */
  int32_t pos;    /* integer path: source coordinate << 10 */
  float fpos;     /* float path: source coordinate */
} rb_axis;

typedef struct rb_data {
  rb_axis* ys;
  rb_axis* xs;
  int32_t batches, in_h, in_w, out_h, out_w, depth;
} rb_data;

/* The integer path's scale ((1 << 10) * in + out / 2) / out, or the align_corners variant. */
static int64_t scale_10(int64_t in, int64_t out, int align) {
  if (align && out > 1) return ((1 << 10) * (in - 1) + (out - 1) / 2) / (out - 1);
  return ((1 << 10) * in + out / 2) / out;
}

static edgeq_status fill_integer(eq_context* ctx, rb_axis* t, int32_t in, int32_t out, int align, int half) {
  const int64_t scale = scale_10(in, out, align);
  for (int32_t i = 0; i < out; ++i) {
    const int64_t pos = half ? i * scale + scale / 2 - (1 << 9) : i * scale;
    const int64_t lo = pos / (1 << 10) > 0 ? pos / (1 << 10) : 0;          /* C division truncates, as LiteRT */
    const int64_t up = (pos + (1 << 10) - 1) / (1 << 10);
    const int64_t hi = up < in - 1 ? up : in - 1;
    if (pos < INT32_MIN || pos > INT32_MAX || lo > in - 1 || hi < 0) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output coordinate %d maps outside the %d input pixels", (int)i,
                      (int)in);
    }
    t[i].pos = (int32_t)pos;
    t[i].lo = (int32_t)lo;
    t[i].hi = (int32_t)hi;
  }
  return EDGEQ_OK;
}

static edgeq_status fill_float(eq_context* ctx, rb_axis* t, int32_t in, int32_t out, int align, int half) {
  float scale = (float)in / (float)out;
  if (align && out > 1) scale = (float)(in - 1) / (float)(out - 1);
  for (int32_t i = 0; i < out; ++i) {
    const float pos = half ? ((float)i + 0.5f) * scale - 0.5f : (float)i * scale;
    const float fl = floorf(pos), ce = ceilf(pos);
    if (!(fl > -2147483648.0f && ce < 2147483647.0f)) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output coordinate %d overflows", (int)i);
    }
    const int32_t lo = (int32_t)fl > 0 ? (int32_t)fl : 0;
    const int32_t hi = (int32_t)ce < in - 1 ? (int32_t)ce : in - 1;
    if (lo > in - 1 || hi < 0) {
      return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "output coordinate %d maps outside the %d input pixels", (int)i,
                      (int)in);
    }
    t[i].fpos = pos;
    t[i].lo = lo;
    t[i].hi = hi;
  }
  return EDGEQ_OK;
}

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* size = eq_input(ctx, node, 1);
  eq_tensor* output = eq_output(ctx, node, 0);
  if (node->ninputs != 2 || node->noutputs != 1 || input == NULL || size == NULL || output == NULL) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "expects 2 inputs (input, size) and 1 output");
  }
  edgeq_status s = mv_check_type(ctx, input, MV_QUANT_TYPES | MV_T(EQ_T_FLOAT32), "input");
  if (s == EDGEQ_OK) s = mv_check_same_type(ctx, input, output, "input", "output");
  if (s == EDGEQ_OK) s = mv_check_const_ints(ctx, size, "size", 0);
  if (s != EDGEQ_OK) return s;
  if (input->ndim != 4) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "input has rank %d; it must be 4", (int)input->ndim);
  if (size->ndim != 1 || size->dims[0] != 2) return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "size must have shape [2]");
  const int align = eq_opt_bool(node, RB_ALIGN_CORNERS, 0), half = eq_opt_bool(node, RB_HALF_PIXEL_CENTERS, 0);
  if (align && half) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "align_corners and half_pixel_centers are both set");
  }
  const int32_t out_h = (int32_t)eq_const_int(size, 0), out_w = (int32_t)eq_const_int(size, 1);
  if (out_h <= 0 || out_w <= 0) {
    return eq_error(ctx, EDGEQ_ERROR_MALFORMED, "size (%d, %d) must be positive", (int)out_h, (int)out_w);
  }
  const int64_t shape[4] = {input->dims[0], out_h, out_w, input->dims[3]};
  if ((s = mv_expect_shape(ctx, output, 4, shape, "output")) != EDGEQ_OK) return s;
  const int32_t in_h = input->dims[1], in_w = input->dims[2];
  /* LiteRT forms (1 << 10) * in + out / 2 in int32 */
  const int generic = input->type == EQ_T_UINT8 || input->type == EQ_T_FLOAT32;
  if (!generic && ((int64_t)1024 * in_h + out_h / 2 > INT32_MAX ||
                                    (int64_t)1024 * in_w + out_w / 2 > INT32_MAX)) {
    return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "input %dx%d overflows LiteRT's 10-bit fixed-point scale",
                    (int)in_h, (int)in_w);
  }
  rb_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  data->ys = eq_alloc(ctx, sizeof(rb_axis) * (size_t)out_h);
  data->xs = eq_alloc(ctx, sizeof(rb_axis) * (size_t)out_w);
  if (data->ys == NULL || data->xs == NULL) return EDGEQ_ERROR_MEMORY;
  if (output->count > 0) {
    if (generic) {
      if ((s = fill_float(ctx, data->ys, in_h, out_h, align, half)) != EDGEQ_OK) return s;
      if ((s = fill_float(ctx, data->xs, in_w, out_w, align, half)) != EDGEQ_OK) return s;
    } else {
      if ((s = fill_integer(ctx, data->ys, in_h, out_h, align, half)) != EDGEQ_OK) return s;
      if ((s = fill_integer(ctx, data->xs, in_w, out_w, align, half)) != EDGEQ_OK) return s;
    }
  }
  data->batches = input->dims[0];
  data->in_h = in_h;
  data->in_w = in_w;
  data->out_h = out_h;
  data->out_w = out_w;
  data->depth = input->dims[3];
  node->user = data;
  return EDGEQ_OK;
}

/* The 20-bit sum of the four weighted neighbours, rounded half away from zero to the nearest integer
 * (LiteRT without TFLITE_SINGLE_ROUNDING), narrowed to T with wraparound like LiteRT's static_cast. */
#define RB_INTEGER_LOOP(T)                                                                                     \
  do {                                                                                                         \
    const T* in = (const T*)(const void*)input->data;                                                         \
    T* out = (T*)(void*)output->data;                                                                         \
    for (size_t b = 0; b < (size_t)d->batches; ++b) {                                                         \
      const T* image = in + b * (size_t)d->in_h * (size_t)d->in_w * depth;                                   \
      for (int32_t y = 0; y < d->out_h; ++y) {                                                                \
        const rb_axis* ay = &d->ys[y];                                                                         \
        const int32_t dy = ay->pos - (1 << 10) * ay->lo;                                                       \
        const T* row0 = image + (size_t)ay->lo * (size_t)d->in_w * depth;                                     \
        const T* row1 = image + (size_t)ay->hi * (size_t)d->in_w * depth;                                     \
        for (int32_t x = 0; x < d->out_w; ++x) {                                                              \
          const rb_axis* ax = &d->xs[x];                                                                       \
          const int32_t dx = ax->pos - (1 << 10) * ax->lo;                                                     \
          const int64_t w00 = (int64_t)((1 << 10) - dy) * ((1 << 10) - dx), w10 = (int64_t)dy * ((1 << 10) - dx); \
          const int64_t w01 = (int64_t)((1 << 10) - dy) * dx, w11 = (int64_t)dy * dx;                          \
          const T* p00 = row0 + (size_t)ax->lo * depth;                                                        \
          const T* p01 = row0 + (size_t)ax->hi * depth;                                                        \
          const T* p10 = row1 + (size_t)ax->lo * depth;                                                        \
          const T* p11 = row1 + (size_t)ax->hi * depth;                                                        \
          for (size_t c = 0; c < depth; ++c) {                                                                 \
            const int64_t sum = p00[c] * w00 + p10[c] * w10 + p01[c] * w01 + p11[c] * w11;                     \
            const int64_t round = sum > 0 ? (1 << 19) : -(1 << 19);                                            \
            *out++ = (T)((sum + round) / (1 << 20));                                                           \
          }                                                                                                    \
        }                                                                                                      \
      }                                                                                                        \
    }                                                                                                          \
  } while (0)

/* The generic reference ResizeBilinear: LiteRT's expression evaluated left to right in float, plus the
 * rounding offset (0.5 for integers, 0 for float, which still turns -0 into +0), stored by STORE. */
#define RB_FLOAT_PATH(NAME, T, OFFSET, STORE)                                                         \
  static void NAME(const rb_data* d, const T* in, T* out) {                                            \
    const size_t depth = (size_t)d->depth;                                                             \
    for (size_t b = 0; b < (size_t)d->batches; ++b) {                                                  \
      const T* image = in + b * (size_t)d->in_h * (size_t)d->in_w * depth;                             \
      for (int32_t y = 0; y < d->out_h; ++y) {                                                         \
        const rb_axis* ay = &d->ys[y];                                                                 \
        const float fy = ay->fpos - (float)ay->lo, gy = 1.0f - fy;                                     \
        const T* row0 = image + (size_t)ay->lo * (size_t)d->in_w * depth;                              \
        const T* row1 = image + (size_t)ay->hi * (size_t)d->in_w * depth;                              \
        for (int32_t x = 0; x < d->out_w; ++x) {                                                       \
          const rb_axis* ax = &d->xs[x];                                                               \
          const float fx = ax->fpos - (float)ax->lo, gx = 1.0f - fx;                                   \
          const T* p00 = row0 + (size_t)ax->lo * depth;                                                \
          const T* p01 = row0 + (size_t)ax->hi * depth;                                                \
          const T* p10 = row1 + (size_t)ax->lo * depth;                                                \
          const T* p11 = row1 + (size_t)ax->hi * depth;                                                \
          for (size_t c = 0; c < depth; ++c) {                                                         \
            float v = (float)p00[c] * gy * gx;                                                         \
            v = v + (float)p10[c] * fy * gx;                                                           \
            v = v + (float)p01[c] * gy * fx;                                                           \
            v = v + (float)p11[c] * fy * fx;                                                           \
            v = v + (OFFSET);                                                                          \
            *out++ = STORE(v);                                                                         \
          }                                                                                            \
        }                                                                                              \
      }                                                                                                \
    }                                                                                                  \
  }

/* truncation through int32, as x86 converts float to uint8 */
#define RB_STORE_U8(v) ((uint8_t)(int32_t)(v))
#define RB_STORE_F32(v) (v)
RB_FLOAT_PATH(invoke_u8, uint8_t, 0.5f, RB_STORE_U8)
RB_FLOAT_PATH(invoke_f32, float, 0.0f, RB_STORE_F32)

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const rb_data* d = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  const size_t depth = (size_t)d->depth;
  if (output->count == 0) return EDGEQ_OK;
  switch (input->type) {
    case EQ_T_INT8:
      RB_INTEGER_LOOP(int8_t);
      break;
    case EQ_T_INT16:
      RB_INTEGER_LOOP(int16_t);
      break;
    case EQ_T_FLOAT32:
      invoke_f32(d, (const float*)input->data, (float*)output->data);
      break;
    default:
      invoke_u8(d, input->data, output->data);
      break;
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_resize_bilinear = {prepare, invoke};
