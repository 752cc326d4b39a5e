/*
 * check_kernels.c - every tuned kernel against its _ref twin over odd
 * shapes (1, 3, 7, 17, 65 and one large case), and the vectorisable
 * exp/sigmoid/tanh against libm.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../lib/internal.h"  /* the kernels, lstm__share */
#include "../kernels/vmath.h"

static const size_t odd[] = {1, 3, 7, 17, 65};
#define NODD (sizeof odd / sizeof *odd)

static int quick(void) { return getenv("LSTM_TEST_QUICK") != NULL; }

/* The tuned sets, by loop index; NULL where this CPU cannot run one. */
static const char *set_names[] = {"generic", "avx2", "avx512", "avx512bf16",
                                  "amx"};
#define NSETS 5
static const lstm__kernels *tuned(int i)
{
    static int said[NSETS];
    const lstm__kernels *k = lstm__kernels_get(set_names[i]);
    if (!k && !said[i]++)  /* once per set, in the test output */
        printf("kernels: this CPU cannot run the %s set: its tests are "
               "skipped here\n", set_names[i]);
    return k;
}

START_TEST(vmath_against_libm)
{
    double worst_e = 0, worst_s = 0, worst_t = 0;
    for (int k = -200000; k <= 200000; k++) {
        float x = (float)k * 1e-4f * (k % 7 == 0 ? 0.01f : 1.0f);
        double e = exp((double)x), s = 1.0 / (1.0 + exp(-(double)x));
        double t = tanh((double)x);
        worst_e = fmax(worst_e, fabs((double)lstm__vexp(x) - e) / e);
        worst_s = fmax(worst_s, fabs((double)lstm__vsigmoid(x) - s) / s);
        if (t != 0.0)
            worst_t = fmax(worst_t, fabs((double)lstm__vtanh(x) - t) /
                                        fabs(t));
    }
    ck_assert_msg(worst_e < 2e-7, "exp relative error %g", worst_e);
    ck_assert_msg(worst_s < 3e-7, "sigmoid relative error %g", worst_s);
    /* tanh's one formula near zero: expm1 keeps the relative accuracy */
    for (int d = -30; d < 0; d++) {
        const float x = 1.2345f * powf(10.0f, (float)d);
        const double t = tanh((double)x);
        worst_t = fmax(worst_t, fabs((double)lstm__vtanh(x) - t) / t);
    }
    ck_assert_msg(worst_t < 2.5e-7, "tanh relative error %g", worst_t);
    /* saturation, not overflow or NaN */
    ck_assert(lstm__vsigmoid(-1000.0f) >= 0.0f && lstm__vsigmoid(1000.0f) == 1.0f);
    ck_assert(lstm__vtanh(1000.0f) == 1.0f && lstm__vtanh(-1000.0f) == -1.0f);
    ck_assert(lstm__vtanh(0.0f) == 0.0f && !signbit(lstm__vtanh(0.0f)));
    ck_assert(lstm__vtanh(-0.0f) == 0.0f && signbit(lstm__vtanh(-0.0f)));
    /* a NaN goes through as NaN, with no undefined conversion on the way
     * (UBSan flagged the exponent shift of exp(NaN) in a diverging run) */
    volatile float nan = NAN;
    ck_assert(isnan(lstm__vexp(nan)) && isnan(lstm__vsigmoid(nan)) &&
              isnan(lstm__vtanh(nan)));
    ck_assert(lstm__vexp(INFINITY) == lstm__vexp(88.0f));
}
END_TEST

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

