/*
 * char_lm.c - a character-level language model on liblstm's public API:
 * Embedding -> 2-layer LSTM -> Dense at every step -> NLL, trained with
 * truncated backpropagation through time on any UTF-8 text, the state
 * carried from one batch to the next; then sampled one character at a time
 * with lstm_lstm_step.
 *
 *   char_lm train  --text FILE --out FILE [--steps N] [--resume] [options]
 *   char_lm sample --model FILE [--len N] [--temperature T] [--seed N]
 *                  [--prime TEXT]
 *
 * The checkpoint holds the weights, AdamW's moments and step, the alphabet
 * and the sizes; --resume continues from it at the next window of the
 * text, the carried state starting again from zeros. SIGINT or SIGTERM
 * saves the checkpoint after the step in progress and stops.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstm.h"
#include "lstm_data.h"
#include "lstm_train.h"

typedef struct {
    const char *text, *out, *model, *prime;
    long steps, seq, batch, hidden, embed, len, seed, resume, every;
    double lr, temperature;
} options;

typedef struct {
    lstm_params ps;
    lstm_embedding emb;
    lstm_lstm rnn;
    lstm_dense head;
    uint32_t alpha[1024];     /* the alphabet: code points by id */
    size_t V;
} model;

/* A failure of the program's own, and one the library explains. */
static int die(const char *what)
{
    fprintf(stderr, "char_lm: %s\n", what);
    return 1;
}

static int fail(const char *what)
{
    fprintf(stderr, "char_lm: %s: %s\n", what, lstm_errmsg());
    return 1;
}

/* The code point at s[*i] (valid UTF-8), advancing *i. */
static uint32_t next_cp(const unsigned char *s, size_t *i)
{
    uint32_t c = s[(*i)++];
    int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    c &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f : 0x7f;
    while (more--)
        c = (c << 6) | (s[(*i)++] & 0x3f);
    return c;
}

/* c as UTF-8 into dst (4 bytes of room); returns the bytes written. */
static size_t utf8_put(char *dst, uint32_t c)
{
    if (c < 0x80) {
        dst[0] = (char)c;
        return 1;
    }
    size_t n = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    for (size_t k = n - 1; k > 0; k--, c >>= 6)
        dst[k] = (char)(0x80 | (c & 0x3f));
    dst[0] = (char)((n == 2 ? 0xc0 : n == 3 ? 0xe0 : 0xf0) | c);
    return n;
}

static int32_t id_of(const model *m, uint32_t c)
{
    for (size_t k = 0; k < m->V; k++)
        if (m->alpha[k] == c)
            return (int32_t)k;
    return -1;
}

static int model_init(model *m, size_t E, size_t H)
{
    lstm_params_init(&m->ps);
    if (lstm_embedding_init(&m->emb, &m->ps, "embedding", m->V, E, -1) ||
        lstm_lstm_init(&m->rnn, &m->ps, "lstm", E, H, 2, 0.0f) ||
        lstm_dense_init(&m->head, &m->ps, "head", H, m->V) ||
        lstm_params_alloc(&m->ps))
        return fail("cannot make the model");
    return 0;
}

static void model_free(model *m)
{
    lstm_lstm_free(&m->rnn);
    lstm_params_free(&m->ps);
}

/* Reads a checkpoint's alphabet and sizes, makes the model, loads it (and
 * the optimizer when o is non-NULL). */
