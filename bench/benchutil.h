/*
 * benchutil.h - what the benchmark drivers share: a monotonic clock and the
 * median of repeated timings.
 */
#ifndef LSTM_BENCHUTIL_H
#define LSTM_BENCHUTIL_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of x[0..n); sorts x. */
static inline double bench_median(double *x, size_t n)
{
    qsort(x, n, sizeof *x, bench_cmp);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

#endif
