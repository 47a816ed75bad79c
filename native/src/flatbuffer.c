#include "flatbuffer.h"

#include <string.h>

static int in_bounds(const fb_buffer* b, size_t pos, size_t len) {
  return pos <= b->size && len <= b->size - pos;
}

static uint16_t load_u16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t load_u32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t load_u64(const uint8_t* p) { return (uint64_t)load_u32(p) | ((uint64_t)load_u32(p + 4) << 32); }

static int table_at(const fb_buffer* b, size_t pos, fb_table* out) {
  if (!in_bounds(b, pos, 4) || (pos & 3) != 0) return -1;
  int64_t vt = (int64_t)pos - (int64_t)(int32_t)load_u32(b->data + pos);
  if (vt < 0 || !in_bounds(b, (size_t)vt, 4) || (vt & 1) != 0) return -1;
  uint16_t vt_size = load_u16(b->data + vt);
  uint16_t tab_size = load_u16(b->data + vt + 2);
  if (vt_size < 4 || (vt_size & 1) != 0 || !in_bounds(b, (size_t)vt, vt_size)) return -1;
  if (tab_size < 4 || !in_bounds(b, pos, tab_size)) return -1;
  out->buf = b;
  out->pos = pos;
  out->vtable = (size_t)vt;
  out->vt_size = vt_size;
  out->tab_size = tab_size;
  return 0;
}

int fb_root(const fb_buffer* b, fb_table* root) {
  if (b == NULL || b->data == NULL || !in_bounds(b, 0, 8)) return -1;
  return table_at(b, load_u32(b->data), root);
}

/* Absolute position of field `id` holding `size` bytes, or 0 when absent; -1 on a broken bound. */
static int64_t field_pos(const fb_table* t, int id, size_t size) {
  size_t slot = 4 + 2 * (size_t)id;
  if (id < 0 || slot + 2 > t->vt_size) return 0;
  uint16_t off = load_u16(t->buf->data + t->vtable + slot);
  if (off == 0) return 0;
  if (off < 4 || (size_t)off + size > t->tab_size) return -1;
  return (int64_t)(t->pos + off);
}

int fb_has(const fb_table* t, int id) { return field_pos(t, id, 1) > 0; }

#define FB_SCALAR(fn, type, size, load)                         \
  int fn(const fb_table* t, int id, type def, type* out) {      \
    int64_t p = field_pos(t, id, size);                         \
    if (p < 0) return -1;                                       \
    if (p == 0) {                                               \
      *out = def;                                               \
      return 0;                                                 \
    }                                                           \
    load;                                                       \
    return 0;                                                   \
  }

FB_SCALAR(fb_u8, uint8_t, 1, *out = t->buf->data[p])
FB_SCALAR(fb_i8, int8_t, 1, *out = (int8_t)t->buf->data[p])
FB_SCALAR(fb_i32, int32_t, 4, *out = (int32_t)load_u32(t->buf->data + p))
FB_SCALAR(fb_u32, uint32_t, 4, *out = load_u32(t->buf->data + p))
FB_SCALAR(fb_i64, int64_t, 8, *out = (int64_t)load_u64(t->buf->data + p))
FB_SCALAR(fb_u64, uint64_t, 8, *out = load_u64(t->buf->data + p))
FB_SCALAR(fb_f32, float, 4, {
  uint32_t bits = load_u32(t->buf->data + p);
  memcpy(out, &bits, sizeof bits);
})

/* Follows the uoffset stored at `pos`. */
static int deref(const fb_buffer* b, size_t pos, size_t* target) {
  if (!in_bounds(b, pos, 4)) return -1;
  uint32_t off = load_u32(b->data + pos);
  if (off == 0 || !in_bounds(b, pos, off)) return -1;
  *target = pos + off;
  return 0;
}

int fb_table_field(const fb_table* t, int id, fb_table* out, int* present) {
  int64_t p = field_pos(t, id, 4);
  *present = 0;
  if (p < 0) return -1;
  if (p == 0) return 0;
  size_t target;
  if (deref(t->buf, (size_t)p, &target) != 0 || table_at(t->buf, target, out) != 0) return -1;
  *present = 1;
  return 0;
}

int fb_vector_field(const fb_table* t, int id, uint32_t elem_size, fb_vector* out) {
  int64_t p = field_pos(t, id, 4);
  out->buf = t->buf;
  out->pos = 0;
  out->length = 0;
  out->elem_size = elem_size;
  if (p < 0) return -1;
  if (p == 0) return 0;
  size_t target;
  if (deref(t->buf, (size_t)p, &target) != 0 || !in_bounds(t->buf, target, 4)) return -1;
  uint32_t length = load_u32(t->buf->data + target);
  if (elem_size != 0 && length > (t->buf->size - target - 4) / elem_size) return -1;
  out->pos = target + 4;
  out->length = length;
  return 0;
}

int fb_vector_table(const fb_vector* v, uint32_t i, fb_table* out) {
  size_t target;
  if (i >= v->length || v->elem_size != 4) return -1;
  if (deref(v->buf, v->pos + 4 * (size_t)i, &target) != 0) return -1;
  return table_at(v->buf, target, out);
}

int fb_string_field(const fb_table* t, int id, const char** str, uint32_t* len) {
  fb_vector v;
  if (fb_vector_field(t, id, 1, &v) != 0) return -1;
  *str = (const char*)(v.length ? t->buf->data + v.pos : NULL);
  *len = v.length;
  return 0;
}

int32_t fb_vec_i32(const fb_vector* v, uint32_t i) { return (int32_t)load_u32(v->buf->data + v->pos + 4 * (size_t)i); }
int64_t fb_vec_i64(const fb_vector* v, uint32_t i) { return (int64_t)load_u64(v->buf->data + v->pos + 8 * (size_t)i); }
float fb_vec_f32(const fb_vector* v, uint32_t i) {
  uint32_t bits = load_u32(v->buf->data + v->pos + 4 * (size_t)i);
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}
