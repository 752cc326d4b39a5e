/*
 * classifier.c - the text classifier of the reference notebook, with its
 * parameter names, on top of the layers: embedding -> LSTM (or GRU) -> pooling ->
 * MLP head -> log-softmax, NLL loss. All parameters live in one block
 * (m->ps), so zeroing gradients is one memset and AdamW one loop.
 *
 * Pooling, over each text's true length:
 *   last  the last layer's state after the last real token (hn); both
 *         directions' final states, side by side, when bidirectional
 *   mean  the mean of the last layer's outputs
 *   max   their element-wise maximum
 *
 * With cfg.wide, a linear bag of words (a table of one logit row per
 * word, averaged over the text and scaled) adds to the head's logits.
 */
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "internal.h"

static size_t head_width(const lstm_classifier_config *c, size_t i)
{
    return i < c->n_mlp ? c->mlp[i] : c->C;
}

/* Directions of the LSTM, and the width of the pooled feature. */
static size_t dirs(const lstm_classifier_config *c)
{
    return c->bidirectional ? 2 : 1;
}

/* The recurrent layer's output width, and the feature's: the pooled
 * output, then the mean embedding with bag. */
static size_t rnn_width(const lstm_classifier_config *c)
{
    return dirs(c) * c->H;
}

static size_t feat_width(const lstm_classifier_config *c)
{
    return rnn_width(c) + (c->bag ? c->E : 0);
}

static size_t max_width(const lstm_classifier_config *c)
{
    size_t w = feat_width(c) > c->C ? feat_width(c) : c->C;
    for (size_t i = 0; i < c->n_mlp; i++)
        w = c->mlp[i] > w ? c->mlp[i] : w;
    return w;
}

int lstm_classifier_init(lstm_classifier *m, const lstm_classifier_config *cfg)
{
    memset(m, 0, sizeof *m);
    if (cfg->V < 2 || cfg->E == 0 || cfg->H == 0 || cfg->L == 0 ||
        cfg->C < 1 || cfg->n_mlp > LSTM_MLP_MAX)
        return lstm_error(LSTM_EINVAL,
                          "classifier: V=%zu E=%zu H=%zu L=%zu C=%zu "
                          "mlp layers=%zu out of range",
                          cfg->V, cfg->E, cfg->H, cfg->L, cfg->C, cfg->n_mlp);
    if (cfg->pool < LSTM_POOL_LAST || cfg->pool > LSTM_POOL_MAX)
        return lstm_error(LSTM_EINVAL, "classifier: unknown pooling %d",
                          cfg->pool);
    for (size_t i = 0; i < cfg->n_mlp; i++)
        if (cfg->mlp[i] == 0)
            return lstm_error(LSTM_EINVAL, "classifier: MLP width 0");
    if (cfg->precision != LSTM_FP32 && cfg->precision != LSTM_BF16_MIXED)
        return lstm_error(LSTM_EINVAL, "classifier: unknown precision %d",
                          cfg->precision);
    if (cfg->cell != LSTM_CELL_LSTM && cfg->cell != LSTM_CELL_GRU)
        return lstm_error(LSTM_EINVAL, "classifier: unknown cell %d",
                          cfg->cell);
    if (cfg->bag != 0 && cfg->bag != 1)
        return lstm_error(LSTM_EINVAL, "classifier: bag %d is not 0 or 1",
                          cfg->bag);
    if (!(cfg->wide >= 0.0f && cfg->wide <= 1e6f))
        return lstm_error(LSTM_EINVAL, "classifier: wide %g outside "
                          "[0,1e6]", (double)cfg->wide);
    if (cfg->cell == LSTM_CELL_GRU && cfg->precision != LSTM_FP32)
        return lstm_error(LSTM_EINVAL, "classifier: the GRU runs in fp32 "
                          "only, not bf16-mixed");
    m->cfg = *cfg;
    lstm_params_init(&m->ps);
    int err = lstm_embedding_init(&m->emb, &m->ps, "lstm.embedding", cfg->V,
                                  cfg->E, 0);
    int (*rnn_init)(lstm_lstm *, lstm_params *, const char *, size_t,
                    size_t, size_t, float) =
        cfg->cell == LSTM_CELL_GRU
            ? (cfg->bidirectional ? lstm_gru_init_bidirectional
                                  : lstm_gru_init)
            : (cfg->bidirectional ? lstm_lstm_init_bidirectional
                                  : lstm_lstm_init);
    if (!err)
        err = rnn_init(&m->rnn, &m->ps, "lstm.lstm", cfg->E, cfg->H, cfg->L,
                       cfg->dropout);
    m->rnn.precision = cfg->precision;
    /* nn.Sequential(Flatten, [Linear, ReLU, Dropout] x n, Linear,
     * LogSoftmax): the Linear layers sit at indices 1, 4, 7, ... */
    size_t in = feat_width(cfg);
    for (size_t i = 0; !err && i <= cfg->n_mlp; i++) {
        char name[32];
        snprintf(name, sizeof name, "classifier.%zu", 1 + 3 * i);
        err = lstm_dense_init(&m->fc[i], &m->ps, name, in, head_width(cfg, i));
        in = head_width(cfg, i);
    }
    if (!err && cfg->wide > 0.0f)
        err = lstm_embedding_init(&m->wide, &m->ps, "wide", cfg->V, cfg->C, 0);
    if (!err)
        err = lstm_params_alloc(&m->ps);
    if (err)
        lstm_classifier_free(m);
    return err;
}

