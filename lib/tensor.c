/*
 * tensor.c - the seeded random generator, tensors and the parameter block.
 * A tensor here is a shape over a float array; there is no autograd and no
 * broadcasting: layers know their shapes.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- random numbers: xoshiro256** (Blackman & Vigna, 2018) ---- */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void lstm_rng_seed(lstm_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {  /* splitmix64 spreads the seed */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

uint64_t lstm_rng_next(lstm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double lstm_rng_uniform(lstm_rng *r)
{
    return (double)(lstm_rng_next(r) >> 11) * 0x1.0p-53;
}

double lstm_rng_normal(lstm_rng *r)
{
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1] */
    double u = 1.0 - lstm_rng_uniform(r), v = lstm_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

size_t lstm_rng_below(lstm_rng *r, size_t n)
{
    assert(n > 0);
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do
        x = lstm_rng_next(r);
    while (x >= lim);
    return (size_t)(x % n);
}

void lstm_rng_shuffle(lstm_rng *r, size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = lstm_rng_below(r, i), t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void lstm_fill_uniform(float *x, size_t n, float lo, float hi, lstm_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)lo + (double)(hi - lo) * lstm_rng_uniform(r));
}

void lstm_fill_normal(float *x, size_t n, float mean, float std, lstm_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)mean + (double)std * lstm_rng_normal(r));
}

/* ---- tensors ---- */

static int shape_numel(int ndim, const size_t *shape, size_t *numel)
{
    if (ndim < 0 || ndim > LSTM_MAXDIM)
        return lstm_error(LSTM_EINVAL, "tensor: %d dimensions (at most %d)",
                          ndim, LSTM_MAXDIM);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && n > SIZE_MAX / sizeof(float) / shape[i])
            return lstm_error(LSTM_EINVAL, "tensor: shape overflows");
        n *= shape[i];
    }
    *numel = n;
    return LSTM_OK;
}

int lstm_tensor_init(lstm_tensor *t, int ndim, const size_t *shape)
{
    memset(t, 0, sizeof *t);
    size_t n;
    int err = shape_numel(ndim, shape, &n);
    if (err)
        return err;
    t->data = lstm_alloc(n * sizeof(float));
    if (!t->data)
        return LSTM_ENOMEM;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = n;
    t->owner = 1;
    return LSTM_OK;
}

lstm_tensor lstm_tensor_view(float *data, int ndim, const size_t *shape)
{
    lstm_tensor t;
    memset(&t, 0, sizeof t);
    size_t n;
    int err = shape_numel(ndim, shape, &n);
    assert(err == LSTM_OK);
    (void)err;
    t.data = data;
    t.ndim = ndim;
    memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    t.numel = n;
    return t;
}

int lstm_tensor_reshape(lstm_tensor *t, int ndim, const size_t *shape)
{
    size_t n;
    int err = shape_numel(ndim, shape, &n);
    if (err)
        return err;
    if (n != t->numel)
        return lstm_error(LSTM_EINVAL, "reshape: %zu elements into %zu", t->numel,
                          n);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    return LSTM_OK;
}

void lstm_tensor_free(lstm_tensor *t)
{
    if (t->owner)
        lstm_free(t->data);
    memset(t, 0, sizeof *t);
}

/* ---- the parameter block ---- */

void lstm_params_init(lstm_params *ps) { memset(ps, 0, sizeof *ps); }

int lstm_params_add(lstm_params *ps, const char *name, int ndim,
                    const size_t *shape, size_t *off)
{
    assert(!ps->w && "lstm_params_add after lstm_params_alloc");
    size_t n;
    int err = shape_numel(ndim, shape, &n);
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

double lstm_params_grad_norm(const lstm_params *ps)
{
    double s = 0.0;
    for (size_t i = 0; i < ps->np; i++) {
        const float *g = ps->g + ps->p[i].off;
        for (size_t k = 0; k < ps->p[i].numel; k++)
            s += (double)g[k] * (double)g[k];
    }
    return sqrt(s);
}

double lstm_params_clip_grad_norm(lstm_params *ps, double max_norm)
{
    double norm = lstm_params_grad_norm(ps);
    double coef = max_norm / (norm + 1e-6);
    if (isfinite(norm) && coef < 1.0) {
        const float c = (float)coef;
        for (size_t k = 0; k < ps->n; k++)
            ps->g[k] *= c;
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
