/*
 * optim.c - AdamW and SGD over a whole parameter block. The scalars are
 * computed in double, as torch.optim.AdamW computes them in Python, and
 * the per-element work is split across threads in contiguous chunks.
 */
#include <math.h>
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

size_t lstm_adamw_step(lstm_adamw *o, float *w, const float *g)
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
        bad += k->adamw(w + i0, o->m + i0, o->v + i0, g + i0, i1 - i0, &a);
    }
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
