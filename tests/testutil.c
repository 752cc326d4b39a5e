/*
 * testutil.c - fixture reader and comparison helpers for the suites.
 */
#define _DEFAULT_SOURCE  /* usleep */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static int rd(FILE *fp, void *p, size_t n) { return fread(p, 1, n, fp) == n; }

void fx_load(fx_file *f, const char *name)
{
    const char *dir = getenv("LSTM_FIXTURES");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures", name);
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open fixture %s (run from the top "
                  "folder or set LSTM_FIXTURES)", path);
    char magic[8];
    uint32_t count;
    ck_assert_msg(rd(fp, magic, 8) && memcmp(magic, "LSTMFIX1", 8) == 0 &&
                      rd(fp, &count, 4) && count < 1000,
                  "%s: bad header", path);
    f->t = calloc(count, sizeof *f->t);
    f->n = count;
    for (uint32_t i = 0; i < count; i++) {
        fx_tensor *t = &f->t[i];
        uint32_t len, ndim, dim;
        ck_assert_msg(rd(fp, &len, 4) && len < sizeof t->name &&
                          rd(fp, t->name, len) && rd(fp, &ndim, 4) &&
                          ndim <= LSTM_MAXDIM,
                      "%s: bad tensor header %u", path, i);
        t->ndim = (int)ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            ck_assert(rd(fp, &dim, 4));
            t->shape[d] = dim;
            t->numel *= dim;
        }
        t->data = malloc(t->numel * sizeof(float) + 1);
        ck_assert_msg(rd(fp, t->data, t->numel * sizeof(float)),
                      "%s: %s truncated", path, t->name);
    }
    fclose(fp);
}

int fx_has(const fx_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return 1;
    return 0;
}

const float *fx_get(const fx_file *f, const char *name, size_t numel)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) {
            ck_assert_msg(f->t[i].numel == numel,
                          "fixture %s has %zu elements, expected %zu", name,
                          f->t[i].numel, numel);
            return f->t[i].data;
        }
    ck_abort_msg("fixture tensor %s missing", name);
    return NULL;
}

void fx_free(fx_file *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->t[i].data);
    free(f->t);
    memset(f, 0, sizeof *f);
}

double close_ratio(const float *a, const float *b, size_t n, double atol,
                   double rtol, size_t *worst)
{
    double r = 0.0;
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        double q = e / (atol + rtol * fabs((double)b[i]));
        if (!(q <= r)) {  /* catches NaN too */
            r = isnan(q) ? (double)INFINITY : q;
            *worst = i;
        }
    }
    return r;
}

double rel_dist(const float *a, const float *b, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = (double)a[i] - (double)b[i];
        d += e * e;
        s += (double)b[i] * (double)b[i];
    }
    return sqrt(d / (s > 0 ? s : 1));
}

void fill_randn(float *x, size_t n, uint64_t seed)
{
    lstm_rng r;
    lstm_rng_seed(&r, seed);
    lstm_fill_normal(x, n, 0.0f, 1.0f, &r);
}

double dot_d(const float *r, const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * (double)x[i];
    return s;
}

void st_patch(const char *path, const char *from, const char *to)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "%s: cannot open", path);
    fseek(fp, 0, SEEK_END);
    size_t n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc(n + 1);
    ck_assert(b && fread(b, 1, n, fp) == n);
    fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | (unsigned char)b[i];
    ck_assert(8 + hl <= n);
    char save = b[8 + hl];
    b[8 + hl] = '\0';
    char *at = strstr(b + 8, from);
    ck_assert_msg(at != NULL, "%s: '%s' not in the header", path, from);
    b[8 + hl] = save;
    const size_t lf = strlen(from), lt = strlen(to);
    hl = hl - lf + lt;
    fp = fopen(path, "wb");
    ck_assert(fp != NULL);
    for (int i = 0; i < 8; i++)
        fputc((int)(hl >> (8 * i) & 0xff), fp);
    fwrite(b + 8, 1, (size_t)(at - b - 8), fp);
    fwrite(to, 1, lt, fp);
    fwrite(at + lf, 1, n - (size_t)(at + lf - b), fp);
    ck_assert(fclose(fp) == 0);
    free(b);
}

long busy_start(int *kids)
{
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const long n = ncpu < 1 ? 1 : ncpu < 64 ? ncpu : 64;
    for (long i = 0; i < n; i++) {
        kids[i] = (int)fork();
        ck_assert(kids[i] >= 0);
        if (kids[i] == 0)
            for (volatile unsigned long x = 0;; x++)
                ;
    }
    usleep(50000);
    return n;
}

void busy_stop(const int *kids, long n)
{
    for (long i = 0; i < n; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
}
