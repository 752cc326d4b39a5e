/*
 * gemm_amx.c - the GEMM of bf16-mixed precision on AMX-BF16 tiles
 * (tdpbf16ps): operands that are bfloat16 values (the library rounds them
 * before), products exact, sums in float.
 *
 * The operands are packed into amx.h's tile layouts, zero-padded to whole
 * tiles: B by blocks of K (all of N), A by chunks of rows of that block
 * (op(A) transposed in registers when A is stored K-major). The inner loop
 * holds a 32 x 32 block of C in four tiles (0-3), two tiles of A (4-5) and
 * two of B (6-7).
 *
 * Measured with a register-only loop on an Intel Sapphire Rapids (1
 * core): 3,090 GFLOP/s, 7x its fp32 FMA rate. The sums run in an order of
 * their own (pairs of K, then 16 pairs a tile), so results differ from the
 * float kernels' in the last bits.
 */
#include "kernels.h"

#if LSTM_X86
#include <stdlib.h>

#include "amx.h"

/* bfloat16 elements of a packed block of B; rows of a chunk of a K-major
 * A */
enum { NB_ELEMS = 1 << 17, MC_T = 256 };

/* Tile configuration (palette 1). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((aligned(64))) tile_config;

/* (asm rather than gcc 12's _tile_loadconfig, which the compiler was seen
 * to move below the first tile instruction once inlined) */
AMX_ISA __attribute__((noinline)) void lstm__amx_begin(void)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
}

AMX_ISA __attribute__((noinline)) void lstm__amx_end(void)
{
    __asm__ volatile("tilerelease" ::: "memory");
}

/* Rows r of a 16 x 16 matrix of 32-bit elements become its columns. */
AMX_ISA static void transpose16(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i+j], 128-bit lane l: rows 4i..4i+3 of column 4l+j */
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i x = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88);
        __m512i y = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
        __m512i x2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
        __m512i y2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
        r[j] = _mm512_shuffle_i32x4(x, x2, 0x88);
        r[8 + j] = _mm512_shuffle_i32x4(x, x2, 0xdd);
        r[4 + j] = _mm512_shuffle_i32x4(y, y2, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(y, y2, 0xdd);
    }
}

/* B rows [0,kc) x columns [0,n) into panels of 16 columns, kp pairs of K
 * rows each (zero past kc and n): pair p of panel j at bp + (j*kp + p)*16
 * (32-bit units). B holds segments of T rows (the steps of each sequence,
 * in h; or T = SIZE_MAX, a plain matrix), sstride apart: row k at
 * B + g/T*sstride + g%T*ldb, g = k0 + k, read row by row. len, unless
 * NULL: the rows of segment s from len[s] on are taken as zero (not read),
 * so that padding, whatever it holds, adds nothing. */
AMX_ISA static void pack_b(uint32_t *bp, size_t kp, const float *B,
                           size_t ldb, size_t T, size_t sstride, size_t k0,
                           size_t kc, size_t n, const size_t *len)
{
    const __m512 zero = _mm512_setzero_ps();
    size_t s = k0 / T, t = k0 % T;  /* row k's segment and step */
    for (size_t p = 0; p < kp; p++) {
        const float *r[2];
        int live[2];
        for (int h = 0; h < 2; h++) {
            r[h] = B + s * sstride + t * ldb;
            live[h] = 2 * p + h < kc && (!len || t < len[s]);
            if (++t == T) {
                t = 0;
                s++;
            }
        }
        for (size_t j = 0; j * 16 < n; j++) {
            const size_t nc = n - j * 16 < 16 ? n - j * 16 : 16;
            const __m512 lo = live[0] ? load_n(r[0] + j * 16, nc) : zero;
            const __m512 hi = live[1] ? load_n(r[1] + j * 16, nc) : zero;
            _mm512_store_si512(bp + (j * kp + p) * 16, pair16(lo, hi));
        }
    }
}

/* Rows [0,mb) of op(A) over K [0,kc) as tile rows of kp pairs, row r at
 * ap + r*kp, up to the next multiple of 32 rows (zero past mb and kc).
 * ta = 0: row r of A at A + r*lda (tile_rows); ta = 1: A is K-major,
 * A(k, r) at A + k*lda + r: 16 rows x 16 pairs at a time, transposed in
 * registers, the rows of A read in order. */
