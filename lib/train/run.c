/*
 * run.c - a classifier training run's folder: its lock, split.json, the
 * training state with the run's options, metrics.csv, model.safetensors
 * and the TensorBoard events, written after every epoch; and a stopped
 * run read back from that folder; and the signals that stop a run.
 */
#define _POSIX_C_SOURCE 200809L  /* sigaction */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "lstm_train.h"

/* dir/name into r->path. */
static const char *path_of(lstm_run *r, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/%s", r->dir, name);
    return r->path;
}

/* The split's checksum, as the state records it. */
static void split_sum(char *dst, size_t cap, const lstm_split *sp)
{
    snprintf(dst, cap, "%08x %08x %08x",
             lstm_crc32c(sp->idx[0], sp->n[0] * sizeof(size_t)),
             lstm_crc32c(sp->idx[1], sp->n[1] * sizeof(size_t)),
             lstm_crc32c(sp->idx[2], sp->n[2] * sizeof(size_t)));
}

/* Whether a relative path leaves its folder: absolute, or a ".." part. */
static int leaves(const char *rel)
{
    if (rel[0] == '/')
        return 1;
    for (const char *p = rel; p; p = strchr(p, '/'), p = p ? p + 1 : p)
        if (!strncmp(p, "..", 2) && (p[2] == '/' || p[2] == '\0'))
            return 1;
    return 0;
}

int lstm_run_init(lstm_run *r, const char *dir, lstm_opts *opts,
                  int writer, int nproc)
{
    memset(r, 0, sizeof *r);
    r->lock = -1;
    r->opts = opts;
    r->writer = writer;
    r->nproc = nproc;
    r->dir_flag = "the run's folder";
    if (snprintf(r->dir, sizeof r->dir, "%s", dir) >= (int)sizeof r->dir)
        return lstm_error(LSTM_EINVAL, "%s: path too long", dir);
    return LSTM_OK;
}

int lstm_run_resume(lstm_run *r)
{
    const char *path = path_of(r, LSTM_RUN_STATE);
    int err = lstm_safetensors_open(&r->st, path);
    if (err)
        return lstm_error(err, "%s; is %s the %s of a training run?",
                          lstm_errmsg(), r->dir, r->dir_flag);
    r->resumed = 1;
    const char *s = lstm_safetensors_meta(&r->st, "options");
    const char *ss = lstm_safetensors_meta(&r->st, "state");
    err = s ? lstm_json_parse(&r->saved, s, strlen(s)) : LSTM_EFORMAT;
    if (err == LSTM_ENOMEM)
        return err;
    if (err || r->saved.type != LSTM_JSON_OBJ)
        return lstm_error(LSTM_EFORMAT, "%s: no valid \"options\" in the "
                          "metadata", path);
    if ((err = lstm_opts_restore(r->opts, &r->saved)))
        return lstm_error(err, "%s: %s", path, lstm_errmsg());
    /* tb_dir: relative to the folder; format-1 files keep it in "state",
     * older ones a path from their working directory, re-rooted here at
     * its tb_logs/. Nothing may leave the folder. */
    lstm_json sj = {0};
    const lstm_json *tb = lstm_json_get(&r->saved, "tb_dir");
    if (!tb && ss && (err = lstm_json_parse(&sj, ss, strlen(ss))) == 0)
        tb = lstm_json_get(&sj, "tb_dir");
    if (err == LSTM_ENOMEM)
        return err;
    const char *rel = tb && tb->type == LSTM_JSON_STR ? tb->str : NULL;
    rel = rel && strstr(rel, "tb_logs/") ? strstr(rel, "tb_logs/") : rel;
    err = !rel ? lstm_error(LSTM_EFORMAT, "%s: the saved options hold no "
                            "TensorBoard folder", path)
          : leaves(rel) ? lstm_error(LSTM_EFORMAT, "%s: the saved TensorBoard "
                                     "folder leaves %s", path, r->dir_flag)
          : snprintf(r->tbdir, sizeof r->tbdir, "%s/%s", r->dir, rel) >=
                  (int)sizeof r->tbdir
              ? lstm_error(LSTM_EINVAL, "%s: path too long", rel)
              : LSTM_OK;
    lstm_json_free(&sj);
    return err;
}

