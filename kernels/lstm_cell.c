/*
 * lstm_cell.c - the recurrence of one LSTM layer, forward and backward
 * through time, for a slice of the batch. The input projection and all
 * weight gradients are GEMMs over every step at once, done by the caller;
 * what is left here is inherently sequential: h_{t-1} W_hh^T, the gate
 * math, and dh_{t-1} = dA_t W_hh.
 *
 * This file holds the tuned versions: all sequences of the slice per step
 * so each row of W_hh is read once per step, register-blocked products,
 * vmath.h's exp/tanh; one copy each for AVX-512 (_avx512), AVX2 + FMA
 * (_avx2) and baseline code (_generic), with multiply-adds fused (the Makefile
 * builds this file with -ffp-contract=fast -fno-trapping-math; without the
 * latter the gate math's selects stay scalar). lstm_cell_ref.c holds the
 * references they are tested against.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rowmm.h"
#include "vmath.h"
#if LSTM_X86
#include "amx.h"  /* and pairmm.h */
#endif


/* ---- the tuned recurrence ----
 *
 * Both directions need, per step, a product of a few rows (the batch slice)
 * with a matrix that stays in cache:
 *   forward:  a_b += h_b W_hh^T      (1,H) x (H,G)
 *   backward: dh_b = da_b W_hh       (1,G) x (G,H)
 * The matrix is packed once per call into 16-column panels (pack16), so
 * each step streams it linearly, and rowmm keeps a tile of up to 6 rows x
 * 16-64 columns in registers while it walks the panels: every load of W
 * feeds one fused multiply-add per row of the tile.
 *
 * The product streams all of W_hh (256 KB at H=128) from L2 every step,
 * whatever the rows. When a batch has fewer sequences than threads, the
 * threads share the hidden units of a layer instead of its rows: each
 * takes every row and units [k0,k1), so it reads only its share of W_hh,
 * and the team meets at a barrier (sync) after every step, when all of h_t
 * (forward) or dA_t (backward) is there. lib/nn/lstm.c chooses; with two rows
 * a thread or more, the barriers cost more than they save. */

size_t lstm__pack16_size(size_t M, size_t N) { return M * ((N + 15) / 16) * 16; }

void lstm__round_bf16(float *dst, const float *src, size_t n)
{
#pragma omp simd
    for (size_t k = 0; k < n; k++)
        dst[k] = lstm__vbf16(src[k]);
}

/* op(W) (M,N) into ceil(N/16) panels of M rows x 16 columns, zero-padded;
 * op(W)[m][n] = trans ? W[n*ld + m] : W[m*ld + n]. */
static void pack16(float *restrict dst, const float *restrict W, size_t ld,
                   size_t M, size_t N, int trans)
{
    for (size_t n = 0; n < N; n += 16)
        for (size_t m = 0; m < M; m++)
            for (size_t j = 0; j < 16; j++, dst++)
                *dst = n + j >= N ? 0.0f : trans ? W[(n + j) * ld + m]
                                                 : W[m * ld + n + j];
}

size_t lstm__pack_fwd_size(size_t H, size_t n) { return 4 * lstm__pack16_size(H, n); }

void lstm__pack_fwd(float *dst, const float *w_hh, size_t H, size_t k0,
                    size_t k1)
{
    for (size_t q = 0; q < 4; q++)
        pack16(dst + q * lstm__pack16_size(H, k1 - k0),
               w_hh + (q * H + k0) * H, H, H, k1 - k0, 1);
}

size_t lstm__pack_bwd_size(size_t H, size_t n) { return lstm__pack16_size(4 * H, n); }

void lstm__pack_bwd(float *dst, const float *w_hh, size_t H, size_t k0,
                    size_t k1)
{
    pack16(dst, w_hh + k0, H, 4 * H, k1 - k0, 0);
}

/* The sets' packs (kernels.h's lstm__wpack_fn): the float panels, rounded
 * to bfloat16 values for bf16-mixed. */
void lstm__wpack_fwd(float *dst, const float *w_hh, size_t H, size_t k0,
                     size_t k1, int bf16)
{
    lstm__pack_fwd(dst, w_hh, H, k0, k1);
    if (bf16)
        lstm__round_bf16(dst, dst, lstm__pack_fwd_size(H, k1 - k0));
}

void lstm__wpack_bwd(float *dst, const float *w_hh, size_t H, size_t k0,
                     size_t k1, int bf16)
{
    lstm__pack_bwd(dst, w_hh, H, k0, k1);
    if (bf16)
        lstm__round_bf16(dst, dst, lstm__pack_bwd_size(H, k1 - k0));
}

#if LSTM_X86
/* The bf16-mixed recurrence on AVX512-BF16 (the "avx512bf16" set): W_hh
 * packed once as bfloat16 pairs (half the bytes of the float panels to
 * stream every step), and the product on vdpbf16ps. Each step turns the
 * rows' left operand (h, or dA: bfloat16 values already) into pairs in
 * blocks of 12 rows on the stack, hence a bound on its length M (H for
 * the forward, 4H for the backward); past it the float panels serve. */
enum { PAIRS_MAX_M = 2048 };

static int pairs_ok(size_t H) { return 4 * H <= PAIRS_MAX_M; }

/* pack16's panels of an (M,N) matrix of bfloat16 values, in place, into
 * pairmm.h's right operand: each panel's rows m and m+1 interleaved as
 * 16 column pairs (m the low half; a zero partner for an odd M), the
 * panels then ceil(M/2) pairs long. Every word is written at or before
 * the first float it is made of, so going forward reads nothing already
 * overwritten. */
