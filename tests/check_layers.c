/*
 * check_layers.c - layer properties and error paths: bad arguments get an
 * error code and a message, never a crash; log-softmax rows normalise;
 * lengths behave as pack_padded_sequence; the same seed gives the same
 * training, bit for bit, and so does another thread count.
 */
#define _DEFAULT_SOURCE  /* nanosleep */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "../lib/internal.h"  /* lstm__k, lstm__round_bf16, lstm__seconds */

/* bf16-mixed vs float: relative 2-norm distance allowed (a bfloat16 step
 * is 2^-8 = 0.0039 relative; measured 1e-3 to 3.4e-3 over 30 steps). */
#define BF16_BOUND 1e-2

START_TEST(embedding_errors)
{
    lstm_params ps;
    lstm_embedding e;
    lstm_params_init(&ps);
    ck_assert_int_eq(lstm_embedding_init(&e, &ps, "e", 0, 3, 0), LSTM_EINVAL);
    ck_assert_int_eq(lstm_embedding_init(&e, &ps, "e", 4, 3, 4), LSTM_EINVAL);
    ck_assert_int_eq(lstm_embedding_init(&e, &ps, "e", 4, 3, 0), LSTM_OK);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    int32_t ids[3] = {1, 4, 2};
    float out[9];
    ck_assert_int_eq(lstm_embedding_forward(&e, out, ids, 3), LSTM_ERANGE);
    ck_assert(strstr(lstm_errmsg(), "token id 4 at position 1") != NULL);
    ids[1] = -1;
    ck_assert_int_eq(lstm_embedding_forward(&e, out, ids, 3), LSTM_ERANGE);
    lstm_params_free(&ps);
}
END_TEST

/* The embedding's gather and scatter-add on 1, 2 and 3 threads (enough
 * positions for the library to use them): the rows, and the gradient of
 * each row summed in position order, as a plain loop gives them; the
 * padding row takes none. */
START_TEST(embedding_threads_same_bits)
{
    enum { V = 97, E = 40, N = 3000 };
    lstm_params ps;
    lstm_embedding e;
    lstm_params_init(&ps);
    ck_assert_int_eq(lstm_embedding_init(&e, &ps, "e", V, E, 0), LSTM_OK);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    lstm_rng rng;
    lstm_rng_seed(&rng, 9);
    lstm_embedding_reset(&e, &rng);
    static int32_t ids[N];
    static float dout[N * E], out[N * E], want[V * E];
    for (size_t k = 0; k < N; k++)  /* skewed, as words are */
        ids[k] = (int32_t)(lstm_rng_below(&rng, 1 + lstm_rng_below(&rng, V)));
    fill_randn(dout, N * E, 5);
    memset(want, 0, sizeof want);
    for (size_t k = 0; k < N; k++)
        for (size_t j = 0; ids[k] != 0 && j < E; j++)
            want[(size_t)ids[k] * E + j] += dout[k * E + j];
    for (int threads = 1; threads <= 3; threads++) {
        lstm_set_threads(threads);
        lstm_params_zero_grad(&ps);
        ck_assert_int_eq(lstm_embedding_forward(&e, out, ids, N), LSTM_OK);
        for (size_t k = 0; k < N; k++)
            ck_assert(memcmp(out + k * E, ps.w + e.off_w + (size_t)ids[k] * E,
                             E * sizeof *out) == 0);
        lstm_embedding_backward(&e, dout, ids, N);
        ck_assert(memcmp(ps.g + e.off_w, want, sizeof want) == 0);
    }
    lstm_set_threads(0);
    lstm_params_free(&ps);
}
END_TEST

START_TEST(logsoftmax_properties)
{
    const size_t B = 3, C = 5;
    float x[15], lp[15], loss, dl[15];
    fill_randn(x, 15, 1);
    x[0] = 1e4f;   /* large logits must not overflow */
    x[6] = -1e4f;
    int32_t y[3] = {0, 4, 2};
    ck_assert_int_eq(lstm_logsoftmax_nll_forward(lp, &loss, x, y, B, C), 0);
    for (size_t b = 0; b < B; b++) {
        double s = 0;
        for (size_t c = 0; c < C; c++) {
            ck_assert(isfinite(lp[b * C + c]));
            s += exp((double)lp[b * C + c]);
        }
        ck_assert(fabs(log(s)) < 1e-6);
    }
    ck_assert(isfinite(loss) && loss >= 0.0f);
    lstm_logsoftmax_nll_backward(dl, lp, y, B, C);
    for (size_t b = 0; b < B; b++) {  /* each row of the gradient sums to 0 */
        double s = 0;
        for (size_t c = 0; c < C; c++)
            s += (double)dl[b * C + c];
        ck_assert(fabs(s) < 1e-6);
    }
    y[1] = 5;
    ck_assert_int_eq(lstm_logsoftmax_nll_forward(lp, &loss, x, y, B, C),
                     LSTM_ERANGE);
    ck_assert(strstr(lstm_errmsg(), "label 5 of row 1") != NULL);
}
END_TEST

START_TEST(lstm_errors)
{
    lstm_params ps;
    lstm_lstm net;
    lstm_params_init(&ps);
    ck_assert_int_eq(lstm_lstm_init(&net, &ps, "r", 3, 0, 1, 0.0f),
                     LSTM_EINVAL);
    ck_assert_int_eq(lstm_lstm_init(&net, &ps, "r", 3, 2, 2, 1.0f),
                     LSTM_EINVAL);
    ck_assert_int_eq(lstm_lstm_init(&net, &ps, "r", 3, 2, 2, 0.5f), 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    float x[2 * 4 * 3] = {0};
    int32_t len[2] = {4, 5};
    ck_assert_int_eq(lstm_lstm_backward(&net, NULL, NULL, NULL, NULL, NULL,
                                        NULL), LSTM_EINVAL);
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, 2, 4, 0,
                                       NULL), LSTM_EINVAL);
    ck_assert(strstr(lstm_errmsg(), "length 5 of sequence 1") != NULL);
    len[1] = -1;
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, 2, 4, 0,
                                       NULL), LSTM_EINVAL);
    len[1] = 2;
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, 0, 4, 0,
                                       NULL), LSTM_EINVAL);
    /* dropout in training needs a generator */
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, 2, 4, 1,
                                       NULL), LSTM_EINVAL);
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, 2, 4, 0,
                                       NULL), LSTM_OK);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}
