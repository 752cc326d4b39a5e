/*
 * metrics.c - accuracy, the confusion matrix and per-class precision,
 * recall and F1 (0 where a class was never predicted or never present, as
 * scikit-learn's zero_division=0), and their macro average over the classes
 * that occur in the truth or the predictions (scikit-learn's labels),
 * and the printed report of them.
 */
#include <string.h>

#include "internal.h"
#include "lstm_train.h"

int lstm_metrics_init(lstm_metrics *m, size_t C)
{
    memset(m, 0, sizeof *m);
    if (C > 32768)  /* C x C counts: 8 GB at 32768 */
        return lstm_error(LSTM_ENOMEM, "metrics: %zu classes: the confusion "
                          "matrix would need %.0f GB", C,
                          (double)C * (double)C * sizeof(size_t) / 1e9);
    m->C = C;
    m->confusion = lstm_alloc(C * C * sizeof *m->confusion);
    m->support = lstm_alloc(C * sizeof *m->support);
    m->precision = lstm_alloc(C * sizeof *m->precision);
    m->recall = lstm_alloc(C * sizeof *m->recall);
    m->f1 = lstm_alloc(C * sizeof *m->f1);
    if (!m->confusion || !m->support || !m->precision || !m->recall || !m->f1) {
        lstm_metrics_free(m);
        return LSTM_ENOMEM;
    }
    return LSTM_OK;
}

void lstm_metrics_add(lstm_metrics *m, int32_t truth, int32_t pred)
{
    assert(truth >= 0 && (size_t)truth < m->C && pred >= 0 &&
           (size_t)pred < m->C);
    m->confusion[(size_t)truth * m->C + (size_t)pred]++;
    m->total++;
}

void lstm_metrics_finish(lstm_metrics *m)
{
    const size_t C = m->C;
    size_t correct = 0, seen = 0;
    double f1sum = 0;
    for (size_t c = 0; c < C; c++) {
        size_t tp = m->confusion[c * C + c], pred = 0, real = 0;
        for (size_t k = 0; k < C; k++) {
            pred += m->confusion[k * C + c];
            real += m->confusion[c * C + k];
        }
        correct += tp;
        m->support[c] = real;
        m->precision[c] = pred ? (double)tp / (double)pred : 0.0;
        m->recall[c] = real ? (double)tp / (double)real : 0.0;
        double s = m->precision[c] + m->recall[c];
        m->f1[c] = s > 0 ? 2 * m->precision[c] * m->recall[c] / s : 0.0;
        if (real || pred) {
            f1sum += m->f1[c];
            seen++;
        }
    }
    m->accuracy = m->total ? (double)correct / (double)m->total : 0.0;
    m->macro_f1 = seen ? f1sum / (double)seen : 0.0;
}

int lstm_metrics_of(lstm_metrics *m, size_t C, const size_t *rows, size_t n,
                    const int32_t *labels, const int32_t *pred)
{
    int err = lstm_metrics_init(m, C);
    for (size_t i = 0; !err && i < n; i++)
        lstm_metrics_add(m, labels[rows[i]], pred[i]);
    if (!err)
        lstm_metrics_finish(m);
    return err;
}

void lstm_metrics_free(lstm_metrics *m)
{
    lstm_free(m->confusion);
    lstm_free(m->support);
    lstm_free(m->precision);
    lstm_free(m->recall);
    lstm_free(m->f1);
    memset(m, 0, sizeof *m);
}

void lstm_metrics_report(lstm_buf *b, const lstm_metrics *m,
                         char *const *classes)
{
    const size_t C = m->C;
    size_t w = 8;
    for (size_t c = 0; c < C; c++) {
        size_t l = lstm_utf8_len(classes[c], strlen(classes[c]));
        w = l > w ? l : w;
    }
    lstm_buf_puts(b, "\n");
    lstm_buf_pad(b, "", w);
    lstm_buf_puts(b, "  precision  recall      f1  support\n");
    for (size_t c = 0; c < C; c++) {
        lstm_buf_pad(b, classes[c], w);
        lstm_buf_printf(b, "  %9.3f %7.3f %7.3f %8zu\n", m->precision[c],
                        m->recall[c], m->f1[c], m->support[c]);
    }
    lstm_buf_pad(b, "accuracy", w);
    lstm_buf_printf(b, "  %25.3f %8zu\n", m->accuracy, m->total);
    lstm_buf_pad(b, "macro f1", w);
    lstm_buf_printf(b, "  %25.3f\n", m->macro_f1);
    lstm_buf_puts(b, "\nconfusion matrix (rows: true class, columns: "
                     "predicted)\n");
    lstm_buf_pad(b, "", w);
    for (size_t c = 0; c < C; c++)
        lstm_buf_printf(b, " %5.5s", classes[c]);
    lstm_buf_puts(b, "\n");
    for (size_t r = 0; r < C; r++) {
        lstm_buf_pad(b, classes[r], w);
        for (size_t c = 0; c < C; c++)
            lstm_buf_printf(b, " %5zu", m->confusion[r * C + c]);
        lstm_buf_puts(b, "\n");
    }
}

void lstm_metrics_examples(lstm_buf *b, const lstm_dataset *ds,
                           const lstm_corpus *c, const lstm_vocab *v,
                           const size_t *rows, size_t n,
                           const int32_t *labels, const int32_t *pred,
                           char *const *classes, size_t max)
{
    lstm_buf t = {0}, u = {0};  /* scratch */
    for (int errors_only = 0; errors_only < 2; errors_only++) {
        lstm_buf_printf(b, "\nfirst %zu %s\n%6s  %-42s %-36s %-14s %s\n", max,
                        errors_only ? "errors" : "test predictions", "row",
                        "text", "tokens", "category", "prediction");
        size_t shown = 0;
        for (size_t i = 0; i < n && shown < max; i++) {
            size_t r = rows[i], len = (size_t)c->len[r];
            if (errors_only && labels[r] == pred[i])
                continue;
            t.len = u.len = 0;
            lstm_buf_excerpt(&t, ds->text[r], ds->text_len[r], 40);
            lstm_buf_printf(b, "%6zu  ", r);
            lstm_buf_pad(b, t.s, 42);
            t.len = 0;
            for (size_t k = 0; k < len && k < 4; k++)
                lstm_buf_printf(&t, "%s%s", k ? " " : "",
                                v->tok[c->ids[c->off[r] + k]]);
            lstm_buf_puts(&t, len > 4 ? " ..." : "");
            lstm_buf_excerpt(&u, t.s, t.len, 34);
            lstm_buf_puts(b, " ");
            lstm_buf_pad(b, u.s, 36);
            lstm_buf_puts(b, " ");
            lstm_buf_pad(b, classes[labels[r]], 14);
            lstm_buf_printf(b, " %s\n", classes[pred[i]]);
            shown++;
        }
        lstm_buf_puts(b, shown ? "" : "  (none)\n");
    }
    lstm_buf_free(&t);
    lstm_buf_free(&u);
}
