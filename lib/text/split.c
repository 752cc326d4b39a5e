/*
 * split.c - the seeded train/val/test split, as torch.utils.data.random_split
 * gives it, and its split.json file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_io.h"
#include "lstm_text.h"

void lstm_split_free(lstm_split *s)
{
    for (int k = 0; k < 3; k++)
        lstm_free(s->idx[k]);
    memset(s, 0, sizeof *s);
}

int lstm_split_random(lstm_split *s, size_t n, const double frac[3],
                      uint64_t seed)
{
    memset(s, 0, sizeof *s);
    double total = frac[0] + frac[1] + frac[2];
    if (!(frac[0] >= 0 && frac[1] >= 0 && frac[2] >= 0) ||
        total < 0.999999 || total > 1.000001)
        return lstm_error(LSTM_EINVAL, "split: fractions %g %g %g must be >= 0 "
                          "and sum to 1", frac[0], frac[1], frac[2]);
    size_t got = 0;
    for (int k = 0; k < 3; k++) {
        s->n[k] = (size_t)((double)n * frac[k]);
        got += s->n[k];
    }
    for (size_t i = 0; got < n; i++, got++)  /* as torch's random_split */
        s->n[i % 3]++;
    size_t *perm = lstm_alloc((n ? n : 1) * sizeof *perm);
    if (!perm)
        return LSTM_ENOMEM;
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    lstm_rng r;
    lstm_rng_seed(&r, seed);
    lstm_rng_shuffle(&r, perm, n);
    size_t at = 0;
    for (int k = 0; k < 3; k++) {
        s->idx[k] = lstm_alloc((s->n[k] ? s->n[k] : 1) * sizeof(size_t));
        if (!s->idx[k]) {
            lstm_free(perm);
            lstm_split_free(s);
            return LSTM_ENOMEM;
        }
        memcpy(s->idx[k], perm + at, s->n[k] * sizeof(size_t));
        at += s->n[k];
    }
    lstm_free(perm);
    return LSTM_OK;
}

static const char *split_names[3] = {"train", "val", "test"};

int lstm_split_save(const lstm_split *s, const char *path)
{
    lstm_buf b = {0};
    lstm_buf_puts(&b, "{");
    for (int k = 0; k < 3; k++) {
        lstm_buf_printf(&b, "%s\"%s\": [", k ? ",\n " : "", split_names[k]);
        for (size_t i = 0; i < s->n[k]; i++)
            lstm_buf_printf(&b, "%s%zu", i ? ", " : "", s->idx[k][i]);
        lstm_buf_puts(&b, "]");
    }
    lstm_buf_puts(&b, "}\n");
    int err = b.err ? LSTM_ENOMEM : lstm_write_atomic(path, b.s, b.len);
    lstm_buf_free(&b);
    return err;
}

int lstm_split_load(lstm_split *s, const char *path, size_t n)
{
    memset(s, 0, sizeof *s);
    char *text;
    size_t len;
    int err = lstm__read_regular(path, &text, &len, (size_t)1 << 30);
    if (err)
        return err;
    lstm_json j;
    err = lstm_json_parse(&j, text, len);
    lstm_free(text);
    if (err) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", lstm_errmsg());
        return lstm_error(err, "%s: %s", path, msg);
    }
    unsigned char *used = lstm_alloc(n ? n : 1);
    if (!used) {
        lstm_json_free(&j);
        return LSTM_ENOMEM;
    }
    for (int k = 0; !err && k < 3; k++) {
        const lstm_json *a = lstm_json_get(&j, split_names[k]);
        if (!a || a->type != LSTM_JSON_ARR) {
            err = lstm_error(LSTM_EFORMAT, "%s: no \"%s\" array", path,
                             split_names[k]);
            break;
        }
        s->idx[k] = lstm_alloc((a->n ? a->n : 1) * sizeof(size_t));
        if (!s->idx[k]) {
            err = LSTM_ENOMEM;
            break;
        }
        s->n[k] = a->n;
        for (size_t i = 0; i < a->n; i++) {
            double v = a->items[i].num;
            if (a->items[i].type != LSTM_JSON_NUM || v < 0 || v >= (double)n ||
                v != (double)(size_t)v) {
                err = lstm_error(LSTM_EFORMAT,
                                 "%s: \"%s\"[%zu] is not a row index below %zu",
                                 path, split_names[k], i, n);
                break;
            }
            size_t row = (size_t)v;
            if (used[row]++) {
                err = lstm_error(LSTM_EFORMAT, "%s: row %zu appears twice",
                                 path, row);
                break;
            }
            s->idx[k][i] = row;
        }
    }
    lstm_free(used);
    lstm_json_free(&j);
    if (err)
        lstm_split_free(s);
    return err;
}
