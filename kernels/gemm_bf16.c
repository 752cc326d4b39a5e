/*
 * gemm_bf16.c - the GEMM of bf16-mixed precision on the CPU's bfloat16
 * units (AVX512-BF16's vdpbf16ps): operands that are bfloat16 values (the
 * library rounds them before), products exact, sums in float.
 *
 * vdpbf16ps multiplies pairs: each of its 16 float lanes adds
 * a[2j]*b[2j] + a[2j+1]*b[2j+1]. So both operands go into pair layouts,
 * k and k+1 side by side in 32 bits: a block of A (MB rows x KB of K) as
 * pairs per row, a panel of B (KB x 32 columns) as two vectors of 16
 * column pairs per pair of rows; an odd K gets a zero partner. The tile is
 * rowmm's shape in lstm_cell.c: up to 12 rows x 32 columns in 24
 * accumulators, each row's pair broadcast from the packed A.
 *
 * Measured with register-only loops on an AMD Zen 5 (1 thread): vdpbf16ps
 * 437 GFLOP/s against 237 for fp32 FMAs; on Intel Sapphire Rapids it runs
 * at half the fp32 rate, so the library uses this set only where the
 * benchmark shows it faster (docs/performance.md). The K order of a sum
 * differs from the float kernels' (pairs), so results differ from them in
 * the last bits of the sums.
 */
#include <string.h>

#include "kernels.h"

#if LSTM_X86
#include <immintrin.h>

#define BF16_ISA                                                             \
    __attribute__((target("arch=x86-64-v4,avx512bf16,"                       \
                          "prefer-vector-width=512")))

enum { MB = 96, KB = 512 };  /* rows and K of a packed block of A */

/* 16 pairs (lo[j], hi[j]) of bfloat16 from two vectors of 16 floats (RNE:
 * the identity on the bfloat16 values the library passes). */
BF16_ISA static inline __m512i pair16(__m512 lo, __m512 hi)
{
    static const short order[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21,
                                    6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27,
                                    12, 28, 13, 29, 14, 30, 15, 31};
    __m512i t = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  /* lo then hi */
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(order), t);
}

/* One float as bfloat16 bits (RNE), for the scalar edges. */
BF16_ISA static inline unsigned bf16_bits(float x)
{
    return (unsigned)(unsigned short)_mm_cvtsi128_si32(
        (__m128i)_mm_cvtneps_pbh(_mm_set_ss(x)));
}

/* op(A) rows [0,mb) x K [0,kc) as pairs, pair p of row r at
 * ap[r*kp + p] (ta = 0: each row's pairs together) or ap[p*mb + r] (ta =
 * 1: each pair's rows together); either way read in whole vectors. */
BF16_ISA static void pack_a(unsigned *ap, size_t kp, int ta, const float *A,
                            size_t lda, size_t mb, size_t kc)
{
    if (!ta) {
        for (size_t r = 0; r < mb; r++) {
            const float *row = A + r * lda;
            size_t k = 0;
            for (; k + 32 <= kc; k += 32)  /* 32 floats: 16 pairs */
                _mm512_storeu_si512(ap + r * kp + k / 2,
                                    (__m512i)_mm512_cvtne2ps_pbh(
                                        _mm512_loadu_ps(row + k + 16),
                                        _mm512_loadu_ps(row + k)));
            for (; k < kc; k += 2)
                ap[r * kp + k / 2] =
                    bf16_bits(row[k]) |
                    (k + 1 < kc ? bf16_bits(row[k + 1]) << 16 : 0);
        }
        return;
    }
    for (size_t k = 0; k < kc; k += 2) {
        const float *r0 = A + k * lda, *r1 = k + 1 < kc ? r0 + lda : NULL;
        unsigned *dst = ap + k / 2 * mb;
        size_t r = 0;
        for (; r + 16 <= mb; r += 16)
            _mm512_storeu_si512(dst + r,
                                pair16(_mm512_loadu_ps(r0 + r),
                                       r1 ? _mm512_loadu_ps(r1 + r)
                                          : _mm512_setzero_ps()));
        for (; r < mb; r++)
            dst[r] = bf16_bits(r0[r]) | (r1 ? bf16_bits(r1[r]) << 16 : 0);
    }
}

/* B rows [0,kc) x columns [0,32) as pairs: pair p's columns 0-15 at
 * bp[64p .. 64p+32), 16-31 at bp[64p+32 .. 64p+64) (bfloat16 units). */
