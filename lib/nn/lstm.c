/*
 * lstm.c - the multi-layer LSTM and GRU: PyTorch's nn.LSTM and nn.GRU
 * (batch_first, lengths as pack_padded_sequence gives them, dropout between
 * layers) with full backpropagation through time. The shape of the computation, per layer:
 *
 *   forward:  gates = X W_ih^T + b_ih + b_hh   one GEMM over the B*T rows
 *                                              (but the padding:
 *                                              lstm__gemm_live)
 *             recurrence over t                kernel, batch split across
 *                                              threads (no per-step barrier)
 *   backward: recurrence backwards over t      kernel -> dA (B,T,G)
 *             dW_ih += dA^T X, dX = dA W_ih    one GEMM each (likewise)
 *             dW_hh += dA^T H_prev             one GEMM per sequence
 *             db = column sums of dA           per sequence in the kernel,
 *                                              then over the batch
 *
 * docs/lstm-backward.md derives the formulas. With LSTM_BF16_MIXED every
 * operand of those products is first rounded to bfloat16 (lstm.h).
 *
 * GRU (lstm_gru_init): the same layer code with G = 3H gate rows and the
 * GRU's kernels (gru_cell.c); its backward gives two gate gradients, dA
 * for the input side (dW_ih, dX, db_ih) and dAh for the hidden side (dW_hh,
 * db_hh), which differ only in the n gate (kernels.h). The cs arrays hold
 * W_hn h + b_hn instead of a cell state.
 *
 * Bidirectional (D = 2): each layer has two runs, the reverse one over
 * each sequence's first len[b] steps reversed (reverse_steps), so both
 * use the same kernels; their outputs go side by side into the layer's
 * (B,T,2H) output, and in the backward the reverse run's input gradient
 * is reversed back and added to the forward run's.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

enum { W_IH, W_HH, B_IH, B_HH };

/* Gate rows per hidden unit: 4 (i, f, g, o) or 3 (r, z, n). */
static size_t gates_per_unit(int cell) { return cell == LSTM_CELL_GRU ? 3 : 4; }

static int init(lstm_lstm *l, lstm_params *ps, const char *name, size_t I,
                size_t H, size_t L, float dropout, size_t D, int cell)
{
    memset(l, 0, sizeof *l);
    if (I == 0 || H == 0 || L == 0)
        return lstm_error(LSTM_EINVAL, "lstm: I=%zu H=%zu L=%zu must be > 0",
                          I, H, L);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return lstm_error(LSTM_EINVAL, "lstm: dropout %g outside [0,1)",
                          (double)dropout);
    l->ps = ps;
    l->I = I;
    l->H = H;
    l->L = L;
    l->D = D;
    l->cell = cell;
    l->dropout = dropout;
    l->off = lstm_alloc(4 * L * D * sizeof *l->off);
    if (!l->off)
        return LSTM_ENOMEM;
    /* PyTorch's names and order: layer by layer, forward then reverse */
    static const char *fmt[4] = {"%s.weight_ih_l%zu%s", "%s.weight_hh_l%zu%s",
                                 "%s.bias_ih_l%zu%s", "%s.bias_hh_l%zu%s"};
    for (size_t k = 0; k < L; k++)
        for (size_t d = 0; d < D; d++) {
            const size_t G = gates_per_unit(cell) * H;
            size_t shapes[4][2] = {{G, k ? D * H : I}, {G, H}, {G, 0},
                                   {G, 0}};
            for (int j = 0; j < 4; j++) {
                char full[128];
                if ((size_t)snprintf(full, sizeof full, fmt[j], name, k,
                                     d ? "_reverse" : "") >= sizeof full) {
                    lstm_lstm_free(l);
                    return lstm_error(LSTM_EINVAL, "lstm: name too long");
                }
                int err = lstm_params_add(ps, full, j < 2 ? 2 : 1, shapes[j],
                                          &l->off[4 * (k * D + d) + (size_t)j]);
                if (err) {
                    lstm_lstm_free(l);
                    return err;
                }
            }
        }
    return LSTM_OK;
}

int lstm_lstm_init(lstm_lstm *l, lstm_params *ps, const char *name, size_t I,
                   size_t H, size_t L, float dropout)
{
    return init(l, ps, name, I, H, L, dropout, 1, LSTM_CELL_LSTM);
}

int lstm_lstm_init_bidirectional(lstm_lstm *l, lstm_params *ps,
                                 const char *name, size_t I, size_t H,
                                 size_t L, float dropout)
{
    return init(l, ps, name, I, H, L, dropout, 2, LSTM_CELL_LSTM);
}

