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
 */
#define _XOPEN_SOURCE 700  /* isatty, mkdir, clock_gettime */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "lstm.h"
#include "lstm_data.h"

#define PROG "news_classifier"

/* ---- options ---- */

typedef struct {
    const char *data, *model, *out, *split, *monitor, *resume;
    long epochs, batch, max_len, vocab, embed, hidden, layers, patience;
    long threads, seed;
    double dropout, lr, wd, clip, max_mem;
    int pool, json, epochs_given, lr_given;
    int precision, precision_given;  /* LSTM_FP32 or LSTM_BF16_MIXED */
    const char *first_setting;  /* a flag --resume does not take */
    const char **inputs;
    int ninputs;
} options;

static void defaults(options *o)
{
    memset(o, 0, sizeof *o);
    o->out = "runs";
    o->monitor = "train-loss";
    o->epochs = 10;
    o->batch = 4;
    o->max_len = 512;
    o->vocab = 50000;
    o->embed = 256;
    o->hidden = 128;
    o->layers = 2;
    o->patience = 3;
    o->seed = 42;
    o->dropout = 0.2;
    o->lr = 1e-3;
    o->wd = 1e-5;
    o->pool = LSTM_POOL_LAST;
}

static const char *precision_name(int p)
{
    return p == LSTM_BF16_MIXED ? "bf16-mixed" : "fp32";
}

/* 0 and *p set for "fp32" or "bf16-mixed", else -1. */
static int parse_precision(const char *v, int *p)
{
    if (!strcmp(v, "fp32"))
        *p = LSTM_FP32;
    else if (!strcmp(v, "bf16-mixed"))
        *p = LSTM_BF16_MIXED;
    else
        return -1;
    return 0;
}

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
"                       predictions.csv, split.json, tb_logs/ (default runs)\n"
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
"  --precision P        fp32 or bf16-mixed: the LSTM's matrix products on\n"
"                       bfloat16-rounded operands with float sums, float\n"
"                       master weights (fp32; eval and predict: the\n"
"                       checkpoint's)\n"
"training:\n"
"  --epochs N           at most N epochs (10)\n"
"  --batch-size N       (4)\n"
"  --lr X               AdamW learning rate (1e-3)\n"
"  --weight-decay X     AdamW decoupled weight decay (1e-5)\n"
"  --clip-grad-norm X   scale gradients down to this 2-norm (0: off)\n"
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
"parameters = V x E + 4H x (E + H + 2) + (L-1) x 4H x (2H + 2) + the head.\n"
"train prints its estimate before it starts.\n");
}

static int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
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

static int parse_long(const char *flag, const char *v, long lo, long hi,
                      long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *v == '\0' || *end != '\0' || x < lo || x > hi)
        return usage_error("bad value for %s: '%s' (an integer from %ld to %ld)",
                           flag, v, lo, hi);
    *out = x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi,
                        double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *v == '\0' || *end != '\0' || !(x >= lo && x <= hi))
        return usage_error("bad value for %s: '%s' (a number from %g to %g)",
                           flag, v, lo, hi);
    *out = x;
    return 0;
}