void lstm_classifier_reset(lstm_classifier *m, lstm_rng *r)
{
    lstm_embedding_reset(&m->emb, r);
    lstm_lstm_reset(&m->rnn, r);
    for (size_t i = 0; i <= m->cfg.n_mlp; i++)
        lstm_dense_reset(&m->fc[i], r);
    if (m->cfg.wide > 0.0f)
        memset(m->ps.w + m->wide.off_w, 0,
               m->cfg.V * m->cfg.C * sizeof(float));
}

void lstm_classifier_free(lstm_classifier *m)
{
    lstm_lstm_free(&m->rnn);
    lstm_params_free(&m->ps);
    lstm_free(m->ws);
    memset(m, 0, sizeof *m);
}

static void layout(lstm_classifier *m, lstm__carver *c, size_t B, size_t T)
{
    const lstm_classifier_config *k = &m->cfg;
    m->x = lstm__carve(c, B * T * k->E);
    m->ids = (int32_t *)(void *)lstm__carve(c, B * T);
    m->len = (int32_t *)(void *)lstm__carve(c, B);
    m->argmax = (int32_t *)(void *)lstm__carve(c, B * rnn_width(k));
    m->act[0] = lstm__carve(c, B * feat_width(k));
    for (size_t i = 0; i < k->n_mlp; i++) {
        m->rel[i] = lstm__carve(c, B * k->mlp[i]);
        m->mask[i] = lstm__carve(c, B * k->mlp[i]);
        m->act[i + 1] = lstm__carve(c, B * k->mlp[i]);
    }
    m->logits = lstm__carve(c, B * k->C);
    m->logp = lstm__carve(c, B * k->C);
    m->dlog = lstm__carve(c, B * k->C);
    m->dtmp = lstm__carve(c, 2 * B * max_width(k));
    m->dhn = lstm__carve(c, k->L * B * rnn_width(k));
    m->dout = lstm__carve(c, B * T * rnn_width(k));
    m->dx = lstm__carve(c, B * T * k->E);
}

/* Walks the parameter tensors of a configuration in the order init adds
 * them; returns their count of floats, and in *block the size of the
 * block that holds them (each slice starts 16-float aligned). In double:
 * a corrupt configuration must not wrap around. */
