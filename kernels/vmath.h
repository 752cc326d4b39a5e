/*
 * vmath.h - exp, sigmoid and tanh written so that compilers vectorise them
 * inside `#pragma omp simd` loops: no branches, no calls, no errno.
 * Measured relative error against double-precision libm: exp 8e-8
 * (Cody-Waite reduction and the Cephes expf polynomial), sigmoid 1.5e-7,
 * tanh 1.8e-7; tests/check_kernels.c holds them to 2e-7, 3e-7, 2.5e-7.
 * Not a general libm: inputs are clamped to the range an LSTM needs (exp
 * saturates beyond +-88).
 */
#ifndef LSTM_VMATH_H
#define LSTM_VMATH_H

#include <stdint.h>

/* x = n ln2 + r with |r| <= ln2/2, for x within [-87, 88]: e^r - 1 and
 * 2^n, so that e^x = (em1 + 1) scale and e^x - 1 = em1 scale + (scale - 1). */
typedef struct { float em1, scale; } lstm__vexp_parts;

static inline __attribute__((always_inline)) lstm__vexp_parts
lstm__vexp_split(float x)
{
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (round to nearest). */
    const float t = x * 1.44269504088896341f + 12582912.0f;
    const float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;           /* ln2, high part */
    r = r - n * -2.12194440e-4f;              /* ln2, low part */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    /* 2^n from the exponent bits. t's low mantissa bits hold n (its bits
     * are those of 1.5 * 2^23, plus n): shifted by 23 with the bias added,
     * they are 2^n's, and the bits above fall off (n + 127 is within
     * [1,254] for x within [-87, 88]). Integer operations only:
     * converting n to an integer took a conversion, and a NaN n (NaN x),
     * whose conversion is undefined, a compare and a blend on top; a NaN x
     * now gives some scale, and em1 carries the NaN. Same results for every
     * float x (checked over all 2^32), and the gate math of a forward step
     * (32 rows, H=128, one thread of a Sapphire Rapids) 8.6 -> 7.5 us with
     * the copysign in lstm__vtanh. */
    union { float f; uint32_t u; } tb = {t}, s;
    s.u = (tb.u + 127u) << 23;
    return (lstm__vexp_parts){p * (r * r) + r, s.f};
}

static inline __attribute__((always_inline)) float lstm__vexp(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const lstm__vexp_parts e = lstm__vexp_split(x);
    return (e.em1 + 1.0f) * e.scale;
}

static inline __attribute__((always_inline)) float lstm__vsigmoid(float x)
{
    return 1.0f / (1.0f + lstm__vexp(-x));
}

/* tanh(|x|) = e / (e + 2) with e = expm1(2|x|) = 2^n (e^r - 1) + (2^n - 1):
 * for |x| < 0.17 (n = 0) no term cancels, so small arguments keep their
 * relative accuracy without a second formula. Past |x| = 9 tanh rounds to
 * 1. Measured against double tanh over all 2^32 floats (kernel flags, one
 * thread of a Sapphire Rapids): worst relative error 1.8e-7, 0.28 ns an
 * element; the form before it (1 - 2/(exp(2|x|) + 1), and an odd Taylor
 * series below |x| = 0.3, each lane computing both) had 2.5e-7 and 0.44. */
static inline __attribute__((always_inline)) float lstm__vtanh(float x)
{
    float a = x < 0.0f ? -x : x;
    a = a > 9.0f ? 9.0f : a;
    const lstm__vexp_parts p = lstm__vexp_split(2.0f * a);
    const float e = p.scale * p.em1 + (p.scale - 1.0f);
    return __builtin_copysignf(e / (e + 2.0f), x);  /* tanh(-0) = -0 */
}

/* x rounded to the nearest bfloat16 (the top 16 bits of a float), ties to
 * even, returned as a float: what torch's float -> bfloat16 conversion
 * gives. Overflow rounds to infinity; a NaN stays a (quiet) NaN. */
static inline __attribute__((always_inline)) float lstm__vbf16(float x)
{
    union { float f; uint32_t u; } v = {x};
    uint32_t r = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) & 0xffff0000u;
    v.u = x == x ? r : (v.u | 0x00400000u) & 0xffff0000u;
    return v.f;
}

#endif
