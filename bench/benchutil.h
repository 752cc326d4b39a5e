/*
 * benchutil.h - what the benchmark drivers share: a monotonic clock and the
 * median of repeated timings, and the CPU's name.
 */
#ifndef LSTM_BENCHUTIL_H
#define LSTM_BENCHUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The CPU's model name from /proc/cpuinfo ("unknown CPU" elsewhere), with
 * no quotes or backslashes (it goes into JSON). */
static inline const char *bench_cpu(void)
{
    static char name[128] = "unknown CPU";
    char line[256];
    FILE *fp = fopen("/proc/cpuinfo", "r");
    while (fp && fgets(line, sizeof line, fp)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon)
            continue;
        snprintf(name, sizeof name, "%s", colon + 2);
        name[strcspn(name, "\n")] = '\0';
        for (char *p = name; *p; p++)
            *p = *p == '"' || *p == '\\' ? ' ' : *p;
        break;
    }
    if (fp)
        fclose(fp);
    return name;
}

#endif
