/*
 * news_classifier.c - the Spanish news classifier of the reference notebook,
 * end to end, on liblstm: read the CSV, split, build the vocabulary from the
 * training split, train Embedding -> LSTM -> MLP -> LogSoftmax with AdamW and
 * early stopping, log to TensorBoard, test, and save a safetensors checkpoint
 * that PyTorch loads; then evaluate or predict with it.
 *
 *   news_classifier train   --data FILE [options]
 *   news_classifier eval    --model FILE --data FILE [--split FILE]
 *   news_classifier predict --model FILE [--json] [TEXTFILE ...]
 *   news_classifier stats   --data FILE
 *
 * Errors are one line on stderr and exit status 1 (2 for usage errors).
 *
 * Built with `make MPI=1`, it also runs under mpirun: train splits every
 * batch across the processes (lstm_mpi.h); only rank 0 prints the report
 * and writes files; the others say only what goes wrong, prefixed with
 * their rank.
 */
#define _DEFAULT_SOURCE  /* isatty, clock_gettime */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lstm.h"
#include "lstm_data.h"
#ifdef LSTM_MPI
#include "lstm_mpi.h"
static lstm_mpi mpi;
#endif

#define PROG "news_classifier"

/* Processes of the run (mpirun -np), this one's rank; rank 0 writes. */
static int nproc = 1, rank;

/* ---- options: one table for the flags and the saved run's options ---- */

typedef struct {
    const char *data, *model, *out, *split, *resume, *monitor, *pool,
        *precision, *cell, *lr_schedule;
    long epochs, batch, max_len, vocab, embed, hidden, layers, patience;
    long threads, seed, json, bidir, min_freq, bag;
    double dropout, lr, wd, clip, max_mem, warmup, word_dropout, wide;
    char **inputs;
    int ninputs;
} options;

/* KEEP: may go with --resume (given, it wins over the saved value);
 * OPTIONAL: may be absent from saved options (the default then) */
enum { KEEP = LSTM_OPT_KEEP, OPTIONAL = LSTM_OPT_OPTIONAL };

#define O(f) offsetof(options, f)
static const lstm_opt flags[] = {
    {"--data", "data", 's', O(data), 0, 0, NULL, KEEP},
    {"--epochs", "epochs", 'l', O(epochs), 1, 100000, NULL, KEEP},
    {"--threads", NULL, 'l', O(threads), 1, 1024, NULL, KEEP},
    {"--lr", "lr", 'd', O(lr), 0, DBL_MAX, NULL, KEEP},
    {"--resume", NULL, 's', O(resume), 0, 0, NULL, KEEP},
    {"--json", NULL, 'b', O(json), 0, 0, NULL, KEEP},
    {"--model", NULL, 's', O(model), 0, 0, NULL, 0},
    {"--out", NULL, 's', O(out), 0, 0, NULL, 0},
    {"--split", NULL, 's', O(split), 0, 0, NULL, 0},
    {"--max-memory", NULL, 'z', O(max_mem), 1, 1e18, NULL, 0},
    {"--batch-size", "batch_size", 'l', O(batch), 1, 65536, NULL, 0},
    {"--max-len", "max_len", 'l', O(max_len), 1, 1000000, NULL, 0},
    {"--vocab-size", "vocab_size", 'l', O(vocab), 2, 100000000,
     "2 or more: the vocabulary always holds [PAD] and [UNK]", 0},
    {"--embed-dim", "embed_dim", 'l', O(embed), 1, 65536, NULL, 0},
    {"--hidden", "hidden", 'l', O(hidden), 1, 65536, NULL, 0},
    {"--layers", "layers", 'l', O(layers), 1, 64, NULL, 0},
    {"--patience", "patience", 'l', O(patience), 1, 100000, NULL, 0},
    {"--seed", "seed", 'l', O(seed), 0, 0x7fffffffL, NULL, 0},
    {"--dropout", "dropout", 'd', O(dropout), 0, 0.99, NULL, 0},
    {"--weight-decay", "weight_decay", 'd', O(wd), 0, 10, NULL, 0},
    {"--clip-grad-norm", "clip_grad_norm", 'd', O(clip), 0, 1e6, NULL, 0},
    {"--pool", "pool", 'e', O(pool), 0, 0, "last|mean|max", 0},
    {"--monitor", "monitor", 'e', O(monitor), 0, 0,
     "train-loss|val-loss|val-acc", 0},
    {"--precision", "precision", 'e', O(precision), 0, 0, "fp32|bf16-mixed",
     OPTIONAL},
    {"--bidirectional", "bidirectional", 'b', O(bidir), 0, 1, NULL, OPTIONAL},
    {"--cell", "cell", 'e', O(cell), 0, 0, "lstm|gru", OPTIONAL},
    {"--bag", "bag", 'b', O(bag), 0, 1, NULL, OPTIONAL},
    {"--wide", "wide", 'd', O(wide), 0, 1e6, NULL, OPTIONAL},
    {"--min-freq", "min_freq", 'l', O(min_freq), 1, 1000000000, NULL,
     OPTIONAL},
    {"--word-dropout", "word_dropout", 'd', O(word_dropout), 0, 0.99, NULL,
     OPTIONAL},
    {"--lr-schedule", "lr_schedule", 'e', O(lr_schedule), 0, 0,
     "constant|cosine|onecycle", OPTIONAL},
    {"--warmup", "warmup", 'd', O(warmup), 0, 0.99, NULL, OPTIONAL},
};
#define NFLAGS (sizeof flags / sizeof *flags)