static void pairs_in_place(float *pk, size_t M, size_t N)
{
    uint32_t *dst = (uint32_t *)pk;
    for (size_t n = 0; n < N; n += 16) {
        const float *panel = pk + n / 16 * M * 16;
        for (size_t m = 0; m < M; m += 2)
            for (size_t j = 0; j < 16; j++, dst++) {
                uint32_t lo, hi = 0;
                memcpy(&lo, panel + m * 16 + j, sizeof lo);
                if (m + 1 < M)
                    memcpy(&hi, panel + (m + 1) * 16 + j, sizeof hi);
                *dst = lo >> 16 | (hi & 0xffff0000u);
            }
    }
}

static size_t pairs16_size(size_t M, size_t N)
{
    return (M + 1) / 2 * ((N + 15) / 16) * 16;
}

void lstm__wpack_fwd_pairs(float *dst, const float *w_hh, size_t H,
                           size_t k0, size_t k1, int bf16)
{
    if (!bf16 || !pairs_ok(H)) {
        lstm__wpack_fwd(dst, w_hh, H, k0, k1, bf16);
        return;
    }
    /* the rounded float panels, then each gate's matrix in turn into
     * pairs, moving forward: the q-th lands at q * pairs16_size words */
    lstm__wpack_fwd(dst, w_hh, H, k0, k1, 1);
    const size_t n = k1 - k0;
    for (size_t q = 0; q < 4; q++) {
        float *from = dst + q * lstm__pack16_size(H, n);
        pairs_in_place(from, H, n);
        memmove((uint32_t *)dst + q * pairs16_size(H, n), from,
                pairs16_size(H, n) * sizeof(uint32_t));
    }
}

void lstm__wpack_bwd_pairs(float *dst, const float *w_hh, size_t H,
                           size_t k0, size_t k1, int bf16)
{
    if (!bf16 || !pairs_ok(H)) {
        lstm__wpack_bwd(dst, w_hh, H, k0, k1, bf16);
        return;
    }
    lstm__wpack_bwd(dst, w_hh, H, k0, k1, 1);
    pairs_in_place(dst, 4 * H, k1 - k0);
}

/* out (+)= in x W for nq matrices side by side (W's q-th at w + q*wqs
 * words, its output at out + q*oqs, bias + q*oqs): in is nb rows of M
 * bfloat16 values in floats (row b at in + b*irs), W as pairs_in_place
 * packed it for N columns. Not inlined: it is the only code of the
 * recurrence that needs AVX512-BF16. */
BF16_ISA __attribute__((noinline)) static void
rec_pairs(size_t nb, size_t M, size_t N, size_t nq, const float *in,
          size_t irs, const float *w, size_t wqs, float *out, size_t ldo,
          size_t oqs, int add, const float *bias)
{
    const size_t kp = (M + 1) / 2;
    uint32_t rows[12 * (PAIRS_MAX_M / 2)];
    for (size_t b = 0; b < nb; b += 12) {
        const size_t mb = nb - b < 12 ? nb - b : 12;
        pair_rows(rows, kp, in + b * irs, irs, mb, M);
        for (size_t q = 0; q < nq; q++)
            pairmm(mb, kp, N, rows, kp, 1, (const uint32_t *)w + q * wqs, 16,
                   16 * kp, out + b * ldo + q * oqs, ldo, add,
                   bias ? bias + q * oqs : NULL);
    }
}

/* The bf16-mixed recurrence on AMX-BF16 (the "amx" set): W_hh packed once
 * as amx.h's B tiles (bfloat16, half the bytes of the float panels), and
 * the product on tdpbf16ps, 16 rows of the slice a tile (fewer rows are
 * padded with zeros). The left operand goes into tile rows on the stack
 * every step, hence the same bound on its length as above; below 16
 * hidden units the tile layout would not fit the float panels' space, and
 * those serve instead. */
static int amx_ok(size_t H) { return H >= 16 && pairs_ok(H); }

static size_t tiles_size(size_t K, size_t N)
{
    return (K + 31) / 32 * 16 * ((N + 15) / 16) * 16;
}

/* op(W) (K,N), rounded to bfloat16, as B tiles: panels of 16 columns of
 * kp = tiles' pairs of K rows (zeros past K and N), pair p of panel j at
 * dst + (j*kp + p)*16; op(W)[k][j] = W[k*sk + j*sj]. */
static void tile_pack(uint32_t *dst, const float *W, size_t sk, size_t sj,
                      size_t K, size_t N)
{
    const size_t kp = (K + 31) / 32 * 16;
    for (size_t j0 = 0; j0 < N; j0 += 16)
        for (size_t p = 0; p < kp; p++)
            for (size_t c = 0; c < 16; c++, dst++) {
                uint32_t half[2] = {0, 0};
                for (size_t h = 0; h < 2; h++)
                    if (2 * p + h < K && j0 + c < N) {
                        float x = lstm__vbf16(W[(2 * p + h) * sk +
                                                (j0 + c) * sj]);
                        memcpy(&half[h], &x, sizeof x);
                    }
                *dst = half[0] >> 16 | (half[1] & 0xffff0000u);
            }
}

void lstm__wpack_fwd_amx(float *dst, const float *w_hh, size_t H, size_t k0,
                         size_t k1, int bf16)
{
    if (!bf16 || !amx_ok(H)) {
        lstm__wpack_fwd(dst, w_hh, H, k0, k1, bf16);
        return;
    }
    for (size_t q = 0; q < 4; q++)  /* W_q^T: K = H, N = the units */
        tile_pack((uint32_t *)dst + q * tiles_size(H, k1 - k0),
                  w_hh + (q * H + k0) * H, 1, H, H, k1 - k0);
}

