/*
 * gru_cell.c - the tuned recurrence of one GRU layer, forward and backward
 * through time, for a slice of the batch (contract in kernels.h, formulas
 * in gru_cell_ref.c). As for the LSTM (lstm_cell.c): all sequences of the
 * slice per step, so each row of W_hh is read once per step, through
 * rowmm.h's register tiles over W_hh packed in 16-column panels, and
 * vmath.h's sigmoid and tanh; one copy per instruction set. The Makefile
 * builds it with lstm_cell.c's flags.
 */
#include <string.h>

#include "kernels.h"
#include "rowmm.h"
#include "vmath.h"

/* Gate math of one step for one sequence: a the input side (x W_ih^T),
 * s = h W_hh^T (no bias yet). One loop per activation, as in lstm_cell.c. */
static inline __attribute__((always_inline)) void
cell_fwd(float *restrict a, const float *restrict s, const float *restrict bi,
         const float *restrict bh, const float *restrict hp,
         float *restrict hnext, float *restrict sn, float *restrict yt,
         size_t H)
{
#pragma omp simd
    for (size_t k = 0; k < H; k++)  /* r */
        a[k] = lstm__vsigmoid(a[k] + bi[k] + (s[k] + bh[k]));
#pragma omp simd
    for (size_t k = H; k < 2 * H; k++)  /* z */
        a[k] = lstm__vsigmoid(a[k] + bi[k] + (s[k] + bh[k]));
#pragma omp simd
    for (size_t k = 0; k < H; k++) {  /* n, h' */
        const size_t j = 2 * H + k;
        float v = s[j] + bh[j];
        float n = lstm__vtanh(a[j] + bi[j] + a[k] * v);
        float h = n + a[H + k] * (hp[k] - n);
        a[j] = n;
        sn[k] = v;
        hnext[k] = h;
        yt[k] = h;
    }
}

/* Gate derivatives of one step for one sequence; dhb becomes dh' * z, the
 * direct part of the gradient at h_{t-1}. */
static inline __attribute__((always_inline)) void
cell_bwd(float *restrict da, float *restrict ds, float *restrict dhb,
         float *restrict dbi, float *restrict dbh,
         const float *restrict dyt, const float *restrict a,
         const float *restrict hp, const float *restrict sn, size_t H,
         int has_dy)
{
#pragma omp simd
    for (size_t k = 0; k < H; k++) {
        float r = a[k], z = a[H + k], n = a[2 * H + k];
        float d = dhb[k] + (has_dy ? dyt[k] : 0.0f);
        float dan = d * (1.0f - z) * (1.0f - n * n);
        float dar = dan * sn[k] * r * (1.0f - r);
        float daz = d * (hp[k] - n) * z * (1.0f - z);
        da[k] = ds[k] = dar;
        da[H + k] = ds[H + k] = daz;
        da[2 * H + k] = dan;
        ds[2 * H + k] = dan * r;
        dhb[k] = d * z;
        /* the sequence's bias gradient sums; dAh's r and z parts are dA's,
         * copied once the sequence is done (bwd_body) */
        dbi[k] += dar;
        dbi[H + k] += daz;
        dbi[2 * H + k] += dan;
        dbh[2 * H + k] += dan * r;
    }
}

static inline __attribute__((always_inline)) void
fwd_body(int vw, int pf, size_t rm, size_t nb, size_t T, size_t H,
         const size_t *len, float *gates, const float *b_ih,
         const float *b_hh, float *hs, float *hn, float *y,
         const float *w_pk, float *scratch)
{
    const size_t G = 3 * H;
    for (size_t t = 0; t < T; t++) {
        /* s_b = h_b,t-1 W_hh^T for the rows still running */
        rowmm_running(vw, nb, t, len, H, G, hs + t * H, (T + 1) * H, w_pk,
                      16, 16 * H, scratch, G, 0, NULL, NULL, rm);
        for (size_t b = 0; b < nb; b++) {
            float *a = gates + (b * T + t) * G;
            float *hp = hs + (b * (T + 1) + t) * H;
            float *sn = hn + (b * T + t) * H;
            float *yt = y + (b * T + t) * H;
            if (t >= len[b]) {  /* past the end: the state is carried */
                memcpy(hp + H, hp, H * sizeof *hp);
                memset(yt, 0, H * sizeof *yt);
                memset(sn, 0, H * sizeof *sn);
                memset(a, 0, G * sizeof *a);
                continue;
            }
            cell_fwd(a, scratch + b * G, b_ih, b_hh, hp, hp + H, sn, yt, H);
            if ((pf & 1) && t + 1 < T) {  /* the row's next step */
                prefetch_span(a + G, G);
                prefetch_span(hp + 2 * H, H);
                prefetch_span(sn + H, H);
                prefetch_span(yt + H, H);
            }
        }
    }
}