static const options defaults = {
    .out = "runs", .monitor = "train-loss", .pool = "last",
    .precision = "fp32", .cell = "lstm", .lr_schedule = "constant",
    .min_freq = 1, .epochs = 10, .batch = 4,
    .max_len = 512, .vocab = 50000, .embed = 256, .hidden = 128, .layers = 2, .patience = 3,
    .seed = 42, .dropout = 0.2, .lr = 1e-3, .wd = 1e-5};

static void usage(FILE *fp)
{
    fprintf(fp,
"usage: " PROG " train   --data FILE [options]    split, train, test, save\n"
"       " PROG " eval    --model FILE --data FILE  accuracy, report, tables\n"
"       " PROG " predict --model FILE [TEXTFILE ...]  (stdin when none)\n"
"       " PROG " stats   --data FILE [--split FILE]  lengths, classes, vocabulary\n"
"\n"
"data and output:\n"
"  --data FILE          CSV (or .csv.gz) with 'text' and 'category' columns\n"
"  --out DIR            where train writes model.safetensors, metrics.csv,\n"
"                       predictions.csv, split.json, tb_logs/; one run at a\n"
"                       time (it holds DIR/train.lock) (default runs)\n"
"  --split FILE         train/val/test rows from a split.json instead of a\n"
"                       random split (eval: evaluate its test rows)\n"
"  --model FILE         checkpoint for eval and predict\n"
"  --json               predict: one JSON object per input\n"
"model:\n"
"  --vocab-size N       vocabulary entries, [PAD] and [UNK] included (50000)\n"
"  --max-len N          tokens per text, longer ones truncated (512)\n"
"  --embed-dim N        embedding size (256)\n"
"  --hidden N           LSTM hidden size (128)\n"
"  --layers N           LSTM layers (2)\n"
"  --dropout P          between LSTM layers and in the head (0.2)\n"
"  --pool last|mean|max text feature: the final hidden state at the true\n"
"                       length, or the mean/max of the outputs (last)\n"
"  --bidirectional      a second LSTM direction reads each text backwards;\n"
"                       the feature is both directions' (off)\n"
"  --cell lstm|gru      the recurrent layer: nn.LSTM's or nn.GRU's (lstm;\n"
"                       gru: fp32 only)\n"
"  --bag                the feature also holds the mean of the text's word\n"
"                       embeddings: a bag of words beside the LSTM (off)\n"
"  --wide S             a linear bag of words beside the network: the logits\n"
"                       gain S x the mean of a per-word table of logits,\n"
"                       zero at the start; S acts as that table's learning-\n"
"                       rate multiplier (0: none)\n"
"  --precision P        fp32 or bf16-mixed: the LSTM's matrix products on\n"
"                       bfloat16-rounded operands with float sums, float\n"
"                       master weights (fp32; eval and predict: the\n"
"                       checkpoint's)\n");
    fputs(
"training:\n"
"  --epochs N           at most N epochs (10)\n"
"  --batch-size N       (4)\n"
"  --lr X               AdamW learning rate (1e-3)\n"
"  --weight-decay X     AdamW decoupled weight decay (1e-5)\n"
"  --clip-grad-norm X   scale gradients down to this 2-norm (0: off)\n"
"  --lr-schedule S      constant, cosine or onecycle (constant)\n"
"  --warmup F           warm-up over this fraction of all steps (0;\n"
"                       onecycle: 0 means 0.3)\n"
"  --word-dropout P     each training token becomes [UNK] with\n"
"                       probability P (0)\n"
"  --min-freq N         vocabulary: only words seen N times or more in\n"
"                       the training rows (1)\n"
"  --patience N         early stopping: epochs without improvement (3)\n"
"  --monitor M          train-loss, val-loss or val-acc (train-loss); the\n"
"                       best weights are restored for val-* metrics\n"
"  --seed N             split, initialisation, shuffling, dropout (42)\n"
"  --threads N          threads (default: all cores)\n"
"  --resume DIR         continue the run whose --out is DIR from its\n"
"                       train_state.safetensors, written after every epoch\n"
"                       and on SIGINT/SIGTERM; it keeps the run's options\n"
"                       (--epochs, --threads, --lr and --data may be given)\n"
"  --max-memory SIZE    refuse to start above SIZE bytes (K, M, G suffixes;\n"
"                       default: the machine's memory)\n"
"\n"
"memory: 4 bytes x parameters x 5 (weights, gradients, AdamW's two moments,\n"
"best weights with val-* monitors), plus 4 x B x T x (9LH + 4H + 2E) bytes\n"
"of activations (3E with bf16-mixed; B = max(batch, 32), T = max length),\n"
"plus the texts and 4 bytes per token kept, plus 4 x parameters x 4 while\n"
"the state is saved;\n"
"parameters = V x E + 4H x (E + H + 2) + (L-1) x 4H x (2H + 2) + the head\n"
"(+ V x C with --wide).\n"
"train prints its estimate before it starts.\n", fp);
}