START_TEST(bf16_rounding)
{
    /* {input, torch.tensor([x]).bfloat16().float()} as bit patterns, from
     * PyTorch 1.13: exact, ties to even both ways, just above and below a
     * tie, negative, overflow to infinity, infinities, subnormal ties,
     * signed zero, pi, -123.456 */
    static const uint32_t cases[][2] = {
        {0x3f800000, 0x3f800000}, {0x3f808000, 0x3f800000},
        {0x3f818000, 0x3f820000}, {0x3f808001, 0x3f810000},
        {0x3f807fff, 0x3f800000}, {0xbf808001, 0xbf810000},
        {0x7f7fffff, 0x7f800000}, {0x7f800000, 0x7f800000},
        {0xff800000, 0xff800000}, {0x00008000, 0x00000000},
        {0x00018000, 0x00020000}, {0x80000000, 0x80000000},
        {0x4049fdb0, 0x404a0000}, {0xc2f6e979, 0xc2f70000}};
    const size_t n = sizeof cases / sizeof *cases;
    float in[16], out[16];
    for (size_t i = 0; i < n; i++) {
        in[i] = from_bits(cases[i][0]);
        ck_assert_msg(bits(lstm__vbf16(in[i])) == cases[i][1],
                      "bf16(0x%08x) = 0x%08x, want 0x%08x",
                      (unsigned)cases[i][0], (unsigned)bits(lstm__vbf16(in[i])),
                      (unsigned)cases[i][1]);
    }
    /* the array version (vectorised) agrees, in place too */
    lstm__round_bf16(out, in, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(bits(out[i]), cases[i][1]);
    lstm__round_bf16(in, in, n);
    ck_assert(memcmp(in, out, n * 4) == 0);
    /* a NaN stays a NaN, and a bfloat16 one (low half zero) */
    float nan = lstm__vbf16(from_bits(0x7f800001));
    ck_assert(isnan(nan) && (bits(nan) & 0xffffu) == 0);
    lstm__round_bf16(out, (float[]){NAN}, 1);
    ck_assert(isnan(out[0]));
    /* over random bit patterns: the scalar and array versions agree, the
     * result is a bfloat16, and within half a bf16 step of the input */
    lstm_rng r;
    lstm_rng_seed(&r, 5);
    float *x = malloc(4099 * 4), *y = malloc(4099 * 4);
    for (size_t i = 0; i < 4099; i++)
        x[i] = from_bits((uint32_t)lstm_rng_next(&r) & 0xbfffffffu);
    lstm__round_bf16(y, x, 4099);
    for (size_t i = 0; i < 4099; i++) {
        ck_assert_uint_eq(bits(y[i]), bits(lstm__vbf16(x[i])));
        ck_assert_uint_eq(bits(y[i]) & 0xffffu, 0);
        /* half a step: 2^-8 relative, 2^-134 among subnormals */
        ck_assert(fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-8f + 0x1p-134f);
    }
    free(x);
    free(y);
}
END_TEST

START_TEST(gemm_ref_vs_blas)
{
    const int ta = _i & 1, tb = (_i >> 1) & 1;
    for (size_t a = 0; a < NODD; a++)
        for (size_t b = 0; b < NODD; b++)
            for (size_t c = 0; c < NODD; c++) {
                size_t M = odd[a], N = odd[b], K = odd[c];
                float *A = malloc(M * K * 4), *B = malloc(K * N * 4);
                float *C1 = malloc(M * N * 4), *C2 = malloc(M * N * 4);
                fill_randn(A, M * K, M * 100 + K);
                fill_randn(B, K * N, N * 100 + K);
                fill_randn(C1, M * N, 5);
                memcpy(C2, C1, M * N * 4);
                size_t lda = ta ? M : K, ldb = tb ? K : N;
                lstm__gemm_ref(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.75f,
                               C1, N);
                lstm__gemm_blas(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.75f,
                                C2, N);
                assert_close(C2, C1, M * N, 1e-4, 1e-4, "gemm");
                free(A);
                free(B);
                free(C1);
                free(C2);
            }
}
END_TEST

/* Random inputs for one layer's recurrence over nb sequences. */
typedef struct {
    size_t nb, T, H;
    size_t *len;
    float *gates, *bias, *hs, *cs, *y, *w, *wpk_f, *wpk_b, *scratch;
    float *dA, *dh, *dc, *dy, *db;
} rec_case;

static void rec_init(rec_case *c, size_t nb, size_t T, size_t H, uint64_t seed)
{
    const size_t G = 4 * H;
    c->nb = nb;
    c->T = T;
    c->H = H;
    c->len = malloc(nb * sizeof *c->len);
    lstm_rng r;
    lstm_rng_seed(&r, seed);
    for (size_t b = 0; b < nb; b++)  /* full, empty and partial sequences */
        c->len[b] = b == 0 ? T : lstm_rng_below(&r, T + 1);
    c->gates = malloc(nb * T * G * 4);
    c->bias = malloc(G * 4);
    c->hs = calloc(nb * (T + 1) * H, 4);
    c->cs = calloc(nb * (T + 1) * H, 4);
    c->y = malloc(nb * T * H * 4);
    c->w = malloc(G * H * 4);
    c->wpk_f = malloc(lstm__pack_fwd_size(H, H) * 4);
    c->wpk_b = malloc(lstm__pack_bwd_size(H, H) * 4);
    c->scratch = malloc(nb * G * 4);
    c->dA = malloc(nb * T * G * 4);
    c->db = malloc(nb * G * 4);
    c->dh = malloc(nb * H * 4);
    c->dc = malloc(nb * H * 4);
    c->dy = malloc(nb * T * H * 4);
    fill_randn(c->gates, nb * T * G, seed + 1);
    fill_randn(c->bias, G, seed + 7);
    lstm_fill_uniform(c->w, G * H, -0.3f, 0.3f, &r);
    lstm__pack_fwd(c->wpk_f, c->w, H, 0, H);
    lstm__pack_bwd(c->wpk_b, c->w, H, 0, H);
    for (size_t b = 0; b < nb; b++) {
        fill_randn(c->hs + b * (T + 1) * H, H, seed + 2 + b);
        fill_randn(c->cs + b * (T + 1) * H, H, seed + 900 + b);
    }
    fill_randn(c->dh, nb * H, seed + 3);
    fill_randn(c->dc, nb * H, seed + 4);
    fill_randn(c->dy, nb * T * H, seed + 5);
}

static void rec_copy(rec_case *d, const rec_case *s)
{
    const size_t nb = s->nb, T = s->T, H = s->H, G = 4 * H;
    rec_init(d, nb, T, H, 0);
    memcpy(d->len, s->len, nb * sizeof *d->len);
    memcpy(d->gates, s->gates, nb * T * G * 4);
    memcpy(d->bias, s->bias, G * 4);
    memcpy(d->hs, s->hs, nb * (T + 1) * H * 4);
    memcpy(d->cs, s->cs, nb * (T + 1) * H * 4);
    memcpy(d->w, s->w, G * H * 4);
    memcpy(d->wpk_f, s->wpk_f, lstm__pack_fwd_size(H, H) * 4);
    memcpy(d->wpk_b, s->wpk_b, lstm__pack_bwd_size(H, H) * 4);
    memcpy(d->dh, s->dh, nb * H * 4);
    memcpy(d->dc, s->dc, nb * H * 4);
    memcpy(d->dy, s->dy, nb * T * H * 4);
}

static void rec_free(rec_case *c)
{
    free(c->len); free(c->gates); free(c->bias); free(c->hs); free(c->cs); free(c->y);
    free(c->w); free(c->wpk_f); free(c->wpk_b); free(c->scratch); free(c->dA); free(c->dh);
    free(c->dc); free(c->dy); free(c->db);
}

/* Whether every value is a bfloat16 (its low 16 bits zero). */
static int all_bf16(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bits(x[i]) & 0xffffu)
            return 0;
    return 1;
}

/* bf16: both run in bf16-mixed mode (the tuned kernel on W_hh packed by
 * its set's pack_fwd/pack_bwd from rounded weights, as lstm.c gives it). A sum that differs in its last
 * float bit can round to the neighbouring bfloat16 (2^-8 apart), and the
 * step after carries that on: the tolerances widen to a few bf16 steps.
 * One step (T = 1) has no rounded h to flip yet: there both must use the
 * same rounded W_hh to agree to float precision (a W_hh used unrounded
 * is 1e-3 off). */
