/*
 * model_file.c - the classifier's model file: weights plus vocabulary,
 * class names and configuration in the safetensors metadata
 * (docs/formats.md), and prediction from raw text with it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "lstm_train.h"

static void put_strings(lstm_buf *b, char *const *s, size_t n)
{
    lstm_buf_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            lstm_buf_puts(b, ",");
        lstm_buf_json_str(b, s[i], strlen(s[i]));
    }
    lstm_buf_puts(b, "]");
}

int lstm_model_save(const char *path, const lstm_classifier *net,
                    const lstm_vocab *vocab, char *const *classes, size_t C,
                    size_t max_len)
{
    const lstm_classifier_config *c = &net->cfg;
    lstm_buf voc = {0}, cls = {0}, cfg = {0};
    put_strings(&voc, vocab->tok, vocab->n);
    put_strings(&cls, classes, C);
    lstm_buf_printf(&cfg,
                    "{\"vocab_size\":%zu,\"embed_dim\":%zu,\"hidden\":%zu,"
                    "\"layers\":%zu,\"num_classes\":%zu,\"mlp\":[",
                    c->V, c->E, c->H, c->L, c->C);
    for (size_t i = 0; i < c->n_mlp; i++)
        lstm_buf_printf(&cfg, "%s%zu", i ? "," : "", c->mlp[i]);
    lstm_buf_printf(&cfg,
                    "],\"max_len\":%zu,\"dropout\":%g,\"pool\":\"%s\","
                    "\"precision\":\"%s\"%s%s%s",
                    max_len, (double)c->dropout, lstm_pool_name(c->pool),
                    lstm_precision_name(c->precision),
                    c->bidirectional ? ",\"bidirectional\":true" : "",
                    c->cell == LSTM_CELL_GRU ? ",\"cell\":\"gru\"" : "",
                    c->bag ? ",\"bag\":true" : "");
    if (c->wide > 0.0f)
        lstm_buf_printf(&cfg, ",\"wide\":%.9g", (double)c->wide);
    lstm_buf_printf(&cfg, "}");
    int err;
    if (voc.err || cls.err || cfg.err) {
        err = lstm_error(LSTM_ENOMEM, "out of memory saving the model");
    } else {
        const char *keys[3] = {"vocab", "classes", "config"};
        const char *vals[3] = {voc.s, cls.s, cfg.s};
        err = lstm_safetensors_save(path, &net->ps, keys, vals, 3);
        if (err == LSTM_ENOMEM)
            lstm_error(err, "out of memory saving the model");
    }
    lstm_buf_free(&voc);
    lstm_buf_free(&cls);
    lstm_buf_free(&cfg);
    return err;
}

static void free_strings(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        lstm_free(s[i]);
    lstm_free(s);
}

/* A JSON array of strings from the metadata; *out is NULL on error. */
static int meta_strings(const lstm_safetensors *st, const char *path,
                        const char *key, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *s = lstm_safetensors_meta(st, key);
    if (!s)
        return lstm_error(LSTM_EFORMAT, "%s: no \"%s\" in the checkpoint "
                          "metadata", path, key);
    lstm_json j = {0};
    int err = lstm_json_parse(&j, s, strlen(s));
    if (err == LSTM_ENOMEM)
        return err;
    if (err || j.type != LSTM_JSON_ARR) {
        lstm_json_free(&j);
        return lstm_error(LSTM_EFORMAT, "%s: metadata \"%s\" is not a JSON "
                          "array", path, key);
    }
    char **v = lstm_alloc((j.n ? j.n : 1) * sizeof *v);
    err = v ? LSTM_OK : LSTM_ENOMEM;
    for (size_t i = 0; !err && i < j.n; i++) {
        if (j.items[i].type != LSTM_JSON_STR) {
            err = lstm_error(LSTM_EFORMAT, "%s: metadata \"%s\"[%zu] is not a "
                             "string", path, key, i);
        } else if ((v[i] = lstm_alloc(j.items[i].len + 1))) {
            memcpy(v[i], j.items[i].str, j.items[i].len + 1);
        } else {
            err = LSTM_ENOMEM;
        }
    }
    const size_t count = j.n;
    lstm_json_free(&j);
    if (err) {
        free_strings(v, count);
        return err;
    }
    *out = v;
    *n = count;
    return LSTM_OK;
}

static int meta_size(const lstm_json *cfg, const char *path, const char *key,
                     size_t *out)
{
    const lstm_json *v = lstm_json_get(cfg, key);
    if (!v || v->type != LSTM_JSON_NUM || v->num < 1 || v->num > 1e9 ||
        v->num != floor(v->num))
        return lstm_error(LSTM_EFORMAT, "%s: metadata config has no valid "
                          "\"%s\"", path, key);
    *out = (size_t)v->num;
    return LSTM_OK;
}

