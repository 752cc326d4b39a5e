/*
 * gemm_bf16.c - the GEMM of bf16-mixed precision on the CPU's bfloat16
 * units (AVX512-BF16's vdpbf16ps): operands that are bfloat16 values (the
 * library rounds them before), products exact, sums in float.
 *
 * The operands go into pairmm.h's pair layouts: a block of A (MB rows x
 * KB of K) as pairs per row, a panel of B (KB x 32 columns) as two
 * 16-column panels interleaved pair by pair; pairmm's tiles (up to 12
 * rows x 32 columns in 24 accumulators) broadcast each row's pair.
 *
 * Measured with register-only loops on an AMD Zen 5 (1 thread): vdpbf16ps
 * 437 GFLOP/s against 237 for fp32 FMAs; on Intel Sapphire Rapids it runs
 * at half the fp32 rate, so the library uses this set only where the
 * benchmark shows it faster (docs/performance.md). The K order of a sum
 * differs from the float kernels' (pairs), so results differ from them in
 * the last bits of the sums.
 */
#include "kernels.h"

#if LSTM_X86
#include "pairmm.h"

enum { MB = 96, KB = 512 };  /* rows and K of a packed block of A */

/* op(A) rows [0,mb) x K [0,kc) as pairs, pair p of row r at
 * ap[r*kp + p] (ta = 0: each row's pairs together) or ap[p*mb + r] (ta =
 * 1: each pair's rows together); either way read in whole vectors. */
BF16_ISA static void pack_a(uint32_t *ap, size_t kp, int ta, const float *A,
                            size_t lda, size_t mb, size_t kc)
{
    if (!ta) {
        pair_rows(ap, kp, A, lda, mb, kc);
        return;
    }
    for (size_t k = 0; k < kc; k += 2) {
        const float *r0 = A + k * lda, *r1 = k + 1 < kc ? r0 + lda : NULL;
        uint32_t *dst = ap + k / 2 * mb;
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
    uint32_t ap[MB * KB / 2];
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
                pairmm(mb, kp, 32, ap, ta ? 1 : kp, ta ? mb : 1,
                       (const uint32_t *)bp, 32, 16, C + m0 * ldc + n0, ldc,
                       add, NULL);
            }
        }
    }
    if (N32 < N)
        lstm__gemm_avx512(ta, 0, M, N - N32, K, 1.0f, A, lda, B + N32, ldb,
                          beta, C + N32, ldc);
}
#endif