int lstm_gru_init(lstm_lstm *l, lstm_params *ps, const char *name, size_t I,
                  size_t H, size_t L, float dropout)
{
    return init(l, ps, name, I, H, L, dropout, 1, LSTM_CELL_GRU);
}

int lstm_gru_init_bidirectional(lstm_lstm *l, lstm_params *ps,
                                const char *name, size_t I, size_t H,
                                size_t L, float dropout)
{
    return init(l, ps, name, I, H, L, dropout, 2, LSTM_CELL_GRU);
}

void lstm_lstm_reset(lstm_lstm *l, lstm_rng *r)
{
    LSTM__WEIGHTS_READY(l->ps, "lstm_lstm_reset");
    const float k = 1.0f / sqrtf((float)l->H);
    const size_t G = gates_per_unit(l->cell) * l->H;
    for (size_t n = 0; n < l->L * l->D; n++) {
        size_t in = n >= l->D ? l->D * l->H : l->I;
        lstm_fill_uniform(l->ps->w + l->off[4 * n + W_IH], G * in, -k, k, r);
        lstm_fill_uniform(l->ps->w + l->off[4 * n + W_HH], G * l->H, -k, k, r);
        lstm_fill_uniform(l->ps->w + l->off[4 * n + B_IH], G, -k, k, r);
        lstm_fill_uniform(l->ps->w + l->off[4 * n + B_HH], G, -k, k, r);
    }
}

void lstm_lstm_free(lstm_lstm *l)
{
    lstm_free(l->off);
    lstm_free(l->ws);
    memset(l, 0, sizeof *l);
}

/* Floats of one run's W_hh packed for the forward recurrence. */
static size_t pack_fwd_size(const lstm_lstm *l)
{
    return l->cell == LSTM_CELL_GRU ? lstm__pack_gru_fwd_size(l->H)
                                    : lstm__pack_fwd_size(l->H, l->H);
}

/* Lays the workspace out for (B,T); with c->base NULL it only measures. */
static void layout(lstm_lstm *l, lstm__carver *c, size_t B, size_t T)
{
    const size_t H = l->H, G = gates_per_unit(l->cell) * H, L = l->L;
    const size_t D = l->D, R = L * D;
    const int gru = l->cell == LSTM_CELL_GRU;
    const size_t in_max = l->I > D * H ? l->I : D * H;
    l->gates = lstm__carve(c, R * B * T * G);
    l->hs = lstm__carve(c, R * B * (T + 1) * H);
    l->cs = lstm__carve(c, R * B * (T + 1) * H);
    l->ys = lstm__carve(c, R * B * T * H);
    l->cat = D > 1 ? lstm__carve(c, L * B * T * D * H) : NULL;
    l->rev = D > 1 ? lstm__carve(c, B * T * in_max) : NULL;
    l->mask = lstm__carve(c, (L - 1) * B * T * D * H);
    l->xin = lstm__carve(c, (L - 1) * B * T * D * H);
    l->dA = lstm__carve(c, B * T * G);
    l->dAh = gru ? lstm__carve(c, B * T * G) : NULL;
    l->dbs = lstm__carve(c, (gru ? 2 : 1) * B * G);
    l->dbuf = lstm__carve(c, B * T * D * H);
    l->dyd = D > 1 ? lstm__carve(c, D * B * T * H) : NULL;
    l->dhc = lstm__carve(c, 2 * B * H);
    l->wpk = lstm__carve(c, R * pack_fwd_size(l));
    l->wpk_bwd = lstm__carve(c, gru ? lstm__pack_gru_bwd_size(H)
                                    : lstm__pack_bwd_size(H, H));
    l->scratch = lstm__carve(c, B * G);
    const int bf16 = l->precision == LSTM_BF16_MIXED;
    l->xr = bf16 ? lstm__carve(c, B * T * l->I) : NULL;
    l->wr = lstm__carve(c, G * in_max);
    l->len = (size_t *)(void *)lstm__carve(c, B * sizeof(size_t) / sizeof(float));
    l->hn = lstm__carve(c, R * B * H);
    l->cn = gru ? NULL : lstm__carve(c, R * B * H);
}

size_t lstm_lstm_workspace_bytes(const lstm_lstm *l, size_t B, size_t T)
{
    lstm_lstm tmp = *l;  /* layout() writes the pointers; they are not kept */
    lstm__carver c = {NULL, 0};
    layout(&tmp, &c, B, T);
    return c.used;
}

