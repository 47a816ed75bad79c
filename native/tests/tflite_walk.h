/* A schema walk over a .tflite flatbuffer that lists the positions of its structural fields (table and
 * vtable offsets, vtable entries, vector lengths, shape entries, tensor types, indices, scales, zero
 * points, option fields), and the values worth writing over each kind. Shared by the mutation test
 * (tests/mutate.c) and the libFuzzer target's structure-aware mutator (fuzz/fuzz_load_invoke.c); it
 * reads through the library's bounds-checked flatbuffer reader. */
#ifndef EDGEQ_TFLITE_WALK_H_
#define EDGEQ_TFLITE_WALK_H_

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flatbuffer.h"

enum kind { K_U32, K_U16, K_LENGTH, K_INDEX, K_FLOAT, K_I64, K_BYTE, NKINDS };

typedef struct target {
  size_t pos;
  int kind;
} target;

#define MAX_GLOBAL 4096 /* shape entries and type bytes remembered for whole-model rewrites */

typedef struct walk {
  const fb_buffer* buf;
  target* items;
  size_t n, cap;
  int failed; /* out of memory */
  size_t dims[MAX_GLOBAL], types[MAX_GLOBAL]; /* positions of every shape entry and tensor type byte */
  size_t ndims, ntypes;
} walk;

static inline void add(walk* w, size_t pos, int kind) {
  size_t width = kind == K_U16 ? 2 : kind == K_I64 ? 8 : kind == K_BYTE ? 1 : 4;
  if (pos > w->buf->size || width > w->buf->size - pos) return;
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 256;
    target* grown = realloc(w->items, cap * sizeof *grown);
    if (grown == NULL) {
      w->failed = 1;
      return;
    }
    w->items = grown;
    w->cap = cap;
  }
  w->items[w->n].pos = pos;
  w->items[w->n].kind = kind;
  ++w->n;
}

static inline uint16_t rd16(const fb_buffer* b, size_t p) { return (uint16_t)(b->data[p] | (b->data[p + 1] << 8)); }

/* Absolute position of a present field, 0 when absent. */
static inline size_t field_at(const fb_table* t, int id) {
  size_t slot = 4 + 2 * (size_t)id;
  if (slot + 2 > t->vt_size) return 0;
  uint16_t off = rd16(t->buf, t->vtable + slot);
  return off == 0 ? 0 : t->pos + off;
}

/* The table's soffset, its vtable header and entries, and each present field as `kinds[id]`. */
static inline void add_table(walk* w, const fb_table* t, const int* kinds, int nfields) {
  add(w, t->pos, K_U32);
  add(w, t->vtable, K_U16);
  add(w, t->vtable + 2, K_U16);
  for (size_t slot = 4; slot + 2 <= t->vt_size; slot += 2) add(w, t->vtable + slot, K_U16);
  for (int id = 0; id < nfields; ++id) {
    size_t p = field_at(t, id);
    if (p != 0 && kinds[id] >= 0) add(w, p, kinds[id]);
  }
}

/* A vector field: its uoffset, its length and (for scalar vectors) every element up to `limit`. */
static inline void add_vector(walk* w, const fb_table* t, int id, uint32_t elem_size, int elem_kind, uint32_t limit,
                       fb_vector* out) {
  fb_vector v;
  if (fb_vector_field(t, id, elem_size, &v) != 0 || v.length == 0) {
    if (out) out->length = 0;
    return;
  }
  add(w, field_at(t, id), K_U32);
  add(w, v.pos - 4, K_LENGTH);
  for (uint32_t i = 0; elem_kind >= 0 && i < v.length && i < limit; ++i) add(w, v.pos + (size_t)i * elem_size, elem_kind);
  if (out) *out = v;
}

/* Any table nested in `t` (operator options): each field as a 4-byte or 1-byte value. */
static inline void add_options(walk* w, const fb_table* t) {
  add(w, t->pos, K_U32);
  add(w, t->vtable, K_U16);
  for (size_t slot = 4; slot + 2 <= t->vt_size; slot += 2) {
    add(w, t->vtable + slot, K_U16);
    uint16_t off = rd16(t->buf, t->vtable + slot);
    if (off == 0) continue;
    add(w, t->pos + off, (off & 3) == 0 && off + 4u <= t->tab_size ? K_INDEX : K_BYTE);
  }
}

