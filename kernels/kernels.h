/*
 * kernels.h - the hot loops of liblstm, and the table that picks them.
 *
 * Each op exists as a portable single-thread _ref version (plain loops,
 * libm's expf/tanhf) beside a tuned one. Kernels never allocate, never fail
 * and never start threads: the library splits work across threads and
 * calls them on slices. Backward kernels that ADD into a buffer say so.
 * This header is shared by lib/ and kernels/; kernels/ includes nothing
 * from lib/.
 *
 * Shapes: T time, H hidden, G = 4H gates (rows in the order i, f, g, o).
 */
#ifndef LSTM_KERNELS_H
#define LSTM_KERNELS_H

#include <stddef.h>

/* Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C.
 * ta: A is stored (K,M) and used transposed; likewise tb, B stored (N,K). */
typedef void lstm__gemm_fn(int ta, int tb, size_t M, size_t N, size_t K,
                           float alpha, const float *A, size_t lda,
                           const float *B, size_t ldb, float beta,
                           float *C, size_t ldc);

/* One LSTM layer over all T steps, for nb sequences of a batch slice, and
 * of their hidden units [k0,k1) (the tuned kernels; the references take
 * only [0,H)). A team of threads can share the units of the same rows:
 * each calls the kernel with its own range and a w_pk packed for it, and
 * the kernel calls sync() (a barrier of that team; NULL when alone) after
 * every step. Ranges other than [0,H) start and end on multiples of 16.
 *   gates (nb,T,G)  in: x W_ih^T; out: activations i,f,g,o (zero at
 *                   t >= len[b])
 *   bias (G)        b_ih + b_hh, added to every step's gates
 *   hs, cs (nb,T+1,H)  in: slot 0 holds h0, c0; out: slot t+1 the state
 *                   after step t (carried unchanged past len[b])
 *   y (nb,T,H)      out: h_t, zero at t >= len[b]
 *   w_hh (G,H); w_pk: the set's pack_fwd(w_pk, w_hh, H, k0, k1, bf16)
 *   (the tuned kernel reads only this, the reference only w_hh).
 * Per step, in PyTorch's order:
 *   i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
 *   c' = f*c + i*g    h' = o*tanh(c')   with a = gates + bias + W_hh h.
 * bf16 != 0 (bf16-mixed precision): the product's operands are bfloat16
 * values, its sums float: W_hh is used rounded to bf16 (the tuned kernel
 * gets w_pk packed from rounded weights, as float panels or, in the
 * avx512bf16 set, as bfloat16 pairs, in the amx set as bfloat16 tiles;
 * the reference rounds w_hh as it
 * reads it) and h is stored in hs rounded (it feeds the next product and
 * dW_hh); y, cs and the gate math stay float. */
typedef void lstm__lstm_fwd_fn(size_t nb, size_t T, size_t H, size_t k0,
                               size_t k1, const size_t *len, float *gates,
                               const float *bias, float *hs, float *cs,
                               float *y, const float *w_hh, const float *w_pk,
                               int bf16, void (*sync)(void));

/* Backward through time of the forward above, for the same slice.
 *   dA (nb,T,G)     out: gradient of the gate pre-activations a (zero past
 *                   len[b]); the weight and input gradients follow from it
 *                   by GEMMs after the loop
 *   dh, dc (nb,H)   in: gradient at the final state (dhn, dcn);
 *                   out: gradient at h0, c0
 *   dy (nb,T,H)     gradient of y, or NULL; ignored past len[b]
 *   gates, cs       as the forward left them
 *   w_hh (G,H); w_pk: the set's pack_bwd(w_pk, w_hh, H, k0, k1, bf16)
 *   db (nb,G)       out: for each sequence, the sum of its dA rows over t
 *                   (from t = len[b]-1 down to 0): the bias gradient's
 *                   share of that sequence, summed while dA is in cache
 *   scratch: nb*H floats (columns [k0,k1) used; one for the whole team).
 * bf16 != 0: W_hh used rounded as in the forward, and dA stored rounded to
 * bf16 (it is an operand of dh_{t-1} = dA W_hh and of the GEMMs after). */
typedef void lstm__lstm_bwd_fn(size_t nb, size_t T, size_t H, size_t k0,
                               size_t k1, const size_t *len, float *dA,
                               float *dh, float *dc, const float *dy,
                               const float *gates, const float *cs,
                               const float *w_hh, const float *w_pk,
                               float *db, float *scratch, int bf16,
                               void (*sync)(void));