static int reserve(lstm_lstm *l, size_t B, size_t T)
{
    const size_t H = l->H, G = gates_per_unit(l->cell) * H;
    /* guard the size arithmetic below against overflow */
    if (B > SIZE_MAX / 64 / (T + 1) ||
        B * (T + 1) > SIZE_MAX / 64 / G / l->L / l->D)
        return lstm_error(LSTM_EINVAL, "lstm: batch %zu x %zu steps too large",
                          B, T);
    lstm__carver c = {NULL, 0};
    layout(l, &c, B, T);
    if (c.used > l->ws_bytes) {
        float *ws = lstm_alloc(c.used);
        if (!ws)
            return lstm_error(LSTM_ENOMEM,
                              "lstm: out of memory for a %zu-byte workspace "
                              "(B=%zu T=%zu H=%zu L=%zu)",
                              c.used, B, T, H, l->L);
        lstm_free(l->ws);
        l->ws = ws;
        l->ws_bytes = c.used;
    }
    c.base = (char *)l->ws;
    c.used = 0;
    layout(l, &c, B, T);
    return LSTM_OK;
}

/* How the threads share a layer's recurrence; returns how many. By rows
 * (*units = 0: slices of the batch, at least one row each), or, with fewer
 * rows than threads, by hidden units (*units = 1: every thread takes every
 * row and whole 16-unit panels of H; lstm_cell.c says why). Measured with
 * bench/lstm_step, 2 threads: units 1.4x faster than one thread at B=1 on
 * an AVX2 EPYC; on a Zen 5 virtual machine whose two vCPUs pass a cache
 * line in 250-290 ns, as fast as one thread (4.3-4.9 ms against 4.2-4.6
 * for B=1 inference), and slower than rows from B=2 on everywhere (the
 * step's barrier and the exchange of h_t cost more than the halved stream
 * of W_hh saves). The references only run
 * whole rows. Either way each number is computed by one thread in the
 * same order: the plan never changes the results. */
static int rec_plan(const lstm_lstm *l, size_t B, size_t T, int *units)
{
    const size_t H = l->H;
    int nt = lstm__threads_for(B * T * 4 * H * H);
    *units = nt > 1 && H % 16 == 0 && H >= 32 && B < (size_t)nt &&
             l->cell == LSTM_CELL_LSTM && strcmp(lstm__k()->name, "ref") != 0;
    if (*units)
        return nt > (int)(H / 16) ? (int)(H / 16) : nt;
    return nt > (int)B ? (int)B : nt;
}

/* The units plan's step barrier: the barrier of the team the calling
 * thread is in (set by join_team). */
static _Thread_local lstm__barrier *team;

static void team_barrier(void) { lstm__barrier_wait(team); }

/* Inside a parallel region: every thread of it takes b as its team's
 * barrier, initialised for their number. */
static void join_team(lstm__barrier *b)
{
#ifdef _OPENMP
#pragma omp single
    lstm__barrier_init(b, (unsigned)omp_get_num_threads());
#else
    lstm__barrier_init(b, 1);
#endif
    team = b;
}

/* The calling thread's hidden units [*k0,*k1) in the units plan. */
static void unit_share(size_t H, size_t *k0, size_t *k1)
{
    size_t p0, p1;
    lstm__share(H / 16, &p0, &p1);
    *k0 = 16 * p0;
    *k1 = 16 * p1;
}

/* lstm__round_bf16 over n floats, split across threads. */
static void round_bf16(float *dst, const float *src, size_t n)
{
#pragma omp parallel num_threads(lstm__threads_for(n))
    {
        size_t i0, i1;
        lstm__share(n, &i0, &i1);
        lstm__round_bf16(dst + i0, src + i0, i1 - i0);
    }
}

/* The input size of layer k. */
static size_t in_dim_of(const lstm_lstm *l, size_t k)
{
    return k ? l->D * l->H : l->I;
}

/* Run r's (layer r / D) W_ih^T (in_dim,G), rounded to bf16 or not, in
 * l->wr (valid until the next call): the input projection's operand as the
 * tuned GEMM reads it, row by row. */
static const float *transposed(lstm_lstm *l, size_t r, int bf16)
{
    const size_t G = gates_per_unit(l->cell) * l->H;
    const size_t in_dim = in_dim_of(l, r / l->D);
    const float *w = l->ps->w + l->off[4 * r + W_IH];
    enum { TB = 16 };  /* in tiles, so that neither side strides in cache */
    for (size_t j0 = 0; j0 < G; j0 += TB)
        for (size_t i0 = 0; i0 < in_dim; i0 += TB) {
            const size_t j1 = j0 + TB < G ? j0 + TB : G;
            const size_t i1 = i0 + TB < in_dim ? i0 + TB : in_dim;
            for (size_t i = i0; i < i1; i++)
                for (size_t j = j0; j < j1; j++)
                    l->wr[i * G + j] = w[j * in_dim + i];
        }
    if (bf16)
        round_bf16(l->wr, l->wr, G * in_dim);
    return l->wr;
}

