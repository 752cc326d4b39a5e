/*
 * rowmm.h - the register-blocked product the tuned recurrences (lstm_cell.c,
 * gru_cell.c) and the tuned GEMM are made of. Everything here is static
 * and always inlined, so each caller compiles it for its own instruction
 * set (kernels.h's LSTM_ISA_* attributes).
 */
#ifndef LSTM_ROWMM_H
#define LSTM_ROWMM_H

#include <stddef.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef float v4 __attribute__((vector_size(16), aligned(4)));

/* A vector of copies of s: one broadcast load (adding s to a zero vector
 * would cost a float add first, to turn -0 into +0). */
#define SPLAT1(s) ((v16){(s), (s), (s), (s), (s), (s), (s), (s),            \
                         (s), (s), (s), (s), (s), (s), (s), (s)})
#define SPLAT2(s) ((v8){(s), (s), (s), (s), (s), (s), (s), (s)})
#define SPLAT4(s) ((v4){(s), (s), (s), (s)})

/* Lines to prefetch a few at a time while a product runs: up to three
 * regions, each `rows` rows of `len` bytes, `stride` bytes apart, walked
 * in order from (i, r, off); i == 3 when done. */
typedef struct {
    const char *base[3];
    size_t len[3], stride[3], rows[3];
    size_t i, r, off;
} pf_cursor;

/* Moves the cursor past empty regions (no rows or no bytes). */
static inline __attribute__((always_inline)) void pf_skip(pf_cursor *c)
{
    while (c->i < 3 && (!c->rows[c->i] || !c->len[c->i]))
        c->i++;
}

/* Asks for the cursor's next line (into L2) and moves on. */
static inline __attribute__((always_inline)) void pf_step(pf_cursor *c)
{
    if (c->i >= 3)
        return;
    __builtin_prefetch(c->base[c->i] + c->r * c->stride[c->i] + c->off, 0,
                       2);
    c->off += 64;
    if (c->off < c->len[c->i])
        return;
    c->off = 0;
    if (++c->r < c->rows[c->i])
        return;
    c->r = 0;
    c->i++;
    pf_skip(c);
}

/* Keeps a step's weight vectors in registers wherever the register file
 * holds them beside the tile (32 registers of 16 floats, 16 of 8 or 4).
 * Left alone, gcc 12 folds them into the multiply-adds as memory operands
 * for small tiles, loading each vector once per row: with W streaming from
 * L2, the recurrence at 2 and 3 rows a thread ran at about half the speed
 * of 4 rows (one thread of a Sapphire Rapids, the forward product of 512
 * steps at H=128: 2 rows 1.76 -> 1.22 ms, 3 rows 2.54 -> 1.48; 4 rows and
 * more unchanged). bench/lstm_step --batch 4 --mode train, 2 threads:
 * amx 20.0 -> 18.0-18.3 ms, avx2 (forced there) 24.2-24.7 -> 21.4-22.4. */
#if defined(__x86_64__) || defined(__i386__)
#define ROWMM_IN_REGS(nb, NV, P, wv)                                         \
    if ((nb + 1) * NV * P + 1 <= (NV == 1 ? 32 : 16))                        \
        _Pragma("GCC unroll 16") for (size_t v = 0; v < NV * P; v++)        \
            __asm__("" : "+v"(wv[v]))
#else
#define ROWMM_IN_REGS(nb, NV, P, wv) (void)0
#endif

/* The product both the recurrence and the tuned GEMM are made of:
 *   out (nb,N) (+)= in (nb,M) x W (M,N)
 * in[b][m] at in[b*irs + m*ics] (any strides: each element is broadcast,
 * never loaded as a vector, so in needs no packing, transposed or not); W
 * as panels of 16 columns, panel j at w + j*wps and its row m at + m*ldw:
 * pack16's panels (ldw 16, wps 16M, zero-padded) or a row-major matrix as
 * it lies (ldw its row length, wps 16; N a multiple of 16 then).
 *
 * With add, out's old values start the sums, plus bias (N) unless NULL.
 *
 * The register tile: nb rows x 16*P columns (P panels side by side), as
 * NV*P vectors of type V per row: one of 16 floats per panel with AVX-512
 * (32 registers), two of 8 with AVX2, four of 4 on baseline SIMD (16
 * registers of 4 floats, which would spill an 8-float tile). Each
 * accumulator depends on itself once per m, so a tile needs about latency
 * x FMA ports (8 on current cores) of them to keep the units busy: few rows
 * take more panels at once (rowmm). Every element is still summed over m
 * in order, whatever nb and P: results do not depend on how the rows are
 * split. */