/* One GRU layer (nn.GRU's equations, gate rows in the order r, z, n) over
 * all T steps, for nb sequences of a batch slice (whole rows, all units):
 *   gates (nb,T,G)  G = 3H; in: x W_ih^T (no bias); out: the activations
 *                   r, z, n (zero at t >= len[b])
 *   b_ih, b_hh (G)  the biases, kept apart: b_hn sits inside r * (...)
 *   hs (nb,T+1,H)   in: slot 0 holds h0; out: slot t+1 the state after
 *                   step t (carried unchanged past len[b])
 *   hn (nb,T,H)     out: W_hn h_{t-1} + b_hn, which the backward needs
 *                   (zero at t >= len[b])
 *   y (nb,T,H)      out: h_t, zero at t >= len[b]
 *   w_hh (G,H); w_pk: lstm__pack_gru_fwd(w_pk, w_hh, H) (the tuned kernel
 *   reads only this, the reference only w_hh)
 *   scratch: nb*G floats.
 * Per step, in PyTorch's order, with s = W_hh h + b_hh:
 *   r = sigmoid(a_r + b_ir + s_r)   z = sigmoid(a_z + b_iz + s_z)
 *   n = tanh(a_n + b_in + r * s_n)  h' = n + z * (h - n). */
typedef void lstm__gru_fwd_fn(size_t nb, size_t T, size_t H,
                              const size_t *len, float *gates,
                              const float *b_ih, const float *b_hh,
                              float *hs, float *hn, float *y,
                              const float *w_hh, const float *w_pk,
                              float *scratch);

/* Backward through time of the GRU forward above, for the same slice.
 *   dA (nb,T,G)     out: gradient of the input side's pre-activations
 *                   (x W_ih^T + b_ih), zero past len[b]
 *   dAh (nb,T,G)    out: gradient of the hidden side's (W_hh h + b_hh):
 *                   equal to dA in r and z, r times it in n
 *   dh (nb,H)       in: gradient at the final state; out: at h0
 *   dy (nb,T,H)     gradient of y, or NULL; ignored past len[b]
 *   gates, hs, hn   as the forward left them
 *   w_hh (G,H); w_pk: lstm__pack_gru_bwd(w_pk, w_hh, H)
 *   db (nb,2G)      out: for each sequence, the sums of its dA rows over t
 *                   (G floats), then of its dAh rows: its share of the bias
 *                   gradients, summed while the rows are in cache
 *   scratch: nb*H floats. */
typedef void lstm__gru_bwd_fn(size_t nb, size_t T, size_t H,
                              const size_t *len, float *dA, float *dAh,
                              float *dh, const float *dy, const float *gates,
                              const float *hs, const float *hn,
                              const float *w_hh, const float *w_pk,
                              float *db, float *scratch);

/* dst[k] = src[k] rounded to the nearest bfloat16 (lstm__vbf16 in vmath.h);
 * dst may be src. */
void lstm__round_bf16(float *dst, const float *src, size_t n);
/* W_hh packed for the tuned recurrence of units [k0,k1), n = k1 - k0, in
 * panels of 16 columns (lstm__pack16_size(M, N) floats for an (M,N)
 * matrix: M x ceil(N/16) x 16, zero-padded):
 *   forward:  per gate q, the (H,n) block W_hh[qH+k0 .. qH+k1)^T,
 *             lstm__pack_fwd_size(H, n) floats in all;
 *   backward: the (G,n) block of columns [k0,k1) of W_hh,
 *             lstm__pack_bwd_size(H, n) floats.
 * When H is a multiple of 16 and the ranges split it on multiples of 16,
 * the packs of all ranges fill exactly the sizes of [0,H). */
size_t lstm__pack16_size(size_t M, size_t N);
size_t lstm__pack_fwd_size(size_t H, size_t n);
size_t lstm__pack_bwd_size(size_t H, size_t n);
void lstm__pack_fwd(float *dst, const float *w_hh, size_t H, size_t k0,
                    size_t k1);
void lstm__pack_bwd(float *dst, const float *w_hh, size_t H, size_t k0,
                    size_t k1);
