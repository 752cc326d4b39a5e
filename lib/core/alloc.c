/*
 * alloc.c - every allocation of the library, with the testing hooks that
 * make one fail or count the live blocks, and the bump carver of workspaces.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

static atomic_long live_allocs;
static atomic_long fail_countdown;

void *lstm_alloc(size_t bytes)
{
    long n = atomic_load(&fail_countdown);
    if (n > 0 && atomic_fetch_sub(&fail_countdown, 1) == 1) {
        lstm_error(LSTM_ENOMEM, "out of memory (injected failure)");
        return NULL;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        lstm_error(LSTM_ENOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    atomic_fetch_add(&live_allocs, 1);
    return p;
}

void lstm_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub(&live_allocs, 1);
    free(p);
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
