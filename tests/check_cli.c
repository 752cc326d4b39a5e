/*
 * check_cli.c - examples/news_classifier as a user meets it: bad input gets
 * one clear line and a non-zero exit, never a crash; and an end-to-end run
 * on a corpus this test generates learns well above chance, and the saved
 * model, reloaded, predicts exactly what the trained one did.
 */
#define _GNU_SOURCE  /* mkdtemp */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lstm_data.h"
#include "testutil.h"

/* The program under test: $LSTM_CLI (set by the Makefile for each build
 * variant) or the release build. */
static const char *bin(void)
{
    const char *b = getenv("LSTM_CLI");
    return b && *b ? b : "examples/news_classifier";
}

static char dir[] = "/tmp/lstm_cli_XXXXXX";
static char out[1 << 16], err[1 << 12];

static void setup(void) { ck_assert(mkdtemp(dir) != NULL); }

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert(system(cmd) == 0);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(buf, 1, cap - 1, fp) : 0;
    buf[n] = '\0';
    if (fp)
        fclose(fp);
}

/* news_classifier built with MPI=1 ($LSTM_MPI_CLI), or NULL. */
static const char *mpi_bin(void)
{
    const char *b = getenv("LSTM_MPI_CLI");
    return b && *b ? b : NULL;
}

/* Runs "shell-prefix program arguments" (the MPI build behind an mpirun
 * prefix); returns the exit status and leaves stdout and stderr in out and
 * err. */
static int vrun(const char *prefix, const char *fmt, va_list ap)
{
    char args[2048], cmd[4096], po[256], pe[256];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(po, sizeof po, "%s/stdout", dir);
    snprintf(pe, sizeof pe, "%s/stderr", dir);
    snprintf(cmd, sizeof cmd, "%s %s %s > %s 2> %s < /dev/null", prefix,
             strstr(prefix, "mpirun") ? mpi_bin() : bin(), args, po, pe);
    int st = system(cmd);
    slurp(po, out, sizeof out);
    slurp(pe, err, sizeof err);
    ck_assert_msg(WIFEXITED(st), "%s: killed by a signal", args);
    return WEXITSTATUS(st);
}

/* The program with the arguments (a printf format). */
static int run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int st = vrun("", fmt, ap);
    va_end(ap);
    return st;
}

/* The same behind a shell prefix such as "ulimit -f 64;". */
static int run_after(const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int st = vrun(prefix, fmt, ap);
    va_end(ap);
    return st;
}

