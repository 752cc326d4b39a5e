/*
 * lstm_step.c - LSTM (or GRU) throughput: forward (infer) and forward +
 * full BPTT backward with every weight gradient (train), per batch size.
 *
 *   bench/lstm_step [--batch 4,12,32,64] [--seq 512] [--input 256]
 *                   [--hidden 128] [--layers 2] [--threads N]
 *                   [--mode infer|train|both] [--reps N] [--json]
 *                   [--precision fp32|bf16-mixed] [--cell lstm|gru]
 *                   [--lengths mixed|full] [--phases]
 *
 * Defaults are the notebook's LSTM in fp32, on batches where every third
 * sequence is 2/3 as long as the others (mixed; the AVX-512 sets skip the
 * padding's rows in the big products) or, with --lengths full, every
 * sequence T long (what bench/compare.sh runs: its peers compute every
 * step). Before timing
 * anything it checks the tuned kernels against the references on a small
 * case (in fp32, and in bf16-mixed when that is timed) and refuses to time
 * a wrong kernel. FLOPs: forward 2*N*G*(I+H) per layer, N the tokens
 * (the sum of the lengths: padding is not work), G = 4H (GRU: 3H), input
 * size H above the first, backward counted as twice the forward. The FMA
 * peak is measured by a register-only FMA loop on every thread in the
 * same run, before each batch size; the rows are printed at the end
 * against the best of those measurements (a short burst of other load on
 * this shared machine can halve any one of them). --phases adds where a
 * step's time goes: the mean over the timed runs of each phase the layer
 * stack times (lstm_lstm's t_phase: the input projections, the forward
 * and backward recurrences, the weight and the input gradients), the
 * rest being the step's time outside them (inference: the first two and
 * the rest).
 */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "benchutil.h"
#include "lstm.h"

/* ---- the FMA peak ---- */

#define FMA_ITERS 60000000L
/* Twelve independent accumulators cover the FMA latency of two ports. */
#define FMA12(fma, a, b, c)                                                 \
    a##0 = fma(a##0, b, c); a##1 = fma(a##1, b, c); a##2 = fma(a##2, b, c); \
    a##3 = fma(a##3, b, c); a##4 = fma(a##4, b, c); a##5 = fma(a##5, b, c); \
    a##6 = fma(a##6, b, c); a##7 = fma(a##7, b, c); a##8 = fma(a##8, b, c); \
    a##9 = fma(a##9, b, c); a##10 = fma(a##10, b, c); a##11 = fma(a##11, b, c)
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f"))) static double fma_avx512(void)
{
    __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    /* distinct starts, or the compiler merges identical chains */
    __m512 a0 = _mm512_set1_ps(0.0f), a1 = _mm512_set1_ps(0.1f), a2 = _mm512_set1_ps(0.2f),
           a3 = _mm512_set1_ps(0.3f), a4 = _mm512_set1_ps(0.4f), a5 = _mm512_set1_ps(0.5f),
           a6 = _mm512_set1_ps(0.6f), a7 = _mm512_set1_ps(0.7f), a8 = _mm512_set1_ps(0.8f),
           a9 = _mm512_set1_ps(0.9f), a10 = _mm512_set1_ps(1.0f), a11 = _mm512_set1_ps(1.1f);
    for (long i = 0; i < FMA_ITERS / 16; i++) {
        FMA12(_mm512_fmadd_ps, a, b, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1),
                                           _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5),
                                           _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9),
                                       _mm512_add_ps(a10, a11)));
    float out[16];
    _mm512_storeu_ps(out, s);
    return (double)out[0];
}

__attribute__((target("avx2,fma"))) static double fma_avx2(void)
{
    __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    /* distinct starts, or the compiler merges identical chains */
    __m256 a0 = _mm256_set1_ps(0.0f), a1 = _mm256_set1_ps(0.1f), a2 = _mm256_set1_ps(0.2f),
           a3 = _mm256_set1_ps(0.3f), a4 = _mm256_set1_ps(0.4f), a5 = _mm256_set1_ps(0.5f),
           a6 = _mm256_set1_ps(0.6f), a7 = _mm256_set1_ps(0.7f), a8 = _mm256_set1_ps(0.8f),
           a9 = _mm256_set1_ps(0.9f), a10 = _mm256_set1_ps(1.0f), a11 = _mm256_set1_ps(1.1f);
    for (long i = 0; i < FMA_ITERS / 8; i++) {
        FMA12(_mm256_fmadd_ps, a, b, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1),
                                           _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5),
                                           _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9),
                                       _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return (double)out[0];
}
#endif

