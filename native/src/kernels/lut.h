/* Lookup tables as TFLite's LUTPopulate builds them (kernels/internal/common.h), entry for entry: the same
 * float (or double) operations in the same order, so the tables match LiteRT's bit for bit.
 *
 * 8-bit tables have 256 entries indexed by the raw byte of the input (int8 -1 is index 255). int16 tables
 * have 513 entries: 512 samples over the input range plus one to interpolate the last, looked up with the
 * top 9 bits of the input and interpolated with the low 7. */
#ifndef EDGEQ_KERNELS_LUT_H_
#define EDGEQ_KERNELS_LUT_H_

#include <stddef.h>
#include <stdint.h>

#define EQ_LUT16_SIZE 513

typedef float (*eq_lut_fn)(float x, const void* params);
typedef double (*eq_lut_fn_f64)(double x);

/* LUTPopulateInt8 for int8 (is_signed) or uint8 tensors. */
void eq_lut_populate_8(int is_signed, float input_scale, int32_t input_zero_point, float output_scale,
                       int32_t output_zero_point, eq_lut_fn fn, const void* params, uint8_t lut[256]);

/* LUTPopulateInt16<float> and LUTPopulateInt16<double>. */
void eq_lut_populate_16(float input_scale, int32_t input_zero_point, float output_scale, int32_t output_zero_point,
                        eq_lut_fn fn, const void* params, int16_t lut[EQ_LUT16_SIZE]);
void eq_lut_populate_16_f64(double input_scale, int32_t input_zero_point, double output_scale,
                            int32_t output_zero_point, eq_lut_fn_f64 fn, int16_t lut[EQ_LUT16_SIZE]);

/* static_cast<int32_t>(float) where the value may not fit is undefined in C and C++; LiteRT's pip build
 * (x86-64) answers differently in different places. These give its two answers without the undefined cast:
 * saturating with NaN giving 0, and cvttss2si's INT32_MIN for NaN and every out-of-range value. */
int32_t eq_f32_to_i32_sat(float x);
int32_t eq_f32_to_i32_cvtt(float x);

/* LUTLookup for int16: base entry plus the rounded slope times the low 7 bits. LiteRT keeps the slope in
 * an int16, so a step of more than 32767 between neighbours wraps; so does the sum. */
static inline int16_t eq_lut16_lookup(int16_t value, const int16_t* lut) {
  const int index = 256 + (value >> 7); /* 0..511 */
  const int32_t offset = value & 0x7f;
  const int32_t base = lut[index];
  const int32_t slope = (int16_t)(uint16_t)((uint32_t)(int32_t)lut[index + 1] - (uint32_t)base);
  return (int16_t)(uint16_t)(uint32_t)(base + ((slope * offset + 64) >> 7));
}

extern const uint16_t eq_sigmoid_table_q16[256];

void eq_lut8_apply(const uint8_t* lut, const uint8_t* input, uint8_t* output, size_t count);
void eq_lut16_apply(const int16_t* lut, const int16_t* input, int16_t* output, size_t count);

#endif