END_TEST

/* A fresh LSTM "r" (I,H,L,dropout) in its own parameter block, initialised
 * as PyTorch does from a generator seeded with seed (left in *rng). */
static void new_lstm(lstm_params *ps, lstm_lstm *net, lstm_rng *rng, size_t I,
                     size_t H, size_t L, float dropout, uint64_t seed)
{
    lstm_rng_seed(rng, seed);
    lstm_params_init(ps);
    ck_assert_int_eq(lstm_lstm_init(net, ps, "r", I, H, L, dropout), 0);
    ck_assert_int_eq(lstm_params_alloc(ps), 0);
    lstm_lstm_reset(net, rng);
}

/* t_phase: a forward adds to the input projection's and the forward
 * recurrence's time only, a backward with dx to the three backward
 * phases only; every phase timed is a positive number of seconds, below
 * the whole pass's. */
START_TEST(lstm_phase_times)
{
    enum { B = 3, T = 40, I = 16, H = 32, L = 2 };
    lstm_params ps;
    lstm_lstm net;
    lstm_rng rng;
    new_lstm(&ps, &net, &rng, I, H, L, 0.0f, 8);
    for (int i = 0; i < LSTM_PHASES; i++)
        ck_assert(net.t_phase[i] == 0.0);
    static float x[B * T * I], dout[B * T * H], dx[B * T * I];
    fill_randn(x, B * T * I, 1);
    fill_randn(dout, B * T * H, 2);
    const int32_t len[B] = {T, 7, 31};
    double t0 = lstm__seconds();
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, B, T, 1,
                                       &rng), 0);
    const double fwd = lstm__seconds() - t0;
    double seen[LSTM_PHASES];
    memcpy(seen, net.t_phase, sizeof seen);
    ck_assert(seen[LSTM_PHASE_INPROJ] > 0.0 && seen[LSTM_PHASE_FWD] > 0.0);
    ck_assert(seen[LSTM_PHASE_INPROJ] + seen[LSTM_PHASE_FWD] <= fwd);
    ck_assert(seen[LSTM_PHASE_BWD] == 0.0 && seen[LSTM_PHASE_WGRAD] == 0.0 &&
              seen[LSTM_PHASE_DX] == 0.0);
    t0 = lstm__seconds();
    ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, NULL, dx, NULL,
                                        NULL), 0);
    const double bwd = lstm__seconds() - t0;
    ck_assert(net.t_phase[LSTM_PHASE_INPROJ] == seen[LSTM_PHASE_INPROJ]);
    ck_assert(net.t_phase[LSTM_PHASE_FWD] == seen[LSTM_PHASE_FWD]);
    ck_assert(net.t_phase[LSTM_PHASE_BWD] > 0.0 &&
              net.t_phase[LSTM_PHASE_WGRAD] > 0.0 &&
              net.t_phase[LSTM_PHASE_DX] > 0.0);
    ck_assert(net.t_phase[LSTM_PHASE_BWD] + net.t_phase[LSTM_PHASE_WGRAD] +
                  net.t_phase[LSTM_PHASE_DX] <= bwd);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}
END_TEST

/* _i: the precision; the length rules hold in both */
START_TEST(lstm_lengths)
{
    enum { B = 3, T = 6, I = 4, H = 5, L = 2 };
    lstm_params ps;
    lstm_lstm net;
    lstm_rng rng;
    new_lstm(&ps, &net, &rng, I, H, L, 0.0f, 3);
    net.precision = _i;
    float x[B * T * I], h0[L * B * H], c0[L * B * H];
    fill_randn(x, B * T * I, 1);
    fill_randn(h0, L * B * H, 2);
    fill_randn(c0, L * B * H, 3);
    int32_t len[B] = {6, 0, 3};
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, h0, c0, B, T, 0, NULL),
                     0);
    for (size_t k = 0; k < L; k++)  /* an empty sequence keeps h0, c0 */
        for (size_t j = 0; j < H; j++) {
            ck_assert(net.hn[(k * B + 1) * H + j] == h0[(k * B + 1) * H + j]);
            ck_assert(net.cn[(k * B + 1) * H + j] == c0[(k * B + 1) * H + j]);
        }
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++)
            for (size_t j = 0; j < H; j++) {
                float v = net.out[(b * T + t) * H + j];
                if (t >= (size_t)len[b])
                    ck_assert(v == 0.0f);  /* zero past the end */
                else if (t + 1 == (size_t)len[b])  /* hn is the last output */
                    ck_assert(v == net.hn[((L - 1) * B + b) * H + j]);
            }
    /* the padding never leaks: changing it changes nothing */
    float out1[B * T * H];
    memcpy(out1, net.out, sizeof out1);
    for (size_t i = 0; i < I; i++)
        x[(2 * T + 4) * I + i] = 1e3f;
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, h0, c0, B, T, 0, NULL),
                     0);
    ck_assert(memcmp(out1, net.out, sizeof out1) == 0);
    /* NULL lengths mean every sequence is full */
    int32_t full[B] = {T, T, T};
    ck_assert_int_eq(lstm_lstm_forward(&net, x, full, NULL, NULL, B, T, 0,
                                       NULL), 0);
    memcpy(out1, net.out, sizeof out1);
    ck_assert_int_eq(lstm_lstm_forward(&net, x, NULL, NULL, NULL, B, T, 0,
                                       NULL), 0);
    ck_assert(memcmp(out1, net.out, sizeof out1) == 0);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}
