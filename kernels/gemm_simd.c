/*
 * gemm_simd.c - a packed, register-blocked single-thread SGEMM for the
 * shapes of an LSTM step, after the BLIS design (Van Zee & van de Geijn,
 * "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", 2015):
 *
 *   for each KC-deep slice of K:        pack B (KC x NC) in NR-wide panels
 *     for each MC-tall block of rows:   pack A (MC x KC) in MR-tall panels
 *       for each NR panel, MR panel:    the 6x16 micro-kernel
 *
 * The micro-kernel keeps a 6x16 tile of C in twelve 8-float registers and
 * does 12 fused multiply-adds per 2 loads of B and 6 broadcasts of A.
 * Packing buffers are static per thread, so the kernel never allocates.
 * Compiled for AVX-512, AVX2 and baseline x86-64, chosen at load time; the
 * Makefile fuses multiply-adds in this file (-ffp-contract=fast).
 */
#include <string.h>

#include "kernels.h"

#define MR 6
#define NR 16
#define MC 96      /* A block: MC x KC floats = 96 KiB, in L2 */
#define KC 256     /* B panel: KC x NR floats = 16 KiB, in L1 */
#define NC 512     /* B slice: KC x NC floats = 512 KiB */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

typedef float v8 __attribute__((vector_size(32), aligned(4)));

static _Thread_local _Alignas(64) float apack[MC * KC];
static _Thread_local _Alignas(64) float bpack[KC * NC];

/* op(A) rows m0.., depth k0..: MR-row panels, k-major inside, zero-padded. */
static void pack_a(int ta, const float *A, size_t lda, size_t m0, size_t mc,
                   size_t k0, size_t kc)
{
    float *p = apack;
    for (size_t i = 0; i < mc; i += MR) {
        size_t mr = mc - i < MR ? mc - i : MR;
        for (size_t k = 0; k < kc; k++) {
            for (size_t r = 0; r < mr; r++)
                p[r] = ta ? A[(k0 + k) * lda + m0 + i + r]
                          : A[(m0 + i + r) * lda + k0 + k];
            for (size_t r = mr; r < MR; r++)
                p[r] = 0.0f;
            p += MR;
        }
    }
}

/* op(B) depth k0.., columns n0..: NR-column panels, k-major inside. */
static void pack_b(int tb, const float *B, size_t ldb, size_t k0, size_t kc,
                   size_t n0, size_t nc)
{
    float *p = bpack;
    for (size_t j = 0; j < nc; j += NR) {
        size_t nr = nc - j < NR ? nc - j : NR;
        for (size_t k = 0; k < kc; k++) {
            if (!tb && nr == NR) {
                memcpy(p, B + (k0 + k) * ldb + n0 + j, NR * sizeof *p);
            } else {
                for (size_t c = 0; c < nr; c++)
                    p[c] = tb ? B[(n0 + j + c) * ldb + k0 + k]
                              : B[(k0 + k) * ldb + n0 + j + c];
                for (size_t c = nr; c < NR; c++)
                    p[c] = 0.0f;
            }
            p += NR;
        }
    }
}

/* C tile (mr x nr, mr <= 6, nr <= 16) += alpha * Ap (kc x 6) Bp (kc x 16) */
static inline __attribute__((always_inline)) void
micro(size_t kc, const float *ap, const float *bp, float *C, size_t ldc,
      size_t mr, size_t nr, float alpha)
{
    v8 c[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        c[i][0] = c[i][1] = (v8){0};
    for (size_t k = 0; k < kc; k++) {
        const v8 b0 = *(const v8 *)(bp + k * NR);
        const v8 b1 = *(const v8 *)(bp + k * NR + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const float x = ap[k * MR + (size_t)i];
            const v8 a = {x, x, x, x, x, x, x, x};
            c[i][0] += a * b0;
            c[i][1] += a * b1;
        }
    }
    const v8 al = {alpha, alpha, alpha, alpha, alpha, alpha, alpha, alpha};
    if (mr == MR && nr == NR) {
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            v8 *row = (v8 *)(C + (size_t)i * ldc);
            row[0] += al * c[i][0];
            row[1] += al * c[i][1];
        }
        return;
    }
    float tile[MR][NR];
    memcpy(tile, c, sizeof tile);
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++)
            C[i * ldc + j] += alpha * tile[i][j];
}

CLONES
void lstm__gemm_simd(int ta, int tb, size_t M, size_t N, size_t K,
                     float alpha, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc)
{
    if (beta != 1.0f)
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    for (size_t n0 = 0; n0 < N; n0 += NC) {
        size_t nc = N - n0 < NC ? N - n0 : NC;
        for (size_t k0 = 0; k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC;
            pack_b(tb, B, ldb, k0, kc, n0, nc);
            for (size_t m0 = 0; m0 < M; m0 += MC) {
                size_t mc = M - m0 < MC ? M - m0 : MC;
                pack_a(ta, A, lda, m0, mc, k0, kc);
                for (size_t j = 0; j < nc; j += NR) {
                    size_t nr = nc - j < NR ? nc - j : NR;
                    for (size_t i = 0; i < mc; i += MR) {
                        size_t mr = mc - i < MR ? mc - i : MR;
                        micro(kc, apack + i * kc, bpack + j * kc,
                              C + (m0 + i) * ldc + n0 + j, ldc, mr, nr, alpha);
                    }
                }
            }
        }
    }
}