void lstm__wpack_bwd_amx(float *dst, const float *w_hh, size_t H, size_t k0,
                         size_t k1, int bf16)
{
    if (!bf16 || !amx_ok(H)) {
        lstm__wpack_bwd(dst, w_hh, H, k0, k1, bf16);
        return;
    }
    tile_pack((uint32_t *)dst, w_hh + k0, H, 1, 4 * H, k1 - k0);
}

/* rec_pairs' product on tiles: out (+)= in x W for nq matrices side by
 * side, W's q-th packed by tile_pack at w + q*wqs words (M = its K, N
 * its columns), 16 rows and 32 columns at a time (lstm__amx_block); bias
 * added after the product. The caller has configured the tiles
 * (lstm__amx_begin). */
AMX_ISA __attribute__((noinline)) static void
rec_amx(size_t nb, size_t M, size_t N, size_t nq, const float *in,
        size_t irs, const uint32_t *w, size_t wqs, float *out, size_t ldo,
        size_t oqs, int add, const float *bias)
{
    const size_t kp = (M + 31) / 32 * 16;
    uint32_t rows[16 * (PAIRS_MAX_M / 2)] __attribute__((aligned(64)));
    float buf[256] __attribute__((aligned(64)));
    for (size_t b0 = 0; b0 < nb; b0 += 16) {
        const size_t rb = nb - b0 < 16 ? nb - b0 : 16;
        tile_rows(rows, kp, in + b0 * irs, irs, rb, M, 16);
        for (size_t q = 0; q < nq; q++)
            for (size_t n0 = 0; n0 < N; n0 += 32) {
                const size_t nc = N - n0 < 32 ? N - n0 : 32;
                float *o = out + b0 * ldo + q * oqs + n0;
                lstm__amx_block(rows, w + q * wqs + n0 * kp, kp, rb, nc, o,
                                ldo, add, buf);
                if (bias)
                    for (size_t r = 0; r < rb; r++)
                        for (size_t j = 0; j < nc; j += 16) {
                            const size_t c = nc - j < 16 ? nc - j : 16;
                            _mm512_mask_storeu_ps(
                                o + r * ldo + j, (__mmask16)((1u << c) - 1),
                                _mm512_add_ps(load_n(o + r * ldo + j, c),
                                              load_n(bias + q * oqs + n0 + j,
                                                     c)));
                        }
            }
    }
}
#endif

size_t lstm__pack_gru_fwd_size(size_t H) { return lstm__pack16_size(H, 3 * H); }

void lstm__pack_gru_fwd(float *dst, const float *w_hh, size_t H)
{
    pack16(dst, w_hh, H, H, 3 * H, 1);
}

size_t lstm__pack_gru_bwd_size(size_t H) { return lstm__pack16_size(3 * H, H); }

void lstm__pack_gru_bwd(float *dst, const float *w_hh, size_t H)
{
    pack16(dst, w_hh, H, 3 * H, H, 0);
}

/* Gate math of one step for one sequence: a holds the pre-activations.
 * Always inlined, so it is compiled for the caller's instruction set. One
 * loop per kind of activation, not one loop doing all five: an element's
 * chain of exp, division and select is long, and a short loop body lets
 * the core overlap many elements (one body of five such chains did not fit
 * its reorder window, and ran at the speed of their latency). */
static inline __attribute__((always_inline)) void
cell_fwd(float *restrict a, float *restrict hn, float *restrict cn,
         float *restrict yt, const float *restrict cp, size_t H, size_t n,
         int bf16)
{
    /* n units from a's; the gates of a unit are H apart */
#pragma omp simd
    for (size_t k = 0; k < n; k++)  /* i */
        a[k] = lstm__vsigmoid(a[k]);
#pragma omp simd
    for (size_t k = H; k < H + n; k++)  /* f */
        a[k] = lstm__vsigmoid(a[k]);
#pragma omp simd
    for (size_t k = 2 * H; k < 2 * H + n; k++)  /* g */
        a[k] = lstm__vtanh(a[k]);
#pragma omp simd
    for (size_t k = 3 * H; k < 3 * H + n; k++)  /* o */
        a[k] = lstm__vsigmoid(a[k]);
#pragma omp simd
    for (size_t k = 0; k < n; k++) {
        float c = a[H + k] * cp[k] + a[k] * a[2 * H + k];
        float h = a[3 * H + k] * lstm__vtanh(c);
        cn[k] = c;
        hn[k] = bf16 ? lstm__vbf16(h) : h;
        yt[k] = h;
    }
}

/* Gate derivatives of one step for one sequence (see lstm_cell_ref.c for
 * the formulas), with or without an output gradient dyt: two copies, as a
 * loop that tests for dyt per element loads it with a masked move. */
static inline __attribute__((always_inline)) void
cell_bwd(float *restrict da, float *restrict dhb, float *restrict dcb,
         const float *restrict dyt, const float *restrict a,
         const float *restrict cp, const float *restrict cn, size_t H,
         size_t n, int has_dy)
{
#pragma omp simd
    for (size_t k = 0; k < n; k++) {
        float i = a[k], f = a[H + k], g = a[2 * H + k];
        float o = a[3 * H + k];
        float dht = dhb[k] + (has_dy ? dyt[k] : 0.0f);
        float tc = lstm__vtanh(cn[k]);
        float dcc = dcb[k] + dht * o * (1.0f - tc * tc);
        float d_o = dht * tc;
        da[k] = dcc * g * i * (1.0f - i);
        da[H + k] = dcc * cp[k] * f * (1.0f - f);
        da[2 * H + k] = dcc * i * (1.0f - g * g);
        da[3 * H + k] = d_o * o * (1.0f - o);
        dcb[k] = dcc * f;
    }
}

/* Zeroes the four gate ranges of n units of a gate row. */
static inline __attribute__((always_inline)) void
zero_gates(float *a, size_t H, size_t n)
{
    for (size_t q = 0; q < 4; q++)
        memset(a + q * H, 0, n * sizeof *a);
}