static int model_load(model *m, const char *path, lstm_adamw *o, long *E,
                      long *H)
{
    lstm_safetensors st;
    if (lstm_safetensors_open(&st, path))
        return fail("cannot open the checkpoint");
    const char *a = lstm_safetensors_meta(&st, "alphabet");
    const char *sz = lstm_safetensors_meta(&st, "sizes");
    int rc = !a || !sz || sscanf(sz, "%ld %ld", E, H) != 2 || *E < 1 ||
             *H < 1;
    size_t i = 0, n = a ? strlen(a) : 0;
    m->V = 0;
    while (!rc && i < n && m->V < 1024)
        m->alpha[m->V++] = next_cp((const unsigned char *)a, &i);
    if (rc || m->V == 0 || lstm_utf8_valid(a, n) != n) {
        lstm_safetensors_close(&st);
        return die("not a char_lm checkpoint (no valid alphabet and sizes)");
    }
    rc = model_init(m, (size_t)*E, (size_t)*H);
    if (!rc && o)
        rc = lstm_adamw_init(o, m->ps.n, 0, 0.9, 0.999, 1e-8, 0) ||
             lstm_adamw_load(&st, &m->ps, o);
    else if (!rc)
        rc = lstm_safetensors_load_into(&st, &m->ps, NULL, m->ps.w) != 0;
    lstm_safetensors_close(&st);
    return rc ? fail("cannot load the checkpoint") : 0;
}

static int save(const options *op, const model *m, const lstm_adamw *o)
{
    char alpha[4 * 1024 + 1], sizes[64];
    size_t n = 0;
    for (size_t k = 0; k < m->V; k++)  /* back to UTF-8 */
        n += utf8_put(alpha + n, m->alpha[k]);
    alpha[n] = '\0';
    snprintf(sizes, sizeof sizes, "%ld %ld", op->embed, op->hidden);
    const char *keys[2] = {"alphabet", "sizes"}, *vals[2] = {alpha, sizes};
    return lstm_adamw_save(op->out, &m->ps, o, keys, vals, 2)
               ? fail("cannot save") : 0;
}

