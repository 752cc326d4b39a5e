/*
 * internal.h - what the library's files share and users do not see.
 * lib/core, lib/nn, lib/text, lib/io and lib/train include it; kernels/
 * does not (it has kernels.h).
 */
#ifndef LSTM_INTERNAL_H
#define LSTM_INTERNAL_H

#include <assert.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "lstm.h"
#include "../kernels/kernels.h"

/* The kernel table in use (tuned, or ref when forced). */
const lstm__kernels *lstm__k(void);
/* Threads for a parallel region doing `work` units (1 when it is small). */
int lstm__threads_for(size_t work);
/* Seconds on the monotonic clock (threads.c). */
double lstm__seconds(void);

/* Row-major GEMM (see kernels.h) with the rows of C split across threads.
 * Each element of C is computed by one thread with the whole K, so the
 * result does not depend on the thread count for a given BLAS kernel. */
void lstm__gemm(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                const float *A, size_t lda, const float *B, size_t ldb,
                float beta, float *C, size_t ldc);
/* C = A B (alpha 1, beta 0, neither transposed; lstm__gemm_bf16's GEMM
 * with bf16) for the rows of a batch that are not padding: A and C hold
 * nseq sequences of T rows, and only sequence s's first len[s] rows are
 * computed; with zero_pad its other rows of C are set to zero, else left
 * as they are. The live rows are split across threads as lstm__gemm
 * splits all of them: by the thread count set, never by the load. Where
 * the GEMM is BLAS's, every row is computed, as lstm__gemm would: a BLAS
 * kernel's last bits can depend on the rows it is given (OpenBLAS takes
 * a single row as a matrix-vector product, for one), and the runs of
 * live rows, unlike lstm__gemm's parts, change with the thread count; the
 * rows past the lengths then come out zero when A's are (gate
 * gradients), and are left to be overwritten otherwise. */
void lstm__gemm_live(int bf16, size_t nseq, size_t T, const size_t *len,
                     size_t N, size_t K, const float *A, size_t lda,
                     const float *B, size_t ldb, float *C, size_t ldc,
                     int zero_pad);
/* kernels.h's lstm__wgrad_fn with the rows of C1 and C2 split across
 * threads as lstm__gemm splits them (the set's kernel, or, without one,
 * lstm__gemm once per sequence for each, on its first len[s] rows: X and
 * H past them never reach C). bf16: on bfloat16 values, the set's
 * wgrad_bf16 or lstm__gemm_bf16. */
void lstm__wgrad(int bf16, size_t M, size_t nseq, size_t T,
                 const size_t *len, const float *A1, const float *A2,
                 size_t lda, const float *X, size_t ldx, size_t N1,
                 float *C1, size_t ldc1, const float *H, size_t ldh,
                 size_t hstride, size_t N2, float *C2, size_t ldc2);
/* The same with the set's bf16-mixed GEMM: A and B hold bfloat16 values. */
void lstm__gemm_bf16(int ta, int tb, size_t M, size_t N, size_t K,
                     float alpha, const float *A, size_t lda, const float *B,
                     size_t ldb, float beta, float *C, size_t ldc);

/* A barrier for the n threads of one parallel region, cheaper than
 * OpenMP's (measured on a 2-vCPU virtual machine: 0.2 us a crossing
 * against 1.7-1.9 for `#pragma omp barrier`): a waiting thread spins for
 * at most LSTM__SPIN_US microseconds, then sleeps until the last one
 * arrives (a futex on Linux; elsewhere it yields the CPU between checks),
 * so a thread held up by other processes does not keep its partner
 * burning a core. Initialise once, with no thread waiting on it. */
typedef struct {
    _Atomic unsigned arrived, gen, sleepers;
    unsigned n;
} lstm__barrier;
enum { LSTM__SPIN_US = 50 };
void lstm__barrier_init(lstm__barrier *b, unsigned n);
void lstm__barrier_wait(lstm__barrier *b);

/* The calling thread's share [*i0, *i1) of n items, inside a parallel
 * region: contiguous, in thread order, sizes differing by one at most. */
static inline void lstm__share(size_t n, size_t *i0, size_t *i1)
{
#ifdef _OPENMP
    size_t id = (size_t)omp_get_thread_num();
    size_t nt = (size_t)omp_get_num_threads();
#else
    size_t id = 0, nt = 1;
#endif
    *i0 = n * id / nt;
    *i1 = n * (id + 1) / nt;
}

/* xoshiro256** on a state the caller may hold in locals (lstm_rng_next,
 * and the loops that draw once per element). */
static inline uint64_t lstm__rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}
static inline uint64_t lstm__xoshiro(uint64_t s[4])
{
    const uint64_t out = lstm__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lstm__rotl(s[3], 45);
    return out;
}

/* The classifier's embedding tables (lstm_classifier_grad_rows' list) in
 * the order of their offsets, their ids NULL: where they lie, whatever
 * ran. */
size_t lstm__classifier_tables(const lstm_classifier *m,
                               lstm_sparse_rows out[2]);

/* Call order: a layer's weights exist only after lstm_params_alloc. */
#define LSTM__WEIGHTS_READY(ps, who)                                          \
    assert((ps)->w && who ": the parameter block is not allocated (call "     \
                        "lstm_params_alloc first)")

/* numel of a shape, checked: LSTM_EINVAL past LSTM_MAXDIM dimensions or
 * when the bytes overflow. */
/* lstm_read_file for what can only be a file (a checkpoint, a split):
 * anything but a regular file (a device, a pipe) is refused up front. */
int lstm__read_regular(const char *path, char **data, size_t *n, size_t max);

int lstm__shape_numel(int ndim, const size_t *shape, size_t *numel);

/* lib/train: the tensor blocks of a checkpoint, each laid out as the
 * parameter block: weights, AdamW's two moments, best weights, under these
 * name prefixes. lstm__save_blocks writes the first nblk of blk with the
 * metadata key0 = val0 first, then the caller's pairs. */
extern const char *const lstm__block_prefix[4];
int lstm__save_blocks(const char *path, const lstm_params *ps,
                      const float *const *blk, size_t nblk, const char *key0,
                      const char *val0, const char *const *keys,
                      const char *const *vals, size_t nmeta);

/* Bump allocation of one block: plan with sizes, then carve. */
typedef struct { char *base; size_t used; } lstm__carver;
float *lstm__carve(lstm__carver *c, size_t nfloats);

#endif