static double param_walk(const lstm_classifier_config *c, double *block)
{
    double n = 0, b = 0, in = (double)c->E;
    const double H = (double)c->H, DH = (double)rnn_width(c);
    const double G = (c->cell == LSTM_CELL_GRU ? 3.0 : 4.0) * H;
#define ADD(x) (n += (x), b = ceil(b / 16.0) * 16.0 + (x))
    ADD((double)c->V * (double)c->E);
    for (size_t l = 0; l < c->L && l < 4096; l++, in = DH)
        for (size_t d = 0; d < dirs(c); d++) {
            ADD(G * in);
            ADD(G * H);
            ADD(G);
            ADD(G);
        }
    in = (double)feat_width(c);
    for (size_t i = 0; i <= c->n_mlp && i <= LSTM_MLP_MAX; i++) {
        double out = (double)head_width(c, i);
        ADD(in * out);
        ADD(out);
        in = out;
    }
    if (c->wide > 0.0f)
        ADD((double)c->V * (double)c->C);
#undef ADD
    *block = c->L < 4096 ? b : HUGE_VAL;
    return c->L < 4096 ? n : HUGE_VAL;
}

size_t lstm_classifier_params(const lstm_classifier_config *c)
{
    double b, n = param_walk(c, &b);
    return n < 1e18 ? (size_t)n : SIZE_MAX;
}

size_t lstm_classifier_memory(const lstm_classifier_config *cfg, size_t B,
                              size_t T)
{
    const double approx = 4.0 * (double)B * (double)T *
                          (9.0 * (double)dirs(cfg) * (double)cfg->L *
                               (double)cfg->H +
                           4.0 * (double)cfg->H + 2.0 * (double)cfg->E);
    double block;
    param_walk(cfg, &block);
    if (approx > 1e17 || !(block < 1e16))
        return SIZE_MAX;
    const size_t np = (size_t)block;
    lstm_classifier tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.cfg = *cfg;
    tmp.rnn.I = cfg->E;  /* all the LSTM's layout needs */
    tmp.rnn.H = cfg->H;
    tmp.rnn.L = cfg->L;
    tmp.rnn.D = dirs(cfg);
    tmp.rnn.cell = cfg->cell;
    tmp.rnn.precision = cfg->precision;
    lstm__carver c = {NULL, 0};
    layout(&tmp, &c, B, T);
    return c.used + lstm_lstm_workspace_bytes(&tmp.rnn, B, T) +
           2 * np * sizeof(float);
}

static int reserve(lstm_classifier *m, size_t B, size_t T)
{
    if (B > SIZE_MAX / 64 / T || B * T > SIZE_MAX / 64 / (m->cfg.E + m->cfg.H))
        return lstm_error(LSTM_EINVAL, "classifier: batch too large");
    lstm__carver c = {NULL, 0};
    layout(m, &c, B, T);
    if (c.used > m->ws_bytes) {
        float *ws = lstm_alloc(c.used);
        if (!ws)
            return lstm_error(LSTM_ENOMEM,
                              "classifier: out of memory for a %zu-byte "
                              "workspace",
                              c.used);
        lstm_free(m->ws);
        m->ws = ws;
        m->ws_bytes = c.used;
    }
    c.base = (char *)m->ws;
    c.used = 0;
    layout(m, &c, B, T);
    return LSTM_OK;
}

/* The mean of each row's embeddings over its length, into the feature's
 * last E columns (row stride F). */
static void bag_forward(lstm_classifier *m, float *feat, size_t F)
{
    const size_t E = m->cfg.E, T = m->T;
    for (size_t b = 0; b < m->B; b++) {
        const size_t n = (size_t)m->len[b];
        float *f = feat + b * F + F - E;
        memcpy(f, m->x + b * T * E, E * sizeof *f);
        for (size_t t = 1; t < n; t++)
            for (size_t e = 0; e < E; e++)
                f[e] += m->x[(b * T + t) * E + e];
        for (size_t e = 0; e < E; e++)
            f[e] /= (float)n;
    }
}

/* logits (B,C) += wide * the mean of the text's rows of the wide table;
 * and its backward, from the gradient of the logits. */
