/*
 * check_train.c - the library's training run in process: early stopping
 * and restore-best, the numerical guard, a run stopped, saved, loaded and
 * continued bit for bit; the model file; AdamW checkpoints; streaming
 * steps against the full forward; a second LSTM over shared weights; the
 * losses against PyTorch; sampling; option tables; a run's folder; the
 * stop signals.
 */
#define _XOPEN_SOURCE 700  /* mkstemp, mkdtemp, popen */
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lstm_data.h"
#include "testutil.h"

/* ---- a small synthetic corpus: class k's texts use tokens 2+4k..5+4k ---- */

enum { NROW = 48, NCLS = 3, TMAX = 8, VOCAB = 2 + 4 * NCLS };

typedef struct {
    int32_t ids[NROW * TMAX];
    size_t off[NROW];
    int32_t len[NROW], label[NROW];
    size_t train[NROW], val[NROW];
    size_t ntrain, nval;
    lstm_corpus c;
} toy;

static void toy_make(toy *d)
{
    lstm_rng r;
    lstm_rng_seed(&r, 7);
    size_t used = 0;
    d->ntrain = d->nval = 0;
    for (size_t i = 0; i < NROW; i++) {
        int32_t k = (int32_t)(i % NCLS), l = 2 + (int32_t)lstm_rng_below(&r, 7);
        d->off[i] = used;
        d->len[i] = l;
        d->label[i] = k;
        for (int32_t t = 0; t < l; t++)
            d->ids[used++] = 2 + 4 * k + (int32_t)lstm_rng_below(&r, 4);
        if (i % 4 == 3)
            d->val[d->nval++] = i;
        else
            d->train[d->ntrain++] = i;
    }
    d->c = (lstm_corpus){d->ids, d->off, d->len, NROW, TMAX};
}

static lstm_classifier_config toy_config(void)
{
    lstm_classifier_config cfg = {VOCAB, 8, 16, 2, NCLS, {12, 8}, 2, 0.3f,
                                  LSTM_POOL_LAST, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    return cfg;
}

static void toy_trainer_of(lstm_trainer *t, lstm_classifier *m, toy *d,
                           const lstm_train_config *tc,
                           const lstm_classifier_config *cfg)
{
    ck_assert_int_eq(lstm_classifier_init(m, cfg), 0);
    ck_assert_int_eq(lstm_trainer_init(t, m, tc), 0);
    ck_assert_int_eq(lstm_trainer_data(t, &d->c, d->label, d->train,
                                       d->ntrain, d->val, d->nval), 0);
}

static void toy_trainer(lstm_trainer *t, lstm_classifier *m, toy *d,
                        const lstm_train_config *tc)
{
    lstm_classifier_config cfg = toy_config();
    toy_trainer_of(t, m, d, tc, &cfg);
}

typedef struct {
    double val_loss[64];
    long epochs;
    size_t steps, stop_after;
} record;

static int rec_epoch(lstm_trainer *t, const lstm_epoch_stats *s, void *user)
{
    (void)t;
    record *r = user;
    if (r->epochs < 64)
        r->val_loss[r->epochs] = s->val_loss;
    r->epochs++;
    return 0;
}

static void rec_step(const lstm_trainer *t, size_t step, size_t steps,
                     size_t items, double loss, void *user)
{
    (void)t, (void)step, (void)steps, (void)items, (void)loss;
    ((record *)user)->steps++;
}

static int rec_stop(void *user)
{
    record *r = user;
    return r->stop_after && r->steps >= r->stop_after;
}

START_TEST(trainer_early_stopping)
{
    /* lr 0 and no dropout: the validation loss never improves after the
     * first epoch, so the run ends after 1 + patience epochs */
    static toy d;
    toy_make(&d);
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.lr = 0;
    tc.weight_decay = 0;
    tc.epochs = 20;
    tc.patience = 3;
    tc.batch = 8;
    tc.monitor = LSTM_MONITOR_VAL_LOSS;
    lstm_classifier m;
    lstm_trainer t;
    toy_trainer(&t, &m, &d, &tc);
    m.cfg.dropout = 0.0f;
    m.rnn.dropout = 0.0f;
    record r = {0};
    t.hooks = (lstm_train_hooks){&r, NULL, NULL, rec_epoch, NULL};
    ck_assert_int_eq(lstm_trainer_fit(&t), 0);
    ck_assert_int_eq(r.epochs, 4);
    ck_assert_int_eq(t.epochs_run, 4);
    ck_assert(t.stopped);
    ck_assert_int_eq(t.best_epoch, 1);
    ck_assert_int_eq(t.wait, 3);
    lstm_trainer_free(&t);
    lstm_classifier_free(&m);
}
END_TEST

/* ---- two processes as two threads of this one ---- */

/* The sums of lstm_dist through shared memory: each rank publishes its
 * buffer, both compute slot 0 + slot 1 in that order, then write it back,
 * so both ranks hold the same bits. */
typedef struct {
    pthread_barrier_t bar;
    const void *slot[2];
    size_t n[2];
    int mismatch;
} duo;

typedef struct {
    lstm_dist d;
    duo *x;
    lstm_trainer t;
    lstm_classifier m;
    int rc;
} duo_rank;

static int duo_sum(void *buf, size_t n, int dbl, void *ctx)
{
    duo_rank *r = ctx;
    duo *x = r->x;
    const int me = r->d.rank;
    x->slot[me] = buf;
    x->n[me] = n;
    pthread_barrier_wait(&x->bar);
    const size_t sz = dbl ? sizeof(double) : sizeof(float);
    void *tmp = malloc(n * sz + 1);
    if (x->n[0] != x->n[1] || !tmp)
        x->mismatch = 1;
    for (size_t i = 0; tmp && !x->mismatch && i < n; i++)
        if (dbl)
            ((double *)tmp)[i] = ((const double *)x->slot[0])[i] +
                                 ((const double *)x->slot[1])[i];
        else
            ((float *)tmp)[i] = ((const float *)x->slot[0])[i] +
                                ((const float *)x->slot[1])[i];
    pthread_barrier_wait(&x->bar);
    if (tmp && !x->mismatch)
        memcpy(buf, tmp, n * sz);
    free(tmp);
    return x->mismatch ? lstm_error(LSTM_EIO, "duo: sums of %zu and %zu",
                                    x->n[0], x->n[1])
                       : LSTM_OK;
}

static int duo_floats(float *buf, size_t n, void *ctx)
{
    return duo_sum(buf, n, 0, ctx);
}

static int duo_doubles(double *buf, size_t n, void *ctx)
{
    return duo_sum(buf, n, 1, ctx);
}

static void *duo_fit(void *arg)
{
    duo_rank *r = arg;
    r->rc = lstm_trainer_fit(&r->t);
    return NULL;
}

/* A distributed run's own machinery (the flags and loss sums, the packed
 * rows, the zeroing of what the sums wrote, AdamW over those rows) in
 * process, where the sanitizers see it: both ranks end with the same
 * bits, the one-process weights to 1e-5, with a wide table and a batch of
 * 3 (the ranks' shares 1 and 2 rows). */
START_TEST(trainer_two_ranks_in_threads)
{
    static toy d;
    toy_make(&d);
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.epochs = 3;
    tc.batch = 3;
    tc.lr = 1e-2;
    lstm_set_threads(1);
    lstm_classifier_config cfg = toy_config();
    cfg.dropout = 0.0f;
    cfg.wide = 0.5f;
    static duo x;
    static duo_rank r[3];  /* r[2]: one process */
    ck_assert_int_eq(pthread_barrier_init(&x.bar, NULL, 2), 0);
    for (int k = 0; k < 3; k++) {
        toy_trainer_of(&r[k].t, &r[k].m, &d, &tc, &cfg);
        r[k].x = &x;
        r[k].d = (lstm_dist){k, 2, duo_floats, duo_doubles, &r[k]};
        if (k < 2)
            ck_assert_int_eq(lstm_trainer_distribute(&r[k].t, &r[k].d), 0);
    }
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, duo_fit, &r[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    ck_assert_int_eq(lstm_trainer_fit(&r[2].t), 0);
    ck_assert_int_eq(r[0].rc, 0);
    ck_assert_int_eq(r[1].rc, 0);
    ck_assert(!x.mismatch);
    const size_t n = r[2].m.ps.n;
    ck_assert(memcmp(r[0].m.ps.w, r[1].m.ps.w, n * sizeof(float)) == 0);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)r[0].m.ps.w[i] -
                                 (double)r[2].m.ps.w[i]));
    ck_assert_msg(worst < 1e-5, "2 ranks vs 1 process: weights %g apart",
                  worst);
    for (int k = 0; k < 3; k++) {
        lstm_trainer_free(&r[k].t);
        lstm_classifier_free(&r[k].m);
    }
    pthread_barrier_destroy(&x.bar);
    lstm_set_threads(0);
}
END_TEST

