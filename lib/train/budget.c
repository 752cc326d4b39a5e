/*
 * budget.c - what a classifier training run will hold in memory and
 * write, from its configuration and data, before any weight exists.
 */
#include <string.h>

#include "internal.h"
#include "lstm_train.h"

void lstm_train_budget_of(lstm_train_budget *b,
                          const lstm_classifier_config *cfg, size_t batch,
                          size_t max_len, int keep_best,
                          const lstm_dataset *ds, const lstm_corpus *c,
                          const lstm_vocab *v)
{
    const double n = (double)lstm_classifier_params(cfg);
    const size_t B = batch > LSTM_EVAL_BATCH ? batch : LSTM_EVAL_BATCH;
    const double model = (double)lstm_classifier_memory(cfg, B, max_len);
    b->rows = B;
    b->params = 4.0 * n * (4 + keep_best);
    b->activations = model - 8.0 * n;
    /* the texts as read (with about 48 bytes of bookkeeping a row) and
     * their tokens */
    b->texts = 0;
    for (size_t i = 0; i < ds->n; i++)
        b->texts += (double)ds->text_len[i] + 49.0 + 16.0 + 4.0 * c->len[i];
    /* the state is serialised in one buffer before it is written */
    b->state = 4.0 * n * (3 + keep_best) + 65536.0;
    b->total = model + 4.0 * n * (2 + keep_best) + b->texts + b->state;
    double vocab = 0;
    for (size_t i = 0; i < v->n; i++)
        vocab += 2.0 * (double)strlen(v->tok[i]) + 3.0;
    b->checkpoint = 4.0 * n + vocab + 65536.0;
}