END_TEST

/* What a batch holds past a sequence's length never reaches a result:
 * with NaN and infinities there (in x and in dout), every kernel set the
 * CPU runs gives the outputs, dx and weight gradients it gives with zeros
 * there, bit for bit, and dx is zero there. A 2-layer LSTM (fp32 and
 * bf16-mixed), bidirectional LSTM and GRU; 35 inputs (two panels of 16
 * and a tail), 80 or 60 gate rows (the fused weight gradients' packing),
 * 40 steps. _i: 0 LSTM, 1 bidirectional LSTM, 2 GRU. */
static void padded_run(int cell, int prec, const float *x, const float *dout,
                       const int32_t *len, size_t B, size_t T, size_t I,
                       size_t H, float *out, float *dx, float *g, size_t *n)
{
    lstm_params ps;
    lstm_lstm net;
    lstm_rng rng;
    lstm_rng_seed(&rng, 21);
    lstm_params_init(&ps);
    int rc = cell == 0   ? lstm_lstm_init(&net, &ps, "p", I, H, 2, 0.0f)
             : cell == 1 ? lstm_lstm_init_bidirectional(&net, &ps, "p", I, H,
                                                        2, 0.0f)
                         : lstm_gru_init(&net, &ps, "p", I, H, 2, 0.0f);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    lstm_lstm_reset(&net, &rng);
    net.precision = prec;
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, B, T, 1,
                                       &rng), 0);
    memcpy(out, net.out, B * T * (cell == 1 ? 2 : 1) * H * sizeof *out);
    lstm_params_zero_grad(&ps);
    ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, NULL, dx, NULL,
                                        NULL), 0);
    *n = ps.n;
    memcpy(g, ps.g, ps.n * sizeof *g);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}

START_TEST(padding_never_reaches_results)
{
    enum { B = 4, T = 40, I = 35, H = 20 };
    static const char *sets[] = {"ref", "generic", "avx2", "avx512",
                                 "avx512bf16", "amx"};
    static float x[2][B * T * I], dout[2][B * T * 2 * H];
    static float out[2][B * T * 2 * H], dx[2][B * T * I], g[2][60000];
    const int32_t len[B] = {T, 0, 17, 33};
    const size_t O = (_i == 1 ? 2 : 1) * H;
    fill_randn(x[0], B * T * I, 5);
    fill_randn(dout[0], B * T * O, 6);
    for (size_t b = 0; b < B; b++)
        for (size_t t = (size_t)len[b]; t < T; t++) {
            for (size_t i = 0; i < I; i++) {
                x[0][(b * T + t) * I + i] = 0.0f;
                x[1][(b * T + t) * I + i] = i % 3 ? NAN
                                            : i % 2 ? INFINITY : -INFINITY;
            }
            for (size_t j = 0; j < O; j++) {
                dout[0][(b * T + t) * O + j] = 0.0f;
                dout[1][(b * T + t) * O + j] = NAN;
            }
        }
    for (size_t b = 0; b < B; b++)  /* the live steps are the same */
        for (size_t t = 0; t < (size_t)len[b]; t++) {
            memcpy(x[1] + (b * T + t) * I, x[0] + (b * T + t) * I,
                   I * sizeof(float));
            memcpy(dout[1] + (b * T + t) * O, dout[0] + (b * T + t) * O,
                   O * sizeof(float));
        }
    for (size_t k = 0; k < sizeof sets / sizeof *sets; k++) {
        if (lstm_kernels_select(sets[k]) != 0)
            continue;  /* kernel_sets says which this CPU runs */
        for (int prec = LSTM_FP32; prec <= (_i == 2 ? LSTM_FP32
                                                    : LSTM_BF16_MIXED);
             prec++) {
            size_t n[2];
            for (int p = 0; p < 2; p++)
                padded_run(_i, prec, x[p], dout[p], len, B, T, I, H, out[p],
                           dx[p], g[p], &n[p]);
            ck_assert_msg(!memcmp(out[0], out[1], B * T * O * sizeof(float)),
                          "%s: the output depends on the padding", sets[k]);
            ck_assert_msg(!memcmp(dx[0], dx[1], B * T * I * sizeof(float)),
                          "%s: dx depends on the padding", sets[k]);
            ck_assert_msg(!memcmp(g[0], g[1], n[0] * sizeof(float)),
                          "%s (precision %d): the weight gradients depend "
                          "on the padding", sets[k], prec);
            for (size_t b = 0; b < B; b++)
                for (size_t t = (size_t)len[b]; t < T; t++)
                    for (size_t i = 0; i < I; i++)
                        ck_assert(dx[1][(b * T + t) * I + i] == 0.0f);
        }
    }
    ck_assert_int_eq(lstm_kernels_select(NULL), 0);
}
END_TEST

/* One layer, one step, no h0: the bf16 path is then the float path run on
 * x and W_ih rounded to bfloat16 (W_hh meets only h0 = 0): exactly, where
 * the set's bf16 GEMM is its float GEMM; to float rounding of the sums'
 * order where bfloat16 units add pairs (avx512bf16). */
