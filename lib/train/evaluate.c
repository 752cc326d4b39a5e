/*
 * evaluate.c - the classifier over rows of an encoded corpus, in
 * inference batches: predictions, probabilities, mean loss, accuracy.
 */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "lstm_train.h"

int lstm_evaluate(lstm_classifier *m, const lstm_corpus *c,
                  const size_t *rows, size_t n, const int32_t *labels,
                  int32_t *pred, float *probs, double *loss, double *acc)
{
    lstm_batch b;
    int err = lstm_batch_init(&b, LSTM_EVAL_BATCH, c->max_len);
    if (err)
        return err;
    const size_t C = m->cfg.C;
    double lsum = 0;
    size_t correct = 0;
    for (size_t s = 0; s < n; s += LSTM_EVAL_BATCH) {
        size_t B = n - s < LSTM_EVAL_BATCH ? n - s : LSTM_EVAL_BATCH;
        lstm_batch_gather(&b, c, rows + s, B, labels);
        float l = 0;
        err = lstm_classifier_forward(m, b.ids, b.len, B, b.T,
                                      labels ? b.y : NULL, &l, 0, NULL);
        if (err)
            break;
        lsum += (double)l * (double)B;
        for (size_t i = 0; i < B; i++) {
            const float *lp = m->logp + i * C;
            size_t best = lstm_argmax(lp, C);
            pred[s + i] = (int32_t)best;
            if (probs)
                for (size_t k = 0; k < C; k++)
                    probs[(s + i) * C + k] = expf(lp[k]);
            if (labels)
                correct += (int32_t)best == b.y[i];
        }
    }
    lstm_batch_free(&b);
    if (err)
        return err;
    if (loss)
        *loss = n && labels ? lsum / (double)n : 0.0;
    if (acc)
        *acc = n && labels ? (double)correct / (double)n : 0.0;
    return LSTM_OK;
}

int lstm_predictions_csv(const char *path, const lstm_dataset *ds,
                         const size_t *rows, size_t n, const int32_t *labels,
                         const int32_t *pred, const float *probs,
                         char *const *classes, size_t C)
{
    lstm_buf b = {0}, t = {0};
    lstm_buf_puts(&b, "row,line,category,prediction,probability,correct,"
                      "text\n");
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        const char *truth = classes[labels[r]], *guess = classes[pred[i]];
        lstm_buf_printf(&b, "%zu,%zu,", r, ds->line[r]);
        lstm_buf_csv(&b, truth, strlen(truth), 0);
        lstm_buf_put(&b, ",", 1);
        lstm_buf_csv(&b, guess, strlen(guess), 0);
        lstm_buf_printf(&b, ",%.4f,%d,", (double)probs[i * C + (size_t)pred[i]],
                        labels[r] == pred[i]);
        t.len = 0;
        lstm_buf_excerpt(&t, ds->text[r], ds->text_len[r], 100);
        lstm_buf_csv(&b, t.s, t.len, 1);
        lstm_buf_puts(&b, "\n");
    }
    int err = b.err || t.err ? LSTM_ENOMEM
                             : lstm_write_atomic(path, b.s, b.len);
    lstm_buf_free(&b);
    lstm_buf_free(&t);
    return err;
}