/* The optional switch cfg[key] into *on (absent: 0). */
static int config_switch(const lstm_json *cfg, const char *path,
                         const char *key, int *on)
{
    const lstm_json *v = lstm_json_get(cfg, key);
    if (v && v->type != LSTM_JSON_BOOL)
        return lstm_error(LSTM_EFORMAT, "%s: config \"%s\" is not true or "
                          "false", path, key);
    *on = v && v->num != 0;
    return LSTM_OK;
}

/* The classifier's configuration from the metadata "config". */
static int read_config(const lstm_json *cfg, const char *path,
                       lstm_classifier_config *c, size_t *max_len,
                       size_t ntok)
{
    int err = meta_size(cfg, path, "embed_dim", &c->E);
    if (!err)
        err = meta_size(cfg, path, "hidden", &c->H);
    if (!err)
        err = meta_size(cfg, path, "layers", &c->L);
    if (!err)
        err = meta_size(cfg, path, "max_len", max_len);
    if (!err && *max_len > 1000000)  /* as news_classifier's --max-len */
        err = lstm_error(LSTM_EFORMAT, "%s: metadata config \"max_len\" is "
                         "%zu, more than 1000000", path, *max_len);
    if (err)
        return err;
    const lstm_json *mlp = lstm_json_get(cfg, "mlp");
    const lstm_json *pool = lstm_json_get(cfg, "pool");
    const lstm_json *drop = lstm_json_get(cfg, "dropout");
    const lstm_json *prec = lstm_json_get(cfg, "precision");
    c->n_mlp = 2;
    c->mlp[0] = 512;
    c->mlp[1] = 256;
    if (mlp && mlp->type == LSTM_JSON_ARR && mlp->n <= LSTM_MLP_MAX) {
        c->n_mlp = mlp->n;
        for (size_t i = 0; i < mlp->n; i++)
            c->mlp[i] = mlp->items[i].type == LSTM_JSON_NUM &&
                                mlp->items[i].num >= 1 &&
                                mlp->items[i].num <= 1e6
                            ? (size_t)mlp->items[i].num : 0;
    }
    c->pool = LSTM_POOL_LAST;
    if (pool && pool->type == LSTM_JSON_STR)
        lstm_pool_parse(pool->str, &c->pool);
    c->dropout = drop && drop->type == LSTM_JSON_NUM && drop->num >= 0 &&
                         drop->num < 1 ? (float)drop->num : 0.0f;
    c->V = ntok;
    size_t V;
    if (meta_size(cfg, path, "vocab_size", &V) == 0 && V != ntok)
        return lstm_error(LSTM_EFORMAT, "%s: config says %zu vocabulary "
                          "entries, the vocabulary has %zu", path, V, ntok);
    /* absent: unidirectional, no bag, fp32 (files from before the options) */
    if (config_switch(cfg, path, "bidirectional", &c->bidirectional) ||
        config_switch(cfg, path, "bag", &c->bag))
        return LSTM_EFORMAT;
    /* absent: no wide part */
    const lstm_json *wide = lstm_json_get(cfg, "wide");
    if (wide && (wide->type != LSTM_JSON_NUM || !((float)wide->num > 0) ||
                 wide->num > 1e6))
        return lstm_error(LSTM_EFORMAT, "%s: config \"wide\" is not a "
                          "number in (0,1e6]", path);
    c->wide = wide ? (float)wide->num : 0.0f;
    /* absent: an LSTM */
    const lstm_json *cell = lstm_json_get(cfg, "cell");
    if (cell && (cell->type != LSTM_JSON_STR ||
                 (strcmp(cell->str, "lstm") && strcmp(cell->str, "gru"))))
        return lstm_error(LSTM_EFORMAT, "%s: config \"cell\" is not \"lstm\" "
                          "or \"gru\"", path);
    c->cell = cell && !strcmp(cell->str, "gru") ? LSTM_CELL_GRU
                                                : LSTM_CELL_LSTM;
    if (prec && (prec->type != LSTM_JSON_STR ||
                 lstm_precision_parse(prec->str, &c->precision)))
        return lstm_error(LSTM_EFORMAT, "%s: config \"precision\" is not "
                          "fp32 or bf16-mixed", path);
    return LSTM_OK;
}