START_TEST(lstm_bf16_first_step_exact)
{
    enum { B = 5, I = 37, H = 19 };
    lstm_params ps;
    lstm_lstm net;
    lstm_rng rng;
    new_lstm(&ps, &net, &rng, I, H, 1, 0.0f, 8);
    float x[B * I], xr[B * I], want[B * H];
    fill_randn(x, B * I, 9);
    net.precision = LSTM_BF16_MIXED;
    ck_assert_int_eq(lstm_lstm_forward(&net, x, NULL, NULL, NULL, B, 1, 0,
                                       NULL), 0);
    float got[B * H];
    memcpy(got, net.out, sizeof got);
    /* by hand: round x and W_ih, run in float */
    const lstm_param *w = lstm_params_find(&ps, "r.weight_ih_l0");
    ck_assert_ptr_nonnull(w);
    lstm__round_bf16(xr, x, B * I);
    lstm__round_bf16(ps.w + w->off, ps.w + w->off, w->numel);
    net.precision = LSTM_FP32;
    ck_assert_int_eq(lstm_lstm_forward(&net, xr, NULL, NULL, NULL, B, 1, 0,
                                       NULL), 0);
    memcpy(want, net.out, sizeof want);
    if (lstm__k()->gemm_bf16 == lstm__k()->gemm)
        ck_assert(memcmp(got, want, sizeof got) == 0);
    else
        assert_close(got, want, B * H, 1e-6, 1e-5, lstm__k()->name);
    /* the rounding did change the input (so the test means something) */
    ck_assert(memcmp(x, xr, sizeof x) != 0);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}
END_TEST

/* One step from a given h0, bf16: the tuned kernels (W_hh packed and
 * rounded by lstm.c) agree with the references (which round W_hh
 * themselves) to float precision; an unrounded W_hh is ~1e-3 off. */
START_TEST(lstm_bf16_tuned_vs_ref_one_step)
{
    enum { B = 6, I = 9, H = 40 };
    lstm_params ps;
    lstm_lstm net;
    lstm_rng rng;
    new_lstm(&ps, &net, &rng, I, H, 1, 0.0f, 12);
    net.precision = LSTM_BF16_MIXED;
    static float x[B * I], h0[B * H], dout[B * H], y[2][B * H], dh0[2][B * H];
    fill_randn(x, B * I, 1);
    fill_randn(h0, B * H, 2);
    fill_randn(dout, B * H, 3);
    for (int ref = 0; ref < 2; ref++) {
        lstm_kernels_use_ref(ref);
        ck_assert_int_eq(lstm_lstm_forward(&net, x, NULL, h0, NULL, B, 1, 0,
                                           NULL), 0);
        memcpy(y[ref], net.out, sizeof y[ref]);
        ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, NULL, NULL,
                                            dh0[ref], NULL), 0);
    }
    lstm_kernels_use_ref(0);
    assert_close(y[0], y[1], B * H, 1e-6, 1e-5, "bf16 y, tuned vs ref");
    ck_assert_msg(rel_dist(dh0[0], dh0[1], B * H) < 2e-4, "dh0 %g",
                  rel_dist(dh0[0], dh0[1], B * H));
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}
END_TEST

/* bf16-mixed against float on a 2-layer LSTM with lengths, h0 and c0:
 * outputs, final states, every weight gradient and dx stay within a bound
 * a few bfloat16 steps wide, and do differ (the rounding is in effect). */
START_TEST(lstm_bf16_error_bound)
{
    enum { B = 4, T = 30, I = 13, H = 24, L = 2 };
    lstm_params ps;
    lstm_lstm net;
    lstm_rng rng;
    new_lstm(&ps, &net, &rng, I, H, L, 0.0f, 21);
    static float x[B * T * I], h0[L * B * H], c0[L * B * H], dout[B * T * H];
    static float dhn[L * B * H], out[2][B * T * H], hn[2][L * B * H];
    static float cn[2][L * B * H], dx[2][B * T * I], dh0[2][L * B * H];
    fill_randn(x, B * T * I, 1);
    fill_randn(h0, L * B * H, 2);
    fill_randn(c0, L * B * H, 3);
    fill_randn(dout, B * T * H, 4);
    fill_randn(dhn, L * B * H, 5);
    int32_t len[B] = {30, 11, 1, 24};
    float *g[2];
    for (int p = 0; p < 2; p++) {
        net.precision = p ? LSTM_BF16_MIXED : LSTM_FP32;
        ck_assert_int_eq(lstm_lstm_forward(&net, x, len, h0, c0, B, T, 1,
                                           NULL), 0);
        memcpy(out[p], net.out, sizeof out[p]);
        memcpy(hn[p], net.hn, sizeof hn[p]);
        memcpy(cn[p], net.cn, sizeof cn[p]);
        lstm_params_zero_grad(&ps);
        ck_assert_int_eq(lstm_lstm_backward(&net, dout, dhn, NULL, dx[p],
                                            dh0[p], NULL), 0);
        g[p] = malloc(ps.n * sizeof(float));
        memcpy(g[p], ps.g, ps.n * sizeof(float));
    }
    struct { const char *what; const float *a, *b; size_t n; } cmp[] = {
        {"out", out[1], out[0], B * T * H}, {"hn", hn[1], hn[0], L * B * H},
        {"cn", cn[1], cn[0], L * B * H}, {"dx", dx[1], dx[0], B * T * I},
        {"dh0", dh0[1], dh0[0], L * B * H}};
    for (size_t k = 0; k < sizeof cmp / sizeof *cmp; k++) {
        double d = rel_dist(cmp[k].a, cmp[k].b, cmp[k].n);
        ck_assert_msg(d < BF16_BOUND && d > 1e-5, "%s: bf16 vs fp32 %g",
                      cmp[k].what, d);
    }
    for (size_t i = 0; i < ps.np; i++) {
        const lstm_param *p = &ps.p[i];
        double d = rel_dist(g[1] + p->off, g[0] + p->off, p->numel);
        ck_assert_msg(d < BF16_BOUND && d > 1e-5, "grad %s: bf16 vs fp32 %g",
                      p->name, d);
    }
    free(g[0]);
    free(g[1]);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}
