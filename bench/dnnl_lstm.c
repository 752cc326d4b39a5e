/*
 * dnnl_lstm.c - oneDNN's LSTM primitive (or, with --cell gru, its
 * linear-before-reset GRU, whose equations are PyTorch's nn.GRU) on the
 * shapes of bench/lstm_step, for bench/compare.sh: forward inference (infer), and forward training +
 * backward with every weight gradient (train). One primitive per layer
 * (oneDNN stacks layers in one primitive only when input and hidden sizes
 * are equal). Weights are created directly in the formats the primitives
 * choose, so the reorders a training loop would need each step are not
 * timed: the comparison favours oneDNN.
 *
 *   bench/dnnl_lstm [--batch 4,12,32,64] [--seq 512] [--input 256]
 *                   [--hidden 128] [--layers 2] [--reps N] [--cell lstm|gru]
 *
 * Prints one JSON object per configuration, as lstm_step --json. Threads:
 * OMP_NUM_THREADS (oneDNN's OpenMP runtime).
 */
#define _XOPEN_SOURCE 700
#include <oneapi/dnnl/dnnl.h>

#include "benchutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define CHECK(call)                                                          \
    do {                                                                     \
        dnnl_status_t s_ = (call);                                           \
        if (s_ != dnnl_success) {                                            \
            fprintf(stderr, "dnnl_lstm: %s failed (status %d)\n", #call,     \
                    (int)s_);                                                \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

static dnnl_engine_t engine;
static int gru;  /* --cell gru: 3 gates, and 4 bias rows (b_hn apart) */
static dnnl_stream_t stream;

static void fill(dnnl_memory_t m, const dnnl_memory_desc_t *md)
{
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
    float *f = p;
    for (size_t i = 0; i < n; i++)
        f[i] = 0.01f * (float)((int)(i * 2654435761u % 200) - 100);
}

/* A memory for argument `arg` of pd, filled with small values. Opaque
 * formats (oneDNN's packed weights) are filled through a reorder from the
 * plain layout, untimed. */
static dnnl_memory_t arg_memory(const_dnnl_primitive_desc_t pd, int arg)
{
    const dnnl_memory_desc_t *md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (!md || md->ndims == 0)
        return NULL;
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE));
    if (md->format_kind != dnnl_format_kind_rnn_packed) {
        fill(m, md);
        return m;
    }
    dnnl_memory_desc_t plain;
    CHECK(dnnl_memory_desc_init_by_tag(&plain, md->ndims, md->dims, dnnl_f32,
                                       dnnl_ldigo));
    dnnl_memory_t src;
    CHECK(dnnl_memory_create(&src, &plain, engine, DNNL_MEMORY_ALLOCATE));
    fill(src, &plain);
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t r;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &plain, engine, md, engine,
                                             NULL));
    CHECK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, m}};
    CHECK(dnnl_primitive_execute(r, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(src);
    return m;
}

typedef struct {
    dnnl_primitive_t prim;
    dnnl_exec_arg_t args[16];
    int nargs;
} step;

static void add_args(step *s, const_dnnl_primitive_desc_t pd, const int *ids,
                     int n)
{
    for (int k = 0; k < n; k++) {
        dnnl_memory_t m = arg_memory(pd, ids[k]);
        if (m) {
            s->args[s->nargs].arg = ids[k];
            s->args[s->nargs].memory = m;
            s->nargs++;
        }
    }
}

static void md(dnnl_memory_desc_t *d, int nd, const dnnl_dims_t dims,
               dnnl_format_tag_t tag)
{
    CHECK(dnnl_memory_desc_init_by_tag(d, nd, dims, dnnl_f32, tag));
}

/* Forward (inference or training) and, for training, backward, of one
 * layer with input size I. */
static void make_layer(step *fwd, step *bwd, int train, long B, long T,
                       long I, long H)
{
    dnnl_memory_desc_t src, wl, wi, bias, dst, dsrc, dwl, dwi, dbias, ddst;
    md(&src, 3, (dnnl_dims_t){T, B, I}, dnnl_tnc);
    const long G = gru ? 3 : 4;
    md(&wl, 5, (dnnl_dims_t){1, 1, I, G, H}, dnnl_format_tag_any);
    md(&wi, 5, (dnnl_dims_t){1, 1, H, G, H}, dnnl_format_tag_any);
    md(&bias, 4, (dnnl_dims_t){1, 1, 4, H}, dnnl_ldgo);
    md(&dst, 3, (dnnl_dims_t){T, B, H}, dnnl_tnc);
    dnnl_rnn_desc_t fd;
    const dnnl_prop_kind_t kind =
        train ? dnnl_forward_training : dnnl_forward_inference;
    if (gru)
        CHECK(dnnl_lbr_gru_forward_desc_init(
            &fd, kind, dnnl_unidirectional_left2right, &src, NULL, &wl, &wi,
            &bias, &dst, NULL, 0));
    else
        CHECK(dnnl_lstm_forward_desc_init(
            &fd, kind, dnnl_unidirectional_left2right, &src, NULL, NULL, &wl,
            &wi, &bias, &dst, NULL, NULL, 0));
    dnnl_primitive_desc_t fpd;
    CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, engine, NULL));
    static const int fwd_ids[] = {DNNL_ARG_SRC_LAYER, DNNL_ARG_WEIGHTS_LAYER,
                                  DNNL_ARG_WEIGHTS_ITER, DNNL_ARG_BIAS,
                                  DNNL_ARG_DST_LAYER, DNNL_ARG_WORKSPACE};
    memset(fwd, 0, sizeof *fwd);
    add_args(fwd, fpd, fwd_ids, 6);
    CHECK(dnnl_primitive_create(&fwd->prim, fpd));
    if (!train) {
        dnnl_primitive_desc_destroy(fpd);
        return;
    }
    md(&dsrc, 3, (dnnl_dims_t){T, B, I}, dnnl_tnc);
    md(&dwl, 5, (dnnl_dims_t){1, 1, I, G, H}, dnnl_format_tag_any);
    md(&dwi, 5, (dnnl_dims_t){1, 1, H, G, H}, dnnl_format_tag_any);
    md(&dbias, 4, (dnnl_dims_t){1, 1, 4, H}, dnnl_ldgo);
    md(&ddst, 3, (dnnl_dims_t){T, B, H}, dnnl_tnc);
    dnnl_rnn_desc_t bd;
    if (gru)
        CHECK(dnnl_lbr_gru_backward_desc_init(
            &bd, dnnl_backward, dnnl_unidirectional_left2right, &src, NULL,
            &wl, &wi, &bias, &dst, NULL, &dsrc, NULL, &dwl, &dwi, &dbias,
            &ddst, NULL, 0));
    else
        CHECK(dnnl_lstm_backward_desc_init(
            &bd, dnnl_backward, dnnl_unidirectional_left2right, &src, NULL,
            NULL, &wl, &wi, &bias, &dst, NULL, NULL, &dsrc, NULL, NULL, &dwl,
            &dwi, &dbias, &ddst, NULL, NULL, 0));
    dnnl_primitive_desc_t bpd;
    CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, engine, fpd));
    static const int bwd_ids[] = {
        DNNL_ARG_SRC_LAYER, DNNL_ARG_WEIGHTS_LAYER, DNNL_ARG_WEIGHTS_ITER,
        DNNL_ARG_BIAS, DNNL_ARG_DST_LAYER, DNNL_ARG_DIFF_SRC_LAYER,
        DNNL_ARG_DIFF_WEIGHTS_LAYER, DNNL_ARG_DIFF_WEIGHTS_ITER,
        DNNL_ARG_DIFF_BIAS, DNNL_ARG_DIFF_DST_LAYER};
    memset(bwd, 0, sizeof *bwd);
    add_args(bwd, bpd, bwd_ids, 10);
    /* backward reads the workspace the forward wrote */
    for (int k = 0; k < fwd->nargs; k++)
        if (fwd->args[k].arg == DNNL_ARG_WORKSPACE)
            bwd->args[bwd->nargs++] = fwd->args[k];
    CHECK(dnnl_primitive_create(&bwd->prim, bpd));
    dnnl_primitive_desc_destroy(fpd);
    dnnl_primitive_desc_destroy(bpd);
}

