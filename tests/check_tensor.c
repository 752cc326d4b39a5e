/*
 * check_tensor.c - the random generator, tensors, the parameter block and
 * the error strings.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(rng_deterministic)
{
    lstm_rng a, b, c;
    lstm_rng_seed(&a, 42);
    lstm_rng_seed(&b, 42);
    lstm_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = lstm_rng_next(&a);
        ck_assert(x == lstm_rng_next(&b));
        differ |= x != lstm_rng_next(&c);
    }
    ck_assert(differ);
}
END_TEST

/* The stream itself: models trained with a seed stay reproducible across
 * versions. Dropout's masks are the decisions lstm_rng_uniform(r) < p of
 * the same stream, one draw per element, for any p (p * 2^53 a whole
 * number or not), and none for p = 0. */
START_TEST(rng_stream_and_dropout_draws)
{
    lstm_rng a, b;
    lstm_rng_seed(&a, 42);
    ck_assert(lstm_rng_next(&a) == 0x15780b2e0c2ec716ull);
    ck_assert(lstm_rng_next(&a) == 0x6104d9866d113a7eull);
    ck_assert(lstm_rng_next(&a) == 0xae17533239e499a1ull);
    const float ps[] = {0.5f, 0.2f, 1e-10f, 0.9999999f, 0.0f};
    enum { N = 4099 };
    static float x[N], y[N], mask[N];
    for (size_t k = 0; k < N; k++)
        x[k] = (float)k - 7.0f;
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) {
        const float p = ps[i], keep = 1.0f / (1.0f - p);
        lstm_rng_seed(&a, 5 + i);
        b = a;
        lstm_dropout_forward(y, mask, x, N, p, &a);
        for (size_t k = 0; k < N; k++) {
            const int drop = p > 0.0f && lstm_rng_uniform(&b) < (double)p;
            ck_assert(mask[k] == (drop ? 0.0f : keep));
            ck_assert(y[k] == x[k] * mask[k]);
        }
        ck_assert(memcmp(&a, &b, sizeof a) == 0);
    }
}
END_TEST

START_TEST(rng_distributions)
{
    lstm_rng r;
    lstm_rng_seed(&r, 7);
    const int n = 200000;
    double s = 0, s2 = 0, u = 0;
    for (int i = 0; i < n; i++) {
        double x = lstm_rng_normal(&r), v = lstm_rng_uniform(&r);
        ck_assert(v >= 0.0 && v < 1.0);
        s += x;
        s2 += x * x;
        u += v;
    }
    ck_assert(fabs(s / n) < 0.01);
    ck_assert(fabs(s2 / n - 1.0) < 0.02);
    ck_assert(fabs(u / n - 0.5) < 0.005);
    float w[1000];
    lstm_fill_uniform(w, 1000, -0.25f, 0.25f, &r);
    for (int i = 0; i < 1000; i++)
        ck_assert(w[i] >= -0.25f && w[i] <= 0.25f);
    size_t counts[5] = {0};
    for (int i = 0; i < 50000; i++)
        counts[lstm_rng_below(&r, 5)]++;
    for (int i = 0; i < 5; i++)
        ck_assert(counts[i] > 9000 && counts[i] < 11000);
}
END_TEST

