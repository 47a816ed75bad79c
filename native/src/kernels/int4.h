/* Packed INT4 tensors (TFLite stores two values a byte, low nibble first): element i, sign-extended. */
#ifndef EDGEQ_KERNELS_INT4_H_
#define EDGEQ_KERNELS_INT4_H_

#include <stddef.h>
#include <stdint.h>

static inline int8_t s4_at(const uint8_t* packed, size_t i) {
  const int nibble = (i % 2) ? (packed[i / 2] >> 4) : (packed[i / 2] & 0x0F);
  return (int8_t)(nibble >= 8 ? nibble - 16 : nibble);
}

#endif