static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    if (rank)
        fprintf(stderr, "rank %d: ", rank);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see " PROG " --help)\n");
    va_end(ap);
    return 2;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the model and the reports ---- */

static void config_of(lstm_classifier_config *cfg, const options *o, size_t V,
                      size_t C)
{
    *cfg = (lstm_classifier_config){
        .V = V, .E = (size_t)o->embed, .H = (size_t)o->hidden,
        .L = (size_t)o->layers, .C = C, .n_mlp = 2,
        .dropout = (float)o->dropout,
        .mlp = {512, 256}};  /* the notebook's head: Linear(H,512), (512,256) */
    cfg->bidirectional = o->bidir != 0;
    cfg->bag = o->bag != 0;
    cfg->wide = (float)o->wide;
    cfg->cell = strcmp(o->cell, "gru") ? LSTM_CELL_LSTM : LSTM_CELL_GRU;
    lstm_pool_parse(o->pool, &cfg->pool);  /* both checked by lstm_opts_parse */
    lstm_precision_parse(o->precision, &cfg->precision);
}

static void print_buf(lstm_buf *b)
{
    fputs(b->err ? "(out of memory)\n" : b->s ? b->s : "", stdout);
    lstm_buf_free(b);
}

/* The report of mt, then the notebook's two tables: the first 15 test
 * predictions, then the first 15 errors. */
