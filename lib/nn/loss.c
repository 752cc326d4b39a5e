/*
 * loss.c - log-softmax fused with the NLL loss (per row, and per step with
 * an ignore index), softmax, argmax and sampling, MSE and BCE-with-logits:
 * PyTorch's definitions (F.log_softmax, F.cross_entropy, nn.MSELoss,
 * nn.BCEWithLogitsLoss with their default mean reduction).
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* One row of log-softmax: lp = (x - max) - log(sum exp(x - max)), the sum
 * in double (exp(x - max) <= 1: no overflow). */
static void log_softmax_row(float *lp, const float *x, size_t C)
{
    float m = x[0];
    for (size_t c = 1; c < C; c++)
        m = x[c] > m ? x[c] : m;
    double s = 0.0;
    for (size_t c = 0; c < C; c++)
        s += exp((double)(x[c] - m));
    const float ls = (float)log(s);
    for (size_t c = 0; c < C; c++)
        lp[c] = (x[c] - m) - ls;
}

void lstm_log_softmax(float *y, const float *x, size_t B, size_t C)
{
    for (size_t b = 0; b < B; b++)
        log_softmax_row(y + b * C, x + b * C, C);
}

void lstm_softmax(float *y, const float *x, size_t B, size_t C)
{
    lstm_log_softmax(y, x, B, C);
    for (size_t k = 0; k < B * C; k++)
        y[k] = expf(y[k]);
}

size_t lstm_argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t k = 1; k < n; k++)
        if (x[k] > x[best])
            best = k;
    return best;
}

void lstm_topk(const float *x, size_t n, size_t k, size_t *idx)
{
    assert(k <= n);
    size_t have = 0;  /* idx[0..have) sorted, largest first */
    for (size_t j = 0; j < n; j++) {
        size_t p = have;
        while (p > 0 && x[j] > x[idx[p - 1]])
            p--;
        if (p == k)
            continue;
        for (size_t q = have < k ? have : k - 1; q > p; q--)
            idx[q] = idx[q - 1];
        idx[p] = j;
        have += have < k;
    }
}

size_t lstm_sample(const float *logits, size_t C, float temperature,
                   lstm_rng *r)
{
    assert(C > 0 && r);
    if (!(temperature > 0.0f))
        return lstm_argmax(logits, C);
    float m = logits[0];
    for (size_t c = 1; c < C; c++)
        m = logits[c] > m ? logits[c] : m;
    double total = 0.0;
    for (size_t c = 0; c < C; c++)
        total += exp((double)((logits[c] - m) / temperature));
    double u = lstm_rng_uniform(r) * total, acc = 0.0;
    for (size_t c = 0; c < C; c++) {
        acc += exp((double)((logits[c] - m) / temperature));
        if (u < acc)
            return c;
    }
    return C - 1;  /* u within rounding of the total */
}

int lstm_seq_nll_forward(float *logp, float *loss, size_t *count,
                         const float *logits, const int32_t *y, size_t N,
                         size_t C, int32_t ignore)
{
    for (size_t i = 0; i < N; i++)
        if (y[i] != ignore && (y[i] < 0 || (size_t)y[i] >= C))
            return lstm_error(LSTM_ERANGE,
                              "loss: target %ld at position %zu outside "
                              "[0,%zu)", (long)y[i], i, C);
    double total = 0.0;
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        log_softmax_row(logp + i * C, logits + i * C, C);
        if (y[i] != ignore) {
            total -= (double)logp[i * C + (size_t)y[i]];
            n++;
        }
    }
    if (loss)
        *loss = n ? (float)(total / (double)n) : 0.0f;
    if (count)
        *count = n;
    return LSTM_OK;
}

void lstm_seq_nll_backward(float *dlogits, const float *logp,
                           const int32_t *y, size_t N, size_t C,
                           int32_t ignore)
{
    size_t n = 0;
    for (size_t i = 0; i < N; i++)
        n += y[i] != ignore;
    const float inv = n ? 1.0f / (float)n : 0.0f;
    for (size_t i = 0; i < N; i++) {
        float *d = dlogits + i * C;
        if (y[i] == ignore) {
            memset(d, 0, C * sizeof *d);
            continue;
        }
        for (size_t c = 0; c < C; c++)
            d[c] = expf(logp[i * C + c]) * inv;
        d[y[i]] -= inv;
    }
}

float lstm_mse_loss(float *dx, const float *x, const float *t, size_t n)
{
    double s = 0.0;
    for (size_t k = 0; k < n; k++) {
        double d = (double)x[k] - (double)t[k];
        s += d * d;
    }
    if (dx)
        for (size_t k = 0; k < n; k++)
            dx[k] = 2.0f * (x[k] - t[k]) / (float)n;
    return n ? (float)(s / (double)n) : 0.0f;
}

float lstm_bce_logits_loss(float *dx, const float *x, const float *t,
                           size_t n)
{
    double s = 0.0;
    for (size_t k = 0; k < n; k++) {
        double v = (double)x[k], y = (double)t[k];
        s += (v > 0 ? v : 0) - v * y + log1p(exp(-fabs(v)));
    }
    if (dx)
        for (size_t k = 0; k < n; k++) {
            float sg = x[k] >= 0 ? 1.0f / (1.0f + expf(-x[k]))
                                 : expf(x[k]) / (1.0f + expf(x[k]));
            dx[k] = (sg - t[k]) / (float)n;
        }
    return n ? (float)(s / (double)n) : 0.0f;
}

int lstm_logsoftmax_nll_forward(float *logp, float *loss, const float *logits,
                                const int32_t *y, size_t B, size_t C)
{
    if (y)
        for (size_t b = 0; b < B; b++)
            if (y[b] < 0 || (size_t)y[b] >= C)
                return lstm_error(LSTM_ERANGE,
                                  "loss: label %ld of row %zu outside [0,%zu)",
                                  (long)y[b], b, C);
    double total = 0.0;
    for (size_t b = 0; b < B; b++) {
        const float *lp = logp + b * C;
        log_softmax_row(logp + b * C, logits + b * C, C);
        if (y)
            total -= (double)lp[y[b]];
    }
    if (loss)
        *loss = B ? (float)(total / (double)B) : 0.0f;
    return LSTM_OK;
}

void lstm_logsoftmax_nll_backward(float *dlogits, const float *logp,
                                  const int32_t *y, size_t B, size_t C)
{
    const float inv = 1.0f / (float)B;
    for (size_t b = 0; b < B; b++) {
        for (size_t c = 0; c < C; c++)
            dlogits[b * C + c] = expf(logp[b * C + c]) * inv;
        dlogits[b * C + (size_t)y[b]] -= inv;
    }
}