START_TEST(rng_shuffle_is_permutation)
{
    lstm_rng r;
    lstm_rng_seed(&r, 1);
    size_t a[100], seen[100] = {0};
    for (size_t i = 0; i < 100; i++)
        a[i] = i;
    lstm_rng_shuffle(&r, a, 100);
    int moved = 0;
    for (size_t i = 0; i < 100; i++) {
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(seen[i], 1);
    ck_assert(moved > 50);
}
END_TEST

START_TEST(alloc_aligned_zeroed)
{
    /* 64-byte aligned and zeroed at any size (the kernels' vectors assume
     * the alignment); an impossible size fails with an error, not a crash */
    long live = lstm_debug_live_allocs();
    const size_t sizes[] = {0, 1, 15, 64, 1000, (size_t)3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = lstm_alloc(sizes[i]), any = 0;
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        for (size_t j = 0; j < sizes[i]; j++)
            any |= p[j];
        ck_assert_uint_eq(any, 0);
        memset(p, 0xff, sizes[i]);
        lstm_free(p);
    }
    ck_assert_ptr_null(lstm_alloc(SIZE_MAX - 8));
    ck_assert(strstr(lstm_errmsg(), "out of memory") != NULL);
    ck_assert_int_eq(lstm_debug_live_allocs(), live);
}
END_TEST

START_TEST(tensor_init_view_reshape)
{
    lstm_tensor t;
    size_t shape[3] = {2, 3, 4};
    long live = lstm_debug_live_allocs();
    ck_assert_int_eq(lstm_tensor_init(&t, 3, shape), LSTM_OK);
    ck_assert_uint_eq(t.numel, 24);
    for (size_t i = 0; i < 24; i++)
        ck_assert(t.data[i] == 0.0f);
    size_t flat[2] = {6, 4}, bad[2] = {5, 5};
    ck_assert_int_eq(lstm_tensor_reshape(&t, 2, flat), LSTM_OK);
    ck_assert_uint_eq(t.shape[0], 6);
    ck_assert_int_eq(lstm_tensor_reshape(&t, 2, bad), LSTM_EINVAL);
    ck_assert(strstr(lstm_errmsg(), "24") != NULL);
    lstm_tensor v = lstm_tensor_view(t.data + 4, 1, &flat[1]);
    ck_assert_int_eq(v.owner, 0);
    lstm_tensor_free(&v);  /* a view frees nothing */
    lstm_tensor_free(&t);
    ck_assert_int_eq(lstm_debug_live_allocs(), live);
    size_t five[5] = {1, 1, 1, 1, 1};
    ck_assert_int_eq(lstm_tensor_init(&t, 5, five), LSTM_EINVAL);
    size_t huge[2] = {SIZE_MAX / 2, 3};
    ck_assert_int_eq(lstm_tensor_init(&t, 2, huge), LSTM_EINVAL);
}
END_TEST

START_TEST(params_block)
{
    lstm_params ps;
    lstm_params_init(&ps);
    size_t s1[2] = {3, 5}, s2[1] = {7}, off1, off2, off3;
    ck_assert_int_eq(lstm_params_add(&ps, "a.weight", 2, s1, &off1), 0);
    ck_assert_int_eq(lstm_params_add(&ps, "a.bias", 1, s2, &off2), 0);
    ck_assert_int_eq(lstm_params_add(&ps, "a.bias", 1, s2, &off3), LSTM_EINVAL);
    char longname[100];
    memset(longname, 'x', 99);
    longname[99] = 0;
    ck_assert_int_eq(lstm_params_add(&ps, longname, 1, s2, &off3), LSTM_EINVAL);
    ck_assert_uint_eq(off1 % 16, 0);
    ck_assert_uint_eq(off2 % 16, 0);
    ck_assert(off2 >= off1 + 15);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    const lstm_param *p = lstm_params_find(&ps, "a.bias");
    ck_assert(p != NULL && p->numel == 7);
    ck_assert(lstm_params_find(&ps, "nope") == NULL);
    lstm_tensor w = lstm_params_weight(&ps, p), g = lstm_params_grad(&ps, p);
    ck_assert(w.data == ps.w + off2 && g.data == ps.g + off2);
    g.data[3] = 1.0f;
    lstm_params_zero_grad(&ps);
    ck_assert(g.data[3] == 0.0f);
    lstm_params_free(&ps);
}
END_TEST

START_TEST(grad_norm_and_guard)
{
    lstm_params ps;
    lstm_params_init(&ps);
    size_t s1[1] = {3}, s2[1] = {2}, off;
    ck_assert_int_eq(lstm_params_add(&ps, "a", 1, s1, &off), 0);
    ck_assert_int_eq(lstm_params_add(&ps, "b", 1, s2, &off), 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    float *ga = ps.g + ps.p[0].off, *gb = ps.g + ps.p[1].off;
    ga[0] = 3.0f, ga[1] = 0.0f, ga[2] = 0.0f, gb[0] = 0.0f, gb[1] = 4.0f;
    ck_assert(fabs(lstm_params_grad_norm(&ps) - 5.0) < 1e-12);
    ck_assert(lstm_params_nonfinite(&ps, 1) == NULL);
    /* under the limit nothing changes; over it, scaled to the limit */
    ck_assert(fabs(lstm_params_clip_grad_norm(&ps, 10.0) - 5.0) < 1e-12);
    ck_assert(ga[0] == 3.0f);
    ck_assert(fabs(lstm_params_clip_grad_norm(&ps, 1.0) - 5.0) < 1e-12);
    ck_assert(fabs(lstm_params_grad_norm(&ps) - 1.0) < 1e-6);
    gb[1] = NAN;
    ck_assert(!isfinite(lstm_params_grad_norm(&ps)));
    ck_assert_str_eq(lstm_params_nonfinite(&ps, 1)->name, "b");
    ck_assert(lstm_params_nonfinite(&ps, 0) == NULL);
    ga[2] = INFINITY;  /* the one nearest the output is named */
    ck_assert_str_eq(lstm_params_nonfinite(&ps, 1)->name, "b");
    gb[1] = 0.0f;
    ck_assert_str_eq(lstm_params_nonfinite(&ps, 1)->name, "a");
    lstm_params_free(&ps);
}
END_TEST

START_TEST(error_strings)
{
    ck_assert_str_eq(lstm_strerror(LSTM_OK), "success");
    ck_assert_str_eq(lstm_strerror(LSTM_ENOMEM), "out of memory");
    ck_assert_str_eq(lstm_strerror(-99), "unknown error");
    ck_assert_int_eq(lstm_error(LSTM_EFORMAT, "file %s line %d", "x.csv", 3),
                     LSTM_EFORMAT);
    ck_assert_str_eq(lstm_errmsg(), "file x.csv line 3");
}
END_TEST

Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, rng_deterministic);
    tcase_add_test(tc, rng_stream_and_dropout_draws);
    tcase_add_test(tc, rng_distributions);
    tcase_add_test(tc, rng_shuffle_is_permutation);
    tcase_add_test(tc, alloc_aligned_zeroed);
    tcase_add_test(tc, tensor_init_view_reshape);
    tcase_add_test(tc, params_block);
    tcase_add_test(tc, grad_norm_and_guard);
    tcase_add_test(tc, error_strings);
    suite_add_tcase(s, tc);
    return s;
}