START_TEST(trainer_learns_and_restores_best)
{
    static toy d;
    toy_make(&d);
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.lr = 0.02;
    tc.epochs = 12;
    tc.batch = 6;
    tc.patience = 12;
    tc.monitor = LSTM_MONITOR_VAL_LOSS;
    lstm_classifier m;
    lstm_trainer t;
    toy_trainer(&t, &m, &d, &tc);
    record r = {0};
    t.hooks = (lstm_train_hooks){&r, NULL, rec_step, rec_epoch, NULL};
    ck_assert_int_eq(lstm_trainer_fit(&t), 0);
    ck_assert_int_eq(r.epochs, 12);
    ck_assert_uint_eq(r.steps, 12 * lstm_trainer_steps(&t));
    /* the best epoch is the one of the lowest validation loss */
    long best = 0;
    for (long e = 1; e < r.epochs; e++)
        if (r.val_loss[e] < r.val_loss[best])
            best = e;
    ck_assert_int_eq(t.best_epoch, best + 1);
    ck_assert(t.restored);
    ck_assert(memcmp(m.ps.w, t.best, m.ps.n * sizeof(float)) == 0);
    /* the weights in place are the best ones: same validation loss */
    int32_t pred[NROW];
    double loss, acc;
    ck_assert_int_eq(lstm_evaluate(&m, &d.c, d.val, d.nval, d.label, pred,
                                   NULL, &loss, &acc), 0);
    ck_assert(loss == t.best_metric);
    ck_assert_msg(acc >= 0.9, "val accuracy %.3f after training", acc);
    lstm_trainer_free(&t);
    lstm_classifier_free(&m);
}
END_TEST

START_TEST(trainer_guard_names_step_and_parameter)
{
    static toy d;
    toy_make(&d);
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.lr = 1e30;
    tc.epochs = 3;
    lstm_classifier m;
    lstm_trainer t;
    toy_trainer(&t, &m, &d, &tc);
    ck_assert_int_eq(lstm_trainer_fit(&t), LSTM_ENUMERIC);
    const char *msg = lstm_errmsg();
    ck_assert_msg(strncmp(msg, "epoch 1 step ", 13) == 0, "%s", msg);
    ck_assert_msg(strstr(msg, "is NaN") || strstr(msg, "is inf") ||
                      strstr(msg, "non-finite"), "%s", msg);
    ck_assert_msg(strstr(msg, "first in the gradient of "), "%s", msg);
    lstm_trainer_free(&t);
    lstm_classifier_free(&m);
}
END_TEST

/* _i = 1: with a one-cycle schedule and word dropout, which a resumed run
 * must follow from where it stopped */
START_TEST(trainer_stop_save_load_continue_same_bits)
{
    static toy d;
    toy_make(&d);
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    if (_i) {
        tc.lr_schedule = LSTM_LR_ONECYCLE;
        tc.warmup = 0.25;
        tc.word_dropout = 0.2;
    }
    tc.lr = 0.01;
    tc.epochs = 3;
    tc.batch = 5;
    tc.monitor = LSTM_MONITOR_VAL_ACC;
    tc.clip_grad_norm = 1.0;
    tc.data_rows = NROW;
    tc.data_crc = 1234;
    lstm_classifier a, b, c;
    lstm_trainer ta, tb, tcn;
    toy_trainer(&ta, &a, &d, &tc);
    ck_assert_int_eq(lstm_trainer_fit(&ta), 0);

    /* stopped in the middle of epoch 2 (after 11 of 3 x 8 steps) */
    toy_trainer(&tb, &b, &d, &tc);
    record r = {0};
    r.stop_after = 11;
    tb.hooks = (lstm_train_hooks){&r, NULL, rec_step, NULL, rec_stop};
    ck_assert_int_eq(lstm_trainer_fit(&tb), LSTM_STOPPED);
    ck_assert_int_eq(tb.epoch, 2);
    ck_assert_uint_eq(tb.step, 3);
    char path[] = "/tmp/lstm_state_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    const char *keys[1] = {"note"}, *vals[1] = {"kept"};
    ck_assert_int_eq(lstm_trainer_save(&tb, path, keys, vals, 1), 0);
    lstm_trainer_free(&tb);
    lstm_classifier_free(&b);

    /* a new process would do this: same configuration, load, continue */
    toy_trainer(&tcn, &c, &d, &tc);
    lstm_safetensors st;
    ck_assert_int_eq(lstm_safetensors_open(&st, path), 0);
    ck_assert_str_eq(lstm_safetensors_meta(&st, "note"), "kept");
    ck_assert_int_eq(lstm_trainer_load(&tcn, &st, path), 0);
    ck_assert_int_eq(lstm_trainer_fit(&tcn), 0);
    ck_assert(memcmp(c.ps.w, a.ps.w, a.ps.n * sizeof(float)) == 0);
    ck_assert(memcmp(tcn.opt.m, ta.opt.m, a.ps.n * sizeof(float)) == 0);
    ck_assert_int_eq(tcn.best_epoch, ta.best_epoch);

    /* other data: refused, naming the file */
    lstm_trainer_free(&tcn);
    lstm_classifier_free(&c);
    tc.data_crc = 99;
    toy_trainer(&tcn, &c, &d, &tc);
    ck_assert_int_eq(lstm_trainer_load(&tcn, &st, path), LSTM_EINVAL);
    ck_assert(strstr(lstm_errmsg(), "the data differ") != NULL);
    lstm_safetensors_close(&st);
    lstm_trainer_free(&tcn);
    lstm_classifier_free(&c);

    /* an AdamW step count at 2^63 - 1 passes a range check done in double
     * (LONG_MAX rounds up to 2^63) and overflows the conversion: refused,
     * exactly (float-cast-overflow is in the sanitizer build) */
    tc.data_crc = 1234;
    st_patch(path, "adam_step\\\":11,", "adam_step\\\":9223372036854775807,");
    toy_trainer(&tcn, &c, &d, &tc);
    ck_assert_int_eq(lstm_safetensors_open(&st, path), 0);
    ck_assert_int_lt(lstm_trainer_load(&tcn, &st, path), 0);
    ck_assert_msg(strstr(lstm_errmsg(), path) != NULL, "%s", lstm_errmsg());
    lstm_safetensors_close(&st);
    unlink(path);
    lstm_trainer_free(&tcn);
    lstm_classifier_free(&c);
    lstm_trainer_free(&ta);
    lstm_classifier_free(&a);
}
END_TEST