static void print_results(const lstm_metrics *mt, const lstm_textset *ts,
                          const lstm_vocab *v, const size_t *rows, size_t n,
                          const int32_t *labels, const int32_t *pred,
                          char *const *classes)
{
    lstm_buf b = {0};
    lstm_metrics_report(&b, mt, classes);
    lstm_metrics_examples(&b, &ts->ds, &ts->tok, v, rows, n, labels, pred,
                          classes, 15);
    print_buf(&b);
}

/* ---- train ---- */

enum { STOP_GRACE = 60 };  /* seconds a stopping run may take */

/* What the hooks of a run share. */
typedef struct {
    const options *o;
    lstm_run run;             /* its folder */
    int tty;
    double t0, last;          /* progress: epoch start, last shown */
    size_t first;             /* the epoch's first step run here */
} run;

static void progress_begin(const lstm_trainer *t, void *user)
{
    run *r = user;
    r->t0 = now();
    r->last = 0;
    r->first = t->step;
}

static void progress_step(const lstm_trainer *t, size_t step, size_t steps,
                          size_t items, double loss, void *user)
{
    run *r = user;
    const int final = step == steps;
    double tn = now(), el = tn - r->t0;
    if (rank)
        return;
    if (!final && tn - r->last < (r->tty ? 0.2 : 10.0))
        return;
    r->last = tn;
    double rate = el > 0 ? (double)items / el : 0;
    double eta = step > r->first ? el / (double)(step - r->first) *
                                       (double)(steps - step)
                                 : 0;
    if (r->tty) {
        int width = 24, fill = (int)((double)width * (double)step /
                                     (double)steps);
        fprintf(stderr, "\rEpoch %ld [", t->epoch);
        for (int i = 0; i < width; i++)
            fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %zu/%zu  %.1f items/s  loss %.4f  ETA %.0fs   %s",
                step, steps, rate, loss, eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "epoch %ld: step %zu/%zu, %.1f items/s, loss %.4f, "
                "ETA %.0f s\n", t->epoch, step, steps, rate, loss, eta);
    }
    fflush(stderr);
}

static int should_stop(void *user)
{
    (void)user;
    return lstm_run_stop_signal() != 0;
}

/* Memory against --max-memory (default: the machine's), and the space a
 * checkpoint needs in OUT against the free space and the file size limit:
 * better refused now than after an hour. */
static int preflight(const options *o, const lstm_classifier_config *cfg,
                     const lstm_textset *ts, int keep_best)
{
    lstm_train_budget b;
    lstm_train_budget_of(&b, cfg, (size_t)o->batch, (size_t)o->max_len,
                         keep_best, &ts->ds, &ts->tok, &ts->vocab);
    const double mib = 1024.0 * 1024.0;
    printf("memory: about %.0f MiB (weights, gradients, AdamW moments%s "
           "%.0f MiB; activations for %zu x %ld tokens %.0f MiB; texts and "
           "tokens %.0f MiB; saving the state %.0f MiB)\n", b.total / mib,
           keep_best ? ", best weights" : "", b.params / mib, b.rows,
           o->max_len, b.activations / mib, b.texts / mib, b.state / mib);
    int err = lstm_train_budget_check(&b, o->max_mem, "--max-memory", o->out);
    return !err ? 0
           : die("%s%s", lstm_errmsg(), err == LSTM_ENOMEM
                                            ? "; lower --vocab-size, "
                                              "--embed-dim, --hidden, "
                                              "--batch-size or --max-len"
                                            : "");
}

/* After each epoch: the line, then TensorBoard, the state, metrics.csv
 * and the model (lstm_run_epoch). */
static int epoch_end(lstm_trainer *t, const lstm_epoch_stats *s, void *user)
{
    run *r = user;
    printf("epoch %2ld  train loss %.4f acc %.3f  val loss %.4f acc %.3f"
           "  %.1f s (%.1f items/s)\n", s->epoch, s->train_loss, s->train_acc,
           s->val_loss, s->val_acc, s->seconds, s->items_per_s);
    fflush(stdout);
    if (lstm_run_epoch(&r->run, t, s))
        return die("%s", lstm_errmsg());
    if (t->stopped)
        printf("early stopping: %s has not improved for %ld epochs "
               "(best %.4f at epoch %ld)\n", r->o->monitor, t->wait,
               t->best_metric, t->best_epoch);
    return 0;
}

