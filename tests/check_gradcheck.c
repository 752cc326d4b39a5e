/*
 * check_gradcheck.c - every layer's backward against central finite
 * differences of its forward, with the loss L = sum(r * y) for a fixed
 * random r (a plain sum would be blind for softmax) accumulated in double.
 * The step h is applied to the float32 parameter and the difference is
 * divided by the step actually taken. Each check runs with the tuned
 * kernels and with the references. Tolerance: |fd - an| <= FD_ATOL +
 * FD_RTOL * |fd|; a swapped gate or a dropped term misses it by orders of
 * magnitude.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define FD_H 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 2e-2

typedef double (*loss_fn)(void *ctx);

/* Compares an[0..n) with finite differences of f over x[0..n). */
static void fd_check(float *x, const float *an, size_t n, loss_fn f,
                     void *ctx, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const float save = x[i];
        const float xp = save + FD_H, xm = save - FD_H;
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = save;
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double err = fabs(fd - (double)an[i]);
        ck_assert_msg(err <= FD_ATOL + FD_RTOL * fabs(fd),
                      "%s[%zu]: analytic %.7g, finite difference %.7g", what,
                      i, (double)an[i], fd);
    }
}

/* ---- embedding ---- */

typedef struct {
    lstm_params ps;
    lstm_embedding e;
    int32_t ids[6];
    float out[6 * 3], r[6 * 3];
} emb_ctx;

static double emb_loss(void *p)
{
    emb_ctx *c = p;
    ck_assert_int_eq(lstm_embedding_forward(&c->e, c->out, c->ids, 6), 0);
    return dot_d(c->r, c->out, 6 * 3);
}

START_TEST(grad_embedding)
{
    emb_ctx c = {.ids = {3, 0, 2, 3, 4, 0}};
    lstm_rng rng;
    lstm_rng_seed(&rng, 1);
    lstm_params_init(&c.ps);
    ck_assert_int_eq(lstm_embedding_init(&c.e, &c.ps, "emb", 5, 3, 0), 0);
    ck_assert_int_eq(lstm_params_alloc(&c.ps), 0);
    lstm_embedding_reset(&c.e, &rng);
    for (int j = 0; j < 3; j++)  /* the padding row starts at zero */
        ck_assert(c.ps.w[j] == 0.0f);
    fill_randn(c.r, 6 * 3, 2);
    lstm_embedding_backward(&c.e, c.r, c.ids, 6);
    for (int j = 0; j < 3; j++)  /* and never gets a gradient */
        ck_assert(c.ps.g[j] == 0.0f);
    /* rows 1..4: row 3 is used twice, row 1 never */
    fd_check(c.ps.w + 3, c.ps.g + 3, 4 * 3, emb_loss, &c, "embedding");
    lstm_params_free(&c.ps);
}
END_TEST

/* ---- dense + ReLU + dropout + log-softmax/NLL ---- */

typedef struct {
    lstm_params ps;
    lstm_dense d1, d2;
    float x[3 * 7], h[3 * 5], a[3 * 5], mask[3 * 5], z[3 * 4], logp[3 * 4];
    int32_t y[3];
} mlp_ctx;

static double mlp_loss(void *p)
{
    mlp_ctx *c = p;
    lstm_rng rng;
    lstm_rng_seed(&rng, 9);  /* the same dropout mask every time */
    float loss;
    lstm_dense_forward(&c->d1, c->h, c->x, 3);
    lstm_relu_forward(c->h, c->h, 3 * 5);
    lstm_dropout_forward(c->a, c->mask, c->h, 3 * 5, 0.3f, &rng);
    lstm_dense_forward(&c->d2, c->z, c->a, 3);
    ck_assert_int_eq(lstm_logsoftmax_nll_forward(c->logp, &loss, c->z, c->y, 3,
                                                 4), 0);
    return (double)loss;
}