static void run(step *s)
{
    CHECK(dnnl_primitive_execute(s->prim, stream, s->nargs, s->args));
}

/* Frees a step's memories; the backward's workspace is the forward's. */
static void free_step(step *s, int owns_workspace)
{
    for (int k = 0; k < s->nargs; k++)
        if (owns_workspace || s->args[k].arg != DNNL_ARG_WORKSPACE)
            dnnl_memory_destroy(s->args[k].memory);
    dnnl_primitive_destroy(s->prim);
}

int main(int argc, char **argv)
{
    long batches[16] = {4, 12, 32, 64}, T = 512, I = 256, H = 128, L = 2;
    int nb = 4, reps = 5;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: dnnl_lstm [--batch 4,12,32,64] [--seq 512] "
                   "[--input 256]\n                 [--hidden 128] "
                   "[--layers 2] [--reps N] [--cell lstm|gru]\n"
                   "oneDNN's LSTM (or LBR GRU) on lstm_step's shapes, one "
                   "JSON line per\nmode and batch; threads: "
                   "OMP_NUM_THREADS\n");
            return 0;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "dnnl_lstm: %s needs a value (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--batch")) {
            nb = 0;
            char *s = strdup(v), *save = NULL;
            for (char *t = strtok_r(s, ",", &save); t && nb < 16;
                 t = strtok_r(NULL, ",", &save))
                batches[nb++] = atol(t);
            free(s);
        } else if (!strcmp(a, "--seq")) T = atol(v);
        else if (!strcmp(a, "--input")) I = atol(v);
        else if (!strcmp(a, "--hidden")) H = atol(v);
        else if (!strcmp(a, "--layers")) L = atol(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--cell") &&
                 (!strcmp(v, "gru") || !strcmp(v, "lstm")))
            gru = !strcmp(v, "gru");
        else {
            fprintf(stderr, "dnnl_lstm: unknown flag %s (see --help)\n", a);
            return 2;
        }
    }
    if (nb < 1 || T < 1 || I < 1 || H < 1 || L < 1 || L > 16 || reps < 1) {
        fprintf(stderr, "dnnl_lstm: bad arguments\n");
        return 2;
    }
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    for (int k = 0; k < nb; k++) {
        long B = batches[k];
        for (int train = 0; train < 2; train++) {
            step fwd[16], bwd[16];
            for (long l = 0; l < L; l++)
                make_layer(&fwd[l], &bwd[l], train, B, T, l ? H : I, H);
            double *ms = malloc((size_t)reps * sizeof *ms);
            for (int r = -1; r < reps; r++) {  /* r = -1: warm-up */
                double t0 = bench_now();
                for (long l = 0; l < L; l++)
                    run(&fwd[l]);
                for (long l = L; train && l-- > 0;)
                    run(&bwd[l]);
                CHECK(dnnl_stream_wait(stream));
                if (r >= 0)
                    ms[r] = (bench_now() - t0) * 1e3;
            }
            double med = bench_median(ms, (size_t)reps);
            printf("{\"cell\":\"%s\",\"mode\":\"%s\",\"batch\":%ld,\"seq\":%ld,\"input\":%ld,"
                   "\"hidden\":%ld,\"layers\":%ld,\"threads\":%d,"
                   "\"ms_median\":%.3f,\"impl\":\"oneDNN %d.%d\"}\n",
                   gru ? "gru" : "lstm", train ? "train" : "infer", B, T, I,
                   H, L, threads, med,
                   dnnl_version()->major, dnnl_version()->minor);
            fflush(stdout);
            free(ms);
            for (long l = 0; l < L; l++) {
                if (train)
                    free_step(&bwd[l], 0);
                free_step(&fwd[l], 1);
            }
        }
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(engine);
    return 0;
}