/* Step t of row b after its product: the gate math, or past its length
 * the state carried and zeros; with pf & 1, the row's next step asked
 * for. */
static inline __attribute__((always_inline)) void
fwd_row(int pf, size_t b, size_t t, size_t T, size_t H, size_t k0, size_t n,
        const size_t *len, float *gates, float *hs, float *cs, float *y,
        int bf16)
{
    const size_t G = 4 * H;
    float *a = gates + (b * T + t) * G + k0;
    float *hp = hs + (b * (T + 1) + t) * H + k0;
    float *cp = cs + (b * (T + 1) + t) * H + k0;
    float *yt = y + (b * T + t) * H + k0;
    if (t >= len[b]) {  /* past the end: the state is carried */
        memcpy(hp + H, hp, n * sizeof *hp);
        memcpy(cp + H, cp, n * sizeof *cp);
        memset(yt, 0, n * sizeof *yt);
        zero_gates(a, H, n);
        return;
    }
    if (bf16)  /* two copies of the gate math, one per precision */
        cell_fwd(a, hp + H, cp + H, yt, cp, H, n, 1);
    else
        cell_fwd(a, hp + H, cp + H, yt, cp, H, n, 0);
    if ((pf & 1) && t + 1 < T) {  /* the row's next step */
        for (size_t q = 0; q < 4; q++)
            prefetch_span(a + G + q * H, n);
        prefetch_span(hp + 2 * H, n);
        prefetch_span(cp + 2 * H, n);
        prefetch_span(yt + H, n);
    }
}

static inline __attribute__((always_inline)) void
fwd_body(int vw, int prod, int pf, size_t rm, size_t nb, size_t T, size_t H,
         size_t k0, size_t k1, const size_t *len, float *gates,
         const float *bias, float *hs, float *cs, float *y,
         const float *w_pk, int bf16, void (*sync)(void))
{
    const size_t G = 4 * H, n = k1 - k0, pq = lstm__pack16_size(H, n);
#if LSTM_X86
    if (prod == 2)
        lstm__amx_begin();
#endif
    /* the float product goes in blocks of rows (rowmm_pf's), each
     * followed by its rows' gate math while their pre-activations are in
     * L1, and the next block's multiply-adds overlap that math's long
     * chains (the tile products have one block: all rows). Measured in
     * bench/lstm_step --batch 64 --mode train --reps 10 (2 threads, 32
     * rows each, Sapphire Rapids), timers around the recurrences: forward
     * 544-622 -> 504-519 ms a run; B=64 inference 89-93 -> 85-86 ms a
     * batch. The backward the same way measured no faster. */
    for (size_t t = 0; t < T; t++) {
        /* a_b,t += bias + h_b,t-1 W_hh^T, one gate at a time for units
         * [k0,k1), for the running rows: the tile products for rows up to
         * the last one running (finished rows before it are computed too,
         * and overwritten); the float product for those rows alone,
         * gathered in blocks (rowmm_pf_rows) */
        size_t live = nb;
        while (live > 0 && t >= len[live - 1])
            live--;
#if LSTM_X86
        if (prod) {
            if (prod == 2)
                rec_amx(live, H, n, 4, hs + t * H, (T + 1) * H,
                        (const uint32_t *)w_pk, tiles_size(H, n),
                        gates + t * G + k0, T * G, H, 1, bias + k0);
            else
                rec_pairs(live, H, n, 4, hs + t * H, (T + 1) * H, w_pk,
                          pairs16_size(H, n), gates + t * G + k0, T * G, H, 1,
                          bias + k0);
            for (size_t b = 0; b < nb; b++)
                fwd_row(pf, b, t, T, H, k0, n, len, gates, hs, cs, y, bf16);
        } else
#endif
        {
            const size_t nl = running_count(live, t, len);
            const size_t maxb = rowmm_maxb(vw, nl, rm);
            size_t blocks = (nl + maxb - 1) / maxb, r, at = 0;
            for (size_t j = 0; j < nl; j += r, blocks--) {
                size_t rix[12];  /* rowmm_running's blocks, and their math */
                r = rowmm_rows(vw, nl - j, blocks, maxb);
                running_next(rix, r, t, len, &at);
                for (size_t q = 0; q < 4; q++)
                    rowmm_pf_rows(vw, r, H, n, hs + t * H, (T + 1) * H, 1,
                                  w_pk + q * pq, 16, 16 * H,
                                  gates + t * G + q * H + k0, T * G, 1,
                                  bias + q * H + k0, NULL, rm, rix);
                for (size_t i = 0; i < r; i++)
                    fwd_row(pf, rix[i], t, T, H, k0, n, len, gates, hs, cs, y,
                            bf16);
            }
            for (size_t b = 0; b < nb; b++)  /* the finished rows */
                if (t >= len[b])
                    fwd_row(pf, b, t, T, H, k0, n, len, gates, hs, cs, y,
                            bf16);
        }
        if (sync)
            sync();
    }
#if LSTM_X86
    if (prod == 2)
        lstm__amx_end();
#endif
}