/* The end of a run: the trainer's error, a signal, or 0. */
static int fit_result(int err, const lstm_trainer *t, const options *o,
                      run *r)
{
    if (err == LSTM_STOPPED) {
        if (lstm_run_save_state(&r->run, t))
            return die("%s", lstm_errmsg());
        if (r->tty && t->step)
            fputc('\n', stderr);
        fprintf(stderr, PROG ": %s: stopped at epoch %ld, step %zu of %zu; "
                "the state is in %s/" LSTM_RUN_STATE "; continue with: " PROG
                " train --resume %s\n",
                lstm_run_stop_signal() == SIGINT ? "interrupted"
                                                 : "terminated",
                t->epoch, t->step, lstm_trainer_steps(t), o->out, o->out);
        return 128 + lstm_run_stop_signal();
    }
    if (err == LSTM_ENUMERIC) {  /* the numerical guard */
        char saved[1200] = "nothing was saved";
        if (t->epoch > 1 || o->resume)
            snprintf(saved, sizeof saved, "%s/" LSTM_RUN_STATE " holds the "
                     "last good state", o->out);
        return die("%s; %s; try a lower --lr (now %g)%s", lstm_errmsg(),
                   saved, o->lr, o->clip > 0 ? "" : " or --clip-grad-norm 1");
    }
    return err < 0 ? die("%s", lstm_errmsg()) : err;
}

/* Test rows: accuracy, report, tables, predictions.csv; then the model. */
static int test_and_save(lstm_trainer *t, run *r)
{
    const lstm_textset *ts = r->run.ts;
    const size_t nt = ts->split.n[2], *rows = ts->split.idx[2];
    int32_t *pred = malloc((nt + 1) * sizeof *pred);
    double acc = 0;
    lstm_metrics mt = {0};
    int rc = !pred ? die("out of memory")
             : lstm_run_test(&r->run, t, &mt, pred, &acc)
                 ? die("%s", lstm_errmsg())
                 : 0;
    if (!rc && nt == 0)
        printf("\nno test rows\n");
    else if (!rc) {
        printf("\ntest accuracy %.4f (%zu texts), macro f1 %.4f\n", acc, nt,
               mt.macro_f1);
        print_results(&mt, ts, &ts->vocab, rows, nt, ts->ds.label, pred,
                      ts->ds.classes);
    }
    lstm_metrics_free(&mt);
    free(pred);
    const char *out = r->o->out;
    if (!rc)
        printf("\nsaved %s/model.safetensors, %s/metrics.csv, "
               "%s/predictions.csv, %s/split.json, %s/" LSTM_RUN_STATE
               "\nTensorBoard: tensorboard --logdir %s/tb_logs\n", out, out,
               out, out, out, out);
    return rc;
}

/* The data, split and vocabulary of a run (nothing written yet). */
static int prepare(lstm_textset *ts, const options *o)
{
    if (lstm_textset_load(ts, o->data, o->split, (uint64_t)o->seed,
                          (size_t)o->vocab, (size_t)o->min_freq,
                          (size_t)o->max_len))
        return die("%s", lstm_errmsg());
    const size_t C = ts->ds.n_classes, *n = ts->split.n;
    printf("data: %s, %zu rows, %zu classes; split %zu/%zu/%zu (seed %ld%s)\n",
           o->data, ts->ds.n, C, n[0], n[1], n[2], o->seed,
           o->resume ? ", resumed" : o->split ? ", from --split" : "");
    for (size_t k = 0; k < C; k++) {  /* a class never seen: never predicted */
        size_t i = 0;
        while (i < n[0] && (size_t)ts->ds.label[ts->split.idx[0][i]] != k)
            i++;
        if (i == n[0])
            fprintf(stderr, PROG ": warning: class '%s' has no training "
                    "example\n", ts->ds.classes[k]);
    }
    return 0;
}

