/*
 * dispatch.c - the two kernel tables, and the per-thread floating-point
 * mode. The library picks a table at run time (lib/runtime.c); the CPU
 * feature choice inside the tuned kernels is made by the loader
 * (target_clones), so a table entry is always safe to call.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "kernels.h"

const lstm__kernels lstm__kernels_ref = {
    "ref", lstm__gemm_ref, lstm__lstm_fwd_ref, lstm__lstm_bwd_ref,
    lstm__adamw_ref,
};

const lstm__kernels lstm__kernels_tuned = {
    "tuned", lstm__gemm_blas, lstm__lstm_fwd_simd, lstm__lstm_bwd_simd,
    lstm__adamw_simd,
};

void lstm__ftz(void)
{
#if defined(__x86_64__) || defined(__i386__)
    /* FTZ (bit 15) and DAZ (bit 6) of MXCSR */
    _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
}