/* Run r's W_ih rounded to bf16, in l->wr (valid until the next call). */
static const float *rounded(lstm_lstm *l, size_t r)
{
    const size_t n = gates_per_unit(l->cell) * l->H * in_dim_of(l, r / l->D);
    round_bf16(l->wr, l->ps->w + l->off[4 * r + W_IH], n);
    return l->wr;
}

/* The output of layer k, (B,T,D*H): its run's ys, or both directions'
 * side by side. */
static float *layer_output(const lstm_lstm *l, size_t k)
{
    const size_t BT = l->B * l->T, H = l->H;
    return l->D > 1 ? l->cat + k * BT * 2 * H : l->ys + k * BT * H;
}

/* The input of layer k as the forward used it. */
static const float *layer_input(const lstm_lstm *l, size_t k)
{
    if (k == 0)
        return l->xr ? l->xr : l->x;
    if (l->train && l->dropout > 0.0f)
        return l->xin + (k - 1) * l->B * l->T * l->D * l->H;
    return layer_output(l, k - 1);
}

/* dst (B,T,n) = src with each sequence's first len[b] steps in reverse
 * order (the reverse direction's view), zero past them; add != 0 adds into
 * dst instead. Its own inverse. */
static void reverse_steps(float *dst, const float *src, const lstm_lstm *l,
                          size_t n, int add)
{
    const size_t B = l->B, T = l->T;
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            float *o = dst + (b * T + t) * n;
            const size_t len = l->len[b];
            if (t >= len) {
                if (!add)
                    memset(o, 0, n * sizeof *o);
                continue;
            }
            const float *i = src + (b * T + len - 1 - t) * n;
            if (add)
                for (size_t j = 0; j < n; j++)
                    o[j] += i[j];
            else
                memcpy(o, i, n * sizeof *o);
        }
}

/* Run ri's weights and buffers (layer ri / D, direction ri % D). */
typedef struct {
    const float *w_hh, *b_ih, *b_hh;
    float *gates, *hs, *cs, *ys, *wpk;
} run_bufs;

static run_bufs bufs_of(const lstm_lstm *l, size_t ri)
{
    const size_t B = l->B, T = l->T, H = l->H;
    const size_t G = gates_per_unit(l->cell) * H;
    const float *w = l->ps->w;
    return (run_bufs){w + l->off[4 * ri + W_HH], w + l->off[4 * ri + B_IH],
                      w + l->off[4 * ri + B_HH], l->gates + ri * B * T * G,
                      l->hs + ri * B * (T + 1) * H,
                      l->cs + ri * B * (T + 1) * H, l->ys + ri * B * T * H,
                      l->wpk + ri * pack_fwd_size(l)};
}

/* The recurrence of LSTM run ri over the gates its input projection left
 * in l->gates, from h0, c0 (or zeros); its final states into hn, cn. */
