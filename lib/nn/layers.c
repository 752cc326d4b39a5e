/*
 * layers.c - embedding, dense, ReLU and dropout, forward and backward.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int add_named(lstm_params *ps, const char *name, const char *suffix,
                     int ndim, const size_t *shape, size_t *off)
{
    char full[128];
    if ((size_t)snprintf(full, sizeof full, "%s%s", name, suffix) >= sizeof full)
        return lstm_error(LSTM_EINVAL, "parameter name too long: %s", name);
    return lstm_params_add(ps, full, ndim, shape, off);
}

/* ---- embedding ---- */

int lstm_embedding_init(lstm_embedding *e, lstm_params *ps, const char *name,
                        size_t V, size_t E, long padding_idx)
{
    memset(e, 0, sizeof *e);
    if (V == 0 || E == 0)
        return lstm_error(LSTM_EINVAL, "embedding: V=%zu E=%zu must be > 0",
                          V, E);
    if (padding_idx >= (long)V)
        return lstm_error(LSTM_EINVAL,
                          "embedding: padding_idx %ld outside [0,%zu)",
                          padding_idx, V);
    e->ps = ps;
    e->V = V;
    e->E = E;
    e->pad = padding_idx < 0 ? -1 : padding_idx;
    size_t shape[2] = {V, E};
    return add_named(ps, name, ".weight", 2, shape, &e->off_w);
}

void lstm_embedding_reset(lstm_embedding *e, lstm_rng *r)
{
    LSTM__WEIGHTS_READY(e->ps, "lstm_embedding_reset");
    float *w = e->ps->w + e->off_w;
    lstm_fill_normal(w, e->V * e->E, 0.0f, 1.0f, r);
    if (e->pad >= 0)
        memset(w + (size_t)e->pad * e->E, 0, e->E * sizeof *w);
}

int lstm_embedding_forward(const lstm_embedding *e, float *out,
                           const int32_t *ids, size_t n)
{
    LSTM__WEIGHTS_READY(e->ps, "lstm_embedding_forward");
    const float *w = e->ps->w + e->off_w;
    for (size_t k = 0; k < n; k++)
        if (ids[k] < 0 || (size_t)ids[k] >= e->V)
            return lstm_error(LSTM_ERANGE,
                              "embedding: token id %ld at position %zu "
                              "outside the vocabulary [0,%zu)",
                              (long)ids[k], k, e->V);
#pragma omp parallel num_threads(lstm__threads_for(n * e->E))
    {
        size_t k0, k1;
        lstm__share(n, &k0, &k1);
        for (size_t k = k0; k < k1; k++)
            memcpy(out + k * e->E, w + (size_t)ids[k] * e->E,
                   e->E * sizeof *out);
    }
    return LSTM_OK;
}

/* Each thread adds the positions whose id is its own modulo the thread
 * count (the frequent words, the first ids, alternate), in position
 * order: every row sums in the same order on any number of threads. */
void lstm_embedding_backward(const lstm_embedding *e, const float *dout,
                             const int32_t *ids, size_t n)
{
    float *g = e->ps->g + e->off_w;
    const size_t E = e->E;
#pragma omp parallel num_threads(lstm__threads_for(n * E))
    {
        size_t me = 0, nt = 1;
#ifdef _OPENMP
        me = (size_t)omp_get_thread_num();
        nt = (size_t)omp_get_num_threads();
#endif
        for (size_t k = 0; k < n; k++) {
            assert(ids[k] >= 0 && (size_t)ids[k] < e->V);
            if (ids[k] == e->pad || (size_t)ids[k] % nt != me)
                continue;  /* the padding row gets no gradient */
            float *row = g + (size_t)ids[k] * E;
            const float *d = dout + k * E;
            for (size_t j = 0; j < E; j++)
                row[j] += d[j];
        }
    }
}

/* ---- dense ---- */