/* The schedules' rates at their ends and joints (onecycle's against
 * torch.optim.lr_scheduler.OneCycleLR: 50 steps, max_lr 1e-2, pct_start
 * 0.3 gives 4e-4 at step 0, 1e-2 at step 14, 4e-8 at step 49, and
 * 5.224e-3 at step 31), and the checks of the configuration. */
START_TEST(lr_schedules)
{
    const double lr = 1e-2;
    ck_assert(lstm_lr_at(LSTM_LR_CONSTANT, lr, 0, 7, 50) == lr);
    ck_assert(fabs(lstm_lr_at(LSTM_LR_CONSTANT, lr, 0.1, 0, 50) - lr / 5) <
              1e-15);
    ck_assert(lstm_lr_at(LSTM_LR_CONSTANT, lr, 0.1, 5, 50) == lr);
    ck_assert(fabs(lstm_lr_at(LSTM_LR_COSINE, lr, 0, 0, 50) - lr) < 1e-15);
    ck_assert(fabs(lstm_lr_at(LSTM_LR_COSINE, lr, 0, 25, 50) - lr / 2) <
              1e-15);
    ck_assert(lstm_lr_at(LSTM_LR_COSINE, lr, 0, 49, 50) < 1e-5);
    ck_assert(fabs(lstm_lr_at(LSTM_LR_ONECYCLE, lr, 0, 0, 50) - 4e-4) < 1e-15);
    ck_assert(fabs(lstm_lr_at(LSTM_LR_ONECYCLE, lr, 0, 14, 50) - lr) < 1e-15);
    ck_assert(fabs(lstm_lr_at(LSTM_LR_ONECYCLE, lr, 0, 49, 50) - 4e-8) <
              1e-18);
    ck_assert(fabs(lstm_lr_at(LSTM_LR_ONECYCLE, lr, 0, 31, 50) -
                   0.005224343254455968) < 1e-12);
    int s;
    ck_assert_int_eq(lstm_lr_schedule_parse("cosine", &s), 0);
    ck_assert_int_eq(s, LSTM_LR_COSINE);
    ck_assert_int_eq(lstm_lr_schedule_parse("linear", &s), LSTM_EINVAL);
    ck_assert_str_eq(lstm_lr_schedule_name(LSTM_LR_ONECYCLE), "onecycle");
    static toy d;
    toy_make(&d);
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.word_dropout = 1.0;
    lstm_classifier m;
    lstm_trainer t;
    lstm_classifier_config cfg = toy_config();
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    ck_assert_int_eq(lstm_trainer_init(&t, &m, &tc), LSTM_EINVAL);
    ck_assert(strstr(lstm_errmsg(), "word dropout 1") != NULL);
    lstm_classifier_free(&m);
}
END_TEST

START_TEST(model_file_round_trip)
{
    static toy d;
    toy_make(&d);
    lstm_classifier_config cfg = toy_config();
    cfg.bag = _i;         /* and with the bag of words, */
    cfg.wide = _i * 7.5f; /* and the wide one (its weights made random) */
    lstm_classifier m;
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    lstm_rng r;
    lstm_rng_seed(&r, 3);
    lstm_classifier_reset(&m, &r);
    if (_i)
        lstm_fill_normal(m.ps.w + m.wide.off_w, VOCAB * NCLS, 0.0f, 1.0f, &r);
    char *tok[VOCAB];
    char buf[VOCAB][8];
    for (int i = 0; i < VOCAB; i++) {
        snprintf(buf[i], sizeof buf[i], i == 0 ? "[PAD]" : i == 1 ? "[UNK]"
                                                              : "w%d", i);
        tok[i] = buf[i];
    }
    lstm_vocab v;
    ck_assert_int_eq(lstm_vocab_from_list(&v, tok, VOCAB), 0);
    char *classes[NCLS] = {"a,b", "c\"d", "e"};
    char path[] = "/tmp/lstm_model_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    ck_assert_int_eq(lstm_model_save(path, &m, &v, classes, NCLS, TMAX), 0);
    lstm_model lm;
    ck_assert_int_eq(lstm_model_load(&lm, path), 0);
    ck_assert_uint_eq(lm.n_classes, NCLS);
    ck_assert_str_eq(lm.classes[1], "c\"d");
    ck_assert_uint_eq(lm.max_len, TMAX);
    ck_assert_uint_eq(lm.vocab.n, VOCAB);
    ck_assert_int_eq(lm.net.cfg.bag, _i);
    ck_assert(lm.net.cfg.wide == cfg.wide);
    ck_assert(memcmp(lm.net.ps.w, m.ps.w, m.ps.n * sizeof(float)) == 0);
    /* predict from text = forward over the encoded ids */
    const char *text = "w5 w7 nada w3";
    int k = lstm_model_predict(&lm, text, strlen(text));
    ck_assert_int_ge(k, 0);
    int32_t ids[TMAX], len = (int32_t)lstm_encode(&v, text, strlen(text), ids,
                                                   TMAX);
    ck_assert_int_eq(lstm_classifier_forward(&m, ids, &len, 1, (size_t)len,
                                             NULL, NULL, 0, NULL), 0);
    ck_assert(memcmp(lm.net.logp, m.logp, NCLS * sizeof(float)) == 0);
    ck_assert_int_eq(k, (int)lstm_argmax(m.logp, NCLS));
    ck_assert_int_lt(lstm_model_predict(&lm, "\xff", 1), 0);
    lstm_model_free(&lm);
    unlink(path);
    lstm_vocab_free(&v);
    lstm_classifier_free(&m);
}
END_TEST

/* lstm_adamw_step_rows: the bits of lstm_adamw_step, over a block split
 * between threads inside a table, and the unlisted rows' gradients not
 * read (NaN there: no count, no NaN in the weights). */
START_TEST(adamw_rows_same_bits)
{
    lstm_set_threads(2);
    enum { N = 200003 };
    const int32_t ids0[] = {0, 5, 5, 2999, 1400, 77}, ids1[] = {499, 3};
    const lstm_sparse_rows tab[2] = {{120000, 500, 100, ids1, 2},
                                     {1000, 3000, 37, ids0, 6}};
    float *w[2], *g = malloc(N * sizeof *g), *gz = malloc(N * sizeof *g);
    lstm_adamw o[2];
    for (int k = 0; k < 2; k++) {
        w[k] = malloc(N * sizeof *w[k]);
        fill_randn(w[k], N, 7);
        ck_assert_int_eq(lstm_adamw_init(&o[k], N, 1e-2, 0.9, 0.999, 1e-8,
                                         1e-2), 0);
    }
    for (int s = 0; s < 4; s++) {
        fill_randn(g, N, 10 + (uint64_t)s);
        memcpy(gz, g, N * sizeof *g);
        for (int j = 0; j < 2; j++)
            for (size_t r = 0; r < tab[j].rows; r++) {
                int listed = 0;
                for (size_t i = 0; i < tab[j].nids; i++)
                    listed |= (size_t)tab[j].ids[i] == r;
                for (size_t c = 0; !listed && c < tab[j].cols; c++) {
                    gz[tab[j].off + r * tab[j].cols + c] = 0.0f;
                    g[tab[j].off + r * tab[j].cols + c] = NAN;
                }
            }
        if (s == 3)  /* a listed row's NaN counts in both */
            g[1000 + 5 * 37 + 2] = gz[1000 + 5 * 37 + 2] = NAN;
        size_t b0 = lstm_adamw_step(&o[0], w[0], gz);
        size_t b1 = lstm_adamw_step_rows(&o[1], w[1], g, tab, 2);
        ck_assert_uint_eq(b0, s == 3);
        ck_assert_uint_eq(b1, s == 3);
        if (s < 3) {
            ck_assert(memcmp(w[0], w[1], N * sizeof *g) == 0);
            ck_assert(memcmp(o[0].m, o[1].m, N * sizeof *g) == 0);
            ck_assert(memcmp(o[0].v, o[1].v, N * sizeof *g) == 0);
        }
    }
    /* tables that cannot be right are not trusted: every gradient read
     * (the NaNs of the unlisted rows counted) */
    const int32_t bad_id[] = {3000};
    const lstm_sparse_rows wrong[][2] = {
        {{1000, 3000, 37, ids0, 6}, {1000 + 36 * 37, 10, 1, ids1, 2}},
        {{1000, 3000, 37, bad_id, 1}, {0, 0, 1, NULL, 0}},
        {{N - 36, 1, 37, ids1, 0}, {0, 0, 1, NULL, 0}},
        {{SIZE_MAX - 5, 2, 37, ids1, 0}, {0, 0, 1, NULL, 0}}};
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++)
        ck_assert_uint_ge(lstm_adamw_step_rows(&o[1], w[1], g, wrong[i], 2),
                          2999 * 37);
    for (int k = 0; k < 2; k++) {
        free(w[k]);
        lstm_adamw_free(&o[k]);
    }
    free(g);
    free(gz);
    lstm_set_threads(0);
}
END_TEST