int lstm_run_claim(lstm_run *r)
{
    static const char *const ours[] = {"model.safetensors", LSTM_RUN_STATE,
                                       "metrics.csv", "predictions.csv",
                                       "split.json"};
    if (!r->writer)
        return LSTM_OK;
    r->lock = lstm_dir_lock(r->dir, "train.lock", ours,
                            sizeof ours / sizeof *ours);
    return r->lock < 0 ? r->lock : LSTM_OK;
}

int lstm_run_split(lstm_run *r, const lstm_textset *ts)
{
    char sum[40];
    const char *saved = r->resumed ? lstm_safetensors_meta(&r->st, "split")
                                   : NULL;
    r->ts = ts;
    split_sum(sum, sizeof sum, &ts->split);
    if (saved && strcmp(saved, sum))
        return lstm_error(LSTM_EINVAL, "%s differs from the split the run "
                          "trained on (checksums %s and %s); restore it, or "
                          "start a new run", path_of(r, "split.json"), sum,
                          saved);
    return r->writer ? lstm_split_save(&ts->split, path_of(r, "split.json"))
                     : LSTM_OK;
}

int lstm_run_start(lstm_run *r, lstm_trainer *t)
{
    int err = LSTM_OK;
    if (r->resumed) {
        /* the batches' split across processes is part of the run */
        const char *np = lstm_safetensors_meta(&r->st, "processes");
        if ((np ? atoi(np) : 1) != r->nproc)
            return lstm_error(LSTM_EINVAL, "%s: the run trained on %s "
                              "process%s; resume it with as many (mpirun -np "
                              "%s), not %d", path_of(r, LSTM_RUN_STATE),
                              np ? np : "1", np && strcmp(np, "1") ? "es" : "",
                              np ? np : "1", r->nproc);
        err = lstm_trainer_load(t, &r->st, path_of(r, LSTM_RUN_STATE));
        if (err)  /* LSTM_EINVAL: other data than the run's */
            return err == LSTM_EINVAL ? lstm_error(err, "%s; resume with the "
                                                   "same data", lstm_errmsg())
                                      : err;
        const char *mcsv = lstm_safetensors_meta(&r->st, "metrics_csv");
        lstm_buf_puts(&r->metrics, mcsv ? mcsv : "");
        lstm_safetensors_close(&r->st);
        err = r->writer ? lstm_mkdirs(r->tbdir) : LSTM_OK;
    } else {
        lstm_buf_puts(&r->metrics, "epoch,train_loss,train_acc,val_loss,"
                                   "val_acc,seconds,items_per_s\n");
        char root[1100];
        snprintf(root, sizeof root, "%s/tb_logs/LSTMClassifier", r->dir);
        err = r->writer ? lstm_tblog_next_dir(r->tbdir, sizeof r->tbdir, root)
                        : LSTM_OK;
    }
    return err || !r->writer ? err : lstm_tblog_open(&r->tb, r->tbdir);
}

int lstm_run_save_state(lstm_run *r, const lstm_trainer *t)
{
    if (!r->writer)
        return LSTM_OK;
    lstm_buf op = {0};
    lstm_buf_puts(&op, "{");
    lstm_opts_json(&op, r->opts);
    /* the TensorBoard folder relative to the run's, which may move */
    const char *tb = r->tbdir + strlen(r->dir) + 1;
    lstm_buf_puts(&op, ",\"tb_dir\":");
    lstm_buf_json_str(&op, tb, strlen(tb));
    lstm_buf_puts(&op, "}");
    char sum[40], procs[16];
    split_sum(sum, sizeof sum, &r->ts->split);
    snprintf(procs, sizeof procs, "%d", r->nproc);
    const char *keys[4] = {"options", "metrics_csv", "split", "processes"};
    const char *vals[4] = {op.s, r->metrics.s ? r->metrics.s : "", sum,
                           procs};
    int err = op.err || r->metrics.err
                  ? lstm_error(LSTM_ENOMEM, "out of memory saving the "
                               "training state")
                  : lstm_trainer_save(t, path_of(r, LSTM_RUN_STATE), keys,
                                      vals, 4);
    lstm_buf_free(&op);
    return err;
}