#define ROWMM_TILE(name, V, NV, MAXB, MAXV)                                  \
    static inline __attribute__((always_inline)) void name(                 \
        size_t nb, size_t P, size_t M, size_t nn, const float *in,           \
        size_t irs, size_t ics, const float *w, size_t ldw, size_t wps,      \
        float *out, size_t ldo, int add, const float *bias, pf_cursor *pfc,  \
        const size_t *rix)                                                   \
    {                                                                        \
        const size_t W = 16 / NV; /* floats per vector */                    \
        const float *in_[12];     /* row b of in and of out: rix[b] */       \
        float *out_[12];                                                     \
        _Pragma("GCC unroll 12") for (size_t b = 0; b < nb; b++) {           \
            in_[b] = in + (rix ? rix[b] : b) * irs;                          \
            out_[b] = out + (rix ? rix[b] : b) * ldo;                        \
        }                                                                    \
        const size_t full = nn == 16 * P; /* else P == 1, nn < 16 */         \
        V acc[MAXB][MAXV];                                                   \
        _Pragma("GCC unroll 12") for (size_t b = 0; b < nb; b++)             \
            _Pragma("GCC unroll 16") for (size_t v = 0; v < NV * P; v++)     \
                acc[b][v] = !(add && full) ? (V){0}                          \
                            : bias ? *(const V *)(out_[b] + v * W) +         \
                                         *(const V *)(bias + v * W)          \
                                   : *(const V *)(out_[b] + v * W);          \
        for (size_t m = 0; m < M; m++) {                                     \
            V wv[MAXV];                                                      \
            if (pfc && m % 4 == 0) /* one line per 4 m: a rate memory   */  \
                pf_step(pfc);      /* keeps up with, few lines in flight */ \
            _Pragma("GCC unroll 16") for (size_t v = 0; v < NV * P; v++)     \
                wv[v] = *(const V *)(w + (v / NV) * wps + m * ldw +          \
                                     (v % NV) * W);                          \
            ROWMM_IN_REGS(nb, NV, P, wv);                                    \
            _Pragma("GCC unroll 12") for (size_t b = 0; b < nb; b++) {       \
                const V x = SPLAT##NV(in_[b][m * ics]);                      \
                _Pragma("GCC unroll 16") for (size_t v = 0; v < NV * P; v++) \
                    acc[b][v] += x * wv[v];                                  \
            }                                                                \
        }                                                                    \
        if (full) {                                                          \
            _Pragma("GCC unroll 12") for (size_t b = 0; b < nb; b++)         \
                _Pragma("GCC unroll 16") for (size_t v = 0; v < NV * P; v++) \
                    *(V *)(out_[b] + v * W) = acc[b][v];                     \
        } else { /* the last, partial panel */                               \
            for (size_t b = 0; b < nb; b++) {                                \
                float tile[16];                                              \
                memcpy(tile, acc[b], sizeof tile);                           \
                for (size_t j = 0; j < nn; j++)                              \
                    out_[b][j] = (!add ? 0.0f                                \
                                  : bias ? out_[b][j] + bias[j]              \
                                         : out_[b][j]) + tile[j];            \
            }                                                                \
        }                                                                    \
    }

ROWMM_TILE(rowmm_tile16, v16, 1, 12, 8)
ROWMM_TILE(rowmm_tile8, v8, 2, 6, 8)
ROWMM_TILE(rowmm_tile4, v4, 4, 3, 16)

/* N columns as TILE(first column, panels, columns) calls: P panels of 16
 * at a time while P whole panels remain, then what is left in halves of
 * that (P/2, P/4, ... panels: a thread's share of the hidden units, or an
 * H that is not a multiple of 16P, still gets a tile with several
 * accumulators), then one at a time (the last maybe partial). Each
 * element's sum is the same whatever tile computes it. Also pairmm.h's. */
#define PANEL_WALK(P, N, TILE)                                               \
    do {                                                                     \
        size_t n_ = 0;                                                       \
        if ((P) > 1)                                                         \
            for (; n_ + 16 * (P) <= (N); n_ += 16 * (P))                     \
                TILE(n_, (P), 16 * (P));                                     \
        if ((P) > 4 && n_ + 64 <= (N)) {                                     \
            TILE(n_, 4, 64);                                                 \
            n_ += 64;                                                        \
        }                                                                    \
        if ((P) > 2 && n_ + 32 <= (N)) {                                     \
            TILE(n_, 2, 32);                                                 \
            n_ += 32;                                                        \
        }                                                                    \
        for (; n_ < (N); n_ += 16)                                           \
            TILE(n_, 1, (N) - n_ < 16 ? (N) - n_ : 16);                      \
    } while (0)

/* nb rows (a constant after inlining) against all N columns: P panels per
 * tile while P whole panels remain, then one at a time. vw: floats per
 * vector, 16, 8 or 4 (a constant too). */