START_TEST(adamw_checkpoint_round_trip)
{
    lstm_params ps;
    lstm_dense fc;
    lstm_params_init(&ps);
    ck_assert_int_eq(lstm_dense_init(&fc, &ps, "fc", 3, 2), 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    lstm_rng r;
    lstm_rng_seed(&r, 1);
    lstm_dense_reset(&fc, &r);
    lstm_adamw o, o2;
    ck_assert_int_eq(lstm_adamw_init(&o, ps.n, 0.1, 0.9, 0.999, 1e-8, 0.01), 0);
    for (int s = 0; s < 3; s++) {
        fill_randn(ps.g, ps.n, (uint64_t)s);
        lstm_adamw_step(&o, ps.w, ps.g);
    }
    char path[] = "/tmp/lstm_adamw_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    ck_assert_int_eq(lstm_adamw_save(path, &ps, &o, NULL, NULL, 0), 0);
    float *w = malloc(ps.n * sizeof *w);
    memcpy(w, ps.w, ps.n * sizeof *w);
    memset(ps.w, 0, ps.n * sizeof *w);
    ck_assert_int_eq(lstm_adamw_init(&o2, ps.n, 0.1, 0.9, 0.999, 1e-8, 0.01),
                     0);
    lstm_safetensors st;
    ck_assert_int_eq(lstm_safetensors_open(&st, path), 0);
    ck_assert_int_eq(lstm_adamw_load(&st, &ps, &o2), 0);
    lstm_safetensors_close(&st);
    unlink(path);
    ck_assert_int_eq(o2.step, 3);
    for (size_t i = 0; i < ps.np; i++) {  /* the slices, not the padding */
        const size_t at = ps.p[i].off, n = ps.p[i].numel * sizeof(float);
        ck_assert(memcmp(w + at, ps.w + at, n) == 0);
        ck_assert(memcmp(o.m + at, o2.m + at, n) == 0);
        ck_assert(memcmp(o.v + at, o2.v + at, n) == 0);
    }
    /* a duplicate tensor name is refused before anything is written */
    lstm_st_tensor t[2] = {{"x", w, 1, {1}, 1}, {"x", w, 1, {1}, 1}};
    ck_assert_int_eq(lstm_safetensors_write(path, t, 2, NULL, NULL, 0),
                     LSTM_EINVAL);
    ck_assert(access(path, F_OK) != 0);
    free(w);
    lstm_adamw_free(&o);
    lstm_adamw_free(&o2);
    lstm_params_free(&ps);
}
END_TEST

/* Writes a safetensors file with this header over 16 data bytes; returns
 * what lstm_safetensors_open says of it. */
static int open_header(const char *path, const char *header)
{
    FILE *fp = fopen(path, "wb");
    ck_assert(fp != NULL);
    uint64_t n = strlen(header);
    unsigned char len[8];
    for (int k = 0; k < 8; k++)
        len[k] = (unsigned char)(n >> (8 * k));
    static const float data[4] = {1, 2, 3, 4};
    ck_assert(fwrite(len, 1, 8, fp) == 8 && fwrite(header, 1, n, fp) == n &&
              fwrite(data, 1, 16, fp) == 16);
    fclose(fp);
    lstm_safetensors st;
    int err = lstm_safetensors_open(&st, path);
    if (!err)
        lstm_safetensors_close(&st);
    return err;
}

START_TEST(safetensors_refuses_repeats_and_overlaps)
{
    char path[] = "/tmp/lstm_st_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                     "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\","
                     "\"shape\":[2],\"data_offsets\":[8,16]},"
                     "\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
                     "\"data_offsets\":[4,4]}}";
    ck_assert_int_eq(open_header(path, ok), 0);
    const char *overlap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                          "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\","
                          "\"shape\":[2],\"data_offsets\":[4,12]}}";
    ck_assert_int_eq(open_header(path, overlap), LSTM_EFORMAT);
    ck_assert_msg(strstr(lstm_errmsg(), "overlapping data of tensor b"),
                  "%s", lstm_errmsg());
    const char *twice = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                        "\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\","
                        "\"shape\":[2],\"data_offsets\":[8,16]}}";
    ck_assert_int_eq(open_header(path, twice), LSTM_EFORMAT);
    ck_assert_msg(strstr(lstm_errmsg(), "a key given twice: a"), "%s",
                  lstm_errmsg());
    const char *meta2 = "{\"__metadata__\":{},\"__metadata__\":{},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[4],"
                        "\"data_offsets\":[0,16]}}";
    ck_assert_int_eq(open_header(path, meta2), LSTM_EFORMAT);
    unlink(path);
}
END_TEST

/* ---- streaming steps against the full forward ---- */

/* With the references (plain loops) a step is the forward bit for bit.
 * With OpenBLAS the input projection of B rows may round otherwise than
 * that of B*T rows (other micro-kernels for other row counts): the bound
 * is then 1e-6 absolute plus 1e-5 relative per element. */
static double step_worst;

static void step_check(const float *a, const float *b, size_t n, int exact,
                       const char *what)
{
    if (exact) {
        ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "%s differs (%s)",
                      what, lstm_kernels_name());
        return;
    }
    size_t w;
    double r = close_ratio(a, b, n, 1e-6, 1e-5, &w);
    step_worst = r > step_worst ? r : step_worst;
    assert_close(a, b, n, 1e-6, 1e-5, what);
}