/* A byte count: a number with an optional K, M, G or T (binary) suffix. */
static int parse_size(const char *flag, const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    const char *units = "KMGT";
    const char *u = *end ? strchr(units, *end) : NULL;
    if (u && *end)
        for (const char *q = units; q <= u; q++)
            x *= 1024.0;
    if (errno || end == v || (*end && (!u || end[1] != '\0')) ||
        !(x >= 1.0 && x <= 1e18))
        return usage_error("bad value for %s: '%s' (bytes, with K, M, G or T "
                           "for KiB, MiB, GiB, TiB)", flag, v);
    *out = floor(x);
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const char *inputs[4096];
    o->inputs = inputs;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char flag[64];
        if (strncmp(a, "--", 2) != 0) {
            if (o->ninputs == 4096)
                return usage_error("too many input files");
            inputs[o->ninputs++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t fl = eq ? (size_t)(eq - a) : strlen(a);
        if (fl >= sizeof flag)
            return usage_error("unknown flag %.40s", a);
        memcpy(flag, a, fl);
        flag[fl] = '\0';
        if (strcmp(flag, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(flag, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        /* the first four go with --resume, the rest are the run's own */
        static const char *known[] = {
            "--data", "--epochs", "--threads", "--lr", "--model", "--out",
            "--split",
            "--monitor", "--batch-size", "--max-len", "--vocab-size",
            "--embed-dim", "--hidden", "--layers", "--patience", "--seed",
            "--dropout", "--weight-decay", "--pool", "--precision",
            "--clip-grad-norm", "--max-memory", "--resume"};
        size_t k = 0, nk = sizeof known / sizeof *known;
        while (k < nk && strcmp(flag, known[k]) != 0)
            k++;
        if (k == nk)
            return usage_error("unknown flag %s", flag);
        if (!v)
            return usage_error("%s needs a value", flag);
        if (k >= 4 && k < nk - 1 && !o->first_setting)
            o->first_setting = known[k];
        int e = 0;
        if (!strcmp(flag, "--data")) o->data = v;
        else if (!strcmp(flag, "--resume")) o->resume = v;
        else if (!strcmp(flag, "--max-memory")) e = parse_size(flag, v, &o->max_mem);
        else if (!strcmp(flag, "--model")) o->model = v;
        else if (!strcmp(flag, "--out")) o->out = v;
        else if (!strcmp(flag, "--split")) o->split = v;
        else if (!strcmp(flag, "--monitor")) {
            if (strcmp(v, "train-loss") && strcmp(v, "val-loss") &&
                strcmp(v, "val-acc"))
                return usage_error("bad value for --monitor: '%s' (train-loss, "
                                   "val-loss or val-acc)", v);
            o->monitor = v;
        } else if (!strcmp(flag, "--precision")) {
            if (parse_precision(v, &o->precision))
                return usage_error("bad value for --precision: '%s' (fp32 or "
                                   "bf16-mixed)", v);
            o->precision_given = 1;
        } else if (!strcmp(flag, "--pool")) {
            if (!strcmp(v, "last")) o->pool = LSTM_POOL_LAST;
            else if (!strcmp(v, "mean")) o->pool = LSTM_POOL_MEAN;
            else if (!strcmp(v, "max")) o->pool = LSTM_POOL_MAX;
            else return usage_error("bad value for --pool: '%s' (last, mean or "
                                    "max)", v);
        }
        else if (!strcmp(flag, "--epochs")) {
            e = parse_long(flag, v, 1, 100000, &o->epochs);
            o->epochs_given = 1;
        }
        else if (!strcmp(flag, "--batch-size")) e = parse_long(flag, v, 1, 65536, &o->batch);
        else if (!strcmp(flag, "--max-len")) e = parse_long(flag, v, 1, 1000000, &o->max_len);
        else if (!strcmp(flag, "--vocab-size")) {
            char *end;
            long x = strtol(v, &end, 10);
            if (*v && !*end && x < 2)
                return usage_error("bad value for --vocab-size: '%s' (2 or "
                                   "more: the vocabulary always holds [PAD] "
                                   "and [UNK])", v);
            e = parse_long(flag, v, 2, 100000000, &o->vocab);
        }
        else if (!strcmp(flag, "--embed-dim")) e = parse_long(flag, v, 1, 65536, &o->embed);
        else if (!strcmp(flag, "--hidden")) e = parse_long(flag, v, 1, 65536, &o->hidden);
        else if (!strcmp(flag, "--layers")) e = parse_long(flag, v, 1, 64, &o->layers);
        else if (!strcmp(flag, "--patience")) e = parse_long(flag, v, 1, 100000, &o->patience);
        else if (!strcmp(flag, "--threads")) e = parse_long(flag, v, 1, 1024, &o->threads);
        else if (!strcmp(flag, "--seed")) e = parse_long(flag, v, 0, 0x7fffffffL, &o->seed);
        else if (!strcmp(flag, "--dropout")) e = parse_double(flag, v, 0.0, 0.99, &o->dropout);
        else if (!strcmp(flag, "--lr")) {
            e = parse_double(flag, v, 0.0, DBL_MAX, &o->lr);
            o->lr_given = 1;
        }
        else if (!strcmp(flag, "--weight-decay")) e = parse_double(flag, v, 0.0, 10.0, &o->wd);
        else if (!strcmp(flag, "--clip-grad-norm")) e = parse_double(flag, v, 0.0, 1e6, &o->clip);
        if (e)
            return e;
    }
    return 0;
}

/* ---- small helpers ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return die("%s: path too long", path);
    for (char *p = tmp + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return die("%s: cannot create the folder: %s", tmp,
                           strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

/* A text excerpt on one line: at most n characters, whitespace folded. */
static void excerpt(char *dst, size_t cap, const char *s, size_t len,
                    size_t nchars)
{
    size_t o = 0, chars = 0;
    for (size_t i = 0; i < len && chars < nchars && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xc0) != 0x80)
            chars++;
        dst[o++] = c == '\n' || c == '\r' || c == '\t' ? ' ' : (char)c;
    }
    while (o > 0 && ((unsigned char)dst[o - 1] & 0xc0) == 0xc0)
        o--;  /* never cut a character in half */
    if (chars >= nchars && o + 4 < cap)
        memcpy(dst + o, "...", 3), o += 3;
    dst[o] = '\0';
}

/* Pads s with spaces to w characters (UTF-8 aware). */
static void print_col(const char *s, size_t w)
{
    size_t n = lstm_utf8_len(s, strlen(s));
    fputs(s, stdout);
    for (; n < w; n++)
        putchar(' ');
}

/* ---- the encoded corpus and the model ---- */

typedef struct {
    lstm_dataset ds;
    lstm_vocab vocab;
    int32_t *ids;              /* every text's tokens, one after another */
    size_t *off;               /* (n) where each text starts in ids */
    int32_t *len;              /* (n) tokens of each text, 1..max_len */
    size_t max_len;
} corpus;

static void corpus_free(corpus *c)
{
    lstm_dataset_free(&c->ds);
    lstm_vocab_free(&c->vocab);
    free(c->ids);
    free(c->off);
    free(c->len);
}

/* Encodes every text; memory grows with the tokens, not n x max_len. */
static int encode_all(corpus *c)
{
    const size_t n = c->ds.n, T = c->max_len;
    size_t cap = n * 16 + T, used = 0;
    int32_t *tmp = malloc(T * sizeof *tmp);
    c->ids = malloc(cap * sizeof *c->ids);
    c->off = malloc((n + 1) * sizeof *c->off);
    c->len = malloc((n + 1) * sizeof *c->len);
    for (size_t i = 0; tmp && c->ids && c->off && c->len && i < n; i++) {
        size_t l = lstm_encode(&c->vocab, c->ds.text[i], c->ds.text_len[i],
                               tmp, T);
        if (used + l > cap) {
            cap = 2 * cap + l;
            int32_t *g = realloc(c->ids, cap * sizeof *g);
            if (!g) {
                free(c->ids);
                c->ids = NULL;
                break;
            }
            c->ids = g;
        }
        memcpy(c->ids + used, tmp, l * sizeof *tmp);
        c->off[i] = used;
        c->len[i] = (int32_t)l;
        used += l;
    }
    free(tmp);
    if (!tmp || !c->ids || !c->off || !c->len)
        return die("out of memory encoding %zu texts", n);
    return 0;
}

/* One batch: rows r[0..B) gathered, padded to the longest of them. */
typedef struct {
    int32_t *ids, *len, *y;
    size_t B, T;
} batch;

static void gather(batch *b, const corpus *c, const size_t *rows, size_t B,
                   const int32_t *labels)
{
    size_t T = 1;
    for (size_t i = 0; i < B; i++)
        if ((size_t)c->len[rows[i]] > T)
            T = (size_t)c->len[rows[i]];
    for (size_t i = 0; i < B; i++) {
        const size_t l = (size_t)c->len[rows[i]];
        memcpy(b->ids + i * T, c->ids + c->off[rows[i]], l * sizeof(int32_t));
        memset(b->ids + i * T + l, 0, (T - l) * sizeof(int32_t));
        b->len[i] = (int32_t)l;
        if (labels)
            b->y[i] = labels[rows[i]];
    }
    b->B = B;
    b->T = T;
}

static int batch_init(batch *b, size_t B, size_t T)
{
    b->ids = malloc(B * T * sizeof *b->ids);
    b->len = malloc(B * sizeof *b->len);
    b->y = malloc(B * sizeof *b->y);
    return b->ids && b->len && b->y ? 0 : die("out of memory for a batch");
}

static void batch_free(batch *b)
{
    free(b->ids);
    free(b->len);
    free(b->y);
}

#define EVAL_BATCH 32

/* The predicted class of one row of log-probabilities. */
static size_t argmax(const float *lp, size_t C)
{
    size_t best = 0;
    for (size_t k = 1; k < C; k++)
        if (lp[k] > lp[best])
            best = k;
    return best;
}

/* Runs the model over rows; fills pred (and logp rows when non-NULL),
 * returns the mean loss and the accuracy through the pointers. */
static int evaluate(lstm_classifier *m, const corpus *c, const size_t *rows,
                    size_t n, const int32_t *labels, int32_t *pred,
                    float *probs, double *loss, double *acc)
{
    batch b;
    if (batch_init(&b, EVAL_BATCH, c->max_len))
        return 1;
    const size_t C = m->cfg.C;
    double lsum = 0;
    size_t correct = 0;
    for (size_t s = 0; s < n; s += EVAL_BATCH) {
        size_t B = n - s < EVAL_BATCH ? n - s : EVAL_BATCH;
        gather(&b, c, rows + s, B, labels);
        float l = 0;
        int err = lstm_classifier_forward(m, b.ids, b.len, B, b.T,
                                          labels ? b.y : NULL, &l, 0, NULL);
        if (err) {
            batch_free(&b);
            return die("%s", lstm_errmsg());
        }
        lsum += (double)l * (double)B;
        for (size_t i = 0; i < B; i++) {
            const float *lp = m->logp + i * C;
            size_t best = argmax(lp, C);
            pred[s + i] = (int32_t)best;
            if (probs)
                for (size_t k = 0; k < C; k++)
                    probs[(s + i) * C + k] = expf(lp[k]);
            if (labels)
                correct += (int32_t)best == b.y[i];
        }
    }
    batch_free(&b);
    if (loss)
        *loss = n ? lsum / (double)n : 0.0;
    if (acc)
        *acc = n ? (double)correct / (double)n : 0.0;
    return 0;
}

static void config_of(lstm_classifier_config *cfg, const options *o, size_t V,
                      size_t C)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->V = V;
    cfg->E = (size_t)o->embed;
    cfg->H = (size_t)o->hidden;
    cfg->L = (size_t)o->layers;
    cfg->C = C;
    cfg->mlp[0] = 512;  /* the notebook's head: Linear(H,512), Linear(512,256) */
    cfg->mlp[1] = 256;
    cfg->n_mlp = 2;
    cfg->dropout = (float)o->dropout;
    cfg->pool = o->pool;
    cfg->precision = o->precision;
}

static const char *pool_name(int pool)
{
    return pool == LSTM_POOL_MEAN ? "mean" : pool == LSTM_POOL_MAX ? "max"
                                                                   : "last";
}

/* ---- checkpoints: weights plus vocabulary, classes and configuration ---- */

static int save_model(const char *path, lstm_classifier *m, const corpus *c,
                      const options *o)
{
    lstm_buf vocab = {0}, classes = {0}, config = {0};
    lstm_buf_puts(&vocab, "[");
    for (size_t i = 0; i < c->vocab.n; i++) {
        if (i)
            lstm_buf_puts(&vocab, ",");
        lstm_buf_json_str(&vocab, c->vocab.tok[i], strlen(c->vocab.tok[i]));
    }
    lstm_buf_puts(&vocab, "]");
    lstm_buf_puts(&classes, "[");
    for (size_t i = 0; i < c->ds.n_classes; i++) {
        if (i)
            lstm_buf_puts(&classes, ",");
        lstm_buf_json_str(&classes, c->ds.classes[i], strlen(c->ds.classes[i]));
    }
    lstm_buf_puts(&classes, "]");
    lstm_buf_printf(&config,
                    "{\"vocab_size\":%zu,\"embed_dim\":%zu,\"hidden\":%zu,"
                    "\"layers\":%zu,\"num_classes\":%zu,\"mlp\":[%zu,%zu],"
                    "\"max_len\":%zu,\"dropout\":%g,\"pool\":\"%s\","
                    "\"precision\":\"%s\"}",
                    m->cfg.V, m->cfg.E, m->cfg.H, m->cfg.L, m->cfg.C,
                    m->cfg.mlp[0], m->cfg.mlp[1], c->max_len,
                    (double)(float)o->dropout, pool_name(m->cfg.pool),
                    precision_name(m->cfg.precision));
    int err = LSTM_ENOMEM;
    if (!vocab.err && !classes.err && !config.err) {
        const char *keys[3] = {"vocab", "classes", "config"};
        const char *vals[3] = {vocab.s, classes.s, config.s};
        err = lstm_safetensors_save(path, &m->ps, keys, vals, 3);
    }
    lstm_buf_free(&vocab);
    lstm_buf_free(&classes);
    lstm_buf_free(&config);
    return err ? die("%s", err == LSTM_ENOMEM ? "out of memory saving the model"
                                              : lstm_errmsg())
               : 0;
}

static void free_strings(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

/* Reads a JSON array of strings from metadata; *out is malloc'd. */
static int meta_strings(const lstm_safetensors *st, const char *path,
                        const char *key, char ***out, size_t *n)
{
    const char *s = lstm_safetensors_meta(st, key);
    if (!s)
        return die("%s: no \"%s\" in the checkpoint metadata", path, key);
    lstm_json j;
    if (lstm_json_parse(&j, s, strlen(s)) || j.type != LSTM_JSON_ARR) {
        if (j.type == LSTM_JSON_ARR)
            lstm_json_free(&j);
        return die("%s: metadata \"%s\" is not a JSON array", path, key);
    }
    *out = calloc(j.n ? j.n : 1, sizeof **out);
    for (size_t i = 0; i < j.n; i++) {
        if (j.items[i].type != LSTM_JSON_STR) {
            for (size_t k = 0; k < i; k++)
                free((*out)[k]);
            free(*out);
            lstm_json_free(&j);
            return die("%s: metadata \"%s\"[%zu] is not a string", path, key, i);
        }
        (*out)[i] = strdup(j.items[i].str);
    }
    *n = j.n;
    lstm_json_free(&j);
    return 0;
}

static int meta_size(const lstm_json *cfg, const char *path, const char *key,
                     size_t *out)
{
    const lstm_json *v = lstm_json_get(cfg, key);
    if (!v || v->type != LSTM_JSON_NUM || v->num < 1 || v->num > 1e9 ||
        v->num != floor(v->num))
        return die("%s: metadata config has no valid \"%s\"", path, key);
    *out = (size_t)v->num;
    return 0;
}

/* Loads a checkpoint: model, vocabulary, class names and max length. */
static int load_model(const char *path, lstm_classifier *m, lstm_vocab *vocab,
                      char ***classes, size_t *nclasses, size_t *max_len)
{
    memset(m, 0, sizeof *m);
    memset(vocab, 0, sizeof *vocab);
    *classes = NULL;
    *nclasses = 0;
    lstm_safetensors st;
    if (lstm_safetensors_open(&st, path))
        return die("%s", lstm_errmsg());
    char **tokens = NULL;
    size_t ntok = 0;
    int rc = meta_strings(&st, path, "vocab", &tokens, &ntok) ||
             meta_strings(&st, path, "classes", classes, nclasses);
    const char *cs = lstm_safetensors_meta(&st, "config");
    lstm_json cfg = {0};
    lstm_classifier_config c;
    memset(&c, 0, sizeof c);
    if (!rc && (!cs || lstm_json_parse(&cfg, cs, strlen(cs)) ||
                cfg.type != LSTM_JSON_OBJ))
        rc = die("%s: metadata \"config\" is missing or not a JSON object",
                 path);
    if (!rc)
        rc = meta_size(&cfg, path, "embed_dim", &c.E) ||
             meta_size(&cfg, path, "hidden", &c.H) ||
             meta_size(&cfg, path, "layers", &c.L) ||
             meta_size(&cfg, path, "max_len", max_len);
    if (!rc) {
        const lstm_json *mlp = lstm_json_get(&cfg, "mlp");
        const lstm_json *pool = lstm_json_get(&cfg, "pool");
        const lstm_json *drop = lstm_json_get(&cfg, "dropout");
        const lstm_json *prec = lstm_json_get(&cfg, "precision");
        c.n_mlp = 2;
        c.mlp[0] = 512;
        c.mlp[1] = 256;
        if (mlp && mlp->type == LSTM_JSON_ARR && mlp->n <= LSTM_MLP_MAX) {
            c.n_mlp = mlp->n;
            for (size_t i = 0; i < mlp->n; i++)
                c.mlp[i] = mlp->items[i].type == LSTM_JSON_NUM &&
                                   mlp->items[i].num >= 1 &&
                                   mlp->items[i].num <= 1e6
                               ? (size_t)mlp->items[i].num : 0;
        }
        c.pool = LSTM_POOL_LAST;
        if (pool && pool->type == LSTM_JSON_STR)
            c.pool = !strcmp(pool->str, "mean") ? LSTM_POOL_MEAN
                     : !strcmp(pool->str, "max") ? LSTM_POOL_MAX
                                                 : LSTM_POOL_LAST;
        c.dropout = drop && drop->type == LSTM_JSON_NUM && drop->num >= 0 &&
                            drop->num < 1 ? (float)drop->num : 0.0f;
        c.V = ntok;
        c.C = *nclasses;
        size_t V;
        if (meta_size(&cfg, path, "vocab_size", &V) == 0 && V != ntok)
            rc = die("%s: config says %zu vocabulary entries, the vocabulary "
                     "has %zu", path, V, ntok);
        /* absent: fp32 (checkpoints from before the option) */
        if (!rc && prec && (prec->type != LSTM_JSON_STR ||
                            parse_precision(prec->str, &c.precision)))
            rc = die("%s: config \"precision\" is not fp32 or bf16-mixed",
                     path);
    }
    /* a configuration the tensors cannot fill is refused before any
     * memory is set aside for it */
    if (!rc && lstm_classifier_params(&c) != st.data_size / 4)
        rc = die("%s: the metadata config describes %zu parameters, the "
                 "file holds %zu", path, lstm_classifier_params(&c),
                 st.data_size / 4);
    if (!rc && lstm_vocab_from_list(vocab, tokens, ntok))
        rc = die("%s: %s", path, lstm_errmsg());
    if (!rc && lstm_classifier_init(m, &c))
        rc = die("%s: %s", path, lstm_errmsg());
    if (!rc && lstm_safetensors_load(&st, &m->ps))
        rc = die("%s: %s", path, lstm_errmsg());
    if (rc) {  /* nothing half-made goes back to the caller */
        lstm_classifier_free(m);
        lstm_vocab_free(vocab);
        free_strings(*classes, *nclasses);
        *classes = NULL;
        *nclasses = 0;
    }
    for (size_t i = 0; i < ntok; i++)
        free(tokens[i]);
    free(tokens);
    lstm_json_free(&cfg);
    lstm_safetensors_close(&st);
    return rc;
}

/* eval and predict: --precision, when given, replaces the checkpoint's. */
static void use_precision(lstm_classifier *m, const options *o)
{
    if (o->precision_given)
        m->cfg.precision = m->rnn.precision = o->precision;
}

/* ---- reports ---- */

static void print_report(const lstm_metrics *mt, char *const *classes)
{
    const size_t C = mt->C;
    size_t w = 8;
    for (size_t c = 0; c < C; c++) {
        size_t l = lstm_utf8_len(classes[c], strlen(classes[c]));
        w = l > w ? l : w;
    }
    printf("\n");
    print_col("", w);
    printf("  precision  recall      f1  support\n");
    for (size_t c = 0; c < C; c++) {
        print_col(classes[c], w);
        printf("  %9.3f %7.3f %7.3f %8zu\n", mt->precision[c], mt->recall[c],
               mt->f1[c], mt->support[c]);
    }
    print_col("accuracy", w);
    printf("  %25.3f %8zu\n", mt->accuracy, mt->total);
    print_col("macro f1", w);
    printf("  %25.3f\n", mt->macro_f1);
    printf("\nconfusion matrix (rows: true class, columns: predicted)\n");
    print_col("", w);
    for (size_t c = 0; c < C; c++)
        printf(" %5.5s", classes[c]);
    printf("\n");
    for (size_t r = 0; r < C; r++) {
        print_col(classes[r], w);
        for (size_t c = 0; c < C; c++)
            printf(" %5zu", mt->confusion[r * C + c]);
        printf("\n");
    }
}

/* The first tokens of a text, as the vocabulary sees them. */
static void first_tokens(char *dst, size_t cap, const corpus *c, size_t row,
                         size_t n)
{
    size_t o = 0, len = (size_t)c->len[row];
    dst[0] = '\0';
    for (size_t i = 0; i < len && i < n; i++) {
        const char *t = c->vocab.tok[c->ids[c->off[row] + i]];
        int k = snprintf(dst + o, cap - o, "%s%s", i ? " " : "", t);
        if (k < 0 || (size_t)k >= cap - o)
            break;
        o += (size_t)k;
    }
    if (len > n && o + 4 < cap)
        memcpy(dst + o, " ...", 5);
}

/* The notebook's two tables: the first 15 test predictions, then the first
 * 15 errors. */
static void print_tables(const corpus *c, const size_t *rows, size_t n,
                         const int32_t *labels, const int32_t *pred,
                         char *const *classes)
{
    for (int errors_only = 0; errors_only < 2; errors_only++) {
        printf("\n%s\n", errors_only ? "first 15 errors"
                                     : "first 15 test predictions");
        printf("%6s  %-42s %-36s %-14s %s\n", "row", "text", "tokens",
               "category", "prediction");
        size_t shown = 0;
        for (size_t i = 0; i < n && shown < 15; i++) {
            size_t r = rows[i];
            if (errors_only && labels[r] == pred[i])
                continue;
            char text[256], toks[256];
            excerpt(text, sizeof text, c->ds.text[r], c->ds.text_len[r], 40);
            first_tokens(toks, sizeof toks, c, r, 4);
            char tcut[256];
            excerpt(tcut, sizeof tcut, toks, strlen(toks), 34);
            printf("%6zu  ", r);
            print_col(text, 42);
            putchar(' ');
            print_col(tcut, 36);
            putchar(' ');
            print_col(classes[labels[r]], 14);
            printf(" %s\n", classes[pred[i]]);
            shown++;
        }
        if (!shown)
            printf("  (none)\n");
    }
}

static int write_predictions(const char *path, const corpus *c,
                             const size_t *rows, size_t n,
                             const int32_t *labels, const int32_t *pred,
                             const float *probs, char *const *classes)
{
    lstm_buf b = {0};
    const size_t C = c->ds.n_classes;
    lstm_buf_puts(&b, "row,line,category,prediction,probability,correct,text\n");
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i];
        char text[512];
        excerpt(text, sizeof text, c->ds.text[r], c->ds.text_len[r], 100);
        lstm_buf_printf(&b, "%zu,%zu,%s,%s,%.4f,%d,\"", r, c->ds.line[r],
                        classes[labels[r]], classes[pred[i]],
                        (double)probs[i * C + (size_t)pred[i]],
                        labels[r] == pred[i]);
        for (const char *p = text; *p; p++)  /* RFC 4180: double quotes */
            lstm_buf_put(&b, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
        lstm_buf_puts(&b, "\"\n");
    }
    int err = b.err ? LSTM_ENOMEM : lstm_write_atomic(path, b.s, b.len);
    lstm_buf_free(&b);
    return err ? die("%s", lstm_errmsg()) : 0;
}

/* ---- train ---- */

typedef struct {
    int tty;
    double t0, last;
    size_t total, first;      /* steps in the epoch, the first one run here */
} progress;

static void progress_show(progress *p, long epoch, size_t step, size_t items,
                          double loss, int final)
{
    double t = now(), el = t - p->t0;
    if (!final && t - p->last < (p->tty ? 0.2 : 10.0))
        return;
    p->last = t;
    double rate = el > 0 ? (double)items / el : 0;
    double eta = step > p->first
                     ? el / (double)(step - p->first) * (double)(p->total - step)
                     : 0;
    if (p->tty) {
        int width = 24, fill = (int)((double)width * (double)step /
                                     (double)p->total);
        fprintf(stderr, "\rEpoch %ld [", epoch);
        for (int i = 0; i < width; i++)
            fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %zu/%zu  %.1f items/s  loss %.4f  ETA %.0fs   %s",
                step, p->total, rate, loss, eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "epoch %ld: step %zu/%zu, %.1f items/s, loss %.4f, "
                "ETA %.0f s\n", epoch, step, p->total, rate, loss, eta);
    }
    fflush(stderr);
}