static const char *path_in(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_text(const char *name, const char *s)
{
    FILE *fp = fopen(path_in(name), "wb");
    ck_assert(fp && fputs(s, fp) >= 0 && fclose(fp) == 0);
}

/* The command fails with status want_status and one line on stderr that
 * contains want. */
#define FAILS(want_status, want, ...) FAILS_AFTER("", want_status, want, __VA_ARGS__)
#define FAILS_AFTER(prefix, want_status, want, ...)                          \
    do {                                                                     \
        int st_ = run_after(prefix, __VA_ARGS__);                            \
        ck_assert_msg(st_ == (want_status), "exit %d, expected %d; stderr: %s",\
                      st_, (want_status), err);                              \
        ck_assert_msg(strstr(err, (want)) != NULL, "stderr '%s' lacks '%s'",  \
                      err, (want));                                          \
        char *nl_ = strchr(err, '\n');                                       \
        ck_assert_msg(nl_ && nl_[1] == '\0', "not one line: '%s'", err);     \
    } while (0)

START_TEST(cli_bad_input)
{
    FAILS(2, "unknown command 'fly'", "fly");
    FAILS(2, "unknown flag --bogus", "train --data x.csv --bogus 1");
    FAILS(2, "bad value for --epochs: 'abc'", "train --data x.csv --epochs abc");
    FAILS(2, "bad value for --dropout: '1.5'", "train --data x.csv --dropout 1.5");
    FAILS(2, "bad value for --pool: 'median'", "train --data x.csv --pool median");
    FAILS(2, "--lr needs a value", "train --data x.csv --lr");
    FAILS(2, "train needs --data FILE", "train");
    FAILS(1, "nope.csv: cannot open", "train --data %s --out %s",
          path_in("nope.csv"), path_in("o"));
    write_text("bad.csv.gz", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03junk");
    FAILS(1, "bad.csv.gz: line 1: cannot read", "stats --data %s",
          path_in("bad.csv.gz"));
    write_text("quote.csv", "text,category\n\"open,sport\n");
    FAILS(1, "quote.csv: line 2: unterminated quoted field", "stats --data %s",
          path_in("quote.csv"));
    write_text("cols.csv", "text,category\na,b,c\n");
    FAILS(1, "cols.csv: line 2: 3 fields, the header has 2", "stats --data %s",
          path_in("cols.csv"));
    write_text("nocat.csv", "text,label\na,b\n");
    FAILS(1, "no 'category' column", "train --data %s --out %s",
          path_in("nocat.csv"), path_in("o"));
    write_text("empty.csv", "");
    FAILS(1, "empty.csv: empty file", "stats --data %s", path_in("empty.csv"));
    write_text("utf8.csv", "text,category\n\xff\xfe,sport\n");
    FAILS(1, "utf8.csv: line 2: field 'text' is not valid UTF-8",
          "stats --data %s", path_in("utf8.csv"));
    write_text("garbage.safetensors", "this is not a checkpoint at all");
    FAILS(1, "garbage.safetensors: not a valid safetensors file",
          "predict --model %s", path_in("garbage.safetensors"));
    FAILS(1, "missing.safetensors: cannot open", "predict --model %s",
          path_in("missing.safetensors"));
    FAILS(2, "predict needs --model FILE", "predict");
}
END_TEST

/* A corpus of three topics whose words differ, with shared filler. */
static void make_corpus(const char *name, size_t rows, uint64_t seed)
{
    static const char *topic[3][6] = {
        {"gol", "partido", "equipo", "liga", "árbitro", "estadio"},
        {"congreso", "votación", "partido", "senado", "ley", "gobierno"},
        {"células", "laboratorio", "genes", "planeta", "energía", "datos"}};
    static const char *filler[6] = {"el", "de", "la", "que", "en", "una"};
    static const char *names[3] = {"sport", "politics", "science"};
    lstm_rng r;
    lstm_rng_seed(&r, seed);
    FILE *fp = fopen(path_in(name), "wb");
    fprintf(fp, "language,category,newspaper,hash,text\n");
    for (size_t i = 0; i < rows; i++) {
        size_t c = lstm_rng_below(&r, 3), n = 8 + lstm_rng_below(&r, 20);
        fprintf(fp, "es,%s,test,%zu,\"", names[c], i);
        for (size_t k = 0; k < n; k++) {
            int own = lstm_rng_uniform(&r) < 0.35;
            fprintf(fp, "%s%s", k ? " " : "",
                    own ? topic[c][lstm_rng_below(&r, 6)]
                        : filler[lstm_rng_below(&r, 6)]);
        }
        fprintf(fp, "\"\n");
    }
    fclose(fp);
}

static double number_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    ck_assert_msg(p != NULL, "'%s' not in output", key);
    return atof(p + strlen(key));
}

START_TEST(cli_end_to_end)
{
    make_corpus("news.csv", 300, 7);
    const char *small = "--embed-dim 16 --hidden 16 --max-len 32 --batch-size 8 "
                        "--lr 0.01 --epochs 6 --pool mean --seed 3 --threads 2";
    ck_assert_int_eq(run("stats --data %s", path_in("news.csv")), 0);
    ck_assert(strstr(out, "300 rows") && strstr(out, "3 classes:"));
    int st = run("train --data %s --out %s %s", path_in("news.csv"),
                 path_in("run"), small);
    ck_assert_msg(st == 0, "train failed: %s", err);
    double acc = number_after(out, "test accuracy ");
    ck_assert_msg(acc > 0.8, "test accuracy %.3f, chance is 0.33", acc);
    char train_tables[8192];
    const char *t = strstr(out, "first 15 test predictions");
    ck_assert(t != NULL);
    snprintf(train_tables, sizeof train_tables, "%s", t);
    *strstr(train_tables, "\nsaved ") = '\0';
    /* every artefact is there */
    const char *files[] = {"run/model.safetensors", "run/metrics.csv",
                           "run/predictions.csv", "run/split.json"};
    for (size_t i = 0; i < 4; i++) {
        FILE *fp = fopen(path_in(files[i]), "rb");
        ck_assert_msg(fp != NULL, "%s missing", files[i]);
        fclose(fp);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s/run/tb_logs/LSTMClassifier/version_0/"
             "events.out.tfevents.* > /dev/null", dir);
    ck_assert(system(cmd) == 0);
    /* the reloaded model gives the same test predictions */
    st = run("eval --model %s --data %s --split %s", path_in("run/model.safetensors"),
             path_in("news.csv"), path_in("run/split.json"));
    ck_assert_msg(st == 0, "eval failed: %s", err);
    ck_assert(fabs(number_after(out, "accuracy ") - acc) < 1e-9);
    t = strstr(out, "first 15 test predictions");
    ck_assert(t && strncmp(t, train_tables, strlen(train_tables)) == 0);
    /* predict: plain and JSON, a file and stdin-less inputs */
    write_text("a.txt", "el gol del equipo en el estadio de la liga");
    write_text("b.txt", "el senado aprueba la ley del gobierno");
    st = run("predict --model %s --json %s %s", path_in("run/model.safetensors"),
             path_in("a.txt"), path_in("b.txt"));
    ck_assert_msg(st == 0, "predict failed: %s", err);
    ck_assert(strstr(out, "\"label\":\"sport\"") != NULL);
    ck_assert(strstr(out, "\"label\":\"politics\"") != NULL);
    lstm_json j;
    ck_assert_int_eq(lstm_json_parse(&j, out, strcspn(out, "\n")), 0);
    ck_assert(lstm_json_get(lstm_json_get(&j, "probs"), "science") != NULL);
    lstm_json_free(&j);
    /* the same training run again gives the same bits */
    st = run("train --data %s --out %s %s", path_in("news.csv"),
             path_in("run2"), small);
    ck_assert(st == 0);
    snprintf(cmd, sizeof cmd, "cmp -s %s/run/model.safetensors "
             "%s/run2/model.safetensors", dir, dir);
    ck_assert_msg(system(cmd) == 0, "same seed, different weights");
}
END_TEST

START_TEST(cli_checkpoint_disagrees)
{
    /* a checkpoint whose tensors do not match its own metadata */
    lstm_classifier_config cfg = {10, 4, 3, 1, 2, {5, 4}, 2, 0.0f, 0, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    lstm_classifier m;
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    const char *keys[3] = {"vocab", "classes", "config"};
    const char *vals[3] = {
        "[\"[PAD]\",\"[UNK]\",\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"]",
        "[\"x\",\"y\"]",
        "{\"vocab_size\":10,\"embed_dim\":4,\"hidden\":7,\"layers\":1,"
        "\"mlp\":[5,4],\"max_len\":8,\"dropout\":0}"};
    ck_assert_int_eq(lstm_safetensors_save(path_in("m.safetensors"), &m.ps,
                                           keys, vals, 3), 0);
    lstm_classifier_free(&m);
    FAILS(1, "the metadata config describes 478 parameters, the file holds "
          "202", "predict --model %s", path_in("m.safetensors"));
    /* and a truncated one */
    char buf[4096];
    FILE *fp = fopen(path_in("m.safetensors"), "rb");
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    fp = fopen(path_in("cut.safetensors"), "wb");
    fwrite(buf, 1, n / 2, fp);
    fclose(fp);
    FAILS(1, "cut.safetensors: not a valid safetensors file", "predict --model %s",
          path_in("cut.safetensors"));
}
END_TEST


/* ---- resume ---- */

static int same_file(const char *a, const char *b)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    return system(cmd) == 0;
}

