/*
 * adamw.c - the AdamW update over a flat block of parameters, with the
 * operations in the order of torch.optim.AdamW's single-tensor path so the
 * rounding follows it as closely as float arithmetic allows.
 */
#include <math.h>

#include "kernels.h"

size_t lstm__adamw_ref(float *w, float *m, float *v, const float *g, size_t n,
                       const lstm__adamw_args *a)
{
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) {
        const float gk = g ? g[k] : 0.0f;
        bad += !isfinite(gk);
        w[k] = w[k] * a->decay;                     /* param.mul_(1-lr*wd) */
        m[k] = m[k] * a->b1 + a->omb1 * gk;         /* exp_avg */
        v[k] = v[k] * a->b2 + a->omb2 * gk * gk;    /* exp_avg_sq */
        float denom = sqrtf(v[k]) / a->bc2_sqrt + a->eps;
        w[k] = w[k] + a->step_neg * m[k] / denom;   /* addcdiv_ */
    }
    return bad;
}

/* g - g is 0 for a finite g and NaN for inf or NaN: a test that
 * vectorises with the update at no cost to this memory-bound loop.
 * zero (a constant where it is inlined): g is not read, every g[k] is +0,
 * the same arithmetic on it; the loop then streams three arrays, not four. */
static inline __attribute__((always_inline)) size_t
adamw_body(float *restrict w, float *restrict m, float *restrict v,
           const float *restrict g, size_t n, const lstm__adamw_args *a,
           const int zero)
{
    const float decay = a->decay, b1 = a->b1, b2 = a->b2, omb1 = a->omb1;
    const float omb2 = a->omb2, sn = a->step_neg, bc = a->bc2_sqrt;
    const float eps = a->eps;
    size_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (size_t k = 0; k < n; k++) {
        float gk = zero ? 0.0f : g[k];
        bad += !(gk - gk == 0.0f);
        float wk = w[k] * decay;
        float mk = m[k] * b1 + omb1 * gk;
        float vk = v[k] * b2 + omb2 * gk * gk;
        m[k] = mk;
        v[k] = vk;
        w[k] = wk + sn * mk / (sqrtf(vk) / bc + eps);
    }
    return bad;
}

#define ADAMW(isa, attr)                                                    \
    attr size_t lstm__adamw_##isa(float *w, float *m, float *v,             \
                                  const float *g, size_t n,                 \
                                  const lstm__adamw_args *a)                \
    {                                                                       \
        return g ? adamw_body(w, m, v, g, n, a, 0)                          \
                 : adamw_body(w, m, v, g, n, a, 1);                         \
    }

ADAMW(generic, )
#if LSTM_X86
ADAMW(avx2, LSTM_ISA_AVX2)
ADAMW(avx512, LSTM_ISA_AVX512)
#endif