static int cmd_train(lstm_opts *op)
{
    options *o = op->obj;
    if (o->resume && op->first_setting)
        return usage_error("--resume continues the saved run with its own "
                           "options; %s cannot be given with it (only "
                           "--epochs, --threads, --lr and --data can)",
                           op->first_setting);
    if (!o->resume && !o->data)
        return usage_error("train needs --data FILE");
    o->out = o->resume ? o->resume : o->out;
    if (o->threads)
        lstm_set_threads((int)o->threads);
    lstm_textset ts = {0};
    lstm_classifier m = {0};
    lstm_trainer t = {0};
    run r = {.o = o, .tty = isatty(2)};
    char split[1100];
    snprintf(split, sizeof split, "%s/split.json", o->out);
    int rc = 0, err = lstm_run_init(&r.run, o->out, op, !rank, nproc);
    r.run.dir_flag = "--out";  /* how its messages name the folder */
    if (err || (o->resume && lstm_run_resume(&r.run))) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    o->split = o->resume ? split : o->split;
    if ((rc = prepare(&ts, o)))
        goto out;
    lstm_classifier_config cfg;
    config_of(&cfg, o, ts.vocab.n, ts.ds.n_classes);
    lstm_train_config tc;
    lstm_train_config_default(&tc);
    tc.epochs = o->epochs;
    tc.batch = (size_t)o->batch;
    tc.lr = o->lr;
    tc.weight_decay = o->wd;
    tc.clip_grad_norm = o->clip;
    tc.warmup = o->warmup;
    tc.word_dropout = o->word_dropout;
    lstm_lr_schedule_parse(o->lr_schedule, &tc.lr_schedule);  /* checked */
    tc.patience = o->patience;
    tc.seed = (uint64_t)o->seed;
    tc.data_rows = ts.ds.n;
    tc.data_crc = lstm_dataset_crc(&ts.ds);
    lstm_monitor_parse(o->monitor, &tc.monitor);
    const int keep_best = tc.monitor != LSTM_MONITOR_TRAIN_LOSS;
    printf("model: vocabulary %zu, embedding %zu, %s%s %zux%zu, head "
           "%zu-%zu-%zu, pool %s%s%s; %zu parameters; %s, %d threads, %s "
           "kernels\n", cfg.V, cfg.E, cfg.bidirectional ? "bidirectional " : "",
           cfg.cell == LSTM_CELL_GRU ? "GRU" : "LSTM", cfg.L, cfg.H,
           cfg.mlp[0], cfg.mlp[1], cfg.C, lstm_pool_name(cfg.pool),
           cfg.bag ? " and a bag of words" : "",
           cfg.wide > 0 ? ", a wide bag of words" : "",
           lstm_classifier_params(&cfg),
           lstm_precision_name(cfg.precision), lstm_get_threads(),
           lstm_kernels_name());
    if (keep_best && ts.split.n[1] == 0)
        rc = die("--monitor %s: no validation rows", o->monitor);
    else if (lstm_run_claim(&r.run))
        rc = die("%s", lstm_errmsg());
    else
        rc = preflight(o, &cfg, &ts, keep_best);  /* before any weight */
    if (rc || lstm_run_split(&r.run, &ts) || lstm_classifier_init(&m, &cfg) ||
        lstm_trainer_init(&t, &m, &tc) ||
        lstm_trainer_data(&t, &ts.tok, ts.ds.label, ts.split.idx[0],
                          ts.split.n[0], ts.split.idx[1], ts.split.n[1]) ||
#ifdef LSTM_MPI
        (nproc > 1 && lstm_trainer_distribute(&t, &mpi.dist)) ||
#endif
        lstm_run_start(&r.run, &t)) {
        rc = rc ? rc : die("%s", lstm_errmsg());
        goto out;
    }
    if (o->resume)
        printf("resumed %s/" LSTM_RUN_STATE " at epoch %ld, step %zu of %zu\n",
               o->out, t.epoch, t.step, lstm_trainer_steps(&t));
    if (lstm_run_catch_signals(PROG, STOP_GRACE)) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    t.hooks = (lstm_train_hooks){&r, progress_begin, progress_step, epoch_end,
                                 should_stop};
    const double t_train = now();
    if ((rc = fit_result(lstm_trainer_fit(&t), &t, o, &r)))
        goto out;
    if (t.restored)
        printf("restored the weights of epoch %ld (%s %.4f)\n", t.best_epoch,
               o->monitor, t.best_metric);
    lstm_buf b = {0};
    lstm_trainer_timing(&b, &t, now() - t_train);
    print_buf(&b);
    rc = test_and_save(&t, &r);
out:
    lstm_run_free(&r.run);
    lstm_trainer_free(&t);
    lstm_classifier_free(&m);
    lstm_textset_free(&ts);
    return rc;
}