/* metrics.csv without its two timing columns. */
static void metrics_no_times(const char *path, char *buf, size_t cap)
{
    char raw[8192], *line, *save = NULL;
    size_t n = 0;
    slurp(path, raw, sizeof raw);
    buf[0] = '\0';
    for (line = strtok_r(raw, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *c = line;
        for (int k = 0; k < 5 && c; k++)
            c = strchr(c + 1, ',');
        if (c)
            *c = '\0';
        n += (size_t)snprintf(buf + n, cap - n, "%s\n", line);
    }
}

/* A number from the "state" metadata of a training state file. */
static double state_field(const char *path, const char *key)
{
    lstm_safetensors st;
    ck_assert_msg(lstm_safetensors_open(&st, path) == 0, "%s", lstm_errmsg());
    const char *s = lstm_safetensors_meta(&st, "state");
    ck_assert(s != NULL);
    lstm_json j;
    ck_assert_int_eq(lstm_json_parse(&j, s, strlen(s)), 0);
    const lstm_json *v = lstm_json_get(&j, key);
    ck_assert_msg(v && v->type == LSTM_JSON_NUM, "no %s in the state", key);
    double x = v->num;
    lstm_json_free(&j);
    lstm_safetensors_close(&st);
    return x;
}

/* Starts the program in the background; its pid. */
static pid_t spawn(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s %s > %s/bg.out 2> %s/bg.err < /dev/null",
             bin(), args, dir, dir);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void wait_for_file(const char *path, pid_t pid)
{
    struct stat sb;
    for (long ms = 0; stat(path, &sb) != 0; ms += 2) {
        int status;
        ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0,
                      "the run ended before %s appeared", path);
        ck_assert_msg(ms < 1800000, "%s did not appear", path);
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
}

static const char *resume_opts =
    "--embed-dim 16 --hidden 16 --max-len 32 --batch-size 4 --epochs 4 "
    "--monitor val-loss --patience 9 --seed 5 --threads 2 --dropout 0.3";

/* Kills a run of resume_opts into OUT with SIG, DELAY seconds after its
 * first epoch ended; 1 if the kill landed inside epoch 2 (for SIGTERM:
 * after its first step, so the state is saved mid-epoch), 0 if it came too
 * early or too late. */
static int kill_in_epoch2(const char *to, int sig, double delay)
{
    char args[1024], cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", path_in(to));
    ck_assert(system(cmd) == 0);
    snprintf(args, sizeof args, "train --data %s --out %s %s",
             path_in("news.csv"), path_in(to), resume_opts);
    char model[64], state[64];
    snprintf(model, sizeof model, "%.20s/model.safetensors", to);
    snprintf(state, sizeof state, "%.20s/train_state.safetensors", to);
    pid_t pid = spawn(args);
    wait_for_file(path_in(model), pid);  /* epoch 1 is over */
    const long ns = (long)(delay * 1e9);
    nanosleep(&(struct timespec){ns / 1000000000, ns % 1000000000}, NULL);
    ck_assert(kill(pid, sig) == 0);
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    if (sig == SIGKILL) {
        if (!WIFSIGNALED(status))
            return 0;  /* the run was over before the kill */
        ck_assert_int_eq(WTERMSIG(status), SIGKILL);
        return state_field(path_in(state), "epoch") == 2;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    slurp(path_in("bg.err"), err, sizeof err);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 143,
                  "status %d, stderr %s", status, err);
    ck_assert_msg(strstr(err, "continue with: news_classifier train "
                              "--resume") != NULL, "%s", err);
    return state_field(path_in(state), "epoch") == 2 &&
           state_field(path_in(state), "step") > 0;
}

/* A run stopped during its second epoch, by SIGKILL (the state of the
 * end of epoch 1 remains) or by SIGTERM (the state of that very step is
 * saved), then resumed, ends with the same bits as one never stopped.
 * Where the kill lands depends on the scheduler, so a kill that misses
 * epoch 2 is tried again with another delay. */
START_TEST(cli_resume_bit_identical)
{
    const int sig = _i ? SIGTERM : SIGKILL;
    make_corpus("news.csv", 1200, 11);
    int st = run("train --data %s --out %s %s", path_in("news.csv"),
                 path_in("a"), resume_opts);
    ck_assert_msg(st == 0, "train failed: %s", err);
    /* how long the second epoch took, from metrics.csv */
    char csv[4096];
    slurp(path_in("a/metrics.csv"), csv, sizeof csv);
    const char *l3 = strchr(strchr(csv, '\n') + 1, '\n') + 1, *c = l3;
    for (int k = 0; k < 5; k++)
        c = strchr(c, ',') + 1;
    const double secs = atof(c);
    ck_assert(secs > 0);
    static const double frac[] = {0.3, 0.1, 0.5, 0.03, 0.7, 0};
    int hit = 0;
    for (size_t k = 0; !hit && k < sizeof frac / sizeof *frac; k++)
        hit = kill_in_epoch2("b", sig, frac[k] * secs);
    ck_assert_msg(hit, "no kill landed inside epoch 2 (%.3f s long)", secs);
    st = run("train --resume %s", path_in("b"));
    ck_assert_msg(st == 0, "resume failed: %s", err);
    ck_assert(strstr(out, "resumed ") != NULL);
    ck_assert_msg(same_file(path_in("a/model.safetensors"),
                            path_in("b/model.safetensors")),
                  "a resumed run ended with other weights");
    char ma[4096], mb[4096];
    metrics_no_times(path_in("a/metrics.csv"), ma, sizeof ma);
    metrics_no_times(path_in("b/metrics.csv"), mb, sizeof mb);
    ck_assert_str_eq(ma, mb);
}
END_TEST

/* bf16-mixed training learns as well, is recorded in the checkpoint and the
 * training state, and is in effect (other weights than fp32's). */
START_TEST(cli_bf16_mixed)
{
    make_corpus("news.csv", 300, 7);
    const char *small = "--embed-dim 16 --hidden 16 --max-len 32 --batch-size 8 "
                        "--lr 0.01 --pool mean --seed 3 --threads 2";
    FAILS(2, "bad value for --precision: 'fp16' (fp32 or bf16-mixed)",
          "train --data %s --precision fp16", path_in("news.csv"));
    int st = run("train --data %s --out %s %s --epochs 5 --precision bf16-mixed",
                 path_in("news.csv"), path_in("b"), small);
    ck_assert_msg(st == 0, "train failed: %s", err);
    ck_assert(strstr(out, "parameters; bf16-mixed, ") != NULL);
    double acc = number_after(out, "test accuracy ");
    ck_assert_msg(acc > 0.8, "bf16-mixed test accuracy %.3f", acc);
    /* eval takes the checkpoint's precision, or the one it is given */
    st = run("eval --model %s --data %s --split %s",
             path_in("b/model.safetensors"), path_in("news.csv"),
             path_in("b/split.json"));
    ck_assert_msg(st == 0, "eval failed: %s", err);
    ck_assert(fabs(number_after(out, "accuracy ") - acc) < 1e-9);
    st = run("eval --model %s --data %s --split %s --precision fp32",
             path_in("b/model.safetensors"), path_in("news.csv"),
             path_in("b/split.json"));
    ck_assert_msg(st == 0, "eval failed: %s", err);
    ck_assert(fabs(number_after(out, "accuracy ") - acc) < 0.1);
    /* the same run in fp32 ends with other weights */
    st = run("train --data %s --out %s %s --epochs 5", path_in("news.csv"),
             path_in("f"), small);
    ck_assert_msg(st == 0, "train failed: %s", err);
    ck_assert(!same_file(path_in("b/model.safetensors"),
                         path_in("f/model.safetensors")));
    /* resuming keeps it, and refuses to change it */
    FAILS(2, "--resume continues the saved run with its own options; "
             "--precision", "train --resume %s --precision fp32", path_in("b"));
    st = run("train --resume %s --epochs 6", path_in("b"));
    ck_assert_msg(st == 0, "resume failed: %s", err);
    ck_assert(strstr(out, "parameters; bf16-mixed, ") != NULL);
}
END_TEST

START_TEST(cli_resume_errors)
{
    make_corpus("news.csv", 120, 12);
    FAILS(2, "--resume continues the saved run with its own options; --hidden",
          "train --resume %s --hidden 8", path_in("r"));
    FAILS(1, "is ", "train --resume %s", path_in("nothing-here"));
    ck_assert(strstr(err, "the --out of a training run?") != NULL);
    int st = run("train --data %s --out %s %s --epochs 1", path_in("news.csv"),
                 path_in("r"), resume_opts);
    ck_assert_msg(st == 0, "train failed: %s", err);
    /* a non-finite loss in epoch 2 leaves epoch 1's files as they were */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp %s/r/train_state.safetensors %s/state.bak && "
             "cp %s/r/model.safetensors %s/model.bak", dir, dir, dir, dir);
    ck_assert(system(cmd) == 0);
    st = run("train --resume %s --epochs 2 --lr 1e30", path_in("r"));
    ck_assert_int_eq(st, 1);  /* stderr also holds progress lines */
    ck_assert_msg(strstr(err, "try a lower --lr (now 1e+30)") &&
                  strstr(err, "epoch 2 step ") && strstr(err, "gradient of ") &&
                  strstr(err, "train_state.safetensors holds the last good "
                              "state"), "%s", err);
    ck_assert(same_file(path_in("r/train_state.safetensors"),
                        path_in("state.bak")));
    ck_assert(same_file(path_in("r/model.safetensors"), path_in("model.bak")));
    /* other data under the same name */
    make_corpus("news.csv", 120, 13);
    FAILS(1, "the data differ from the run's", "train --resume %s --epochs 2",
          path_in("r"));
    /* a damaged state file */
    write_text("r/train_state.safetensors", "garbage");
    FAILS(1, "train_state.safetensors: not a valid safetensors file",
          "train --resume %s", path_in("r"));
}
END_TEST

