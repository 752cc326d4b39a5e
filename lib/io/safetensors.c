/*
 * safetensors.c - safetensors files: every parameter of a block under its
 * PyTorch name, float32 little-endian, with string metadata. Written in
 * one piece and renamed into place; read whole and validated before any
 * byte reaches the model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_io.h"

/* 16 MB of JSON: a vocabulary of a million words fits; parsing costs up to
 * about 32 bytes per byte of a pathological header (512 MB here). */
#define ST_MAX_HEADER ((uint64_t)16 << 20)
#define ST_MAX_FILE ((size_t)16 << 30)

static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void put_f32le(char *dst, const float *src, size_t n)
{
    memcpy(dst, src, n * sizeof *src);
    if (!little_endian())
        for (size_t i = 0; i < n; i++) {
            char *b = dst + 4 * i, t;
            t = b[0]; b[0] = b[3]; b[3] = t;
            t = b[1]; b[1] = b[2]; b[2] = t;
        }
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that appears twice in names[0..n), or NULL; sorts names
 * (the caller's copy). */
static const char *first_repeat(const char **names, size_t n)
{
    qsort(names, n, sizeof *names, cmp_cstr);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

int lstm_safetensors_write(const char *path, const lstm_st_tensor *t,
                           size_t nt, const char *const *keys,
                           const char *const *vals, size_t nmeta)
{
    const char **names = lstm_alloc((nt + 1) * sizeof *names);
    if (!names)
        return lstm_error(LSTM_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < nt; i++)
        names[i] = t[i].name;
    const char *dup = first_repeat(names, nt);
    if (dup) {
        lstm_error(LSTM_EINVAL, "%s: tensor name %.64s given twice", path,
                   dup);
        lstm_free(names);
        return LSTM_EINVAL;
    }
    lstm_free(names);
    lstm_buf h = {0};
    lstm_buf_puts(&h, "{\"__metadata__\":{");
    for (size_t i = 0; i < nmeta; i++) {
        if (i)
            lstm_buf_puts(&h, ",");
        lstm_buf_json_str(&h, keys[i], strlen(keys[i]));
        lstm_buf_puts(&h, ":");
        lstm_buf_json_str(&h, vals[i], strlen(vals[i]));
    }
    lstm_buf_puts(&h, "}");
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        lstm_buf_puts(&h, ",");
        lstm_buf_json_str(&h, t[i].name, strlen(t[i].name));
        lstm_buf_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++)
            lstm_buf_printf(&h, "%s%zu", d ? "," : "", t[i].shape[d]);
        lstm_buf_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off,
                        off + 4 * t[i].numel);
        off += 4 * t[i].numel;
    }
    lstm_buf_puts(&h, "}");
    while (!h.err && h.len % 8)  /* the data starts 8-byte aligned */
        lstm_buf_puts(&h, " ");
    if (h.err) {
        lstm_buf_free(&h);
        return lstm_error(LSTM_ENOMEM, "%s: out of memory for the header",
                          path);
    }
    size_t total = 8 + h.len + off;
    char *file = lstm_alloc(total);
    if (!file) {
        lstm_buf_free(&h);
        return lstm_error(LSTM_ENOMEM, "%s: out of memory for %zu bytes", path,
                          total);
    }
    uint64_t hl = h.len;
    for (int k = 0; k < 8; k++)
        file[k] = (char)(hl >> (8 * k));
    memcpy(file + 8, h.s, h.len);
    char *data = file + 8 + h.len;
    for (size_t i = 0; i < nt; i++) {
        put_f32le(data, t[i].data, t[i].numel);
        data += 4 * t[i].numel;
    }
    int err = lstm_write_atomic(path, file, total);
    lstm_free(file);
    lstm_buf_free(&h);
    return err;
}

