/*
 * vocab.c - the vocabulary (most frequent words first, ties in order of
 * first appearance) and the encoding of a text into padded ids.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_text.h"

/* ---- hashing ---- */

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

/* ---- counting words ---- */

typedef struct {
    char *w;
    size_t n, count, first;
} entry;

typedef struct {
    entry *e;                 /* open addressing, w == NULL: empty */
    size_t cap, used, seen;
    int err;
} counter;

static int counter_grow(counter *c)
{
    size_t cap = c->cap ? 2 * c->cap : 1 << 14;
    entry *e = lstm_alloc(cap * sizeof *e);
    if (!e)
        return LSTM_ENOMEM;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->e[i].w)
            continue;
        size_t h = (size_t)fnv1a(c->e[i].w, c->e[i].n) & (cap - 1);
        while (e[h].w)
            h = (h + 1) & (cap - 1);
        e[h] = c->e[i];
    }
    lstm_free(c->e);
    c->e = e;
    c->cap = cap;
    return LSTM_OK;
}

static void count_word(const char *w, size_t n, void *ctx)
{
    counter *c = ctx;
    if (c->err)
        return;
    if (2 * (c->used + 1) > c->cap && (c->err = counter_grow(c)))
        return;
    size_t h = (size_t)fnv1a(w, n) & (c->cap - 1);
    while (c->e[h].w) {
        if (c->e[h].n == n && memcmp(c->e[h].w, w, n) == 0) {
            c->e[h].count++;
            return;
        }
        h = (h + 1) & (c->cap - 1);
    }
    char *copy = lstm_alloc(n + 1);
    if (!copy) {
        c->err = LSTM_ENOMEM;
        return;
    }
    memcpy(copy, w, n);
    c->e[h] = (entry){copy, n, 1, c->seen++};
    c->used++;
}