static int train(const options *op)
{
    char *raw;
    size_t nraw;
    if (lstm_read_file(op->text, &raw, &nraw, (size_t)1 << 30))
        return fail("cannot read the text");
    if (lstm_utf8_valid(raw, nraw) != nraw) {
        lstm_free(raw);
        return die("the text is not valid UTF-8");
    }
    model m = {0};
    lstm_adamw opt = {0};
    long E = op->embed, H = op->hidden;
    int rc = op->resume ? model_load(&m, op->out, &opt, &E, &H) : 0;
    /* the text as ids; new characters are added unless resuming */
    int32_t *ids = malloc((nraw + 1) * sizeof *ids);
    size_t n = 0;
    for (size_t i = 0; !rc && ids && i < nraw;) {
        uint32_t c = next_cp((const unsigned char *)raw, &i);
        int32_t k = id_of(&m, c);
        if (k < 0 && (op->resume || m.V == 1024)) {
            rc = die("a character outside the checkpoint's alphabet");
            break;
        }
        if (k < 0)
            m.alpha[k = (int32_t)m.V++] = c;
        ids[n++] = k;
    }
    lstm_free(raw);
    const size_t B = (size_t)op->batch, T = (size_t)op->seq, Hs = (size_t)H;
    const size_t span = n / B;  /* each row of the batch reads its own span */
    if (!rc && (!ids || span < T + 1))
        rc = die("the text is too short for --batch x --seq");
    lstm_rng rng;
    lstm_rng_seed(&rng, (uint64_t)op->seed);
    if (!rc && !op->resume) {
        rc = model_init(&m, (size_t)E, Hs);
        if (!rc) {
            lstm_embedding_reset(&m.emb, &rng);
            lstm_lstm_reset(&m.rnn, &rng);
            lstm_dense_reset(&m.head, &rng);
            rc = lstm_adamw_init(&opt, m.ps.n, op->lr, 0.9, 0.999, 1e-8, 0);
        }
    }
    opt.lr = op->lr;
    float *x = malloc(B * T * (size_t)E * sizeof *x);
    float *logits = malloc(B * T * m.V * sizeof *logits);
    float *logp = malloc(B * T * m.V * sizeof *logp);
    float *dout = malloc(B * T * Hs * sizeof *dout);
    float *dx = malloc(B * T * (size_t)E * sizeof *dx);
    float *h = calloc(2 * B * Hs, sizeof *h), *c = calloc(2 * B * Hs, sizeof *c);
    int32_t *in = malloc(B * T * sizeof *in), *tg = malloc(B * T * sizeof *tg);
    if (!rc && (!x || !dx || !logits || !logp || !dout || !h || !c || !in || !tg))
        rc = die("out of memory");
    if (!rc && lstm_run_catch_signals("char_lm", 60))
        rc = fail("signals");
    double avg = 0;
    const size_t per = span / T;  /* windows in a span: then back to 0 */
    for (long s = 0; !rc && s < op->steps; s++) {
        const size_t w = (size_t)(opt.step % (long)per);
        if (w == 0) {  /* a new pass: fresh state */
            memset(h, 0, 2 * B * Hs * sizeof *h);
            memset(c, 0, 2 * B * Hs * sizeof *c);
        }
        for (size_t b = 0; b < B; b++)
            for (size_t t = 0; t < T; t++) {
                size_t at = b * span + w * T + t;
                in[b * T + t] = ids[at];
                tg[b * T + t] = at + 1 < n ? ids[at + 1] : -1;
            }
        float loss;
        lstm_params_zero_grad(&m.ps);
        rc = lstm_embedding_forward(&m.emb, x, in, B * T) ||
             lstm_lstm_forward(&m.rnn, x, NULL, h, c, B, T, 1, &rng);
        if (rc)
            break;
        lstm_dense_forward(&m.head, logits, m.rnn.out, B * T);
        rc = lstm_seq_nll_forward(logp, &loss, NULL, logits, tg, B * T, m.V,
                                  -1);
        lstm_seq_nll_backward(logits, logp, tg, B * T, m.V, -1);
        lstm_dense_backward(&m.head, dout, logits, m.rnn.out, B * T);
        rc = rc || lstm_lstm_backward(&m.rnn, dout, NULL, NULL, dx, NULL, NULL);
        if (rc)
            break;
        lstm_embedding_backward(&m.emb, dx, in, B * T);
        memcpy(h, m.rnn.hn, 2 * B * Hs * sizeof *h);  /* carried, detached */
        memcpy(c, m.rnn.cn, 2 * B * Hs * sizeof *c);
        lstm_params_clip_grad_norm(&m.ps, 1.0);
        if (lstm_adamw_step(&opt, m.ps.w, m.ps.g)) {
            rc = die("a gradient is not finite; try a lower --lr");
            break;
        }
        avg = s ? 0.95 * avg + 0.05 * (double)loss : (double)loss;
        const int sig = lstm_run_stop_signal();
        if (sig || (s + 1) % op->every == 0 || s + 1 == op->steps) {
            printf("step %ld  loss %.4f nats/char (smoothed %.4f)\n",
                   opt.step, (double)loss, avg);
            fflush(stdout);
            rc = save(op, &m, &opt);
        }
        if (sig && !rc) {  /* SIGINT or SIGTERM: saved, stop here */
            fprintf(stderr, "char_lm: stopped at step %ld; continue with "
                    "--resume\n", opt.step);
            rc = 128 + sig;
        }
    }
    free(x), free(dx), free(logits), free(logp), free(dout), free(h), free(c);
    free(in), free(tg), free(ids);
    lstm_adamw_free(&opt);
    model_free(&m);
    return rc;
}

static int sample(const options *op)
{
    model m = {0};
    long E, H;
    if (model_load(&m, op->model, NULL, &E, &H))
        return 1;
    lstm_stream s;
    lstm_rng rng;
    lstm_rng_seed(&rng, (uint64_t)op->seed);
    float *x = malloc((size_t)E * sizeof *x), *y = malloc((size_t)H * sizeof *y);
    float *h = calloc(2 * (size_t)H, sizeof *h), *c = calloc(2 * (size_t)H, sizeof *c);
    float *logits = malloc(m.V * sizeof *logits);
    int rc = !x || !y || !h || !c || !logits || lstm_stream_init(&s, &m.rnn, 1)
                 ? die("out of memory") : 0;
    const char *p = op->prime ? op->prime : "";
    size_t i = 0, np = strlen(p);
    int32_t cur = 0;  /* without a prime, the first character of the alphabet */
    if (!rc && lstm_utf8_valid(p, np) != np)
        rc = die("--prime is not valid UTF-8");
    for (long k = 0; !rc && k < op->len + (long)np; k++) {
        if (i < np) {  /* feed the prime, then the model's own characters */
            uint32_t cp = next_cp((const unsigned char *)p, &i);
            if ((cur = id_of(&m, cp)) < 0) {
                rc = die("--prime has a character the model never saw");
                break;
            }
        }
        char ch[4];
        fwrite(ch, 1, utf8_put(ch, m.alpha[cur]), stdout);
        if (lstm_embedding_forward(&m.emb, x, &cur, 1) ||
            lstm_lstm_step(&s, x, h, c, y, 1)) {
            rc = fail("step failed");
            break;
        }
        lstm_dense_forward(&m.head, logits, y, 1);
        if (i >= np)
            cur = (int32_t)lstm_sample(logits, m.V, (float)op->temperature,
                                       &rng);
    }
    putchar('\n');
    lstm_stream_free(&s);
    free(x), free(y), free(h), free(c), free(logits);
    model_free(&m);
    return rc;
}