static void lstm_run_fwd(lstm_lstm *l, size_t ri, const float *h0,
                         const float *c0, int nt, int units, int bf16)
{
    const size_t B = l->B, T = l->T, H = l->H, G = 4 * H;
    const lstm__kernels *kern = lstm__k();
    const run_bufs r = bufs_of(l, ri);
    const float *w_hh = r.w_hh, *b_ih = r.b_ih, *b_hh = r.b_hh;
    float *gates = r.gates, *hs = r.hs, *cs = r.cs, *ys = r.ys, *wpk = r.wpk;
    for (size_t j = 0; j < G; j++)
        l->scratch[j] = b_ih[j] + b_hh[j];
    if (!units)  /* one pack for all; in the units plan, one each */
        kern->pack_fwd(wpk, w_hh, H, 0, H, bf16);
    for (size_t b = 0; b < B; b++) {
        float *h = hs + b * (T + 1) * H, *c = cs + b * (T + 1) * H;
        if (h0)
            memcpy(h, h0 + (ri * B + b) * H, H * sizeof *h);
        else
            memset(h, 0, H * sizeof *h);
        if (c0)
            memcpy(c, c0 + (ri * B + b) * H, H * sizeof *c);
        else
            memset(c, 0, H * sizeof *c);
        if (bf16)  /* h0 is an operand of the first product */
            lstm__round_bf16(h, h, H);
    }
    lstm__barrier bar;
#pragma omp parallel num_threads(nt)
    {
        lstm__ftz();
        if (units) {
            size_t k0, k1;
            join_team(&bar);
            unit_share(H, &k0, &k1);
            float *pk = wpk + lstm__pack_fwd_size(H, k0);
            kern->pack_fwd(pk, w_hh, H, k0, k1, bf16);
            kern->lstm_fwd(B, T, H, k0, k1, l->len, gates, l->scratch,
                           hs, cs, ys, w_hh, pk, bf16, team_barrier);
        } else {
            size_t b0, b1;
            lstm__share(B, &b0, &b1);
            if (b1 > b0)
                kern->lstm_fwd(b1 - b0, T, H, 0, H, l->len + b0,
                               gates + b0 * T * G, l->scratch,
                               hs + b0 * (T + 1) * H,
                               cs + b0 * (T + 1) * H, ys + b0 * T * H,
                               w_hh, wpk, bf16, NULL);
        }
    }
    for (size_t b = 0; b < B; b++) {
        size_t at = (b * (T + 1) + l->len[b]) * H;
        /* bf16: hs holds h rounded; hn is the float h (y, or h0) */
        const float *hn = hs + at;
        if (bf16 && l->len[b] > 0)
            hn = ys + (b * T + l->len[b] - 1) * H;
        else if (bf16 && h0)
            hn = h0 + (ri * B + b) * H;
        memcpy(l->hn + (ri * B + b) * H, hn, H * sizeof(float));
        memcpy(l->cn + (ri * B + b) * H, cs + at, H * sizeof(float));
    }
}

/* The same for GRU run ri: l->cs holds, per run, the n gate's hidden part
 * W_hn h + b_hn (B,T,H) for the backward; hn gets the final states. */
static void gru_run_fwd(lstm_lstm *l, size_t ri, const float *h0, int nt)
{
    const size_t B = l->B, T = l->T, H = l->H, G = 3 * H;
    const lstm__kernels *kern = lstm__k();
    const run_bufs r = bufs_of(l, ri);
    const float *w_hh = r.w_hh;
    float *hs = r.hs, *sn = r.cs, *wpk = r.wpk;
    lstm__pack_gru_fwd(wpk, w_hh, H);
    for (size_t b = 0; b < B; b++) {
        float *h = hs + b * (T + 1) * H;
        if (h0)
            memcpy(h, h0 + (ri * B + b) * H, H * sizeof *h);
        else
            memset(h, 0, H * sizeof *h);
    }
#pragma omp parallel num_threads(nt)
    {
        lstm__ftz();
        size_t b0, b1;
        lstm__share(B, &b0, &b1);
        if (b1 > b0)
            kern->gru_fwd(b1 - b0, T, H, l->len + b0, r.gates + b0 * T * G,
                          r.b_ih, r.b_hh, hs + b0 * (T + 1) * H,
                          sn + b0 * T * H, r.ys + b0 * T * H, w_hh, wpk,
                          l->scratch + b0 * G);
    }
    for (size_t b = 0; b < B; b++)
        memcpy(l->hn + (ri * B + b) * H, hs + (b * (T + 1) + l->len[b]) * H,
               H * sizeof(float));
}

/* Adds the seconds since t0 to phase i (t_phase); returns the clock now,
 * the next phase's start. */
static double phase(lstm_lstm *l, int i, double t0)
{
    const double now = lstm__seconds();
    l->t_phase[i] += now - t0;
    return now;
}

