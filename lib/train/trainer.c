/*
 * trainer.c - the classifier's training run: every epoch a fresh
 * permutation of the training rows, steps of forward, backward, optional
 * clipping, the numerical guard and AdamW; then validation, early
 * stopping (as Lightning's EarlyStopping with min_delta = 0) and the
 * epoch hook; at the end the best weights back for a validation monitor.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "lstm_train.h"

const char *lstm_monitor_name(int monitor)
{
    return monitor == LSTM_MONITOR_VAL_LOSS  ? "val-loss"
           : monitor == LSTM_MONITOR_VAL_ACC ? "val-acc"
                                             : "train-loss";
}

int lstm_monitor_parse(const char *s, int *monitor)
{
    for (int k = 0; k < 3; k++)
        if (!strcmp(s, lstm_monitor_name(k))) {
            *monitor = k;
            return LSTM_OK;
        }
    return LSTM_EINVAL;
}

void lstm_train_config_default(lstm_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch = 4;
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = 1e-5;
    c->monitor = LSTM_MONITOR_TRAIN_LOSS;
    c->patience = 3;
    c->seed = 42;
}

static const char *schedules[3] = {"constant", "cosine", "onecycle"};

const char *lstm_lr_schedule_name(int s)
{
    return s >= 0 && s < 3 ? schedules[s] : "?";
}

int lstm_lr_schedule_parse(const char *s, int *schedule)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, schedules[i]))
            return *schedule = i, LSTM_OK;
    return LSTM_EINVAL;
}

double lstm_lr_at(int schedule, double lr, double warmup, size_t k, size_t n)
{
    const double pi = 3.14159265358979323846;
    if (schedule == LSTM_LR_ONECYCLE) {  /* OneCycleLR, anneal_strategy cos */
        const double lo = lr / 25.0, end = lo / 1e4;
        const double up = (warmup > 0 ? warmup : 0.3) * (double)n - 1.0;
        const double last = (double)n - 1.0, x = (double)k;
        if (x <= up && up > 0)  /* lo -> lr */
            return lr + (lo - lr) * (1 + cos(pi * x / up)) / 2;
        const double p = last > up ? (x - up) / (last - up) : 1.0;
        return end + (lr - end) * (1 + cos(pi * p)) / 2;  /* lr -> end */
    }
    const double w = warmup * (double)n;
    if ((double)k < w)
        return lr * ((double)k + 1) / w;
    if (schedule == LSTM_LR_COSINE && (double)n > w)
        return lr * (1 + cos(pi * ((double)k - w) / ((double)n - w))) / 2;
    return lr;
}

/* Whether the monitor minimises, and whether best weights are kept. */
static int minimises(int monitor) { return monitor != LSTM_MONITOR_VAL_ACC; }
static int keeps_best(int monitor)
{
    return monitor != LSTM_MONITOR_TRAIN_LOSS;
}

int lstm_trainer_init(lstm_trainer *t, lstm_classifier *m,
                      const lstm_train_config *cfg)
{
    memset(t, 0, sizeof *t);
    assert(m->ps.w && "lstm_trainer_init: the model is not initialised");
    if (cfg->epochs < 0 || cfg->batch == 0 || cfg->patience < 1 ||
        cfg->monitor < 0 || cfg->monitor > 2 || !(cfg->lr >= 0) ||
        !(cfg->clip_grad_norm >= 0))
        return lstm_error(LSTM_EINVAL, "trainer: epochs %ld, batch %zu, "
                          "patience %ld, lr %g or clip %g out of range",
                          cfg->epochs, cfg->batch, cfg->patience, cfg->lr,
                          cfg->clip_grad_norm);
    if (cfg->lr_schedule < 0 || cfg->lr_schedule > 2 ||
        !(cfg->warmup >= 0 && cfg->warmup < 1) ||
        !(cfg->word_dropout >= 0 && cfg->word_dropout < 1))
        return lstm_error(LSTM_EINVAL, "trainer: lr schedule %d, warm-up %g "
                          "or word dropout %g out of range", cfg->lr_schedule,
                          cfg->warmup, cfg->word_dropout);
    t->cfg = *cfg;
    t->model = m;
    t->epoch = 1;
    lstm_rng_seed(&t->rng_init, cfg->seed);
    lstm_rng_seed(&t->rng_shuffle, cfg->seed + 1);
    lstm_rng_seed(&t->rng_dropout, cfg->seed + 2);
    lstm_classifier_reset(m, &t->rng_init);
    t->best_metric = minimises(cfg->monitor) ? (double)INFINITY
                                             : -(double)INFINITY;
    if (keeps_best(cfg->monitor) &&
        !(t->best = lstm_alloc(m->ps.n * sizeof *t->best))) {
        lstm_trainer_free(t);
        return lstm_error(LSTM_ENOMEM, "out of memory for the best weights");
    }
    int err = lstm_adamw_init(&t->opt, m->ps.n, cfg->lr, cfg->beta1,
                              cfg->beta2, cfg->eps, cfg->weight_decay);
    if (err)
        lstm_trainer_free(t);
    return err;
}