static void rec_compare(const lstm__kernels *k, size_t nb, size_t T, size_t H,
                        uint64_t seed, int bf16)
{
    const size_t G = 4 * H;
    const double tol = bf16 && T > 1 ? 2e-2 : 1e-5;  /* gates, c, y */
    const double tol_r = bf16 ? 2e-2 : 1e-5;          /* rounded values */
    rec_case r, s;
    rec_init(&r, nb, T, H, seed);
    rec_copy(&s, &r);
    if (bf16) {  /* as lstm.c prepares them: h0 and the packed W_hh */
        for (size_t b = 0; b < nb; b++) {
            lstm__round_bf16(s.hs + b * (T + 1) * H, s.hs + b * (T + 1) * H,
                             H);
            memcpy(r.hs + b * (T + 1) * H, s.hs + b * (T + 1) * H, H * 4);
        }
        k->pack_fwd(s.wpk_f, s.w, H, 0, H, 1);
        k->pack_bwd(s.wpk_b, s.w, H, 0, H, 1);
    }
    lstm__lstm_fwd_ref(nb, T, H, 0, H, r.len, r.gates, r.bias, r.hs, r.cs,
                       r.y, r.w, NULL, bf16, NULL);
    k->lstm_fwd(nb, T, H, 0, H, s.len, s.gates, s.bias, s.hs, s.cs, s.y, s.w,
                s.wpk_f, bf16, NULL);
    assert_close(s.gates, r.gates, nb * T * G, tol, tol, "fwd gates");
    assert_close(s.hs, r.hs, nb * (T + 1) * H, tol_r, tol_r, "fwd h");
    assert_close(s.cs, r.cs, nb * (T + 1) * H, tol, tol, "fwd c");
    assert_close(s.y, r.y, nb * T * H, tol, tol, "fwd y");
    if (bf16) {  /* the stored h is rounded */
        ck_assert(all_bf16(s.hs, nb * (T + 1) * H));
        ck_assert(all_bf16(r.hs, nb * (T + 1) * H));
    }
    for (int with_dy = 0; with_dy < 2; with_dy++) {
        float *dh = malloc(nb * H * 4), *dc = malloc(nb * H * 4);
        memcpy(dh, r.dh, nb * H * 4);
        memcpy(dc, r.dc, nb * H * 4);
        lstm__lstm_bwd_ref(nb, T, H, 0, H, r.len, r.dA, r.dh, r.dc,
                           with_dy ? r.dy : NULL, r.gates, r.cs, r.w, NULL,
                           r.db, r.scratch, bf16, NULL);
        k->lstm_bwd(nb, T, H, 0, H, s.len, s.dA, dh, dc,
                    with_dy ? s.dy : NULL, s.gates, s.cs, s.w, s.wpk_b, s.db,
                    s.scratch, bf16, NULL);
        const double rt = bf16 ? 2e-2 : 1e-4;
        assert_close(s.dA, r.dA, nb * T * G, tol_r, rt, "bwd dA");
        assert_close(dh, r.dh, nb * H, tol_r, rt, "bwd dh0");
        assert_close(dc, r.dc, nb * H, tol, bf16 && T > 1 ? rt : 1e-4,
                     "bwd dc0");
        assert_close(s.db, r.db, nb * G, tol_r, rt, "bwd db");
        for (size_t b = 0; b < nb; b++)  /* db is each sequence's sum of dA */
            for (size_t j = 0; j < G; j++) {
                double sum = 0;
                for (size_t t = 0; t < T; t++)
                    sum += (double)r.dA[(b * T + t) * G + j];
                ck_assert(fabs(sum - (double)r.db[b * G + j]) <=
                          1e-5 * (1.0 + fabs(sum)) * (double)T);
            }
        /* one step: dh0 = dA W_hh; a dA rounding that flips moves it by
         * ~2^-8/sqrt(G) in one element, an unrounded W_hh ~1e-3 in all */
        if (bf16 && T == 1 && H >= 17)
            ck_assert_msg(rel_dist(dh, r.dh, nb * H) < 2e-4,
                          "bwd dh0 of one step: %g", rel_dist(dh, r.dh, nb * H));
        if (bf16) {
            ck_assert(all_bf16(s.dA, nb * T * G));
            ck_assert(all_bf16(r.dA, nb * T * G));
        }
        memcpy(r.dh, dh, nb * H * 4);  /* feed the same inputs again */
        memcpy(r.dc, dc, nb * H * 4);
        memcpy(s.dh, dh, nb * H * 4);
        memcpy(s.dc, dc, nb * H * 4);
        free(dh);
        free(dc);
    }
    rec_free(&r);
    rec_free(&s);
}

/* _i = (set * 4 + index of T) * 2 + bf16 */
START_TEST(lstm_rec_ref_vs_tuned)
{
    const int bf16 = _i % 2, i = _i / 2;
    const lstm__kernels *k = tuned(i / 4);
    if (!k)
        return;  /* this CPU lacks the instructions */
    for (size_t a = 0; a < NODD; a++)
        for (size_t c = 0; c < NODD; c++)
            rec_compare(k, odd[a], odd[i % 4], odd[c], a * 31 + c, bf16);
}
END_TEST

START_TEST(lstm_rec_ref_vs_tuned_large)
{
    const lstm__kernels *k = tuned(_i / 2);
    if (!k)
        return;
    if (quick())
        rec_compare(k, 4, 32, 128, 77, _i % 2);
    else
        rec_compare(k, 8, 128, 128, 77, _i % 2);
    /* wider than the avx512bf16 set's pairs take (4H > 2048): its float
     * panels serve instead */
    rec_compare(k, 3, 4, 520, 78, _i % 2);
}
END_TEST

/* The GRU's recurrence, tuned set k against the reference, forward and
 * backward (with and without dy), nb sequences of random lengths. */