/* ---- limits ---- */

START_TEST(cli_limits)
{
    make_corpus("news.csv", 120, 14);
    const char *tiny = "--embed-dim 4 --hidden 4 --epochs 1 --threads 2";
    FAILS(2, "bad value for --vocab-size: '1' (2 or more", "train --data %s "
          "--vocab-size 1", path_in("news.csv"));
    FAILS(1, "training needs about", "train --data %s --out %s --max-memory 1M "
          "%s", path_in("news.csv"), path_in("o"), tiny);
    ck_assert(strstr(err, "more than the 1 MiB --max-memory allows") != NULL);
    FAILS_AFTER("ulimit -f 64;", 1, "the file size limit (ulimit -f) is",
                "train --data %s --out %s %s", path_in("news.csv"),
                path_in("o"), tiny);
    FAILS(1, "cannot create the folder", "train --data %s --out %s/sub %s",
          path_in("news.csv"), path_in("news.csv"), tiny);
    /* batch 1, max length 1, the smallest and a huge vocabulary */
    const char *works[] = {"--batch-size 1", "--max-len 1", "--vocab-size 2",
                           "--vocab-size 10000000"};
    for (size_t i = 0; i < sizeof works / sizeof *works; i++) {
        int st = run("train --data %s --out %s %s %s", path_in("news.csv"),
                     path_in("o"), tiny, works[i]);
        ck_assert_msg(st == 0, "%s: %s", works[i], err);
        ck_assert(strstr(out, "test accuracy") != NULL);
    }
    /* a 12,000-word text at --max-len 10000, and a class with one example
     * that the split leaves out of training */
    FILE *fp = fopen(path_in("news.csv"), "ab");
    fprintf(fp, "es,rare,test,x,\"");
    for (int k = 0; k < 12000; k++)
        fprintf(fp, "%sgol", k ? " " : "");
    fprintf(fp, "\"\n");
    fclose(fp);
    lstm_split sp = {{NULL}, {0}};
    size_t tr[100], va[10], te[11];
    for (size_t i = 0; i < 100; i++)
        tr[i] = i;
    for (size_t i = 0; i < 10; i++)
        va[i] = 100 + i;
    for (size_t i = 0; i < 11; i++)
        te[i] = 110 + i;  /* row 120, the rare one, is tested on */
    sp.idx[0] = tr, sp.idx[1] = va, sp.idx[2] = te;
    sp.n[0] = 100, sp.n[1] = 10, sp.n[2] = 11;
    ck_assert_int_eq(lstm_split_save(&sp, path_in("split.json")), 0);
    int st = run("train --data %s --out %s --split %s --max-len 10000 %s",
                 path_in("news.csv"), path_in("o"), path_in("split.json"),
                 tiny);
    ck_assert_msg(st == 0, "%s", err);
    ck_assert_msg(strstr(err, "warning: class 'rare' has no training example"),
                  "%s", err);
    ck_assert(strstr(out, "4 classes") && strstr(out, "test accuracy"));
}
END_TEST

