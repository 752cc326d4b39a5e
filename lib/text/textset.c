/*
 * textset.c - what a text classifier trains on: the data, its split, the
 * vocabulary of the training rows, every text encoded.
 */
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
