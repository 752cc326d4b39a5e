/*
 * lstm.h - the public API of liblstm, a CPU LSTM library in C11.
 *
 * A two-layer LSTM over a batch of padded sequences, forward and backward:
 *
 *     lstm_params ps;  lstm_lstm net;  lstm_rng rng;
 *     lstm_params_init(&ps);
 *     lstm_lstm_init(&net, &ps, "lstm", I, H, 2, 0.0f);  // reserves weights
 *     lstm_params_alloc(&ps);                             // one block + grads
 *     lstm_rng_seed(&rng, 42);
 *     lstm_lstm_reset(&net, &rng);                        // PyTorch's init
 *     lstm_lstm_forward(&net, x, len, NULL, NULL, B, T, 1, &rng);
 *     // net.out is (B,T,H), net.hn and net.cn are (L,B,H)
 *     lstm_params_zero_grad(&ps);
 *     lstm_lstm_backward(&net, dout, dhn, NULL, dx, NULL, NULL);
 *     // ps.g now holds every weight gradient, dx the input gradient
 *     lstm_lstm_free(&net);  lstm_params_free(&ps);
 *
 * Shape letters, fixed everywhere: B batch, T time, I input, H hidden,
 * G = 4H gates, L layers, V vocabulary, E embedding size, C classes.
 * Arrays are row-major float32; counts are size_t.
 *
 * Errors the caller cannot prevent (allocation, I/O, malformed files, ids out
 * of range) come back as a negative LSTM_E* code; lstm_errmsg() then holds a
 * one-line message for the calling thread. Broken preconditions (shapes the
 * caller's own code got wrong) trip an assert that prints file:line.
 * The library never prints and never exits.
 */
#ifndef LSTM_H
#define LSTM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ------------------------------------------------------------ */

#define LSTM_VERSION_MAJOR 0
#define LSTM_VERSION_MINOR 6
#define LSTM_VERSION_PATCH 0
/* "MAJOR.MINOR.PATCH" of the library linked in (the macros give the
 * header's). */
const char *lstm_version(void);

/* ---- errors ------------------------------------------------------------ */

enum {
    LSTM_OK = 0,
    LSTM_EINVAL = -1,   /* an argument is out of its domain */
    LSTM_ENOMEM = -2,   /* an allocation failed */
    LSTM_EIO = -3,      /* a read or write failed */
    LSTM_EFORMAT = -4,  /* a file is malformed */
    LSTM_ERANGE = -5,   /* an index (token id, label) is out of range */
    LSTM_ENUMERIC = -6  /* a loss or gradient is not finite */
};

/* A fixed description of an error code. */
const char *lstm_strerror(int err);
/* The message of the last error set in this thread ("" when none). */
const char *lstm_errmsg(void);
/* Sets this thread's message (printf format; the arguments may include
 * lstm_errmsg() to extend the last message) and returns err. */