static void step_vs_forward(int precision, int ref, size_t H)
{
    enum { B = 3, T = 6, I = 5, L = 2 };
    lstm_params ps;
    lstm_lstm net;
    lstm_params_init(&ps);
    ck_assert_int_eq(lstm_lstm_init(&net, &ps, "lstm", I, H, L, 0.0f), 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    lstm_rng r;
    lstm_rng_seed(&r, 11);
    lstm_lstm_reset(&net, &r);
    net.precision = precision;
    int old = lstm_kernels_use_ref(ref);
    float *x = malloc(B * T * I * sizeof *x), *xt = malloc(B * I * sizeof *xt);
    float *h = calloc(L * B * H, sizeof *h), *c = calloc(L * B * H, sizeof *c);
    float *y = malloc(B * H * sizeof *y);
    fill_randn(x, B * T * I, 5);
    ck_assert_int_eq(lstm_lstm_forward(&net, x, NULL, NULL, NULL, B, T, 0,
                                       NULL), 0);
    lstm_stream s;
    ck_assert_int_eq(lstm_stream_init(&s, &net, B), 0);
    for (size_t t = 0; t < T; t++) {
        for (size_t b = 0; b < B; b++)
            memcpy(xt + b * I, x + (b * T + t) * I, I * sizeof *x);
        ck_assert_int_eq(lstm_lstm_step(&s, xt, h, c, y, B), 0);
        for (size_t b = 0; b < B; b++)
            step_check(y + b * H, net.out + (b * T + t) * H, H, ref,
                       "output");
    }
    step_check(h, net.hn, L * B * H, ref, "h");
    step_check(c, net.cn, L * B * H, ref, "c");
    ck_assert_int_eq(lstm_lstm_step(&s, xt, h, c, y, B + 1), LSTM_EINVAL);
    lstm_kernels_use_ref(old);
    lstm_stream_free(&s);
    free(x), free(xt), free(h), free(c), free(y);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}

START_TEST(step_equals_forward)
{
    size_t hs[2] = {16, 7};
    for (int ref = 0; ref < 2; ref++)
        for (int p = 0; p < 2; p++)
            for (int k = 0; k < 2; k++)
                step_vs_forward(p ? LSTM_BF16_MIXED : LSTM_FP32, ref, hs[k]);
}
END_TEST

START_TEST(shared_lstm_keeps_pending_forward)
{
    enum { B = 2, T = 4, I = 3, H = 8, L = 2 };
    lstm_params ps;
    lstm_lstm net, ev;
    lstm_params_init(&ps);
    ck_assert_int_eq(lstm_lstm_init(&net, &ps, "lstm", I, H, L, 0.2f), 0);
    ck_assert_int_eq(lstm_params_alloc(&ps), 0);
    lstm_rng r;
    lstm_rng_seed(&r, 4);
    lstm_lstm_reset(&net, &r);
    ck_assert_int_eq(lstm_lstm_share(&ev, &net), 0);
    static float x[B * T * I], x2[B * T * I], dout[B * T * H], g1[4096];
    fill_randn(x, B * T * I, 1);
    fill_randn(x2, B * T * I, 2);
    fill_randn(dout, B * T * H, 3);
    ck_assert(ps.n <= 4096);
    for (int pass = 0; pass < 2; pass++) {
        lstm_rng d;
        lstm_rng_seed(&d, 9);
        lstm_params_zero_grad(&ps);
        ck_assert_int_eq(lstm_lstm_forward(&net, x, NULL, NULL, NULL, B, T, 1,
                                           &d), 0);
        if (pass)  /* an evaluation in between, on the shared LSTM */
            ck_assert_int_eq(lstm_lstm_forward(&ev, x2, NULL, NULL, NULL, B,
                                               T, 0, NULL), 0);
        ck_assert_int_eq(lstm_lstm_backward(&net, dout, NULL, NULL, NULL,
                                            NULL, NULL), 0);
        if (!pass)
            memcpy(g1, ps.g, ps.n * sizeof *g1);
        else
            ck_assert(memcmp(g1, ps.g, ps.n * sizeof *g1) == 0);
    }
    lstm_lstm_free(&ev);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
}
END_TEST

/* ---- losses against PyTorch (tests/fixtures/losses.bin) ---- */

START_TEST(losses_match_torch)
{
    fx_file f;
    fx_load(&f, "losses.bin");
    enum { N = 12, C = 5, M = 10 };
    const float *logits = fx_get(&f, "nll.logits", N * C);
    const float *yf = fx_get(&f, "nll.y", N);
    int32_t y[N];
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)yf[i];
    float logp[N * C], dl[N * C], loss;
    size_t count;
    ck_assert_int_eq(lstm_seq_nll_forward(logp, &loss, &count, logits, y, N, C,
                                          -100), 0);
    ck_assert_uint_eq(count, (size_t)fx_get(&f, "nll.count", 1)[0]);
    assert_close(&loss, fx_get(&f, "nll.loss", 1), 1, 1e-6, 1e-5, "nll loss");
    lstm_seq_nll_backward(dl, logp, y, N, C, -100);
    assert_close(dl, fx_get(&f, "nll.grad", N * C), N * C, 1e-6, 1e-5,
                 "nll grad");
    const float *x = fx_get(&f, "mse.x", M), *t = fx_get(&f, "mse.t", M);
    float dx[M];
    loss = lstm_mse_loss(dx, x, t, M);
    assert_close(&loss, fx_get(&f, "mse.loss", 1), 1, 1e-6, 1e-5, "mse loss");
    assert_close(dx, fx_get(&f, "mse.grad", M), M, 1e-6, 1e-5, "mse grad");
    x = fx_get(&f, "bce.x", M);
    t = fx_get(&f, "bce.t", M);
    loss = lstm_bce_logits_loss(dx, x, t, M);
    assert_close(&loss, fx_get(&f, "bce.loss", 1), 1, 1e-6, 1e-5, "bce loss");
    assert_close(dx, fx_get(&f, "bce.grad", M), M, 1e-6, 1e-5, "bce grad");
    float sm[N * C];
    lstm_softmax(sm, logits, N, C);
    assert_close(sm, fx_get(&f, "softmax", N * C), N * C, 1e-7, 1e-5,
                 "softmax");
    fx_free(&f);
}
END_TEST

START_TEST(sampling)
{
    const float logits[3] = {0.0f, logf(3.0f), -INFINITY};
    lstm_rng a, b;
    lstm_rng_seed(&a, 5);
    lstm_rng_seed(&b, 5);
    size_t hits = 0, n = 20000;
    for (size_t i = 0; i < n; i++) {
        size_t k = lstm_sample(logits, 3, 1.0f, &a);
        ck_assert_uint_eq(k, lstm_sample(logits, 3, 1.0f, &b));
        ck_assert_uint_lt(k, 2);  /* probability zero is never drawn */
        hits += k == 1;
    }
    double p = (double)hits / (double)n;  /* 0.75, sd 0.003 */
    ck_assert_msg(fabs(p - 0.75) < 0.015, "p(1) = %.4f", p);
    ck_assert_uint_eq(lstm_sample(logits, 3, 0.0f, &a), 1);
    /* top-k: largest first, ties to the lower index, k = n and k = 0 */
    const float x[6] = {0.5f, 2.0f, -1.0f, 2.0f, 7.0f, 0.5f};
    size_t idx[6], want[6] = {4, 1, 3, 0, 5, 2};
    lstm_topk(x, 6, 3, idx);
    ck_assert(idx[0] == 4 && idx[1] == 1 && idx[2] == 3);
    lstm_topk(x, 6, 6, idx);
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(idx[i], want[i]);
    lstm_topk(x, 6, 0, idx);
    char want_v[32];  /* the library's version is its header's */
    snprintf(want_v, sizeof want_v, "%d.%d.%d", LSTM_VERSION_MAJOR,
             LSTM_VERSION_MINOR, LSTM_VERSION_PATCH);
    ck_assert_str_eq(lstm_version(), want_v);
    ck_assert_str_eq(lstm_version(), "0.6.0");
}
END_TEST

/* A child that catches the stop signals (grace 1 s), receives `signals`
 * SIGTERMs, then runs a step that never ends: its wait status, or -1 if
 * it was still running after 20 s (killed then). The first SIGTERM must
 * be held (lstm_run_stop_signal names it), and the grace must end it. */