static int next_version(char *dir, size_t cap, const char *out)
{
    for (int v = 0; v < 100000; v++) {
        snprintf(dir, cap, "%s/tb_logs/LSTMClassifier/version_%d", out, v);
        struct stat sb;
        if (stat(dir, &sb) != 0)
            return mkdirs(dir);
    }
    return die("%s/tb_logs: too many versions", out);
}

/* ---- the training state: everything --resume needs ---- */

#define STATE_FILE "train_state.safetensors"

typedef struct {
    long epoch;                /* the epoch in progress, from 1 */
    size_t step;               /* its steps already taken */
    double lsum;               /* its running loss sum, hits and items */
    size_t correct, seen;
    lstm_rng init, shuf, drop; /* shuf: as at the start of the epoch */
    double best_metric;        /* early stopping */
    long best_epoch, wait;
    int stopped;               /* early stopping has fired */
} train_pos;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* SIGINT and SIGTERM end the run between two steps, with its state saved;
 * a second one ends it at once (the files on disk are whole either way,
 * being replaced atomically). Exceeding a file size limit becomes a write
 * error rather than a kill. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

/* The data the run trained on, so a resume notices a changed file. */
static uint32_t data_crc(const lstm_dataset *ds)
{
    uint32_t *h = malloc((2 * ds->n + 1) * sizeof *h), crc = 0;
    if (!h)
        return 0;
    for (size_t i = 0; i < ds->n; i++) {
        h[2 * i] = lstm_crc32c(ds->text[i], ds->text_len[i]);
        const char *cl = ds->classes[ds->label[i]];
        h[2 * i + 1] = lstm_crc32c(cl, strlen(cl));
    }
    crc = lstm_crc32c(h, 2 * ds->n * sizeof *h);
    free(h);
    return crc;
}

