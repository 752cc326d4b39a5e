/*
 * pairmm.h - the register-blocked product on AVX512-BF16's vdpbf16ps, for
 * the bf16-mixed GEMM (gemm_bf16.c) and recurrence (lstm_cell.c): rowmm.h's
 * tile with operands that are bfloat16 values, products exact, sums in
 * float. x86 only; every function is compiled for AVX512-BF16 (BF16_ISA),
 * so callers are BF16_ISA functions too.
 *
 * vdpbf16ps multiplies pairs: each of its 16 float lanes adds
 * a[2j]*b[2j] + a[2j+1]*b[2j+1]. So both operands are in pair layouts, K
 * rows k and k+1 side by side in 32 bits (k the low half); an odd K gets a
 * zero partner. A row of the left operand is a run of pairs; the right
 * operand is panels of 16 columns, each pair of K rows one vector of 16
 * column pairs.
 */
#ifndef LSTM_PAIRMM_H
#define LSTM_PAIRMM_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"  /* LSTM_PVW512 */
#include "rowmm.h"    /* ROWS_OF_16, PANEL_WALK */

#define BF16_ISA                                                             \
    __attribute__((target("arch=x86-64-v4,avx512bf16" LSTM_PVW512)))

/* 16 pairs (lo[j], hi[j]) of bfloat16 from two vectors of 16 floats (RNE:
 * the identity on bfloat16 values). */
BF16_ISA static inline __m512i pair16(__m512 lo, __m512 hi)
{
    static const short order[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21,
                                    6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27,
                                    12, 28, 13, 29, 14, 30, 15, 31};
    __m512i t = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  /* lo then hi */
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(order), t);
}

/* One float as bfloat16 bits (RNE), for the scalar edges. */
BF16_ISA static inline uint32_t bf16_bits(float x)
{
    return (uint16_t)_mm_cvtsi128_si32(
        (__m128i)_mm_cvtneps_pbh(_mm_set_ss(x)));
}

/* Rows [0,mb) of K [0,kc) as pairs, pair p of row r at ap[r*kp + p]
 * (row r of the source at A + r*lda, its k-th float at + k). */
BF16_ISA static inline void pair_rows(uint32_t *ap, size_t kp,
                                      const float *A, size_t lda, size_t mb,
                                      size_t kc)
{
    for (size_t r = 0; r < mb; r++) {
        const float *row = A + r * lda;
        size_t k = 0;
        for (; k + 32 <= kc; k += 32)  /* 32 floats: 16 pairs */
            _mm512_storeu_si512(ap + r * kp + k / 2,
                                (__m512i)_mm512_cvtne2ps_pbh(
                                    _mm512_loadu_ps(row + k + 16),
                                    _mm512_loadu_ps(row + k)));
        for (; k < kc; k += 2)
            ap[r * kp + k / 2] = bf16_bits(row[k]) |
                                 (k + 1 < kc ? bf16_bits(row[k + 1]) << 16 : 0);
    }
}

/* out (nb, 16P columns, or nn < 16 with P = 1) (+)= in x W over kp pairs.
 * in's pair p of row b at in[b*irs + p*ics]; W's panel j at w + j*wps, its
 * pair p at + p*ldw (16 column pairs). With add, out's old values start
 * the sums, plus bias unless NULL. nb x P accumulators: nb <= 12, P <= 8,
 * nb*P <= 24 (rowmm's table). */
BF16_ISA static inline __attribute__((always_inline)) void
pair_tile(size_t nb, size_t P, size_t kp, size_t nn, const uint32_t *in,
          size_t irs, size_t ics, const uint32_t *w, size_t ldw, size_t wps,
          float *out, size_t ldo, int add, const float *bias)
{
    const int full = nn == 16 * P;
    __m512 acc[12][8];
#pragma GCC unroll 12
    for (size_t b = 0; b < nb; b++)
#pragma GCC unroll 8
        for (size_t v = 0; v < P; v++) {
            __m512 a = _mm512_setzero_ps();
            if (add && full) {
                a = _mm512_loadu_ps(out + b * ldo + 16 * v);
                if (bias)
                    a = _mm512_add_ps(a, _mm512_loadu_ps(bias + 16 * v));
            }
            acc[b][v] = a;
        }
    for (size_t p = 0; p < kp; p++) {
        __m512bh wv[8];
#pragma GCC unroll 8
        for (size_t v = 0; v < P; v++)
            wv[v] = (__m512bh)_mm512_loadu_si512(w + v * wps + p * ldw);
#pragma GCC unroll 12
        for (size_t b = 0; b < nb; b++) {
            const __m512bh x =
                (__m512bh)_mm512_set1_epi32((int)in[b * irs + p * ics]);
#pragma GCC unroll 8
            for (size_t v = 0; v < P; v++)
                acc[b][v] = _mm512_dpbf16_ps(acc[b][v], x, wv[v]);
        }
    }
    if (full) {
#pragma GCC unroll 12
        for (size_t b = 0; b < nb; b++)
#pragma GCC unroll 8
            for (size_t v = 0; v < P; v++)
                _mm512_storeu_ps(out + b * ldo + 16 * v, acc[b][v]);
        return;
    }
    for (size_t b = 0; b < nb; b++) {  /* the last, partial panel */
        float tile[16];
        _mm512_storeu_ps(tile, acc[b][0]);
        for (size_t j = 0; j < nn; j++)
            out[b * ldo + j] = (!add ? 0.0f
                                : bias ? out[b * ldo + j] + bias[j]
                                       : out[b * ldo + j]) + tile[j];
    }
}

/* nb rows (a constant after inlining) against N columns: P panels per
 * tile while P whole panels remain, then one at a time. */
BF16_ISA static inline __attribute__((always_inline)) void
pair_block(size_t nb, size_t P, size_t kp, size_t N, const uint32_t *in,
           size_t irs, size_t ics, const uint32_t *w, size_t ldw, size_t wps,
           float *out, size_t ldo, int add, const float *bias)
{
#define TILE(n, p, nn)                                                       \
    pair_tile(nb, p, kp, nn, in, irs, ics, w + n / 16 * wps, ldw, wps,       \
              out + n, ldo, add, bias ? bias + n : NULL)
    PANEL_WALK(P, N, TILE);
#undef TILE
}

/* out (nb,N) (+)= in (nb, kp pairs) x W (kp pairs, N): rows in blocks of
 * up to 12, small blocks with more panels at once (as rowmm). */
BF16_ISA static inline __attribute__((always_inline)) void
pairmm(size_t nb, size_t kp, size_t N, const uint32_t *in, size_t irs,
       size_t ics, const uint32_t *w, size_t ldw, size_t wps, float *out,
       size_t ldo, int add, const float *bias)
{
#define ROWS(k, p)                                                           \
    pair_block(k, p, kp, N, in + b * irs, irs, ics, w, ldw, wps,             \
               out + b * ldo, ldo, add, bias)
    for (size_t b = 0; b < nb; b += 12) {
        ROWS_OF_16(nb - b >= 12 ? 12 : nb - b, ROWS);
    }
#undef ROWS
}

#endif