static inline __attribute__((always_inline)) void
bwd_body(int vw, int prod, int pf, size_t rm, size_t nb, size_t T, size_t H,
         size_t k0, size_t k1, const size_t *len, float *dA, float *dh,
         float *dc, const float *dy, const float *gates, const float *cs,
         const float *w_pk, float *db, float *scratch, int bf16,
         void (*sync)(void))
{
    const size_t G = 4 * H, n = k1 - k0;
#if LSTM_X86
    if (prod == 2)
        lstm__amx_begin();
#endif
    for (size_t b = 0; b < nb; b++)
        zero_gates(db + b * G + k0, H, n);
    /* pf & 4: past 8 rows (in blocks of rm), the float product's tiles
     * have a slot for about as many lines as the rows' next step reads,
     * and ask for them paced; fewer rows, or the tile products, ask in a
     * burst per row (pf & 2) */
    const int paced = !prod && (pf & 4) && rm && nb > 8 && n == H;
    for (size_t t = T; t-- > 0;) {
        for (size_t b = 0; b < nb; b++) {
            float *restrict da = dA + (b * T + t) * G + k0;
            if (t >= len[b]) {  /* carried state: dh, dc pass through */
                zero_gates(da, H, n);
                continue;
            }
            const float *restrict a = gates + (b * T + t) * G + k0;
            const float *restrict cp = cs + (b * (T + 1) + t) * H + k0;
            const float *restrict cn = cp + H;
            const float *restrict dyt = dy ? dy + (b * T + t) * H + k0 : NULL;
            float *restrict dhb = dh + b * H + k0, *restrict dcb = dc + b * H + k0;
            if (dyt)
                cell_bwd(da, dhb, dcb, dyt, a, cp, cn, H, n, 1);
            else
                cell_bwd(da, dhb, dcb, NULL, a, cp, cn, H, n, 0);
            if ((pf & 2) && !paced && t > 0) {  /* the row's next step, t-1 */
                for (size_t q = 0; q < 4; q++) {
                    prefetch_span(a - G + q * H, n);
                    prefetch_span(da - G + q * H, n);
                }
                prefetch_span(cp - H, n);
                if (dyt)
                    prefetch_span(dyt - H, n);
            }
            for (size_t q = 0; q < 4; q++) {
                float *restrict d = da + q * H, *restrict s = db + b * G + k0 + q * H;
                if (bf16) {  /* da is a GEMM operand from here on */
#pragma omp simd
                    for (size_t k = 0; k < n; k++) {
                        d[k] = lstm__vbf16(d[k]);
                        s[k] += d[k];
                    }
                } else {
#pragma omp simd
                    for (size_t k = 0; k < n; k++)
                        s[k] += d[k];
                }
            }
        }
        if (sync)  /* the product below reads every unit's dA_t */
            sync();
        /* dh_b,t-1 = da_b,t W_hh for the slice (up to its last running
         * row) and units [k0,k1), into scratch; rows past their end keep
         * the dh they carry */
        size_t live = nb;
        while (live > 0 && t >= len[live - 1])
            live--;
#if LSTM_X86
        if (prod == 2)
            rec_amx(live, G, n, 1, dA + t * G, T * G, (const uint32_t *)w_pk,
                    0, scratch + k0, H, 0, 0, NULL);
        else if (prod == 1)
            rec_pairs(live, G, n, 1, dA + t * G, T * G, w_pk, 0, scratch + k0,
                      H, 0, 0, NULL);
        else
#endif
        {
            /* paced: the rows' next step asked for line by line as the
             * tiles run (rowmm_pf), only what the rows read there: their
             * gates, c and output gradient */
            pf_cursor next = {.i = 3}, *pfc = NULL;
            if (paced && t > 0) {
                const size_t f = sizeof *dA;
                next = (pf_cursor){
                    {(const char *)(gates + (t - 1) * G),
                     (const char *)(cs + (t - 1) * H),
                     (const char *)(dy ? dy + (t - 1) * H : NULL)},
                    {G * f, H * f, dy ? H * f : 0},
                    {T * G * f, (T + 1) * H * f, T * H * f},
                    {live, live, live}, 0, 0, 0};
                pf_skip(&next);
                pfc = &next;
            }
            rowmm_running(vw, live, t, len, G, n, dA + t * G, T * G, w_pk,
                          16, 16 * G, scratch + k0, H, 0, NULL, pfc, rm);
        }
        for (size_t b = 0; b < nb; b++)
            if (t < len[b])
                memcpy(dh + b * H + k0, scratch + b * H + k0, n * sizeof *dh);
    }
#if LSTM_X86
    if (prod == 2)
        lstm__amx_end();
#endif
}

/* The tuned GEMM: C (M,N) (+)= op(A) (M,K) x B (K,N) as rowmm products
 * with B in 16-column panels (packed, panels(), or read where it lies for
 * few rows) and A broadcast element by element, transposed or not. K in blocks
 * of GEMM_KC, so that a row block's share of B stays in L2 across its
 * panels; C accumulates over the blocks. The columns past the last
 * multiple of 16 go through a zero-padded copy of their part of B, so
 * every column is this code's, whatever rows a call is given. What this
 * does not cover (B transposed, alpha other than 1, beta other than 0 or
 * 1) goes to BLAS. */
enum { GEMM_KC = 512, PACK_MIN_M = 48 };

/* Rows [0,kc) x columns [0,n16) of B (row length ldb) as panels of 16
 * columns, each kc rows of 16 floats in a row (panel j at dst + j*kc):
 * the tiles then stream each panel from consecutive addresses, where B's
 * own rows (2 KB apart at N = 512) map onto a few sets of L1 and evict
 * each other. Measured at B=32 on a Sapphire Rapids (2 threads, the
 * shapes of a training step): the input projection 19.2 -> 15.4 ms, dX
 * 18.5 -> 16.0 ms. Once per K block for M >= PACK_MIN_M rows (the packing
 * is then a small part of the work), whatever the set: same bits. B is
 * read row by row (each row's panels in turn), as the hardware prefetches
 * it; so are row_blocks' sources. */
static inline __attribute__((always_inline)) const float *
panels(float *dst, const float *B, size_t ldb, size_t kc, size_t n16)
{
    for (size_t m = 0; m < kc; m++)
        for (size_t j = 0; j < n16; j += 16)
            memcpy(dst + j * kc + m * 16, B + m * ldb + j, 16 * sizeof *dst);
    return dst;
}

