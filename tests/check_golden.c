/*
 * check_golden.c - liblstm against PyTorch 1.13 on committed fixtures
 * (tests/gen_fixtures.py). The fixtures are exact (float64) answers for
 * float32 inputs, so the tolerance measures liblstm's own float32 error:
 * every element must satisfy |c - torch| <= GOLD_ATOL + GOLD_RTOL*|torch|.
 * Each case runs with the tuned kernels and with the references.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define GOLD_ATOL 1e-5
#define GOLD_RTOL 1e-5

static int32_t *to_i32(const float *x, size_t n)
{
    int32_t *v = malloc(n * sizeof *v + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (int32_t)x[i];
    return v;
}

static const fx_tensor *fx_find(const fx_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    ck_abort_msg("fixture tensor %s missing", name);
    return NULL;
}

/* Copies every parameter of ps from the fixture; checks the names match
 * one to one, so a renamed or missing parameter fails here. */
static void load_params(lstm_params *ps, const fx_file *f, const char *pre)
{
    size_t in_fixture = 0;
    for (size_t i = 0; i < f->n; i++)
        if (strncmp(f->t[i].name, pre, strlen(pre)) == 0 &&
            strchr(f->t[i].name, '.') &&  /* inputs have plain names */
            strncmp(f->t[i].name, "grad.", 5) != 0 &&
            strncmp(f->t[i].name, "adamw5.", 7) != 0)
            in_fixture++;
    ck_assert_uint_eq(in_fixture, ps->np);
    for (size_t i = 0; i < ps->np; i++) {
        const lstm_param *p = &ps->p[i];
        const fx_tensor *t = fx_find(f, p->name);
        ck_assert_int_eq(t->ndim, p->ndim);
        for (int d = 0; d < p->ndim; d++)
            ck_assert_uint_eq(t->shape[d], p->shape[d]);
        memcpy(ps->w + p->off, t->data, p->numel * sizeof(float));
    }
}

static void check_grads(const lstm_params *ps, const fx_file *f,
                        const char *pre)
{
    char name[96];
    for (size_t i = 0; i < ps->np; i++) {
        const lstm_param *p = &ps->p[i];
        snprintf(name, sizeof name, "%s%s", pre, p->name);
        assert_close(ps->g + p->off, fx_get(f, name, p->numel), p->numel,
                     GOLD_ATOL, GOLD_RTOL, name);
    }
}

/* One fixture of nn.LSTM, or of nn.GRU when it has no cell state
 * (bidirectional when its output is 2H wide): outputs, states and every
 * gradient. */
