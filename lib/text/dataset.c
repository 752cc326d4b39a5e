/*
 * dataset.c - labelled texts from a CSV with a header (columns found by
 * name), their class names, and the checksum a resumed run compares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_io.h"
#include "lstm_text.h"

static char *dup_n(const char *s, size_t n)
{
    char *d = lstm_alloc(n + 1);
    if (d)
        memcpy(d, s, n);
    return d;
}

void lstm_dataset_free(lstm_dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        lstm_free(ds->text[i]);
    for (size_t i = 0; i < ds->n_classes; i++)
        lstm_free(ds->classes[i]);
    lstm_free(ds->text);
    lstm_free(ds->text_len);
    lstm_free(ds->label);
    lstm_free(ds->line);
    lstm_free(ds->classes);
    memset(ds, 0, sizeof *ds);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Grows the row arrays to hold cap rows; cats holds the raw category of
 * each row until the classes are known (stored in label's place). */
static int grow(lstm_dataset *ds, char ***cats, size_t cap)
{
    char **t = lstm_alloc(cap * sizeof *t), **c = lstm_alloc(cap * sizeof *c);
    size_t *tl = lstm_alloc(cap * sizeof *tl), *ln = lstm_alloc(cap * sizeof *ln);
    if (!t || !c || !tl || !ln) {
        lstm_free(t);
        lstm_free(c);
        lstm_free(tl);
        lstm_free(ln);
        return LSTM_ENOMEM;
    }
    if (ds->n) {
        memcpy(t, ds->text, ds->n * sizeof *t);
        memcpy(c, *cats, ds->n * sizeof *c);
        memcpy(tl, ds->text_len, ds->n * sizeof *tl);
        memcpy(ln, ds->line, ds->n * sizeof *ln);
    }
    lstm_free(ds->text);
    lstm_free(*cats);
    lstm_free(ds->text_len);
    lstm_free(ds->line);
    ds->text = t;
    *cats = c;
    ds->text_len = tl;
    ds->line = ln;
    return LSTM_OK;
}

static int check_utf8(const char *path, size_t line, const char *col,
                      const char *s, size_t n)
{
    size_t ok = lstm_utf8_valid(s, n);
    if (ok == n)
        return LSTM_OK;
    return lstm_error(LSTM_EFORMAT,
                      "%s: line %zu: field '%s' is not valid UTF-8 (byte %zu)",
                      path, line, col, ok + 1);
}

static int assign_labels(lstm_dataset *ds, char **cats)
{
    /* classes = sorted unique categories */
    char **sorted = lstm_alloc(ds->n * sizeof *sorted);
    if (!sorted)
        return LSTM_ENOMEM;
    memcpy(sorted, cats, ds->n * sizeof *sorted);
    qsort(sorted, ds->n, sizeof *sorted, cmp_str);
    size_t nc = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
            sorted[nc++] = sorted[i];
    ds->classes = lstm_alloc(nc * sizeof *ds->classes);
    ds->label = lstm_alloc(ds->n * sizeof *ds->label);
    int err = ds->classes && ds->label ? LSTM_OK : LSTM_ENOMEM;
    for (size_t i = 0; !err && i < nc; i++) {
        ds->classes[i] = dup_n(sorted[i], strlen(sorted[i]));
        if (!ds->classes[i])
            err = LSTM_ENOMEM;
        else
            ds->n_classes = i + 1;
    }
    for (size_t i = 0; !err && i < ds->n; i++) {
        char **hit = bsearch(&cats[i], ds->classes, nc, sizeof *ds->classes,
                             cmp_str);
        assert(hit);
        ds->label[i] = (int32_t)(hit - ds->classes);
    }
    lstm_free(sorted);
    return err;
}