static void gru_compare(const lstm__kernels *k, size_t nb, size_t T, size_t H,
                        uint64_t seed)
{
    const size_t G = 3 * H;
    size_t *len = malloc(nb * sizeof *len);
    lstm_rng r;
    lstm_rng_seed(&r, seed);
    for (size_t b = 0; b < nb; b++)  /* full, empty and partial sequences */
        len[b] = b == 0 ? T : lstm_rng_below(&r, T + 1);
    float *w = malloc(G * H * 4), *bi = malloc(G * 4), *bh = malloc(G * 4);
    float *pf = malloc(lstm__pack_gru_fwd_size(H) * 4);
    float *pb = malloc(lstm__pack_gru_bwd_size(H) * 4);
    lstm_fill_uniform(w, G * H, -0.4f, 0.4f, &r);
    fill_randn(bi, G, seed + 1);
    fill_randn(bh, G, seed + 2);
    lstm__pack_gru_fwd(pf, w, H);
    lstm__pack_gru_bwd(pb, w, H);
    float *dy = malloc(nb * T * H * 4), *dh0 = malloc(nb * H * 4);
    fill_randn(dy, nb * T * H, seed + 3);
    fill_randn(dh0, nb * H, seed + 4);
    float *g[2], *hs[2], *sn[2], *y[2], *dA[2], *dAh[2], *dh[2], *sc[2];
    float *db[2];
    for (int v = 0; v < 2; v++) {  /* 0: reference, 1: tuned */
        g[v] = malloc(nb * T * G * 4);
        hs[v] = calloc(nb * (T + 1) * H, 4);
        sn[v] = malloc(nb * T * H * 4);
        y[v] = malloc(nb * T * H * 4);
        dA[v] = malloc(nb * T * G * 4);
        dAh[v] = malloc(nb * T * G * 4);
        dh[v] = malloc(nb * H * 4);
        sc[v] = malloc(nb * G * 4);
        db[v] = malloc(nb * 2 * G * 4);
        fill_randn(db[v], nb * 2 * G, seed + 7);  /* the kernels zero it */
        fill_randn(g[v], nb * T * G, seed + 5);
        for (size_t b = 0; b < nb; b++)
            fill_randn(hs[v] + b * (T + 1) * H, H, seed + 6 + b);
    }
    lstm__gru_fwd_ref(nb, T, H, len, g[0], bi, bh, hs[0], sn[0], y[0], w,
                      NULL, sc[0]);
    k->gru_fwd(nb, T, H, len, g[1], bi, bh, hs[1], sn[1], y[1], w, pf, sc[1]);
    assert_close(g[1], g[0], nb * T * G, 1e-5, 1e-5, "gru fwd gates");
    assert_close(hs[1], hs[0], nb * (T + 1) * H, 1e-5, 1e-5, "gru fwd h");
    assert_close(sn[1], sn[0], nb * T * H, 1e-5, 1e-5, "gru fwd s_n");
    assert_close(y[1], y[0], nb * T * H, 1e-5, 1e-5, "gru fwd y");
    for (int with_dy = 0; with_dy < 2; with_dy++) {
        memcpy(dh[0], dh0, nb * H * 4);
        memcpy(dh[1], dh0, nb * H * 4);
        lstm__gru_bwd_ref(nb, T, H, len, dA[0], dAh[0], dh[0],
                          with_dy ? dy : NULL, g[0], hs[0], sn[0], w, NULL,
                          db[0], sc[0]);
        k->gru_bwd(nb, T, H, len, dA[1], dAh[1], dh[1], with_dy ? dy : NULL,
                   g[1], hs[1], sn[1], w, pb, db[1], sc[1]);
        assert_close(dA[1], dA[0], nb * T * G, 1e-5, 1e-4, "gru bwd dA");
        assert_close(dAh[1], dAh[0], nb * T * G, 1e-5, 1e-4, "gru bwd dAh");
        assert_close(dh[1], dh[0], nb * H, 1e-5, 1e-4, "gru bwd dh0");
        /* each one's bias sums: the sums over t of its own dA and dAh
         * rows, to float rounding (dA itself is held to the reference) */
        for (int v = 0; v < 2; v++)
            for (size_t b = 0; b < nb; b++)
                for (size_t j = 0; j < 2 * G; j++) {
                    const float *src = j < G ? dA[v] : dAh[v];
                    double sum = 0.0, mag = 0.0;
                    for (size_t t = 0; t < T; t++) {
                        sum += (double)src[(b * T + t) * G + j % G];
                        mag += fabs((double)src[(b * T + t) * G + j % G]);
                    }
                    ck_assert_msg(fabs((double)db[v][b * 2 * G + j] - sum) <=
                                      1e-5 * mag + 1e-30,
                                  "gru bwd db (%s): row %zu column %zu is "
                                  "%g, its steps sum to %g",
                                  v ? k->name : "ref", b, j,
                                  (double)db[v][b * 2 * G + j], sum);
                }
        for (size_t b = 0; b < nb; b++)  /* nothing past a sequence's end */
            for (size_t t = len[b]; t < T; t++)
                for (size_t j = 0; j < G; j++)
                    ck_assert(dA[1][(b * T + t) * G + j] == 0.0f &&
                              dAh[1][(b * T + t) * G + j] == 0.0f);
    }
    for (int v = 0; v < 2; v++) {
        free(g[v]); free(hs[v]); free(sn[v]); free(y[v]); free(dA[v]);
        free(dAh[v]); free(dh[v]); free(sc[v]); free(db[v]);
    }
    free(len); free(w); free(bi); free(bh); free(pf); free(pb); free(dy);
    free(dh0);
}

/* _i = set * 4 + index of T; then one large case per set */
START_TEST(gru_rec_ref_vs_tuned)
{
    const lstm__kernels *k = tuned(_i / 4);
    if (!k)
        return;
    for (size_t a = 0; a < NODD; a++)
        for (size_t c = 0; c < NODD; c++)
            gru_compare(k, odd[a], odd[_i % 4], odd[c], a * 31 + c);
    if (_i % 4 == 0)
        gru_compare(k, 8, quick() ? 32 : 128, 128, 77);
}
END_TEST

static void team_barrier(void)
{
#pragma omp barrier
}

/* fn against the reference on one shape, with leading dimensions wider
 * than the matrices; bf16: operands rounded to bfloat16 first. Sums of K
 * products of N(0,1) numbers: an error of about sqrt(K) ulps. */
