/*
 * rng.c - the seeded random generator: xoshiro256** (Blackman & Vigna,
 * 2018) seeded through splitmix64, and the fills built on it.
 */
#include <math.h>

#include "internal.h"

void lstm_rng_seed(lstm_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {  /* splitmix64 spreads the seed */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
}

uint64_t lstm_rng_next(lstm_rng *r) { return lstm__xoshiro(r->s); }

double lstm_rng_uniform(lstm_rng *r)
{
    return (double)(lstm_rng_next(r) >> 11) * 0x1.0p-53;
}

double lstm_rng_normal(lstm_rng *r)
{
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1] */
    double u = 1.0 - lstm_rng_uniform(r), v = lstm_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

size_t lstm_rng_below(lstm_rng *r, size_t n)
{
    assert(n > 0);
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do
        x = lstm_rng_next(r);
    while (x >= lim);
    return (size_t)(x % n);
}

void lstm_rng_shuffle(lstm_rng *r, size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = lstm_rng_below(r, i), t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

void lstm_fill_uniform(float *x, size_t n, float lo, float hi, lstm_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)lo + (double)(hi - lo) * lstm_rng_uniform(r));
}

void lstm_fill_normal(float *x, size_t n, float mean, float std, lstm_rng *r)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)mean + (double)std * lstm_rng_normal(r));
}