int lstm_safetensors_tensors(const lstm_params *ps, const float *data,
                             const char *prefix, lstm_st_tensor *t,
                             char *names, size_t name_cap)
{
    for (size_t i = 0; i < ps->np; i++) {
        const lstm_param *p = &ps->p[i];
        char *nm = names + i * name_cap;
        if ((size_t)snprintf(nm, name_cap, "%s%s", prefix ? prefix : "",
                             p->name) >= name_cap)
            return lstm_error(LSTM_EINVAL, "safetensors: name %s%s longer "
                              "than %zu bytes", prefix ? prefix : "",
                              p->name, name_cap - 1);
        t[i].name = nm;
        t[i].data = data + p->off;
        t[i].numel = p->numel;
        t[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
            t[i].shape[d] = p->shape[d];
    }
    return LSTM_OK;
}

int lstm_safetensors_save(const char *path, const lstm_params *ps,
                          const char *const *keys, const char *const *vals,
                          size_t nmeta)
{
    const size_t cap = sizeof ps->p[0].name;
    lstm_st_tensor *t = lstm_alloc((ps->np + 1) * sizeof *t);
    char *names = lstm_alloc((ps->np + 1) * cap);
    int err = LSTM_ENOMEM;
    if (t && names) {
        err = lstm_safetensors_tensors(ps, ps->w, NULL, t, names, cap);
        if (!err)
            err = lstm_safetensors_write(path, t, ps->np, keys, vals, nmeta);
    } else {
        lstm_error(err, "%s: out of memory", path);
    }
    lstm_free(t);
    lstm_free(names);
    return err;
}

void lstm_safetensors_close(lstm_safetensors *st)
{
    lstm_free(st->raw);
    lstm_json_free(&st->header);
    memset(st, 0, sizeof *st);
}

static int bad(const char *path, const char *what, const char *name)
{
    return lstm_error(LSTM_EFORMAT, "%s: not a valid safetensors file: %s%s%s",
                      path, what, name ? " " : "", name ? name : "");
}

/* Checks one tensor entry; returns its numel in *numel. */
static int check_entry(const lstm_safetensors *st, const char *path,
                       const char *name, const lstm_json *e, size_t *numel)
{
    const lstm_json *dt = lstm_json_get(e, "dtype");
    const lstm_json *sh = lstm_json_get(e, "shape");
    const lstm_json *of = lstm_json_get(e, "data_offsets");
    if (!dt || dt->type != LSTM_JSON_STR || !sh || sh->type != LSTM_JSON_ARR ||
        !of || of->type != LSTM_JSON_ARR || of->n != 2)
        return bad(path, "incomplete entry for tensor", name);
    if (strcmp(dt->str, "F32") != 0)
        return lstm_error(LSTM_EFORMAT,
                          "%s: tensor %s has dtype %.16s, only F32 is supported",
                          path, name, dt->str);
    size_t n = 1;
    for (size_t d = 0; d < sh->n; d++) {
        double v = sh->items[d].num;
        if (sh->items[d].type != LSTM_JSON_NUM || v < 0 || v > 1e12 ||
            v != (double)(size_t)v)
            return bad(path, "bad shape of tensor", name);
        if ((size_t)v && n > ((size_t)1 << 40) / (size_t)v)
            return bad(path, "shape too large for tensor", name);
        n *= (size_t)v;
    }
    double b = of->items[0].num, en = of->items[1].num;
    if (of->items[0].type != LSTM_JSON_NUM || of->items[1].type != LSTM_JSON_NUM ||
        b < 0 || en < b || en > (double)st->data_size ||
        b != (double)(size_t)b || en != (double)(size_t)en)
        return bad(path, "data_offsets outside the file for tensor", name);
    if ((size_t)en - (size_t)b != 4 * n)
        return lstm_error(LSTM_EFORMAT,
                          "%s: tensor %s: %zu data bytes for a shape of %zu "
                          "floats",
                          path, name, (size_t)en - (size_t)b, n);
    *numel = n;
    return LSTM_OK;
}

typedef struct { size_t begin, end; const char *name; } span;

static int by_begin(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* The format forbids what a JSON object allows: a key (tensor name or
 * __metadata__) twice, and tensors whose bytes overlap. */
static int check_layout(const lstm_safetensors *st, const char *path)
{
    const lstm_json *h = &st->header;
    const char **keys = lstm_alloc((h->n + 1) * sizeof *keys);
    span *sp = lstm_alloc((h->n + 1) * sizeof *sp);
    if (!keys || !sp) {
        lstm_free(keys);
        lstm_free(sp);
        return lstm_error(LSTM_ENOMEM, "%s: out of memory", path);
    }
    memcpy(keys, h->keys, h->n * sizeof *keys);
    const char *dup = first_repeat(keys, h->n);
    int err = dup ? bad(path, "a key given twice:", dup) : LSTM_OK;
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->keys[i], "__metadata__") == 0)
            continue;
        const lstm_json *of = lstm_json_get(&h->items[i], "data_offsets");
        sp[n].begin = (size_t)of->items[0].num;
        sp[n].end = (size_t)of->items[1].num;
        sp[n++].name = h->keys[i];
    }
    qsort(sp, n, sizeof *sp, by_begin);
    size_t end = 0;  /* the furthest byte of the non-empty tensors so far */
    for (size_t i = 0; i < n && !err; i++) {
        if (sp[i].end == sp[i].begin)
            continue;
        if (sp[i].begin < end)
            err = bad(path, "overlapping data of tensor", sp[i].name);
        end = sp[i].end > end ? sp[i].end : end;
    }
    lstm_free(keys);
    lstm_free(sp);
    return err;
}

