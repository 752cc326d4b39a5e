/*
 * threads.c - threads, the choice of kernel set, and the threaded GEMM
 * driver: the library's global state besides errors and allocation.
 */
#define _DEFAULT_SOURCE  /* DIR, clock_gettime */
#include <dirent.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <sched.h>
#endif

static int n_threads;       /* 0: OpenMP's default */
static const lstm__kernels *kset;   /* NULL: not chosen yet */
static const lstm__kernels *kset_default;  /* $LSTM_KERNELS, else the best */

void lstm_set_threads(int n) { n_threads = n > 0 ? n : 0; }

int lstm_get_threads(void)
{
#ifdef _OPENMP
    return n_threads ? n_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* Whether the thread /proc/self/task/NAME/stat describes is running. */
static int task_running(const char *name)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", name);
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    /* "tid (comm) S ...", and comm may hold a ')' */
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'R';
}

/* CPUs that other processes leave free, as Linux sees them now: the online
 * CPUs less the runnable tasks that are not this process's threads.
 * /proc/loadavg's fourth field counts every runnable task; this process's
 * running threads (the caller, and OpenMP workers still spinning after a
 * region) are counted in /proc/self/task and left out. Without /proc: all
 * CPUs. Read at most every 10 ms: a few tens of microseconds each time. */
static int free_cpus(void)
{
#ifdef _OPENMP
    const int ncpu = omp_get_num_procs();  /* those this process may use */
#else
    const int ncpu = 1;
#endif
    static _Atomic long long stamp = -1;  /* ms of the last reading */
    static _Atomic int cached;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now - atomic_load(&stamp) < 10 && atomic_load(&stamp) >= 0)
        return atomic_load(&cached);
    int running = 0, ours = 0, free = ncpu;
    FILE *fp = fopen("/proc/loadavg", "r");
    DIR *d = opendir("/proc/self/task");
    if (fp && d && fscanf(fp, "%*f %*f %*f %d/", &running) == 1) {
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            ours += e->d_name[0] != '.' && task_running(e->d_name);
        int others = running - (ours > 0 ? ours : 1);
        free = ncpu - (others > 0 ? others : 0);
    }
    if (fp)
        fclose(fp);
    if (d)
        closedir(d);
    free = free < 1 ? 1 : free;
    atomic_store(&cached, free);
    atomic_store(&stamp, now);
    return free;
}

int lstm__threads_for(size_t work)
{
    /* below ~64k multiply-adds a fork costs more than it saves; a thread
     * beyond the CPUs other processes leave free waits for one of them,
     * and the whole region with it */
    if (work < 65536)
        return 1;
    const int n = lstm_get_threads();
    if (n <= 1)
        return n;
    const int f = free_cpus();
    return f < n ? f : n;
}

void lstm__barrier_init(lstm__barrier *b, unsigned n)
{
    atomic_init(&b->arrived, 0);
    atomic_init(&b->gen, 0);
    atomic_init(&b->sleepers, 0);
    b->n = n;
}

double lstm__seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits while b->gen equals g: sleeps in the kernel (Linux), else yields. */
static void sleep_while(lstm__barrier *b, unsigned g)
{
    atomic_fetch_add(&b->sleepers, 1);
    while (atomic_load(&b->gen) == g) {
#ifdef __linux__
        /* returns at once if gen moved on since the load */
        syscall(SYS_futex, &b->gen, FUTEX_WAIT_PRIVATE, g, NULL, NULL, 0);
#else
        sched_yield();
#endif
    }
    atomic_fetch_sub(&b->sleepers, 1);
}