int lstm_trainer_data(lstm_trainer *t, const lstm_corpus *c,
                      const int32_t *labels, const size_t *train,
                      size_t ntrain, const size_t *val, size_t nval)
{
    assert(t->model && "lstm_trainer_data before lstm_trainer_init");
    if (ntrain == 0)
        return lstm_error(LSTM_EINVAL, "trainer: no training rows");
    lstm_free(t->order);
    lstm_free(t->vpred);
    lstm_batch_free(&t->batch);
    t->order = lstm_alloc(ntrain * sizeof *t->order);
    t->vpred = lstm_alloc((nval + 1) * sizeof *t->vpred);
    if (!t->order || !t->vpred)
        return lstm_error(LSTM_ENOMEM, "out of memory");
    int err = lstm_batch_init(&t->batch, t->cfg.batch, c->max_len);
    if (err)
        return err;
    t->corpus = c;
    t->labels = labels;
    t->train = train;
    t->ntrain = ntrain;
    t->val = val;
    t->nval = nval;
    return LSTM_OK;
}

int lstm_trainer_distribute(lstm_trainer *t, const lstm_dist *d)
{
    if (d && (d->size < 1 || d->rank < 0 || d->rank >= d->size ||
              !d->sum_floats || !d->sum_doubles))
        return lstm_error(LSTM_EINVAL, "trainer: process %d of %d, or a sum "
                          "missing", d->rank, d->size);
    t->dist = d;
    return LSTM_OK;
}

size_t lstm_trainer_steps(const lstm_trainer *t)
{
    return (t->ntrain + t->cfg.batch - 1) / t->cfg.batch;
}

static int stop_asked(const lstm_trainer *t)
{
    return t->hooks.should_stop && t->hooks.should_stop(t->hooks.user);
}

/* The guard's error: the epoch, the step, the value and the parameter
 * nearest the loss whose gradient is not finite. */
static int non_finite(const lstm_trainer *t, const char *what, double value)
{
    const lstm_param *bad = lstm_params_nonfinite(&t->model->ps, 1);
    char val[32];
    if (isnan(value))
        snprintf(val, sizeof val, "NaN");
    else
        snprintf(val, sizeof val, "%g", value);
    return lstm_error(LSTM_ENUMERIC, "epoch %ld step %zu: the %s is %s%s%s",
                      t->epoch, t->step + 1, what, val,
                      bad ? ", first in the gradient of " : "",
                      bad ? bad->name : "");
}

/* The ranges of the block outside the tables tab[0..nt) (sorted by
 * offset; at most 3 ranges for 2 tables): how many, in lo/hi. */
static size_t outside(const lstm_sparse_rows *tab, size_t nt, size_t n,
                      size_t lo[3], size_t hi[3])
{
    size_t k = 0, at = 0;
    for (size_t j = 0; j < nt; j++) {
        if (tab[j].off > at) {
            lo[k] = at;
            hi[k++] = tab[j].off;
        }
        at = tab[j].off + tab[j].rows * tab[j].cols;
    }
    if (n > at) {
        lo[k] = at;
        hi[k++] = n;
    }
    return k;
}

enum { TO_BUF, FROM_BUF, ZERO };

/* n floats of the block at blk: into buf, back from it, or zeroed. */
static void move(int op, float *blk, float *buf, size_t n)
{
    if (op == TO_BUF)
        memcpy(buf, blk, n * sizeof *blk);
    else if (op == FROM_BUF)
        memcpy(blk, buf, n * sizeof *blk);
    else
        memset(blk, 0, n * sizeof *blk);
}

/* What the distributed sums carry, in their packed order: the ranges
 * outside the tables, then the tables' rows in t->drows; copied from the
 * block g into t->dbuf (TO_BUF), back (FROM_BUF), or zeroed in g (ZERO). */