static void put_rng(lstm_buf *b, const char *key, const lstm_rng *r)
{
    lstm_buf_printf(b, ",\"%s\":\"", key);
    for (int k = 0; k < 4; k++)
        lstm_buf_printf(b, "%016llx", (unsigned long long)r->s[k]);
    lstm_buf_puts(b, "\"");
}

static int get_rng(const lstm_json *j, const char *key, lstm_rng *r)
{
    const lstm_json *v = lstm_json_get(j, key);
    if (!v || v->type != LSTM_JSON_STR || v->len != 64)
        return 1;
    for (int k = 0; k < 4; k++) {
        char hex[17], *end;
        memcpy(hex, v->str + 16 * k, 16);
        hex[16] = '\0';
        r->s[k] = (uint64_t)strtoull(hex, &end, 16);
        if (*end)
            return 1;
    }
    return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0;
}

/* A number field of the state within [lo, hi]; 1 when missing or not. */
static int get_num(const lstm_json *j, const char *key, double lo, double hi,
                   double *out)
{
    const lstm_json *v = lstm_json_get(j, key);
    if (!v || v->type != LSTM_JSON_NUM || !(v->num >= lo && v->num <= hi))
        return 1;
    *out = v->num;
    return 0;
}

static int get_long(const lstm_json *j, const char *key, long lo, long hi,
                    long *out)
{
    double d;
    if (get_num(j, key, (double)lo, (double)hi, &d) || d != floor(d))
        return 1;
    *out = (long)d;
    return 0;
}

/* Writes OUT/train_state.safetensors: the weights, AdamW's moments, the
 * best weights when they are kept, and as metadata the position in the
 * run, the RNG states, early stopping, the options, the data's checksum
 * and metrics.csv so far. */