static void wide_forward(lstm_classifier *m)
{
    const size_t C = m->cfg.C, T = m->T;
    const float *w = m->ps.w + m->wide.off_w;
    for (size_t b = 0; b < m->B; b++) {
        const size_t n = (size_t)m->len[b];
        float *acc = m->dtmp;  /* free until the backward */
        memset(acc, 0, C * sizeof *acc);
        for (size_t t = 0; t < n; t++) {
            const float *row = w + (size_t)m->ids[b * T + t] * C;
            for (size_t c = 0; c < C; c++)
                acc[c] += row[c];
        }
        for (size_t c = 0; c < C; c++)
            m->logits[b * C + c] += m->cfg.wide * acc[c] / (float)n;
    }
}

static void wide_backward(lstm_classifier *m)
{
    const size_t C = m->cfg.C, T = m->T;
    float *g = m->ps.g + m->wide.off_w;
    float *d = m->dtmp;  /* free until the head's backward */
    for (size_t b = 0; b < m->B; b++) {
        const size_t n = (size_t)m->len[b];
        for (size_t c = 0; c < C; c++)  /* the share of each token */
            d[c] = m->cfg.wide * m->dlog[b * C + c] / (float)n;
        for (size_t t = 0; t < n; t++) {
            const int32_t id = m->ids[b * T + t];
            if (id == m->wide.pad)
                continue;
            float *row = g + (size_t)id * C;
            for (size_t c = 0; c < C; c++)
                row[c] += d[c];
        }
    }
}

static void pool_forward(lstm_classifier *m)
{
    const size_t B = m->B, T = m->T, D = dirs(&m->cfg), h = m->cfg.H;
    const size_t H = D * h, F = feat_width(&m->cfg);  /* widths */
    const float *out = m->rnn.out;
    float *feat = m->act[0];
    if (m->cfg.bag)
        bag_forward(m, feat, F);
    if (m->cfg.pool == LSTM_POOL_LAST) {  /* hn of the top layer's runs */
        for (size_t b = 0; b < B; b++)
            for (size_t d = 0; d < D; d++)
                memcpy(feat + b * F + d * h,
                       m->rnn.hn + (((m->cfg.L - 1) * D + d) * B + b) * h,
                       h * sizeof *feat);
        return;
    }
    for (size_t b = 0; b < B; b++) {
        const size_t n = (size_t)m->len[b];
        for (size_t j = 0; j < H; j++) {
            float acc = out[b * T * H + j];
            int32_t at = 0;
            for (size_t t = 1; t < n; t++) {
                float v = out[(b * T + t) * H + j];
                if (m->cfg.pool == LSTM_POOL_MEAN) {
                    acc += v;
                } else if (v > acc) {
                    acc = v;
                    at = (int32_t)t;
                }
            }
            feat[b * F + j] = m->cfg.pool == LSTM_POOL_MEAN ? acc / (float)n
                                                             : acc;
            m->argmax[b * H + j] = at;
        }
    }
}

int lstm_classifier_forward(lstm_classifier *m, const int32_t *ids,
                            const int32_t *len, size_t B, size_t T,
                            const int32_t *y, float *loss, int train,
                            lstm_rng *r)
{
    const lstm_classifier_config *k = &m->cfg;
    m->grad_ids = 0;  /* ids are about to change */
    if (B == 0 || T == 0)
        return lstm_error(LSTM_EINVAL, "classifier: empty batch");
    if (train && k->dropout > 0.0f && !r)
        return lstm_error(LSTM_EINVAL, "classifier: dropout needs a generator");
    for (size_t b = 0; b < B; b++)
        if (len[b] < 1 || (size_t)len[b] > T)
            return lstm_error(LSTM_EINVAL,
                              "classifier: length %ld of row %zu outside "
                              "[1,%zu]",
                              (long)len[b], b, T);
    int err = reserve(m, B, T);
    if (err)
        return err;
    m->B = B;
    m->T = T;
    m->train = train;
    memcpy(m->ids, ids, B * T * sizeof *ids);
    memcpy(m->len, len, B * sizeof *len);
    double t0 = lstm__seconds();
    err = lstm_embedding_forward(&m->emb, m->x, ids, B * T);
    double t1 = lstm__seconds();
    if (!err)
        err = lstm_lstm_forward(&m->rnn, m->x, len, NULL, NULL, B, T, train, r);
    double t2 = lstm__seconds();
    if (train) {
        m->t_embed += t1 - t0;
        m->t_lstm_fwd += t2 - t1;
    }
    if (err)
        return err;
    pool_forward(m);
    for (size_t i = 0; i < k->n_mlp; i++) {
        const size_t n = B * k->mlp[i];
        lstm_dense_forward(&m->fc[i], m->rel[i], m->act[i], B);
        lstm_relu_forward(m->rel[i], m->rel[i], n);
        if (train && k->dropout > 0.0f)
            lstm_dropout_forward(m->act[i + 1], m->mask[i], m->rel[i], n,
                                 k->dropout, r);
        else
            memcpy(m->act[i + 1], m->rel[i], n * sizeof(float));
    }
    lstm_dense_forward(&m->fc[k->n_mlp], m->logits, m->act[k->n_mlp], B);
    if (k->wide > 0.0f)
        wide_forward(m);
    err = lstm_logsoftmax_nll_forward(m->logp, loss, m->logits, y, B, k->C);
    if (train)
        m->t_head += lstm__seconds() - t2;
    return err;
}