static inline __attribute__((always_inline)) void
bwd_body(int vw, int pf, size_t rm, size_t nb, size_t T, size_t H,
         const size_t *len, float *dA, float *dAh, float *dh, const float *dy,
         const float *gates, const float *hs, const float *hn,
         const float *w_pk, float *db, float *scratch)
{
    const size_t G = 3 * H;
    memset(db, 0, nb * 2 * G * sizeof *db);
    for (size_t t = T; t-- > 0;) {
        for (size_t b = 0; b < nb; b++) {
            float *da = dA + (b * T + t) * G, *ds = dAh + (b * T + t) * G;
            if (t >= len[b]) {  /* carried state: dh passes through */
                memset(da, 0, G * sizeof *da);
                memset(ds, 0, G * sizeof *ds);
                continue;
            }
            const float *a = gates + (b * T + t) * G;
            const float *hp = hs + (b * (T + 1) + t) * H;
            const float *sn = hn + (b * T + t) * H;
            const float *dyt = dy ? dy + (b * T + t) * H : NULL;
            float *dbi = db + b * 2 * G, *dbh = dbi + G;
            if (dyt)
                cell_bwd(da, ds, dh + b * H, dbi, dbh, dyt, a, hp, sn, H, 1);
            else
                cell_bwd(da, ds, dh + b * H, dbi, dbh, NULL, a, hp, sn, H, 0);
            if ((pf & 2) && t > 0) {  /* the row's next step, t-1 */
                prefetch_span(a - G, G);
                prefetch_span(da - G, G);
                prefetch_span(ds - G, G);
                prefetch_span(hp - H, H);
                prefetch_span(sn - H, H);
                if (dyt)
                    prefetch_span(dyt - H, H);
            }
        }
        /* dh_b,t-1 = dh' z + ds_b,t W_hh for the rows still running */
        rowmm_running(vw, nb, t, len, G, H, dAh + t * G, T * G, w_pk, 16,
                      16 * G, scratch, H, 0, NULL, NULL, rm);
        for (size_t b = 0; b < nb; b++) {
            if (t >= len[b])
                continue;
            float *restrict d = dh + b * H;
            const float *restrict p = scratch + b * H;
#pragma omp simd
            for (size_t k = 0; k < H; k++)
                d[k] += p[k];
        }
    }
    for (size_t b = 0; b < nb; b++)  /* dAh's r and z sums: dA's */
        memcpy(db + b * 2 * G + G, db + b * 2 * G, 2 * H * sizeof *db);
}

#define GRU(isa, attr, vw, pf, rm)                                          \
    attr void lstm__gru_fwd_##isa(                                          \
        size_t nb, size_t T, size_t H, const size_t *len, float *gates,     \
        const float *b_ih, const float *b_hh, float *hs, float *hn,         \
        float *y, const float *w_hh, const float *w_pk, float *scratch)     \
    {                                                                       \
        (void)w_hh;                                                         \
        fwd_body(vw, pf, rm, nb, T, H, len, gates, b_ih, b_hh, hs, hn, y,   \
                 w_pk, scratch);                                            \
    }                                                                       \
    attr void lstm__gru_bwd_##isa(                                          \
        size_t nb, size_t T, size_t H, const size_t *len, float *dA,        \
        float *dAh, float *dh, const float *dy, const float *gates,         \
        const float *hs, const float *hn, const float *w_hh,                \
        const float *w_pk, float *db, float *scratch)                       \
    {                                                                       \
        (void)w_hh;                                                         \
        bwd_body(vw, pf, rm, nb, T, H, len, dA, dAh, dh, dy, gates, hs, hn, \
                 w_pk, db, scratch);                                        \
    }

/* pf and rm as lstm_cell.c's RECURRENCE: prefetches (bit 0 forward, bit 1
 * backward) and rows in blocks of at most rm. One thread of a Sapphire
 * Rapids, T=512, H=128, with blocks of 6: the forward's prefetch measured
 * faster (32 rows 16.4-17.6 ms with, 20.3-21.4 without), the backward's
 * about level (16 rows 9.7-10.1 with, 10.0-10.2 without); blocks of 6 (16
 * rows): forward 8.4-8.8 -> 8.0-8.1, backward 10.0-10.5 -> 9.7-10.1. */
GRU(generic, , 4, 0, 0)
#if LSTM_X86
GRU(avx2, LSTM_ISA_AVX2, 8, 0, 0)
GRU(avx512, LSTM_ISA_AVX512, 16, 0, 6)
GRU(amx, LSTM_ISA_AVX512, 16, 3, 6)
#endif