/* W_hh as a set's lstm_fwd (pack_fwd) or lstm_bwd (pack_bwd) reads it,
 * for bf16-mixed (bf16 != 0) or not, in at most the floats of
 * lstm__pack_fwd_size(H, k1 - k0) (lstm__pack_bwd_size): lstm__wpack_*
 * packs the panels above, rounded to bfloat16 values for bf16;
 * lstm__wpack_*_pairs (avx512bf16) bfloat16 pairs for vdpbf16ps instead,
 * lstm__wpack_*_amx (amx) AMX tiles (half the bytes; lstm_cell.c) where
 * H allows. */
typedef void lstm__wpack_fn(float *dst, const float *w_hh, size_t H,
                            size_t k0, size_t k1, int bf16);
lstm__wpack_fn lstm__wpack_fwd, lstm__wpack_bwd;
/* The GRU's W_hh (3H,H) packed whole, in the same panels: forward its
 * transpose (H,3H), backward itself. */
size_t lstm__pack_gru_fwd_size(size_t H);
size_t lstm__pack_gru_bwd_size(size_t H);
void lstm__pack_gru_fwd(float *dst, const float *w_hh, size_t H);
void lstm__pack_gru_bwd(float *dst, const float *w_hh, size_t H);

/* AdamW over n parameters, with PyTorch's scalars precomputed:
 *   w = w*decay;  m = m*b1 + omb1*g;  v = v*b2 + omb2*g*g;
 *   w = w + step_neg * m / (sqrt(v)/bc2_sqrt + eps) */
typedef struct {
    float decay, b1, b2, omb1, omb2, step_neg, bc2_sqrt, eps;
} lstm__adamw_args;
/* Returns how many g[k] are not finite (inf or NaN). g NULL: every g[k]
 * is +0, and the update gives the bits it would with a g of zeros. */
typedef size_t lstm__adamw_fn(float *w, float *m, float *v, const float *g,
                              size_t n, const lstm__adamw_args *a);

/* A recurrent layer's weight gradients from its gate gradients, for rows
 * [0,M) of both (a caller's slice starts A1, A2 at a column and C1, C2 at
 * a row), K = nseq*T rows of gate gradients:
 *   C1 (M,N1) += A1^T X            A1 (K,M) at lda; X (K,N1) at ldx
 *   C2 (M,N2) += sum_s A2_s^T H_s  A2_s = A2 + s*T*lda (T rows);
 *                                  H_s = H + s*hstride (T rows at ldh)
 * Every element is summed over k in order: the bits of the set's GEMM
 * called once per s for C1 and for C2 on that sequence's rows, which is
 * what the library does for a set without this kernel (NULL). len, unless
 * NULL: the rows of sequence s past len[s] are padding, whose gate
 * gradients are zero; they are left out (or taken as zero), so that
 * whatever X and H hold there (an infinite or NaN input, say) never
 * reaches C, as PyTorch never sees a packed sequence's padding. */
typedef void lstm__wgrad_fn(size_t M, size_t nseq, size_t T,
                            const size_t *len, const float *A1,
                            const float *A2, size_t lda, const float *X,
                            size_t ldx, size_t N1, float *C1, size_t ldc1,
                            const float *H, size_t ldh, size_t hstride,
                            size_t N2, float *C2, size_t ldc2);

/* C = A B (neither transposed, alpha 1, beta 0) for n runs of rows: run r
 * is rows [run[2r], run[2r] + run[2r+1]) of A and C (a batch's rows that
 * are not padding). The bits of the set's GEMM called once per run. */
typedef void lstm__gemm_runs_fn(size_t n, const size_t *run, size_t N,
                                size_t K, const float *A, size_t lda,
                                const float *B, size_t ldb, float *C,
                                size_t ldc);

typedef struct {
    const char *name;
    lstm__gemm_fn *gemm;
    /* the GEMM of bf16-mixed precision: operands that are bfloat16 values
     * (rounded by lstm__round_bf16), products exact, float sums. Sets
     * without bfloat16 units use their float GEMM, which computes the same
     * products; "avx512bf16" has vdpbf16ps (gemm_bf16.c), "amx" AMX-BF16
     * tiles (gemm_amx.c). */
    lstm__gemm_fn *gemm_bf16;
    lstm__lstm_fwd_fn *lstm_fwd;
    lstm__lstm_bwd_fn *lstm_bwd;
    lstm__wpack_fn *pack_fwd, *pack_bwd;  /* W_hh for the two above */
    lstm__gru_fwd_fn *gru_fwd;
    lstm__gru_bwd_fn *gru_bwd;
    lstm__adamw_fn *adamw;
    lstm__wgrad_fn *wgrad;  /* NULL: the GEMM above, one call at a time */
    /* the same on bfloat16 values for bf16-mixed, its sums those of
     * gemm_bf16 up to float rounding (not its bits); NULL: gemm_bf16, one
     * call at a time */
    lstm__wgrad_fn *wgrad_bf16;
    lstm__gemm_runs_fn *gemm_runs;  /* NULL: gemm, one call per run */
} lstm__kernels;

