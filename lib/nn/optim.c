/*
 * optim.c - AdamW and SGD over a whole parameter block. The scalars are
 * computed in double, as torch.optim.AdamW computes them in Python, and
 * the per-element work is split across threads in contiguous chunks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int lstm_adamw_init(lstm_adamw *o, size_t n, double lr, double beta1,
                    double beta2, double eps, double weight_decay)
{
    memset(o, 0, sizeof *o);
    if (!(lr >= 0.0) || !(beta1 >= 0.0 && beta1 < 1.0) ||
        !(beta2 >= 0.0 && beta2 < 1.0) || !(eps > 0.0) ||
        !(weight_decay >= 0.0))
        return lstm_error(LSTM_EINVAL,
                          "adamw: lr %g beta1 %g beta2 %g eps %g wd %g out of "
                          "range",
                          lr, beta1, beta2, eps, weight_decay);
    o->m = lstm_alloc(n * sizeof(float));
    o->v = lstm_alloc(n * sizeof(float));
    if (!o->m || !o->v) {
        lstm_adamw_free(o);
        return LSTM_ENOMEM;
    }
    /* Written now, each thread its share of the step's: the first step
     * reads m and v before writing them, and a page first read is mapped
     * to the zero page, then copied on the write with a TLB flush on
     * every CPU of the process (in a profile of the news classifier's
     * first epoch, 3% of its time) */
#pragma omp parallel num_threads(lstm__threads_for(n * 8))
    {
        size_t i0, i1;
        lstm__share(n, &i0, &i1);
        memset(o->m + i0, 0, (i1 - i0) * sizeof(float));
        memset(o->v + i0, 0, (i1 - i0) * sizeof(float));
    }
    o->n = n;
    o->lr = lr;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    return LSTM_OK;
}

/* The update of w[i0,i1): inside a table, each run of rows of one kind
 * (live: listed in ids; dead: gradient +0, not read) at a time. */
static size_t adamw_range(const lstm__kernels *k, lstm_adamw *o, float *w,
                          const float *g, size_t i0, size_t i1,
                          const lstm_sparse_rows *tab,
                          unsigned char *const *live, size_t ntab,
                          const lstm__adamw_args *a)
{
    size_t bad = 0;
    while (i0 < i1) {
        size_t end = i1;
        int dead = 0;
        for (size_t j = 0; j < ntab; j++) {
            const size_t lo = tab[j].off;
            const size_t hi = lo + tab[j].rows * tab[j].cols;
            if (i0 < lo) {  /* before this table: stop at its start */
                end = end < lo ? end : lo;
            } else if (i0 < hi) {
                size_t r = (i0 - lo) / tab[j].cols;
                const unsigned char kind = live[j][r];
                while (++r < tab[j].rows && live[j][r] == kind)
                    ;
                dead = !kind;
                end = end < lo + r * tab[j].cols ? end : lo + r * tab[j].cols;
                break;
            }
        }
        bad += k->adamw(w + i0, o->m + i0, o->v + i0, dead ? NULL : g + i0,
                        end - i0, a);
        i0 = end;
    }
    return bad;
}

static size_t adamw_step(lstm_adamw *o, float *w, const float *g,
                         const lstm_sparse_rows *tab,
                         unsigned char *const *live, size_t ntab)
{
    o->step++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    const double bc2 = 1.0 - pow(o->beta2, (double)o->step);
    lstm__adamw_args a = {
        (float)(1.0 - o->lr * o->weight_decay), (float)o->beta1,
        (float)o->beta2, (float)(1.0 - o->beta1), (float)(1.0 - o->beta2),
        (float)(-(o->lr / bc1)), (float)sqrt(bc2), (float)o->eps,
    };
    const lstm__kernels *k = lstm__k();
    const size_t n = o->n;
    int nt = lstm__threads_for(n * 8);
    size_t bad = 0;
#pragma omp parallel num_threads(nt) reduction(+ : bad)
    {
        size_t i0, i1;
        lstm__share(n, &i0, &i1);
        lstm__ftz();
        bad += adamw_range(k, o, w, g, i0, i1, tab, live, ntab, &a);
    }
    return bad;
}

size_t lstm_adamw_step(lstm_adamw *o, float *w, const float *g)
{
    return adamw_step(o, w, g, NULL, NULL, 0);
}

/* Whether the tables lie inside n parameters without overlapping. */
static int tables_fit(const lstm_sparse_rows *tab, size_t ntab, size_t n)
{
    for (size_t j = 0; j < ntab; j++) {
        const lstm_sparse_rows *t = &tab[j];
        if (!t->cols || t->off > n || t->rows > (n - t->off) / t->cols)
            return 0;
        for (size_t i = 0; i < j; i++)
            if (t->off < tab[i].off + tab[i].rows * tab[i].cols &&
                tab[i].off < t->off + t->rows * t->cols)
                return 0;
    }
    return 1;
}

size_t lstm_adamw_step_rows(lstm_adamw *o, float *w, const float *g,
                            const lstm_sparse_rows *tab, size_t ntab)
{
    enum { MAXTAB = 8 };
    unsigned char *live[MAXTAB] = {0};
    int ok = ntab <= MAXTAB && tables_fit(tab, ntab, o->n);
    for (size_t j = 0; ok && j < ntab; j++) {
        const lstm_sparse_rows *t = &tab[j];
        live[j] = calloc(t->rows ? t->rows : 1, 1);
        ok = live[j] != NULL;
        for (size_t i = 0; ok && i < t->nids; i++) {
            ok = t->ids[i] >= 0 && (size_t)t->ids[i] < t->rows;
            if (ok)
                live[j][t->ids[i]] = 1;
        }
    }
    /* tables that do not fit, an id outside its table, no room for the
     * row marks: every gradient is read, which is right whatever the
     * tables say */
    size_t bad = adamw_step(o, w, g, tab, live, ok ? ntab : 0);
    for (size_t j = 0; j < ntab && j < MAXTAB; j++)
        free(live[j]);
    return bad;
}

void lstm_adamw_free(lstm_adamw *o)
{
    lstm_free(o->m);
    lstm_free(o->v);
    memset(o, 0, sizeof *o);
}

void lstm_sgd_step(float *w, const float *g, size_t n, float lr)
{
    for (size_t k = 0; k < n; k++)
        w[k] -= lr * g[k];
}
