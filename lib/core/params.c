/*
 * params.c - the parameter block: every weight of a model in one
 * allocation, named slices into it, and a twin block of gradients.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void lstm_params_init(lstm_params *ps) { memset(ps, 0, sizeof *ps); }

int lstm_params_add(lstm_params *ps, const char *name, int ndim,
                    const size_t *shape, size_t *off)
{
    assert(!ps->w && "lstm_params_add after lstm_params_alloc");
    size_t n;
    int err = lstm__shape_numel(ndim, shape, &n);
    if (err)
        return err;
    if (strlen(name) >= sizeof ps->p[0].name)
        return lstm_error(LSTM_EINVAL, "parameter name too long: %s", name);
    if (lstm_params_find(ps, name))
        return lstm_error(LSTM_EINVAL, "parameter %s added twice", name);
    if (ps->np == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 16;
        lstm_param *p = lstm_alloc(cap * sizeof *p);
        if (!p)
            return LSTM_ENOMEM;
        if (ps->np)
            memcpy(p, ps->p, ps->np * sizeof *p);
        lstm_free(ps->p);
        ps->p = p;
        ps->cap = cap;
    }
    lstm_param *p = &ps->p[ps->np++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    /* every slice starts on a 16-float boundary */
    p->off = (ps->n + 15) & ~(size_t)15;
    p->numel = n;
    ps->n = p->off + n;
    *off = p->off;
    return LSTM_OK;
}

int lstm_params_alloc(lstm_params *ps)
{
    ps->w = lstm_alloc(ps->n * sizeof(float));
    ps->g = lstm_alloc(ps->n * sizeof(float));
    if (!ps->w || !ps->g) {
        lstm_free(ps->w);
        lstm_free(ps->g);
        ps->w = ps->g = NULL;
        return LSTM_ENOMEM;
    }
    return LSTM_OK;
}

void lstm_params_zero_grad(lstm_params *ps)
{
    /* 33 MB for the notebook's model: split, like AdamW's pass */
#pragma omp parallel num_threads(lstm__threads_for(ps->n / 16))
    {
        size_t i0, i1;
        lstm__share(ps->n, &i0, &i1);
        memset(ps->g + i0, 0, (i1 - i0) * sizeof(float));
    }
}

const lstm_param *lstm_params_find(const lstm_params *ps, const char *name)
{
    for (size_t i = 0; i < ps->np; i++)
        if (strcmp(ps->p[i].name, name) == 0)
            return &ps->p[i];
    return NULL;
}

lstm_tensor lstm_params_weight(const lstm_params *ps, const lstm_param *p)
{
    return lstm_tensor_view(ps->w + p->off, p->ndim, p->shape);
}

lstm_tensor lstm_params_grad(const lstm_params *ps, const lstm_param *p)
{
    return lstm_tensor_view(ps->g + p->off, p->ndim, p->shape);
}

/* The sum of squares of x[0,n) in double, as 8 sums side by side added
 * up in a fixed order: one running sum waits on each add's latency. */
static double sum_squares(const float *x, size_t n)
{
    double acc[8] = {0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (size_t j = 0; j < 8; j++)
            acc[j] += (double)x[k + j] * (double)x[k + j];
    for (; k < n; k++)
        acc[k % 8] += (double)x[k] * (double)x[k];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
           ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* The block in chunks of NORM_CHUNK (the alignment padding between
 * parameters is zero: only whole-block writes reach it), a sum of squares
 * each, split across threads, then the chunks' sums in order: the same
 * result on any thread count, or on one thread when there is no memory
 * for the chunks' sums. With one running sum, and the scaling below on
 * one thread, clipping cost 19 ms a training step of the notebook's 7.4M
 * parameters (news_classifier --batch-size 4 --clip-grad-norm 1, one
 * epoch on the bundled data, a Sapphire Rapids: 3.6 s of 8.9); now 7 ms
 * (1.35 s of 6.2). */
enum { NORM_CHUNK = 1 << 15 };

static double chunk_squares(const lstm_params *ps, size_t j)
{
    const size_t k = j * NORM_CHUNK;
    return sum_squares(ps->g + k,
                       ps->n - k < NORM_CHUNK ? ps->n - k : NORM_CHUNK);
}

double lstm_params_grad_norm(const lstm_params *ps)
{
    const size_t nc = (ps->n + NORM_CHUNK - 1) / NORM_CHUNK;
    double *part = malloc((nc ? nc : 1) * sizeof *part);
    double s = 0.0;
    if (!part) {
        for (size_t j = 0; j < nc; j++)
            s += chunk_squares(ps, j);
        return sqrt(s);
    }
#pragma omp parallel for num_threads(lstm__threads_for(ps->n / 16)) \
    schedule(static)
    for (size_t j = 0; j < nc; j++)
        part[j] = chunk_squares(ps, j);
    for (size_t j = 0; j < nc; j++)
        s += part[j];
    free(part);
    return sqrt(s);
}

double lstm_params_clip_grad_norm(lstm_params *ps, double max_norm)
{
    double norm = lstm_params_grad_norm(ps);
    double coef = max_norm / (norm + 1e-6);
    if (isfinite(norm) && coef < 1.0) {
        const float c = (float)coef;
#pragma omp parallel num_threads(lstm__threads_for(ps->n / 16))
        {
            size_t i0, i1;
            lstm__share(ps->n, &i0, &i1);
            for (size_t k = i0; k < i1; k++)
                ps->g[k] *= c;
        }
    }
    return norm;
}

const lstm_param *lstm_params_nonfinite(const lstm_params *ps, int grads)
{
    const float *base = grads ? ps->g : ps->w;
    for (size_t i = ps->np; i-- > 0;) {
        const float *x = base + ps->p[i].off;
        for (size_t k = 0; k < ps->p[i].numel; k++)
            if (!isfinite(x[k]))
                return &ps->p[i];
    }
    return NULL;
}

void lstm_params_free(lstm_params *ps)
{
    lstm_free(ps->w);
    lstm_free(ps->g);
    lstm_free(ps->p);
    memset(ps, 0, sizeof *ps);
}