/* The kernel sets: "ref" (the references), and the tuned kernels compiled
 * for "generic" (baseline) code, "avx2" (AVX2 + FMA), "avx512", and
 * "avx512bf16" (avx512's, with the bf16-mixed GEMM and recurrence on
 * AVX512-BF16), "amx" (the same on AMX-BF16 tiles, and software
 * prefetches: each sequence's next step in the LSTM's backward and both
 * GRU directions, rowmm.h's prefetch_span, paced through rowmm_pf in the
 * LSTM's backward past 8 rows a thread; the next K block of the weight
 * gradients, lstm__wgrad_amx and rowmm_pf).
 * Returns NULL for a name this build or this CPU cannot run. */
const lstm__kernels *lstm__kernels_get(const char *name);
/* The fastest tuned set this CPU runs. */
const lstm__kernels *lstm__kernels_best(void);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LSTM_X86 1
#define LSTM_ISA_AVX2 __attribute__((target("arch=x86-64-v3")))
/* GCC's auto-vectoriser is told to use whole 512-bit vectors; clang (the
 * fuzzing build) takes no such target option and keeps its own choice */
#if defined(__clang__)
#define LSTM_PVW512 ""
#else
#define LSTM_PVW512 ",prefer-vector-width=512"
#endif
#define LSTM_ISA_AVX512                                                       \
    __attribute__((target("arch=x86-64-v4" LSTM_PVW512)))
#else
#define LSTM_X86 0
#endif

lstm__gemm_fn lstm__gemm_ref, lstm__gemm_blas;
lstm__lstm_fwd_fn lstm__lstm_fwd_ref, lstm__lstm_fwd_generic;
lstm__lstm_bwd_fn lstm__lstm_bwd_ref, lstm__lstm_bwd_generic;
lstm__gru_fwd_fn lstm__gru_fwd_ref, lstm__gru_fwd_generic;
lstm__gru_bwd_fn lstm__gru_bwd_ref, lstm__gru_bwd_generic;
lstm__adamw_fn lstm__adamw_ref, lstm__adamw_generic;
#if LSTM_X86
lstm__gemm_fn lstm__gemm_avx512, lstm__gemm_bf16_avx512, lstm__gemm_bf16_amx;
lstm__gemm_runs_fn lstm__gemm_runs_avx512;
lstm__wgrad_fn lstm__wgrad_avx512, lstm__wgrad_amx, lstm__wgrad_bf16_amx;
lstm__lstm_fwd_fn lstm__lstm_fwd_avx2, lstm__lstm_fwd_avx512,
    lstm__lstm_fwd_avx512bf16, lstm__lstm_fwd_amx;
lstm__lstm_bwd_fn lstm__lstm_bwd_avx2, lstm__lstm_bwd_avx512,
    lstm__lstm_bwd_avx512bf16, lstm__lstm_bwd_amx;
lstm__wpack_fn lstm__wpack_fwd_pairs, lstm__wpack_bwd_pairs,
    lstm__wpack_fwd_amx, lstm__wpack_bwd_amx;
lstm__gru_fwd_fn lstm__gru_fwd_avx2, lstm__gru_fwd_avx512, lstm__gru_fwd_amx;
lstm__gru_bwd_fn lstm__gru_bwd_avx2, lstm__gru_bwd_avx512, lstm__gru_bwd_amx;
lstm__adamw_fn lstm__adamw_avx2, lstm__adamw_avx512;
#endif

/* Sets flush-to-zero and denormals-are-zero in the calling thread. Every
 * thread that runs kernels calls it: backward through padding produces
 * denormals, which are about 20 times slower on x86. */
void lstm__ftz(void);
/* Asks BLAS to run one thread per caller (the library does the threading). */
void lstm__blas_single_thread(void);

#endif
