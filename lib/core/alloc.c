/*
 * alloc.c - every allocation of the library, with the testing hooks that
 * make one fail or count the live blocks, and the bump carver of workspaces.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static atomic_long live_allocs;
static atomic_long fail_countdown;

void *lstm_alloc(size_t bytes)
{
    long fail = atomic_load(&fail_countdown);
    if (fail > 0 && atomic_fetch_sub(&fail_countdown, 1) == 1) {
        lstm_error(LSTM_ENOMEM, "out of memory (injected failure)");
        return NULL;
    }
    /* 64-byte aligned, as the kernels' vectors and the carver's arrays
     * assume (calloc gives 16: a large block starts 16 bytes into its
     * pages, and every AVX-512 load of a workspace array straddled two
     * cache lines; one thread of a Sapphire Rapids, the forward
     * recurrence of a B=32 layer: 26.3-26.8 ms from calloc's block as it
     * came, 20.9-21.3 aligned). Still calloc's block, whose pages stay
     * unmapped until written, its address kept just below the aligned one
     * for lstm_free. */
    char *raw = bytes <= SIZE_MAX - 64 ? calloc(1, bytes + 64) : NULL;
    if (!raw) {
        lstm_error(LSTM_ENOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    /* at least malloc's alignment (16 here, 8 anywhere) past raw */
    char *p = raw + 64 - (uintptr_t)raw % 64;
    memcpy(p - sizeof raw, &raw, sizeof raw);
    atomic_fetch_add(&live_allocs, 1);
    return p;
}

void lstm_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub(&live_allocs, 1);
    char *raw;
    memcpy(&raw, (char *)p - sizeof raw, sizeof raw);
    free(raw);
}

void lstm_debug_fail_alloc(long n) { atomic_store(&fail_countdown, n); }
long lstm_debug_live_allocs(void) { return atomic_load(&live_allocs); }

float *lstm__carve(lstm__carver *c, size_t nfloats)
{
    /* 64-byte alignment for every array (cache lines, AVX-512 loads) */
    size_t bytes = (nfloats * sizeof(float) + 63) & ~(size_t)63;
    float *p = c->base ? (float *)(c->base + c->used) : NULL;
    c->used += bytes;
    return p;
}
