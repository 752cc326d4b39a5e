/*
 * check_alloc.c - allocation failure injected at every allocation of a
 * classifier's life (init, forward, backward, optimizer, a larger second
 * batch) and of everything a training run does before its first step
 * (CSV, split, vocabulary, encoding, checkpoint and state files) and of
 * a run in its folder, stopped and resumed: each
 * failure must come back as LSTM_ENOMEM, and once everything is freed no
 * block may be left behind.
 */
#define _GNU_SOURCE  /* mkdtemp */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstm_data.h"
#include "testutil.h"

/* One life of a classifier; returns the first error, or 0. */
static int life(void)
{
    lstm_classifier_config cfg = {30, 8, 6, 2, 3, {10, 7}, 2, 0.1f,
                                  LSTM_POOL_MAX, LSTM_FP32, 0, LSTM_CELL_LSTM, 0,
                                  0.0f};
    lstm_classifier m;
    lstm_adamw opt;
    lstm_rng rng;
    lstm_rng_seed(&rng, 1);
    int32_t ids[4 * 9], len[4] = {9, 4, 1, 7}, y[4] = {0, 2, 1, 1};
    for (size_t i = 0; i < 36; i++)
        ids[i] = (int32_t)(i % 28 + 2);
    float loss;
    int err = lstm_classifier_init(&m, &cfg);
    if (err)
        return err;
    lstm_classifier_reset(&m, &rng);
    err = lstm_adamw_init(&opt, m.ps.n, 1e-3, 0.9, 0.999, 1e-8, 0.0);
    if (err)
        goto out_model;
    for (size_t B = 2; B <= 4 && !err; B += 2) {  /* the workspace grows */
        err = lstm_classifier_forward(&m, ids, len, B, 9, y, &loss, 1, &rng);
        if (!err)
            err = lstm_classifier_backward(&m, y);
        if (!err)
            lstm_adamw_step(&opt, m.ps.w, m.ps.g);
    }
    lstm_adamw_free(&opt);
out_model:
    lstm_classifier_free(&m);
    return err;
}

static char dir[] = "/tmp/lstm_alloc_XXXXXX";

/* What a training run's setup does through the library, then the files
 * it writes and reads back; returns the first error, or 0. */
static int setup_life(void)
{
    char csv[300], spl[300], st[300];
    snprintf(csv, sizeof csv, "%s/d.csv", dir);
    snprintf(spl, sizeof spl, "%s/split.json", dir);
    snprintf(st, sizeof st, "%s/m.safetensors", dir);
    lstm_dataset ds;
    lstm_split sp = {{NULL}, {0}}, sp2 = {{NULL}, {0}};
    lstm_vocab v = {0};
    lstm_classifier m = {0};
    lstm_safetensors f = {0};
    lstm_json j = {0};
    int32_t ids[8];
    int err = lstm_dataset_load(&ds, csv);
    if (err)
        return err;
    if (!(err = lstm_split_random(&sp, ds.n, (double[3]){0.6, 0.2, 0.2}, 1)) &&
        !(err = lstm_split_save(&sp, spl)) &&
        !(err = lstm_split_load(&sp2, spl, ds.n)) &&
        !(err = lstm_vocab_build(&v, &ds, sp.idx[0], sp.n[0], 100))) {
        for (size_t i = 0; i < ds.n; i++)
            lstm_encode(&v, ds.text[i], ds.text_len[i], ids, 8);
        lstm_classifier_config cfg = {v.n, 4, 3, 1, ds.n_classes, {5, 4}, 2,
                                      0.0f, LSTM_POOL_LAST, LSTM_FP32, 0,
                                      LSTM_CELL_LSTM, 0, 0.0f};
        const char *keys[1] = {"note"}, *vals[1] = {"[1, {\"a\": \"b\"}]"};
        lstm_textset ts;
        if (!(err = lstm_textset_load(&ts, csv, spl, 1, 100, 1, 8)))
            lstm_textset_free(&ts);
        if (!err && !(err = lstm_classifier_init(&m, &cfg)) &&
            !(err = lstm_safetensors_save(st, &m.ps, keys, vals, 1)) &&
            !(err = lstm_safetensors_open(&f, st)) &&
            !(err = lstm_safetensors_load(&f, &m.ps)))
            err = lstm_json_parse(&j, vals[0], strlen(vals[0]));
    }
    lstm_json_free(&j);
    lstm_safetensors_close(&f);
    lstm_classifier_free(&m);
    lstm_vocab_free(&v);
    lstm_split_free(&sp);
    lstm_split_free(&sp2);
    lstm_dataset_free(&ds);
    return err;
}