static void lstm_case(const char *file, int use_ref)
{
    fx_file f;
    fx_load(&f, file);
    lstm_kernels_use_ref(use_ref);
    const fx_tensor *x = fx_find(&f, "x"), *hn = fx_find(&f, "hn");
    const fx_tensor *o = fx_find(&f, "out");
    const size_t B = x->shape[0], T = x->shape[1], I = x->shape[2];
    const size_t H = hn->shape[2], D = o->shape[2] / H, L = hn->shape[0] / D;
    const size_t S = L * D * B * H;  /* the states, (L*D,B,H) */
    const int state = fx_has(&f, "h0"), gru = !fx_has(&f, "cn");

    lstm_params ps;
    lstm_lstm net;
    lstm_params_init(&ps);
    int (*init)(lstm_lstm *, lstm_params *, const char *, size_t, size_t,
                size_t, float) =
        gru ? (D == 2 ? lstm_gru_init_bidirectional : lstm_gru_init)
            : (D == 2 ? lstm_lstm_init_bidirectional : lstm_lstm_init);
    ck_assert_int_eq(init(&net, &ps, "lstm", I, H, L, 0.0f), 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    load_params(&ps, &f, "lstm.");
    int32_t *len = to_i32(fx_get(&f, "len", B), B);
    const float *h0 = state ? fx_get(&f, "h0", S) : NULL;
    const float *c0 = state && !gru ? fx_get(&f, "c0", S) : NULL;
    ck_assert_int_eq(lstm_lstm_forward(&net, x->data, len, h0, c0, B, T, 1,
                                       NULL), 0);
    assert_close(net.out, o->data, B * T * D * H, GOLD_ATOL, GOLD_RTOL, "out");
    assert_close(net.hn, hn->data, S, GOLD_ATOL, GOLD_RTOL, "hn");
    if (gru)
        ck_assert_ptr_null(net.cn);
    else
        assert_close(net.cn, fx_get(&f, "cn", S), S, GOLD_ATOL, GOLD_RTOL,
                     "cn");

    float *dx = calloc(B * T * I, sizeof *dx);
    float *dh0 = calloc(S, sizeof *dh0);
    float *dc0 = calloc(S, sizeof *dc0);
    lstm_params_zero_grad(&ps);
    ck_assert_int_eq(lstm_lstm_backward(&net, fx_get(&f, "dout", B * T * D * H),
                                        fx_get(&f, "dhn", S),
                                        gru ? NULL : fx_get(&f, "dcn", S), dx,
                                        dh0, gru ? NULL : dc0),
                     0);
    check_grads(&ps, &f, "grad.");
    assert_close(dx, fx_get(&f, "dx", B * T * I), B * T * I, GOLD_ATOL,
                 GOLD_RTOL, "dx");
    if (state) {
        assert_close(dh0, fx_get(&f, "dh0", S), S, GOLD_ATOL, GOLD_RTOL,
                     "dh0");
        if (!gru)
            assert_close(dc0, fx_get(&f, "dc0", S), S, GOLD_ATOL, GOLD_RTOL,
                         "dc0");
    }
    free(dx);
    free(dh0);
    free(dc0);
    free(len);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
    lstm_kernels_use_ref(0);
    fx_free(&f);
}

START_TEST(lstm_2layer_state) { lstm_case("lstm_2layer_state.bin", _i); }
END_TEST

START_TEST(lstm_1layer_wide) { lstm_case("lstm_1layer_wide.bin", _i); }
END_TEST

START_TEST(lstm_bi_2layer_state) { lstm_case("lstm_bi_2layer_state.bin", _i); }
END_TEST

START_TEST(lstm_bi_1layer_wide) { lstm_case("lstm_bi_1layer_wide.bin", _i); }
END_TEST

START_TEST(gru_2layer_state) { lstm_case("gru_2layer_state.bin", _i); }
END_TEST

START_TEST(gru_1layer_wide) { lstm_case("gru_1layer_wide.bin", _i); }
END_TEST

START_TEST(gru_bi_2layer_state) { lstm_case("gru_bi_2layer_state.bin", _i); }
END_TEST

static void classifier_case(const char *file, int pool, int bi, int cell,
                            int bag, float wide, int use_ref)
{
    fx_file f;
    fx_load(&f, file);
    lstm_kernels_use_ref(use_ref);
    const size_t B = 4, T = 7, C = 4;
    lstm_classifier_config cfg = {20,   6,    5,         2,  C, {16, 8}, 2,
                                  0.2f, pool, LSTM_FP32, bi, cell, bag, wide};
    lstm_classifier m;
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    load_params(&m.ps, &f, "");
    int32_t *ids = to_i32(fx_get(&f, "ids", B * T), B * T);
    int32_t *len = to_i32(fx_get(&f, "len", B), B);
    int32_t *y = to_i32(fx_get(&f, "y", B), B);
    lstm_adamw opt;
    ck_assert_int_eq(lstm_adamw_init(&opt, m.ps.n, 1e-2, 0.9, 0.999, 1e-8,
                                     1e-2), 0);
    for (int step = 0; step < 5; step++) {
        float loss;
        lstm_params_zero_grad(&m.ps);
        ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, B, T, y, &loss,
                                                 0, NULL), 0);
        ck_assert_int_eq(lstm_classifier_backward(&m, y), 0);
        if (step == 0) {
            assert_close(m.logp, fx_get(&f, "logp", B * C), B * C, GOLD_ATOL,
                         GOLD_RTOL, "logp");
            assert_close(&loss, fx_get(&f, "loss", 1), 1, GOLD_ATOL, GOLD_RTOL,
                         "loss");
            check_grads(&m.ps, &f, "grad.");
        }
        lstm_adamw_step(&opt, m.ps.w, m.ps.g);
    }
    char name[96];
    for (size_t i = 0; i < m.ps.np; i++) {
        const lstm_param *p = &m.ps.p[i];
        snprintf(name, sizeof name, "adamw5.%s", p->name);
        assert_close(m.ps.w + p->off, fx_get(&f, name, p->numel), p->numel,
                     GOLD_ATOL, GOLD_RTOL, name);
    }
    lstm_adamw_free(&opt);
    lstm_classifier_free(&m);
    free(ids);
    free(len);
    free(y);
    lstm_kernels_use_ref(0);
    fx_free(&f);
}

