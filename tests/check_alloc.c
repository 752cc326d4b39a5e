/*
 * check_alloc.c - allocation failure injected at every allocation of a
 * classifier's life (init, forward, backward, optimizer, a larger second
 * batch): each failure must come back as LSTM_ENOMEM, and once everything
 * is freed no block may be left behind.
 */
#include <string.h>

#include "testutil.h"

/* One life of a classifier; returns the first error, or 0. */
static int life(void)
{
    lstm_classifier_config cfg = {30, 8, 6, 2, 3, {10, 7}, 2, 0.1f,
                                  LSTM_POOL_MAX};
    lstm_classifier m;
    lstm_adamw opt;
    lstm_rng rng;
    lstm_rng_seed(&rng, 1);
    int32_t ids[4 * 9], len[4] = {9, 4, 1, 7}, y[4] = {0, 2, 1, 1};
    for (size_t i = 0; i < 36; i++)
        ids[i] = (int32_t)(i % 28 + 2);
    float loss;
    int err = lstm_classifier_init(&m, &cfg);
    if (err)
        return err;
    lstm_classifier_reset(&m, &rng);
    err = lstm_adamw_init(&opt, m.ps.n, 1e-3, 0.9, 0.999, 1e-8, 0.0);
    if (err)
        goto out_model;
    for (size_t B = 2; B <= 4 && !err; B += 2) {  /* the workspace grows */
        err = lstm_classifier_forward(&m, ids, len, B, 9, y, &loss, 1, &rng);
        if (!err)
            err = lstm_classifier_backward(&m, y);
        if (!err)
            lstm_adamw_step(&opt, m.ps.w, m.ps.g);
    }
    lstm_adamw_free(&opt);
out_model:
    lstm_classifier_free(&m);
    return err;
}

START_TEST(every_allocation_fails_cleanly)
{
    const long base = lstm_debug_live_allocs();
    long n;
    for (n = 1; n < 1000; n++) {
        lstm_debug_fail_alloc(n);
        int err = life();
        lstm_debug_fail_alloc(0);
        ck_assert_msg(lstm_debug_live_allocs() == base,
                      "failure at allocation %ld leaked %ld blocks", n,
                      lstm_debug_live_allocs() - base);
        if (err == LSTM_OK)
            break;  /* n is past the last allocation */
        ck_assert_msg(err == LSTM_ENOMEM, "failure at allocation %ld gave %s",
                      n, lstm_strerror(err));
    }
    ck_assert_msg(n > 5 && n < 1000, "only %ld allocations seen", n);
}
END_TEST

Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("failure injection");
    tcase_add_test(tc, every_allocation_fails_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
