/*
 * amx.h - what the AMX-BF16 kernels share (gemm_amx.c, lstm_cell.c):
 * the target attribute, the tile instructions, the tile configuration.
 * x86 only.
 *
 * A tile register holds 16 rows of 64 bytes. tdpbf16ps adds to a 16 x 16
 * float tile C the product of a tile A (16 rows x 32 bfloat16 of K: 16
 * pairs a row, pairmm.h's pairs) and a tile B (16 pairs of K rows x 16
 * columns, each column's pair side by side: pairmm.h's right operand).
 * The kernels configure all eight tiles as 16 rows x 64 bytes and pad
 * their operands with zeros to whole tiles.
 */
#ifndef LSTM_AMX_H
#define LSTM_AMX_H

#include <stdint.h>
#include <string.h>

#include "pairmm.h"  /* pair16, pair_rows */

#define AMX_ISA                                                              \
    __attribute__((target("arch=x86-64-v4,avx512bf16,amx-tile,amx-bf16")))

/* The compiler does not see tile loads and stores touch memory: "memory"
 * clobbers order them against the C code around (gcc's tile intrinsics
 * have none). t: a tile number; stride in bytes. */
#define TLOAD(t, p, stride)                                                  \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p),               \
                     "r"((long)(stride))                                     \
                     : "memory")
#define TSTORE(t, p, stride)                                                 \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(p),           \
                     "r"((long)(stride))                                     \
                     : "memory")
#define TZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
#define TDP(c, a, b) __asm__ volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a       \
                                      ", %%tmm" #c ::)

/* A 16 x 16 float tile t from or to C (row stride ldc floats), of which
 * rows [0,mr) x columns [0,nc) are C's: directly where the tile is whole,
 * else through buf (256 floats, 64-byte aligned), zeros past C's part. */
#define C_IO(t, load, c, ldc, mr, nc, buf)                                   \
    do {                                                                     \
        if ((mr) == 16 && (nc) == 16) {                                      \
            if (load)                                                        \
                TLOAD(t, c, (ldc) * 4);                                      \
            else                                                             \
                TSTORE(t, c, (ldc) * 4);                                     \
        } else if (load) {                                                   \
            memset(buf, 0, 16 * 16 * 4);                                     \
            for (size_t i_ = 0; i_ < (mr); i_++)                             \
                memcpy((buf) + i_ * 16, (c) + i_ * (ldc), (nc) * 4);         \
            TLOAD(t, buf, 64);                                               \
        } else {                                                             \
            TSTORE(t, buf, 64);                                              \
            for (size_t i_ = 0; i_ < (mr); i_++)                             \
                memcpy((c) + i_ * (ldc), (buf) + i_ * 16, (nc) * 4);         \
        }                                                                    \
    } while (0)

/* n (<= 16) floats from p, zeros after. */
AMX_ISA static inline __m512 load_n(const float *p, size_t n)
{
    return n >= 16 ? _mm512_loadu_ps(p)
                   : _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}

/* Rows [0,mb) of A (row r at A + r*lda) over K [0,kc) as tile rows of kp
 * pairs (a multiple of 16), row r at ap + r*kp, zeros past kc and from
 * row mb up to row rows. */
AMX_ISA static inline void tile_rows(uint32_t *ap, size_t kp, const float *A,
                                     size_t lda, size_t mb, size_t kc,
                                     size_t rows)
{
    const size_t used = (kc + 1) / 2;
    pair_rows(ap, kp, A, lda, mb, kc);
    for (size_t r = 0; r < rows; r++)
        if (r >= mb)
            memset(ap + r * kp, 0, kp * sizeof *ap);
        else if (kp > used)
            memset(ap + r * kp + used, 0, (kp - used) * sizeof *ap);
}

/* The calling thread's tiles configured (eight of 16 rows x 64 bytes),
 * and released: around every use. */
void lstm__amx_begin(void);
void lstm__amx_end(void);

/* C rows [0,mb) (mb <= 32) x columns [0,nb) (nb <= 32) (+)= A x B over kp
 * pairs of K: A as tile rows (ap, kp pairs a row, 16 rows past mb <= 16
 * or 32 rows), B as panels of 16 columns (bp; panel j at bp + j*kp*16,
 * one or two of them). add: C's old values start the sums. Tiles 0-3 for
 * C, 4-5 for A, 6-7 for B; buf: 256 floats, 64-byte aligned. */
void lstm__amx_block(const uint32_t *ap, const uint32_t *bp, size_t kp,
                     size_t mb, size_t nb, float *C, size_t ldc, int add,
                     float *buf);

#endif