/* GFLOP/s of the widest FMA unit on all threads, and its name. */
static double fma_peak(int threads, const char **isa)
{
    *isa = "none";
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    int w512 = __builtin_cpu_supports("avx512f");
    int w256 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!w512 && !w256)
        return 0;
    *isa = w512 ? "AVX-512" : "AVX2";
    double best = 0, sink = 0;
    /* the best of several runs: a run shares the cores with whatever else
     * wakes up, and the first one also starts the threads */
    for (int rep = 0; rep < 7; rep++) {
        double t0 = bench_now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += w512 ? fma_avx512() : fma_avx2();
        double t = bench_now() - t0;
        /* FMA_ITERS / lanes iterations x 12 FMAs x lanes x 2 flops */
        double flops = 2.0 * 12.0 * (double)FMA_ITERS * threads;
        if (flops / t * 1e-9 > best)
            best = flops / t * 1e-9;
    }
    if (sink == 42.0)
        printf("#\n");  /* keeps the loops alive */
    return best;
#else
    (void)threads;
    return 0;
#endif
}

/* ---- one LSTM set up for (B,T,I,H,L) ---- */

static int cell = LSTM_CELL_LSTM;  /* --cell */
static int full_lengths;           /* --lengths full */

typedef struct {
    lstm_params ps;
    lstm_lstm net;
    float *x, *dout, *dx;
    int32_t *len;
    size_t B, T, I, H, L;
} bench;

static int bench_init(bench *b, size_t B, size_t T, size_t I, size_t H,
                      size_t L, int precision, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    b->B = B, b->T = T, b->I = I, b->H = H, b->L = L;
    lstm_rng r;
    lstm_rng_seed(&r, seed);
    lstm_params_init(&b->ps);
    int err = (cell == LSTM_CELL_GRU ? lstm_gru_init : lstm_lstm_init)(
        &b->net, &b->ps, "lstm", I, H, L, 0.0f);
    if (!err)
        err = lstm_params_alloc(&b->ps);
    if (err)
        return err;
    b->net.precision = precision;
    lstm_lstm_reset(&b->net, &r);
    /* lstm_alloc's blocks: 64-byte aligned, so the vectors that read dout
     * and write dx never straddle two cache lines (malloc's large blocks
     * are 16 bytes off) */
    b->x = lstm_alloc(B * T * I * sizeof(float));
    b->dout = lstm_alloc(B * T * H * sizeof(float));
    b->dx = lstm_alloc(B * T * I * sizeof(float));
    b->len = malloc(B * sizeof(int32_t));
    if (!b->x || !b->dout || !b->dx || !b->len)
        return LSTM_ENOMEM;
    lstm_fill_normal(b->x, B * T * I, 0, 1, &r);
    lstm_fill_normal(b->dout, B * T * H, 0, 1, &r);
    for (size_t i = 0; i < B; i++)  /* full and shorter sequences */
        b->len[i] = (int32_t)(i % 3 == 2 && !full_lengths ? T - T / 3 : T);
    return 0;
}

static void bench_free(bench *b)
{
    lstm_lstm_free(&b->net);
    lstm_params_free(&b->ps);
    lstm_free(b->x);
    lstm_free(b->dout);
    lstm_free(b->dx);
    free(b->len);
}

static int run_once(bench *b, int train)
{
    int err = lstm_lstm_forward(&b->net, b->x, b->len, NULL, NULL, b->B, b->T,
                                train, NULL);
    if (!err && train) {
        lstm_params_zero_grad(&b->ps);
        err = lstm_lstm_backward(&b->net, b->dout, NULL, NULL, b->dx, NULL,
                                 NULL);
    }
    return err;
}

