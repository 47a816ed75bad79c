/* A bounds-checked reader for the flatbuffer subset a .tflite file uses: tables, scalars, vectors of
 * scalars, vectors of tables, strings. Nothing is dereferenced before its bounds are checked, so a
 * hostile buffer yields an error, never an out-of-bounds read. */
#ifndef EDGEQ_FLATBUFFER_H_
#define EDGEQ_FLATBUFFER_H_

#include <stddef.h>
#include <stdint.h>

typedef struct fb_buffer {
  const uint8_t* data;
  size_t size;
} fb_buffer;

typedef struct fb_table {
  const fb_buffer* buf;
  size_t pos;        /* absolute offset of the table */
  size_t vtable;     /* absolute offset of its vtable */
  uint16_t vt_size;  /* vtable bytes */
  uint16_t tab_size; /* table bytes, as the vtable states */
} fb_table;

typedef struct fb_vector {
  const fb_buffer* buf;
  size_t pos; /* absolute offset of element 0 */
  uint32_t length;
  uint32_t elem_size;
} fb_vector;

/* All functions return 0 on success and -1 when the buffer breaks a bound. */
int fb_root(const fb_buffer* buf, fb_table* root);
/* Is field `id` present? (0 when absent or when the vtable is too short.) */
int fb_has(const fb_table* t, int id);
int fb_u8(const fb_table* t, int id, uint8_t def, uint8_t* out);
int fb_i8(const fb_table* t, int id, int8_t def, int8_t* out);
int fb_i32(const fb_table* t, int id, int32_t def, int32_t* out);
int fb_u32(const fb_table* t, int id, uint32_t def, uint32_t* out);
int fb_i64(const fb_table* t, int id, int64_t def, int64_t* out);
int fb_u64(const fb_table* t, int id, uint64_t def, uint64_t* out);
int fb_f32(const fb_table* t, int id, float def, float* out);
/* Sub-table field; *present is 0 (and *out untouched) when the field is absent. */
int fb_table_field(const fb_table* t, int id, fb_table* out, int* present);
/* Vector field of `elem_size`-byte scalars or of offsets (elem_size 4); absent gives length 0. */
int fb_vector_field(const fb_table* t, int id, uint32_t elem_size, fb_vector* out);
int fb_vector_table(const fb_vector* v, uint32_t i, fb_table* out);
/* String field: pointer to its bytes (not NUL-terminated by contract) and length; absent gives len 0. */
int fb_string_field(const fb_table* t, int id, const char** str, uint32_t* len);

/* Little-endian scalar loads from vectors (index checked against v->length by the caller's loop). */
int32_t fb_vec_i32(const fb_vector* v, uint32_t i);
int64_t fb_vec_i64(const fb_vector* v, uint32_t i);
float fb_vec_f32(const fb_vector* v, uint32_t i);

#endif