START_TEST(classifier_last)
{
    classifier_case("classifier_last.bin", LSTM_POOL_LAST, 0, LSTM_CELL_LSTM, 0,
                    0.0f, _i);
}
END_TEST

START_TEST(classifier_mean)
{
    classifier_case("classifier_mean.bin", LSTM_POOL_MEAN, 0, LSTM_CELL_LSTM, 0,
                    0.0f, _i);
}
END_TEST

START_TEST(classifier_bi_last)
{
    classifier_case("classifier_bi_last.bin", LSTM_POOL_LAST, 1,
                    LSTM_CELL_LSTM, 0, 0.0f, _i);
}
END_TEST

START_TEST(classifier_bi_max)
{
    classifier_case("classifier_bi_max.bin", LSTM_POOL_MAX, 1, LSTM_CELL_LSTM, 0,
                    0.0f, _i);
}
END_TEST

START_TEST(classifier_gru_bi_last)
{
    classifier_case("classifier_gru_bi_last.bin", LSTM_POOL_LAST, 1,
                    LSTM_CELL_GRU, 0, 0.0f, _i);
}
END_TEST

START_TEST(classifier_gru_mean)
{
    classifier_case("classifier_gru_mean.bin", LSTM_POOL_MEAN, 0,
                    LSTM_CELL_GRU, 0, 0.0f, _i);
}
END_TEST

START_TEST(classifier_mean_wide_bag)
{
    classifier_case("classifier_mean_wide_bag.bin", LSTM_POOL_MEAN, 0,
                    LSTM_CELL_LSTM, 0, 3.0f, _i);
}
END_TEST

START_TEST(classifier_bi_max_bag)
{
    classifier_case("classifier_bi_max_bag.bin", LSTM_POOL_MAX, 1,
                    LSTM_CELL_LSTM, 1, 0.0f, _i);
}
END_TEST

Suite *golden_suite(void)
{
    Suite *s = suite_create("golden (PyTorch 1.13)");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    /* _i = 0: tuned kernels, 1: references */
    tcase_add_loop_test(tc, lstm_2layer_state, 0, 2);
    tcase_add_loop_test(tc, lstm_1layer_wide, 0, 2);
    tcase_add_loop_test(tc, lstm_bi_2layer_state, 0, 2);
    tcase_add_loop_test(tc, lstm_bi_1layer_wide, 0, 2);
    tcase_add_loop_test(tc, gru_2layer_state, 0, 2);
    tcase_add_loop_test(tc, gru_1layer_wide, 0, 2);
    tcase_add_loop_test(tc, gru_bi_2layer_state, 0, 2);
    tcase_add_loop_test(tc, classifier_last, 0, 2);
    tcase_add_loop_test(tc, classifier_bi_max_bag, 0, 2);
    tcase_add_loop_test(tc, classifier_mean_wide_bag, 0, 2);
    tcase_add_loop_test(tc, classifier_mean, 0, 2);
    tcase_add_loop_test(tc, classifier_bi_last, 0, 2);
    tcase_add_loop_test(tc, classifier_bi_max, 0, 2);
    tcase_add_loop_test(tc, classifier_gru_bi_last, 0, 2);
    tcase_add_loop_test(tc, classifier_gru_mean, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