/* Trains into OUT with opts (3 epochs; its model line shows `shown`),
 * learns, and eval and predict reload the model, and --resume keeps it;
 * the model loaded into *m for the caller's checks (lstm_model_free). */
static void train_reload_resume(const char *opts, const char *to,
                                const char *shown, lstm_model *m)
{
    char model[64], split[64];
    snprintf(model, sizeof model, "%.20s/model.safetensors", to);
    snprintf(split, sizeof split, "%.20s/split.json", to);
    make_corpus("news.csv", 300, 7);
    int st = run("train --data %s --out %s --epochs 3 %s", path_in("news.csv"),
                 path_in(to), opts);
    ck_assert_msg(st == 0, "train failed: %s", err);
    ck_assert_msg(strstr(out, shown) != NULL, "%s", out);
    double acc = number_after(out, "test accuracy ");
    ck_assert_msg(acc > 0.8, "test accuracy %.3f", acc);
    ck_assert_int_eq(lstm_model_load(m, path_in(model)), 0);
    st = run("eval --model %s --data %s --split %s", path_in(model),
             path_in("news.csv"), path_in(split));
    ck_assert_msg(st == 0, "eval failed: %s", err);
    ck_assert(fabs(number_after(out, "accuracy ") - acc) < 1e-9);
    write_text("a.txt", "el gol del equipo en el estadio de la liga");
    st = run("predict --model %s %s", path_in(model), path_in("a.txt"));
    ck_assert_msg(st == 0 && strstr(out, ": sport"), "%s %s", out, err);
    st = run("train --resume %s --epochs 4", path_in(to));
    ck_assert_msg(st == 0 && strstr(out, shown), "%s", err);
}

static const char *small_opts =
    "--embed-dim 16 --hidden 16 --max-len 32 --batch-size 8 --lr 0.01 "
    "--seed 3 --threads 2";

/* A bidirectional model: trains, learns, is saved as such, and eval and
 * predict reload it (and --resume keeps it). */
START_TEST(cli_bidirectional)
{
    char o[256];
    snprintf(o, sizeof o, "%s --pool max --bidirectional", small_opts);
    lstm_model m;
    train_reload_resume(o, "bi", "bidirectional LSTM 2x16", &m);
    ck_assert(m.net.cfg.bidirectional && m.net.rnn.D == 2);
    ck_assert(lstm_params_find(&m.net.ps, "lstm.lstm.weight_hh_l1_reverse"));
    lstm_model_free(&m);
}
END_TEST

/* --cell gru: trains and is recorded (the checkpoint, the run's options),
 * eval, predict and --resume take it, and bf16-mixed is refused. */
START_TEST(cli_gru)
{
    char o[256];
    snprintf(o, sizeof o, "%s --pool mean --cell gru", small_opts);
    lstm_model m;
    train_reload_resume(o, "g", " GRU 2x16", &m);
    ck_assert(m.net.cfg.cell == LSTM_CELL_GRU &&
              m.net.rnn.cell == LSTM_CELL_GRU);
    const lstm_param *p = lstm_params_find(&m.net.ps,
                                           "lstm.lstm.weight_hh_l1");
    ck_assert(p && p->shape[0] == 3 * 16 && p->shape[1] == 16);
    lstm_model_free(&m);
    FAILS(2, "bad value for --cell: 'rnn' (lstm or gru)",
          "train --data %s --cell rnn", path_in("news.csv"));
    int st = run("train --data %s --out %s %s --precision bf16-mixed",
                 path_in("news.csv"), path_in("g16"), o);
    ck_assert_msg(st != 0 && strstr(err, "fp32 only"), "%d %s", st, err);
}
END_TEST

/* ---- under mpirun (news_classifier built with MPI=1) ---- */

#define MPIRUN(np)                                                           \
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "             \
    "OMPI_MCA_rmaps_base_oversubscribe=1 mpirun --oversubscribe -np " #np

static int mpi_missing(void)
{
    static int said;
    if (!mpi_bin() && !said++)
        printf("cli: no MPI build of news_classifier given (LSTM_MPI_CLI; "
               "make test builds one where Open MPI is installed): the MPI "
               "tests are skipped here\n");
    return !mpi_bin();
}

