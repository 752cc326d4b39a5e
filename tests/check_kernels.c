/*
 * check_kernels.c - every tuned kernel against its _ref twin over odd
 * shapes (1, 3, 7, 17, 65 and one large case), and the vectorisable
 * exp/sigmoid/tanh against libm.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../kernels/kernels.h"
#include "../kernels/vmath.h"

static const size_t odd[] = {1, 3, 7, 17, 65};
#define NODD (sizeof odd / sizeof *odd)

static int quick(void) { return getenv("LSTM_TEST_QUICK") != NULL; }

/* The tuned sets, by loop index; NULL where this CPU cannot run one. */
static const char *set_names[] = {"generic", "avx2", "avx512"};
#define NSETS 3
static const lstm__kernels *tuned(int i) { return lstm__kernels_get(set_names[i]); }

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
    ck_assert_msg(worst_t < 4e-7, "tanh relative error %g", worst_t);
    /* saturation, not overflow or NaN */
    ck_assert(lstm__vsigmoid(-1000.0f) >= 0.0f && lstm__vsigmoid(1000.0f) == 1.0f);
    ck_assert(lstm__vtanh(1000.0f) == 1.0f && lstm__vtanh(-1000.0f) == -1.0f);
    ck_assert(lstm__vtanh(0.0f) == 0.0f);
    /* a NaN goes through as NaN, with no undefined conversion on the way
     * (UBSan flagged the exponent shift of exp(NaN) in a diverging run) */
    volatile float nan = NAN;
    ck_assert(isnan(lstm__vexp(nan)) && isnan(lstm__vsigmoid(nan)) &&
              isnan(lstm__vtanh(nan)));
    ck_assert(lstm__vexp(INFINITY) == lstm__vexp(88.0f));
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
    float *gates, *hs, *cs, *y, *w, *wpk_f, *wpk_b, *scratch;
    float *dA, *dh, *dc, *dy;
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
    c->hs = calloc(nb * (T + 1) * H, 4);
    c->cs = calloc(nb * (T + 1) * H, 4);
    c->y = malloc(nb * T * H * 4);
    c->w = malloc(G * H * 4);
    c->wpk_f = malloc(lstm__pack16_size(H, G) * 4);
    c->wpk_b = malloc(lstm__pack16_size(G, H) * 4);
    c->scratch = malloc(nb * G * 4);
    c->dA = malloc(nb * T * G * 4);
    c->dh = malloc(nb * H * 4);
    c->dc = malloc(nb * H * 4);
    c->dy = malloc(nb * T * H * 4);
    fill_randn(c->gates, nb * T * G, seed + 1);
    lstm_fill_uniform(c->w, G * H, -0.3f, 0.3f, &r);
    lstm__pack16(c->wpk_f, c->w, H, G, 1);
    lstm__pack16(c->wpk_b, c->w, G, H, 0);
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
    memcpy(d->hs, s->hs, nb * (T + 1) * H * 4);
    memcpy(d->cs, s->cs, nb * (T + 1) * H * 4);
    memcpy(d->w, s->w, G * H * 4);
    memcpy(d->wpk_f, s->wpk_f, lstm__pack16_size(H, G) * 4);
    memcpy(d->wpk_b, s->wpk_b, lstm__pack16_size(G, H) * 4);
    memcpy(d->dh, s->dh, nb * H * 4);
    memcpy(d->dc, s->dc, nb * H * 4);
    memcpy(d->dy, s->dy, nb * T * H * 4);
}

static void rec_free(rec_case *c)
{
    free(c->len); free(c->gates); free(c->hs); free(c->cs); free(c->y);
    free(c->w); free(c->wpk_f); free(c->wpk_b); free(c->scratch); free(c->dA); free(c->dh);
    free(c->dc); free(c->dy);
}

static void rec_compare(const lstm__kernels *k, size_t nb, size_t T, size_t H,
                        uint64_t seed)
{
    const size_t G = 4 * H;
    rec_case r, s;
    rec_init(&r, nb, T, H, seed);
    rec_copy(&s, &r);
    lstm__lstm_fwd_ref(nb, T, H, r.len, r.gates, r.hs, r.cs, r.y, r.w, NULL,
                       r.scratch);
    k->lstm_fwd(nb, T, H, s.len, s.gates, s.hs, s.cs, s.y, s.w, s.wpk_f,
                s.scratch);
    assert_close(s.gates, r.gates, nb * T * G, 1e-5, 1e-5, "fwd gates");
    assert_close(s.hs, r.hs, nb * (T + 1) * H, 1e-5, 1e-5, "fwd h");
    assert_close(s.cs, r.cs, nb * (T + 1) * H, 1e-5, 1e-5, "fwd c");
    assert_close(s.y, r.y, nb * T * H, 1e-5, 1e-5, "fwd y");
    for (int with_dy = 0; with_dy < 2; with_dy++) {
        float *dh = malloc(nb * H * 4), *dc = malloc(nb * H * 4);
        memcpy(dh, r.dh, nb * H * 4);
        memcpy(dc, r.dc, nb * H * 4);
        lstm__lstm_bwd_ref(nb, T, H, r.len, r.dA, r.dh, r.dc,
                           with_dy ? r.dy : NULL, r.gates, r.cs, r.w, NULL,
                           r.scratch);
        k->lstm_bwd(nb, T, H, s.len, s.dA, dh, dc, with_dy ? s.dy : NULL,
                    s.gates, s.cs, s.w, s.wpk_b, s.scratch);
        assert_close(s.dA, r.dA, nb * T * G, 1e-5, 1e-4, "bwd dA");
        assert_close(dh, r.dh, nb * H, 1e-5, 1e-4, "bwd dh0");
        assert_close(dc, r.dc, nb * H, 1e-5, 1e-4, "bwd dc0");
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

/* _i = set * 4 + index of T */
START_TEST(lstm_rec_ref_vs_tuned)
{
    const lstm__kernels *k = tuned(_i / 4);
    if (!k)
        return;  /* this CPU lacks the instructions */
    for (size_t a = 0; a < NODD; a++)
        for (size_t c = 0; c < NODD; c++)
            rec_compare(k, odd[a], odd[_i % 4], odd[c], a * 31 + c);
}
END_TEST

START_TEST(lstm_rec_ref_vs_tuned_large)
{
    const lstm__kernels *k = tuned(_i);
    if (!k)
        return;
    if (quick())
        rec_compare(k, 4, 32, 128, 77);
    else
        rec_compare(k, 8, 128, 128, 77);
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
    tcase_add_loop_test(tc, lstm_rec_ref_vs_tuned, 0, 4 * NSETS);
    tcase_add_loop_test(tc, lstm_rec_ref_vs_tuned_large, 0, NSETS);
    tcase_add_loop_test(tc, adamw_ref_vs_tuned, 0, NSETS);
    tcase_add_test(tc, kernel_sets);
    suite_add_tcase(s, tc);
    return s;
}