int lstm_lstm_forward(lstm_lstm *l, const float *x, const int32_t *len,
                      const float *h0, const float *c0, size_t B, size_t T,
                      int train, lstm_rng *r)
{
    LSTM__WEIGHTS_READY(l->ps, "lstm_lstm_forward");
    const size_t H = l->H, G = gates_per_unit(l->cell) * H, L = l->L;
    const int gru = l->cell == LSTM_CELL_GRU;
    if (!x || B == 0 || T == 0)
        return lstm_error(LSTM_EINVAL, "lstm: empty input (B=%zu T=%zu)", B, T);
    if (train && l->dropout > 0.0f && L > 1 && !r)
        return lstm_error(LSTM_EINVAL, "lstm: dropout needs a generator");
    if (l->precision != LSTM_FP32 && l->precision != LSTM_BF16_MIXED)
        return lstm_error(LSTM_EINVAL, "lstm: unknown precision %d",
                          l->precision);
    if (gru && l->precision != LSTM_FP32)
        return lstm_error(LSTM_EINVAL, "gru: bf16-mixed precision is not "
                          "implemented for the GRU (fp32 only)");
    if (gru && c0)
        return lstm_error(LSTM_EINVAL, "gru: a GRU has no cell state (c0 "
                          "must be NULL)");
    if (len)
        for (size_t b = 0; b < B; b++)
            if (len[b] < 0 || (size_t)len[b] > T)
                return lstm_error(LSTM_EINVAL,
                                  "lstm: length %ld of sequence %zu outside "
                                  "[0,%zu]",
                                  (long)len[b], b, T);
    int err = reserve(l, B, T);
    if (err)
        return err;
    l->x = x;
    l->B = B;
    l->T = T;
    l->train = train;
    for (size_t b = 0; b < B; b++)
        l->len[b] = len ? (size_t)len[b] : T;

    int units;
    const int nt = rec_plan(l, B, T, &units);
    const int bf16 = l->precision == LSTM_BF16_MIXED;
    const size_t D = l->D;
    if (bf16)
        round_bf16(l->xr, x, B * T * l->I);
    for (size_t k = 0; k < L; k++) {
        const size_t in_dim = in_dim_of(l, k);
        for (size_t d = 0; d < D; d++) {
            const size_t ri = k * D + d;  /* the run: layer k, direction d */
            const float *w_iht = transposed(l, ri, bf16);
            float *gates = l->gates + ri * B * T * G;
            float *ys = l->ys + ri * B * T * H;
            const float *in = layer_input(l, k);
            if (d) {  /* the reverse direction reads each sequence backwards */
                reverse_steps(l->rev, in, l, in_dim, 0);
                in = l->rev;
            }
            /* gates = in W_ih^T, every step at once, the padding's maybe
             * not (the recurrence zeroes its gates); the recurrence adds
             * the biases as it reads them */
            double t0 = lstm__seconds();
            lstm__gemm_live(bf16, B, T, l->len, G, in_dim, in, in_dim, w_iht,
                            G, gates, G, 0);
            t0 = phase(l, LSTM_PHASE_INPROJ, t0);
            if (gru)
                gru_run_fwd(l, ri, h0, nt);
            else
                lstm_run_fwd(l, ri, h0, c0, nt, units, bf16);
            phase(l, LSTM_PHASE_FWD, t0);
            if (D > 1) {  /* into its half of the layer's output, in order */
                float *cat = layer_output(l, k);
                for (size_t b = 0; b < B; b++)
                    for (size_t t = 0; t < T; t++) {
                        const size_t lb = l->len[b];
                        const size_t to = d && t < lb ? lb - 1 - t : t;
                        memcpy(cat + (b * T + to) * 2 * H + d * H,
                               ys + (b * T + t) * H, H * sizeof(float));
                    }
            }
        }
        const size_t n = B * T * D * H;  /* the layer's output */
        if (k + 1 < L && train && l->dropout > 0.0f)
            lstm_dropout_forward(l->xin + k * n, l->mask + k * n,
                                 layer_output(l, k), n, l->dropout, r);
        if (k + 1 < L && bf16) {  /* the next layer's input, an operand */
            float *next = (float *)layer_input(l, k + 1);
            round_bf16(next, next, n);
        }
    }
    l->out = layer_output(l, L - 1);
    return LSTM_OK;
}

/* Backward through the recurrence of LSTM run ri: dA, each sequence's
 * bias share in dbs, and dh0, dc0 (unless NULL). */