static void walk_summed(lstm_trainer *t, float *g,
                        const lstm_sparse_rows *tab, size_t nt, int op)
{
    size_t lo[3], hi[3], at = 0;
    const size_t nr = outside(tab, nt, t->model->ps.n, lo, hi);
    for (size_t i = 0; i < nr; at += hi[i] - lo[i], i++)
        move(op, g + lo[i], t->dbuf + at, hi[i] - lo[i]);
    const int32_t *rows = t->drows;
    for (size_t j = 0; j < nt; rows += t->nrows[j], j++)
        for (size_t i = 0; i < t->nrows[j]; i++, at += tab[j].cols)
            move(op, g + tab[j].off + (size_t)rows[i] * tab[j].cols,
                 t->dbuf + at, tab[j].cols);
}

/* Room for n floats in t->dbuf. */
static int grow_dbuf(lstm_trainer *t, size_t n)
{
    if (n <= t->dcap)
        return LSTM_OK;
    float *b = lstm_alloc(n * sizeof *b);
    if (!b)
        return lstm_error(LSTM_ENOMEM, "out of memory for the gradient sums "
                          "(%zu floats)", n);
    lstm_free(t->dbuf);
    t->dbuf = b;
    t->dcap = n;
    return LSTM_OK;
}

/* The sum across the processes of the gradients scaled by w, and of the
 * step's loss and hits: the block outside the embedding tables whole, and
 * of the tables only the rows some process's batch used (their union,
 * from 0/1 flags summed first, with the loss and hits); every other row
 * is zero everywhere, and stays so. Two sums a step, as one sum of the
 * whole block and one of the loss and hits were. Fills tab (and *nt) with
 * the tables and those rows, for AdamW. */
static int sum_grads(lstm_trainer *t, const lstm_dist *d, float w,
                     size_t n, double sums[2], lstm_sparse_rows tab[2],
                     size_t *nt)
{
    lstm_classifier *m = t->model;
    float *g = m->ps.g;
    lstm_sparse_rows mine[2];
    const size_t nown = n ? lstm_classifier_grad_rows(m, mine) : 0;
    *nt = lstm__classifier_tables(m, tab);
    size_t nflags = 0, len = m->ps.n;
    for (size_t j = 0; j < *nt; j++) {
        nflags += tab[j].rows;
        len -= tab[j].rows * tab[j].cols;
    }
    if (!t->drows && !(t->drows = lstm_alloc((nflags ? nflags : 1) *
                                             sizeof *t->drows)))
        return lstm_error(LSTM_ENOMEM, "out of memory for the gradient "
                          "sums' rows (%zu)", nflags);
    /* the step's loss and hits, and the union of the rows (this
     * process's ids as flags), in one sum */
    int err = grow_dbuf(t, 2 * (nflags + 2));
    if (err)
        return err;
    double *flags = (double *)(void *)t->dbuf;
    memset(flags, 0, (nflags + 2) * sizeof *flags);
    memcpy(flags + nflags, sums, 2 * sizeof *sums);
    for (size_t j = 0; j < nown; j++) {
        const size_t base = mine[j].off == tab[0].off ? 0 : tab[0].rows;
        for (size_t i = 0; i < mine[j].nids; i++)
            flags[base + (size_t)mine[j].ids[i]] = 1.0;
    }
    double t0 = lstm__seconds();
    err = d->sum_doubles(flags, nflags + 2, d->ctx);
    t->t_sum += lstm__seconds() - t0;
    if (err)
        return err;
    memcpy(sums, flags + nflags, 2 * sizeof *sums);
    int32_t *rows = t->drows;
    for (size_t j = 0, base = 0; j < *nt; base += tab[j].rows, j++) {
        size_t k = 0;
        for (size_t r = 0; r < tab[j].rows; r++)
            if (flags[base + r] != 0.0)
                rows[k++] = (int32_t)r;
        t->nrows[j] = k;
        tab[j].ids = rows;
        tab[j].nids = k;
        rows += k;
        len += k * tab[j].cols;
    }
    if ((err = grow_dbuf(t, len)))
        return err;
    walk_summed(t, g, tab, *nt, TO_BUF);
    for (size_t i = 0; i < len; i++)
        t->dbuf[i] *= w;
    t0 = lstm__seconds();
    err = d->sum_floats(t->dbuf, len, d->ctx);
    t->t_sum += lstm__seconds() - t0;
    if (err)
        return err;
    walk_summed(t, g, tab, *nt, FROM_BUF);
    t->grads_rows = 1;
    return LSTM_OK;
}

/* One training step on the global batch r[0..B): this process's share of
 * it (all of it alone); 0 or an error. */