int lstm_run_save_model(lstm_run *r, const lstm_classifier *m)
{
    const lstm_textset *ts = r->ts;
    return r->writer ? lstm_model_save(path_of(r, "model.safetensors"), m,
                                       &ts->vocab, ts->ds.classes,
                                       ts->ds.n_classes, ts->tok.max_len)
                     : LSTM_OK;
}

int lstm_run_epoch(lstm_run *r, const lstm_trainer *t,
                   const lstm_epoch_stats *s)
{
    const char *tag[4] = {"train-loss", "train-acc", "val-loss", "val-acc"};
    const double val[4] = {s->train_loss, s->train_acc, s->val_loss,
                           s->val_acc};
    for (int k = 0; r->writer && k < (t->nval ? 4 : 2); k++)
        lstm_tblog_scalar(&r->tb, tag[k], (float)val[k], s->epoch);
    lstm_buf_printf(&r->metrics, "%ld,%.6f,%.6f,%.6f,%.6f,%.2f,%.2f\n",
                    s->epoch, s->train_loss, s->train_acc, s->val_loss,
                    s->val_acc, s->seconds, s->items_per_s);
    /* the state first: it alone is enough to go on from here */
    int err = lstm_run_save_state(r, t);
    if (!err && r->writer && !r->metrics.err)
        err = lstm_write_atomic(path_of(r, "metrics.csv"), r->metrics.s,
                                r->metrics.len);
    return err ? err : lstm_run_save_model(r, t->model);
}

int lstm_run_test(lstm_run *r, const lstm_trainer *t, lstm_metrics *mt,
                  int32_t *pred, double *acc)
{
    const lstm_textset *ts = r->ts;
    const size_t nt = ts->split.n[2], C = ts->ds.n_classes,
                 *rows = ts->split.idx[2];
    float *probs = lstm_alloc((nt + 1) * C * sizeof *probs);
    int err = !probs ? LSTM_ENOMEM
              : nt ? lstm_evaluate(t->model, &ts->tok, rows, nt, ts->ds.label,
                                   pred, probs, NULL, acc)
                   : LSTM_OK;
    if (!err && nt)
        err = lstm_metrics_of(mt, C, rows, nt, ts->ds.label, pred);
    if (!err && nt && r->writer) {
        lstm_tblog_scalar(&r->tb, "test-acc", (float)*acc, t->epoch - 1);
        err = lstm_predictions_csv(path_of(r, "predictions.csv"), &ts->ds,
                                   rows, nt, ts->ds.label, pred, probs,
                                   ts->ds.classes, C);
    }
    lstm_free(probs);
    return err ? err : lstm_run_save_model(r, t->model);
}

void lstm_run_free(lstm_run *r)
{
    lstm_safetensors_close(&r->st);
    lstm_json_free(&r->saved);
    lstm_tblog_close(&r->tb);
    lstm_buf_free(&r->metrics);
    if (r->lock >= 0)
        close(r->lock);
    r->lock = -1;
}

/* ---- stop signals ---- */

static volatile sig_atomic_t stop_sig;
static char late_msg[256];
static size_t late_len;
static unsigned grace_s;

static void on_stop(int sig)
{
    if (!stop_sig)
        alarm(grace_s);
    stop_sig = sig;
}

static void on_late(int sig)
{
    (void)sig;
    ssize_t w = write(2, late_msg, late_len);
    (void)w;
    _exit(128 + stop_sig);
}

int lstm_run_catch_signals(const char *prog, unsigned grace)
{
    if (!grace)
        return lstm_error(LSTM_EINVAL, "stop signals: the grace period "
                          "must be 1 s or more");
    int n = snprintf(late_msg, sizeof late_msg, "%s: the step in progress "
                     "did not end within %u s of the signal; stopped "
                     "without saving\n", prog, grace);
    if (n < 0 || (size_t)n >= sizeof late_msg)
        n = (int)sizeof late_msg - 1;
    late_len = (size_t)n;
    grace_s = grace;
    stop_sig = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESETHAND;   /* a second signal: the default action */
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
        return lstm_error(LSTM_EIO, "stop signals: sigaction failed");
    sa.sa_handler = on_late;
    sa.sa_flags = 0;
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
    return 0;
}

int lstm_run_stop_signal(void)
{
    return stop_sig;
}