static void gemm_case(lstm__gemm_fn *fn, const char *name, int ta, int tb,
                      size_t M, size_t N, size_t K, float alpha, float beta,
                      int bf16)
{
    const size_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    const size_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb;
    float *A = malloc(na * 4), *B = malloc(nb * 4);
    float *C1 = malloc(M * ldc * 4), *C2 = malloc(M * ldc * 4);
    fill_randn(A, na, M * 100 + K);
    fill_randn(B, nb, N * 100 + K);
    if (bf16) {
        lstm__round_bf16(A, A, na);
        lstm__round_bf16(B, B, nb);
    }
    fill_randn(C1, M * ldc, 5);
    memcpy(C2, C1, M * ldc * 4);
    lstm__gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    assert_close(C2, C1, M * ldc, 1e-5 * sqrt((double)K), 1e-5, name);
    free(A);
    free(B);
    free(C1);
    free(C2);
}

/* Each set's GEMM against the reference: A and B transposed or not, alpha
 * and beta as the library uses them and not, K across the tuned kernel's
 * blocks, N below 16 and with and without a multiple of 16. _i = set. */
START_TEST(gemm_sets_vs_ref)
{
    const lstm__kernels *k = tuned(_i);
    if (!k)
        return;
    static const size_t Ms[] = {1, 5, 13, 29, 61};
    static const size_t Ns[] = {5, 16, 17, 48, 100};
    static const size_t Ks[] = {1, 7, 300, 600};
    static const float ab[][2] = {{1, 0}, {1, 1}, {0.5f, 0.75f}};
    for (int t = 0; t < 4; t++)
        for (size_t a = 0; a < 5; a++)
            for (size_t b = 0; b < 5; b++)
                for (size_t c = 0; c < 4; c++)
                    for (size_t s = 0; s < 3; s++)
                        gemm_case(k->gemm, k->name, t & 1, t >> 1, Ms[a],
                                  Ns[b], Ks[c], ab[s][0], ab[s][1], 0);
}
END_TEST

/* The library's own GEMM (the sets that do not call BLAS) over many rows
 * at once (B packed into panels) gives the bits of the same GEMM over a
 * few rows at a time (B read where it lies), A transposed or not: the
 * library's threads split the rows. _i = set. */
START_TEST(gemm_rows_same_bits)
{
    const lstm__kernels *k = tuned(_i);
    if (!k || k->gemm == lstm__gemm_blas)
        return;
    enum { M = 60, K = 600, N = 100, lda = M + 3, ldb = N + 5, ldc = N + 2 };
    float *A = malloc(K * lda * 4), *B = malloc(K * ldb * 4);
    float *C1 = malloc(M * ldc * 4), *C2 = malloc(M * ldc * 4);
    fill_randn(A, K * lda, 1);
    fill_randn(B, K * ldb, 2);
    for (int ta = 0; ta < 2; ta++) {
        fill_randn(C1, M * ldc, 3);
        memcpy(C2, C1, M * ldc * 4);
        k->gemm(ta, 0, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C1, ldc);
        for (size_t m = 0; m < M; m += 6)
            k->gemm(ta, 0, 6, N, K, 1.0f, ta ? A + m : A + m * lda, lda, B,
                    ldb, 1.0f, C2 + m * ldc, ldc);
        ck_assert_msg(!memcmp(C1, C2, M * ldc * 4),
                      "%s gemm: other bits by rows (ta=%d)", k->name, ta);
    }
    free(A);
    free(B);
    free(C1);
    free(C2);
}
END_TEST

/* A set's GEMM on runs of rows (gemm_runs) gives the bits of its GEMM
 * called once per run: 3 runs of 37, 20 and 38 rows (a packing of B for
 * all of them), N a multiple of 16 or not, K across the GEMM's K blocks.
 * _i = set. */
START_TEST(gemm_runs_same_bits)
{
    const lstm__kernels *k = tuned(_i);
    if (!k || !k->gemm_runs)
        return;
    enum { M = 150, lda = 610, ldb = 50, ldc = 52 };
    const size_t run[6] = {0, 37, 74, 20, 111, 38};
    float *A = malloc(M * lda * 4), *B = malloc(600 * ldb * 4);
    float *C1 = malloc(M * ldc * 4), *C2 = malloc(M * ldc * 4);
    fill_randn(A, M * lda, 1);
    fill_randn(B, 600 * ldb, 2);
    static const size_t Ns[] = {48, 40}, Ks[] = {50, 600};
    for (size_t n = 0; n < 2; n++)
        for (size_t c = 0; c < 2; c++) {
            const size_t N = Ns[n], K = Ks[c];
            memset(C1, 0, M * ldc * 4);
            memset(C2, 0, M * ldc * 4);
            k->gemm_runs(3, run, N, K, A, lda, B, ldb, C1, ldc);
            for (size_t r = 0; r < 3; r++)
                k->gemm(0, 0, run[2 * r + 1], N, K, 1.0f, A + run[2 * r] * lda,
                        lda, B, ldb, 0.0f, C2 + run[2 * r] * ldc, ldc);
            ck_assert_msg(!memcmp(C1, C2, M * ldc * 4),
                          "%s gemm_runs: other bits than its GEMM (N=%zu "
                          "K=%zu)", k->name, N, K);
        }
    free(A);
    free(B);
    free(C1);
    free(C2);
}
END_TEST

/* lstm__gemm_live with set _i in use, fp32 and bf16-mixed: the rows of
 * 5 sequences of T steps up to their lengths (full, none, part, full, one
 * step), A zero past them as gate gradients are, against the reference
 * GEMM; where the GEMM is the library's own (whose results do not depend
 * on the rows it is given, unlike a BLAS kernel's last bits), the padding
 * zeroed (zero_pad) or left as it was and the same bits on one thread as
 * on two; with BLAS, every row computed (zero past the lengths). */