AMX_ISA static void pack_a(uint32_t *ap, size_t kp, int ta, const float *A,
                           size_t lda, size_t mb, size_t kc)
{
    const size_t rows = (mb + 31) / 32 * 32;
    if (!ta) {
        tile_rows(ap, kp, A, lda, mb, kc, rows);
        return;
    }
    const __m512 zero = _mm512_setzero_ps();
    for (size_t p0 = 0; p0 < kp; p0 += 16)
        for (size_t r0 = 0; r0 < rows; r0 += 16) {
            const size_t nr = mb > r0 ? (mb - r0 < 16 ? mb - r0 : 16) : 0;
            __m512i v[16];
            for (int i = 0; i < 16; i++) {  /* v[i]: pair p0+i of 16 rows */
                const size_t k = 2 * (p0 + i);
                const float *a = A + k * lda + r0;
                v[i] = pair16(nr && k < kc ? load_n(a, nr) : zero,
                               nr && k + 1 < kc ? load_n(a + lda, nr) : zero);
            }
            transpose16(v);
            for (int i = 0; i < 16; i++)
                _mm512_store_si512(ap + (r0 + i) * kp + p0, v[i]);
        }
}

/* Rows and columns of C's tile (i, j) in a block at row m0, column n0. */
static size_t span(size_t total, size_t at)
{
    return at >= total ? 0 : total - at < 16 ? total - at : 16;
}

AMX_ISA void lstm__amx_block(const uint32_t *ap, const uint32_t *bp,
                             size_t kp, size_t mb, size_t nb, float *C,
                             size_t ldc, int add, float *buf)
{
    const size_t m0 = span(mb, 0), n0 = span(nb, 0);
    const size_t m1 = span(mb, 16), n1 = span(nb, 16);
    const size_t lda = kp * 4, bstep = kp * 16;
#define C_TILES(load)                                                        \
    do {                                                                     \
        C_IO(0, load, C, ldc, m0, n0, buf);                                  \
        if (n1)                                                              \
            C_IO(1, load, C + 16, ldc, m0, n1, buf);                         \
        if (m1)                                                              \
            C_IO(2, load, C + 16 * ldc, ldc, m1, n0, buf);                   \
        if (m1 && n1)                                                        \
            C_IO(3, load, C + 16 * ldc + 16, ldc, m1, n1, buf);              \
    } while (0)
    if (add) {
        C_TILES(1);
    } else {
        TZERO(0);
        TZERO(1);
        TZERO(2);
        TZERO(3);
    }
    for (size_t p = 0; p < kp; p += 16) {
        TLOAD(4, ap + p, lda);
        TLOAD(6, bp + p * 16, 64);
        TDP(0, 4, 6);
        if (n1) {
            TLOAD(7, bp + bstep + p * 16, 64);
            TDP(1, 4, 7);
        }
        if (m1) {
            TLOAD(5, ap + 16 * kp + p, lda);
            TDP(2, 5, 6);
            if (n1)
                TDP(3, 5, 7);
        }
    }
    C_TILES(0);
#undef C_TILES
}

/* C rows [0,cm) x columns [0,n) (+)= a chunk of packed A x packed B, in
 * blocks of 32 x 32. */
AMX_ISA static void chunk(const uint32_t *ap, const uint32_t *bp, size_t kp,
                          size_t cm, size_t n, float *C, size_t ldc, int add,
                          float *buf)
{
    for (size_t m0 = 0; m0 < cm; m0 += 32)
        for (size_t n0 = 0; n0 < n; n0 += 32)
            lstm__amx_block(ap + m0 * kp, bp + n0 * kp, kp,
                            cm - m0 < 32 ? cm - m0 : 32,
                            n - n0 < 32 ? n - n0 : 32, C + m0 * ldc + n0, ldc,
                            add, buf);
}

/* Rows of K a block takes when B's blocks have n columns in all. */
static size_t k_block(size_t n, size_t K)
{
    size_t kb = NB_ELEMS / (n ? n : 1) / 32 * 32;
    if (kb < 32)
        kb = 32;
    return kb > (K + 31) / 32 * 32 ? (K + 31) / 32 * 32 : kb;
}

/* C (+)= op(A) x B: K in blocks of at most NB_ELEMS / N (rounded to 32),
 * B's block packed once, then rows of C in chunks (their A packed once:
 * 32 rows, or MC_T for a K-major A, whose packing reads whole rows), 32
 * rows x 32 columns at a time. What the tiles do not cover (B transposed,
 * alpha other than 1, beta other than 0 or 1), and a failed allocation of
 * the packing buffers, go to the float kernel. */
