/*
 * textset.c - what a text classifier trains on: the data, its split, the
 * vocabulary of the training rows, every text encoded.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "lstm_text.h"

int lstm_textset_load(lstm_textset *t, const char *path,
                      const char *split_path, uint64_t seed,
                      size_t vocab_size, size_t min_count, size_t max_len)
{
    memset(t, 0, sizeof *t);
    int err = lstm_dataset_load(&t->ds, path);
    if (!err)
        err = split_path ? lstm_split_load(&t->split, split_path, t->ds.n)
                         : lstm_split_random(&t->split, t->ds.n,
                                             (double[3]){0.8, 0.1, 0.1}, seed);
    if (!err && vocab_size && t->split.n[0] == 0)
        err = lstm_error(LSTM_EINVAL, "%s: the training split is empty (%zu "
                         "rows)", path, t->ds.n);
    if (!err && vocab_size)
        err = lstm_vocab_build_min(&t->vocab, &t->ds, t->split.idx[0],
                                   t->split.n[0], vocab_size, min_count);
    if (!err && vocab_size && max_len)
        err = lstm_corpus_encode(&t->tok, &t->vocab, t->ds.text,
                                 t->ds.text_len, t->ds.n, max_len);
    if (err)
        lstm_textset_free(t);
    return err;
}

void lstm_textset_free(lstm_textset *t)
{
    lstm_dataset_free(&t->ds);
    lstm_split_free(&t->split);
    lstm_vocab_free(&t->vocab);
    lstm_corpus_free(&t->tok);
}

void lstm_textset_report(lstm_buf *b, const lstm_textset *t,
                         const char *name, const char *split_note)
{
    const lstm_dataset *ds = &t->ds;
    const lstm_vocab *v = &t->vocab;
    size_t mn = SIZE_MAX, mx = 0;
    double sum = 0;
    for (size_t i = 0; i < ds->n; i++) {
        size_t l = lstm_utf8_len(ds->text[i], ds->text_len[i]);
        mn = l < mn ? l : mn;
        mx = l > mx ? l : mx;
        sum += (double)l;
    }
    lstm_buf_printf(b, "%s: %zu rows\nshortest text: %zu characters\nlongest "
                    "text: %zu characters\nmean length: %.2f characters\n\n"
                    "%zu classes:\n", name, ds->n, mn, mx,
                    sum / (double)ds->n, ds->n_classes);
    for (size_t k = 0; k < ds->n_classes; k++) {
        size_t count = 0;
        for (size_t i = 0; i < ds->n; i++)
            count += (size_t)ds->label[i] == k;
        lstm_buf_printf(b, "  %-20s %6zu  %5.1f%%\n", ds->classes[k], count,
                        100.0 * (double)count / (double)ds->n);
    }
    if (v->n < 2)
        return;
    const size_t words = v->n - 2;
    lstm_buf_printf(b, "\nvocabulary: %zu tokens ([PAD], [UNK] and the %zu "
                    "most frequent words of the %zu training texts%s)\n", v->n,
                    words, t->split.n[0], split_note);
    const char *title[3] = {"first 15 tokens:", "15 tokens from the middle:",
                            "last 15 tokens:"};
    const size_t from[3] = {2, 2 + words / 2, v->n > 17 ? v->n - 15 : 2};
    for (int s = 0; s < 3; s++) {
        lstm_buf_printf(b, "%s\n  [", title[s]);
        for (size_t i = from[s]; i < from[s] + 15 && i < v->n; i++)
            lstm_buf_printf(b, "%s'%s'", i > from[s] ? ", " : "", v->tok[i]);
        lstm_buf_puts(b, "]\n");
    }
}
