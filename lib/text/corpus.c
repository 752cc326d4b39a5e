/*
 * corpus.c - every text encoded once, stored ragged, and the padded
 * batches gathered from it.
 */
#include <string.h>

#include "internal.h"
#include "lstm_text.h"

void lstm_corpus_free(lstm_corpus *c)
{
    lstm_free(c->ids);
    lstm_free(c->off);
    lstm_free(c->len);
    memset(c, 0, sizeof *c);
}

int lstm_corpus_encode(lstm_corpus *c, const lstm_vocab *v,
                       char *const *text, const size_t *text_len, size_t n,
                       size_t max_len)
{
    memset(c, 0, sizeof *c);
    assert(max_len > 0);
    const size_t T = max_len;
    size_t cap = n * 16 + T, used = 0;
    int32_t *tmp = lstm_alloc(T * sizeof *tmp);
    c->ids = lstm_alloc(cap * sizeof *c->ids);
    c->off = lstm_alloc((n + 1) * sizeof *c->off);
    c->len = lstm_alloc((n + 1) * sizeof *c->len);
    int ok = tmp && c->ids && c->off && c->len;
    for (size_t i = 0; ok && i < n; i++) {
        size_t l = lstm_encode(v, text[i], text_len[i], tmp, T);
        if (used + l > cap) {
            size_t ncap = 2 * cap + l;
            int32_t *g = lstm_alloc(ncap * sizeof *g);
            if (!g) {
                ok = 0;
                break;
            }
            memcpy(g, c->ids, used * sizeof *g);
            lstm_free(c->ids);
            c->ids = g;
            cap = ncap;
        }
        memcpy(c->ids + used, tmp, l * sizeof *tmp);
        c->off[i] = used;
        c->len[i] = (int32_t)l;
        used += l;
    }
    lstm_free(tmp);
    if (!ok) {
        lstm_corpus_free(c);
        return lstm_error(LSTM_ENOMEM, "out of memory encoding %zu texts", n);
    }
    c->n = n;
    c->max_len = max_len;
    return LSTM_OK;
}

int lstm_batch_init(lstm_batch *b, size_t B, size_t T)
{
    memset(b, 0, sizeof *b);
    b->ids = lstm_alloc(B * T * sizeof *b->ids);
    b->len = lstm_alloc(B * sizeof *b->len);
    b->y = lstm_alloc(B * sizeof *b->y);
    if (!b->ids || !b->len || !b->y) {
        lstm_batch_free(b);
        return lstm_error(LSTM_ENOMEM, "out of memory for a batch of %zu x "
                          "%zu tokens", B, T);
    }
    b->cap_B = B;
    b->cap_T = T;
    return LSTM_OK;
}

void lstm_batch_gather(lstm_batch *b, const lstm_corpus *c,
                       const size_t *rows, size_t B, const int32_t *labels)
{
    assert(B <= b->cap_B && c->max_len <= b->cap_T);
    size_t T = 1;
    for (size_t i = 0; i < B; i++)
        if ((size_t)c->len[rows[i]] > T)
            T = (size_t)c->len[rows[i]];
    for (size_t i = 0; i < B; i++) {
        const size_t l = (size_t)c->len[rows[i]];
        memcpy(b->ids + i * T, c->ids + c->off[rows[i]], l * sizeof(int32_t));
        memset(b->ids + i * T + l, 0, (T - l) * sizeof(int32_t));
        b->len[i] = (int32_t)l;
        if (labels)
            b->y[i] = labels[rows[i]];
    }
    b->B = B;
    b->T = T;
}

void lstm_batch_free(lstm_batch *b)
{
    lstm_free(b->ids);
    lstm_free(b->len);
    lstm_free(b->y);
    memset(b, 0, sizeof *b);
}