/* op(A) B for runs of rows of C (kernels.h's lstm__gemm_runs_fn; one run
 * [0,M) for the GEMM): run r is rows [run[2r], run[2r] + run[2r+1]) of
 * C and of op(A) (rows of A, or with ta its columns); with add, C's old
 * values start the sums. B's panels are packed once per K block for all
 * runs, and so is the zero-padded copy of its last N % 16 columns: each
 * element's sum is then the same however the rows are split into runs. */
static inline __attribute__((always_inline)) void
gemm_runs_body(int vw, int ta, size_t nrun, const size_t *run, size_t N,
               size_t K, const float *A, size_t lda, const float *B,
               size_t ldb, int add0, float *C, size_t ldc)
{
    const size_t N16 = N / 16 * 16, nt = N - N16;
    size_t M = 0;
    for (size_t r = 0; r < nrun; r++)
        M += run[2 * r + 1];
    if (K == 0 && !add0)
        for (size_t r = 0; r < nrun; r++)
            for (size_t i = 0; i < run[2 * r + 1]; i++)
                memset(C + (run[2 * r] + i) * ldc, 0, N * sizeof *C);
    float *bp = M >= PACK_MIN_M && N16
                    ? aligned_alloc(64, (K < GEMM_KC ? K : GEMM_KC) * N16 * 4)
                    : NULL;
    for (size_t k0 = 0; k0 < K; k0 += GEMM_KC) {
        const size_t kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
        const int add = k0 > 0 || add0;
        const float *bb = B + k0 * ldb;
        size_t ldw = ldb, wps = 16;
        if (bp) {
            bb = panels(bp, bb, ldb, kc, N16);
            ldw = 16;
            wps = 16 * kc;
        }
        float tail[GEMM_KC * 16];
        for (size_t k = 0; k < kc && nt; k++) {
            memcpy(tail + k * 16, B + (k0 + k) * ldb + N16,
                   nt * sizeof *tail);
            memset(tail + k * 16 + nt, 0, (16 - nt) * sizeof *tail);
        }
        for (size_t r = 0; r < nrun; r++) {
            const size_t r0 = run[2 * r], m = run[2 * r + 1];
            const float *a = ta ? A + k0 * lda + r0 : A + r0 * lda + k0;
            float *c = C + r0 * ldc;
            if (N16 && ta)  /* two copies: the strides of A constants */
                rowmm(vw, m, kc, N16, a, 1, lda, bb, ldw, wps, c, ldc, add,
                      NULL);
            else if (N16)  /* rows far apart: blocks of 6 (rowmm_pf) */
                rowmm_pf(vw, m, kc, N16, a, lda, 1, bb, ldw, wps, c, ldc,
                         add, NULL, NULL, 6);
            if (nt)
                rowmm(vw, m, kc, nt, a, ta ? 1 : lda, ta ? lda : 1, tail, 16,
                      16 * kc, c + N16, ldc, add, NULL);
        }
    }
    free(bp);
}