END_TEST

START_TEST(classifier_errors)
{
    lstm_classifier m;
    lstm_classifier_config bad = {1, 4, 3, 1, 3, {8}, 1, 0.0f, 0, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    ck_assert_int_eq(lstm_classifier_init(&m, &bad), LSTM_EINVAL);
    lstm_classifier_config cfg = {10, 4, 3, 1, 3, {8}, 1, 0.0f, 7, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), LSTM_EINVAL);
    cfg.pool = LSTM_POOL_LAST;
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    lstm_rng rng;
    lstm_rng_seed(&rng, 1);
    lstm_classifier_reset(&m, &rng);
    int32_t ids[4] = {2, 3, 4, 10}, len[2] = {2, 0}, y[2] = {0, 3};
    float loss;
    ck_assert_int_eq(lstm_classifier_backward(&m, y), LSTM_EINVAL);
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, 2, 2, y, &loss, 0,
                                             NULL), LSTM_EINVAL);
    len[1] = 2;
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, 2, 2, y, &loss, 0,
                                             NULL), LSTM_ERANGE);
    ck_assert(strstr(lstm_errmsg(), "token id 10") != NULL);
    ids[3] = 1;
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, 2, 2, y, &loss, 0,
                                             NULL), LSTM_ERANGE);
    ck_assert(strstr(lstm_errmsg(), "label 3") != NULL);
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, 2, 2, NULL, NULL, 0,
                                             NULL), LSTM_OK);
    ck_assert_int_eq(lstm_classifier_backward(&m, y), LSTM_ERANGE);
    lstm_classifier_free(&m);
}
END_TEST

/* lstm_classifier_zero_grad after a backward, with since_backward, zeroes
 * only the embedding tables' rows of its ids (and every other parameter),
 * the rows lstm_classifier_grad_rows lists:
 * every gradient is zero after it (the embedding and the wide table,
 * whose other rows it leaves alone, had none); after another forward it
 * zeroes everything, since that forward's ids are not the backward's. */
START_TEST(classifier_zero_grad_rows)
{
    lstm_classifier m;
    lstm_classifier_config cfg = {50, 8, 6, 1, 3, {5}, 1, 0.0f,
                                  LSTM_POOL_MEAN, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 1, 0.5f};
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    lstm_rng rng;
    lstm_rng_seed(&rng, 4);
    lstm_classifier_reset(&m, &rng);
    int32_t ids[2 * 5] = {3, 7, 7, 49, 0, 12, 3, 0, 0, 0}, len[2] = {4, 2};
    int32_t y[2] = {0, 2};
    float loss;
    lstm_params_zero_grad(&m.ps);
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, 2, 5, y, &loss, 1,
                                             &rng), 0);
    ck_assert_int_eq(lstm_classifier_backward(&m, y), 0);
    size_t nz = 0;
    for (size_t i = 0; i < m.ps.n; i++)
        nz += m.ps.g[i] != 0.0f;
    ck_assert_uint_gt(nz, 0);
    /* what lstm_classifier_grad_rows says: both tables, zero outside the
     * rows of ids */
    lstm_sparse_rows tab[2];
    ck_assert_uint_eq(lstm_classifier_grad_rows(&m, tab), 2);
    ck_assert_uint_eq(tab[0].off, m.emb.off_w);
    ck_assert_uint_eq(tab[1].off, m.wide.off_w);
    for (int j = 0; j < 2; j++) {
        ck_assert(tab[j].ids == m.ids && tab[j].nids == 10);
        ck_assert_uint_eq(tab[j].rows, 50);
        for (size_t r = 0; r < tab[j].rows; r++) {
            int listed = 0;
            for (size_t k = 0; k < 10; k++)
                listed |= (size_t)ids[k] == r;
            for (size_t c = 0; c < tab[j].cols && !listed; c++)
                ck_assert(m.ps.g[tab[j].off + r * tab[j].cols + c] == 0.0f);
        }
    }
    const size_t far = m.emb.off_w + 20 * m.emb.E;  /* row 20: not in ids */
    lstm_classifier_zero_grad(&m, 1);
    for (size_t i = 0; i < m.ps.n; i++)
        ck_assert_msg(m.ps.g[i] == 0.0f, "gradient %zu left at %g", i,
                      (double)m.ps.g[i]);
    /* rows the backward did not write are not touched */
    m.ps.g[far] = 1.0f;
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, 2, 5, y, &loss, 1,
                                             &rng), 0);
    ck_assert_int_eq(lstm_classifier_backward(&m, y), 0);
    lstm_classifier_zero_grad(&m, 1);
    ck_assert(m.ps.g[far] == 1.0f);
    /* a forward since the backward: everything */
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, 2, 5, NULL, NULL, 0,
                                             NULL), 0);
    ck_assert_uint_eq(lstm_classifier_grad_rows(&m, tab), 0);
    lstm_classifier_zero_grad(&m, 1);
    ck_assert(m.ps.g[far] == 0.0f);
    lstm_classifier_free(&m);
}
END_TEST

/* A bidirectional LSTM's forward and backward (out, hn, every gradient, dx)
 * on 1 and 2 threads, by rows (B=3) and by hidden units (B=1, H=32), in
 * fp32 and bf16-mixed: the same bits; bf16-mixed near fp32; no streaming. */