static int train_step(lstm_trainer *t, const size_t *r, size_t B)
{
    lstm_classifier *m = t->model;
    lstm_batch *b = &t->batch;
    const size_t C = m->cfg.C;
    const lstm_dist *d = t->dist && t->dist->size > 1 ? t->dist : NULL;
    size_t i0 = 0, i1 = B;
    lstm_rng mine, *rng = &t->rng_dropout;
    if (d) {  /* rows [i0,i1), dropout from a generator of this step's own */
        i0 = B * (size_t)d->rank / (size_t)d->size;
        i1 = B * (size_t)(d->rank + 1) / (size_t)d->size;
        lstm_rng_seed(&mine, lstm_rng_next(&t->rng_dropout) +
                                 (uint64_t)d->rank);
        rng = &mine;
    }
    const size_t n = i1 - i0;
    float loss = 0.0f;
    double hits = 0;
    /* the embedding's gradient only in the rows the last step wrote: its
     * own backward's, or those the sums across processes wrote */
    lstm_sparse_rows tab[2];
    size_t ntab = 0;
    if (t->grads_rows) {
        ntab = lstm__classifier_tables(m, tab);
        walk_summed(t, m->ps.g, tab, ntab, ZERO);
    } else {
        lstm_classifier_zero_grad(m, t->grads_own && !d);
    }
    t->grads_own = t->grads_rows = 0;
    if (n) {
        lstm_batch_gather(b, t->corpus, r + i0, n, t->labels);
        if (t->cfg.word_dropout > 0)  /* tokens to [UNK], inside each text */
            for (size_t i = 0; i < n; i++)
                for (int32_t k = 0; k < b->len[i]; k++)
                    if (lstm_rng_uniform(rng) < t->cfg.word_dropout)
                        b->ids[i * b->T + (size_t)k] = 1;
        int err = lstm_classifier_forward(m, b->ids, b->len, n, b->T, b->y,
                                          &loss, 1, rng);
        if (!err)
            err = lstm_classifier_backward(m, b->y);
        if (err)
            return err;
        for (size_t i = 0; i < n; i++)
            hits += (int32_t)lstm_argmax(m->logp + i * C, C) == b->y[i];
    }
    ntab = 0;
    if (d) {  /* the sum of the shares' gradients is the batch's */
        double sums[2] = {(double)loss * (double)n, hits};
        int err = sum_grads(t, d, (float)n / (float)B, n, sums, tab, &ntab);
        if (err)
            return err;
        loss = (float)(sums[0] / (double)B);
        hits = sums[1];
    } else if (n) {
        /* alone, the embedding's gradient is this backward's rows and
         * zeros (zeroed above): AdamW reads only those rows */
        ntab = lstm_classifier_grad_rows(m, tab);
    }
    double gnorm = t->cfg.clip_grad_norm > 0
                       ? lstm_params_clip_grad_norm(&m->ps,
                                                    t->cfg.clip_grad_norm)
                       : 0.0;
    if (!isfinite(loss) || !isfinite(gnorm))
        return non_finite(t, isfinite(loss) ? "gradient norm" : "loss",
                          isfinite(loss) ? gnorm : (double)loss);
    const size_t steps = lstm_trainer_steps(t);
    t->opt.lr = lstm_lr_at(t->cfg.lr_schedule, t->cfg.lr, t->cfg.warmup,
                           (size_t)(t->epoch - 1) * steps + t->step,
                           (size_t)t->cfg.epochs * steps);
    double t0 = lstm__seconds();
    size_t nbad = lstm_adamw_step_rows(&t->opt, m->ps.w, m->ps.g, tab, ntab);
    t->t_opt += lstm__seconds() - t0;
    if (nbad)
        return non_finite(t, "count of non-finite gradients", (double)nbad);
    t->lsum += (double)loss * (double)B;
    t->seen += B;
    t->correct += (size_t)hits;
    t->grads_own = !d && n;
    return LSTM_OK;
}

/* Early stopping after an epoch whose monitored value is v. */
static void early_stopping(lstm_trainer *t, long epoch, double v)
{
    if (minimises(t->cfg.monitor) ? v < t->best_metric : v > t->best_metric) {
        t->best_metric = v;
        t->best_epoch = epoch;
        t->wait = 0;
        if (t->best)
            memcpy(t->best, t->model->ps.w, t->model->ps.n * sizeof *t->best);
    } else if (++t->wait >= t->cfg.patience) {
        t->stopped = 1;
    }
}