static int stop_child(int signals)
{
    int fd[2];
    ck_assert(pipe(fd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        if (!freopen("/dev/null", "w", stderr) ||
            lstm_run_catch_signals("t", 1))
            _exit(2);
        for (int i = 0; i < signals; i++) {
            kill(getpid(), SIGTERM);
            char held = lstm_run_stop_signal() == SIGTERM ? '1' : '0';
            if (write(fd[1], &held, 1) != 1)
                _exit(3);
        }
        for (volatile unsigned long spin = 0;; spin++)
            ;  /* the step that never ends */
    }
    close(fd[1]);
    char held = 0;
    ck_assert(read(fd[0], &held, 1) == 1);
    ck_assert_int_eq(held, '1');  /* the first SIGTERM did not end it */
    close(fd[0]);
    int st;
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

START_TEST(stop_signal_grace)
{
    int st = stop_child(1);  /* exits after the grace, without saving */
    ck_assert_msg(st != -1, "a step that never ends kept the process alive");
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGTERM);
    st = stop_child(2);      /* a second signal ends it at once */
    ck_assert(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    ck_assert_int_eq(lstm_run_catch_signals("t", 0), LSTM_EINVAL);
}
END_TEST

/* Runs fn in a child process: whether it died of SIGABRT (an assert). */
static int aborts(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);  /* the assert's own line */
        fn();
        _exit(0);
    }
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void reset_before_alloc(void)
{
    lstm_params ps;
    lstm_lstm net;
    lstm_rng r;
    lstm_params_init(&ps);
    lstm_rng_seed(&r, 1);
    if (lstm_lstm_init(&net, &ps, "lstm", 3, 4, 1, 0.0f) == 0)
        lstm_lstm_reset(&net, &r);  /* before lstm_params_alloc */
}

static void dense_before_alloc(void)
{
    lstm_params ps;
    lstm_dense d;
    float x[3] = {0}, y[2];
    lstm_params_init(&ps);
    if (lstm_dense_init(&d, &ps, "fc", 3, 2) == 0)
        lstm_dense_forward(&d, y, x, 1);
}

static void fit_before_data(void)
{
    lstm_classifier_config cfg = toy_config();
    lstm_classifier m;
    lstm_trainer t;
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    if (lstm_classifier_init(&m, &cfg) == 0 &&
        lstm_trainer_init(&t, &m, &tc) == 0)
        lstm_trainer_fit(&t);
}

START_TEST(call_order_asserts)
{
    ck_assert_msg(aborts(reset_before_alloc), "reset before alloc");
    ck_assert_msg(aborts(dense_before_alloc), "forward before alloc");
    ck_assert_msg(aborts(fit_before_data), "fit before data");
}
END_TEST

/* ---- option tables ---- */

typedef struct {
    const char *name, *mode;
    long n, on;
    double x, bytes;
} opt_demo;

#define OD(f) offsetof(opt_demo, f)
static const lstm_opt demo_flags[] = {
    {"--name", "name", 's', OD(name), 0, 0, NULL, LSTM_OPT_KEEP},
    {"--mode", "mode", 'e', OD(mode), 0, 0, "fast|slow|off", 0},
    {"--n", "n", 'l', OD(n), 2, 50, "2 or more: a pair at least",
     LSTM_OPT_KEEP},
    {"--on", "on", 'b', OD(on), 0, 1, NULL, LSTM_OPT_OPTIONAL},
    {"--x", "x", 'd', OD(x), 0, 1, NULL, 0},
    {"--bytes", NULL, 'z', OD(bytes), 1, 1e12, NULL, 0},
};

/* Parses the words of line (at most 15) into o; returns lstm_opts_parse's
 * value. */
static int demo_parse(lstm_opts *op, opt_demo *o, char *line, char **argv)
{
    int argc = 0;
    for (char *w = strtok(line, " "); w && argc < 15; w = strtok(NULL, " "))
        argv[argc++] = w;
    memset(op, 0, sizeof *op);
    *op = (lstm_opts){demo_flags, sizeof demo_flags / sizeof *demo_flags, o,
                      {0}, NULL, 0};
    return lstm_opts_parse(op, argc, argv, 1);
}

START_TEST(options_parse_save_restore)
{
    static const struct { const char *args, *msg; } bad[] = {
        {"p --nope 1", "unknown flag --nope"},
        {"p --n 1", "bad value for --n: '1' (2 or more: a pair at least)"},
        {"p --n 51", "bad value for --n: '51' (an integer from 2 to 50)"},
        {"p --n 3x", "(an integer from 2 to 50)"},
        {"p --mode medium", "bad value for --mode: 'medium' (fast, slow or "
                            "off)"},
        {"p --x 2", "bad value for --x: '2' (a number from 0 to 1)"},
        {"p --x nan", "(a number from 0 to 1)"},
        {"p --bytes 3Q", "bad value for --bytes: '3Q' (bytes"},
        {"p --name", "--name needs a value"},
        {"p --name=", "bad value for --name: '' (empty)"},
    };
    char line[256], *argv[16];
    lstm_opts op;
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        opt_demo o = {0};
        snprintf(line, sizeof line, "%s", bad[k].args);
        ck_assert_int_eq(demo_parse(&op, &o, line, argv), LSTM_EINVAL);
        ck_assert_msg(strstr(lstm_errmsg(), bad[k].msg) != NULL, "%s: %s",
                      bad[k].args, lstm_errmsg());
    }
    opt_demo o = {"none", "off", 5, 0, 0.5, 0};
    snprintf(line, sizeof line, "p in1 --name=ana --mode slow in2 --on "
             "--bytes 2K --n 7 in3");
    ck_assert_int_eq(demo_parse(&op, &o, line, argv), 0);
    ck_assert_str_eq(o.name, "ana");
    ck_assert_str_eq(o.mode, "slow");
    ck_assert_int_eq(o.n, 7);
    ck_assert_int_eq(o.on, 1);
    ck_assert(o.bytes == 2048.0 && o.x == 0.5);
    ck_assert_int_eq(op.ninputs, 3);  /* moved to argv[1..4) in order */
    ck_assert_str_eq(argv[1], "in1");
    ck_assert_str_eq(argv[2], "in2");
    ck_assert_str_eq(argv[3], "in3");
    ck_assert(lstm_opts_given(&op, "--mode") && !lstm_opts_given(&op, "--x"));
    ck_assert_str_eq(op.first_setting, "--mode");  /* --name is KEEP */
    char line2[64], *argv2[16];  /* o's strings point into line */
    snprintf(line2, sizeof line2, "p --x 0.25 --help --nope");
    ck_assert_int_eq(demo_parse(&op, &o, line2, argv2), 1);

    /* saved and restored: a KEEP flag given keeps its value, the others
     * take the saved ones; an OPTIONAL key may be absent */
    lstm_buf b = {0};
    lstm_buf_puts(&b, "{");
    lstm_opts_json(&b, &op);
    lstm_buf_puts(&b, "}");
    ck_assert_str_eq(b.s, "{\"name\":\"ana\",\"mode\":\"slow\",\"n\":7,"
                          "\"on\":1,\"x\":0.25}");
    lstm_json j;
    ck_assert_int_eq(lstm_json_parse(&j, b.s, b.len), 0);
    opt_demo o2 = {"none", "off", 5, 0, 0.5, 0};
    snprintf(line2, sizeof line2, "p --n 9");
    ck_assert_int_eq(demo_parse(&op, &o2, line2, argv2), 0);
    ck_assert_int_eq(lstm_opts_restore(&op, &j), 0);
    ck_assert_str_eq(o2.name, "ana");
    ck_assert_str_eq(o2.mode, "slow");
    ck_assert_int_eq(o2.n, 9);
    ck_assert(o2.x == 0.25 && o2.on == 1);
    lstm_json_free(&j);
    const char *saved[] = {"{\"name\":\"a\",\"mode\":\"slow\",\"n\":3,"
                           "\"x\":0.5}",   /* "on" absent: OPTIONAL */
                           "{\"name\":\"a\",\"mode\":\"slow\",\"n\":3}",
                           "{\"name\":\"a\",\"mode\":\"warp\",\"n\":3,"
                           "\"x\":0.5}",
                           "{\"name\":\"a\",\"mode\":\"slow\",\"n\":1,"
                           "\"x\":0.5}"};
    const char *missing[] = {NULL, "\"x\"", "\"mode\"", "\"n\""};
    for (int k = 0; k < 4; k++) {
        opt_demo o3 = {0};
        snprintf(line, sizeof line, "p");
        ck_assert_int_eq(demo_parse(&op, &o3, line, argv), 0);
        ck_assert_int_eq(lstm_json_parse(&j, saved[k], strlen(saved[k])), 0);
        int err = lstm_opts_restore(&op, &j);
        ck_assert_int_eq(err, missing[k] ? LSTM_EFORMAT : 0);
        ck_assert(!missing[k] || strstr(lstm_errmsg(), missing[k]));
        lstm_json_free(&j);
    }
    lstm_buf_free(&b);
}
END_TEST