static int save_state(const options *o, const lstm_classifier *m,
                      const lstm_adamw *opt, const float *best,
                      const train_pos *p, const char *tbdir,
                      const lstm_buf *metrics, const lstm_dataset *ds,
                      uint32_t crc)
{
    const lstm_params *ps = &m->ps;
    if (!p->best_epoch)
        best = NULL;  /* nothing kept yet */
    const size_t np = ps->np, cap = 96, nblk = best ? 4 : 3;
    lstm_st_tensor *t = calloc(nblk * np, sizeof *t);
    char *names = calloc(nblk * np, cap);
    lstm_buf st = {0}, op = {0};
    int rc = 0;
    if (!t || !names) {
        rc = die("out of memory saving the training state");
        goto out;
    }
    lstm_safetensors_tensors(ps, ps->w, NULL, t, names, cap);
    lstm_safetensors_tensors(ps, opt->m, "optimizer.exp_avg.", t + np,
                             names + np * cap, cap);
    lstm_safetensors_tensors(ps, opt->v, "optimizer.exp_avg_sq.", t + 2 * np,
                             names + 2 * np * cap, cap);
    if (best)
        lstm_safetensors_tensors(ps, best, "best.", t + 3 * np,
                                 names + 3 * np * cap, cap);
    lstm_buf_printf(&st,
                    "{\"format\":1,\"epoch\":%ld,\"step\":%zu,\"lsum\":%.17g,"
                    "\"correct\":%zu,\"seen\":%zu,\"adam_step\":%ld,"
                    "\"best_epoch\":%ld,\"wait\":%ld,\"stopped\":%d,"
                    "\"data_rows\":%zu,\"data_crc\":%lu",
                    p->epoch, p->step, p->lsum, p->correct, p->seen,
                    opt->step, p->best_epoch, p->wait, p->stopped, ds->n,
                    (unsigned long)crc);
    if (p->best_epoch)
        lstm_buf_printf(&st, ",\"best_metric\":%.17g", p->best_metric);
    put_rng(&st, "rng_init", &p->init);
    put_rng(&st, "rng_shuffle", &p->shuf);
    put_rng(&st, "rng_dropout", &p->drop);
    lstm_buf_puts(&st, ",\"tb_dir\":");
    lstm_buf_json_str(&st, tbdir, strlen(tbdir));
    lstm_buf_puts(&st, "}");
    lstm_buf_puts(&op, "{\"data\":");
    lstm_buf_json_str(&op, o->data, strlen(o->data));
    lstm_buf_printf(&op,
                    ",\"epochs\":%ld,\"batch_size\":%ld,\"max_len\":%ld,"
                    "\"vocab_size\":%ld,\"embed_dim\":%ld,\"hidden\":%ld,"
                    "\"layers\":%ld,\"patience\":%ld,\"seed\":%ld,"
                    "\"dropout\":%.17g,\"lr\":%.17g,\"weight_decay\":%.17g,"
                    "\"clip_grad_norm\":%.17g,\"pool\":\"%s\","
                    "\"monitor\":\"%s\",\"precision\":\"%s\"}",
                    o->epochs, o->batch, o->max_len, o->vocab, o->embed,
                    o->hidden, o->layers, o->patience, o->seed, o->dropout,
                    o->lr, o->wd, o->clip, pool_name(o->pool), o->monitor,
                    precision_name(o->precision));
    if (st.err || op.err || metrics->err) {
        rc = die("out of memory saving the training state");
        goto out;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/" STATE_FILE, o->out);
    const char *keys[3] = {"state", "options", "metrics_csv"};
    const char *vals[3] = {st.s, op.s, metrics->s ? metrics->s : ""};
    if (lstm_safetensors_write(path, t, nblk * np, keys, vals, 3))
        rc = die("%s", lstm_errmsg());
out:
    lstm_buf_free(&st);
    lstm_buf_free(&op);
    free(t);
    free(names);
    return rc;
}

/* The saved run's options replace o's, except --epochs, --threads, --lr
 * and --data when given. */
static int state_options(const lstm_safetensors *st, const char *path,
                         options *o)
{
    static char data[4096], monitor[16];
    const char *s = lstm_safetensors_meta(st, "options");
    lstm_json j = {0};
    if (!s || lstm_json_parse(&j, s, strlen(s)) || j.type != LSTM_JSON_OBJ) {
        lstm_json_free(&j);
        return die("%s: no valid \"options\" in the metadata", path);
    }
    const lstm_json *d = lstm_json_get(&j, "data");
    const lstm_json *pl = lstm_json_get(&j, "pool");
    const lstm_json *mo = lstm_json_get(&j, "monitor");
    const lstm_json *pr = lstm_json_get(&j, "precision");
    long epochs = 0;
    double lr;
    int bad = !d || d->type != LSTM_JSON_STR || d->len >= sizeof data ||
              !pl || pl->type != LSTM_JSON_STR || !mo ||
              mo->type != LSTM_JSON_STR || mo->len >= sizeof monitor ||
              get_long(&j, "epochs", 1, 100000, &epochs) ||
              get_long(&j, "batch_size", 1, 65536, &o->batch) ||
              get_long(&j, "max_len", 1, 1000000, &o->max_len) ||
              get_long(&j, "vocab_size", 2, 100000000, &o->vocab) ||
              get_long(&j, "embed_dim", 1, 65536, &o->embed) ||
              get_long(&j, "hidden", 1, 65536, &o->hidden) ||
              get_long(&j, "layers", 1, 64, &o->layers) ||
              get_long(&j, "patience", 1, 100000, &o->patience) ||
              get_long(&j, "seed", 0, 0x7fffffffL, &o->seed) ||
              get_num(&j, "dropout", 0, 0.99, &o->dropout) ||
              get_num(&j, "lr", 0, DBL_MAX, o->lr_given ? &lr : &o->lr) ||
              get_num(&j, "weight_decay", 0, 10, &o->wd) ||
              get_num(&j, "clip_grad_norm", 0, 1e6, &o->clip);
    if (!bad) {
        if (!o->data) {
            memcpy(data, d->str, d->len + 1);
            o->data = data;
        }
        if (!o->epochs_given)
            o->epochs = epochs;
        o->pool = !strcmp(pl->str, "mean") ? LSTM_POOL_MEAN
                  : !strcmp(pl->str, "max") ? LSTM_POOL_MAX : LSTM_POOL_LAST;
        memcpy(monitor, mo->str, mo->len + 1);
        o->monitor = monitor;
        bad = strcmp(monitor, "train-loss") && strcmp(monitor, "val-loss") &&
              strcmp(monitor, "val-acc");
        o->precision = LSTM_FP32;  /* absent in states saved before it */
        if (pr)
            bad = bad || pr->type != LSTM_JSON_STR ||
                  parse_precision(pr->str, &o->precision);
    }
    lstm_json_free(&j);
    return bad ? die("%s: the saved options are incomplete or out of range",
                     path)
               : 0;
}

/* Puts the saved state into the freshly made model, optimizer and run. */
static int state_restore(const lstm_safetensors *st, const char *path,
                         lstm_classifier *m, lstm_adamw *opt, float *best,
                         train_pos *p, char *tbdir, size_t tbcap,
                         lstm_buf *metrics, const lstm_dataset *ds,
                         uint32_t crc, size_t steps)
{
    const char *s = lstm_safetensors_meta(st, "state");
    const char *mc = lstm_safetensors_meta(st, "metrics_csv");
    lstm_json j = {0};
    if (!s || !mc || lstm_json_parse(&j, s, strlen(s)) ||
        j.type != LSTM_JSON_OBJ) {
        lstm_json_free(&j);
        return die("%s: no valid \"state\" in the metadata", path);
    }
    const lstm_json *tb = lstm_json_get(&j, "tb_dir");
    double lsum, crc_saved, rows, step, correct, seen;
    int rc = 0;
    long stopped = 0;
    if (get_long(&j, "epoch", 1, 100001, &p->epoch) ||
        get_num(&j, "step", 0, (double)steps, &step) ||
        get_num(&j, "lsum", 0, HUGE_VAL, &lsum) ||
        get_num(&j, "correct", 0, 1e15, &correct) ||
        get_num(&j, "seen", 0, 1e15, &seen) ||
        get_long(&j, "adam_step", 0, LONG_MAX, &opt->step) ||
        get_long(&j, "best_epoch", 0, 100000, &p->best_epoch) ||
        get_long(&j, "wait", 0, 100000, &p->wait) ||
        get_long(&j, "stopped", 0, 1, &stopped) ||
        get_num(&j, "data_rows", 0, 1e15, &rows) ||
        get_num(&j, "data_crc", 0, 4294967295.0, &crc_saved) ||
        get_rng(&j, "rng_init", &p->init) ||
        get_rng(&j, "rng_shuffle", &p->shuf) ||
        get_rng(&j, "rng_dropout", &p->drop) || !tb ||
        tb->type != LSTM_JSON_STR || tb->len >= tbcap ||
        (p->best_epoch &&
         get_num(&j, "best_metric", -HUGE_VAL, HUGE_VAL, &p->best_metric)))
        rc = die("%s: the saved state is incomplete or out of range", path);
    else if ((size_t)rows != ds->n || (uint32_t)crc_saved != crc)
        rc = die("%s: the data differ from the run's (%.0f rows then, %zu "
                 "now, or changed texts); resume with the same --data",
                 path, rows, ds->n);
    if (!rc) {
        p->step = (size_t)step;
        p->lsum = lsum;
        p->correct = (size_t)correct;
        p->seen = (size_t)seen;
        p->stopped = (int)stopped;
        memcpy(tbdir, tb->str, tb->len + 1);
        lstm_buf_puts(metrics, mc);
    }
    lstm_json_free(&j);
    const lstm_params *ps = &m->ps;
    char name[128];
    for (size_t i = 0; !rc && i < ps->np; i++) {
        const lstm_param *q = &ps->p[i];
        float *dst[4] = {ps->w, opt->m, opt->v, best};
        const char *pre[4] = {"", "optimizer.exp_avg.",
                              "optimizer.exp_avg_sq.", "best."};
        for (int k = 0; !rc && k < 4; k++) {
            if (!dst[k] || (k == 3 && !p->best_epoch))
                continue;
            snprintf(name, sizeof name, "%s%s", pre[k], q->name);
            if (lstm_safetensors_get(st, name, q->shape, q->ndim,
                                     dst[k] + q->off))
                rc = die("%s: %s", path, lstm_errmsg());
        }
    }
    return rc;
}

/* ---- checks before a long run starts ---- */

static double mib(double bytes)
{
    return bytes / (1024.0 * 1024.0);
}

/* Memory against --max-memory (default: the machine's), and the space a
 * checkpoint needs in OUT against the free space and the file size limit:
 * better refused now than after an hour. */
static int preflight(const options *o, const lstm_classifier_config *cfg,
                     const corpus *c, int keep_best)
{
    const size_t n = lstm_classifier_params(cfg), T = c->max_len;
    const size_t B = (size_t)o->batch > EVAL_BATCH ? (size_t)o->batch
                                                   : EVAL_BATCH;
    const double params = 4.0 * (double)n * (4 + keep_best);
    const double model = (double)lstm_classifier_memory(cfg, B, T);
    const double acts = model - 8.0 * (double)n;
    /* the texts as read (with about 48 bytes of bookkeeping a row) and
     * their tokens */
    double texts = 0;
    for (size_t i = 0; i < c->ds.n; i++)
        texts += (double)c->ds.text_len[i] + 49.0 + 16.0 + 4.0 * c->len[i];
    /* the state is serialised in one buffer before it is written */
    const double state = 4.0 * (double)n * (3 + keep_best) + 65536.0;
    const double need = model + 4.0 * (double)n * (2 + keep_best) + texts +
                        state;
    double limit = o->max_mem;
    if (!(o->max_mem > 0)) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
        limit = pages > 0 && psz > 0 ? (double)pages * (double)psz : HUGE_VAL;
    }
    printf("memory: about %.0f MiB (weights, gradients, AdamW moments%s "
           "%.0f MiB; activations for %zu x %zu tokens %.0f MiB; texts and "
           "tokens %.0f MiB; saving the state %.0f MiB)\n", mib(need),
           keep_best ? ", best weights" : "", mib(params), B, T, mib(acts),
           mib(texts), mib(state));
    if (need > limit)
        return die("training needs about %.0f MiB of memory, more than the "
                   "%.0f MiB %s; lower --vocab-size, --embed-dim, --hidden, "
                   "--batch-size or --max-len", mib(need), mib(limit),
                   o->max_mem > 0 ? "--max-memory allows" : "this machine has");
    double vocab = 0;
    for (size_t i = 0; i < c->vocab.n; i++)
        vocab += 2.0 * (double)strlen(c->vocab.tok[i]) + 3.0;
    const double ckpt = 4.0 * (double)n + vocab + 65536.0;
    struct statvfs fs;
    if (statvfs(o->out, &fs) == 0) {
        /* an atomic write holds the new file beside the old one */
        double avail = (double)fs.f_bavail * (double)fs.f_frsize;
        if (avail < state + ckpt)
            return die("%s: %.1f MiB free, a checkpoint needs %.1f MiB (%s "
                       "and model.safetensors); free some space or choose "
                       "another --out", o->out, mib(avail), mib(state + ckpt),
                       STATE_FILE);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (double)rl.rlim_cur < state)
        return die("the file size limit (ulimit -f) is %.0f KiB, the "
                   "training state needs %.0f KiB", (double)rl.rlim_cur / 1024,
                   state / 1024);
    return 0;
}