int lstm_error(int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- threads and kernels ----------------------------------------------- */

/* The most threads of the library's parallel regions; n <= 0 means all
 * cores. A region runs fewer while other processes keep CPUs busy (no more
 * than the CPUs they leave free, from /proc/loadavg, re-read at most every
 * 10 ms), and that never changes a result: work is divided by n, not by
 * the threads running. With the library's own GEMM (the avx512 sets) n
 * does not change results either; with OpenBLAS's (avx2, generic) it can
 * move last bits (docs/robustness.md). BLAS always runs one thread per
 * caller inside the regions, so the two thread pools never compete. */
void lstm_set_threads(int n);
int lstm_get_threads(void);
/* Kernel sets: "ref" (portable single-thread references), or the tuned
 * kernels compiled for "generic" code, "avx2" (AVX2 + FMA), "avx512",
 * "avx512bf16" (avx512's, and bf16-mixed products on AVX512-BF16 units;
 * the default where the CPU has them and no AMX), or "amx" (avx512's, and
 * bf16-mixed products on AMX-BF16 tiles; the default where the CPU has
 * them and Linux grants the process their state).
 * The default is the set named by the environment variable LSTM_KERNELS at
 * start-up, else the fastest set the CPU runs. lstm_kernels_select(NAME)
 * switches (NULL: back to the default) and fails for a set the CPU cannot
 * run. */
int lstm_kernels_select(const char *name);
/* Forces the references (on != 0) or the default set; returns whether the
 * references were in use. */
int lstm_kernels_use_ref(int on);
/* The name of the set in use. */
const char *lstm_kernels_name(void);

/* ---- allocation -------------------------------------------------------- */

/* Every allocation of the library goes through these two. */
void *lstm_alloc(size_t bytes);  /* zeroed, 64-byte aligned; NULL on failure */
void lstm_free(void *p);
/* Testing hooks: make the n-th allocation from now fail (0: never), and
 * count the blocks currently live. */
void lstm_debug_fail_alloc(long n);
long lstm_debug_live_allocs(void);

/* ---- random numbers ---------------------------------------------------- */

/* xoshiro256** seeded through splitmix64: the same seed gives the same
 * stream on every machine. */
typedef struct { uint64_t s[4]; } lstm_rng;
void lstm_rng_seed(lstm_rng *r, uint64_t seed);
uint64_t lstm_rng_next(lstm_rng *r);
double lstm_rng_uniform(lstm_rng *r);               /* [0, 1) */
double lstm_rng_normal(lstm_rng *r);                /* N(0, 1) */
size_t lstm_rng_below(lstm_rng *r, size_t n);       /* [0, n), unbiased */
void lstm_rng_shuffle(lstm_rng *r, size_t *a, size_t n); /* Fisher-Yates */
void lstm_fill_uniform(float *x, size_t n, float lo, float hi, lstm_rng *r);
void lstm_fill_normal(float *x, size_t n, float mean, float std, lstm_rng *r);

/* ---- tensors ----------------------------------------------------------- */

#define LSTM_MAXDIM 4
typedef struct {
    float *data;
    size_t shape[LSTM_MAXDIM];
    int ndim;
    size_t numel;
    int owner;          /* 1: data was allocated by lstm_tensor_init */
} lstm_tensor;

/* Allocates a zeroed tensor. */
int lstm_tensor_init(lstm_tensor *t, int ndim, const size_t *shape);
/* A tensor over memory the caller owns; nothing is allocated. */
lstm_tensor lstm_tensor_view(float *data, int ndim, const size_t *shape);
/* Reinterprets t's data with another shape of the same numel. */
int lstm_tensor_reshape(lstm_tensor *t, int ndim, const size_t *shape);
void lstm_tensor_free(lstm_tensor *t);

/* ---- parameters: one block for all weights, a twin block for grads ----- */

typedef struct {
    char name[64];      /* PyTorch's name, e.g. "lstm.lstm.weight_ih_l0" */
    int ndim;
    size_t shape[LSTM_MAXDIM];
    size_t off, numel;  /* place in the block */
} lstm_param;

typedef struct {
    float *w, *g;       /* weights and gradients, n floats each */
    size_t n;
    lstm_param *p;      /* np named slices, in registration order */
    size_t np, cap;
} lstm_params;

void lstm_params_init(lstm_params *ps);
/* Reserves a named slice; *off receives its offset. Only before alloc. */
int lstm_params_add(lstm_params *ps, const char *name, int ndim,
                    const size_t *shape, size_t *off);
/* Allocates both blocks, zeroed. */
int lstm_params_alloc(lstm_params *ps);
void lstm_params_zero_grad(lstm_params *ps);
/* The slice called name, or NULL. */
const lstm_param *lstm_params_find(const lstm_params *ps, const char *name);
/* Tensor views of a slice's weights and gradients. */
lstm_tensor lstm_params_weight(const lstm_params *ps, const lstm_param *p);
lstm_tensor lstm_params_grad(const lstm_params *ps, const lstm_param *p);
void lstm_params_free(lstm_params *ps);
/* The 2-norm of all gradients (accumulated in double); not finite when any
 * gradient is not. */
double lstm_params_grad_norm(const lstm_params *ps);
/* torch.nn.utils.clip_grad_norm_: when the norm exceeds max_norm, scales
 * every gradient by max_norm / (norm + 1e-6). Returns the norm before. */
double lstm_params_clip_grad_norm(lstm_params *ps, double max_norm);
/* The last slice, in the order they were added, whose gradients
 * (grads != 0) or weights hold a NaN or an infinity, or NULL. For a model
 * whose slices run from input to output, that is the layer nearest the
 * loss: where backpropagation met the bad value first. */
const lstm_param *lstm_params_nonfinite(const lstm_params *ps, int grads);

/* ---- layers -------------------------------------------------------------
 * Every layer keeps offsets into a lstm_params block. _init reserves the
 * weights, _reset initialises them as PyTorch does (after lstm_params_alloc),
 * _forward computes, _backward ADDS into the gradient block (the caller
 * zeroes it) and, where it takes a dx pointer, OVERWRITES dx.
 * Call order: _reset or _forward before lstm_params_alloc trips an assert;
 * a backward needs a forward of the same layer (LSTM_EINVAL otherwise).
 * Results a layer keeps in its struct (lstm_lstm's out, hn, cn; the
 * classifier's logp) are valid until that layer's next forward. A
 * generator argument r may be NULL where no dropout applies (train == 0,
 * or dropout 0). */

/* nn.Embedding(V, E, padding_idx): weight "<name>.weight" (V,E), N(0,1)
 * with the padding row zero. padding_idx < 0: none. */
typedef struct {
    lstm_params *ps;
    size_t off_w, V, E;
    long pad;
} lstm_embedding;

int lstm_embedding_init(lstm_embedding *e, lstm_params *ps, const char *name,
                        size_t V, size_t E, long padding_idx);
void lstm_embedding_reset(lstm_embedding *e, lstm_rng *r);
/* out (n,E) = weight[ids[k]]; LSTM_ERANGE when an id is outside [0,V). */
int lstm_embedding_forward(const lstm_embedding *e, float *out,
                           const int32_t *ids, size_t n);
/* dW[ids[k]] += dout[k], skipping the padding row (a scatter-add into the
 * rows used). ids must have passed forward. */
void lstm_embedding_backward(const lstm_embedding *e, const float *dout,
                             const int32_t *ids, size_t n);

/* nn.Linear(in, out): "<name>.weight" (out,in), "<name>.bias" (out), both
 * U(-1/sqrt(in), 1/sqrt(in)). */
typedef struct {
    lstm_params *ps;
    size_t off_w, off_b, in, out;
} lstm_dense;

int lstm_dense_init(lstm_dense *d, lstm_params *ps, const char *name,
                    size_t in, size_t out);
void lstm_dense_reset(lstm_dense *d, lstm_rng *r);
/* y (B,out) = x (B,in) W^T + b */
void lstm_dense_forward(const lstm_dense *d, float *y, const float *x,
                        size_t B);
/* dW += dy^T x, db += sum_b dy; dx (B,in) = dy W unless dx is NULL. */
void lstm_dense_backward(const lstm_dense *d, float *dx, const float *dy,
                         const float *x, size_t B);

/* ReLU; backward uses the forward output y. dx may alias dy. */
void lstm_relu_forward(float *y, const float *x, size_t n);
void lstm_relu_backward(float *dx, const float *dy, const float *y, size_t n);

/* Inverted dropout: mask[k] = 0 with probability p, else 1/(1-p), and
 * y = x * mask. With p == 0 the mask is all ones. dx may alias dy. */
void lstm_dropout_forward(float *y, float *mask, const float *x, size_t n,
                          float p, lstm_rng *r);
void lstm_dropout_backward(float *dx, const float *dy, const float *mask,
                           size_t n);

/* Log-softmax over C classes fused with the NLL loss, mean over B rows.
 * Writes logp (B,C) and *loss; LSTM_ERANGE when a label is outside [0,C). */
int lstm_logsoftmax_nll_forward(float *logp, float *loss, const float *logits,
                                const int32_t *y, size_t B, size_t C);
/* dlogits (B,C) = (softmax - onehot(y)) / B: the gradient of the mean loss. */
void lstm_logsoftmax_nll_backward(float *dlogits, const float *logp,
                                  const int32_t *y, size_t B, size_t C);

/* Row-wise log-softmax and softmax of x (B,C) into y (B,C); y may be x. */
void lstm_log_softmax(float *y, const float *x, size_t B, size_t C);
void lstm_softmax(float *y, const float *x, size_t B, size_t C);
/* The index of the largest of x[0..n) (the first of equals). */
size_t lstm_argmax(const float *x, size_t n);
/* idx[0..k) = the indices of the k largest of x[0..n), largest first (ties:
 * the lower index first); k <= n. */
void lstm_topk(const float *x, size_t n, size_t k, size_t *idx);
/* A class drawn from softmax(logits / temperature) over C classes, with
 * one draw of r; temperature <= 0 gives the argmax. */
size_t lstm_sample(const float *logits, size_t C, float temperature,
                   lstm_rng *r);

/* The NLL over every step of a (B,T) batch of logits (B,T,C), as
 * F.cross_entropy(logits.view(-1,C), y.view(-1), ignore_index=ignore):
 * the mean over the targets that are not `ignore` (0 when there are none).
 * Writes logp (B*T,C), *loss and, unless NULL, *count (targets counted).
 * LSTM_ERANGE when a counted target is outside [0,C). */
int lstm_seq_nll_forward(float *logp, float *loss, size_t *count,
                         const float *logits, const int32_t *y, size_t N,
                         size_t C, int32_t ignore);
/* dlogits (N,C) of that mean: (softmax - onehot) / count on counted rows,
 * zero on ignored ones. */
void lstm_seq_nll_backward(float *dlogits, const float *logp,
                           const int32_t *y, size_t N, size_t C,
                           int32_t ignore);

/* nn.MSELoss() (mean over n): returns the loss; with dx non-NULL writes
 * its gradient 2(x - t)/n. */
float lstm_mse_loss(float *dx, const float *x, const float *t, size_t n);
/* nn.BCEWithLogitsLoss() (mean over n), computed stably as
 * max(x,0) - x*t + log(1 + exp(-|x|)); with dx non-NULL writes its
 * gradient (sigmoid(x) - t)/n. */
float lstm_bce_logits_loss(float *dx, const float *x, const float *t,
                           size_t n);

/* nn.LSTM(I, H, L, batch_first=True, dropout): for each layer k the four
 * slices "<name>.weight_ih_l<k>" (G,I or H), "<name>.weight_hh_l<k>" (G,H),
 * "<name>.bias_ih_l<k>" (G), "<name>.bias_hh_l<k>" (G), gate rows in the
 * order i, f, g, o, all U(-1/sqrt(H), 1/sqrt(H)): PyTorch's layout, so
 * weights move between the two without permutation.
 *
 * Forward keeps what backward needs in the struct's workspace, and the
 * results in it:
 *   out (B,T,H)  the last layer's outputs, zero at t >= len[b]
 *   hn, cn (L,B,H)  each layer's state after step len[b]-1
 * With lengths, a sequence's state stops at its last token, as a
 * pack_padded_sequence input gives. x must stay valid until backward; an
 * evaluation forward in between destroys what backward needs (use a
 * second LSTM over the same weights: lstm_lstm_share).
 *
 * precision (set after init, before a forward; LSTM_FP32 by default):
 * LSTM_BF16_MIXED runs every matrix product of the layer, forward and
 * backward, on operands rounded to bfloat16 (round to nearest even) with
 * float sums: W_ih, W_hh, the layer inputs, h_{t-1}, and the gate
 * gradients. The weights, their gradients, c, the gate math and out stay
 * float (the master weights the optimizer updates). With it, the
 * intermediate layers' outputs in ys and xin hold their rounded values.
 * With kernel set "avx512bf16" the layer's products run on the CPU's
 * bfloat16 units (vdpbf16ps: products exact, float sums in pairs of K),
 * with "amx" on its AMX tiles (tdpbf16ps, likewise). Elsewhere
 * the products run as float products of the rounded values: the same
 * numbers a bf16 x bf16 -> fp32 unit gives, but no faster than
 * LSTM_FP32. */
enum { LSTM_FP32 = 0, LSTM_BF16_MIXED = 1 };
/* The recurrent cell of an lstm_lstm: the LSTM's, or the GRU's
 * (lstm_gru_init). */
enum { LSTM_CELL_LSTM = 0, LSTM_CELL_GRU = 1 };
/* The phases of an lstm_lstm's passes that t_phase times: the input
 * projections (X W_ih^T), the forward recurrences, the backward
 * recurrences (the gate gradients dA), the weight gradients (dW_ih,
 * dW_hh) and the input gradients (dX = dA W_ih; a reverse direction's
 * put back in time order there too). The rest of a pass (dropout, bias
 * sums, a bidirectional layer's other reorderings) is not timed. */
enum {
    LSTM_PHASE_INPROJ, LSTM_PHASE_FWD, LSTM_PHASE_BWD, LSTM_PHASE_WGRAD,
    LSTM_PHASE_DX, LSTM_PHASES
};

typedef struct {
    lstm_params *ps;
    size_t I, H, L;
    size_t D;           /* directions: 1, or 2 (bidirectional) */
    int cell;           /* LSTM_CELL_LSTM or LSTM_CELL_GRU; G = 4H or 3H */
    float dropout;
    int precision;      /* LSTM_FP32 or LSTM_BF16_MIXED */
    size_t *off;        /* 4 offsets per run (layer k, direction d at
                           k*D + d): w_ih, w_hh, b_ih, b_hh */
    /* workspace, grown on demand */
    size_t B, T, ws_bytes;
    int train;
    const float *x;
    float *ws;          /* one allocation holding all the arrays below */
    float *gates;       /* L*D x (B,T,G): gate activations i,f,g,o
                           (GRU: r,z,n) */
    float *hs, *cs;     /* L*D x (B,T+1,H): state, slot 0 = h0/c0 (GRU: cs
                           holds (B,T,H) W_hn h + b_hn per run) */
    float *ys;          /* L*D x (B,T,H): run outputs, zero past len (the
                           reverse direction's in its own time order) */
    float *cat;         /* D=2: L x (B,T,2H): layer outputs [fwd, rev] */
    float *rev;         /* D=2: (B,T,max(I,2H)) a layer input reversed */
    float *mask;        /* (L-1) x (B,T,D*H): dropout masks between layers */
    float *xin;         /* (L-1) x (B,T,D*H): inputs of layers 1.. */
    float *dA;          /* (B,T,G) backward scratch */
    float *dAh;         /* GRU: (B,T,G) the hidden side's gate gradients */
    float *dbs;         /* (B,G) each sequence's sum of dA over t; GRU:
                           (B,2G), then of dAh */
    float *dbuf;        /* (B,T,D*H) backward scratch */
    float *dyd;         /* D=2: (2,B,T,H) output gradient per direction */
    float *dhc;         /* (2,B,H) backward state gradients */
    float *wpk;         /* L*D x W_hh^T packed for the forward recurrence */
    float *wpk_bwd;     /* W_hh packed for the backward recurrence */
    float *scratch;     /* (B,G) per-row kernel scratch */
    float *xr;          /* bf16: (B,T,I) the input x, rounded */
    float *wr;          /* (G,max(I,D*H)): one W_ih^T, or W_ih rounded */
    size_t *len;        /* (B) lengths clamped to T */
    float *out, *hn, *cn;
    /* seconds spent in forward and backward passes since init, per phase
     * (LSTM_PHASE_*), summed over the layers and directions */
    double t_phase[LSTM_PHASES];
} lstm_lstm;

int lstm_lstm_init(lstm_lstm *l, lstm_params *ps, const char *name,
                   size_t I, size_t H, size_t L, float dropout);
/* nn.LSTM(..., bidirectional=True): each layer runs a second, reverse
 * direction over each sequence's own first len[b] steps (as packed
 * sequences do), with weights named "<name>.weight_ih_l<k>_reverse" etc.
 * Then out is (B,T,2H), [forward, reverse] on the last axis (zero past
 * len), layers above the first take 2H inputs, and h0, c0, hn, cn, dhn,
 * dcn, dh0, dc0 are (2L,B,H) with layer k's directions at 2k and 2k+1,
 * dout (B,T,2H). No streaming (lstm_stream_init refuses it). */
int lstm_lstm_init_bidirectional(lstm_lstm *l, lstm_params *ps,
                                 const char *name, size_t I, size_t H,
                                 size_t L, float dropout);
/* nn.GRU(I, H, L, batch_first=True, dropout[, bidirectional=True]) in an
 * lstm_lstm: the same parameter names, with 3H gate rows in the order
 * r, z, n, and PyTorch's equations (s = W_hh h + b_hh):
 *   r = sigmoid(W_ir x + b_ir + s_r)   z = sigmoid(W_iz x + b_iz + s_z)
 *   n = tanh(W_in x + b_in + r * s_n)  h' = (1 - z) * n + z * h.
 * Every lstm_lstm function takes it; there is no cell state, so c0, dcn,
 * dc0 must be NULL and cn is NULL after a forward. fp32 only (a forward in
 * LSTM_BF16_MIXED fails), no streaming (lstm_stream_init refuses it), and
 * its recurrence splits the batch by rows only: a batch of one sequence
 * runs on one thread. */
int lstm_gru_init(lstm_lstm *l, lstm_params *ps, const char *name, size_t I,
                  size_t H, size_t L, float dropout);
int lstm_gru_init_bidirectional(lstm_lstm *l, lstm_params *ps,
                                const char *name, size_t I, size_t H,
                                size_t L, float dropout);
void lstm_lstm_reset(lstm_lstm *l, lstm_rng *r);
/* x (B,T,I); len (B) true lengths (NULL: all T; each in [0,T]);
 * h0, c0 (L,B,H) or NULL for zeros. train != 0 applies dropout between
 * layers, drawing from r. */
int lstm_lstm_forward(lstm_lstm *l, const float *x, const int32_t *len,
                      const float *h0, const float *c0, size_t B, size_t T,
                      int train, lstm_rng *r);
/* Full backpropagation through time of the last forward. dout (B,T,H),
 * dhn and dcn (L,B,H): each may be NULL (zero). Adds every weight gradient
 * into the block; writes dx (B,T,I), dh0 and dc0 (L,B,H) unless NULL. */
int lstm_lstm_backward(lstm_lstm *l, const float *dout, const float *dhn,
                       const float *dcn, float *dx, float *dh0, float *dc0);
/* Bytes of the workspace a forward and backward over (B,T) needs. */
size_t lstm_lstm_workspace_bytes(const lstm_lstm *l, size_t B, size_t T);
/* A second LSTM over src's weights (same block, same slices) with a
 * workspace of its own: an evaluation forward through it leaves src's
 * pending training forward intact. Free it with lstm_lstm_free; src's
 * block must outlive it. */
int lstm_lstm_share(lstm_lstm *dst, const lstm_lstm *src);
void lstm_lstm_free(lstm_lstm *l);

/* Streaming inference: one time step at a time, the state in the
 * caller's buffers. lstm_stream_init packs each layer's W_hh once (and, in
 * bf16-mixed, rounds the weights once); after the weights change (a
 * training step, a load, a change of kernel set), call lstm_stream_sync
 * before the next step (the recurrence runs on the kernel set that packed
 * W_hh, the one in use at the last init or sync).
 * lstm_lstm_step is bit for bit the full forward (train = 0) over the same
 * steps, with the same precision and kernels (tested). */
typedef struct {
    const lstm_lstm *l;
    size_t Bmax;
    float *ws;          /* one allocation for all below */
    const void *kern;   /* the kernel set wpk is packed for */
    float *wpk;         /* L x W_hh packed (rounded in bf16-mixed) */
    float *wih;         /* bf16-mixed: L x W_ih rounded */
    float *bias;        /* L x (G) b_ih + b_hh */
    float *gates, *hs, *cs, *y, *xr;
    size_t *len;
} lstm_stream;

/* Room for batches of up to Bmax sequences; l's weights must be
 * allocated. */
int lstm_stream_init(lstm_stream *s, const lstm_lstm *l, size_t Bmax);
void lstm_stream_sync(lstm_stream *s);
/* One step of B <= Bmax sequences: x (B,I); h, c (L,B,H) the state before
 * the step (zeros to start), updated in place; y (B,H) the last layer's
 * output, unless NULL. No dropout. */
int lstm_lstm_step(lstm_stream *s, const float *x, float *h, float *c,
                   float *y, size_t B);
void lstm_stream_free(lstm_stream *s);

/* ---- optimizers -------------------------------------------------------- */

/* torch.optim.AdamW, step for step:
 *   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * over the whole block. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    long step;
    float *m, *v;
    size_t n;
} lstm_adamw;

int lstm_adamw_init(lstm_adamw *o, size_t n, double lr, double beta1,
                    double beta2, double eps, double weight_decay);
/* Returns how many gradients were not finite (inf or NaN); the update is
 * applied regardless, as torch.optim.AdamW does, so a non-zero count means
 * the weights it touched are spoiled: stop, or reload a checkpoint. */
size_t lstm_adamw_step(lstm_adamw *o, float *w, const float *g);
/* A table of rows x cols parameters at offset off of the block whose
 * gradient is exactly +0 in every row not listed in ids[0..nids) (ids may
 * repeat): an embedding's, zeroed, after a backward of the batch ids. */
typedef struct {
    size_t off, rows, cols;
    const int32_t *ids;
    size_t nids;
} lstm_sparse_rows;
/* lstm_adamw_step with ntab such tables: their unlisted rows are updated
 * without reading the gradient, as for one of zeros, so the bits are those
 * of lstm_adamw_step; there the step moves three arrays through memory
 * instead of four. Tables that overlap or leave the block, an id outside
 * its table's rows, more than 8 tables, or no memory for marking the rows:
 * every gradient is read, as by lstm_adamw_step. */
size_t lstm_adamw_step_rows(lstm_adamw *o, float *w, const float *g,
                            const lstm_sparse_rows *tab, size_t ntab);
void lstm_adamw_free(lstm_adamw *o);
/* Plain SGD: w -= lr * g. (AdamW's moments and step are saved and loaded
 * with lstm_adamw_save / lstm_adamw_load in lstm_train.h.) */
void lstm_sgd_step(float *w, const float *g, size_t n, float lr);

/* ---- the text classifier -------------------------------------------------
 * Embedding(V,E,pad 0) -> LSTM(E,H,L,dropout) (or GRU) -> pooled features ->
 * [Linear -> ReLU -> Dropout] per hidden size -> Linear(.,C) -> LogSoftmax,
 * NLL loss. The parameter names are those of the reference notebook's
 * LightningModule ("lstm.embedding.weight", "lstm.lstm.weight_ih_l0", ...,
 * "classifier.1.weight", "classifier.4.weight", "classifier.7.weight"). */

enum { LSTM_POOL_LAST = 0, LSTM_POOL_MEAN = 1, LSTM_POOL_MAX = 2 };
/* "last", "mean", "max"; parse returns 0 and sets *pool, or LSTM_EINVAL. */
const char *lstm_pool_name(int pool);
int lstm_pool_parse(const char *s, int *pool);
/* "fp32", "bf16-mixed"; likewise. */
const char *lstm_precision_name(int precision);
int lstm_precision_parse(const char *s, int *precision);
#define LSTM_MLP_MAX 4

typedef struct {
    size_t V, E, H, L, C;
    size_t mlp[LSTM_MLP_MAX]; /* hidden sizes of the MLP head */
    size_t n_mlp;             /* how many of them (the notebook: 512, 256) */
    float dropout;            /* between LSTM layers and in the head */
    int pool;                 /* LSTM_POOL_* */
    int precision;            /* the LSTM's: LSTM_FP32 or LSTM_BF16_MIXED */
    int bidirectional;        /* a bidirectional LSTM: the feature is 2H
                                 (last: both directions' final states) */
    int cell;                 /* LSTM_CELL_LSTM, or LSTM_CELL_GRU (fp32
                                 only): the recurrent layer's cell */
    int bag;                  /* 1: the feature also holds the mean of the
                                 text's embeddings (E more: a bag of words
                                 beside the recurrent layer) */
    float wide;               /* > 0: a linear bag of words beside the
                                 network: the logits gain wide times the
                                 mean, over the text, of the rows of
                                 "wide.weight" (V,C; zero at reset) for its
                                 tokens. Under Adam the scale acts as a
                                 learning-rate multiplier of that table.
                                 0: none */
} lstm_classifier_config;

typedef struct {
    lstm_classifier_config cfg;
    lstm_params ps;
    lstm_embedding emb;
    lstm_lstm rnn;
    lstm_dense fc[LSTM_MLP_MAX + 1];
    lstm_embedding wide;      /* cfg.wide > 0 */
    /* workspace of the last forward, one allocation */
    size_t B, T, ws_bytes;
    int train;
    float *ws;
    float *x;                 /* (B,T,E) embeddings */
    int32_t *ids, *len;       /* copies of the batch */
    int32_t *argmax;          /* (B,DH) time step chosen by max pooling */
    float *act[LSTM_MLP_MAX + 1]; /* input of each dense layer; act[0] is
                                     the pooled feature (B,DH), D = 2 if
                                     bidirectional, else 1 */
    float *rel[LSTM_MLP_MAX];     /* ReLU outputs */
    float *mask[LSTM_MLP_MAX];    /* dropout masks */
    float *logits, *logp;     /* (B,C) */
    float *dlog, *dtmp, *dhn, *dout, *dx;  /* backward scratch */
    int grad_ids;             /* ids are the last backward's (no forward
                                 since): lstm_classifier_zero_grad */
    /* seconds spent in training-mode passes since init, per phase */
    double t_embed, t_lstm_fwd, t_lstm_bwd, t_head;
} lstm_classifier;

int lstm_classifier_init(lstm_classifier *m, const lstm_classifier_config *cfg);
void lstm_classifier_reset(lstm_classifier *m, lstm_rng *r);
/* ids (B,T) zero-padded, len (B) in [1,T]. Writes m->logp (B,C); with y
 * non-NULL also *loss (mean NLL). train != 0 applies dropout. */
int lstm_classifier_forward(lstm_classifier *m, const int32_t *ids,
                            const int32_t *len, size_t B, size_t T,
                            const int32_t *y, float *loss, int train,
                            lstm_rng *r);
/* Backward of the last forward's mean loss: adds into m->ps.g. The t_*
 * fields accumulate the wall time of each phase of training-mode forward
 * and backward passes: embedding (gather and scatter-add), LSTM forward,
 * LSTM backward, and the head (pooling, MLP, loss). */
int lstm_classifier_backward(lstm_classifier *m, const int32_t *y);
/* Zeroes m->ps.g. since_backward != 0 says the gradients hold nothing but
 * what the last backward added (zero before it; scaled since, at most):
 * then the embedding tables (most of a text model's parameters) are
 * zeroed only in the rows of that backward's ids, the only rows it wrote,
 * unless a forward ran since (then everything, as with 0). */
void lstm_classifier_zero_grad(lstm_classifier *m, int since_backward);
/* Under the promise of zero_grad's since_backward (the gradients hold
 * nothing but what the last backward added), the embedding tables'
 * gradients are zero outside the rows of that backward's ids: fills out
 * with those tables for lstm_adamw_step_rows and returns how many (1, or 2
 * with a wide table), or 0 when a forward ran since that backward. */
size_t lstm_classifier_grad_rows(const lstm_classifier *m,
                                 lstm_sparse_rows out[2]);
/* Parameters a configuration makes, as a checkpoint holds them (SIZE_MAX
 * when absurdly many); the block in memory adds alignment padding. */
size_t lstm_classifier_params(const lstm_classifier_config *cfg);
/* Bytes a classifier of this configuration holds once it has trained on
 * (B,T) batches: weights and gradients plus the workspaces of the head and
 * the LSTM (no optimizer state), known before anything is allocated.
 * Exact: the same layout the allocations use. SIZE_MAX when absurd. */
size_t lstm_classifier_memory(const lstm_classifier_config *cfg, size_t B,
                              size_t T);
void lstm_classifier_free(lstm_classifier *m);

#ifdef __cplusplus
}
#endif
#endif /* LSTM_H */
