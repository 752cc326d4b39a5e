/*
 * loss.c - log-softmax fused with the NLL loss.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

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
        const float *x = logits + b * C;
        float *lp = logp + b * C;
        float m = x[0];
        for (size_t c = 1; c < C; c++)
            m = x[c] > m ? x[c] : m;
        double s = 0.0;  /* exp(x - max) <= 1: no overflow */
        for (size_t c = 0; c < C; c++)
            s += exp((double)(x[c] - m));
        const float ls = (float)log(s);
        for (size_t c = 0; c < C; c++)
            lp[c] = (x[c] - m) - ls;
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