static int interrupted(const options *o, const train_pos *p, size_t steps,
                       int tty)
{
    if (tty)
        fputc('\n', stderr);
    fprintf(stderr, PROG ": %s: stopped at epoch %ld, step %zu of %zu; the "
            "state is in %s/" STATE_FILE "; continue with: " PROG
            " train --resume %s\n",
            stop_signal == SIGINT ? "interrupted" : "terminated", p->epoch,
            p->step, steps, o->out, o->out);
    return 128 + stop_signal;
}

/* The message of the numerical guard, naming the step and the layer. */
static int non_finite(const options *o, const lstm_classifier *m,
                      const train_pos *p, const char *what, double value)
{
    const lstm_param *bad = lstm_params_nonfinite(&m->ps, 1);
    char saved[1200] = "nothing was saved", val[32];
    if (p->epoch > 1 || o->resume)
        snprintf(saved, sizeof saved, "%s/" STATE_FILE " holds the last good "
                 "state", o->out);
    if (isnan(value))
        snprintf(val, sizeof val, "NaN");
    else
        snprintf(val, sizeof val, "%g", value);
    return die("epoch %ld step %zu: the %s is %s%s%s; %s; try a lower --lr "
               "(now %g)%s",
               p->epoch, p->step + 1, what, val,
               bad ? ", first in the gradient of " : "", bad ? bad->name : "",
               saved, o->lr, o->clip > 0 ? "" : " or --clip-grad-norm 1");
}