/* Rows ids[0..n) of an embedding's gradient zeroed (the padding row
 * never takes any). */
static void zero_rows(const lstm_embedding *e, const int32_t *ids, size_t n)
{
    float *g = e->ps->g + e->off_w;
    for (size_t k = 0; k < n; k++)
        if (ids[k] != e->pad)
            memset(g + (size_t)ids[k] * e->E, 0, e->E * sizeof *g);
}

/* The embedding tables, whose gradient a backward writes in its ids' rows
 * only: the word embedding, and the wide table when there is one. */
static size_t row_tables(const lstm_classifier *m,
                         const lstm_embedding *tab[2])
{
    tab[0] = &m->emb;
    tab[1] = m->cfg.wide > 0 ? &m->wide : NULL;
    return tab[1] ? 2 : 1;
}

size_t lstm__classifier_tables(const lstm_classifier *m,
                               lstm_sparse_rows out[2])
{
    const lstm_embedding *tab[2];
    const size_t n = row_tables(m, tab);
    for (size_t j = 0; j < n; j++)
        out[j] = (lstm_sparse_rows){tab[j]->off_w, tab[j]->V, tab[j]->E,
                                    NULL, 0};
    assert(n < 2 || out[0].off < out[1].off);  /* init adds emb first */
    return n;
}

size_t lstm_classifier_grad_rows(const lstm_classifier *m,
                                 lstm_sparse_rows out[2])
{
    if (!m->grad_ids)
        return 0;
    const size_t n = lstm__classifier_tables(m, out);
    for (size_t j = 0; j < n; j++) {
        out[j].ids = m->ids;
        out[j].nids = m->B * m->T;
    }
    return n;
}

void lstm_classifier_zero_grad(lstm_classifier *m, int since_backward)
{
    if (!since_backward || !m->grad_ids) {
        lstm_params_zero_grad(&m->ps);
        return;
    }
    const lstm_embedding *tab[2];
    row_tables(m, tab);
    float *g = m->ps.g;
    for (size_t i = 0; i < m->ps.np; i++) {  /* the dense ones whole */
        const lstm_param *p = &m->ps.p[i];
        int sparse = 0;
        for (int j = 0; j < 2; j++)
            sparse |= tab[j] && p->off == tab[j]->off_w;
        if (!sparse)
            memset(g + p->off, 0, p->numel * sizeof *g);
    }
    for (int j = 0; j < 2; j++)
        if (tab[j])
            zero_rows(tab[j], m->ids, m->B * m->T);
}