int lstm_dataset_load(lstm_dataset *ds, const char *path)
{
    memset(ds, 0, sizeof *ds);
    lstm_csv *c;
    int err = lstm_csv_open(&c, path);
    if (err)
        return err;
    char **f, **cats = NULL;
    size_t *fl, nf, cap = 0;
    int r = lstm_csv_next(c, &f, &fl, &nf);
    if (r <= 0) {
        lstm_csv_close(c);
        return r < 0 ? r : lstm_error(LSTM_EFORMAT,
                                      "%s: empty file: expected a header line "
                                      "with 'text' and 'category'",
                                      path);
    }
    const size_t ncols = nf;
    size_t col_text = SIZE_MAX, col_cat = SIZE_MAX;
    for (size_t i = 0; i < nf && !err; i++) {
        size_t *col = strcmp(f[i], "text") == 0       ? &col_text
                      : strcmp(f[i], "category") == 0 ? &col_cat
                                                      : NULL;
        if (col && *col != SIZE_MAX)  /* which one would be a guess */
            err = lstm_error(LSTM_EFORMAT, "%s: line 1: the header names "
                             "column '%s' twice (columns %zu and %zu)", path,
                             f[i], *col + 1, i + 1);
        else if (col)
            *col = i;
    }
    if (err) {
        lstm_csv_close(c);
        return err;
    }
    if (col_text == SIZE_MAX || col_cat == SIZE_MAX) {
        lstm_buf found = {0};
        for (size_t i = 0; i < nf && i < 20; i++)
            lstm_buf_printf(&found, "%s%.40s", i ? ", " : "", f[i]);
        err = lstm_error(LSTM_EFORMAT,
                         "%s: line 1: no '%s' column in the header (found: %s)",
                         path, col_text == SIZE_MAX ? "text" : "category",
                         found.s ? found.s : "");
        lstm_buf_free(&found);
        lstm_csv_close(c);
        return err;
    }
    while ((r = lstm_csv_next(c, &f, &fl, &nf)) > 0) {
        size_t line = lstm_csv_line(c);
        if (nf != ncols) {
            err = lstm_error(LSTM_EFORMAT,
                             "%s: line %zu: %zu fields, the header has %zu",
                             path, line, nf, ncols);
            break;
        }
        if ((err = check_utf8(path, line, "text", f[col_text], fl[col_text])) ||
            (err = check_utf8(path, line, "category", f[col_cat],
                              fl[col_cat])))
            break;
        if (fl[col_cat] == 0) {
            err = lstm_error(LSTM_EFORMAT, "%s: line %zu: empty 'category'",
                             path, line);
            break;
        }
        if (!strcmp(f[col_text], "text") && !strcmp(f[col_cat], "category")) {
            err = lstm_error(LSTM_EFORMAT, "%s: line %zu: the header line "
                             "again (two files joined?)", path, line);
            break;
        }
        if (ds->n == cap) {
            cap = cap ? 2 * cap : 1024;
            if ((err = grow(ds, &cats, cap)))
                break;
        }
        ds->text[ds->n] = dup_n(f[col_text], fl[col_text]);
        cats[ds->n] = dup_n(f[col_cat], fl[col_cat]);
        if (!ds->text[ds->n] || !cats[ds->n]) {
            lstm_free(ds->text[ds->n]);
            lstm_free(cats[ds->n]);
            err = LSTM_ENOMEM;
            break;
        }
        ds->text_len[ds->n] = fl[col_text];
        ds->line[ds->n] = line;
        ds->n++;
    }
    if (r < 0)
        err = r;
    lstm_csv_close(c);
    if (!err && ds->n == 0)
        err = lstm_error(LSTM_EFORMAT, "%s: no data rows after the header",
                         path);
    if (!err)
        err = assign_labels(ds, cats);
    for (size_t i = 0; i < ds->n; i++)
        lstm_free(cats[i]);
    lstm_free(cats);
    if (err)
        lstm_dataset_free(ds);
    return err;
}

/* The data a run trained on, so a resume notices a changed file. */
uint32_t lstm_dataset_crc(const lstm_dataset *ds)
{
    uint32_t *h = lstm_alloc((2 * ds->n + 1) * sizeof *h), crc = 0;
    if (!h)
        return 0;
    for (size_t i = 0; i < ds->n; i++) {
        h[2 * i] = lstm_crc32c(ds->text[i], ds->text_len[i]);
        const char *cl = ds->classes[ds->label[i]];
        h[2 * i + 1] = lstm_crc32c(cl, strlen(cl));
    }
    crc = lstm_crc32c(h, 2 * ds->n * sizeof *h);
    lstm_free(h);
    return crc;
}

int lstm_dataset_labels_in(const lstm_dataset *ds, const char *name,
                           char *const *classes, size_t C, int32_t *labels)
{
    for (size_t i = 0; i < ds->n; i++) {
        const char *cat = ds->classes[ds->label[i]];
        size_t k = 0;
        while (k < C && strcmp(classes[k], cat) != 0)
            k++;
        if (k == C)
            return lstm_error(LSTM_EINVAL, "%s: line %zu: category '%s' is "
                              "not one of the model's %zu classes", name,
                              ds->line[i], cat, C);
        labels[i] = (int32_t)k;
    }
    return LSTM_OK;
}