/* The library's training run: corpus, trainer, a fit, the training state
 * saved and loaded into a second trainer, the model file saved and loaded
 * and used. */
static int train_life(void)
{
    char st[300], mf[300];
    snprintf(st, sizeof st, "%s/state.safetensors", dir);
    snprintf(mf, sizeof mf, "%s/model.safetensors", dir);
    static char *tok[6] = {"[PAD]", "[UNK]", "uno", "dos", "tres", "cuatro"};
    static char *text[4] = {"uno dos", "tres", "cuatro uno tres", "dos"};
    static size_t tlen[4] = {7, 4, 15, 3}, rows[4] = {0, 1, 2, 3};
    static int32_t labels[4] = {0, 1, 0, 1};
    static char *classes[2] = {"a", "b"};
    lstm_vocab v = {0};
    lstm_corpus c = {0};
    lstm_classifier m = {0}, m2 = {0};
    lstm_trainer t = {0}, t2 = {0};
    lstm_safetensors f = {0};
    lstm_model lm = {0};
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.epochs = 1;
    tc.batch = 2;
    tc.monitor = LSTM_MONITOR_VAL_ACC;
    lstm_classifier_config cfg = {6, 4, 3, 1, 2, {5, 4}, 2, 0.0f,
                                  LSTM_POOL_MEAN, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    int err = lstm_vocab_from_list(&v, tok, 6);
    if (!err) err = lstm_corpus_encode(&c, &v, text, tlen, 4, 5);
    if (!err) err = lstm_classifier_init(&m, &cfg);
    if (!err) err = lstm_trainer_init(&t, &m, &tc);
    if (!err) err = lstm_trainer_data(&t, &c, labels, rows, 4, rows, 2);
    if (!err) err = lstm_trainer_fit(&t);
    if (!err) err = lstm_trainer_save(&t, st, NULL, NULL, 0);
    if (!err) err = lstm_classifier_init(&m2, &cfg);
    if (!err) err = lstm_trainer_init(&t2, &m2, &tc);
    if (!err) err = lstm_trainer_data(&t2, &c, labels, rows, 4, rows, 2);
    if (!err) err = lstm_safetensors_open(&f, st);
    if (!err) err = lstm_trainer_load(&t2, &f, st);
    if (!err) err = lstm_model_save(mf, &m, &v, classes, 2, 5);
    if (!err) err = lstm_model_load(&lm, mf);
    if (!err) err = lstm_model_predict(&lm, "dos tres", 8) < 0 ? LSTM_ENOMEM
                                                                : 0;
    /* the reports of a test run */
    int32_t pred[4] = {0, 0, 1, 1};
    float probs[8] = {0.5f, 0.5f, 0.9f, 0.1f, 0.2f, 0.8f, 0.3f, 0.7f};
    lstm_dataset ds = {4, text, tlen, labels, rows, classes, 2};
    lstm_metrics mt = {0};
    lstm_buf b = {0};
    if (!err) err = lstm_metrics_of(&mt, 2, rows, 4, labels, pred);
    if (!err) lstm_metrics_report(&b, &mt, classes);
    if (!err && b.err) err = LSTM_ENOMEM;
    if (!err) err = lstm_predictions_csv(mf, &ds, rows, 4, labels, pred, probs,
                                         classes, 2);
    lstm_buf_free(&b);
    lstm_metrics_free(&mt);
    lstm_model_free(&lm);
    lstm_safetensors_close(&f);
    lstm_trainer_free(&t2);
    lstm_trainer_free(&t);
    lstm_classifier_free(&m2);
    lstm_classifier_free(&m);
    lstm_corpus_free(&c);
    lstm_vocab_free(&v);
    return err;
}

/* A run's folder: a run trained through lstm_run and its files, then
 * resumed from them. */
typedef struct { long epochs, hidden; } life_opts;
static const lstm_opt life_flags[] = {
    {"--epochs", "epochs", 'l', offsetof(life_opts, epochs), 1, 9, NULL, 0},
    {"--hidden", "hidden", 'l', offsetof(life_opts, hidden), 1, 9, NULL, 0},
};

static int life_epoch(lstm_trainer *t, const lstm_epoch_stats *s, void *r)
{
    return lstm_run_epoch(r, t, s);
}

static int run_once(const char *csv, const char *out, int resume)
{
    life_opts o = {1, 3};
    lstm_opts op = {life_flags, 2, &o, {0}, NULL, 0};
    lstm_run r;
    lstm_textset ts = {0};
    lstm_classifier m = {0};
    lstm_trainer t = {0};
    lstm_metrics mt = {0};
    int32_t pred[16];
    double acc;
    char split[300];
    snprintf(split, sizeof split, "%s/split.json", out);
    int err = lstm_run_init(&r, out, &op, 1, 1);
    if (!err && resume) err = lstm_run_resume(&r);
    if (!err) err = lstm_run_claim(&r);
    if (!err) err = lstm_textset_load(&ts, csv, resume ? split : NULL, 3,
                                      50, 1, 6);
    lstm_classifier_config cfg = {ts.vocab.n, 4, (size_t)o.hidden, 1,
                                  ts.ds.n_classes, {5, 4}, 2, 0.0f,
                                  LSTM_POOL_LAST, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.epochs = o.epochs, tc.batch = 4;
    if (!err) err = lstm_run_split(&r, &ts);
    if (!err) err = lstm_classifier_init(&m, &cfg);
    if (!err) err = lstm_trainer_init(&t, &m, &tc);
    if (!err) err = lstm_trainer_data(&t, &ts.tok, ts.ds.label,
                                      ts.split.idx[0], ts.split.n[0],
                                      ts.split.idx[1], ts.split.n[1]);
    if (!err) err = lstm_run_start(&r, &t);
    t.hooks = (lstm_train_hooks){&r, NULL, NULL, life_epoch, NULL};
    if (!err) err = lstm_trainer_fit(&t);
    if (!err && ts.split.n[2] <= 16)
        err = lstm_run_test(&r, &t, &mt, pred, &acc);
    lstm_metrics_free(&mt);
    lstm_run_free(&r);
    lstm_trainer_free(&t);
    lstm_classifier_free(&m);
    lstm_textset_free(&ts);
    return err;
}

static int run_life(void)
{
    char csv[300], out[300];
    snprintf(csv, sizeof csv, "%s/d.csv", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    int err = run_once(csv, out, 0);
    return err ? err : run_once(csv, out, 1);
}

/* Fails the n-th allocation of fn for n = 1, 2, ... until fn succeeds. */
static void fail_each(int (*fn)(void), long at_least)
{
    const long base = lstm_debug_live_allocs();
    long n;
    for (n = 1; n < 100000; n++) {
        lstm_debug_fail_alloc(n);
        int err = fn();
        lstm_debug_fail_alloc(0);
        ck_assert_msg(lstm_debug_live_allocs() == base,
                      "failure at allocation %ld leaked %ld blocks", n,
                      lstm_debug_live_allocs() - base);
        if (err == LSTM_OK)
            break;  /* n is past the last allocation */
        ck_assert_msg(err == LSTM_ENOMEM, "failure at allocation %ld gave %s "
                      "(%s)", n, lstm_strerror(err), lstm_errmsg());
    }
    ck_assert_msg(n > at_least && n < 100000, "only %ld allocations seen", n);
}

START_TEST(every_allocation_fails_cleanly)
{
    fail_each(life, 5);
}
END_TEST

START_TEST(loaders_fail_cleanly)
{
    ck_assert(mkdtemp(dir) != NULL);
    char path[300];
    snprintf(path, sizeof path, "%s/d.csv", dir);
    FILE *fp = fopen(path, "wb");
    ck_assert(fp != NULL);
    fprintf(fp, "category,text\n");
    for (int i = 0; i < 12; i++)
        fprintf(fp, "%s,\"palabra%d y otra, \"\"citada\"\" %d\"\n",
                i % 3 ? "sport" : "science", i % 5, i);
    fclose(fp);
    fail_each(setup_life, 20);
    fail_each(train_life, 40);
    fail_each(run_life, 40);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("failure injection");
    tcase_set_timeout(tc, 120);  /* under ASan, on a busy machine: > 4 s */
    tcase_add_test(tc, every_allocation_fails_cleanly);
    tcase_add_test(tc, loaders_fail_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