static void lstm_run_bwd(lstm_lstm *l, size_t ri, const float *dy,
                         const float *dhn, const float *dcn, float *dh0,
                         float *dc0, int nt, int units, int bf16)
{
    const size_t B = l->B, T = l->T, H = l->H, G = 4 * H;
    const lstm__kernels *kern = lstm__k();
    const run_bufs r = bufs_of(l, ri);
    const float *w_hh = r.w_hh, *gates = r.gates, *cs = r.cs;
    float *dh = l->dhc, *dc = l->dhc + B * H;
    if (!units)
        kern->pack_bwd(l->wpk_bwd, w_hh, H, 0, H, bf16);
    if (dhn)
        memcpy(dh, dhn + ri * B * H, B * H * sizeof *dh);
    else
        memset(dh, 0, B * H * sizeof *dh);
    if (dcn)
        memcpy(dc, dcn + ri * B * H, B * H * sizeof *dc);
    else
        memset(dc, 0, B * H * sizeof *dc);
    lstm__barrier bar;
#pragma omp parallel num_threads(nt)
    {
        lstm__ftz();
        if (units) {
            size_t k0, k1;
            join_team(&bar);
            unit_share(H, &k0, &k1);
            float *pk = l->wpk_bwd + lstm__pack_bwd_size(H, k0);
            kern->pack_bwd(pk, w_hh, H, k0, k1, bf16);
            kern->lstm_bwd(B, T, H, k0, k1, l->len, l->dA, dh, dc, dy,
                           gates, cs, w_hh, pk, l->dbs, l->scratch,
                           bf16, team_barrier);
        } else {
            size_t b0, b1;
            lstm__share(B, &b0, &b1);
            if (b1 > b0)
                kern->lstm_bwd(b1 - b0, T, H, 0, H, l->len + b0,
                               l->dA + b0 * T * G, dh + b0 * H,
                               dc + b0 * H, dy ? dy + b0 * T * H : NULL,
                               gates + b0 * T * G,
                               cs + b0 * (T + 1) * H, w_hh, l->wpk_bwd,
                               l->dbs + b0 * G, l->scratch + b0 * G,
                               bf16, NULL);
        }
    }
    if (dh0)
        memcpy(dh0 + ri * B * H, dh, B * H * sizeof *dh);
    if (dc0)
        memcpy(dc0 + ri * B * H, dc, B * H * sizeof *dc);
}

/* The same for GRU run ri: dA and dAh, and dh0 (unless NULL). */
static void gru_run_bwd(lstm_lstm *l, size_t ri, const float *dy,
                        const float *dhn, float *dh0, int nt)
{
    const size_t B = l->B, T = l->T, H = l->H, G = 3 * H;
    const lstm__kernels *kern = lstm__k();
    const run_bufs r = bufs_of(l, ri);
    float *dh = l->dhc;
    lstm__pack_gru_bwd(l->wpk_bwd, r.w_hh, H);
    if (dhn)
        memcpy(dh, dhn + ri * B * H, B * H * sizeof *dh);
    else
        memset(dh, 0, B * H * sizeof *dh);
#pragma omp parallel num_threads(nt)
    {
        lstm__ftz();
        size_t b0, b1;
        lstm__share(B, &b0, &b1);
        if (b1 > b0)
            kern->gru_bwd(b1 - b0, T, H, l->len + b0, l->dA + b0 * T * G,
                          l->dAh + b0 * T * G, dh + b0 * H,
                          dy ? dy + b0 * T * H : NULL, r.gates + b0 * T * G,
                          r.hs + b0 * (T + 1) * H, r.cs + b0 * T * H, r.w_hh,
                          l->wpk_bwd, l->dbs + b0 * 2 * G,
                          l->scratch + b0 * H);
    }
    if (dh0)
        memcpy(dh0 + ri * B * H, dh, B * H * sizeof *dh);
}

/* acc[j] = the sum over rows of column j of a (row length ld), rows in
 * order: the per-sequence bias sums of the kernels, in the same order on
 * any thread count. */
static void column_sums(float *restrict acc, const float *restrict a,
                        size_t rows, size_t G, size_t ld)
{
    memset(acc, 0, G * sizeof *acc);
    for (size_t i = 0; i < rows; i++)
#pragma omp simd
        for (size_t j = 0; j < G; j++)
            acc[j] += a[i * ld + j];
}

static void add_to(float *g, const float *acc, size_t n)
{
    for (size_t j = 0; j < n; j++)
        g[j] += acc[j];
}

