/*
 * csv.c - a streaming RFC 4180 reader over plain or gzip-compressed files
 * (zlib reads both). It knows nothing of columns: see dataset.c for the
 * header and the rows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"
#include "lstm_text.h"

#define CSV_MAX_RECORD ((size_t)256 << 20)

struct lstm_csv {
    gzFile gz;
    char path[512];
    unsigned char buf[1 << 16];
    size_t pos, end;
    int eof, started;
    size_t line, rec_line;
    char *rec;                /* the record's fields, each NUL-terminated */
    size_t rlen, rcap;
    size_t *start, *len;      /* per field */
    char **ptr;
    size_t nf, fcap;
};

int lstm_csv_open(lstm_csv **out, const char *path)
{
    *out = NULL;
    lstm_csv *c = lstm_alloc(sizeof *c);
    if (!c)
        return LSTM_ENOMEM;
    snprintf(c->path, sizeof c->path, "%s", path);
    c->gz = gzopen(path, "rb");
    if (!c->gz) {
        int e = errno;
        lstm_free(c);
        return lstm_error(LSTM_EIO, "%s: cannot open: %s", path,
                          e ? strerror(e) : "out of memory");
    }
    gzbuffer(c->gz, 1 << 17);
    c->line = 1;
    *out = c;
    return LSTM_OK;
}

void lstm_csv_close(lstm_csv *c)
{
    if (!c)
        return;
    if (c->gz)
        gzclose(c->gz);
    lstm_free(c->rec);
    lstm_free(c->start);
    lstm_free(c->len);
    lstm_free(c->ptr);
    lstm_free(c);
}

size_t lstm_csv_line(const lstm_csv *c) { return c->rec_line; }

/* Next byte, -1 at the end, or -2 after setting an error. */
static int get(lstm_csv *c)
{
    if (c->pos == c->end) {
        if (c->eof)
            return -1;
        int n = gzread(c->gz, c->buf, sizeof c->buf);
        if (n < 0) {
            int zerr;
            const char *msg = gzerror(c->gz, &zerr);
            lstm_error(LSTM_EFORMAT, "%s: line %zu: cannot read: %s", c->path,
                       c->line,
                       zerr == Z_ERRNO ? strerror(errno) : msg);
            return -2;
        }
        if (n == 0) {
            /* a truncated gzip stream reads as a short file: ask zlib */
            int zerr;
            const char *msg = gzerror(c->gz, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END) {
                lstm_error(LSTM_EFORMAT, "%s: line %zu: cannot read: %s",
                           c->path, c->line, msg);
                return -2;
            }
            c->eof = 1;
            return -1;
        }
        c->pos = 0;
        c->end = (size_t)n;
        if (!c->started) {  /* a UTF-8 byte-order mark is not data */
            c->started = 1;
            if (n >= 3 && memcmp(c->buf, "\xef\xbb\xbf", 3) == 0)
                c->pos = 3;
            if (c->pos == c->end)
                return get(c);
        }
    }
    return c->buf[c->pos++];
}

static int peek(lstm_csv *c)
{
    int ch = get(c);
    if (ch >= 0)
        c->pos--;
    return ch;
}

static int put(lstm_csv *c, int ch)
{
    if (c->rlen + 1 >= c->rcap) {
        if (c->rcap >= CSV_MAX_RECORD)
            return lstm_error(LSTM_EFORMAT,
                              "%s: line %zu: record longer than %zu MiB",
                              c->path, c->rec_line, CSV_MAX_RECORD >> 20);
        size_t cap = c->rcap ? 2 * c->rcap : 4096;
        char *r = lstm_alloc(cap);
        if (!r)
            return LSTM_ENOMEM;
        if (c->rlen)
            memcpy(r, c->rec, c->rlen);
        lstm_free(c->rec);
        c->rec = r;
        c->rcap = cap;
    }
    c->rec[c->rlen++] = (char)ch;
    return LSTM_OK;
}