static inline void walk_model(walk* w) {
  static const int model_kinds[] = {K_U32, -1, -1, -1, -1};
  static const int code_kinds[] = {K_BYTE, -1, K_INDEX, K_INDEX};
  static const int subgraph_kinds[] = {-1, -1, -1, -1};
  static const int tensor_kinds[] = {-1, K_BYTE, K_INDEX, -1, -1, K_BYTE, -1};
  static const int quant_kinds[] = {-1, -1, -1, -1, K_BYTE, -1, K_INDEX};
  static const int op_kinds[] = {K_INDEX, -1, -1, K_BYTE, -1};
  static const int buffer_kinds[] = {-1, K_I64, K_I64};
  const fb_buffer* b = w->buf;
  fb_table model;
  if (fb_root(b, &model) != 0) return;
  add(w, 0, K_U32);
  add_table(w, &model, model_kinds, 5);
  fb_vector codes, subgraphs, buffers;
  add_vector(w, &model, 1, 4, -1, 0, &codes);
  add_vector(w, &model, 2, 4, -1, 0, &subgraphs);
  add_vector(w, &model, 4, 4, -1, 0, &buffers);
  for (uint32_t i = 0; i < codes.length; ++i) {
    fb_table t;
    add(w, codes.pos + 4 * (size_t)i, K_U32);
    if (fb_vector_table(&codes, i, &t) == 0) add_table(w, &t, code_kinds, 4);
  }
  for (uint32_t i = 0; i < buffers.length && i < 4096; ++i) {
    fb_table t;
    add(w, buffers.pos + 4 * (size_t)i, K_U32);
    if (fb_vector_table(&buffers, i, &t) != 0) continue;
    add_table(w, &t, buffer_kinds, 3);
    add_vector(w, &t, 0, 1, -1, 0, NULL);
  }
  for (uint32_t g = 0; g < subgraphs.length && g < 4; ++g) {
    fb_table sg;
    add(w, subgraphs.pos + 4 * (size_t)g, K_U32);
    if (fb_vector_table(&subgraphs, g, &sg) != 0) continue;
    add_table(w, &sg, subgraph_kinds, 4);
    fb_vector tensors, operators;
    add_vector(w, &sg, 0, 4, -1, 0, &tensors);
    add_vector(w, &sg, 1, 4, K_INDEX, 64, NULL);
    add_vector(w, &sg, 2, 4, K_INDEX, 64, NULL);
    add_vector(w, &sg, 3, 4, -1, 0, &operators);
    for (uint32_t i = 0; i < tensors.length && i < 4096; ++i) {
      fb_table t, q;
      int has_q;
      add(w, tensors.pos + 4 * (size_t)i, K_U32);
      if (fb_vector_table(&tensors, i, &t) != 0) continue;
      add_table(w, &t, tensor_kinds, 7);
      fb_vector shape;
      add_vector(w, &t, 0, 4, K_INDEX, 8, &shape);
      for (uint32_t d = 0; d < shape.length && w->ndims < MAX_GLOBAL; ++d) w->dims[w->ndims++] = shape.pos + 4 * (size_t)d;
      size_t type_pos = field_at(&t, 1);
      if (type_pos != 0 && type_pos < b->size && w->ntypes < MAX_GLOBAL) w->types[w->ntypes++] = type_pos;
      add_vector(w, &t, 3, 1, -1, 0, NULL);
      if (fb_table_field(&t, 4, &q, &has_q) == 0 && has_q) {
        add(w, field_at(&t, 4), K_U32);
        add_table(w, &q, quant_kinds, 7);
        add_vector(w, &q, 2, 4, K_FLOAT, 4, NULL);
        add_vector(w, &q, 3, 8, K_I64, 4, NULL);
      }
    }
    for (uint32_t i = 0; i < operators.length && i < 4096; ++i) {
      fb_table t, options;
      int has_options;
      add(w, operators.pos + 4 * (size_t)i, K_U32);
      if (fb_vector_table(&operators, i, &t) != 0) continue;
      add_table(w, &t, op_kinds, 5);
      add_vector(w, &t, 1, 4, K_INDEX, 16, NULL);
      add_vector(w, &t, 2, 4, K_INDEX, 16, NULL);
      if (fb_table_field(&t, 4, &options, &has_options) == 0 && has_options) {
        add(w, field_at(&t, 4), K_U32);
        add_options(w, &options);
      }
    }
  }
}