static void bi_run(int threads, int prec, size_t B, float *res, size_t *nres)
{
    enum { T = 7, I = 5, H = 32, L = 2 };
    lstm_set_threads(threads);
    lstm_params ps;
    lstm_lstm net;
    lstm_params_init(&ps);
    ck_assert_int_eq(lstm_lstm_init_bidirectional(&net, &ps, "bi", I, H, L,
                                                  0.3f), 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    lstm_rng rng;
    lstm_rng_seed(&rng, 3);
    lstm_lstm_reset(&net, &rng);
    net.precision = prec;
    float x[3 * T * I], dout[3 * T * 2 * H], dx[3 * T * I];
    int32_t len[3] = {7, 2, 5};
    fill_randn(x, B * T * I, 4);
    fill_randn(dout, B * T * 2 * H, 5);
    ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, B, T, 1,
                                       &rng), 0);
    lstm_params_zero_grad(&ps);
    ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, NULL, dx, NULL,
                                        NULL), 0);
    size_t n = 0;
    memcpy(res + n, net.out, B * T * 2 * H * sizeof *res), n += B * T * 2 * H;
    memcpy(res + n, net.hn, 2 * L * B * H * sizeof *res), n += 2 * L * B * H;
    memcpy(res + n, dx, B * T * I * sizeof *res), n += B * T * I;
    memcpy(res + n, ps.g, ps.n * sizeof *res), n += ps.n;
    *nres = n;
    lstm_stream st;
    ck_assert_int_eq(lstm_stream_init(&st, &net, 1), LSTM_EINVAL);
    ck_assert(strstr(lstm_errmsg(), "bidirectional"));
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
    lstm_set_threads(0);
}

START_TEST(bilstm_threads_and_bf16)
{
    static float a[200000], b[200000], f[200000];
    /* with OpenBLAS doing the GEMMs (the avx2 and generic sets), the rows
     * a call gets can move a sum's last bit: the same to float rounding
     * there, the same bits with the library's own GEMM */
    const int exact = lstm__k()->gemm != lstm__gemm_blas;
    for (size_t B = 1; B <= 3; B += 2) {
        size_t na, nb, nf = 0;
        for (int prec = 0; prec < 2; prec++) {
            bi_run(1, prec, B, a, &na);
            bi_run(2, prec, B, b, &nb);
            ck_assert_uint_eq(na, nb);
            if (exact)
                ck_assert_msg(memcmp(a, b, na * sizeof *a) == 0,
                              "B=%zu precision %d: 1 and 2 threads differ", B,
                              prec);
            else
                ck_assert_msg(rel_dist(a, b, na) < 1e-6, "B=%zu precision %d: "
                              "1 and 2 threads %g apart", B, prec,
                              rel_dist(a, b, na));
            if (prec == 0)
                memcpy(f, a, na * sizeof *a), nf = na;
        }
        double d = rel_dist(a, f, nf);  /* bf16-mixed against fp32 */
        ck_assert_msg(d < 1e-2 && d > 1e-5, "B=%zu: bf16 vs fp32 %g", B, d);
    }
}
END_TEST

/* A 2-layer bidirectional GRU's forward and backward on 1 and 2 threads:
 * the same results (the same bits with the library's own GEMM); and what
 * a GRU refuses: a cell state, bf16-mixed, streaming. */
START_TEST(gru_threads_and_refusals)
{
    enum { B = 5, T = 9, I = 6, H = 20, L = 2 };
    static float x[B * T * I], dout[B * T * 2 * H], dx[2][B * T * I];
    static float out[2][B * T * 2 * H], g[2][40000];
    const int32_t len[B] = {9, 3, 7, 1, 9};
    const int exact = lstm__k()->gemm != lstm__gemm_blas;
    fill_randn(x, B * T * I, 1);
    fill_randn(dout, B * T * 2 * H, 2);
    size_t n = 0;
    for (int nt = 1; nt <= 2; nt++) {
        lstm_set_threads(nt);
        lstm_params ps;
        lstm_lstm net;
        lstm_rng rng;
        lstm_rng_seed(&rng, 3);
        lstm_params_init(&ps);
        ck_assert_int_eq(lstm_gru_init_bidirectional(&net, &ps, "g", I, H, L,
                                                     0.3f), 0);
        ck_assert_int_eq(lstm_params_alloc(&ps), 0);
        lstm_lstm_reset(&net, &rng);
        n = ps.n;
        ck_assert_uint_le(n, sizeof g[0] / sizeof g[0][0]);
        ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, B, T, 1,
                                           &rng), 0);
        ck_assert_ptr_null(net.cn);
        memcpy(out[nt - 1], net.out, sizeof out[0]);
        lstm_params_zero_grad(&ps);
        ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, NULL,
                                            dx[nt - 1], NULL, NULL), 0);
        memcpy(g[nt - 1], ps.g, n * sizeof *ps.g);
        if (nt == 2) {
            float c0[2 * L * B * H] = {0};
            ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, c0, B, T,
                                               0, NULL), LSTM_EINVAL);
            ck_assert(strstr(lstm_errmsg(), "no cell state") != NULL);
            ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, c0, NULL,
                                                NULL, NULL), LSTM_EINVAL);
            lstm_stream st;
            ck_assert_int_eq(lstm_stream_init(&st, &net, 1), LSTM_EINVAL);
            net.precision = LSTM_BF16_MIXED;
            ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, B, T,
                                               0, NULL), LSTM_EINVAL);
            ck_assert(strstr(lstm_errmsg(), "fp32 only") != NULL);
        }
        lstm_lstm_free(&net);
        lstm_params_free(&ps);
    }
    lstm_set_threads(0);
    const float *a[3] = {out[0], dx[0], g[0]}, *b[3] = {out[1], dx[1], g[1]};
    const size_t sz[3] = {B * T * 2 * H, B * T * I, n};
    for (int k = 0; k < 3; k++)
        if (exact)
            ck_assert_msg(memcmp(a[k], b[k], sz[k] * sizeof(float)) == 0,
                          "array %d: 1 and 2 threads differ", k);
        else
            ck_assert_msg(rel_dist(a[k], b[k], sz[k]) < 1e-6,
                          "array %d: 1 and 2 threads %g apart", k,
                          rel_dist(a[k], b[k], sz[k]));
}
END_TEST