int lstm_model_load(lstm_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    lstm_safetensors st;
    int err = lstm_safetensors_open(&st, path);
    if (err)
        return err;
    char **tokens = NULL;
    size_t ntok = 0;
    lstm_json cfg = {0};
    lstm_classifier_config c;
    memset(&c, 0, sizeof c);
    err = meta_strings(&st, path, "vocab", &tokens, &ntok);
    if (!err)
        err = meta_strings(&st, path, "classes", &m->classes, &m->n_classes);
    const char *cs = lstm_safetensors_meta(&st, "config");
    int perr = !err && cs ? lstm_json_parse(&cfg, cs, strlen(cs)) : 0;
    if (!err && perr == LSTM_ENOMEM)
        err = perr;
    else if (!err && (!cs || perr || cfg.type != LSTM_JSON_OBJ))
        err = lstm_error(LSTM_EFORMAT, "%s: metadata \"config\" is missing "
                         "or not a JSON object", path);
    if (!err)
        err = read_config(&cfg, path, &c, &m->max_len, ntok);
    c.C = m->n_classes;
    /* a configuration the tensors cannot fill is refused before any
     * memory is set aside for it */
    if (!err && lstm_classifier_params(&c) != st.data_size / 4)
        err = lstm_error(LSTM_EFORMAT, "%s: the metadata config describes %zu "
                         "parameters, the file holds %zu", path,
                         lstm_classifier_params(&c), st.data_size / 4);
    const char *what = NULL;
    if (!err && (err = lstm_vocab_from_list(&m->vocab, tokens, ntok)))
        what = "vocabulary";
    if (!err && (err = lstm_classifier_init(&m->net, &c)))
        what = "model";
    if (!err && (err = lstm_safetensors_load(&st, &m->net.ps)))
        what = "weights";
    /* a NaN or an infinity would only show as arbitrary predictions */
    for (size_t k = 0; !err && k < m->net.ps.np; k++) {
        const lstm_param *p = &m->net.ps.p[k];
        size_t i = 0;
        while (i < p->numel && isfinite(m->net.ps.w[p->off + i]))
            i++;
        if (i < p->numel)
            err = lstm_error(LSTM_EFORMAT, "%s: tensor %s holds a non-finite "
                             "value (%g at element %zu)", path, p->name,
                             (double)m->net.ps.w[p->off + i], i);
    }
    if (!err && !(m->ids = lstm_alloc(m->max_len * sizeof *m->ids)))
        err = LSTM_ENOMEM;
    if (what) {  /* prefix the file to the message of the part that failed */
        char msg[400];
        snprintf(msg, sizeof msg, "%s", lstm_errmsg());
        lstm_error(err, "%s: %s", path, msg);
    }
    if (err == LSTM_ENOMEM && !what)
        lstm_error(err, "%s: out of memory loading the model", path);
    free_strings(tokens, ntok);
    lstm_json_free(&cfg);
    lstm_safetensors_close(&st);
    if (err)  /* nothing half-made goes back to the caller */
        lstm_model_free(m);
    return err;
}

int lstm_model_predict(lstm_model *m, const char *text, size_t len)
{
    assert(m->ids && "lstm_model_predict: no model loaded");
    size_t ok = lstm_utf8_valid(text, len);
    if (ok != len)
        return lstm_error(LSTM_EINVAL, "not valid UTF-8 (byte %zu)", ok + 1);
    int32_t L = (int32_t)lstm_encode(&m->vocab, text, len, m->ids,
                                     m->max_len);
    int err = lstm_classifier_forward(&m->net, m->ids, &L, 1, (size_t)L, NULL,
                                      NULL, 0, NULL);
    if (err)
        return err;
    return (int)lstm_argmax(m->net.logp, m->n_classes);
}

void lstm_model_free(lstm_model *m)
{
    lstm_classifier_free(&m->net);
    lstm_vocab_free(&m->vocab);
    free_strings(m->classes, m->n_classes);
    lstm_free(m->ids);
    memset(m, 0, sizeof *m);
}

void lstm_model_prediction(lstm_buf *b, const lstm_model *m, int best,
                           const char *name, int json)
{
    const float *lp = m->net.logp;
    const size_t C = m->n_classes, top = C < 3 ? C : 3;
    if (json) {
        lstm_buf_puts(b, "{\"input\":");
        lstm_buf_json_str(b, name, strlen(name));
        lstm_buf_puts(b, ",\"label\":");
        lstm_buf_json_str(b, m->classes[best], strlen(m->classes[best]));
        lstm_buf_puts(b, ",\"probs\":{");
        for (size_t i = 0; i < C; i++) {
            lstm_buf_puts(b, i ? "," : "");
            lstm_buf_json_str(b, m->classes[i], strlen(m->classes[i]));
            lstm_buf_printf(b, ":%.6g", (double)expf(lp[i]));
        }
        lstm_buf_puts(b, "},\"logp\":[");
        for (size_t i = 0; i < C; i++)
            lstm_buf_printf(b, "%s%.8g", i ? "," : "", (double)lp[i]);
        lstm_buf_puts(b, "]}\n");
        return;
    }
    size_t order[3];
    lstm_topk(lp, C, top, order);  /* the three most probable */
    lstm_buf_printf(b, "%s: %s  (", name, m->classes[best]);
    for (size_t i = 0; i < top; i++)
        lstm_buf_printf(b, "%s%s %.3f", i ? ", " : "", m->classes[order[i]],
                        (double)expf(lp[order[i]]));
    lstm_buf_puts(b, ")\n");
}