static inline void put16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

#define NVALUES 12 /* value choices per field kind */

/* Writes the v-th interesting value for the field's kind at its position. */
static inline void overwrite(uint8_t* m, const target* t, int v) {
  uint8_t* p = m + t->pos;
  switch (t->kind) {
    case K_U16: {
      static const uint16_t values[NVALUES] = {0, 1, 2, 3, 4, 6, 0x7FFE, 0x8000, 0xFFFE, 0xFFFF, 0, 0};
      uint16_t old = (uint16_t)(p[0] | (p[1] << 8));
      put16(p, v < 10 ? values[v] : v == 10 ? (uint16_t)(old + 2) : (uint16_t)(old - 2));
      return;
    }
    case K_BYTE: {
      static const uint8_t values[NVALUES] = {0, 1, 2, 3, 4, 6, 9, 17, 0x7F, 0x80, 0xFF, 0};
      p[0] = v < 11 ? values[v] : (uint8_t)(p[0] + 1);
      return;
    }
    case K_FLOAT: {
      static const float values[NVALUES] = {0.0f, -0.0f, -1.0f, 1e-45f, 1e-38f, 1e-30f, 1e30f, FLT_MAX, 1.0f, 0.0f,
                                            0.0f, 0.0f};
      uint32_t bits = v < 9 ? float_bits(values[v]) : v == 9 ? 0x7FC00000u : v == 10 ? 0x7F800000u : 0xFF800000u;
      put32(p, bits);
      return;
    }
    case K_I64: {
      static const uint64_t values[NVALUES] = {0,
                                               1,
                                               (uint64_t)-1,
                                               (uint64_t)-128,
                                               (uint64_t)-129,
                                               127,
                                               128,
                                               255,
                                               256,
                                               32768,
                                               (uint64_t)INT64_MAX,
                                               (uint64_t)INT64_MIN};
      put64(p, values[v]);
      return;
    }
    default: { /* offsets, lengths, indices, dimensions */
      const uint32_t x = get32(p);
      static const uint32_t values[8] = {0, 1, 0xFFFFFFFFu, 0x7FFFFFFFu, 0x80000000u, 0x10000u, 0x40000000u, 0xFFFFu};
      uint32_t out = v < 8 ? values[v] : v == 8 ? x + 1 : v == 9 ? x - 1 : v == 10 ? x + 4 : x - 4;
      put32(p, out);
      return;
    }
  }
}

/* Whole-model rewrites that keep the graph consistent: every shape entry equal to `from` becomes `to`
 * (activation sizes change together; a constant whose size no longer matches its buffer is rejected). */
static inline void rewrite_dims(const uint8_t* data, uint8_t* m, const walk* w, uint32_t from, uint32_t to) {
  for (size_t j = 0; j < w->ndims; ++j) {
    if (get32(data + w->dims[j]) == from) put32(m + w->dims[j], to);
  }
}

#define NTYPE_SWAPS 9
/* Every tensor of one type becomes another (int8 -> uint8, int16, int32, bool; int16 -> int4, ...);
 * returns 0 when the model has no tensor of the first type. */
static inline int swap_types(const uint8_t* data, uint8_t* m, const walk* w, int k) {
  static const uint8_t swaps[NTYPE_SWAPS][2] = {{9, 3}, {3, 9}, {9, 7}, {7, 9}, {9, 2}, {7, 2}, {2, 4}, {9, 6}, {7, 17}};
  int changed = 0;
  for (size_t j = 0; j < w->ntypes; ++j) {
    if (data[w->types[j]] == swaps[k][0]) {
      m[w->types[j]] = swaps[k][1];
      changed = 1;
    }
  }
  return changed;
}

#endif