static int cmd_train(const options *opts)
{
    options ov = *opts, *o = &ov;
    if (o->resume) {
        if (o->first_setting)
            return usage_error("--resume continues the saved run with its "
                               "own options; %s cannot be given with it "
                               "(only --epochs, --threads, --lr and --data "
                               "can)",
                               o->first_setting);
        o->out = o->resume;
    } else if (!o->data) {
        return usage_error("train needs --data FILE");
    }
    if (o->threads)
        lstm_set_threads((int)o->threads);
    char path[1200], spath[1200], tbdir[1100] = "";
    corpus c = {0};
    lstm_split sp = {0};
    lstm_classifier m = {0};
    lstm_adamw opt = {0};
    lstm_safetensors st = {0};
    lstm_tblog tb = {0};
    lstm_buf metrics = {0};
    batch b = {0};
    size_t *order = NULL;
    int32_t *vpred = NULL;
    float *best = NULL;
    int rc = 0, err;
    train_pos pos = {0};
    pos.epoch = 1;
    snprintf(spath, sizeof spath, "%s/" STATE_FILE, o->out);
    if (o->resume) {
        if (lstm_safetensors_open(&st, spath)) {
            rc = die("%s; is %s the --out of a training run?", lstm_errmsg(),
                     o->out);
            goto out;
        }
        if ((rc = state_options(&st, spath, o)))
            goto out;
        snprintf(path, sizeof path, "%s/split.json", o->out);
        o->split = path;
    }
    c.max_len = (size_t)o->max_len;
    if (lstm_dataset_load(&c.ds, o->data)) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    const size_t C = c.ds.n_classes;
    if ((rc = mkdirs(o->out)))
        goto out;
    if (o->split)
        err = lstm_split_load(&sp, o->split, c.ds.n);
    else
        err = lstm_split_random(&sp, c.ds.n, (double[3]){0.8, 0.1, 0.1},
                                (uint64_t)o->seed);
    if (err) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    if (sp.n[0] == 0) {
        rc = die("%s: the training split is empty (%zu rows)", o->data,
                 c.ds.n);
        goto out;
    }
    snprintf(path, sizeof path, "%s/split.json", o->out);
    if (lstm_split_save(&sp, path)) {  /* also proves OUT is writable */
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    printf("data: %s, %zu rows, %zu classes; split %zu/%zu/%zu (seed %ld%s)\n",
           o->data, c.ds.n, C, sp.n[0], sp.n[1], sp.n[2], o->seed,
           o->resume ? ", resumed" : o->split ? ", from --split" : "");
    {   /* classes missing from training can never be predicted */
        size_t *seen = calloc(C, sizeof *seen);
        for (size_t i = 0; seen && i < sp.n[0]; i++)
            seen[c.ds.label[sp.idx[0][i]]]++;
        for (size_t k = 0; seen && k < C; k++)
            if (!seen[k])
                fprintf(stderr, PROG ": warning: class '%s' has no training "
                        "example\n", c.ds.classes[k]);
        free(seen);
    }
    if (lstm_vocab_build(&c.vocab, &c.ds, sp.idx[0], sp.n[0],
                         (size_t)o->vocab)) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    if ((rc = encode_all(&c)))
        goto out;

    lstm_classifier_config cfg;
    config_of(&cfg, o, c.vocab.n, C);
    const int mon_min = strcmp(o->monitor, "val-acc") != 0;
    const int restore = strncmp(o->monitor, "val", 3) == 0;
    printf("model: vocabulary %zu, embedding %zu, LSTM %zux%zu, head %zu-%zu-%zu,"
           " pool %s; %zu parameters; %s, %d threads, %s kernels\n",
           cfg.V, cfg.E, cfg.L, cfg.H, cfg.mlp[0], cfg.mlp[1], C,
           pool_name(cfg.pool), lstm_classifier_params(&cfg),
           precision_name(cfg.precision), lstm_get_threads(),
           lstm_kernels_name());
    if ((rc = preflight(o, &cfg, &c, restore)))  /* before any weight */
        goto out;
    if (lstm_classifier_init(&m, &cfg)) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    lstm_rng_seed(&pos.init, (uint64_t)o->seed);
    lstm_rng_seed(&pos.shuf, (uint64_t)o->seed + 1);
    lstm_rng_seed(&pos.drop, (uint64_t)o->seed + 2);
    lstm_classifier_reset(&m, &pos.init);
    pos.best_metric = mon_min ? (double)INFINITY : -(double)INFINITY;
    if (restore && !(best = malloc(m.ps.n * sizeof *best))) {
        rc = die("out of memory for the best weights");
        goto out;
    }
    if (lstm_adamw_init(&opt, m.ps.n, o->lr, 0.9, 0.999, 1e-8, o->wd)) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    const size_t ntrain = sp.n[0], Bmax = (size_t)o->batch;
    const size_t steps = (ntrain + Bmax - 1) / Bmax;
    const uint32_t crc = data_crc(&c.ds);
    if (o->resume) {
        if ((rc = state_restore(&st, spath, &m, &opt, best, &pos, tbdir,
                                sizeof tbdir, &metrics, &c.ds, crc, steps)))
            goto out;
        lstm_safetensors_close(&st);
        printf("resumed %s at epoch %ld, step %zu of %zu\n", spath, pos.epoch,
               pos.step, steps);
        if (mkdirs(tbdir)) {
            rc = 1;
            goto out;
        }
    } else {
        lstm_buf_puts(&metrics, "epoch,train_loss,train_acc,val_loss,val_acc,"
                                "seconds,items_per_s\n");
        if ((rc = next_version(tbdir, sizeof tbdir, o->out)))
            goto out;
    }
    if (lstm_tblog_open(&tb, tbdir)) {
        rc = die("%s", lstm_errmsg());
        goto out;
    }
    order = malloc(ntrain * sizeof *order);
    vpred = malloc((sp.n[1] + 1) * sizeof *vpred);
    if (!order || !vpred || batch_init(&b, Bmax, c.max_len)) {
        rc = die("out of memory");
        goto out;
    }
    catch_signals();
    const int tty = isatty(2);
    long epochs_here = 0;
    double t_train = now(), t_opt = 0, t_eval = 0;
    while (!pos.stopped && pos.epoch <= o->epochs) {
        const long epoch = pos.epoch;
        /* every epoch a fresh permutation of the training rows */
        lstm_rng shuf = pos.shuf;
        memcpy(order, sp.idx[0], ntrain * sizeof *order);
        lstm_rng_shuffle(&shuf, order, ntrain);
        progress pg = {tty, now(), 0, steps, pos.step};
        const size_t seen0 = pos.seen;
        for (size_t s = pos.step; s < steps && !stop_signal; s++) {
            size_t B = ntrain - s * Bmax < Bmax ? ntrain - s * Bmax : Bmax;
            gather(&b, &c, order + s * Bmax, B, c.ds.label);
            float loss;
            lstm_params_zero_grad(&m.ps);
            err = lstm_classifier_forward(&m, b.ids, b.len, B, b.T, b.y, &loss,
                                          1, &pos.drop);
            if (!err)
                err = lstm_classifier_backward(&m, b.y);
            if (err) {
                rc = die("%s", lstm_errmsg());
                break;
            }
            double gnorm = o->clip > 0 ? lstm_params_clip_grad_norm(&m.ps, o->clip)
                                       : 0.0;
            if (!isfinite(loss) || !isfinite(gnorm)) {
                rc = non_finite(o, &m, &pos,
                                isfinite(loss) ? "gradient norm" : "loss",
                                isfinite(loss) ? gnorm : (double)loss);
                break;
            }
            double t0 = now();
            size_t nbad = lstm_adamw_step(&opt, m.ps.w, m.ps.g);
            t_opt += now() - t0;
            if (nbad) {
                rc = non_finite(o, &m, &pos, "count of non-finite gradients",
                                (double)nbad);
                break;
            }
            pos.step = s + 1;
            pos.lsum += (double)loss * (double)B;
            pos.seen += B;
            for (size_t i = 0; i < B; i++)
                pos.correct += (int32_t)argmax(m.logp + i * C, C) == b.y[i];
            progress_show(&pg, epoch, s + 1, pos.seen - seen0,
                          pos.lsum / (double)pos.seen, s + 1 == steps);
        }
        if (rc)
            break;
        if (stop_signal) {
            rc = save_state(o, &m, &opt, best, &pos, tbdir, &metrics, &c.ds,
                            crc);
            if (!rc)
                rc = interrupted(o, &pos, steps, tty);
            break;
        }
        double secs = now() - pg.t0, items = (double)(pos.seen - seen0);
        double tl = pos.lsum / (double)pos.seen;
        double ta = (double)pos.correct / (double)pos.seen;
        double vl = (double)NAN, va = (double)NAN, t0 = now();
        if (sp.n[1] && (rc = evaluate(&m, &c, sp.idx[1], sp.n[1], c.ds.label,
                                      vpred, NULL, &vl, &va)))
            break;
        t_eval += now() - t0;
        printf("epoch %2ld  train loss %.4f acc %.3f  val loss %.4f acc %.3f"
               "  %.1f s (%.1f items/s)\n", epoch, tl, ta, vl, va, secs,
               items / secs);
        fflush(stdout);
        lstm_tblog_scalar(&tb, "train-loss", (float)tl, epoch);
        lstm_tblog_scalar(&tb, "train-acc", (float)ta, epoch);
        if (sp.n[1]) {
            lstm_tblog_scalar(&tb, "val-loss", (float)vl, epoch);
            lstm_tblog_scalar(&tb, "val-acc", (float)va, epoch);
        }
        lstm_buf_printf(&metrics, "%ld,%.6f,%.6f,%.6f,%.6f,%.2f,%.2f\n", epoch,
                        tl, ta, vl, va, secs, items / secs);
        /* early stopping, as Lightning's EarlyStopping(min_delta=0) */
        double v = !strcmp(o->monitor, "train-loss") ? tl
                   : !strcmp(o->monitor, "val-loss") ? vl : va;
        if (isnan(v)) {
            rc = die("--monitor %s: no validation rows", o->monitor);
            break;
        }
        if (mon_min ? v < pos.best_metric : v > pos.best_metric) {
            pos.best_metric = v;
            pos.best_epoch = epoch;
            pos.wait = 0;
            if (restore)
                memcpy(best, m.ps.w, m.ps.n * sizeof *best);
        } else if (++pos.wait >= o->patience) {
            pos.stopped = 1;
        }
        pos.epoch = epoch + 1;
        pos.step = 0;
        pos.lsum = 0;
        pos.correct = pos.seen = 0;
        pos.shuf = shuf;
        epochs_here++;
        /* the state first: it alone is enough to go on from here */
        if ((rc = save_state(o, &m, &opt, best, &pos, tbdir, &metrics, &c.ds,
                             crc)))
            break;
        snprintf(path, sizeof path, "%s/metrics.csv", o->out);
        if (!metrics.err && lstm_write_atomic(path, metrics.s, metrics.len)) {
            rc = die("%s", lstm_errmsg());
            break;
        }
        snprintf(path, sizeof path, "%s/model.safetensors", o->out);
        if ((rc = save_model(path, &m, &c, o)))
            break;
        if (pos.stopped)
            printf("early stopping: %s has not improved for %ld epochs "
                   "(best %.4f at epoch %ld)\n", o->monitor, pos.wait,
                   pos.best_metric, pos.best_epoch);
        if (stop_signal) {
            rc = interrupted(o, &pos, steps, 0);
            break;
        }
    }
    if (rc)
        goto out;
    const long last_epoch = pos.epoch - 1;
    if (restore && pos.best_epoch) {
        memcpy(m.ps.w, best, m.ps.n * sizeof *best);
        printf("restored the weights of epoch %ld (%s %.4f)\n", pos.best_epoch,
               o->monitor, pos.best_metric);
    }
    double t_total = now() - t_train;
    if (epochs_here) {
        const double ne = (double)epochs_here;
        const double t_steps = t_total - t_eval;
        printf("training: %ld epochs in %.1f s (%.1f s per epoch, %.1f s of "
               "them training steps)\n", epochs_here, t_total, t_total / ne,
               t_steps / ne);
        printf("per epoch: embedding %.2f s, LSTM forward %.2f s, LSTM "
               "backward %.2f s, head %.2f s, optimizer %.2f s, other %.2f s; "
               "validation %.2f s\n", m.t_embed / ne, m.t_lstm_fwd / ne,
               m.t_lstm_bwd / ne, m.t_head / ne, t_opt / ne,
               (t_steps - m.t_embed - m.t_lstm_fwd - m.t_lstm_bwd - m.t_head -
                t_opt) / ne, t_eval / ne);
    } else {
        printf("training: finished before (epoch %ld); testing\n", last_epoch);
    }
    const size_t nt = sp.n[2];
    int32_t *pred = malloc((nt + 1) * sizeof *pred);
    float *probs = malloc((nt + 1) * C * sizeof *probs);
    double tacc = 0;
    lstm_metrics mt = {0};
    if (!pred || !probs || lstm_metrics_init(&mt, C))
        rc = die("out of memory");
    else if (nt == 0)
        printf("\nno test rows\n");
    else if (!(rc = evaluate(&m, &c, sp.idx[2], nt, c.ds.label, pred, probs,
                             NULL, &tacc))) {
        for (size_t i = 0; i < nt; i++)
            lstm_metrics_add(&mt, c.ds.label[sp.idx[2][i]], pred[i]);
        lstm_metrics_finish(&mt);
        printf("\ntest accuracy %.4f (%zu texts), macro f1 %.4f\n", tacc, nt,
               mt.macro_f1);
        lstm_tblog_scalar(&tb, "test-acc", (float)tacc, last_epoch);
        print_report(&mt, c.ds.classes);
        print_tables(&c, sp.idx[2], nt, c.ds.label, pred, c.ds.classes);
        snprintf(path, sizeof path, "%s/predictions.csv", o->out);
        rc = write_predictions(path, &c, sp.idx[2], nt, c.ds.label, pred,
                               probs, c.ds.classes);
    }
    if (mt.confusion)
        lstm_metrics_free(&mt);
    free(pred);
    free(probs);
    if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors", o->out);
        rc = save_model(path, &m, &c, o);
        if (!rc)
            printf("\nsaved %s, %s/metrics.csv, %s/predictions.csv, "
                   "%s/split.json, %s/" STATE_FILE "\nTensorBoard: "
                   "tensorboard --logdir %s/tb_logs\n", path, o->out, o->out,
                   o->out, o->out, o->out);
    }
out:
    lstm_safetensors_close(&st);
    lstm_tblog_close(&tb);
    lstm_buf_free(&metrics);
    batch_free(&b);
    free(order);
    free(vpred);
    free(best);
    lstm_adamw_free(&opt);
    lstm_classifier_free(&m);
    lstm_split_free(&sp);
    corpus_free(&c);
    return rc;
}

/* ---- eval and predict ---- */