/* Max |tuned - ref| / (1 + |ref|) over outputs and gradients. */
static double check_kernels(int precision)
{
    bench b;
    if (bench_init(&b, 5, 11, 13, 17, 2, precision, 7))
        return INFINITY;
    size_t nout = b.B * b.T * b.H, n = b.ps.n, nx = b.B * b.T * b.I;
    float *o = malloc(nout * 4), *g = malloc(n * 4), *dx = malloc(nx * 4);
    double worst = 0;
    for (int ref = 1; ref >= 0; ref--) {
        lstm_kernels_use_ref(ref);
        if (run_once(&b, 1)) {
            worst = INFINITY;
            break;
        }
        for (size_t i = 0; !ref && i < nout; i++)
            worst = fmax(worst, fabs((double)(b.net.out[i] - o[i])) /
                                    (1 + fabs((double)o[i])));
        for (size_t i = 0; !ref && i < n; i++)
            worst = fmax(worst, fabs((double)(b.ps.g[i] - g[i])) /
                                    (1 + fabs((double)g[i])));
        for (size_t i = 0; !ref && i < nx; i++)
            worst = fmax(worst, fabs((double)(b.dx[i] - dx[i])) /
                                    (1 + fabs((double)dx[i])));
        memcpy(o, b.net.out, nout * 4);
        memcpy(g, b.ps.g, n * 4);
        memcpy(dx, b.dx, nx * 4);
    }
    lstm_kernels_use_ref(0);
    free(o);
    free(g);
    free(dx);
    bench_free(&b);
    return worst;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: lstm_step [--batch 4,12,32,64] [--seq 512] [--input 256]\n"
            "                 [--hidden 128] [--layers 2] [--threads N]\n"
            "                 [--mode infer|train|both] [--reps N] [--json]\n"
            "                 [--precision fp32|bf16-mixed] [--cell lstm|gru]\n"
            "                 [--lengths mixed|full] [--phases]\n");
}

static int arg_size(const char *flag, const char *v, size_t *out)
{
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < 1 || x > 1000000) {
        fprintf(stderr, "lstm_step: bad value for %s: '%s'\n", flag,
                v ? v : "");
        return 2;
    }
    *out = (size_t)x;
    return 0;
}

