/*
 * buf.c - a growable string, for building JSON and messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "lstm_io.h"

static int buf_reserve(lstm_buf *b, size_t more)
{
    if (b->err)
        return 0;
    if (b->len + more + 1 <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = lstm_alloc(cap);
    if (!s) {
        b->err = 1;
        return 0;
    }
    if (b->len)
        memcpy(s, b->s, b->len);
    lstm_free(b->s);
    b->s = s;
    b->cap = cap;
    return 1;
}

void lstm_buf_put(lstm_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    if (n)  /* s may be NULL then (an empty buffer's string) */
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void lstm_buf_puts(lstm_buf *b, const char *s) { lstm_buf_put(b, s, strlen(s)); }

void lstm_buf_printf(lstm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void lstm_buf_json_str(lstm_buf *b, const char *s, size_t n)
{
    lstm_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            lstm_buf_put(b, e, 2);
        } else if (c < 0x20) {
            lstm_buf_printf(b, "\\u%04x", c);
        } else {
            lstm_buf_put(b, (const char *)&s[i], 1);
        }
    }
    lstm_buf_put(b, "\"", 1);
}

void lstm_buf_free(lstm_buf *b)
{
    lstm_free(b->s);
    memset(b, 0, sizeof *b);
}

void lstm_buf_csv(lstm_buf *b, const char *s, size_t n, int always)
{
    s = n ? s : "";
    int quote = always;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        lstm_buf_put(b, s, n);
        return;
    }
    lstm_buf_put(b, "\"", 1);
    for (size_t i = 0, from = 0; i <= n; i++)
        if (i == n || s[i] == '"') {  /* up to and including the quote */
            lstm_buf_put(b, s + from, i - from + (i < n));
            from = i;
        }
    lstm_buf_put(b, "\"", 1);
}

static size_t chars_of(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

void lstm_buf_pad(lstm_buf *b, const char *s, size_t width)
{
    s = s ? s : "";
    size_t n = strlen(s);
    lstm_buf_put(b, s, n);
    for (size_t k = chars_of(s, n); k < width; k++)
        lstm_buf_put(b, " ", 1);
}

void lstm_buf_excerpt(lstm_buf *b, const char *s, size_t n, size_t nchars)
{
    size_t i = 0, k = 0;
    while (i < n && k < nchars) {  /* i: the end of the k-th character */
        size_t j = i + 1;
        while (j < n && ((unsigned char)s[j] & 0xc0) == 0x80)
            j++;
        i = j, k++;
    }
    for (size_t p = 0; p < i; p++) {
        char c = s[p];
        lstm_buf_put(b, c == '\n' || c == '\r' || c == '\t' ? " " : &c, 1);
    }
    lstm_buf_puts(b, i < n ? "..." : "");  /* always NUL-terminated */
}