static int cmd_eval(const options *o)
{
    if (!o->model || !o->data)
        return usage_error("eval needs --model FILE and --data FILE");
    if (o->threads)
        lstm_set_threads((int)o->threads);
    lstm_classifier m;
    corpus c = {0};
    char **classes = NULL;
    size_t nclasses = 0;
    if (load_model(o->model, &m, &c.vocab, &classes, &nclasses, &c.max_len))
        return 1;
    use_precision(&m, o);
    int rc = 0;
    if (lstm_dataset_load(&c.ds, o->data))
        rc = die("%s", lstm_errmsg());
    /* the data's labels, mapped to the model's classes by name */
    int32_t *labels = rc ? NULL : malloc(c.ds.n * sizeof *labels);
    for (size_t i = 0; !rc && i < c.ds.n; i++) {
        const char *name = c.ds.classes[c.ds.label[i]];
        size_t k = 0;
        while (k < nclasses && strcmp(classes[k], name) != 0)
            k++;
        if (k == nclasses)
            rc = die("%s: line %zu: category '%s' is not one of the model's "
                     "%zu classes", o->data, c.ds.line[i], name, nclasses);
        else
            labels[i] = (int32_t)k;
    }
    lstm_split sp = {0};
    size_t *rows = NULL, n = 0;
    if (!rc && o->split) {
        if (lstm_split_load(&sp, o->split, c.ds.n))
            rc = die("%s", lstm_errmsg());
        rows = sp.idx[2];
        n = sp.n[2];
    } else if (!rc) {
        n = c.ds.n;
        rows = malloc(n * sizeof *rows);
        for (size_t i = 0; i < n; i++)
            rows[i] = i;
    }
    if (!rc && !(rc = encode_all(&c))) {
        int32_t *pred = malloc((n + 1) * sizeof *pred);
        float *probs = malloc((n + 1) * nclasses * sizeof *probs);
        double loss, acc;
        lstm_metrics mt;
        if (!(rc = evaluate(&m, &c, rows, n, labels, pred, probs, &loss,
                            &acc)) &&
            !lstm_metrics_init(&mt, nclasses)) {
            for (size_t i = 0; i < n; i++)
                lstm_metrics_add(&mt, labels[rows[i]], pred[i]);
            lstm_metrics_finish(&mt);
            printf("%s on %s: %zu texts%s, loss %.4f, accuracy %.4f, macro f1 "
                   "%.4f\n", o->model, o->data, n,
                   o->split ? " (test rows of the split)" : "", loss, acc,
                   mt.macro_f1);
            print_report(&mt, classes);
            print_tables(&c, rows, n, labels, pred, classes);
            lstm_metrics_free(&mt);
        }
        free(pred);
        free(probs);
    }
    if (o->split)
        lstm_split_free(&sp);
    else
        free(rows);
    free(labels);
    free_strings(classes, nclasses);
    corpus_free(&c);
    lstm_classifier_free(&m);
    return rc;
}

static int read_stream(FILE *fp, char **out, size_t *n)
{
    lstm_buf b = {0};
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
        lstm_buf_put(&b, chunk, got);
    if (b.err || ferror(fp)) {
        lstm_buf_free(&b);
        return 1;
    }
    *out = b.s ? b.s : strdup("");
    *n = b.len;
    return 0;
}

static int cmd_predict(const options *o)
{
    if (!o->model)
        return usage_error("predict needs --model FILE");
    if (o->threads)
        lstm_set_threads((int)o->threads);
    lstm_classifier m;
    lstm_vocab vocab;
    char **classes = NULL;
    size_t C = 0, T = 0;
    if (load_model(o->model, &m, &vocab, &classes, &C, &T))
        return 1;
    use_precision(&m, o);
    int32_t *ids = malloc(T * sizeof *ids);
    int rc = ids ? 0 : die("out of memory");
    int n = o->ninputs ? o->ninputs : 1;
    for (int k = 0; k < n && !rc; k++) {
        const char *name = o->ninputs ? o->inputs[k] : "-";
        FILE *fp = strcmp(name, "-") ? fopen(name, "rb") : stdin;
        if (!fp) {
            rc = die("%s: cannot open: %s", name, strerror(errno));
            break;
        }
        char *text;
        size_t len;
        int bad = read_stream(fp, &text, &len);
        if (fp != stdin)
            fclose(fp);
        if (bad) {
            rc = die("%s: read error", name);
            break;
        }
        size_t ok = lstm_utf8_valid(text, len);
        if (ok != len) {
            free(text);
            rc = die("%s: not valid UTF-8 (byte %zu)", name, ok + 1);
            break;
        }
        int32_t L = (int32_t)lstm_encode(&vocab, text, len, ids, T);
        free(text);
        if (lstm_classifier_forward(&m, ids, &L, 1, (size_t)L, NULL, NULL, 0,
                                    NULL)) {
            rc = die("%s", lstm_errmsg());
            break;
        }
        size_t order[4096] = {0}, top = C < 4096 ? C : 4096;
        for (size_t i = 0; i < top; i++)
            order[i] = i;
        for (size_t i = 0; i < top; i++)  /* sort by probability */
            for (size_t j = i + 1; j < top; j++)
                if (m.logp[order[j]] > m.logp[order[i]]) {
                    size_t t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        if (o->json) {
            lstm_buf b = {0};
            lstm_buf_puts(&b, "{\"input\":");
            lstm_buf_json_str(&b, name, strlen(name));
            lstm_buf_puts(&b, ",\"label\":");
            lstm_buf_json_str(&b, classes[order[0]], strlen(classes[order[0]]));
            lstm_buf_puts(&b, ",\"probs\":{");
            for (size_t i = 0; i < C; i++) {
                lstm_buf_puts(&b, i ? "," : "");
                lstm_buf_json_str(&b, classes[i], strlen(classes[i]));
                lstm_buf_printf(&b, ":%.6g", (double)expf(m.logp[i]));
            }
            lstm_buf_puts(&b, "},\"logp\":[");
            for (size_t i = 0; i < C; i++)
                lstm_buf_printf(&b, "%s%.8g", i ? "," : "", (double)m.logp[i]);
            lstm_buf_puts(&b, "]}");
            puts(b.err ? "{}" : b.s);
            lstm_buf_free(&b);
        } else {
            printf("%s: %s  (", name, classes[order[0]]);
            for (size_t i = 0; i < top && i < 3; i++)
                printf("%s%s %.3f", i ? ", " : "", classes[order[i]],
                       (double)expf(m.logp[order[i]]));
            printf(")\n");
        }
    }
    free(ids);
    free_strings(classes, C);
    lstm_vocab_free(&vocab);
    lstm_classifier_free(&m);
    return rc;
}

/* ---- stats ---- */

static void show_tokens(const char *title, const lstm_vocab *v, size_t from,
                        size_t count)
{
    printf("%s\n  [", title);
    for (size_t i = from; i < from + count && i < v->n; i++)
        printf("%s'%s'", i > from ? ", " : "", v->tok[i]);
    printf("]\n");
}

static int cmd_stats(const options *o)
{
    if (!o->data)
        return usage_error("stats needs --data FILE");
    corpus c = {.max_len = 8};
    if (lstm_dataset_load(&c.ds, o->data))
        return die("%s", lstm_errmsg());
    size_t mn = SIZE_MAX, mx = 0;
    double sum = 0;
    for (size_t i = 0; i < c.ds.n; i++) {
        size_t l = lstm_utf8_len(c.ds.text[i], c.ds.text_len[i]);
        mn = l < mn ? l : mn;
        mx = l > mx ? l : mx;
        sum += (double)l;
    }
    printf("%s: %zu rows\n", o->data, c.ds.n);
    printf("shortest text: %zu characters\nlongest text: %zu characters\n"
           "mean length: %.2f characters\n", mn, mx, sum / (double)c.ds.n);
    size_t *count = calloc(c.ds.n_classes, sizeof *count);
    for (size_t i = 0; count && i < c.ds.n; i++)
        count[c.ds.label[i]]++;
    printf("\n%zu classes:\n", c.ds.n_classes);
    for (size_t k = 0; count && k < c.ds.n_classes; k++)
        printf("  %-20s %6zu  %5.1f%%\n", c.ds.classes[k], count[k],
               100.0 * (double)count[k] / (double)c.ds.n);
    free(count);
    lstm_split sp;
    int err = o->split ? lstm_split_load(&sp, o->split, c.ds.n)
                       : lstm_split_random(&sp, c.ds.n,
                                           (double[3]){0.8, 0.1, 0.1},
                                           (uint64_t)o->seed);
    if (err || lstm_vocab_build(&c.vocab, &c.ds, sp.idx[0], sp.n[0],
                                (size_t)o->vocab)) {
        if (!err)
            lstm_split_free(&sp);
        corpus_free(&c);
        return die("%s", lstm_errmsg());
    }
    size_t words = c.vocab.n - 2;
    printf("\nvocabulary: %zu tokens ([PAD], [UNK] and the %zu most frequent "
           "words of the %zu training texts", c.vocab.n, words, sp.n[0]);
    if (o->split)
        printf(" of %s)\n", o->split);
    else
        printf(", split seed %ld)\n", o->seed);
    show_tokens("first 15 tokens:", &c.vocab, 2, 15);
    show_tokens("15 tokens from the middle:", &c.vocab, 2 + words / 2, 15);
    show_tokens("last 15 tokens:", &c.vocab, c.vocab.n > 17 ? c.vocab.n - 15 : 2,
                15);
    int32_t ids[8];
    size_t n = lstm_encode(&c.vocab, "hola mundo", 10, ids, 8);
    printf("\n\"hola mundo\" (max length 8, true length %zu):\n  [", n);
    for (int i = 0; i < 8; i++)
        printf("%s%d", i ? ", " : "", ids[i]);
    printf("]\n  [");
    for (int i = 0; i < 8; i++)
        printf("%s'%s'", i ? ", " : "", c.vocab.tok[ids[i]]);
    printf("]\n");
    lstm_split_free(&sp);
    corpus_free(&c);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);  /* keep lines in order with stderr */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    options o;
    defaults(&o);
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train"))
        return cmd_train(&o);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(&o);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(&o);
    if (!strcmp(cmd, "stats"))
        return cmd_stats(&o);
    return usage_error("unknown command '%s'", cmd);
}