static inline __attribute__((always_inline)) void
rowmm_block(int vw, size_t nb, size_t P, size_t M, size_t N,
            const float *in, size_t irs, size_t ics, const float *w,
            size_t ldw, size_t wps, float *out, size_t ldo, int add,
            const float *bias, pf_cursor *pfc, const size_t *rix)
{
#define TILE(n, p, nn)                                                       \
    (vw == 16 ? rowmm_tile16(nb, p, M, nn, in, irs, ics, w + n / 16 * wps,   \
                             ldw, wps, out + n, ldo, add,                    \
                             bias ? bias + n : 0, pfc, rix)                  \
     : vw == 8 ? rowmm_tile8(nb, p, M, nn, in, irs, ics, w + n / 16 * wps,   \
                             ldw, wps, out + n, ldo, add,                    \
                             bias ? bias + n : 0, pfc, rix)                  \
               : rowmm_tile4(nb, p, M, nn, in, irs, ics, w + n / 16 * wps,   \
                             ldw, wps, out + n, ldo, add,                    \
                             bias ? bias + n : 0, pfc, rix))
    PANEL_WALK(P, N, TILE);
#undef TILE
}

/* A block of r <= 12 rows (16-float vectors: 32 registers) as
 * ROWS(rows, panels), each row count a constant: 8 or more accumulators
 * with the panels' vectors and a broadcast in the register file. Also
 * pairmm.h's. */
#define ROWS_OF_16(r, ROWS)                                                  \
    switch (r) {                                                             \
    case 12: ROWS(12, 2); break;                                             \
    case 11: ROWS(11, 2); break;                                             \
    case 10: ROWS(10, 2); break;                                             \
    case 9: ROWS(9, 2); break;                                               \
    case 8: ROWS(8, 2); break;                                               \
    case 7: ROWS(7, 2); break;                                               \
    case 6: ROWS(6, 4); break;                                               \
    case 5: ROWS(5, 4); break;                                               \
    case 4: ROWS(4, 4); break;                                               \
    case 3: ROWS(3, 4); break;                                               \
    case 2: ROWS(2, 8); break;                                               \
    default: ROWS(1, 8); break;                                              \
    }

/* How rowmm_pf splits nb rows: blocks of at most rowmm_maxb rows, the
 * next one rowmm_rows(vw, rows left, blocks left, maxb) rows: with 16-float
 * vectors as equal a size as the count of blocks allows (16 rows as 8 + 8,
 * not 12 + 4: a block of 4 streams all of W for a third of the
 * multiply-adds of a block of 12; measured in the recurrences at B=32, 2
 * threads, on a Zen 5: 7-15% faster, docs/performance.md), else maxb until
 * fewer are left. The recurrences split their rows the same way. */
static inline __attribute__((always_inline)) size_t
rowmm_maxb(int vw, size_t nb, size_t rows_max)
{
    return vw == 16 ? rows_max && nb > 8 ? rows_max : 12 : vw == 8 ? 6 : 3;
}

static inline __attribute__((always_inline)) size_t
rowmm_rows(int vw, size_t left, size_t blocks, size_t maxb)
{
    return vw == 16 ? (left + blocks - 1) / blocks
                    : left >= maxb ? maxb : left;
}

/* The product above, rows in blocks of at most what a tile holds: 12 with
 * 16-float vectors (24 accumulators of 32 registers), 6 with 8-float ones
 * (12 of 16), 3 with 4-float ones; each block size a constant the compiler
 * unrolls, and small blocks take more panels at once to keep 8
 * accumulators or more without spilling (accumulators, P weight vectors
 * and a broadcast fit the register file). rows_max (16-float vectors),
 * unless 0, bounds the blocks further past 8 rows (8 and fewer measured
 * the same either way in the recurrences): 6 rows a block (tiles of 6
 * rows x 64 columns) where in's rows are far apart and each element of a
 * row next to the last (ics 1): a tile of 12 rows then needs 12 row addresses
 * in every step, more than the general registers hold, and the compiler
 * spills them (one thread, out (8196,512) = in (8196,256) x W: 137-146
 * GFLOP/s in blocks of 12 rows, 157-160 in blocks of 6). With pfc, the
 * tiles ask for one of its lines every 4 m (rowmm: none). rowmm_pf_rows
 * with rix: row b of the product is row rix[b] of in and of out (a
 * recurrence's running sequences, wherever they sit among finished ones;
 * rowmm_pf: rix NULL, row b). */