/* ---- eval and predict ---- */

/* Loads --model; --precision, when given, replaces the checkpoint's. */
static int load_model(lstm_model *m, const lstm_opts *op)
{
    const options *o = op->obj;
    if (o->threads)
        lstm_set_threads((int)o->threads);
    if (lstm_model_load(m, o->model))
        return die("%s", lstm_errmsg());
    if (lstm_opts_given(op, "--precision"))
        lstm_precision_parse(o->precision, &m->net.rnn.precision),
            m->net.cfg.precision = m->net.rnn.precision;
    return 0;
}

static int cmd_eval(const lstm_opts *op)
{
    const options *o = op->obj;
    if (!o->model || !o->data)
        return usage_error("eval needs --model FILE and --data FILE");
    lstm_model m;
    if (load_model(&m, op))
        return 1;
    lstm_textset ts;
    const size_t C = m.n_classes;
    int rc = 0;
    if (lstm_textset_load(&ts, o->data, o->split, (uint64_t)o->seed, 0, 0,
                          0))
        rc = die("%s", lstm_errmsg());
    const size_t n = rc ? 0 : o->split ? ts.split.n[2] : ts.ds.n;
    size_t *rows = rc ? NULL : malloc((ts.ds.n + 1) * sizeof *rows);
    int32_t *labels = rc ? NULL : malloc((ts.ds.n + 1) * sizeof *labels);
    int32_t *pred = rc ? NULL : malloc((n + 1) * sizeof *pred);
    if (!rc && (!rows || !labels || !pred))
        rc = die("out of memory");
    for (size_t i = 0; !rc && i < n; i++)  /* --split: its test rows */
        rows[i] = o->split ? ts.split.idx[2][i] : i;
    /* the data's labels, mapped to the model's classes by name */
    if (!rc && (lstm_dataset_labels_in(&ts.ds, o->data, m.classes, C, labels) ||
                lstm_corpus_encode(&ts.tok, &m.vocab, ts.ds.text,
                                   ts.ds.text_len, ts.ds.n, m.max_len)))
        rc = die("%s", lstm_errmsg());
    double loss, acc;
    lstm_metrics mt = {0};
    if (!rc && (lstm_evaluate(&m.net, &ts.tok, rows, n, labels, pred, NULL,
                              &loss, &acc) ||
                lstm_metrics_of(&mt, C, rows, n, labels, pred)))
        rc = die("%s", lstm_errmsg());
    if (!rc) {
        printf("%s on %s: %zu texts%s, loss %.4f, accuracy %.4f, macro f1 "
               "%.4f\n", o->model, o->data, n,
               o->split ? " (test rows of the split)" : "", loss, acc,
               mt.macro_f1);
        print_results(&mt, &ts, &m.vocab, rows, n, labels, pred, m.classes);
    }
    lstm_metrics_free(&mt);
    free(pred);
    free(rows);
    free(labels);
    lstm_textset_free(&ts);
    lstm_model_free(&m);
    return rc;
}