static int end_field(lstm_csv *c, size_t start)
{
    if (c->nf == c->fcap) {
        size_t cap = c->fcap ? 2 * c->fcap : 16;
        size_t *s = lstm_alloc(cap * sizeof *s), *l = lstm_alloc(cap * sizeof *l);
        char **p = lstm_alloc(cap * sizeof *p);
        if (!s || !l || !p) {
            lstm_free(s);
            lstm_free(l);
            lstm_free(p);
            return LSTM_ENOMEM;
        }
        if (c->nf) {
            memcpy(s, c->start, c->nf * sizeof *s);
            memcpy(l, c->len, c->nf * sizeof *l);
        }
        lstm_free(c->start);
        lstm_free(c->len);
        lstm_free(c->ptr);
        c->start = s;
        c->len = l;
        c->ptr = p;
        c->fcap = cap;
    }
    c->start[c->nf] = start;
    c->len[c->nf] = c->rlen - start;
    c->nf++;
    return put(c, '\0');
}

static int nul_error(lstm_csv *c)
{
    return lstm_error(LSTM_EFORMAT, "%s: line %zu: NUL byte in the data",
                      c->path, c->line);
}

int lstm_csv_next(lstm_csv *c, char ***fields, size_t **lens, size_t *n)
{
    int ch, err;
    c->rlen = 0;
    c->nf = 0;
    /* skip blank lines */
    for (;;) {
        ch = get(c);
        if (ch == -2)
            return LSTM_EFORMAT;
        if (ch == -1)
            return 0;
        if (ch == '\n') {
            c->line++;
        } else if (ch == '\r') {
            if (peek(c) == '\n')
                get(c);
            c->line++;
        } else {
            break;
        }
    }
    c->rec_line = c->line;
    for (;;) {  /* one field per iteration; ch is its first byte */
        size_t start = c->rlen;
        if (ch == '"') {
            size_t open_line = c->line;
            for (;;) {
                ch = get(c);
                if (ch == -2)
                    return LSTM_EFORMAT;
                if (ch == -1)
                    return lstm_error(LSTM_EFORMAT,
                                      "%s: line %zu: unterminated quoted field "
                                      "(it runs to the end of the file)",
                                      c->path, open_line);
                if (ch == 0)
                    return nul_error(c);
                if (ch == '"') {
                    if (peek(c) != '"')
                        break;
                    get(c);
                } else if (ch == '\n') {
                    c->line++;
                }
                if ((err = put(c, ch)))
                    return err;
            }
            ch = get(c);
            if (ch == -2)
                return LSTM_EFORMAT;
            if (ch != ',' && ch != '\n' && ch != '\r' && ch != -1) {
                if (ch == 0)
                    return nul_error(c);
                return lstm_error(LSTM_EFORMAT,
                                  "%s: line %zu: unexpected '%c' after a "
                                  "closing quote (field %zu)",
                                  c->path, c->line,
                                  ch >= 32 && ch < 127 ? ch : '?', c->nf + 1);
            }
        } else {
            while (ch != ',' && ch != '\n' && ch != '\r' && ch != -1) {
                if (ch == 0)
                    return nul_error(c);
                if ((err = put(c, ch)))
                    return err;
                ch = get(c);
                if (ch == -2)
                    return LSTM_EFORMAT;
            }
        }
        if ((err = end_field(c, start)))
            return err;
        if (ch == ',') {
            ch = get(c);
            if (ch == -2)
                return LSTM_EFORMAT;
            if (ch == -1 || ch == '\n' || ch == '\r') {
                /* a trailing comma: one more, empty field */
                if ((err = end_field(c, c->rlen)))
                    return err;
            } else {
                continue;
            }
        }
        if (ch == '\r' && peek(c) == '\n')
            get(c);
        if (ch == '\n' || ch == '\r')
            c->line++;
        break;
    }
    for (size_t i = 0; i < c->nf; i++)
        c->ptr[i] = c->rec + c->start[i];
    *fields = c->ptr;
    *lens = c->len;
    *n = c->nf;
    return 1;
}