START_TEST(gemm_live_rows)
{
    const lstm__kernels *k = tuned(_i);
    if (!k)
        return;
    enum { S = 5, T = 37, N = 48, K = 50, lda = K + 3, ldb = N + 1,
           ldc = N + 2 };
    const size_t len[S] = {T, 0, 20, T, 1};
    float *A = malloc(S * T * lda * 4), *B = malloc(K * ldb * 4);
    float *C[2], *R = malloc(S * T * ldc * 4);
    fill_randn(A, S * T * lda, 1);
    fill_randn(B, K * ldb, 2);
    for (size_t s = 0; s < S; s++)
        memset(A + (s * T + len[s]) * lda, 0, (T - len[s]) * lda * 4);
    lstm__round_bf16(A, A, S * T * lda);  /* operands for both precisions */
    lstm__round_bf16(B, B, K * ldb);
    lstm__gemm_ref(0, 0, S * T, N, K, 1.0f, A, lda, B, ldb, 0.0f, R, ldc);
    ck_assert_int_eq(lstm_kernels_select(set_names[_i]), 0);
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int zero = 0; zero < 2; zero++) {
            for (int nt = 1; nt <= 2; nt++) {
                C[nt - 1] = malloc(S * T * ldc * 4);
                for (size_t i = 0; i < S * T * ldc; i++)
                    C[nt - 1][i] = 7.0f;
                lstm_set_threads(nt);
                lstm__gemm_live(bf16, S, T, len, N, K, A, lda, B, ldb,
                                C[nt - 1], ldc, zero);
            }
            lstm_set_threads(0);
            const int blas = (bf16 ? k->gemm_bf16 : k->gemm) == lstm__gemm_blas;
            if (!blas)
                ck_assert(!memcmp(C[0], C[1], S * T * ldc * 4));
            for (size_t s = 0; s < S; s++)
                for (size_t t = 0; t < T; t++) {
                    const float *c = C[0] + (s * T + t) * ldc;
                    if (t < len[s])
                        assert_close(c, R + (s * T + t) * ldc, N, 1e-5,
                                     1e-5, set_names[_i]);
                    else
                        for (size_t j = 0; j < N; j++)
                            ck_assert(c[j] == (zero || blas ? 0.0f : 7.0f));
                }
            free(C[0]);
            free(C[1]);
        }
    ck_assert_int_eq(lstm_kernels_select(NULL), 0);
    free(A);
    free(B);
    free(R);
}
END_TEST

/* One case of a set's fused weight gradients (kernels.h's
 * lstm__wgrad_fn): M rows, nseq = 3 sequences of T steps, N1 (n & 1: 37
 * columns, else 16, plus 32) and N2 (n >> 1: likewise, without the 32),
 * A1 equal to A2 (n == 1: an LSTM) or not (a GRU), leading dimensions
 * wider than the matrices, C1 and C2 not zero to start, the sequences'
 * lengths T - T/3 - 1, 0 and T with the gate gradients zero past them
 * and NaN or infinite X and H there, which must not reach C. fp32
 * (wgrad): the bits of the set's GEMM called once per sequence for C1 and
 * for C2, over every row, X and H zero in the padding.
 * bf16 (wgrad_bf16), on bfloat16 operands: the reference GEMM's values to
 * float rounding (the same products, the sums grouped otherwise). */
static void wgrad_case(const lstm__kernels *k, int bf16, size_t M, size_t T,
                       size_t n)
{
    const size_t nseq = 3, K = nseq * T, same = n == 1;
    const size_t N1 = (n & 1 ? 37 : 16) + 32, N2 = n >> 1 ? 37 : 16;
    const size_t lda = M + 3, ldx = N1 + 1, ldh = N2 + 2;
    const size_t hstride = (T + 1) * ldh;
    float *A1 = malloc(K * lda * sizeof *A1);
    float *A2 = malloc(K * lda * sizeof *A2);
    float *X = malloc(K * ldx * sizeof *X);
    float *H = malloc(nseq * hstride * sizeof *H);
    float *C[4];
    fill_randn(A1, K * lda, 1);
    fill_randn(A2, K * lda, 2);
    fill_randn(X, K * ldx, 3);
    fill_randn(H, nseq * hstride, 4);
    const size_t len[3] = {T - T / 3 - 1, 0, T};
    /* the reference's X and H: zero in the padding, the kernel's NaN */
    float *X0 = malloc(K * ldx * sizeof *X0);
    float *H0 = malloc(nseq * hstride * sizeof *H0);
    for (size_t q = 0; q < nseq; q++)
        for (size_t t = len[q]; t < T; t++) {
            for (size_t i = 0; i < M; i++)
                A1[(q * T + t) * lda + i] = A2[(q * T + t) * lda + i] = 0.0f;
            for (size_t j = 0; j < ldx; j++)
                X[(q * T + t) * ldx + j] = 0.0f;
            for (size_t j = 0; j < ldh; j++)
                H[q * hstride + t * ldh + j] = 0.0f;
        }
    if (bf16) {
        lstm__round_bf16(A1, A1, K * lda);
        lstm__round_bf16(A2, A2, K * lda);
        lstm__round_bf16(X, X, K * ldx);
        lstm__round_bf16(H, H, nseq * hstride);
    }
    memcpy(X0, X, K * ldx * sizeof *X0);
    memcpy(H0, H, nseq * hstride * sizeof *H0);
    for (size_t q = 0; q < nseq; q++)
        for (size_t t = len[q]; t < T; t++) {
            for (size_t j = 0; j < N1; j++)
                X[(q * T + t) * ldx + j] = j % 2 ? NAN : INFINITY;
            for (size_t j = 0; j < N2; j++)
                H[q * hstride + t * ldh + j] = NAN;
        }
    for (int c = 0; c < 4; c++) {
        const size_t nc = M * (c % 2 ? N2 : N1);
        C[c] = malloc(nc * sizeof *C[c]);
        fill_randn(C[c], nc, 5 + c % 2);
    }
    const float *a2 = same ? A1 : A2;
    (bf16 ? k->wgrad_bf16 : k->wgrad)(M, nseq, T, len, A1, a2, lda, X, ldx,
                                      N1, C[0], N1, H, ldh, hstride, N2,
                                      C[1], N2);
    lstm__gemm_fn *gemm = bf16 ? lstm__gemm_ref : k->gemm;
    for (size_t q = 0; q < nseq; q++) {
        gemm(1, 0, M, N1, T, 1.0f, A1 + q * T * lda, lda, X0 + q * T * ldx,
             ldx, 1.0f, C[2], N1);
        gemm(1, 0, M, N2, T, 1.0f, a2 + q * T * lda, lda, H0 + q * hstride,
             ldh, 1.0f, C[3], N2);
    }
    if (bf16) {
        assert_close(C[0], C[2], M * N1, 1e-5 * sqrt((double)K), 1e-5,
                     k->name);
        assert_close(C[1], C[3], M * N2, 1e-5 * sqrt((double)K), 1e-5,
                     k->name);
    } else
        ck_assert_msg(!memcmp(C[0], C[2], M * N1 * sizeof(float)) &&
                          !memcmp(C[1], C[3], M * N2 * sizeof(float)),
                      "%s wgrad: other bits than its GEMM (M=%zu T=%zu "
                      "N1=%zu N2=%zu)", k->name, M, T, N1, N2);
    for (int c = 0; c < 4; c++)
        free(C[c]);
    free(A1);
    free(A2);
    free(X);
    free(H);
    free(X0);
    free(H0);
}