int lstm_lstm_backward(lstm_lstm *l, const float *dout, const float *dhn,
                       const float *dcn, float *dx, float *dh0, float *dc0)
{
    const size_t B = l->B, T = l->T, H = l->H, L = l->L, D = l->D;
    const size_t G = gates_per_unit(l->cell) * H;
    const int gru = l->cell == LSTM_CELL_GRU;
    if (!l->out)
        return lstm_error(LSTM_EINVAL, "lstm: backward before forward");
    if (gru && (dcn || dc0))
        return lstm_error(LSTM_EINVAL, "gru: a GRU has no cell state (dcn "
                          "and dc0 must be NULL)");
    int units;
    const int nt = rec_plan(l, B, T, &units);
    const int bf16 = l->precision == LSTM_BF16_MIXED;
    const float *dyl = dout;  /* gradient of layer k's output (B,T,D*H) */
    for (size_t k = L; k-- > 0;) {
        const size_t in_dim = in_dim_of(l, k);
        if (D > 1 && dyl)  /* each direction's half, in its own time order */
            for (size_t b = 0; b < B; b++)
                for (size_t t = 0; t < T; t++) {
                    const size_t lb = l->len[b];
                    const size_t tr = t < lb ? lb - 1 - t : t;
                    memcpy(l->dyd + (b * T + t) * H,
                           dyl + (b * T + t) * 2 * H, H * sizeof(float));
                    memcpy(l->dyd + (B * T + b * T + tr) * H,
                           dyl + (b * T + t) * 2 * H + H, H * sizeof(float));
                }
        /* where this layer's input gradient goes: layer k-1's output
         * gradient, or dx */
        float *dxk = k > 0 ? l->dbuf : dx;
        for (size_t d = 0; d < D; d++) {
            const size_t ri = k * D + d;
            /* W_ih only feeds dX, which layer 0 skips without dx */
            const float *w_ih = !bf16 ? l->ps->w + l->off[4 * ri + W_IH]
                                : dxk ? rounded(l, ri) : NULL;
            float *g_ih = l->ps->g + l->off[4 * ri + W_IH];
            float *g_hh = l->ps->g + l->off[4 * ri + W_HH];
            float *gb_ih = l->ps->g + l->off[4 * ri + B_IH];
            float *gb_hh = l->ps->g + l->off[4 * ri + B_HH];
            const float *hs = l->hs + ri * B * (T + 1) * H;
            const float *in = layer_input(l, k);
            const float *dy = !dyl ? NULL : D > 1 ? l->dyd + d * B * T * H
                                                  : dyl;
            if (d) {
                reverse_steps(l->rev, in, l, in_dim, 0);
                in = l->rev;
            }
            double t0 = lstm__seconds();
            if (gru)
                gru_run_bwd(l, ri, dy, dhn, dh0, nt);
            else
                lstm_run_bwd(l, ri, dy, dhn, dcn, dh0, dc0, nt, units, bf16);
            t0 = phase(l, LSTM_PHASE_BWD, t0);

            /* dW_ih += dA^T in;  dW_hh += dA_b^T h_{b,t-1} per sequence */
            const float *dAh = gru ? l->dAh : l->dA;  /* the hidden side's */
            lstm__wgrad(bf16, G, B, T, l->len, l->dA, dAh, G, in, in_dim,
                        in_dim, g_ih, in_dim, hs, H, (T + 1) * H, H, g_hh, H);
            phase(l, LSTM_PHASE_WGRAD, t0);
            /* db_ih, db_hh = column sums of dA, dAh: the kernels summed
             * each sequence over t (an LSTM's two are equal; a GRU's dbs
             * rows hold both); here the sequences are summed in order (the
             * same order on any thread count) */
            column_sums(l->scratch, l->dbs, B, G, gru ? 2 * G : G);
            add_to(gb_ih, l->scratch, G);
            if (gru)
                column_sums(l->scratch, l->dbs + G, B, G, 2 * G);
            add_to(gb_hh, l->scratch, G);
            /* this run's share of the layer's input gradient: the reverse
             * direction's comes back in time order and adds to the
             * forward's */
            t0 = lstm__seconds();
            if (dxk && !d)  /* zero at the padding */
                lstm__gemm_live(bf16, B, T, l->len, in_dim, G, l->dA, G, w_ih,
                                in_dim, dxk, in_dim, 1);
            else if (dxk) {  /* reverse_steps reads no padding */
                lstm__gemm_live(bf16, B, T, l->len, in_dim, G, l->dA, G, w_ih,
                                in_dim, l->rev, in_dim, 0);
                reverse_steps(dxk, l->rev, l, in_dim, 1);
            }
            phase(l, LSTM_PHASE_DX, t0);
        }
        if (k > 0 && l->train && l->dropout > 0.0f)
            lstm_dropout_backward(l->dbuf, l->dbuf,
                                  l->mask + (k - 1) * B * T * D * H,
                                  B * T * D * H);
        dyl = l->dbuf;
    }
    return LSTM_OK;
}

int lstm_lstm_share(lstm_lstm *dst, const lstm_lstm *src)
{
    assert(src->off && "lstm_lstm_share: src is not initialised");
    memset(dst, 0, sizeof *dst);
    dst->off = lstm_alloc(4 * src->L * src->D * sizeof *dst->off);
    if (!dst->off)
        return LSTM_ENOMEM;
    memcpy(dst->off, src->off, 4 * src->L * src->D * sizeof *dst->off);
    dst->ps = src->ps;
    dst->I = src->I;
    dst->H = src->H;
    dst->L = src->L;
    dst->D = src->D;
    dst->cell = src->cell;
    dst->dropout = src->dropout;
    dst->precision = src->precision;
    return LSTM_OK;
}