/* Other processes keeping every CPU busy make the library run fewer
 * threads than configured; that never changes a bit, whatever the kernel
 * set (the GEMMs' row blocks follow the configured count). */
START_TEST(load_changes_no_bit)
{
    static float a[200000], b[200000];
    size_t na, nb;
    bi_run(2, LSTM_FP32, 3, a, &na);
    int kids[64];
    const long n = busy_start(kids);
    bi_run(2, LSTM_FP32, 3, b, &nb);
    busy_stop(kids, n);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na * sizeof *a) == 0, "%s: the load changed "
                  "the result", lstm_kernels_name());
}
END_TEST

/* Trains a small classifier for a few AdamW steps with dropout; returns its
 * weights (caller frees). */
static float *train_small(int threads, size_t *n)
{
    lstm_set_threads(threads);
    enum { B = 5, T = 40 };
    lstm_classifier_config cfg = {50, 16, 24, 2, 4, {32, 16}, 2, 0.2f,
                                  LSTM_POOL_MEAN, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    lstm_classifier m;
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    lstm_rng rng;
    lstm_rng_seed(&rng, 42);
    lstm_classifier_reset(&m, &rng);
    lstm_adamw opt;
    ck_assert_int_eq(lstm_adamw_init(&opt, m.ps.n, 1e-2, 0.9, 0.999, 1e-8,
                                     1e-5), 0);
    int32_t ids[B * T], len[B] = {40, 17, 3, 40, 29}, y[B] = {0, 1, 2, 3, 1};
    for (size_t i = 0; i < B * T; i++)
        ids[i] = (int32_t)(lstm_rng_below(&rng, 48) + 2);
    for (int step = 0; step < 4; step++) {
        float loss;
        lstm_params_zero_grad(&m.ps);
        ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, B, T, y, &loss,
                                                 1, &rng), 0);
        ck_assert(isfinite(loss));
        ck_assert_int_eq(lstm_classifier_backward(&m, y), 0);
        lstm_adamw_step(&opt, m.ps.w, m.ps.g);
    }
    *n = m.ps.n;
    float *w = malloc(*n * sizeof *w);
    memcpy(w, m.ps.w, *n * sizeof *w);
    lstm_adamw_free(&opt);
    lstm_classifier_free(&m);
    lstm_set_threads(0);
    return w;
}

/* The memory a configuration will need, told before anything is made,
 * is what the classifier then holds after a training step. */
START_TEST(classifier_memory_known_before)
{
    enum { LSTM = LSTM_CELL_LSTM, GRU = LSTM_CELL_GRU, BF16 = LSTM_BF16_MIXED,
           F32 = LSTM_FP32, LAST = LSTM_POOL_LAST, MEAN = LSTM_POOL_MEAN,
           MAX = LSTM_POOL_MAX };
    const lstm_classifier_config cfgs[9] = {
        {50, 8, 6, 2, 3, {10, 7}, 2, 0.1f, MAX, F32, 0, LSTM, 0, 0},
        {7, 3, 5, 1, 2, {4, 0}, 1, 0.0f, LAST, F32, 0, LSTM, 0, 0},
        {20, 5, 4, 3, 4, {0, 0}, 0, 0.2f, MEAN, F32, 0, LSTM, 0, 0},
        {50, 8, 6, 2, 3, {10, 7}, 2, 0.1f, MAX, BF16, 0, LSTM, 1, 0},
        {50, 8, 6, 2, 3, {10, 7}, 2, 0.1f, LAST, F32, 1, LSTM, 0, 0},
        {20, 5, 4, 3, 4, {9, 0}, 1, 0.2f, MAX, BF16, 1, LSTM, 0, 0},
        {50, 8, 6, 2, 3, {10, 7}, 2, 0.1f, MAX, F32, 0, GRU, 0, 0},
        {20, 5, 4, 3, 4, {9, 0}, 1, 0.2f, LAST, F32, 1, GRU, 1, 0},
        {30, 4, 3, 1, 5, {6, 0}, 1, 0.0f, MEAN, F32, 0, LSTM, 0, 2.0f}};
    for (int k = 0; k < 9; k++) {
        const lstm_classifier_config *cfg = &cfgs[k];
        lstm_classifier m;
        lstm_rng r;
        lstm_rng_seed(&r, 4);
        ck_assert_int_eq(lstm_classifier_init(&m, cfg), 0);
        size_t numel = 0;
        for (size_t i = 0; i < m.ps.np; i++)
            numel += m.ps.p[i].numel;
        ck_assert_uint_eq(lstm_classifier_params(cfg), numel);
        lstm_classifier_reset(&m, &r);
        const size_t B = 3, T = 5;
        int32_t ids[15], len[3] = {5, 2, 4}, y[3] = {0, 1, 1};
        for (int i = 0; i < 15; i++)
            ids[i] = 1 + i % 6;
        float loss;
        ck_assert_int_eq(lstm_classifier_forward(&m, ids, len, B, T, y, &loss,
                                                 1, &r), 0);
        ck_assert_int_eq(lstm_classifier_backward(&m, y), 0);
        ck_assert_uint_eq(lstm_classifier_memory(cfg, B, T),
                          m.ws_bytes + m.rnn.ws_bytes +
                              2 * m.ps.n * sizeof(float));
        lstm_classifier_free(&m);
    }
    lstm_classifier_config absurd = cfgs[0];
    absurd.V = (size_t)1 << 40;
    absurd.E = (size_t)1 << 40;
    ck_assert_uint_eq(lstm_classifier_params(&absurd), SIZE_MAX);
    ck_assert_uint_eq(lstm_classifier_memory(&absurd, 4, 4), SIZE_MAX);
}
END_TEST