/* wgrad_case for each of the set's kernels: fp32 (wgrad) over rows across
 * its 12-row blocks and its packing (48 rows or more), T across its
 * 128-row blocks of K; bf16 (wgrad_bf16) over rows across the chunks of a
 * transposed A (256), K blocks across sequences (T = 300). _i = set. */
START_TEST(wgrad_sets)
{
    const lstm__kernels *k = tuned(_i);
    if (!k)
        return;
    static const size_t Ms[2][3] = {{5, 29, 53}, {5, 300, 0}};
    static const size_t Ts[] = {3, 300};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        if (!(bf16 ? k->wgrad_bf16 : k->wgrad))
            continue;
        for (size_t a = 0; a < 3 && Ms[bf16][a]; a++)
            for (size_t t = 0; t < 2; t++)
                for (size_t n = 0; n < 4; n++)
                    wgrad_case(k, bf16, Ms[bf16][a], Ts[t], n);
    }
}
END_TEST

/* Each set's bf16-mixed GEMM on bfloat16 operands against the reference:
 * the products are exact either way, only the order of the float sums may
 * differ (pairs of K on bfloat16 units, or tiles). Shapes cross the
 * kernels' blocks (avx512bf16: 96 rows, 512 of K; amx: 32 rows, 256 rows
 * of a transposed A, 256-1024 of K), odd K, and N with and without a
 * multiple of 32. */
START_TEST(gemm_bf16_sets_vs_ref)
{
    const lstm__kernels *k = tuned(_i);
    if (!k)
        return;
    static const size_t Ms[] = {1, 13, 100, 300}, Ns[] = {32, 48, 100};
    static const size_t Ks[] = {1, 7, 300, 1030};
    for (int ta = 0; ta < 2; ta++)
        for (size_t a = 0; a < 4; a++)
            for (size_t b = 0; b < 3; b++)
                for (size_t c = 0; c < 4; c++)
                    for (int beta = 0; beta < 2; beta++)
                        gemm_case(k->gemm_bf16, k->name, ta, 0, Ms[a], Ns[b],
                                  Ks[c], 1.0f, (float)beta, 1);
}
END_TEST

/* The tuned kernels with a team of nt threads sharing the hidden units
 * (16-unit panels, each thread its own pack) give the same bits as one
 * call over all units: forward and backward, with and without dy, fp32
 * and bf16. _i = set. */
START_TEST(lstm_rec_units_same_bits)
{
    const lstm__kernels *k = tuned(_i);
    if (!k)
        return;
    static const size_t shapes[][3] = {  /* nb, T, H */
        {1, 9, 32}, {2, 5, 48}, {3, 17, 64}, {1, 4, 16}};
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++)
        for (int bf16 = 0; bf16 < 2; bf16++)
            for (int nt = 1; nt <= 3; nt++) {
                const size_t nb = shapes[sh][0], T = shapes[sh][1];
                const size_t H = shapes[sh][2], G = 4 * H;
                rec_case r, s;
                rec_init(&r, nb, T, H, 40 + sh);
                rec_copy(&s, &r);
                k->pack_fwd(r.wpk_f, r.w, H, 0, H, bf16);
                k->pack_bwd(r.wpk_b, r.w, H, 0, H, bf16);
                k->lstm_fwd(nb, T, H, 0, H, r.len, r.gates, r.bias, r.hs,
                            r.cs, r.y, r.w, r.wpk_f, bf16, NULL);
                k->lstm_bwd(nb, T, H, 0, H, r.len, r.dA, r.dh, r.dc, r.dy,
                            r.gates, r.cs, r.w, r.wpk_b, r.db, r.scratch,
                            bf16, NULL);
#pragma omp parallel num_threads(nt)
                {
                    size_t p0, p1;
                    lstm__share(H / 16, &p0, &p1);
                    const size_t k0 = 16 * p0, k1 = 16 * p1;
                    float *pf = s.wpk_f + lstm__pack_fwd_size(H, k0);
                    float *pb = s.wpk_b + lstm__pack_bwd_size(H, k0);
                    k->pack_fwd(pf, s.w, H, k0, k1, bf16);
                    k->pack_bwd(pb, s.w, H, k0, k1, bf16);
                    k->lstm_fwd(nb, T, H, k0, k1, s.len, s.gates, s.bias, s.hs,
                                s.cs, s.y, s.w, pf, bf16, team_barrier);
#pragma omp barrier
                    k->lstm_bwd(nb, T, H, k0, k1, s.len, s.dA, s.dh, s.dc,
                                s.dy, s.gates, s.cs, s.w, pb, s.db, s.scratch,
                                bf16, team_barrier);
                }
                ck_assert(memcmp(s.gates, r.gates, nb * T * G * 4) == 0);
                ck_assert(memcmp(s.hs, r.hs, nb * (T + 1) * H * 4) == 0);
                ck_assert(memcmp(s.cs, r.cs, nb * (T + 1) * H * 4) == 0);
                ck_assert(memcmp(s.y, r.y, nb * T * H * 4) == 0);
                ck_assert(memcmp(s.dA, r.dA, nb * T * G * 4) == 0);
                ck_assert(memcmp(s.dh, r.dh, nb * H * 4) == 0);
                ck_assert(memcmp(s.dc, r.dc, nb * H * 4) == 0);
                ck_assert(memcmp(s.db, r.db, nb * G * 4) == 0);
                rec_free(&r);
                rec_free(&s);
            }
}
END_TEST

