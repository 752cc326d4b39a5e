/*
 * testutil.h - what the Check suites share: fixture files, closeness
 * checks with a report of the worst element, and the suite list.
 */
#ifndef LSTM_TESTUTIL_H
#define LSTM_TESTUTIL_H

#include <check.h>
#include <stddef.h>

#include "lstm.h"

/* A fixture file written by tests/gen_fixtures.py. */
typedef struct {
    char name[64];
    int ndim;
    size_t shape[LSTM_MAXDIM];
    size_t numel;
    float *data;
} fx_tensor;

typedef struct {
    fx_tensor *t;
    size_t n;
} fx_file;

/* Loads tests/fixtures/<name> (or $LSTM_FIXTURES/<name>); fails the test
 * when it is missing or malformed. */
void fx_load(fx_file *f, const char *name);
/* The tensor called name; fails the test when absent or of another size. */
const float *fx_get(const fx_file *f, const char *name, size_t numel);
int fx_has(const fx_file *f, const char *name);
void fx_free(fx_file *f);

/* Largest |a-b| / (atol + rtol*|b|) over n elements: <= 1 means close. */
double close_ratio(const float *a, const float *b, size_t n, double atol,
                   double rtol, size_t *worst);
/* ck_assert that a and b are close, naming what and the worst element. */
#define assert_close(a, b, n, atol, rtol, what)                               \
    do {                                                                      \
        size_t w_;                                                            \
        double r_ = close_ratio((a), (b), (n), (atol), (rtol), &w_);          \
        ck_assert_msg(r_ <= 1.0,                                              \
                      "%s: element %zu is %.9g, expected %.9g (ratio %.3g)",  \
                      (what), w_, (double)(a)[w_], (double)(b)[w_], r_);      \
    } while (0)

/* Keeps every CPU busy with spinning child processes (at most 64) until
 * busy_stop; waits past the 10 ms for which the library keeps its reading
 * of the free CPUs. Returns how many it started. */
long busy_start(int *kids);
void busy_stop(const int *kids, long n);

/* Replaces the first `from` in the JSON header of the safetensors file at
 * path with `to` (the header's length follows; tensor offsets are relative
 * to the data, so the file stays valid): a tampered checkpoint. Fails the
 * test when `from` is not in the header. */
void st_patch(const char *path, const char *from, const char *to);

/* ||a - b|| / ||b|| in 2-norm (in double; ||b|| = 0 counts as 1). */
double rel_dist(const float *a, const float *b, size_t n);
void fill_randn(float *x, size_t n, uint64_t seed);
/* sum(r*x) in double */
double dot_d(const float *r, const float *x, size_t n);

Suite *tensor_suite(void);
Suite *kernels_suite(void);
Suite *layers_suite(void);
Suite *gradcheck_suite(void);
Suite *golden_suite(void);
Suite *alloc_suite(void);
Suite *data_suite(void);
Suite *cli_suite(void);
Suite *train_suite(void);

#endif