static inline __attribute__((always_inline)) void
rowmm_pf_rows(int vw, size_t nb, size_t M, size_t N, const float *in,
              size_t irs, size_t ics, const float *w, size_t ldw, size_t wps,
              float *out, size_t ldo, int add, const float *bias,
              pf_cursor *pfc, size_t rows_max, const size_t *rix)
{
    const size_t maxb = rowmm_maxb(vw, nb, rows_max);
#define ROWS(k, p)                                                           \
    rowmm_block(vw, k, p, M, N, i, irs, ics, w, ldw, wps, o, ldo, add, bias, \
                pfc, rix ? rix + b : NULL)
    size_t blocks = (nb + maxb - 1) / maxb, r;
    for (size_t b = 0; b < nb; b += r, blocks--) {
        const float *i = rix ? in : in + b * irs;
        float *o = rix ? out : out + b * ldo;
        r = rowmm_rows(vw, nb - b, blocks, maxb);
        if (vw == 16) {
            ROWS_OF_16(r, ROWS);
        } else {
            const int wide = vw == 8;
            switch (r) {
            case 6: ROWS(6, 1); break;
            case 5: ROWS(5, 1); break;
            case 4: ROWS(4, 1); break;
            case 3: ROWS(3, wide ? 2 : 1); break;
            case 2: ROWS(2, wide ? 2 : 1); break;
            default: ROWS(1, wide ? 4 : 2); break;
            }
        }
    }
#undef ROWS
}

static inline __attribute__((always_inline)) void
rowmm_pf(int vw, size_t nb, size_t M, size_t N, const float *in,
         size_t irs, size_t ics, const float *w, size_t ldw, size_t wps,
         float *out, size_t ldo, int add, const float *bias, pf_cursor *pfc,
         size_t rows_max)
{
    rowmm_pf_rows(vw, nb, M, N, in, irs, ics, w, ldw, wps, out, ldo, add,
                  bias, pfc, rows_max, NULL);
}

/* A recurrence's step t computes only the sequences still running
 * (t < len[b]), wherever they sit among finished ones (a batch in no
 * order of length): they are counted, then gathered block by block. */
static inline __attribute__((always_inline)) size_t
running_count(size_t nb, size_t t, const size_t *len)
{
    size_t n = 0;
    for (size_t b = 0; b < nb; b++)
        n += t < len[b];
    return n;
}

/* The next r running rows from row *at on, into rix; *at moves past. */
static inline __attribute__((always_inline)) void
running_next(size_t *rix, size_t r, size_t t, const size_t *len, size_t *at)
{
    for (size_t i = 0; i < r; (*at)++)
        if (t < len[*at])
            rix[i++] = *at;
}

/* rowmm_pf on the running rows of nb at step t (row b of in and out at
 * b*irs and b*ldo, ics 1), in the blocks rowmm_pf makes of that many
 * rows. */
static inline __attribute__((always_inline)) void
rowmm_running(int vw, size_t nb, size_t t, const size_t *len, size_t M,
              size_t N, const float *in, size_t irs, const float *w,
              size_t ldw, size_t wps, float *out, size_t ldo, int add,
              const float *bias, pf_cursor *pfc, size_t rows_max)
{
    const size_t nl = running_count(nb, t, len);
    const size_t maxb = rowmm_maxb(vw, nl, rows_max);
    size_t blocks = (nl + maxb - 1) / maxb, r, at = 0;
    for (size_t j = 0; j < nl; j += r, blocks--) {
        size_t rix[12];
        r = rowmm_rows(vw, nl - j, blocks, maxb);
        running_next(rix, r, t, len, &at);
        rowmm_pf_rows(vw, r, M, N, in, irs, 1, w, ldw, wps, out, ldo, add,
                      bias, pfc, rows_max, rix);
    }
}

static inline __attribute__((always_inline)) void
rowmm(int vw, size_t nb, size_t M, size_t N, const float *in, size_t irs,
      size_t ics, const float *w, size_t ldw, size_t wps, float *out,
      size_t ldo, int add, const float *bias)
{
    rowmm_pf(vw, nb, M, N, in, irs, ics, w, ldw, wps, out, ldo, add, bias,
             NULL, 0);
}

/* Asks for the lines of n floats at p ahead of their use. The amx set's
 * recurrences (lstm_cell.c, gru_cell.c) call it for a row's next step
 * while they finish its current one: each step reads and writes a few
 * lines of every sequence's rows, B of them megabytes apart. Measured for
 * the LSTM at B=32, T=512, H=128 on one thread of a Sapphire Rapids: the
 * backward 28.0 -> 25.1 ms, the forward 23.0 -> 22.5 (with every array in
 * L2, T=16: 17.9 ms backward); the LSTM's forward lost it when its rows
 * went in blocks of 6 (lstm_cell.c's RECURRENCE); a prefetch of the next
 * step's rows in the backward made a Zen 5 slightly slower, so the other
 * sets do without. */
static inline __attribute__((always_inline)) void
prefetch_span(const float *p, size_t n)
{
    for (size_t k = 0; k < n; k += 16)
        __builtin_prefetch(p + k, 0, 2);
}

#endif