/* ---- a run's folder ---- */

static char run_dir[] = "/tmp/lstm_run_XXXXXX";
static size_t run_steps;  /* steps the last run_train took */

static const char *in_run(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", run_dir, name);
    return p[k];
}

/* A CSV of 60 texts in three classes, each class its own words. */
static void write_news(const char *path)
{
    static const char *w[3][3] = {{"gol", "liga", "partido"},
                                  {"voto", "ley", "senado"},
                                  {"cine", "serie", "actor"}};
    FILE *fp = fopen(path, "w");
    ck_assert(fp != NULL);
    fprintf(fp, "text,category\n");
    lstm_rng r;
    lstm_rng_seed(&r, 3);
    for (int i = 0; i < 60; i++) {
        int k = i % 3;
        for (int t = 0; t < 4; t++)
            fprintf(fp, "%s%s", t ? " " : "", w[k][lstm_rng_below(&r, 3)]);
        fprintf(fp, ",%s\n", k == 0 ? "sport" : k == 1 ? "politics" : "film");
    }
    fclose(fp);
}

/* The record first: rec_step and rec_stop count and stop a run too. */
typedef struct {
    record rec;
    lstm_run *run;
} run_hooks;

static int run_epoch_end(lstm_trainer *t, const lstm_epoch_stats *s,
                         void *user)
{
    return lstm_run_epoch(((run_hooks *)user)->run, t, s);
}

typedef struct { const char *data; long epochs, hidden; double lr; } run_opts;
#define RO(f) offsetof(run_opts, f)
static const lstm_opt run_flags[] = {
    {"--data", "data", 's', RO(data), 0, 0, NULL, 0},
    {"--epochs", "epochs", 'l', RO(epochs), 1, 100, NULL, LSTM_OPT_KEEP},
    {"--hidden", "hidden", 'l', RO(hidden), 1, 64, NULL, 0},
    {"--lr", "lr", 'd', RO(lr), 0, 1, NULL, 0},
};

/* Trains a run in folder sub (resumed when resume) until it stops after
 * stop_after steps (0: the end); the weights into w (when not NULL). */