static int cmd_predict(const lstm_opts *op)
{
    const options *o = op->obj;
    if (!o->model)
        return usage_error("predict needs --model FILE");
    lstm_model m;
    if (load_model(&m, op))
        return 1;
    int rc = 0, n = o->ninputs ? o->ninputs : 1;
    for (int k = 0; k < n && !rc; k++) {
        const char *name = o->ninputs ? o->inputs[k] : "-";
        char *text;
        size_t len;
        if (lstm_read_file(strcmp(name, "-") ? name : "/dev/stdin", &text,
                           &len, (size_t)64 << 20)) {
            rc = die("%s", lstm_errmsg());
            break;
        }
        int best = lstm_model_predict(&m, text, len);
        lstm_free(text);
        if (best < 0) {
            rc = die("%s: %s", name, lstm_errmsg());
            break;
        }
        lstm_buf b = {0};
        lstm_model_prediction(&b, &m, best, name, o->json != 0);
        print_buf(&b);
    }
    lstm_model_free(&m);
    return rc;
}

/* ---- stats ---- */

static int cmd_stats(const lstm_opts *op)
{
    const options *o = op->obj;
    if (!o->data)
        return usage_error("stats needs --data FILE");
    lstm_textset ts;
    if (lstm_textset_load(&ts, o->data, o->split, (uint64_t)o->seed,
                          (size_t)o->vocab, (size_t)o->min_freq, 0))
        return die("%s", lstm_errmsg());
    char from[1100];
    if (o->split)
        snprintf(from, sizeof from, " of %s", o->split);
    else
        snprintf(from, sizeof from, ", split seed %ld", o->seed);
    lstm_buf b = {0};
    lstm_textset_report(&b, &ts, o->data, from);
    print_buf(&b);
    const lstm_vocab *v = &ts.vocab;
    int32_t ids[8];
    size_t n = lstm_encode(v, "hola mundo", 10, ids, 8);
    printf("\n\"hola mundo\" (max length 8, true length %zu):\n  [", n);
    for (int i = 0; i < 8; i++)
        printf("%s%d", i ? ", " : "", ids[i]);
    printf("]\n  [");
    for (int i = 0; i < 8; i++)
        printf("%s'%s'", i ? ", " : "", v->tok[ids[i]]);
    printf("]\n");
    lstm_textset_free(&ts);
    return 0;
}

static int run_command(int argc, char **argv)
{
    if (lstm_address_check())
        return die("%s", lstm_errmsg());
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    options o = defaults;
    lstm_opts op = {.def = flags, .n = NFLAGS, .obj = &o};
    int rc = lstm_opts_parse(&op, argc, argv, 2);
    if (rc == 1)
        usage(stdout);
    if (rc)
        return rc == 1 ? 0 : usage_error("%s", lstm_errmsg());
    o.inputs = argv + 2;
    o.ninputs = op.ninputs;
    const char *cmd = argv[1], *ks = getenv("LSTM_KERNELS");
    if (ks && *ks && strcmp(ks, lstm_kernels_name()) != 0)
        fprintf(stderr, PROG ": warning: LSTM_KERNELS=%s is not a kernel set "
                "this CPU runs (ref, generic, avx2, avx512, avx512bf16); "
                "using %s\n", ks, lstm_kernels_name());
    if (!strcmp(cmd, "train"))
        return cmd_train(&op);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(&op);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(&op);
    if (!strcmp(cmd, "stats"))
        return cmd_stats(&op);
    return usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
    /* a closed standard descriptor would be taken by the first file opened
     * (a TensorBoard log then receives the report): hold them on /dev/null */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) == -1 &&
            open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd)
            return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);  /* keep lines in order with stderr */
#ifdef LSTM_MPI
    MPI_Init(&argc, &argv);
    if (lstm_mpi_init(&mpi, MPI_COMM_WORLD))
        return die("%s", lstm_errmsg());
    nproc = mpi.dist.size;
    rank = mpi.dist.rank;
    if (rank && !freopen("/dev/null", "w", stdout))  /* rank 0 reports */
        return die("/dev/null: %s", strerror(errno));
#endif
    int rc = run_command(argc, argv);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0)
        rc = die("standard output: write error: %s", strerror(errno));
#ifdef LSTM_MPI
    /* a process that fails alone must not leave the others waiting in a
     * sum: its error ends them all */
    if (rc && nproc > 1)
        MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
#endif
    return rc;
}