int main(int argc, char **argv)
{
    size_t batches[16] = {4, 12, 32, 64}, nb = 4;
    size_t T = 512, I = 256, H = 128, L = 2, reps = 5, threads = 0;
    const char *mode = "both";
    int json = 0, phases = 0, precision = LSTM_FP32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int e = 0;
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        } else if (!strcmp(a, "--phases")) {
            phases = 1;
            continue;
        } else if (!strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--batch")) {
            nb = 0;
            char *s = v ? strdup(v) : NULL, *save = NULL;
            for (char *t = s ? strtok_r(s, ",", &save) : NULL; t && !e;
                 t = strtok_r(NULL, ",", &save))
                e = nb < 16 ? arg_size(a, t, &batches[nb++]) : 2;
            free(s);
            if (!e && nb == 0)
                e = arg_size(a, NULL, &T);  /* reports the empty list */
        } else if (!strcmp(a, "--seq")) e = arg_size(a, v, &T);
        else if (!strcmp(a, "--input")) e = arg_size(a, v, &I);
        else if (!strcmp(a, "--hidden")) e = arg_size(a, v, &H);
        else if (!strcmp(a, "--layers")) e = arg_size(a, v, &L);
        else if (!strcmp(a, "--threads")) e = arg_size(a, v, &threads);
        else if (!strcmp(a, "--reps")) e = arg_size(a, v, &reps);
        else if (!strcmp(a, "--mode")) {
            if (!v || (strcmp(v, "infer") && strcmp(v, "train") &&
                       strcmp(v, "both"))) {
                fprintf(stderr, "lstm_step: bad value for --mode: '%s'\n",
                        v ? v : "");
                return 2;
            }
            mode = v;
        } else if (!strcmp(a, "--lengths")) {
            if (!v || (strcmp(v, "mixed") && strcmp(v, "full"))) {
                fprintf(stderr, "lstm_step: bad value for --lengths: '%s' "
                        "(mixed or full)\n", v ? v : "");
                return 2;
            }
            full_lengths = !strcmp(v, "full");
        } else if (!strcmp(a, "--cell")) {
            if (v && (!strcmp(v, "lstm") || !strcmp(v, "gru")))
                cell = !strcmp(v, "gru") ? LSTM_CELL_GRU : LSTM_CELL_LSTM;
            else {
                fprintf(stderr, "lstm_step: bad value for --cell: '%s' (lstm "
                        "or gru)\n", v ? v : "");
                return 2;
            }
        } else if (!strcmp(a, "--precision")) {
            if (v && !strcmp(v, "fp32"))
                precision = LSTM_FP32;
            else if (v && !strcmp(v, "bf16-mixed"))
                precision = LSTM_BF16_MIXED;
            else {
                fprintf(stderr, "lstm_step: bad value for --precision: "
                        "'%s' (fp32 or bf16-mixed)\n", v ? v : "");
                return 2;
            }
        } else {
            fprintf(stderr, "lstm_step: unknown flag %s\n", a);
            usage();
            return 2;
        }
        if (e)
            return e;
        i++;
    }
    if (threads)
        lstm_set_threads((int)threads);
    const int nt = lstm_get_threads();

    /* bf16: a float sum that differs in its last bit can round to the
     * neighbouring bfloat16 (2^-8 apart) and carry on: a looser bound, on
     * top of the float check */
    double err = check_kernels(LSTM_FP32);
    double err16 = precision == LSTM_BF16_MIXED ? check_kernels(precision) : 0;
    if (!(err < 1e-4) || !(err16 < 3e-2)) {
        fprintf(stderr, "lstm_step: tuned kernels disagree with the "
                "references (max relative error %g fp32, %g bf16-mixed); "
                "not timing them\n", err, err16);
        return 1;
    }
    const char *pname = precision == LSTM_FP32 ? "fp32" : "bf16-mixed";
    const char *cname = cell == LSTM_CELL_GRU ? "gru" : "lstm";
    const char *isa = "none";
    double peak = 0, peak1 = 0;
    struct {
        const char *mode;
        size_t B;
        double ms, tps, gf, rss, mean, phase[LSTM_PHASES];
    } row[32];
    size_t nrow = 0;
    for (size_t k = 0; k < nb; k++) {
        size_t B = batches[k];
        double p = fma_peak(nt, &isa), p1 = nt > 1 ? fma_peak(1, &isa) : p;
        peak = p > peak ? p : peak;
        peak1 = p1 > peak1 ? p1 : peak1;
        bench b;
        if (bench_init(&b, B, T, I, H, L, precision, 42)) {
            fprintf(stderr, "lstm_step: %s\n", lstm_errmsg());
            return 1;
        }
        double tokens = 0, fwd = 0;
        for (size_t i = 0; i < B; i++)
            tokens += b.len[i];
        for (size_t l = 0; l < L; l++)
            fwd += 2.0 * tokens * (cell ? 3.0 : 4.0) * (double)H *
                   (double)((l ? H : I) + H);
        for (int train = 0; train < 2; train++) {
            if ((train && !strcmp(mode, "infer")) ||
                (!train && !strcmp(mode, "train")))
                continue;
            double *ms = malloc(reps * sizeof *ms);
            if (!ms || run_once(&b, train)) {  /* warm-up: sizes the workspace */
                fprintf(stderr, "lstm_step: %s\n",
                        ms ? lstm_errmsg() : "out of memory");
                return 1;
            }
            double t_phase[LSTM_PHASES], sum = 0;
            memcpy(t_phase, b.net.t_phase, sizeof t_phase);
            for (size_t r = 0; r < reps; r++) {
                double t0 = bench_now();
                run_once(&b, train);
                ms[r] = (bench_now() - t0) * 1e3;
                sum += ms[r];
            }
            for (int i = 0; i < LSTM_PHASES; i++)  /* ms a run */
                row[nrow].phase[i] =
                    (b.net.t_phase[i] - t_phase[i]) * 1e3 / (double)reps;
            row[nrow].mean = sum / (double)reps;
            double med = bench_median(ms, reps);
            double flops = train ? 3 * fwd : fwd;
            row[nrow].mode = train ? "train" : "infer";
            row[nrow].B = B;
            row[nrow].ms = med;
            row[nrow].tps = tokens / (med * 1e-3);
            row[nrow].gf = flops / (med * 1e-3) * 1e-9;
            row[nrow].rss = peak_rss_mb();
            nrow++;
            free(ms);
        }
        bench_free(&b);
    }
    /* A reading of nt threads below nt times one thread's means other work
     * held a core while it ran (seen: 239 instead of 420-430 GFLOP/s): the
     * cores' own peak is nt x one thread's then (one thread a core, as the
     * library runs). */
    const double peak_nt = peak;
    const int low = nt > 1 && peak < 0.9 * nt * peak1;
    if (low)
        peak = nt * peak1;
    if (!json) {
        printf("# lstm_step on %s: %s, T=%zu I=%zu H=%zu L=%zu, %s lengths, "
               "%s, %d threads, %s kernels (match the references: max error "
               "%.1e)\n", bench_cpu(), cname, T, I, H, L,
               full_lengths ? "full" : "mixed", pname, nt,
               lstm_kernels_name(),
               precision == LSTM_FP32 ? err : err16);
        printf("# FMA peak (%s, %d threads): %.1f GFLOP/s, the best of %zu "
               "measurements%s\n", isa, nt, peak, nb,
               low ? "; taken as threads x one thread's: the all-thread "
                     "reading was lower" : "");
        if (low)
            printf("#   (all threads read %.1f, one thread %.1f)\n", peak_nt,
                   peak1);
        printf("# %-5s %5s %10s %12s %9s %6s %9s\n", "mode", "B", "ms", "tokens/s",
               "GFLOP/s", "peak", "RSS MB");
    }
    for (size_t k = 0; k < nrow; k++) {
        if (json)
            printf("{\"cell\":\"%s\",\"mode\":\"%s\",\"batch\":%zu,\"seq\":%zu,\"input\":%zu,"
                   "\"hidden\":%zu,\"layers\":%zu,\"lengths\":\"%s\","
                   "\"threads\":%d,"
                   "\"precision\":\"%s\",\"kernels\":\"%s\",\"cpu\":\"%s\","
                   "\"ms_median\":%.3f,\"tokens_per_s\":%.0f,"
                   "\"gflops\":%.2f,\"peak_gflops\":%.1f,"
                   "\"peak_rss_mb\":%.1f}\n", cname, row[k].mode, row[k].B, T, I, H, L,
                   full_lengths ? "full" : "mixed", nt, pname,
                   lstm_kernels_name(), bench_cpu(), row[k].ms, row[k].tps,
                   row[k].gf, peak,
                   row[k].rss);
        else
            printf("  %-5s %5zu %10.2f %12.0f %9.1f %5.0f%% %9.1f\n",
                   row[k].mode, row[k].B, row[k].ms, row[k].tps, row[k].gf,
                   peak > 0 ? 100 * row[k].gf / peak : 0, row[k].rss);
    }
    if (!phases)
        return 0;
    static const char *const names[LSTM_PHASES] = {
        "input_projection", "forward", "backward", "weight_grads",
        "input_grads"};
    if (!json)
        printf("# where a step's time goes: ms a step, the mean of the timed "
               "runs\n# %-5s %5s %10s %10s %10s %10s %10s %10s %10s\n", "mode",
               "B", "mean", "in-proj", "forward", "backward", "dW", "dX",
               "rest");
    for (size_t k = 0; k < nrow; k++) {
        double rest = row[k].mean;
        for (int i = 0; i < LSTM_PHASES; i++)
            rest -= row[k].phase[i];
        if (json) {
            printf("{\"cell\":\"%s\",\"mode\":\"%s\",\"batch\":%zu,"
                   "\"ms_mean\":%.3f", cname, row[k].mode, row[k].B,
                   row[k].mean);
            for (int i = 0; i < LSTM_PHASES; i++)
                printf(",\"%s_ms\":%.3f", names[i], row[k].phase[i]);
            printf(",\"rest_ms\":%.3f}\n", rest);
            continue;
        }
        printf("  %-5s %5zu %10.2f", row[k].mode, row[k].B, row[k].mean);
        for (int i = 0; i < LSTM_PHASES; i++)
            printf(" %10.2f", row[k].phase[i]);
        printf(" %10.2f\n", rest);
    }
    return 0;
}