static inline __attribute__((always_inline)) void
gemm_body(int vw, int ta, int tb, size_t M, size_t N, size_t K, float alpha,
          const float *A, size_t lda, const float *B, size_t ldb, float beta,
          float *C, size_t ldc)
{
    if (tb || alpha != 1.0f || (beta != 0.0f && beta != 1.0f)) {
        lstm__gemm_blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const size_t run[2] = {0, M};
    gemm_runs_body(vw, ta, 1, run, N, K, A, lda, B, ldb, beta != 0.0f, C,
                   ldc);
}

/* The weight gradients (kernels.h's lstm__wgrad_fn) as one pass over the
 * gate gradients: K in blocks of WGRAD_KC rows that never cross a
 * sequence, and for each block and each WGRAD_MR rows of C1 and C2 both
 * products while those columns of A are in L1 (with A1 == A2, as in an
 * LSTM, the gate gradients are read from memory once for the two). At
 * 128 rows a block of A, X's and H's blocks and a thread's share of C fit
 * the 1 MB of L2 of a Zen 5 core, and a row block's columns of A (6 KB)
 * and a tile's share of X (16 KB) fit its 48 KB of L1. Measured in a
 * training step at B=32 (bench/lstm_step with timers around the calls,
 * 8 alternating rounds, Zen 5): K blocks of 512 rows (GEMM_KC) made
 * `dA^T X` alone 1.2-1.3x slower; of 256, the whole pass took 38.8 ms on
 * average, of 192 35.9, of 128 36.2. The columns past the last multiple
 * of 16 go to gemm_body, whose sums are the same.
 *
 * Packing a block reads it from memory while the tiles wait (on a Sapphire
 * Rapids, one thread, half a B=32 layer's rows: the tiles alone 18.3 ms,
 * the packing alone 6.1, both 25.0): with pf, the tiles ask for the next
 * block's lines of X, H and A1 one at a time as they run (rowmm_pf), and
 * its packing then finds them in L2 (25.0 -> 23.4 ms; a burst of
 * prefetches at the start of each block, or per row block, gained
 * nothing). */
enum { WGRAD_KC = 128, WGRAD_MR = 12 };

/* Rows [0,kc) x columns [0,M) of A (row length lda) in blocks of
 * WGRAD_MR columns, each kc rows of its r columns in a row (block i0 at
 * dst + i0*kc): a tile's broadcasts then come from consecutive addresses,
 * where the rows of A (2 KB apart at 4H = 512) evict each other from L1
 * as B's do (panels). Measured with B's panels, 1 thread, the weight
 * gradients of a B=32 layer: 118 -> 134 GFLOP/s (Zen 5); reading A row by
 * row, not block by block, with a constant copy size for whole blocks:
 * 121 -> 127 on half a layer's rows (Sapphire Rapids). */
static inline __attribute__((always_inline)) const float *
row_blocks(float *dst, const float *A, size_t lda, size_t kc, size_t M)
{
    const size_t full = M / WGRAD_MR * WGRAD_MR, r = M - full;
    for (size_t k = 0; k < kc; k++) {
        for (size_t i0 = 0; i0 < full; i0 += WGRAD_MR)
            memcpy(dst + i0 * kc + k * WGRAD_MR, A + k * lda + i0,
                   WGRAD_MR * sizeof *dst);
        if (r)
            memcpy(dst + full * kc + k * r, A + k * lda + full,
                   r * sizeof *dst);
    }
    return dst;
}

static inline __attribute__((always_inline)) void
wgrad_body(int vw, int pf, size_t M, size_t nseq, size_t T,
           const size_t *len, const float *A1,
           const float *A2, size_t lda, const float *X, size_t ldx,
           size_t N1, float *C1, size_t ldc1, const float *H, size_t ldh,
           size_t hstride, size_t N2, float *C2, size_t ldc2)
{
    const size_t n1 = N1 / 16 * 16, n2 = N2 / 16 * 16;
    /* X's, H's and the gate gradients' blocks packed (panels, row_blocks) */
    const size_t na = A1 == A2 ? 1 : 2;
    float *xp = M >= PACK_MIN_M && n1 + n2
                    ? aligned_alloc(64, WGRAD_KC * (n1 + n2 + na * M) *
                                            sizeof *xp)
                    : NULL;
    for (size_t s = 0; s < nseq && (n1 || n2); s++) {
        const size_t Ts = len ? len[s] : T;  /* the rest is padding */
        for (size_t t0 = 0; t0 < Ts; t0 += WGRAD_KC) {
            const size_t kc = Ts - t0 < WGRAD_KC ? Ts - t0 : WGRAD_KC;
            const size_t k0 = s * T + t0;
            const float *a1 = A1 + k0 * lda, *a2 = A2 + k0 * lda;
            const float *x = X + k0 * ldx, *h = H + s * hstride + t0 * ldh;
            size_t lx = ldx, lh = ldh, ps = 16;
            if (xp) {
                float *ap = xp + WGRAD_KC * (n1 + n2);
                x = panels(xp, x, ldx, kc, n1);
                h = panels(xp + kc * n1, h, ldh, kc, n2);
                lx = lh = 16;
                ps = 16 * kc;
                a1 = row_blocks(ap, a1, lda, kc, M);
                a2 = A1 == A2 ? a1 : row_blocks(ap + kc * M, a2, lda, kc, M);
            }
            /* the next block's sources, asked for while this one's
             * products run */
            pf_cursor next = {.i = 3}, *pfc = NULL;
            const size_t ns = t0 + kc < Ts ? s : s + 1;
            if (pf && xp && ns < nseq) {
                const size_t nt0 = ns == s ? t0 + kc : 0;
                const size_t nT = len ? len[ns] : T;
                const size_t nkc = nT - nt0 < WGRAD_KC ? nT - nt0 : WGRAD_KC;
                const size_t nk0 = ns * T + nt0;
                next = (pf_cursor){
                    {(const char *)(X + nk0 * ldx),
                     (const char *)(H + ns * hstride + nt0 * ldh),
                     (const char *)(A1 + nk0 * lda)},
                    {n1 * sizeof *X, n2 * sizeof *X, M * sizeof *X},
                    {ldx * sizeof *X, ldh * sizeof *X, lda * sizeof *X},
                    {nkc, nkc, nkc}, 0, 0, 0};
                pf_skip(&next);
                pfc = &next;
            }
            for (size_t i0 = 0; i0 < M; i0 += WGRAD_MR) {
                const size_t r = M - i0 < WGRAD_MR ? M - i0 : WGRAD_MR;
                /* row i of the block, its k-th: at o + i + k*ics */
                const size_t o = xp ? i0 * kc : i0, ics = xp ? r : lda;
                if (n1)
                    rowmm_pf(vw, r, kc, n1, a1 + o, 1, ics, x, lx, ps,
                             C1 + i0 * ldc1, ldc1, 1, NULL, pfc, 0);
                if (n2)
                    rowmm_pf(vw, r, kc, n2, a2 + o, 1, ics, h, lh, ps,
                             C2 + i0 * ldc2, ldc2, 1, NULL, pfc, 0);
            }
        }
    }
    free(xp);
    for (size_t s = 0; s < nseq; s++) {  /* the last columns: live rows */
        const size_t Ts = len ? len[s] : T;
        if (N1 > n1 && Ts)
            gemm_body(vw, 1, 0, M, N1 - n1, Ts, 1.0f, A1 + s * T * lda, lda,
                      X + s * T * ldx + n1, ldx, 1.0f, C1 + n1, ldc1);
        if (N2 > n2 && Ts)
            gemm_body(vw, 1, 0, M, N2 - n2, Ts, 1.0f, A2 + s * T * lda, lda,
                      H + s * hstride + n2, ldh, 1.0f, C2 + n2, ldc2);
    }
}

/* One copy of each kernel per instruction set; kernels.h's LSTM_ISA_*
 * attributes, dispatch.c picks one at run time. */
#define RECURRENCE(isa, attr, vw, prod, pf, rm)                         \
    attr void lstm__lstm_fwd_##isa(                                         \
        size_t nb, size_t T, size_t H, size_t k0, size_t k1,                \
        const size_t *len, float *gates, const float *bias, float *hs,      \
        float *cs, float *y, const float *w_hh, const float *w_pk, int bf16,\
        void (*sync)(void))                                                 \
    {                                                                       \
        (void)w_hh;                                                         \
        fwd_body(vw, prod, pf, rm, nb, T, H, k0, k1, len, gates, bias, hs,  \
                 cs, y, w_pk, bf16, sync);                                  \
    }                                                                       \
    attr void lstm__lstm_bwd_##isa(                                         \
        size_t nb, size_t T, size_t H, size_t k0, size_t k1,                \
        const size_t *len, float *dA, float *dh, float *dc, const float *dy,\
        const float *gates, const float *cs, const float *w_hh,             \
        const float *w_pk, float *db, float *scratch, int bf16,             \
        void (*sync)(void))                                                 \
    {                                                                       \
        (void)w_hh;                                                         \
        bwd_body(vw, prod, pf, rm, nb, T, H, k0, k1, len, dA, dh, dc, dy,  \
                 gates, cs, w_pk, db, scratch, bf16, sync);                 \
    }

