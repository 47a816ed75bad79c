/* MAX_POOL_2D, int8 / uint8 / int16 (NHWC), as LiteRT's reference MaxPool: the largest raw value of the
 * in-image part of each window (the type's lowest value when the window is empty), clamped to the
 * activation range. */
#include "pool_common.h"

static edgeq_status prepare(eq_context* ctx, eq_node* node) {
  eq_pool_params* p = eq_alloc(ctx, sizeof *p);
  if (p == NULL) return EDGEQ_ERROR_MEMORY;
  edgeq_status s = eq_pool_prepare(ctx, node, p);
  if (s != EDGEQ_OK) return s;
  node->user = p;
  return EDGEQ_OK;
}

/* The running maxima live in the output pixel itself; the input is a different tensor. */
#define DEFINE_MAX_POOL(NAME, T, LOWEST)                                                              \
  static void NAME(const eq_pool_params* p, const T* in, T* out) {                                   \
    const size_t C = (size_t)p->channels;                                                           \
    const T lo = (T)p->act_min, hi = (T)p->act_max;                                                 \
    for (int32_t b = 0; b < p->batches; ++b) {                                                      \
      const T* image = in + (size_t)b * (size_t)p->in_h * (size_t)p->in_w * C;                      \
      for (int32_t oy = 0; oy < p->out_h; ++oy) {                                                   \
        int32_t y0, y1;                                                                             \
        eq_pool_window(oy, p->stride_h, p->pad_h, p->filter_h, p->in_h, &y0, &y1);                  \
        for (int32_t ox = 0; ox < p->out_w; ++ox, out += C) {                                      \
          int32_t x0, x1;                                                                           \
          eq_pool_window(ox, p->stride_w, p->pad_w, p->filter_w, p->in_w, &x0, &x1);                \
          for (size_t c = 0; c < C; ++c) out[c] = (LOWEST);                                         \
          for (int32_t y = y0; y < y1; ++y) {                                                       \
            const T* row = image + ((size_t)y * (size_t)p->in_w + (size_t)x0) * C;                  \
            for (int32_t x = x0; x < x1; ++x, row += C) {                                           \
              for (size_t c = 0; c < C; ++c) out[c] = row[c] > out[c] ? row[c] : out[c];            \
            }                                                                                       \
          }                                                                                         \
          for (size_t c = 0; c < C; ++c) out[c] = out[c] < lo ? lo : (out[c] > hi ? hi : out[c]);   \
        }                                                                                           \
      }                                                                                             \
    }                                                                                               \
  }

DEFINE_MAX_POOL(max_pool_s8, int8_t, INT8_MIN)
DEFINE_MAX_POOL(max_pool_u8, uint8_t, 0)
DEFINE_MAX_POOL(max_pool_s16, int16_t, INT16_MIN)

static edgeq_status invoke(eq_context* ctx, eq_node* node) {
  const eq_pool_params* p = node->user;
  const eq_tensor* input = eq_input(ctx, node, 0);
  eq_tensor* output = eq_output(ctx, node, 0);
  /* Nothing to write (e.g. zero channels): LiteRT's channel loop is innermost, so it visits no window
   * either; here the windows are outer loops, which a hostile huge window would make slow. */
  if (output->count == 0) return EDGEQ_OK;
  switch (input->type) {
    case EQ_T_INT8:
      max_pool_s8(p, (const int8_t*)input->data, (int8_t*)output->data);
      break;
    case EQ_T_UINT8:
      max_pool_u8(p, (const uint8_t*)input->data, (uint8_t*)output->data);
      break;
    default:
      max_pool_s16(p, (const int16_t*)input->data, (int16_t*)output->data);
      break;
  }
  return EDGEQ_OK;
}

const eq_kernel eq_kernel_max_pool_2d = {prepare, invoke};