#define O(f) offsetof(options, f)
static const lstm_opt flags[] = {
    {"--text", NULL, 's', O(text), 0, 0, NULL, 0},
    {"--out", NULL, 's', O(out), 0, 0, NULL, 0},
    {"--model", NULL, 's', O(model), 0, 0, NULL, 0},
    {"--prime", NULL, 's', O(prime), 0, 0, NULL, 0},
    {"--steps", NULL, 'l', O(steps), 1, 1e9, NULL, 0},
    {"--seq", NULL, 'l', O(seq), 1, 1e6, NULL, 0},
    {"--batch", NULL, 'l', O(batch), 1, 65536, NULL, 0},
    {"--hidden", NULL, 'l', O(hidden), 1, 65536, NULL, 0},
    {"--embed", NULL, 'l', O(embed), 1, 65536, NULL, 0},
    {"--len", NULL, 'l', O(len), 1, 1e9, NULL, 0},
    {"--seed", NULL, 'l', O(seed), 0, 0x7fffffffL, NULL, 0},
    {"--every", NULL, 'l', O(every), 1, 1e9, NULL, 0},
    {"--resume", NULL, 'b', O(resume), 0, 1, NULL, 0},
    {"--lr", NULL, 'd', O(lr), 0, 10, NULL, 0},
    {"--temperature", NULL, 'd', O(temperature), 0, 100, NULL, 0},
};

static int run(int argc, char **argv)
{
    options o = {NULL, "char_lm.safetensors", "char_lm.safetensors", NULL,
                 1000, 64, 16, 128, 32, 300, 1, 0, 100, 3e-3, 0.8};
    lstm_opts op = {flags, sizeof flags / sizeof *flags, &o, {0}, NULL, 0};
    const char *cmd = argc > 1 ? argv[1] : "";
    int rc = argc < 2 || !strcmp(cmd, "--help") ? 1
             : lstm_opts_parse(&op, argc, argv, 2);
    if (rc < 0) {
        fprintf(stderr, "char_lm: %s\n", lstm_errmsg());
        return 2;
    }
    if (!rc && op.ninputs == 0 && !strcmp(cmd, "train") && o.text)
        return train(&o);
    if (!rc && op.ninputs == 0 && !strcmp(cmd, "sample"))
        return sample(&o);
    fprintf(rc == 1 && argc > 1 ? stdout : stderr,
            "usage: char_lm train --text FILE [--out FILE] [--steps N] "
            "[--seq N] [--batch N]\n                     [--hidden N] [--embed N] "
            "[--lr X] [--seed N] [--every N] [--resume]\n       char_lm sample "
            "[--model FILE] [--len N] [--temperature T] [--seed N] [--prime TEXT]\n");
    return rc == 1 && argc > 1 ? 0 : 2;
}

int main(int argc, char **argv)
{
    /* a closed standard descriptor would be taken by the first file opened */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) == -1 &&
            open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd)
            return 1;
    int rc = run(argc, argv);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        fprintf(stderr, "char_lm: standard output: write error\n");
        rc = 1;
    }
    return rc;
}