/* With every CPU kept busy by other processes, the library runs one thread
 * whatever it was asked for: a second would wait for a CPU, and the whole
 * region with it. */
START_TEST(threads_yield_to_busy_cpus)
{
    int kids[64];
    const long n = busy_start(kids);
    lstm_set_threads(4);
    int got = lstm__threads_for((size_t)1 << 30);
    lstm_set_threads(0);
    busy_stop(kids, n);
    ck_assert_int_eq(got, 1);
    ck_assert_int_eq(lstm__threads_for(1000), 1);  /* too little work */
}
END_TEST

START_TEST(kernel_sets)
{
    /* each set the CPU runs can be forced, and the default comes back */
    ck_assert_int_eq(lstm_kernels_select(NULL), 0);
    const char *best = lstm_kernels_name();
    int available = 0;
    for (int i = 0; i < NSETS; i++)
        if (tuned(i)) {
            ck_assert_int_eq(lstm_kernels_select(set_names[i]), 0);
            ck_assert_str_eq(lstm_kernels_name(), set_names[i]);
            available++;
        } else {
            ck_assert_int_eq(lstm_kernels_select(set_names[i]), LSTM_EINVAL);
        }
    ck_assert(available >= 1);
    ck_assert_int_eq(lstm_kernels_select("ref"), 0);
    ck_assert_int_eq(lstm_kernels_use_ref(0), 1);
    ck_assert_str_eq(lstm_kernels_name(), best);
    ck_assert_int_eq(lstm_kernels_select("sse9"), LSTM_EINVAL);
    ck_assert(strstr(lstm_errmsg(), "'sse9' is unknown") != NULL);
    ck_assert_str_eq(lstm_kernels_name(), best);
}
END_TEST

START_TEST(adamw_ref_vs_tuned)
{
    const lstm__kernels *kset = tuned(_i);
    if (!kset)
        return;
    const size_t sizes[] = {1, 3, 7, 17, 65, 100003};
    lstm__adamw_args a = {0.99999f, 0.9f, 0.999f, 0.1f, 0.001f,
                          -0.01f, 0.0316f, 1e-8f};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        float *w[2], *m[2], *v[2], *g = malloc(n * 4);
        fill_randn(g, n, 3);
        for (int k = 0; k < 2; k++) {
            w[k] = malloc(n * 4);
            m[k] = malloc(n * 4);
            v[k] = malloc(n * 4);
            fill_randn(w[k], n, 1);
            fill_randn(m[k], n, 2);
            fill_randn(v[k], n, 4);
            for (size_t i = 0; i < n; i++)
                v[k][i] = v[k][i] * v[k][i];
        }
        for (int step = 0; step < 3; step++) {
            lstm__adamw_ref(w[0], m[0], v[0], g, n, &a);
            kset->adamw(w[1], m[1], v[1], g, n, &a);
        }
        assert_close(w[1], w[0], n, 1e-7, 1e-6, "adamw w");
        assert_close(m[1], m[0], n, 1e-7, 1e-6, "adamw m");
        assert_close(v[1], v[0], n, 1e-7, 1e-6, "adamw v");
        /* no gradient (NULL): the bits of a gradient of +0 */
        float *z = calloc(n, 4);
        for (int r = 0; r < 2; r++) {
            lstm__adamw_fn *f = r ? kset->adamw : lstm__adamw_ref;
            memcpy(w[0], w[1], n * 4);
            memcpy(m[0], m[1], n * 4);
            memcpy(v[0], v[1], n * 4);
            ck_assert_uint_eq(f(w[0], m[0], v[0], z, n, &a), 0);
            ck_assert_uint_eq(f(w[1], m[1], v[1], NULL, n, &a), 0);
            ck_assert(memcmp(w[0], w[1], n * 4) == 0);
            ck_assert(memcmp(m[0], m[1], n * 4) == 0);
            ck_assert(memcmp(v[0], v[1], n * 4) == 0);
        }
        free(z);
        /* the count of non-finite gradients, at the ends and inside a
         * vector: both sets must see every one */
        size_t want = 0;
        for (size_t i = 0; i < n; i += 1 + i % 5, want++)
            g[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
        size_t got_ref = lstm__adamw_ref(w[0], m[0], v[0], g, n, &a);
        size_t got = kset->adamw(w[1], m[1], v[1], g, n, &a);
        ck_assert_uint_eq(got_ref, want);
        ck_assert_uint_eq(got, want);
        for (int k = 0; k < 2; k++) {
            free(w[k]);
            free(m[k]);
            free(v[k]);
        }
        free(g);
    }
}
END_TEST

Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("ref vs tuned");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, vmath_against_libm);
    tcase_add_loop_test(tc, gemm_ref_vs_blas, 0, 4);
    /* every tuned set the CPU runs: generic, avx2, avx512 */
    tcase_add_loop_test(tc, lstm_rec_ref_vs_tuned, 0, 2 * 4 * NSETS);
    tcase_add_loop_test(tc, lstm_rec_ref_vs_tuned_large, 0, 2 * NSETS);
    tcase_add_loop_test(tc, gru_rec_ref_vs_tuned, 0, 4 * NSETS);
    tcase_add_loop_test(tc, lstm_rec_units_same_bits, 0, NSETS);
    tcase_add_loop_test(tc, gemm_sets_vs_ref, 0, NSETS);
    tcase_add_loop_test(tc, gemm_rows_same_bits, 0, NSETS);
    tcase_add_loop_test(tc, gemm_bf16_sets_vs_ref, 0, NSETS);
    tcase_add_loop_test(tc, wgrad_sets, 0, NSETS);
    tcase_add_loop_test(tc, gemm_runs_same_bits, 0, NSETS);
    tcase_add_loop_test(tc, gemm_live_rows, 0, NSETS);
    tcase_add_test(tc, bf16_rounding);
    tcase_add_loop_test(tc, adamw_ref_vs_tuned, 0, NSETS);
    tcase_add_test(tc, kernel_sets);
    tcase_add_test(tc, threads_yield_to_busy_cpus);
    suite_add_tcase(s, tc);
    return s;
}
