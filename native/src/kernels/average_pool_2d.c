/* AVERAGE_POOL_2D, int8 / uint8 / int16 (NHWC), as LiteRT's reference AveragePool: the raw quantized
 * values (zero point included) of the in-image part of each window are summed in int32 and divided by
 * their count, rounding half away from zero (uint8: half up), then clamped to the activation range. */
#include "pool_common.h"

typedef struct avg_pool_data {
  eq_pool_params p;
  int32_t acc_slot; /* per-channel int32 sums of one output pixel */
} avg_pool_data;

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  avg_pool_data* data = eq_alloc(ctx, sizeof *data);
  if (data == NULL) return EDGEQ_ERROR_MEMORY;
  edgeq_status s = eq_pool_prepare(ctx, node, &data->p);
  if (s != EDGEQ_OK) return s;
  const eq_pool_params* p = &data->p;
  /* LiteRT counts window elements in an int. */
  const int64_t wh = p->filter_h < p->in_h ? p->filter_h : p->in_h;
  const int64_t ww = p->filter_w < p->in_w ? p->filter_w : p->in_w;
  if (wh * ww > INT32_MAX) return eq_error(ctx, EDGEQ_ERROR_UNSUPPORTED, "window of %lld elements", (long long)(wh * ww));
  data->acc_slot = eq_request_scratch(ctx, node, sizeof(uint32_t) * (size_t)(p->channels > 0 ? p->channels : 1));
  if (data->acc_slot < 0) return EDGEQ_ERROR_MEMORY;
  node->user = data;
  return EDGEQ_OK;
}

/* The sum wraps in int32 like LiteRT's accumulator (only reachable with windows of millions of elements):
 * it is kept in uint32 and the rounding offset is added with wraparound too. */
static inline int32_t round_div(uint32_t acc, int32_t count, int unsigned_type) {
  const int32_t a = (int32_t)acc;
  const uint32_t half = (uint32_t)(count / 2);
  const int32_t t = (unsigned_type || a > 0) ? (int32_t)(acc + half) : (int32_t)(acc - half);
  return t / count;
}

#define DEFINE_AVG_POOL(NAME, T, UNSIGNED)                                                                         \
  static edgeq_status NAME(eq_context* ctx, const eq_pool_params* p, const T* in, T* out, uint32_t* acc) {      \
    const size_t C = (size_t)p->channels;                                                                        \
    for (int32_t b = 0; b < p->batches; ++b) {                                                                   \
      const T* image = in + (size_t)b * (size_t)p->in_h * (size_t)p->in_w * C;                                   \
      for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                                \
        int32_t y0, y1;                                                                                          \
        eq_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, p->in_h, &y0, &y1);                               \
        for (int32_t ox = 0; ox < p->out_w; ++ox, out += C) {                                                   \
          int32_t x0, x1;                                                                                        \
          eq_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, p->in_w, &x0, &x1);                             \
          const int32_t count = (y1 - y0) * (x1 - x0);                                                           \
          if (count == 0) return eq_error(ctx, EDGEQ_ERROR_RUNTIME, "a pooling window lies outside the image");  \
          for (size_t c = 0; c < C; ++c) acc[c] = 0;                                                             \
          for (int32_t y = y0; y < y1; ++y) {                                                                    \
            const T* row = image + ((size_t)y * (size_t)p->in_w + (size_t)x0) * C;                               \
            for (int32_t x = x0; x < x1; ++x, row += C) {                                                        \
              for (size_t c = 0; c < C; ++c) acc[c] += (uint32_t)(int32_t)row[c];                               \
            }                                                                                                    \
          }                                                                                                      \
          for (size_t c = 0; c < C; ++c) {                                                                       \
            out[c] = (T)eq_clamp32(round_div(acc[c], count, UNSIGNED), p->act_min, p->act_max);                  \
          }                                                                                                      \
        }                                                                                                        \
      }                                                                                                          \
    }                                                                                                            \
    return EDGEQ_OK;                                                                                             \
  }

DEFINE_AVG_POOL(avg_pool_s8, int8_t, 0)
DEFINE_AVG_POOL(avg_pool_u8, uint8_t, 1)
DEFINE_AVG_POOL(avg_pool_s16, int16_t, 0)

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const avg_pool_data* data = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  /* Nothing to write (e.g. zero channels): LiteRT's channel loop is innermost, so it visits no window
   * either; here the windows are outer loops, which a hostile huge window would make slow. */
  if (output->count == 0) return EDGEQ_OK;
  uint32_t* acc = eq_scratch(ctx, node, data->acc_slot);
  switch (input->type) {
    case EQ_T_INT8:
      return avg_pool_s8(ctx, &data->p, (const int8_t*)input->data, (int8_t*)output->data, acc);
    case EQ_T_UINT8:
      return avg_pool_u8(ctx, &data->p, (const uint8_t*)input->data, (uint8_t*)output->data, acc);
    default:
      return avg_pool_s16(ctx, &data->p, (const int16_t*)input->data, (int16_t*)output->data, acc);
  }
}

const eq_kernel eq_kernel_average_pool_2d = {prepare, invoke};