int lstm_classifier_backward(lstm_classifier *m, const int32_t *y)
{
    const lstm_classifier_config *k = &m->cfg;
    const size_t B = m->B, T = m->T, L = k->L, D = dirs(k), h = k->H;
    const size_t H = D * h, F = feat_width(k);  /* widths */
    if (!m->logp || !m->rnn.out)
        return lstm_error(LSTM_EINVAL, "classifier: backward before forward");
    for (size_t b = 0; b < B; b++)
        if (y[b] < 0 || (size_t)y[b] >= k->C)
            return lstm_error(LSTM_ERANGE, "classifier: label %ld outside "
                              "[0,%zu)", (long)y[b], k->C);
    double t0 = lstm__seconds();
    lstm_logsoftmax_nll_backward(m->dlog, m->logp, y, B, k->C);
    if (k->wide > 0.0f)
        wide_backward(m);
    /* the head, from the top: dtmp alternates between two halves */
    float *d = m->dtmp, *dnext = m->dtmp + B * max_width(k);
    lstm_dense_backward(&m->fc[k->n_mlp], d, m->dlog, m->act[k->n_mlp], B);
    for (size_t i = k->n_mlp; i-- > 0;) {
        const size_t n = B * k->mlp[i];
        if (m->train && k->dropout > 0.0f)
            lstm_dropout_backward(d, d, m->mask[i], n);
        lstm_relu_backward(d, d, m->rel[i], n);
        lstm_dense_backward(&m->fc[i], dnext, d, m->act[i], B);
        float *t = d;
        d = dnext;
        dnext = t;
    }
    /* d is now the gradient of the feature (B,F) */
    const float *dout = NULL, *dhn = NULL;
    if (k->pool == LSTM_POOL_LAST) {
        memset(m->dhn, 0, L * B * H * sizeof(float));
        for (size_t b = 0; b < B; b++)
            for (size_t r = 0; r < D; r++)
                memcpy(m->dhn + (((L - 1) * D + r) * B + b) * h,
                       d + b * F + r * h, h * sizeof(float));
        dhn = m->dhn;
    } else {
        memset(m->dout, 0, B * T * H * sizeof(float));
        for (size_t b = 0; b < B; b++) {
            const size_t n = (size_t)m->len[b];
            for (size_t j = 0; j < H; j++) {
                float g = d[b * F + j];
                if (k->pool == LSTM_POOL_MEAN)
                    for (size_t t = 0; t < n; t++)
                        m->dout[(b * T + t) * H + j] = g / (float)n;
                else
                    m->dout[(b * T + (size_t)m->argmax[b * H + j]) * H + j] = g;
            }
        }
        dout = m->dout;
    }
    double t1 = lstm__seconds();
    int err = lstm_lstm_backward(&m->rnn, dout, dhn, NULL, m->dx, NULL, NULL);
    double t2 = lstm__seconds();
    if (err)
        return err;
    for (size_t b = 0; k->bag && b < B; b++) {  /* the mean embedding's */
        const size_t n = (size_t)m->len[b], E = k->E;
        for (size_t t = 0; t < n; t++)
            for (size_t e = 0; e < E; e++)
                m->dx[(b * T + t) * E + e] += d[b * F + H + e] / (float)n;
    }
    lstm_embedding_backward(&m->emb, m->dx, m->ids, B * T);
    m->grad_ids = 1;
    if (m->train) {
        m->t_head += t1 - t0;
        m->t_lstm_bwd += t2 - t1;
        m->t_embed += lstm__seconds() - t2;
    }
    return LSTM_OK;
}

const char *lstm_pool_name(int pool)
{
    return pool == LSTM_POOL_MEAN ? "mean" : pool == LSTM_POOL_MAX ? "max"
                                                                   : "last";
}

int lstm_pool_parse(const char *s, int *pool)
{
    static const char *names[3] = {"last", "mean", "max"};
    for (int k = 0; k < 3; k++)
        if (!strcmp(s, names[k])) {
            *pool = k;
            return LSTM_OK;
        }
    return LSTM_EINVAL;
}

const char *lstm_precision_name(int precision)
{
    return precision == LSTM_BF16_MIXED ? "bf16-mixed" : "fp32";
}

int lstm_precision_parse(const char *s, int *precision)
{
    if (!strcmp(s, "fp32"))
        *precision = LSTM_FP32;
    else if (!strcmp(s, "bf16-mixed"))
        *precision = LSTM_BF16_MIXED;
    else
        return LSTM_EINVAL;
    return LSTM_OK;
}