AMX_ISA void lstm__gemm_bf16_amx(int ta, int tb, size_t M, size_t N,
                                 size_t K, float alpha, const float *A,
                                 size_t lda, const float *B, size_t ldb,
                                 float beta, float *C, size_t ldc)
{
    const size_t np = (N + 15) / 16 * 16, kb = k_block(np, K);
    uint32_t *bp = NULL, *ap = NULL;
    if (!tb && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && M && N &&
        K) {
        bp = aligned_alloc(64, np * kb * 2);
        ap = aligned_alloc(64, (ta ? MC_T : 32) * kb * 2);
    }
    if (!bp || !ap) {
        free(bp);
        free(ap);
        lstm__gemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C,
                          ldc);
        return;
    }
    lstm__amx_begin();
    float buf[16 * 16] __attribute__((aligned(64)));
    for (size_t k0 = 0; k0 < K; k0 += kb) {
        const size_t kc = K - k0 < kb ? K - k0 : kb, kp = (kc + 31) / 32 * 16;
        const int add = k0 > 0 || beta != 0.0f;
        pack_b(bp, kp, B, ldb, SIZE_MAX, 0, k0, kc, N, NULL);
        const size_t mc = ta ? MC_T : 32;
        for (size_t c0 = 0; c0 < M; c0 += mc) {
            const size_t cm = M - c0 < mc ? M - c0 : mc;
            pack_a(ap, kp, ta, ta ? A + k0 * lda + c0 : A + c0 * lda + k0,
                   lda, cm, kc);
            chunk(ap, bp, kp, cm, N, C + c0 * ldc, ldc, add, buf);
        }
    }
    lstm__amx_end();
    free(bp);
    free(ap);
}

/* The weight gradients of bf16-mixed precision (kernels.h's
 * lstm__wgrad_fn, on bfloat16 values) in one pass over the gate
 * gradients: K in blocks across the sequences, X's and H's blocks packed
 * (H's rows gathered from each sequence's steps), then each chunk of rows
 * of A1 packed once for both products (A2 == A1, an LSTM) or A2 after it
 * (a GRU). The sums are grouped by block, not by sequence: the bits of the
 * GEMMs one call at a time are not kept, only their values to float
 * rounding. */
AMX_ISA void lstm__wgrad_bf16_amx(size_t M, size_t nseq, size_t T,
                                  const size_t *len, const float *A1,
                                  const float *A2, size_t lda,
                                  const float *X, size_t ldx, size_t N1,
                                  float *C1, size_t ldc1,
                                  const float *H, size_t ldh, size_t hstride,
                                  size_t N2, float *C2, size_t ldc2)
{
    /* every row, padding too (its gate gradients are zero; X and H are
     * packed as zero there) */
    const size_t K = nseq * T, n1 = (N1 + 15) / 16 * 16;
    const size_t n2 = (N2 + 15) / 16 * 16, kb = k_block(n1 + n2, K);
    uint32_t *bp = K && M ? aligned_alloc(64, (n1 + n2) * kb * 2) : NULL;
    uint32_t *ap = bp ? aligned_alloc(64, MC_T * kb * 2) : NULL;
    if (!ap) {
        free(bp);
        lstm__wgrad_avx512(M, nseq, T, len, A1, A2, lda, X, ldx, N1, C1,
                           ldc1, H, ldh, hstride, N2, C2, ldc2);
        return;
    }
    lstm__amx_begin();
    float buf[16 * 16] __attribute__((aligned(64)));
    for (size_t k0 = 0; k0 < K; k0 += kb) {
        const size_t kc = K - k0 < kb ? K - k0 : kb, kp = (kc + 31) / 32 * 16;
        uint32_t *bx = bp, *bh = bp + n1 * kp;
        pack_b(bx, kp, X, ldx, T, T * ldx, k0, kc, N1, len);
        pack_b(bh, kp, H, ldh, T, hstride, k0, kc, N2, len);
        for (size_t c0 = 0; c0 < M; c0 += MC_T) {
            const size_t cm = M - c0 < MC_T ? M - c0 : MC_T;
            pack_a(ap, kp, 1, A1 + k0 * lda + c0, lda, cm, kc);
            chunk(ap, bx, kp, cm, N1, C1 + c0 * ldc1, ldc1, 1, buf);
            if (A2 != A1)
                pack_a(ap, kp, 1, A2 + k0 * lda + c0, lda, cm, kc);
            chunk(ap, bh, kp, cm, N2, C2 + c0 * ldc2, ldc2, 1, buf);
        }
    }
    lstm__amx_end();
    free(bp);
    free(ap);
}
#endif