int lstm_trainer_fit(lstm_trainer *t)
{
    assert(t->corpus && "lstm_trainer_fit before lstm_trainer_data");
    lstm_classifier *m = t->model;
    if (keeps_best(t->cfg.monitor) && t->nval == 0)
        return lstm_error(LSTM_EINVAL, "monitor %s: no validation rows",
                          lstm_monitor_name(t->cfg.monitor));
    const size_t steps = lstm_trainer_steps(t), Bmax = t->cfg.batch;
    const size_t ntrain = t->ntrain;
    const lstm_train_hooks *h = &t->hooks;
    t->restored = 0;
    t->grads_own = t->grads_rows = 0;  /* whatever ran before, zero every
                                          gradient */
    int rc = 0;
    while (!t->stopped && t->epoch <= t->cfg.epochs) {
        const long epoch = t->epoch;
        /* every epoch a fresh permutation of the training rows */
        lstm_rng shuf = t->rng_shuffle;
        memcpy(t->order, t->train, ntrain * sizeof *t->order);
        lstm_rng_shuffle(&shuf, t->order, ntrain);
        if (h->epoch_begin)
            h->epoch_begin(t, h->user);
        const double t0 = lstm__seconds();
        const size_t seen0 = t->seen;
        for (size_t s = t->step; s < steps; s++) {
            if (stop_asked(t))
                return LSTM_STOPPED;
            size_t B = ntrain - s * Bmax < Bmax ? ntrain - s * Bmax : Bmax;
            if ((rc = train_step(t, t->order + s * Bmax, B)))
                return rc;
            t->step = s + 1;
            if (h->step)
                h->step(t, s + 1, steps, t->seen - seen0,
                        t->lsum / (double)t->seen, h->user);
        }
        lstm_epoch_stats st;
        st.epoch = epoch;
        st.seconds = lstm__seconds() - t0;
        st.items = t->seen - seen0;
        st.items_per_s = (double)st.items / st.seconds;
        st.train_loss = t->lsum / (double)t->seen;
        st.train_acc = (double)t->correct / (double)t->seen;
        st.val_loss = st.val_acc = (double)NAN;
        double te = lstm__seconds();
        if (t->nval && (rc = lstm_evaluate(m, t->corpus, t->val, t->nval,
                                           t->labels, t->vpred, NULL,
                                           &st.val_loss, &st.val_acc)))
            return rc;
        t->t_eval += lstm__seconds() - te;
        early_stopping(t, epoch, t->cfg.monitor == LSTM_MONITOR_TRAIN_LOSS
                                     ? st.train_loss
                                 : t->cfg.monitor == LSTM_MONITOR_VAL_LOSS
                                     ? st.val_loss
                                     : st.val_acc);
        t->epoch = epoch + 1;
        t->step = 0;
        t->lsum = 0;
        t->correct = t->seen = 0;
        t->rng_shuffle = shuf;
        t->epochs_run++;
        if (h->epoch_end && (rc = h->epoch_end(t, &st, h->user)))
            return rc;
        if (stop_asked(t))
            return LSTM_STOPPED;
    }
    if (t->best && t->best_epoch) {
        memcpy(m->ps.w, t->best, m->ps.n * sizeof *t->best);
        t->restored = 1;
    }
    return LSTM_OK;
}

void lstm_trainer_free(lstm_trainer *t)
{
    lstm_adamw_free(&t->opt);
    lstm_free(t->best);
    lstm_free(t->order);
    lstm_free(t->vpred);
    lstm_free(t->dbuf);
    lstm_free(t->drows);
    lstm_batch_free(&t->batch);
    memset(t, 0, sizeof *t);
}

void lstm_trainer_timing(lstm_buf *b, const lstm_trainer *t, double seconds)
{
    const lstm_classifier *m = t->model;
    const double ne = (double)t->epochs_run, steps = seconds - t->t_eval;
    if (!t->epochs_run) {
        lstm_buf_printf(b, "training: finished before (epoch %ld); testing\n",
                        t->epoch - 1);
        return;
    }
    lstm_buf_printf(b, "training: %ld epochs in %.1f s (%.1f s per epoch, "
                    "%.1f s of them training steps)\nper epoch: embedding "
                    "%.2f s, LSTM forward %.2f s, LSTM backward %.2f s, head "
                    "%.2f s, optimizer %.2f s, other %.2f s; validation %.2f "
                    "s\n", t->epochs_run, seconds, seconds / ne, steps / ne,
                    m->t_embed / ne, m->t_lstm_fwd / ne, m->t_lstm_bwd / ne,
                    m->t_head / ne, t->t_opt / ne,
                    (steps - m->t_embed - m->t_lstm_fwd - m->t_lstm_bwd -
                     m->t_head - t->t_opt) / ne, t->t_eval / ne);
    if (t->dist && t->dist->size > 1)  /* part of "other" above */
        lstm_buf_printf(b, "gradient sums across %d processes: %.2f s per "
                        "epoch, %.2f ms per step\n", t->dist->size,
                        t->t_sum / ne,
                        1e3 * t->t_sum / ne / (double)lstm_trainer_steps(t));
}