/* Fewer sequences than threads: the threads share each layer's hidden
 * units (lib/nn/lstm.c rec_plan; H=48 gives them 16 and 32), and the results
 * are those of one thread, bit for bit: outputs, states, every gradient
 * and dx. Two threads: with three, OpenBLAS computes some rows of the
 * GEMMs split three ways with other last bits (the recurrence does not
 * change). _i: precision. */
START_TEST(lstm_units_plan_same_bits)
{
    enum { T = 9, I = 5, H = 48, L = 2 };
    {
        const size_t B = 1;
        float *res[2] = {NULL, NULL};
        size_t n = 0;
        for (int run = 0; run < 2; run++) {
            lstm_set_threads(run ? 1 : 2);
            lstm_params ps;
            lstm_lstm net;
            lstm_rng rng;
            new_lstm(&ps, &net, &rng, I, H, L, 0.3f, 5);
            net.precision = _i;
            float x[2 * T * I], dout[2 * T * H], dx[2 * T * I];
            fill_randn(x, B * T * I, 6);
            fill_randn(dout, B * T * H, 7);
            int32_t len[2] = {T, 4};
            ck_assert_int_eq(lstm_lstm_forward(&net, x, len, NULL, NULL, B, T,
                                               1, &rng), 0);
            lstm_params_zero_grad(&ps);
            ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, NULL, dx,
                                                NULL, NULL), 0);
            n = B * T * H + 2 * L * B * H + ps.n + B * T * I;
            float *r = res[run] = malloc(n * sizeof *r);
            memcpy(r, net.out, B * T * H * sizeof *r);
            memcpy(r + B * T * H, net.hn, L * B * H * sizeof *r);
            memcpy(r + B * T * H + L * B * H, net.cn, L * B * H * sizeof *r);
            memcpy(r + B * T * H + 2 * L * B * H, ps.g, ps.n * sizeof *r);
            memcpy(r + n - B * T * I, dx, B * T * I * sizeof *r);
            lstm_lstm_free(&net);
            lstm_params_free(&ps);
        }
        lstm_set_threads(0);
        ck_assert_msg(memcmp(res[0], res[1], n * sizeof(float)) == 0,
                      "B=%zu: 2 threads differ from 1", B);
        free(res[0]);
        free(res[1]);
    }
}
END_TEST

/* The library's team barrier: no thread passes crossing c before every
 * thread has reached it, over many crossings, both when the threads
 * arrive together (the spinning path) and when one of them comes late by
 * far more than the spin time (the sleeping path). */
START_TEST(team_barrier_holds)
{
#ifdef _OPENMP
    enum { NT = 3, CROSS = 2000 };
    lstm__barrier bar;
    lstm__barrier_init(&bar, NT);
    _Atomic int arrived[CROSS];
    for (int c = 0; c < CROSS; c++)
        atomic_init(&arrived[c], 0);
    int bad = 0, team = 0;
#pragma omp parallel num_threads(NT) reduction(+ : bad)
    {
#pragma omp single
        team = omp_get_num_threads();
        if (team == NT)
            for (int c = 0; c < CROSS; c++) {
                if (c % 500 == 7 && omp_get_thread_num() == c % NT) {
                    struct timespec d = {0, 2000000};  /* 2 ms late */
                    nanosleep(&d, NULL);
                }
                atomic_fetch_add(&arrived[c], 1);
                lstm__barrier_wait(&bar);
                bad += atomic_load(&arrived[c]) != NT;
            }
    }
    if (team != NT) {
        printf("team_barrier_holds: skipped, OpenMP gave %d threads\n", team);
        return;
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_uint_eq(atomic_load(&bar.arrived), 0);
    ck_assert_uint_eq(atomic_load(&bar.sleepers), 0);
#endif
}
END_TEST

START_TEST(same_seed_same_bits)
{
    size_t n1, n2, n3;
    float *a = train_small(2, &n1), *b = train_small(2, &n2);
    float *c = train_small(1, &n3);
    ck_assert_uint_eq(n1, n2);
    ck_assert(memcmp(a, b, n1 * sizeof *a) == 0);
    /* the recurrence is split by sequence and GEMMs by rows of the output,
     * so each number is computed the same way on any thread count */
    ck_assert(memcmp(a, c, n1 * sizeof *a) == 0);
    free(a);
    free(b);
    free(c);
}
END_TEST

Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("properties and errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, embedding_errors);
    tcase_add_test(tc, embedding_threads_same_bits);
    tcase_add_test(tc, bilstm_threads_and_bf16);
    tcase_add_test(tc, gru_threads_and_refusals);
    tcase_add_test(tc, load_changes_no_bit);
    tcase_add_test(tc, logsoftmax_properties);
    tcase_add_test(tc, lstm_errors);
    tcase_add_loop_test(tc, lstm_lengths, LSTM_FP32, LSTM_BF16_MIXED + 1);
    tcase_add_test(tc, lstm_phase_times);
    tcase_add_loop_test(tc, padding_never_reaches_results, 0, 3);
    tcase_add_test(tc, lstm_bf16_first_step_exact);
    tcase_add_test(tc, lstm_bf16_error_bound);
    tcase_add_test(tc, lstm_bf16_tuned_vs_ref_one_step);
    tcase_add_loop_test(tc, lstm_units_plan_same_bits, LSTM_FP32,
                        LSTM_BF16_MIXED + 1);
    tcase_add_test(tc, classifier_errors);
    tcase_add_test(tc, classifier_zero_grad_rows);
    tcase_add_test(tc, same_seed_same_bits);
    tcase_add_test(tc, team_barrier_holds);
    tcase_add_test(tc, classifier_memory_known_before);
    suite_add_tcase(s, tc);
    return s;
}