START_TEST(grad_mlp)
{
    lstm_kernels_use_ref(_i);
    mlp_ctx c = {.y = {2, 0, 3}};
    lstm_rng rng;
    lstm_rng_seed(&rng, 3);
    lstm_params_init(&c.ps);
    ck_assert_int_eq(lstm_dense_init(&c.d1, &c.ps, "d1", 7, 5), 0);
    ck_assert_int_eq(lstm_dense_init(&c.d2, &c.ps, "d2", 5, 4), 0);
    ck_assert_int_eq(lstm_params_alloc(&c.ps), 0);
    lstm_dense_reset(&c.d1, &rng);
    lstm_dense_reset(&c.d2, &rng);
    fill_randn(c.x, 3 * 7, 4);
    mlp_loss(&c);
    float dz[3 * 4], da[3 * 5], dx[3 * 7];
    lstm_logsoftmax_nll_backward(dz, c.logp, c.y, 3, 4);
    lstm_dense_backward(&c.d2, da, dz, c.a, 3);
    lstm_dropout_backward(da, da, c.mask, 3 * 5);
    lstm_relu_backward(da, da, c.h, 3 * 5);
    lstm_dense_backward(&c.d1, dx, da, c.x, 3);
    fd_check(c.ps.w, c.ps.g, c.ps.n, mlp_loss, &c, "dense weights");
    fd_check(c.x, dx, 3 * 7, mlp_loss, &c, "dense input");
    lstm_params_free(&c.ps);
    lstm_kernels_use_ref(0);
}
END_TEST

/* ---- the LSTM and the GRU: 2 layers, unequal lengths, h0/c0, dropout;
 * one and two directions ---- */

enum { LB = 3, LT = 5, LI = 4, LH = 3, LL = 2 };

typedef struct {
    lstm_params ps;
    lstm_lstm net;
    size_t D;
    int gru;
    float x[LB * LT * LI], h0[2 * LL * LB * LH], c0[2 * LL * LB * LH];
    float r_out[LB * LT * 2 * LH], r_hn[2 * LL * LB * LH];
    float r_cn[2 * LL * LB * LH];
    int32_t len[LB];
} rnn_ctx;

static double rnn_loss(void *p)
{
    rnn_ctx *c = p;
    lstm_rng rng;
    lstm_rng_seed(&rng, 11);  /* the same dropout mask every time */
    ck_assert_int_eq(lstm_lstm_forward(&c->net, c->x, c->len, c->h0,
                                       c->gru ? NULL : c->c0, LB, LT, 1, &rng),
                     0);
    return dot_d(c->r_out, c->net.out, LB * LT * c->D * LH) +
           dot_d(c->r_hn, c->net.hn, c->D * LL * LB * LH) +
           (c->gru ? 0.0 : dot_d(c->r_cn, c->net.cn, c->D * LL * LB * LH));
}

/* _i: bit 0 the references, bit 1 bidirectional, bit 2 GRU */
START_TEST(grad_lstm)
{
    lstm_kernels_use_ref(_i & 1);
    static rnn_ctx c = {.len = {5, 2, 4}};
    c.D = _i & 2 ? 2 : 1;
    c.gru = (_i & 4) != 0;
    const size_t S = c.D * LL * LB * LH;
    lstm_rng rng;
    lstm_rng_seed(&rng, 5);
    lstm_params_init(&c.ps);
    int (*init)(lstm_lstm *, lstm_params *, const char *, size_t, size_t,
                size_t, float) =
        c.gru ? (c.D == 2 ? lstm_gru_init_bidirectional : lstm_gru_init)
              : (c.D == 2 ? lstm_lstm_init_bidirectional : lstm_lstm_init);
    ck_assert_int_eq(init(&c.net, &c.ps, "rnn", LI, LH, LL, 0.25f), 0);
    ck_assert_int_eq(lstm_params_alloc(&c.ps), 0);
    /* larger than PyTorch's init so that every gate saturates somewhere */
    lstm_fill_uniform(c.ps.w, c.ps.n, -1.0f, 1.0f, &rng);
    fill_randn(c.x, sizeof c.x / sizeof *c.x, 6);
    fill_randn(c.h0, S, 7);
    fill_randn(c.c0, S, 8);
    fill_randn(c.r_out, LB * LT * c.D * LH, 9);
    fill_randn(c.r_hn, S, 10);
    fill_randn(c.r_cn, S, 12);
    float dx[LB * LT * LI], dh0[2 * LL * LB * LH], dc0[2 * LL * LB * LH];
    rnn_loss(&c);
    lstm_params_zero_grad(&c.ps);
    ck_assert_int_eq(lstm_lstm_backward(&c.net, c.r_out, c.r_hn,
                                        c.gru ? NULL : c.r_cn, dx, dh0,
                                        c.gru ? NULL : dc0), 0);
    fd_check(c.ps.w, c.ps.g, c.ps.n, rnn_loss, &c, "rnn weights");
    fd_check(c.x, dx, LB * LT * LI, rnn_loss, &c, "rnn dx");
    fd_check(c.h0, dh0, S, rnn_loss, &c, "rnn dh0");
    if (!c.gru)
        fd_check(c.c0, dc0, S, rnn_loss, &c, "rnn dc0");
    /* input gradient past each sequence's end is exactly zero */
    for (size_t b = 0; b < LB; b++)
        for (size_t t = (size_t)c.len[b]; t < LT; t++)
            for (size_t i = 0; i < LI; i++)
                ck_assert(dx[(b * LT + t) * LI + i] == 0.0f);
    lstm_lstm_free(&c.net);
    lstm_params_free(&c.ps);
    lstm_kernels_use_ref(0);
}
END_TEST

