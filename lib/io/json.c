/*
 * json.c - a small JSON reader (a DOM of lstm_json nodes). Enough for
 * safetensors headers, checkpoint metadata and split files; it rejects what
 * RFC 8259 rejects and limits nesting to 64 levels.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_io.h"

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
} parser;

static int fail(parser *p, const char *what)
{
    return lstm_error(LSTM_EFORMAT, "invalid JSON at byte %zu: %s", p->i + 1,
                      what);
}

static void ws(parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
                           p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int hex4(parser *p, unsigned *out)
{
    if (p->n - p->i < 4)
        return fail(p, "short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return fail(p, "bad \\u escape");
    }
    *out = v;
    return LSTM_OK;
}

static void put_utf8(lstm_buf *b, unsigned cp)
{
    char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (char)cp; k = 1; }
    else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); k = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)); k = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    lstm_buf_put(b, u, k);
}

/* Parses a string at p->i (the opening quote) into *out, *len. */
static int parse_str(parser *p, char **out, size_t *len)
{
    lstm_buf b = {0};
    p->i++;
    for (;;) {
        if (p->i >= p->n) {
            lstm_buf_free(&b);
            return fail(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"')
            break;
        if (c < 0x20) {
            lstm_buf_free(&b);
            return fail(p, "control character in a string");
        }
        if (c != '\\') {
            /* copy a run of plain bytes at once */
            size_t j = p->i;
            while (j < p->n && p->s[j] != '"' && p->s[j] != '\\' &&
                   (unsigned char)p->s[j] >= 0x20)
                j++;
            lstm_buf_put(&b, p->s + p->i - 1, j - p->i + 1);
            p->i = j;
            continue;
        }
        if (p->i >= p->n) {
            lstm_buf_free(&b);
            return fail(p, "unterminated escape");
        }
        char e = p->s[p->i++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out_c[] = "\"\\/\b\f\n\r\t";
            lstm_buf_put(&b, &out_c[simple - "\"\\/bfnrt"], 1);
        } else if (e == 'u') {
            unsigned cp, lo;
            int err = hex4(p, &cp);
            if (!err && cp >= 0xd800 && cp < 0xdc00) {
                if (p->n - p->i >= 2 && p->s[p->i] == '\\' &&
                    p->s[p->i + 1] == 'u') {
                    p->i += 2;
                    err = hex4(p, &lo);
                    if (!err && (lo < 0xdc00 || lo > 0xdfff))
                        err = fail(p, "bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else {
                    err = fail(p, "lone surrogate");
                }
            } else if (!err && cp >= 0xdc00 && cp <= 0xdfff) {
                err = fail(p, "lone surrogate");
            }
            if (err) {
                lstm_buf_free(&b);
                return err;
            }
            put_utf8(&b, cp);
        } else {
            lstm_buf_free(&b);
            return fail(p, "bad escape");
        }
    }
    if (b.err) {
        lstm_buf_free(&b);
        return LSTM_ENOMEM;
    }
    if (!b.s) {
        b.s = lstm_alloc(1);
        if (!b.s)
            return LSTM_ENOMEM;
    }
    *out = b.s;
    *len = b.len;
    return LSTM_OK;
}

static int parse_value(parser *p, lstm_json *j);

/* Appends a child to an array or object node. */
static int add_child(lstm_json *j, size_t *cap, lstm_json **child)
{
    if (j->n == *cap) {
        size_t c = *cap ? 2 * *cap : 8;
        lstm_json *items = lstm_alloc(c * sizeof *items);
        char **keys = j->type == LSTM_JSON_OBJ ? lstm_alloc(c * sizeof *keys)
                                               : NULL;
        if (!items || (j->type == LSTM_JSON_OBJ && !keys)) {
            lstm_free(items);
            lstm_free(keys);
            return LSTM_ENOMEM;
        }
        if (j->n) {
            memcpy(items, j->items, j->n * sizeof *items);
            if (keys)
                memcpy(keys, j->keys, j->n * sizeof *keys);
        }
        lstm_free(j->items);
        lstm_free(j->keys);
        j->items = items;
        j->keys = keys;
        *cap = c;
    }
    *child = &j->items[j->n];
    memset(*child, 0, sizeof **child);
    if (j->keys)
        j->keys[j->n] = NULL;
    j->n++;
    return LSTM_OK;
}

static int parse_container(parser *p, lstm_json *j, int obj)
{
    size_t cap = 0;
    j->type = obj ? LSTM_JSON_OBJ : LSTM_JSON_ARR;
    if (++p->depth > 64)
        return fail(p, "nesting deeper than 64");
    p->i++;
    ws(p);
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
        p->i++;
        p->depth--;
        return LSTM_OK;
    }
    for (;;) {
        lstm_json *child;
        int err = add_child(j, &cap, &child);
        if (err)
            return err;
        ws(p);
        if (obj) {
            size_t klen;
            if (p->i >= p->n || p->s[p->i] != '"')
                return fail(p, "expected a key");
            if ((err = parse_str(p, &j->keys[j->n - 1], &klen)))
                return err;
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return fail(p, "expected ':'");
            p->i++;
        }
        if ((err = parse_value(p, child)))
            return err;
        ws(p);
        if (p->i >= p->n)
            return fail(p, "unterminated container");
        char c = p->s[p->i++];
        if (c == (obj ? '}' : ']'))
            break;
        if (c != ',')
            return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    p->depth--;
    return LSTM_OK;
}

static int parse_value(parser *p, lstm_json *j)
{
    ws(p);
    if (p->i >= p->n)
        return fail(p, "unexpected end");
    char c = p->s[p->i];
    if (c == '{' || c == '[')
        return parse_container(p, j, c == '{');
    if (c == '"') {
        j->type = LSTM_JSON_STR;
        return parse_str(p, &j->str, &j->len);
    }
    static const struct { const char *w; int type; double v; } lit[] = {
        {"true", LSTM_JSON_BOOL, 1}, {"false", LSTM_JSON_BOOL, 0},
        {"null", LSTM_JSON_NULL, 0}};
    for (int k = 0; k < 3; k++) {
        size_t wl = strlen(lit[k].w);
        if (p->n - p->i >= wl && memcmp(p->s + p->i, lit[k].w, wl) == 0) {
            p->i += wl;
            j->type = lit[k].type;
            j->num = lit[k].v;
            return LSTM_OK;
        }
    }
    /* number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    size_t st = p->i;
    if (p->i < p->n && p->s[p->i] == '-')
        p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
        return fail(p, "unexpected character");
    if (p->s[p->i] == '0')
        p->i++;
    else
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
            return fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
            p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
            return fail(p, "bad number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    }
    char tmp[64];
    size_t len = p->i - st;
    if (len >= sizeof tmp)
        return fail(p, "number too long");
    memcpy(tmp, p->s + st, len);
    tmp[len] = '\0';
    j->type = LSTM_JSON_NUM;
    j->num = strtod(tmp, NULL);
    return LSTM_OK;
}

int lstm_json_parse(lstm_json *j, const char *s, size_t n)
{
    memset(j, 0, sizeof *j);
    parser p = {s, n, 0, 0};
    int err = parse_value(&p, j);
    if (!err) {
        ws(&p);
        if (p.i != n)
            err = fail(&p, "trailing characters");
    }
    if (err)
        lstm_json_free(j);
    return err;
}

const lstm_json *lstm_json_get(const lstm_json *obj, const char *key)
{
    if (!obj || obj->type != LSTM_JSON_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (obj->keys[i] && strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

void lstm_json_free(lstm_json *j)
{
    for (size_t i = 0; i < j->n; i++) {
        lstm_json_free(&j->items[i]);
        if (j->keys)
            lstm_free(j->keys[i]);
    }
    lstm_free(j->items);
    lstm_free(j->keys);
    lstm_free(j->str);
    memset(j, 0, sizeof *j);
}

int lstm_json_num(const lstm_json *obj, const char *key, double lo,
                  double hi, double *out)
{
    const lstm_json *v = lstm_json_get(obj, key);
    if (!v || v->type != LSTM_JSON_NUM || !(v->num >= lo && v->num <= hi))
        return 1;
    *out = v->num;
    return 0;
}

int lstm_json_long(const lstm_json *obj, const char *key, long lo, long hi,
                   long *out)
{
    double d;
    if (lstm_json_num(obj, key, (double)lo, (double)hi, &d) ||
        d != floor(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0)
        return 1;
    *out = (long)d;
    return 0;
}