/* The largest |a - b| over the weights of two model files. */
static double max_weight_diff(const char *a, const char *b)
{
    lstm_model ma, mb;
    ck_assert_int_eq(lstm_model_load(&ma, a), 0);
    ck_assert_int_eq(lstm_model_load(&mb, b), 0);
    ck_assert_uint_eq(ma.net.ps.n, mb.net.ps.n);
    double worst = 0;
    for (size_t i = 0; i < ma.net.ps.n; i++)
        worst = fmax(worst, fabs((double)(ma.net.ps.w[i] - mb.net.ps.w[i])));
    lstm_model_free(&ma);
    lstm_model_free(&mb);
    return worst;
}

static const char *mpi_opts =
    "--embed-dim 16 --hidden 16 --max-len 32 --batch-size 8 --epochs 3 "
    "--dropout 0 --seed 3 --threads 1 --monitor val-acc";

/* 2 processes at batch 8 end with the weights of one process at batch 8
 * to 1e-4 (the sums' order differs: measured 8e-7 after 90 steps), the
 * same test accuracy, and the same bits when run again; rank 0 alone
 * reports and writes. */
START_TEST(mpi_matches_one_process)
{
    if (mpi_missing())
        return;
    make_corpus("news.csv", 300, 7);
    int st = run_after(MPIRUN(1), "train --data %s --out %s %s",
                       path_in("news.csv"), path_in("one"), mpi_opts);
    ck_assert_msg(st == 0, "1 process: %s", err);
    const double acc1 = number_after(out, "test accuracy ");
    st = run_after(MPIRUN(2), "train --data %s --out %s %s",
                   path_in("news.csv"), path_in("two"), mpi_opts);
    ck_assert_msg(st == 0, "2 processes: %s", err);
    ck_assert_msg(strstr(out, "gradient sums across 2 processes") != NULL,
                  "%s", out);
    const char *first = strstr(out, "test accuracy ");
    ck_assert(first && !strstr(first + 1, "test accuracy "));  /* rank 0 */
    ck_assert(fabs(number_after(out, "test accuracy ") - acc1) < 1e-9);
    const double d = max_weight_diff(path_in("one/model.safetensors"),
                                     path_in("two/model.safetensors"));
    ck_assert_msg(d < 1e-4, "2 processes vs 1: weights %g apart", d);
    st = run_after(MPIRUN(2), "train --data %s --out %s %s",
                   path_in("news.csv"), path_in("again"), mpi_opts);
    ck_assert_msg(st == 0, "%s", err);
    ck_assert(same_file(path_in("two/model.safetensors"),
                        path_in("again/model.safetensors")));
}
END_TEST

/* 3 processes at batch 2 (one of them without rows at every step), with
 * a wide table beside the embedding: the sums carry only the tables' rows
 * some process used; the weights those of one process to 1e-4. */
START_TEST(mpi_rows_union)
{
    if (mpi_missing())
        return;
    make_corpus("news3.csv", 120, 11);
    static const char *opts =
        "--embed-dim 8 --hidden 8 --max-len 24 --batch-size 2 --epochs 2 "
        "--dropout 0 --seed 5 --threads 1 --wide 0.5 --monitor train-loss";
    int st = run_after(MPIRUN(1), "train --data %s --out %s %s",
                       path_in("news3.csv"), path_in("u1"), opts);
    ck_assert_msg(st == 0, "1 process: %s", err);
    st = run_after(MPIRUN(3), "train --data %s --out %s %s",
                   path_in("news3.csv"), path_in("u3"), opts);
    ck_assert_msg(st == 0, "3 processes: %s", err);
    ck_assert_msg(strstr(out, "gradient sums across 3 processes") != NULL,
                  "%s", out);
    const double d = max_weight_diff(path_in("u1/model.safetensors"),
                                     path_in("u3/model.safetensors"));
    ck_assert_msg(d < 1e-4, "3 processes vs 1: weights %g apart", d);
}
END_TEST

/* The pid of the process of the MPI job whose environment has
 * OMPI_COMM_WORLD_RANK=rank and whose command line names out, or -1. */