static int run_train(const char *sub, int resume, size_t stop_after,
                     run_opts *ro, float *w)
{
    lstm_opts op = {run_flags, 4, ro, {0}, NULL, 0};
    op.given[1] = resume;  /* --epochs given on resume */
    lstm_run r;
    ck_assert_int_eq(lstm_run_init(&r, in_run(sub), &op, 1, 1), 0);
    const long epochs = ro->epochs;
    if (resume) {
        ro->hidden = 1, ro->lr = 0, ro->data = NULL;  /* from the state */
        ck_assert_int_eq(lstm_run_resume(&r), 0);
        ck_assert(ro->hidden == 8 && ro->lr == 0.02 && ro->epochs == epochs);
    }
    lstm_textset ts;
    const char *split = resume ? in_run("r/split.json") : NULL;
    ck_assert_int_eq(lstm_textset_load(&ts, ro->data, split, 5, 100, 1, 6),
                     0);
    lstm_classifier_config cfg = {ts.vocab.n, 6, (size_t)ro->hidden, 1,
                                  ts.ds.n_classes, {8, 8}, 2, 0.1f,
                                  LSTM_POOL_MEAN, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.epochs = ro->epochs, tc.batch = 4, tc.lr = ro->lr;
    tc.monitor = LSTM_MONITOR_VAL_LOSS;
    tc.data_rows = ts.ds.n, tc.data_crc = lstm_dataset_crc(&ts.ds);
    lstm_classifier m;
    lstm_trainer t;
    run_hooks h = {{.stop_after = stop_after}, &r};
    ck_assert_int_eq(lstm_run_claim(&r), 0);
    ck_assert_int_eq(lstm_run_split(&r, &ts), 0);
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    ck_assert_int_eq(lstm_trainer_init(&t, &m, &tc), 0);
    ck_assert_int_eq(lstm_trainer_data(&t, &ts.tok, ts.ds.label,
                                       ts.split.idx[0], ts.split.n[0],
                                       ts.split.idx[1], ts.split.n[1]), 0);
    ck_assert_int_eq(lstm_run_start(&r, &t), 0);
    t.hooks = (lstm_train_hooks){&h, NULL, rec_step, run_epoch_end,
                                 rec_stop};
    int err = lstm_trainer_fit(&t);
    if (err == LSTM_STOPPED) {
        ck_assert_int_eq(lstm_run_save_state(&r, &t), 0);
        /* a second writer is refused while this one holds the folder */
        lstm_run r2;
        ck_assert_int_eq(lstm_run_init(&r2, r.dir, &op, 1, 1), 0);
        ck_assert_int_eq(lstm_run_claim(&r2), LSTM_EIO);
        ck_assert(strstr(lstm_errmsg(), "another run is writing there"));
        lstm_run_free(&r2);
    } else {
        ck_assert_int_eq(err, 0);
        lstm_metrics mt = {0};
        int32_t pred[64];
        double acc = 0;
        ck_assert_uint_le(ts.split.n[2], 64);
        ck_assert_int_eq(lstm_run_test(&r, &t, &mt, pred, &acc), 0);
        ck_assert(acc >= 0 && acc <= 1 && mt.total == ts.split.n[2]);
        lstm_metrics_free(&mt);
    }
    if (w)
        memcpy(w, m.ps.w, m.ps.n * sizeof *w);
    run_steps = h.rec.steps;
    lstm_run_free(&r);
    lstm_trainer_free(&t);
    lstm_classifier_free(&m);
    lstm_textset_free(&ts);
    return err;
}

/* A run stopped mid-epoch, its folder resumed by a new lstm_run: the same
 * bits as a run never stopped; the folder's files; the lock; a split that
 * is not the run's; the budget check. */
START_TEST(run_folder_resume_same_bits)
{
    ck_assert(mkdtemp(run_dir) != NULL);
    char data[512];
    snprintf(data, sizeof data, "%s", in_run("news.csv"));
    write_news(data);
    static float wa[20000], wb[20000];
    run_opts ra = {data, 3, 8, 0.02};
    ck_assert_int_eq(run_train("a", 0, 0, &ra, wa), 0);
    const size_t all = run_steps;
    run_opts rb = {data, 3, 8, 0.02};
    ck_assert_int_eq(run_train("r", 0, 17, &rb, NULL), LSTM_STOPPED);
    run_opts rc = {NULL, 3, 0, 0};
    ck_assert_int_eq(run_train("r", 1, 0, &rc, wb), 0);
    ck_assert_uint_eq(run_steps, all - 17);  /* it went on, not again */
    ck_assert(memcmp(wa, wb, sizeof wa) == 0);
    /* the files of a finished run */
    const char *files[] = {"r/model.safetensors", "r/metrics.csv",
                           "r/predictions.csv", "r/split.json",
                           "r/train_state.safetensors", "r/train.lock"};
    for (int k = 0; k < 6; k++)
        ck_assert_msg(access(in_run(files[k]), F_OK) == 0, "%s", files[k]);
    char *csv;
    size_t n;
    ck_assert_int_eq(lstm_read_file(in_run("r/metrics.csv"), &csv, &n,
                                    1 << 20), 0);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += csv[i] == '\n';
    ck_assert_uint_eq(lines, 4);  /* the header and 3 epochs */
    lstm_free(csv);
    lstm_model lm;
    ck_assert_int_eq(lstm_model_load(&lm, in_run("r/model.safetensors")), 0);
    ck_assert(lstm_model_predict(&lm, "gol liga", 8) >= 0);
    lstm_buf b = {0};
    lstm_model_prediction(&b, &lm, 0, "x", 1);
    ck_assert(b.s && !strncmp(b.s, "{\"input\":\"x\",\"label\":", 21));
    lstm_buf_free(&b);
    lstm_model_free(&lm);
    /* a stale temporary of a killed write goes; another name stays */
    FILE *fp = fopen(in_run("r/metrics.csv.tmp.AbCdEf"), "w");
    ck_assert(fp && fclose(fp) == 0);
    fp = fopen(in_run("r/notes.txt.tmp.AbCdEf"), "w");
    ck_assert(fp && fclose(fp) == 0);
    int fd = lstm_dir_lock(in_run("r"), "train.lock",
                           (const char *const[]){"metrics.csv"}, 1);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert(access(in_run("r/metrics.csv.tmp.AbCdEf"), F_OK) != 0);
    ck_assert(access(in_run("r/notes.txt.tmp.AbCdEf"), F_OK) == 0);
    /* another split under the run's name is refused on resume */
    lstm_opts op = {run_flags, 4, &rc, {0}, NULL, 0};
    lstm_run r;
    lstm_textset ts;
    ck_assert_int_eq(lstm_run_init(&r, in_run("r"), &op, 1, 1), 0);
    ck_assert_int_eq(lstm_run_resume(&r), 0);
    ck_assert_int_eq(lstm_textset_load(&ts, data, NULL, 99, 100, 1, 6), 0);
    ck_assert_int_eq(lstm_run_split(&r, &ts), LSTM_EINVAL);
    ck_assert(strstr(lstm_errmsg(), "differs from the split the run"));
    /* the budget: memory over the limit, a checkpoint over the space */
    lstm_train_budget bu = {0};
    bu.total = 3e6;
    ck_assert_int_eq(lstm_train_budget_check(&bu, 1e6, "--max", r.dir),
                     LSTM_ENOMEM);
    ck_assert(strstr(lstm_errmsg(), "more than the 1 MiB --max allows"));
    bu.total = 0, bu.checkpoint = 1e30;
    ck_assert_int_eq(lstm_train_budget_check(&bu, 0, "--max", r.dir),
                     LSTM_EIO);
    ck_assert(strstr(lstm_errmsg(), r.dir) && strstr(lstm_errmsg(), "free"));
    bu.checkpoint = 0;
    ck_assert_int_eq(lstm_train_budget_check(&bu, 0, "--max", r.dir), 0);
    ck_assert_int_eq(lstm_address_check(), 0);
    lstm_textset_free(&ts);
    lstm_run_free(&r);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", run_dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

/* ---- examples/char_lm, as a user runs it ---- */

static const char *char_lm(void)
{
    const char *b = getenv("LSTM_CHAR_LM");
    return b && *b ? b : "examples/char_lm";
}

/* Runs cmd, returns its stdout (static) or fails. */
static const char *run(const char *cmd)
{
    static char out[8192];
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "%s", cmd);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    ck_assert_msg(pclose(p) == 0, "%s failed: %s", cmd, out);
    return out;
}

START_TEST(char_lm_learns_and_samples)
{
    /* words drawn at random from four: about 0.15 nats a character is the
     * floor, 2.6 (14 characters) is knowing nothing */
    char dir[] = "/tmp/lstm_clm_XXXXXX", cmd[1024];
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(cmd, sizeof cmd, "%s/text.txt", dir);
    FILE *fp = fopen(cmd, "w");
    ck_assert(fp != NULL);
    static const char *w[4] = {"el gato", "la casa", "un perro", "mi libro"};
    lstm_rng r;
    lstm_rng_seed(&r, 1);
    for (int i = 0; i < 600; i++)
        fprintf(fp, "%s. ", w[lstm_rng_below(&r, 4)]);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s train --text %s/text.txt --out %s/m.st "
             "--steps 300 --every 300 --hidden 32 --embed 16 --batch 4 "
             "--seq 32 --lr 0.01", char_lm(), dir, dir);
    const char *o = run(cmd);
    const char *sm = strstr(o, "smoothed ");
    ck_assert_msg(sm != NULL, "%s", o);
    double loss = atof(sm + 9);
    ck_assert_msg(loss < 0.4, "loss %.4f nats/char after 300 steps", loss);
    char a[1024], b[1024];
    snprintf(cmd, sizeof cmd, "%s sample --model %s/m.st --len 200 --seed 3 "
             "--temperature 0.5 --prime 'el '", char_lm(), dir);
    snprintf(a, sizeof a, "%s", run(cmd));
    snprintf(b, sizeof b, "%s", run(cmd));
    ck_assert_str_eq(a, b);  /* the same seed, the same text */
    ck_assert_msg(strncmp(a, "el ", 3) == 0 && strstr(a, "gato") &&
                  strstr(a, "casa"), "sampled: %s", a);
    snprintf(cmd, sizeof cmd, "%s sample --model %s/m.st --len 200 --seed 4 "
             "--temperature 0.5 --prime 'el '", char_lm(), dir);
    ck_assert_str_ne(a, run(cmd));
    /* output that cannot be written is an error, as in news_classifier */
    snprintf(cmd, sizeof cmd, "%s sample --model %s/m.st --len 20 > /dev/full "
             "2> /dev/null", char_lm(), dir);
    int st = system(cmd);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, trainer_early_stopping);
    tcase_add_test(tc, trainer_two_ranks_in_threads);
    tcase_add_test(tc, trainer_learns_and_restores_best);
    tcase_add_test(tc, trainer_guard_names_step_and_parameter);
    tcase_add_loop_test(tc, trainer_stop_save_load_continue_same_bits, 0, 2);
    tcase_add_test(tc, lr_schedules);
    tcase_add_loop_test(tc, model_file_round_trip, 0, 2);
    tcase_add_test(tc, adamw_checkpoint_round_trip);
    tcase_add_test(tc, adamw_rows_same_bits);
    tcase_add_test(tc, safetensors_refuses_repeats_and_overlaps);
    tcase_add_test(tc, step_equals_forward);
    tcase_add_test(tc, shared_lstm_keeps_pending_forward);
    tcase_add_test(tc, losses_match_torch);
    tcase_add_test(tc, sampling);
    tcase_add_test(tc, call_order_asserts);
    tcase_add_test(tc, char_lm_learns_and_samples);
    tcase_add_test(tc, options_parse_save_restore);
    tcase_add_test(tc, run_folder_resume_same_bits);
    tcase_add_test(tc, stop_signal_grace);
    suite_add_tcase(s, tc);
    return s;
}