int lstm_dense_init(lstm_dense *d, lstm_params *ps, const char *name,
                    size_t in, size_t out)
{
    memset(d, 0, sizeof *d);
    if (in == 0 || out == 0)
        return lstm_error(LSTM_EINVAL, "dense: in=%zu out=%zu must be > 0",
                          in, out);
    d->ps = ps;
    d->in = in;
    d->out = out;
    size_t ws[2] = {out, in}, bs[1] = {out};
    int err = add_named(ps, name, ".weight", 2, ws, &d->off_w);
    return err ? err : add_named(ps, name, ".bias", 1, bs, &d->off_b);
}

void lstm_dense_reset(lstm_dense *d, lstm_rng *r)
{
    LSTM__WEIGHTS_READY(d->ps, "lstm_dense_reset");
    /* nn.Linear: kaiming_uniform(a=sqrt(5)) gives bound 1/sqrt(in), and the
     * bias uses the same bound */
    float k = 1.0f / sqrtf((float)d->in);
    lstm_fill_uniform(d->ps->w + d->off_w, d->in * d->out, -k, k, r);
    lstm_fill_uniform(d->ps->w + d->off_b, d->out, -k, k, r);
}

void lstm_dense_forward(const lstm_dense *d, float *y, const float *x,
                        size_t B)
{
    LSTM__WEIGHTS_READY(d->ps, "lstm_dense_forward");
    const float *w = d->ps->w + d->off_w, *b = d->ps->w + d->off_b;
    for (size_t i = 0; i < B; i++)
        memcpy(y + i * d->out, b, d->out * sizeof *y);
    lstm__gemm(0, 1, B, d->out, d->in, 1.0f, x, d->in, w, d->in, 1.0f, y,
               d->out);
}

void lstm_dense_backward(const lstm_dense *d, float *dx, const float *dy,
                         const float *x, size_t B)
{
    const float *w = d->ps->w + d->off_w;
    float *gw = d->ps->g + d->off_w, *gb = d->ps->g + d->off_b;
    lstm__gemm(1, 0, d->out, d->in, B, 1.0f, dy, d->out, x, d->in, 1.0f, gw,
               d->in);
    for (size_t i = 0; i < B; i++)
        for (size_t j = 0; j < d->out; j++)
            gb[j] += dy[i * d->out + j];
    if (dx)
        lstm__gemm(0, 0, B, d->in, d->out, 1.0f, dy, d->out, w, d->in, 0.0f,
                   dx, d->in);
}

/* ---- ReLU and dropout ---- */

void lstm_relu_forward(float *y, const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        y[k] = x[k] > 0.0f ? x[k] : 0.0f;
}

void lstm_relu_backward(float *dx, const float *dy, const float *y, size_t n)
{
    for (size_t k = 0; k < n; k++)
        dx[k] = y[k] > 0.0f ? dy[k] : 0.0f;
}

void lstm_dropout_forward(float *y, float *mask, const float *x, size_t n,
                          float p, lstm_rng *r)
{
    assert(p >= 0.0f && p < 1.0f);
    const float keep = 1.0f / (1.0f - p);
    if (p > 0.0f) {
        /* lstm_rng_uniform(r) < p, that is (x >> 11) * 2^-53 < p, in
         * integers: the same draws and decisions, the state in registers,
         * and no branch to mispredict on a random bit */
        const uint64_t below = (uint64_t)ceil((double)p * 0x1p53);
        uint64_t s[4] = {r->s[0], r->s[1], r->s[2], r->s[3]};
        uint32_t kb;
        memcpy(&kb, &keep, sizeof kb);
        for (size_t k = 0; k < n; k++) {
            const uint32_t bits =
                kb & -(uint32_t)(lstm__xoshiro(s) >> 11 >= below);
            memcpy(mask + k, &bits, sizeof bits);
        }
        memcpy(r->s, s, sizeof s);
    } else {
        for (size_t k = 0; k < n; k++)
            mask[k] = keep;
    }
    for (size_t k = 0; k < n; k++)
        y[k] = x[k] * mask[k];
}

void lstm_dropout_backward(float *dx, const float *dy, const float *mask,
                           size_t n)
{
    for (size_t k = 0; k < n; k++)
        dx[k] = dy[k] * mask[k];
}
