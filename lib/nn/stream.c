/*
 * stream.c - streaming inference: lstm_lstm_step runs one time step of
 * every layer for a batch whose (h, c) the caller holds. Per layer it is
 * the full forward's work at T = 1, in the same order (the bias row, one
 * GEMM with beta = 1, the tuned recurrence kernel), so it gives the same
 * bits; only W_hh is packed once, at init and sync, instead of per call.
 */
#include <string.h>

#include "internal.h"

enum { W_IH, W_HH, B_IH, B_HH };

static void layout(lstm_stream *s, lstm__carver *c)
{
    const lstm_lstm *l = s->l;
    const size_t H = l->H, G = 4 * H, L = l->L, B = s->Bmax;
    const size_t in_max = l->I > H ? l->I : H;
    const int bf16 = l->precision == LSTM_BF16_MIXED;
    s->wpk = lstm__carve(c, L * lstm__pack_fwd_size(H, H));
    s->wih = bf16 ? lstm__carve(c, G * l->I + (L - 1) * G * H) : NULL;
    s->bias = lstm__carve(c, L * G);
    s->gates = lstm__carve(c, B * G);
    s->hs = lstm__carve(c, 2 * B * H);
    s->cs = lstm__carve(c, 2 * B * H);
    s->y = lstm__carve(c, B * H);
    s->xr = lstm__carve(c, B * in_max);
    s->len = (size_t *)(void *)lstm__carve(c, B * sizeof(size_t) /
                                                  sizeof(float));
}

int lstm_stream_init(lstm_stream *s, const lstm_lstm *l, size_t Bmax)
{
    memset(s, 0, sizeof *s);
    assert(l->off && "lstm_stream_init: the LSTM is not initialised");
    LSTM__WEIGHTS_READY(l->ps, "lstm_stream_init");
    if (Bmax == 0)
        return lstm_error(LSTM_EINVAL, "lstm_stream: Bmax must be > 0");
    if (l->precision != LSTM_FP32 && l->precision != LSTM_BF16_MIXED)
        return lstm_error(LSTM_EINVAL, "lstm_stream: unknown precision %d",
                          l->precision);
    if (l->D != 1)
        return lstm_error(LSTM_EINVAL, "lstm_stream: a bidirectional LSTM "
                          "reads each sequence to its end; it cannot run step "
                          "by step");
    if (l->cell != LSTM_CELL_LSTM)
        return lstm_error(LSTM_EINVAL, "lstm_stream: streaming runs LSTM "
                          "layers only, not a GRU");
    s->l = l;
    s->Bmax = Bmax;
    lstm__carver c = {NULL, 0};
    layout(s, &c);
    s->ws = lstm_alloc(c.used);
    if (!s->ws) {
        memset(s, 0, sizeof *s);
        return lstm_error(LSTM_ENOMEM, "lstm_stream: out of memory for %zu "
                          "bytes", c.used);
    }
    c.base = (char *)s->ws;
    c.used = 0;
    layout(s, &c);
    for (size_t b = 0; b < Bmax; b++)
        s->len[b] = 1;
    lstm_stream_sync(s);
    return LSTM_OK;
}

void lstm_stream_sync(lstm_stream *s)
{
    const lstm_lstm *l = s->l;
    const size_t H = l->H, G = 4 * H;
    const float *w = l->ps->w;
    const int bf16 = l->precision == LSTM_BF16_MIXED;
    float *wih = s->wih;
    const lstm__kernels *kern = lstm__k();
    s->kern = kern;
    for (size_t k = 0; k < l->L; k++) {
        float *pk = s->wpk + k * lstm__pack_fwd_size(H, H);
        kern->pack_fwd(pk, w + l->off[4 * k + W_HH], H, 0, H, bf16);
        for (size_t j = 0; j < G; j++)
            s->bias[k * G + j] = w[l->off[4 * k + B_IH] + j] +
                                 w[l->off[4 * k + B_HH] + j];
        if (bf16) {
            const size_t n = G * (k ? H : l->I);
            lstm__round_bf16(wih, w + l->off[4 * k + W_IH], n);
            wih += n;
        }
    }
}

int lstm_lstm_step(lstm_stream *s, const float *x, float *h, float *c,
                   float *y, size_t B)
{
    assert(s->ws && "lstm_lstm_step: the stream is not initialised");
    const lstm_lstm *l = s->l;
    const size_t H = l->H, G = 4 * H, L = l->L;
    if (B == 0 || B > s->Bmax)
        return lstm_error(LSTM_EINVAL, "lstm_step: batch %zu outside [1,%zu]",
                          B, s->Bmax);
    const lstm__kernels *kern = s->kern;
    const int bf16 = l->precision == LSTM_BF16_MIXED;
    const float *in = x, *wih = s->wih;
    for (size_t k = 0; k < L; k++) {
        const size_t in_dim = k ? H : l->I;
        if (bf16) {  /* the layer's input is an operand of the product */
            lstm__round_bf16(s->xr, in, B * in_dim);
            in = s->xr;
        }
        const float *w_ih = bf16 ? wih : l->ps->w + l->off[4 * k + W_IH];
        wih += bf16 ? G * in_dim : 0;
        for (size_t b = 0; b < B; b++) {
            /* slot 0 of (B,2,H): the state before the step */
            memcpy(s->hs + 2 * b * H, h + (k * B + b) * H, H * sizeof(float));
            memcpy(s->cs + 2 * b * H, c + (k * B + b) * H, H * sizeof(float));
            if (bf16)
                lstm__round_bf16(s->hs + 2 * b * H, s->hs + 2 * b * H, H);
        }
        lstm__gemm(0, 1, B, G, in_dim, 1.0f, in, in_dim, w_ih, in_dim, 0.0f,
                   s->gates, G);
        const float *w_hh = l->ps->w + l->off[4 * k + W_HH];
        const float *pk = s->wpk + k * lstm__pack_fwd_size(H, H);
        int nt = lstm__threads_for(B * G * H);
        nt = nt > (int)B ? (int)B : nt;
#pragma omp parallel num_threads(nt)
        {
            size_t b0, b1;
            lstm__share(B, &b0, &b1);
            lstm__ftz();
            if (b1 > b0)
                kern->lstm_fwd(b1 - b0, 1, H, 0, H, s->len + b0,
                               s->gates + b0 * G, s->bias + k * G,
                               s->hs + 2 * b0 * H, s->cs + 2 * b0 * H,
                               s->y + b0 * H, w_hh, pk, bf16, NULL);
        }
        for (size_t b = 0; b < B; b++) {
            /* h carries the float output (the forward's hn); c slot 1 */
            memcpy(h + (k * B + b) * H, s->y + b * H, H * sizeof(float));
            memcpy(c + (k * B + b) * H, s->cs + (2 * b + 1) * H,
                   H * sizeof(float));
        }
        in = s->y;
    }
    if (y)
        memcpy(y, s->y, B * H * sizeof(float));
    return LSTM_OK;
}

void lstm_stream_free(lstm_stream *s)
{
    lstm_free(s->ws);
    memset(s, 0, sizeof *s);
}