static pid_t rank_pid(int rank, const char *outdir)
{
    char want[64], path[64], buf[1 << 15];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *d = opendir("/proc");
    pid_t found = -1;
    for (struct dirent *e; d && found < 0 && (e = readdir(d)) != NULL;) {
        const pid_t pid = (pid_t)atol(e->d_name);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        FILE *fp = fopen(path, "rb");
        size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
        if (fp)
            fclose(fp);
        for (size_t i = 0; i < n; i++)  /* arguments are NUL-separated */
            buf[i] = buf[i] ? buf[i] : ' ';
        buf[n] = '\0';
        if (!strstr(buf, outdir) || !strstr(buf, "news_classifier") ||
            strstr(buf, "mpirun"))
            continue;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        fp = fopen(path, "rb");
        n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
        if (fp)
            fclose(fp);
        for (size_t i = 0; i < n;) {
            if (!strcmp(buf + i, want))
                found = pid;
            i += strlen(buf + i) + 1;
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* A process killed in the middle of a run ends the job (no hang); the
 * state saved before is intact, and the run resumes on as many processes
 * (on another number it is refused, naming it). */
START_TEST(mpi_killed_rank)
{
    if (mpi_missing())
        return;
    make_corpus("news.csv", 1200, 11);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, MPIRUN(2) " %s train --data %s --out %s %s "
             "--epochs 6 > %s 2> %s < /dev/null", mpi_bin(),
             path_in("news.csv"), path_in("k"), mpi_opts, path_in("k.out"),
             path_in("k.err"));
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    wait_for_file(path_in("k/model.safetensors"), pid);  /* epoch 1 done */
    pid_t victim = rank_pid(1, path_in("k"));
    ck_assert_msg(victim > 0, "rank 1 not found");
    ck_assert(kill(victim, SIGKILL) == 0);
    int status = 0;
    long ms = 0;
    for (; waitpid(pid, &status, WNOHANG) == 0 && ms < 120000; ms += 10)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    ck_assert_msg(ms < 120000, "the job hung after rank 1 died");
    ck_assert(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
    slurp(path_in("k.err"), err, sizeof err);
    ck_assert_msg(strstr(err, "rank 1") || strstr(err, "signal 9"), "%s",
                  err);
    /* the state of a finished epoch, readable and complete */
    const double epoch = state_field(path_in("k/train_state.safetensors"),
                                     "epoch");
    ck_assert(epoch >= 2);
    int st = run_after(MPIRUN(1), "train --resume %s", path_in("k"));
    ck_assert_msg(st == 1 && strstr(err, "resume it with as many "
                                         "(mpirun -np 2)"), "%d %s", st, err);
    st = run_after(MPIRUN(2), "train --resume %s", path_in("k"));
    ck_assert_msg(st == 0 && strstr(out, "resumed "), "%s", err);
}
END_TEST

/* The configuration of tiny_model's weights, with its max_len and more
 * keys (string literals). */
#define TINY_CONFIG(max_len, more)                                          \
    "{\"vocab_size\":4,\"embed_dim\":4,\"hidden\":3,\"layers\":1,"         \
    "\"mlp\":[5,4],\"max_len\":" max_len ",\"dropout\":0" more "}"

/* A small model with the given metadata (NULL: a valid default), and
 * optionally a NaN in one weight. */
static void tiny_model(const char *name, const char *vocab,
                       const char *classes, const char *config, int nan)
{
    lstm_classifier_config cfg = {4, 4, 3, 1, 2, {5, 4}, 2, 0.0f, 0, LSTM_FP32, 0,
                                  LSTM_CELL_LSTM, 0, 0.0f};
    lstm_classifier m;
    ck_assert_int_eq(lstm_classifier_init(&m, &cfg), 0);
    lstm_rng r;
    lstm_rng_seed(&r, 1);
    lstm_fill_uniform(m.ps.w, m.ps.n, -0.1f, 0.1f, &r);
    if (nan)
        m.ps.w[m.ps.n / 2] = NAN;
    const char *keys[3] = {"vocab", "classes", "config"};
    const char *vals[3] = {
        vocab ? vocab : "[\"[PAD]\",\"[UNK]\",\"a\",\"b\"]",
        classes ? classes : "[\"x\",\"y\"]",
        config ? config : TINY_CONFIG("8", "")};
    ck_assert_int_eq(lstm_safetensors_save(path_in(name), &m.ps, keys, vals,
                                           3), 0);
    lstm_classifier_free(&m);
}

/* The faults a hostile user found (issue: hardening, round two), one
 * regression check each. */
START_TEST(cli_hostile_models)
{
    write_text("t.txt", "a b");
    tiny_model("ok.safetensors", NULL, NULL, NULL, 0);
    ck_assert_int_eq(run("predict --model %s %s", path_in("ok.safetensors"),
                         path_in("t.txt")), 0);
    /* a non-string in a list: one message, no double free */
    tiny_model("null.safetensors", NULL, "[\"x\",null]", NULL, 0);
    FAILS(1, "metadata \"classes\"[1] is not a string", "predict --model %s",
          path_in("null.safetensors"));
    tiny_model("num.safetensors", "[\"[PAD]\",\"[UNK]\",\"a\",12]", NULL,
               NULL, 0);
    FAILS(1, "metadata \"vocab\"[3] is not a string", "eval --model %s "
          "--data %s", path_in("num.safetensors"), path_in("t.txt"));
    /* valid JSON, not a list: no leak (ASan and valgrind runs) */
    tiny_model("obj.safetensors", "{\"a\":1}", NULL, NULL, 0);
    FAILS(1, "metadata \"vocab\" is not a JSON array", "predict --model %s",
          path_in("obj.safetensors"));
    /* non-finite weights are refused, naming the tensor */
    tiny_model("nan.safetensors", NULL, NULL, NULL, 1);
    FAILS(1, "holds a non-finite value", "predict --model %s --json %s",
          path_in("nan.safetensors"), path_in("t.txt"));
    /* a max_len that would allocate gigabytes per text */
    tiny_model("len.safetensors", NULL, NULL, TINY_CONFIG("1000000000", ""),
               0);
    FAILS(1, "\"max_len\" is 1000000000, more than 1000000",
          "predict --model %s", path_in("len.safetensors"));
    /* a wide scale out of range, and a missing wide table */
    tiny_model("wide.safetensors", NULL, NULL,
               TINY_CONFIG("8", ",\"wide\":-2"), 0);
    FAILS(1, "config \"wide\" is not a number in (0,1e6]",
          "predict --model %s", path_in("wide.safetensors"));
    tiny_model("wide1.safetensors", NULL, NULL,
               TINY_CONFIG("8", ",\"wide\":1"), 0);
    FAILS(1, "config describes 186 parameters, the file holds 178",
          "predict --model %s", path_in("wide1.safetensors"));
    /* reading that cannot end: a size limit, then a clear error */
    FAILS(1, "/dev/zero: larger than", "predict --model %s /dev/zero",
          path_in("ok.safetensors"));
    write_text("d.csv", "text,category\na b,x\n");
    FAILS(1, "/dev/zero: not a regular file", "eval --model %s --data %s "
          "--split /dev/zero", path_in("ok.safetensors"), path_in("d.csv"));
    FAILS(1, "/dev/zero: not a regular file", "predict --model /dev/zero %s",
          path_in("t.txt"));
    /* an empty path is refused before anything is made */
    FAILS(2, "bad value for --out: '' (empty)", "train --data x.csv --out ''");
    FAILS(2, "bad value for --model: '' (empty)", "predict --model ''");
    /* an address-space limit under which OpenBLAS would wait for ever is
     * refused at once (not with ASan, which needs terabytes of it) */
    if (!strstr(bin(), "asan"))
        FAILS_AFTER("ulimit -v 300000;", 1, "the address-space limit (ulimit "
                    "-v) is 293 MiB", "predict --model %s %s",
                    path_in("ok.safetensors"), path_in("t.txt"));
    /* a kernel set the CPU cannot run is named, not silently replaced */
    ck_assert_int_eq(run_after("LSTM_KERNELS=bogus", "predict --model %s %s",
                               path_in("ok.safetensors"), path_in("t.txt")),
                     0);
    ck_assert_msg(strstr(err, "warning: LSTM_KERNELS=bogus is not a kernel "
                              "set"), "%s", err);
    /* output that cannot be written is an error, not a silent success */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s predict --model %s %s > /dev/full 2> %s",
             bin(), path_in("ok.safetensors"), path_in("t.txt"),
             path_in("err.txt"));
    int st = system(cmd);
    slurp(path_in("err.txt"), err, sizeof err);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit %d: %s",
                  WEXITSTATUS(st), err);
    ck_assert_msg(strstr(err, "standard output: write error"), "%s", err);
}
END_TEST

/* CSV files the reader refuses, and a folder two runs would share. */
START_TEST(cli_hostile_runs)
{
    write_text("dup.csv", "text,category,text\na,b,c\n");
    FAILS(1, "dup.csv: line 1: the header names column 'text' twice",
          "stats --data %s", path_in("dup.csv"));
    write_text("twice.csv", "text,category\na,b\ntext,category\nc,d\n");
    FAILS(1, "twice.csv: line 3: the header line again", "stats --data %s",
          path_in("twice.csv"));
    make_corpus("news.csv", 120, 5);
    const char *o = "--embed-dim 8 --hidden 8 --max-len 16 --batch-size 8 "
                    "--epochs 1 --threads 1";
    int st = run("train --data %s --out %s %s", path_in("news.csv"),
                 path_in("r"), o);
    ck_assert_msg(st == 0, "%s", err);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp %s/r/split.json %s/split.bak", dir, dir);
    ck_assert(system(cmd) == 0);
    /* a refused run writes nothing: the split of the run stays */
    FAILS(1, "more than the", "train --data %s --out %s %s --seed 9 "
          "--max-memory 1K", path_in("news.csv"), path_in("r"), o);
    ck_assert(same_file(path_in("r/split.json"), path_in("split.bak")));
    /* another split under the run's name is noticed on resume */
    lstm_split sp;
    ck_assert_int_eq(lstm_split_random(&sp, 120, (double[3]){0.8, 0.1, 0.1},
                                       77), 0);
    ck_assert_int_eq(lstm_split_save(&sp, path_in("r/split.json")), 0);
    lstm_split_free(&sp);
    FAILS(1, "differs from the split the run trained on",
          "train --resume %s --epochs 2", path_in("r"));
    snprintf(cmd, sizeof cmd, "cp %s/split.bak %s/r/split.json", dir, dir);
    ck_assert(system(cmd) == 0);
    /* a second writer is refused while the first holds the folder */
    snprintf(cmd, sizeof cmd, "flock %s/r/train.lock sh -c '%s train "
             "--resume %s/r --epochs 2 > %s/o.txt 2> %s/e.txt'; echo $? > "
             "%s/st.txt", dir, bin(), dir, dir, dir, dir);
    ck_assert(system(cmd) == 0);
    slurp(path_in("e.txt"), err, sizeof err);
    ck_assert_msg(strstr(err, "another run is writing there"), "%s", err);
    /* a stale temporary of a killed write is removed by the next run */
    write_text("r/model.safetensors.tmp.AbCdEf", "half");
    st = run("train --resume %s --epochs 2", path_in("r"));
    ck_assert_msg(st == 0, "%s", err);
    ck_assert(access(path_in("r/model.safetensors.tmp.AbCdEf"), F_OK) != 0);
    /* a tampered TensorBoard folder that leaves --out is refused */
    st_patch(path_in("r/train_state.safetensors"), "tb_logs/LSTMClassifier",
             "../../../../tmp/lstm_escape");
    FAILS(1, "the saved TensorBoard folder leaves --out",
          "train --resume %s --epochs 3", path_in("r"));
    /* a closed standard output: the report goes nowhere, not into a file */
    snprintf(cmd, sizeof cmd, "%s train --data %s --out %s/c %s >&- 2> %s/e.txt",
             bin(), path_in("news.csv"), dir, o, dir);
    ck_assert(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "grep -rqs 'test accuracy' %s/c", dir);
    ck_assert_msg(system(cmd) != 0, "the report went into a file of --out");
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("news_classifier");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, cli_bad_input);
    tcase_add_test(tc, cli_checkpoint_disagrees);
    tcase_add_test(tc, cli_end_to_end);
    tcase_add_test(tc, cli_bf16_mixed);
    tcase_add_loop_test(tc, cli_resume_bit_identical, 0, 2);
    tcase_add_test(tc, cli_resume_errors);
    tcase_add_test(tc, cli_limits);
    tcase_add_test(tc, cli_hostile_models);
    tcase_add_test(tc, cli_bidirectional);
    tcase_add_test(tc, cli_gru);
    tcase_add_test(tc, cli_hostile_runs);
    suite_add_tcase(s, tc);
    TCase *mp = tcase_create("mpi");
    tcase_set_timeout(mp, 600);
    tcase_add_checked_fixture(mp, setup, teardown);
    tcase_add_test(mp, mpi_matches_one_process);
    tcase_add_test(mp, mpi_rows_union);
    tcase_add_test(mp, mpi_killed_rank);
    suite_add_tcase(s, mp);
    return s;
}