int lstm_safetensors_open(lstm_safetensors *st, const char *path)
{
    memset(st, 0, sizeof *st);
    int err = lstm__read_regular(path, &st->raw, &st->size, ST_MAX_FILE);
    if (err)
        return err;
    if (st->size < 8) {
        lstm_safetensors_close(st);
        return bad(path, "shorter than 8 bytes", NULL);
    }
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--)
        hl = (hl << 8) | (unsigned char)st->raw[k];
    if (hl > ST_MAX_HEADER && hl <= st->size - 8) {
        lstm_safetensors_close(st);
        return lstm_error(LSTM_EFORMAT, "%s: a header of %llu bytes, more than "
                          "the %llu allowed", path, (unsigned long long)hl,
                          (unsigned long long)ST_MAX_HEADER);
    }
    if (hl > st->size - 8) {
        lstm_safetensors_close(st);
        return bad(path, "header length beyond the end (truncated?)", NULL);
    }
    err = lstm_json_parse(&st->header, st->raw + 8, (size_t)hl);
    if (err) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", lstm_errmsg());
        lstm_safetensors_close(st);
        return lstm_error(err == LSTM_ENOMEM ? err : LSTM_EFORMAT,
                          "%s: header: %s", path, msg);
    }
    st->data = st->raw + 8 + hl;
    st->data_size = st->size - 8 - (size_t)hl;
    const lstm_json *h = &st->header;
    if (h->type != LSTM_JSON_OBJ) {
        lstm_safetensors_close(st);
        return bad(path, "header is not an object", NULL);
    }
    for (size_t i = 0; i < h->n; i++) {
        size_t numel;
        if (strcmp(h->keys[i], "__metadata__") == 0) {
            const lstm_json *m = &h->items[i];
            for (size_t k = 0; m->type == LSTM_JSON_OBJ && k < m->n; k++)
                if (m->items[k].type != LSTM_JSON_STR)
                    err = bad(path, "non-string metadata", m->keys[k]);
            if (m->type != LSTM_JSON_OBJ)
                err = bad(path, "__metadata__ is not an object", NULL);
        } else if (h->items[i].type != LSTM_JSON_OBJ) {
            err = bad(path, "entry is not an object:", h->keys[i]);
        } else {
            err = check_entry(st, path, h->keys[i], &h->items[i], &numel);
        }
        if (err) {
            lstm_safetensors_close(st);
            return err;
        }
    }
    err = check_layout(st, path);
    if (err)
        lstm_safetensors_close(st);
    return err;
}

const char *lstm_safetensors_meta(const lstm_safetensors *st, const char *key)
{
    const lstm_json *v =
        lstm_json_get(lstm_json_get(&st->header, "__metadata__"), key);
    return v && v->type == LSTM_JSON_STR ? v->str : NULL;
}

/* Shape (a, b, ...) of a parameter or of a file entry, for messages. */
static void shape_str(char *dst, size_t cap, const size_t *dims, int nd,
                      const lstm_json *sh)
{
    size_t l = 0;
    int n = sh ? (int)sh->n : nd;
    dst[0] = '\0';
    for (int d = 0; d < n && l + 24 < cap; d++)
        l += (size_t)snprintf(dst + l, cap - l, "%s%.0f", d ? "," : "",
                              sh ? sh->items[d].num : (double)dims[d]);
}

int lstm_safetensors_get(const lstm_safetensors *st, const char *name,
                         const size_t *shape, int ndim, float *dst)
{
    const lstm_json *e = lstm_json_get(&st->header, name);
    if (!e || strcmp(name, "__metadata__") == 0)
        return lstm_error(LSTM_EFORMAT, "checkpoint: tensor %.64s is missing",
                          name);
    const lstm_json *sh = lstm_json_get(e, "shape");
    int same = sh->n == (size_t)ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        same = same && (size_t)sh->items[d].num == shape[d];
        numel *= shape[d];
    }
    if (!same) {
        char want[64], got[64];
        shape_str(want, sizeof want, shape, ndim, NULL);
        shape_str(got, sizeof got, NULL, 0, sh);
        return lstm_error(LSTM_EFORMAT,
                          "checkpoint: tensor %.64s has shape (%s), the model "
                          "needs (%s)",
                          name, got, want);
    }
    size_t b = (size_t)lstm_json_get(e, "data_offsets")->items[0].num;
    memcpy(dst, st->data + b, 4 * numel);
    if (!little_endian())
        put_f32le((char *)dst, dst, numel);
    return LSTM_OK;
}

int lstm_safetensors_load(const lstm_safetensors *st, lstm_params *ps)
{
    int err = lstm_safetensors_load_into(st, ps, NULL, ps->w);
    const lstm_json *h = &st->header;
    size_t tensors = h->n - (lstm_json_get(h, "__metadata__") != NULL);
    if (!err && tensors != ps->np)
        for (size_t i = 0; i < h->n; i++)
            if (strcmp(h->keys[i], "__metadata__") != 0 &&
                !lstm_params_find(ps, h->keys[i]))
                return lstm_error(LSTM_EFORMAT,
                                  "checkpoint: unexpected tensor %.64s",
                                  h->keys[i]);
    return err;
}

int lstm_safetensors_load_into(const lstm_safetensors *st,
                               const lstm_params *ps, const char *prefix,
                               float *data)
{
    char name[160];
    for (size_t i = 0; i < ps->np; i++) {
        const lstm_param *p = &ps->p[i];
        if ((size_t)snprintf(name, sizeof name, "%s%s", prefix ? prefix : "",
                             p->name) >= sizeof name)
            return lstm_error(LSTM_EINVAL, "checkpoint: name %s%s too long",
                              prefix ? prefix : "", p->name);
        int err = lstm_safetensors_get(st, name, p->shape, p->ndim,
                                       data + p->off);
        if (err)
            return err;
    }
    return LSTM_OK;
}