/* ---- the whole classifier, along one random direction ---- */

typedef struct {
    lstm_classifier m;
    int32_t ids[3 * 6], len[3], y[3];
} cls_ctx;

static double cls_loss(void *p)
{
    cls_ctx *c = p;
    lstm_rng rng;
    lstm_rng_seed(&rng, 13);
    float loss;
    ck_assert_int_eq(lstm_classifier_forward(&c->m, c->ids, c->len, 3, 6,
                                             c->y, &loss, 1, &rng), 0);
    return (double)loss;
}

START_TEST(grad_classifier_direction)
{
    static const int pools[3] = {LSTM_POOL_LAST, LSTM_POOL_MEAN,
                                 LSTM_POOL_MAX};
    lstm_kernels_use_ref(_i % 2);
    cls_ctx c = {.ids = {2, 5, 7, 1, 3, 4, 6, 2, 0, 0, 0, 0, 9, 8, 3, 3, 0, 0},
                 .len = {6, 2, 4}, .y = {1, 0, 2}};
    /* the bag of words beside the mean and max pools; the wide bag with
     * the last and max */
    lstm_classifier_config cfg = {10, 4, 3, 2, 3, {8, 5}, 2, 0.2f,
                                  pools[_i / 2], LSTM_FP32, 0, LSTM_CELL_LSTM,
                                  _i >= 2, _i / 2 != 1 ? 2.5f : 0.0f};
    ck_assert_int_eq(lstm_classifier_init(&c.m, &cfg), 0);
    lstm_rng rng;
    lstm_rng_seed(&rng, 21);
    lstm_classifier_reset(&c.m, &rng);
    if (cfg.wide > 0.0f)  /* zero at reset: made random, as trained */
        lstm_fill_normal(c.m.ps.w + c.m.wide.off_w, cfg.V * cfg.C, 0.0f,
                         0.3f, &rng);
    lstm_params_zero_grad(&c.m.ps);
    cls_loss(&c);
    ck_assert_int_eq(lstm_classifier_backward(&c.m, c.y), 0);
    const size_t n = c.m.ps.n;
    float *u = malloc(n * sizeof *u), *w0 = malloc(n * sizeof *w0);
    fill_randn(u, n, 22);
    memcpy(w0, c.m.ps.w, n * sizeof *w0);
    double an = dot_d(u, c.m.ps.g, n);
    const double h = 3e-4;  /* 1e-3 crossed a ReLU's kink with the bag */
    for (size_t k = 0; k < n; k++)
        c.m.ps.w[k] = (float)((double)w0[k] + h * (double)u[k]);
    double lp = cls_loss(&c);
    for (size_t k = 0; k < n; k++)
        c.m.ps.w[k] = (float)((double)w0[k] - h * (double)u[k]);
    double lm = cls_loss(&c);
    double fd = (lp - lm) / (2 * h);
    ck_assert_msg(fabs(fd - an) <= 1e-3 + 1e-2 * fabs(fd),
                  "classifier (pool %d): g.u %.7g, finite difference %.7g",
                  cfg.pool, an, fd);
    free(u);
    free(w0);
    lstm_classifier_free(&c.m);
    lstm_kernels_use_ref(0);
}
END_TEST

Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("finite differences");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, grad_embedding);
    tcase_add_loop_test(tc, grad_mlp, 0, 2);
    tcase_add_loop_test(tc, grad_lstm, 0, 8);
    tcase_add_loop_test(tc, grad_classifier_direction, 0, 6);
    suite_add_tcase(s, tc);
    return s;
}