/* rm: the float product's rows_max (rowmm_pf: past 8 rows, blocks of at
 * most rm; 0: up to 12). The rows of h and dA are far apart,
 * and blocks of 6 keep their addresses in registers: one thread of a
 * Sapphire Rapids, T=512, H=128, 16 rows: forward 10.9-11.2 -> 10.7-11.2
 * ms, backward 12.1-12.5 -> 11.3-11.9; 32 rows: 22.5-23.1 -> 22.1-22.5,
 * 25.0-25.3 -> 23.4-23.7; 8 rows (as one block of 8, or 4 + 4 in blocks
 * of 6): 5.0-5.2 either way. Measured only there: the avx512bf16 set (a
 * Zen 5's choice) keeps 12. */
RECURRENCE(generic, , 4, 0, 0, 0)
#if LSTM_X86
RECURRENCE(avx2, LSTM_ISA_AVX2, 8, 0, 0, 0)
RECURRENCE(avx512, LSTM_ISA_AVX512, 16, 0, 0, 6)
RECURRENCE(avx512bf16, LSTM_ISA_AVX512, 16, bf16 && pairs_ok(H), 0, 0)
/* pf: bit 0 the forward, bit 1 the backward prefetches each row's next
 * step (rowmm.h's prefetch_span). The backward's measured faster on the
 * Sapphire Rapids this set runs on (slightly slower on a Zen 5,
 * docs/performance.md); the forward's was too until its rows went in
 * blocks of 6, then slower (one thread, 16 rows: 10.1-10.2 ms without it,
 * 10.8-11.2 with; bf16-mixed 5.5-5.6 against 5.7-5.8). Bit 2: past 8 rows
 * the backward's float product asks for the lines it reads there paced
 * instead, and none of dA, which the step only writes (one thread, T=512,
 * H=128: 16 rows 10.6-10.8 -> 10.4 ms, 32 rows 22.0-22.7 -> 21.2-21.4;
 * with no prefetch at all, 32 rows took 24.4). At 4 rows paced was
 * slower (2.54 against 2.32); the bursts without dA's lines were faster
 * at 32 rows (22.5-22.8 -> 21.9-22.0) but slower at 8 (5.11-5.19 ->
 * 5.20-5.25) and in bf16-mixed (32 rows 13.0-13.4 -> 14.1). */
RECURRENCE(amx, LSTM_ISA_AVX512, 16, bf16 && amx_ok(H) ? 2 : 0, 6, 6)

/* The tuned GEMM for AVX-512 only: with AVX2 it measured the same as
 * OpenBLAS's kernels (bench/lstm_step, LSTM_KERNELS=avx2, on a Zen 5), so
 * BLAS stays there; with AVX-512 it is what makes the products run at a
 * high fraction of peak (docs/performance.md). */
LSTM_ISA_AVX512 void lstm__gemm_avx512(int ta, int tb, size_t M, size_t N,
                                       size_t K, float alpha, const float *A,
                                       size_t lda, const float *B, size_t ldb,
                                       float beta, float *C, size_t ldc)
{
    gemm_body(16, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

LSTM_ISA_AVX512 void lstm__gemm_runs_avx512(size_t n, const size_t *run,
                                            size_t N, size_t K,
                                            const float *A, size_t lda,
                                            const float *B, size_t ldb,
                                            float *C, size_t ldc)
{
    gemm_runs_body(16, 0, n, run, N, K, A, lda, B, ldb, 0, C, ldc);
}

LSTM_ISA_AVX512 void lstm__wgrad_avx512(size_t M, size_t nseq, size_t T,
                                        const size_t *len,
                                        const float *A1, const float *A2,
                                        size_t lda, const float *X,
                                        size_t ldx, size_t N1, float *C1,
                                        size_t ldc1, const float *H,
                                        size_t ldh, size_t hstride,
                                        size_t N2, float *C2, size_t ldc2)
{
    wgrad_body(16, 0, M, nseq, T, len, A1, A2, lda, X, ldx, N1, C1, ldc1, H,
               ldh, hstride, N2, C2, ldc2);
}

/* The same with the prefetch of each block's successor (the amx set's) */
LSTM_ISA_AVX512 void lstm__wgrad_amx(size_t M, size_t nseq, size_t T,
                                     const size_t *len,
                                     const float *A1, const float *A2,
                                     size_t lda, const float *X, size_t ldx,
                                     size_t N1, float *C1, size_t ldc1,
                                     const float *H, size_t ldh,
                                     size_t hstride, size_t N2, float *C2,
                                     size_t ldc2)
{
    wgrad_body(16, 1, M, nseq, T, len, A1, A2, lda, X, ldx, N1, C1, ldc1, H,
               ldh, hstride, N2, C2, ldc2);
}
#endif
