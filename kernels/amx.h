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

/* The calling thread's tiles configured (eight of 16 rows x 64 bytes),
 * and released: around every use. */
void lstm__amx_begin(void);
void lstm__amx_end(void);

#endif