void lstm__barrier_wait(lstm__barrier *b)
{
    if (b->n <= 1)
        return;
    const unsigned g = atomic_load(&b->gen);
    if (atomic_fetch_add(&b->arrived, 1) == b->n - 1) {  /* the last */
        atomic_store(&b->arrived, 0);
        atomic_fetch_add(&b->gen, 1);
        /* a sleeper counted itself before its futex check of gen: if it
         * is not counted here, that check sees the new gen */
#ifdef __linux__
        if (atomic_load(&b->sleepers) > 0)
            syscall(SYS_futex, &b->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
                    NULL, 0);
#endif
        return;
    }
    double until = 0;
    for (unsigned i = 1; atomic_load_explicit(&b->gen, memory_order_acquire)
                         == g; i++) {
        if (i % 64 == 0) {  /* the clock now and then: a few ns each */
            double now = lstm__seconds();
            if (until == 0)
                until = now + LSTM__SPIN_US * 1e-6;
            else if (now > until) {
                sleep_while(b, g);
                return;
            }
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

/* The set of $LSTM_KERNELS, else the best this CPU runs. An unknown or
 * unsupported name falls back to the best set; lstm_kernels_select reports
 * it. */
static void runtime_init(void)
{
    if (kset)
        return;
    lstm__blas_single_thread();
    const char *e = getenv("LSTM_KERNELS");
    const lstm__kernels *k = e && *e ? lstm__kernels_get(e) : NULL;
    kset_default = k ? k : lstm__kernels_best();
    kset = kset_default;
}

int lstm_kernels_select(const char *name)
{
    runtime_init();
    const lstm__kernels *k = name ? lstm__kernels_get(name) : kset_default;
    if (!k)
        return lstm_error(LSTM_EINVAL,
                          "kernels: '%s' is unknown or needs instructions this "
                          "CPU lacks (ref, generic, avx2, avx512)",
                          name);
    kset = k;
    return LSTM_OK;
}

int lstm_kernels_use_ref(int on)
{
    runtime_init();
    int old = strcmp(kset->name, "ref") == 0;
    kset = on ? lstm__kernels_get("ref") : kset_default;
    return old;
}

const lstm__kernels *lstm__k(void)
{
    runtime_init();
    return kset;
}

const char *lstm_kernels_name(void) { return lstm__k()->name; }

/* How many parts the M rows of a product of `work` multiply-adds are split
 * into, with *nt the threads to run them on; part_rows gives part p's rows
 * [*m0,*m1): whole 16-row chunks (kernel-aligned).
 * The parts follow the configured thread count only, not the CPUs free
 * at the moment: when fewer threads run (other processes busy), each
 * takes several parts, calling the kernel on exactly the same blocks, so
 * the load never changes a result (a BLAS kernel's last bits can depend
 * on the rows it is given). */
static size_t row_parts(size_t M, size_t work, int *nt)
{
    size_t parts = work < 65536 ? 1 : (size_t)lstm_get_threads();
    parts = parts > M / 16 ? (M / 16 ? M / 16 : 1) : parts;
    *nt = lstm__threads_for(work);
    *nt = (size_t)*nt > parts ? (int)parts : *nt;
    return parts;
}

/* Whether part p has rows, and which; sets the calling thread's
 * floating-point mode for the kernel it calls next. */
static int part_rows(size_t M, size_t parts, size_t p, size_t *m0,
                     size_t *m1)
{
    const size_t chunks = (M + 15) / 16;
    *m0 = chunks * p / parts * 16;
    *m1 = chunks * (p + 1) / parts * 16 < M ? chunks * (p + 1) / parts * 16
                                            : M;
    lstm__ftz();
    return *m1 > *m0;
}

/* fn over row_parts' parts of the rows of C. */
static void gemm_rows(lstm__gemm_fn *fn, int ta, int tb, size_t M, size_t N,
                      size_t K, float alpha, const float *A, size_t lda,
                      const float *B, size_t ldb, float beta, float *C,
                      size_t ldc)
{
    int nt;
    const size_t parts = row_parts(M, M * N * K, &nt);
    if (parts == 1) {  /* no parallel region at all */
        lstm__ftz();
        fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t p = 0; p < parts; p++) {
        size_t m0, m1;
        if (part_rows(M, parts, p, &m0, &m1))
            fn(ta, tb, m1 - m0, N, K, alpha, ta ? A + m0 : A + m0 * lda, lda,
               B, ldb, beta, C + m0 * ldc, ldc);
    }
}

/* The product of lstm__gemm_live on live rows [q0,q1) (counting only
 * those): their runs of consecutive rows (a sequence of full length runs
 * on into the next), each at run[2r] (first row) and run[2r+1] (rows),
 * all to the set's gemm_runs at once, or one call of fn each. */
static void live_runs(int bf16, size_t nseq, size_t T, const size_t *len,
                      size_t q0, size_t q1, size_t N, size_t K,
                      const float *A, size_t lda, const float *B, size_t ldb,
                      float *C, size_t ldc)
{
    const lstm__kernels *k = lstm__k();
    lstm__gemm_fn *one = bf16 ? k->gemm_bf16 : k->gemm;
    lstm__gemm_runs_fn *all = bf16 ? NULL : k->gemm_runs;
    size_t *run = all && nseq ? malloc(2 * nseq * sizeof *run) : NULL;
    size_t n = 0, c = 0, r0 = 0, r1 = 0;  /* c: live rows before s */
    for (size_t s = 0; s <= nseq; s++) {
        size_t a = 0, e = 0;  /* sequence s's share of [q0,q1) */
        if (s < nseq && c < q1) {
            a = q0 > c ? q0 - c : 0;
            e = q1 - c < len[s] ? q1 - c : len[s];
            c += len[s];
            if (a >= e)
                continue;
            if (s * T + a == r1) {  /* on from the run before */
                r1 = s * T + e;
                continue;
            }
        }
        if (r1 > r0 && run) {  /* the run before is complete */
            run[2 * n] = r0;
            run[2 * n + 1] = r1 - r0;
            n++;
        } else if (r1 > r0)
            one(0, 0, r1 - r0, N, K, 1.0f, A + r0 * lda, lda, B, ldb, 0.0f,
                C + r0 * ldc, ldc);
        if (a >= e)  /* past the last sequence with live rows here */
            break;
        r0 = s * T + a;
        r1 = s * T + e;
    }
    if (run)
        all(n, run, N, K, A, lda, B, ldb, C, ldc);
    free(run);
}

/* Zeroes the rows of sequences [s0,s1) past their lengths. */
static void zero_padding(size_t s0, size_t s1, size_t T, const size_t *len,
                         size_t N, float *C, size_t ldc)
{
    for (size_t s = s0; s < s1; s++)
        for (size_t t = len[s]; t < T; t++)
            memset(C + (s * T + t) * ldc, 0, N * sizeof *C);
}

void lstm__gemm_live(int bf16, size_t nseq, size_t T, const size_t *len,
                     size_t N, size_t K, const float *A, size_t lda,
                     const float *B, size_t ldb, float *C, size_t ldc,
                     int zero_pad)
{
    lstm__gemm_fn *fn = bf16 ? lstm__k()->gemm_bf16 : lstm__k()->gemm;
    if (fn == lstm__gemm_blas) {  /* every row, split as lstm__gemm does */
        gemm_rows(fn, 0, 0, nseq * T, N, K, 1.0f, A, lda, B, ldb, 0.0f, C,
                  ldc);
        return;
    }
    size_t R = 0;  /* live rows */
    for (size_t s = 0; s < nseq; s++)
        R += len[s];
    int nt;
    const size_t parts = row_parts(R, R * N * K, &nt);
    if (parts == 1) {
        lstm__ftz();
        live_runs(bf16, nseq, T, len, 0, R, N, K, A, lda, B, ldb, C, ldc);
        if (zero_pad)
            zero_padding(0, nseq, T, len, N, C, ldc);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t p = 0; p < parts; p++) {
        size_t q0, q1;
        if (part_rows(R, parts, p, &q0, &q1))
            live_runs(bf16, nseq, T, len, q0, q1, N, K, A, lda, B, ldb, C,
                      ldc);
        if (zero_pad)
            zero_padding(nseq * p / parts, nseq * (p + 1) / parts, T, len, N,
                         C, ldc);
    }
}

void lstm__wgrad(int bf16, size_t M, size_t nseq, size_t T,
                 const size_t *len, const float *A1, const float *A2,
                 size_t lda, const float *X, size_t ldx, size_t N1,
                 float *C1, size_t ldc1, const float *H, size_t ldh,
                 size_t hstride, size_t N2, float *C2, size_t ldc2)
{
    lstm__wgrad_fn *fn = bf16 ? lstm__k()->wgrad_bf16 : lstm__k()->wgrad;
    if (!fn) {  /* the live rows of each sequence: its padding never */
        lstm__gemm_fn *gemm = bf16 ? lstm__gemm_bf16 : lstm__gemm;
        for (size_t s = 0; s < nseq; s++) {  /* reaches C (0 x NaN) */
            const size_t Ts = len ? len[s] : T;
            if (!Ts)
                continue;
            gemm(1, 0, M, N1, Ts, 1.0f, A1 + s * T * lda, lda, X + s * T * ldx,
                 ldx, 1.0f, C1, ldc1);
            gemm(1, 0, M, N2, Ts, 1.0f, A2 + s * T * lda, lda,
                 H + s * hstride, ldh, 1.0f, C2, ldc2);
        }
        return;
    }
    int nt;
    const size_t parts = row_parts(M, M * (N1 + N2) * nseq * T, &nt);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t p = 0; p < parts; p++) {
        size_t m0, m1;
        if (part_rows(M, parts, p, &m0, &m1))
            fn(m1 - m0, nseq, T, len, A1 + m0, A2 + m0, lda, X, ldx, N1,
               C1 + m0 * ldc1, ldc1, H, ldh, hstride, N2, C2 + m0 * ldc2,
               ldc2);
    }
}

void lstm__gemm(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                const float *A, size_t lda, const float *B, size_t ldb,
                float beta, float *C, size_t ldc)
{
    gemm_rows(lstm__k()->gemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta,
              C, ldc);
}

void lstm__gemm_bf16(int ta, int tb, size_t M, size_t N, size_t K,
                     float alpha, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc)
{
    gemm_rows(lstm__k()->gemm_bf16, ta, tb, M, N, K, alpha, A, lda, B, ldb,
              beta, C, ldc);
}