static int by_count(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* ---- the vocabulary ---- */

void lstm_vocab_free(lstm_vocab *v)
{
    for (size_t i = 0; i < v->n; i++)
        lstm_free(v->tok[i]);
    lstm_free(v->tok);
    lstm_free(v->slot);
    memset(v, 0, sizeof *v);
}

/* Builds the hash index over v->tok[0..n); fails on a duplicate. */
static int vocab_index(lstm_vocab *v)
{
    size_t cap = 16;
    while (cap < 2 * v->n)
        cap *= 2;
    v->slot = lstm_alloc(cap * sizeof *v->slot);
    if (!v->slot)
        return LSTM_ENOMEM;
    v->nslot = cap;
    for (size_t id = 0; id < v->n; id++) {
        size_t len = strlen(v->tok[id]);
        size_t h = (size_t)fnv1a(v->tok[id], len) & (cap - 1);
        while (v->slot[h]) {
            if (strcmp(v->tok[v->slot[h] - 1], v->tok[id]) == 0)
                return lstm_error(LSTM_EFORMAT,
                                  "vocabulary: token \"%.40s\" at ids %zu and "
                                  "%zu",
                                  v->tok[id], v->slot[h] - 1, id);
            h = (h + 1) & (cap - 1);
        }
        v->slot[h] = id + 1;
    }
    return LSTM_OK;
}

int lstm_vocab_build(lstm_vocab *v, const lstm_dataset *ds,
                     const size_t *rows, size_t nrows, size_t max_size)
{
    return lstm_vocab_build_min(v, ds, rows, nrows, max_size, 1);
}

int lstm_vocab_build_min(lstm_vocab *v, const lstm_dataset *ds,
                         const size_t *rows, size_t nrows, size_t max_size,
                         size_t min_count)
{
    memset(v, 0, sizeof *v);
    if (max_size < 2)
        return lstm_error(LSTM_EINVAL, "vocabulary: size %zu, at least 2 "
                          "([PAD] and [UNK])", max_size);
    counter c = {0};
    for (size_t r = 0; r < nrows && !c.err; r++)
        lstm_tokenize(ds->text[rows[r]], ds->text_len[rows[r]], 0, count_word,
                      &c);
    int err = c.err;
    /* every word, then the best max_size - 2 move into the vocabulary;
     * words stay owned by the list until moved */
    entry *list = lstm_alloc((c.used ? c.used : 1) * sizeof *list);
    size_t total = 0, m = 0, moved = 0;
    if (list)
        for (size_t i = 0; i < c.cap; i++)
            if (c.e[i].w)
                list[total++] = c.e[i];
    if (!list) {
        for (size_t i = 0; i < c.cap; i++)
            lstm_free(c.e[i].w);
        err = err ? err : LSTM_ENOMEM;
    }
    lstm_free(c.e);
    if (!err) {
        qsort(list, total, sizeof *list, by_count);
        m = total < max_size - 2 ? total : max_size - 2;
        while (m > 0 && list[m - 1].count < min_count)  /* by count */
            m--;
        v->tok = lstm_alloc((m + 2) * sizeof *v->tok);
        if (!v->tok)
            err = LSTM_ENOMEM;
    }
    if (!err) {
        static const char *special[2] = {"[PAD]", "[UNK]"};
        for (size_t i = 0; i < 2 && !err; i++) {
            v->tok[i] = lstm_alloc(6);
            if (!v->tok[i])
                err = LSTM_ENOMEM;
            else
                memcpy(v->tok[i], special[i], 6), v->n = i + 1;
        }
        for (; moved < m && !err; moved++) {
            v->tok[moved + 2] = list[moved].w;
            v->n = moved + 3;
        }
        if (!err)
            err = vocab_index(v);
    }
    for (size_t i = moved; list && i < total; i++)
        lstm_free(list[i].w);
    lstm_free(list);
    if (err)
        lstm_vocab_free(v);
    return err;
}

int lstm_vocab_from_list(lstm_vocab *v, char *const *tokens, size_t n)
{
    memset(v, 0, sizeof *v);
    if (n < 2)
        return lstm_error(LSTM_EFORMAT, "vocabulary: %zu tokens, at least 2",
                          n);
    v->tok = lstm_alloc(n * sizeof *v->tok);
    if (!v->tok)
        return LSTM_ENOMEM;
    int err = LSTM_OK;
    for (size_t i = 0; i < n && !err; i++) {
        size_t len = strlen(tokens[i]);
        v->tok[i] = lstm_alloc(len + 1);
        if (!v->tok[i])
            err = LSTM_ENOMEM;
        else
            memcpy(v->tok[i], tokens[i], len), v->n = i + 1;
    }
    if (!err)
        err = vocab_index(v);
    if (err)
        lstm_vocab_free(v);
    return err;
}

int32_t lstm_vocab_id(const lstm_vocab *v, const char *w, size_t n)
{
    size_t h = (size_t)fnv1a(w, n) & (v->nslot - 1);
    while (v->slot[h]) {
        const char *t = v->tok[v->slot[h] - 1];
        if (strncmp(t, w, n) == 0 && t[n] == '\0')
            return (int32_t)(v->slot[h] - 1);
        h = (h + 1) & (v->nslot - 1);
    }
    return LSTM_UNK;
}

typedef struct {
    const lstm_vocab *v;
    int32_t *ids;
    size_t n;
} enc_ctx;

static void encode_word(const char *w, size_t n, void *ctx)
{
    enc_ctx *e = ctx;
    e->ids[e->n++] = lstm_vocab_id(e->v, w, n);
}

size_t lstm_encode(const lstm_vocab *v, const char *text, size_t len,
                   int32_t *ids, size_t max_len)
{
    assert(max_len > 0);
    enc_ctx e = {v, ids, 0};
    lstm_tokenize(text, len, max_len, encode_word, &e);
    size_t n = e.n;
    if (n == 0)
        ids[n++] = LSTM_UNK;
    for (size_t i = n; i < max_len; i++)
        ids[i] = LSTM_PAD;
    return n;
}