BF16_ISA static void pack_b(unsigned short *bp, const float *B, size_t ldb,
                            size_t kc)
{
    const __m512 zero = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k += 2, bp += 64) {
        const float *r0 = B + k * ldb, *r1 = r0 + ldb;
        const int odd = k + 1 == kc;
        for (int h = 0; h < 2; h++)
            _mm512_storeu_si512(bp + 32 * h,
                                pair16(_mm512_loadu_ps(r0 + 16 * h),
                                       odd ? zero
                                           : _mm512_loadu_ps(r1 + 16 * h)));
    }
}

/* C rows [0,nb) x 32 columns (+)= the packed block times the packed panel,
 * over kp pairs. nb <= 12, a constant after inlining. */
BF16_ISA static inline __attribute__((always_inline)) void
tile(size_t nb, size_t kp, const unsigned *ap, size_t rs, size_t ps,
     const unsigned short *bp, float *C, size_t ldc, int add)
{
    __m512 acc[12][2];
#pragma GCC unroll 12
    for (size_t r = 0; r < nb; r++)
        for (int h = 0; h < 2; h++)
            acc[r][h] = add ? _mm512_loadu_ps(C + r * ldc + 16 * h)
                            : _mm512_setzero_ps();
    for (size_t p = 0; p < kp; p++) {
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(bp + 64 * p);
        const __m512bh w1 = (__m512bh)_mm512_loadu_si512(bp + 64 * p + 32);
#pragma GCC unroll 12
        for (size_t r = 0; r < nb; r++) {
            const __m512bh a =
                (__m512bh)_mm512_set1_epi32((int)ap[r * rs + p * ps]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, w0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, w1);
        }
    }
#pragma GCC unroll 12
    for (size_t r = 0; r < nb; r++)
        for (int h = 0; h < 2; h++)
            _mm512_storeu_ps(C + r * ldc + 16 * h, acc[r][h]);
}

/* The block's rows in tiles of 12; (rs, ps) as pack_a laid them out. */
BF16_ISA static void tiles(size_t mb, size_t kp, const unsigned *ap,
                           size_t rs, size_t ps, const unsigned short *bp,
                           float *C, size_t ldc, int add)
{
#define T(n) tile(n, kp, ap + r * rs, rs, ps, bp, C + r * ldc, ldc, add)
    for (size_t r = 0; r < mb; r += 12) {
        switch (mb - r >= 12 ? 12 : mb - r) {
        case 12: T(12); break;
        case 11: T(11); break;
        case 10: T(10); break;
        case 9: T(9); break;
        case 8: T(8); break;
        case 7: T(7); break;
        case 6: T(6); break;
        case 5: T(5); break;
        case 4: T(4); break;
        case 3: T(3); break;
        case 2: T(2); break;
        default: T(1); break;
        }
    }
#undef T
}

/* C (+)= op(A) x B in blocks: K by KB, rows by MB (A packed once per
 * block), 32 columns at a time (B's panel packed once per row block);
 * columns past the last multiple of 32, and what the tile does not cover
 * (B transposed, alpha other than 1, beta other than 0 or 1), go to the
 * float kernel. Stack: 96 KB of A pairs and 32 KB of B pairs. */
BF16_ISA void lstm__gemm_bf16_avx512(int ta, int tb, size_t M, size_t N,
                                     size_t K, float alpha, const float *A,
                                     size_t lda, const float *B, size_t ldb,
                                     float beta, float *C, size_t ldc)
{
    const size_t N32 = N / 32 * 32;
    if (tb || alpha != 1.0f || (beta != 0.0f && beta != 1.0f) || N32 == 0 ||
        K == 0) {
        lstm__gemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C,
                          ldc);
        return;
    }
    unsigned ap[MB * KB / 2];
    unsigned short bp[KB * 32];
    for (size_t k0 = 0; k0 < K; k0 += KB) {
        const size_t kc = K - k0 < KB ? K - k0 : KB, kp = (kc + 1) / 2;
        const int add = k0 > 0 || beta != 0.0f;
        for (size_t m0 = 0; m0 < M; m0 += MB) {
            const size_t mb = M - m0 < MB ? M - m0 : MB;
            pack_a(ap, kp, ta,
                   ta ? A + k0 * lda + m0 : A + m0 * lda + k0, lda, mb, kc);
            for (size_t n0 = 0; n0 < N32; n0 += 32) {
                pack_b(bp, B + k0 * ldb + n0, ldb, kc);
                tiles(mb, kp, ap, ta ? 1 : kp, ta ? mb : 1, bp,
                      C + m0 * ldc + n0, ldc, add);
            }
        }
    }
    if (N32 < N)
        lstm__gemm_avx512(ta, 0, M, N - N32, K, 1.0f, A, lda, B + N32, ldb,
                          beta, C + N32, ldc);
}
#endif
