/*
 * dispatch.c - the kernel sets (the references, and the tuned kernels for
 * each instruction set this build has), the CPU check that decides which
 * the machine can run, and the per-thread floating-point mode. The library
 * picks a set at run time (lib/core/threads.c).
 */
#define _DEFAULT_SOURCE  /* syscall */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <xmmintrin.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <string.h>

#include "kernels.h"

static const lstm__kernels sets[] = {
    {"ref", lstm__gemm_ref, lstm__gemm_ref, lstm__lstm_fwd_ref,
     lstm__lstm_bwd_ref, lstm__wpack_fwd, lstm__wpack_bwd, lstm__gru_fwd_ref,
     lstm__gru_bwd_ref, lstm__adamw_ref, NULL, NULL, NULL},
    {"generic", lstm__gemm_blas, lstm__gemm_blas, lstm__lstm_fwd_generic,
     lstm__lstm_bwd_generic, lstm__wpack_fwd, lstm__wpack_bwd,
     lstm__gru_fwd_generic, lstm__gru_bwd_generic, lstm__adamw_generic, NULL,
     NULL, NULL},
#if LSTM_X86
    {"avx2", lstm__gemm_blas, lstm__gemm_blas, lstm__lstm_fwd_avx2,
     lstm__lstm_bwd_avx2, lstm__wpack_fwd, lstm__wpack_bwd, lstm__gru_fwd_avx2,
     lstm__gru_bwd_avx2, lstm__adamw_avx2, NULL, NULL, NULL},
    {"avx512", lstm__gemm_avx512, lstm__gemm_avx512, lstm__lstm_fwd_avx512,
     lstm__lstm_bwd_avx512, lstm__wpack_fwd, lstm__wpack_bwd,
     lstm__gru_fwd_avx512, lstm__gru_bwd_avx512, lstm__adamw_avx512,
     lstm__wgrad_avx512, NULL, lstm__gemm_runs_avx512},
    {"avx512bf16", lstm__gemm_avx512, lstm__gemm_bf16_avx512,
     lstm__lstm_fwd_avx512bf16, lstm__lstm_bwd_avx512bf16,
     lstm__wpack_fwd_pairs, lstm__wpack_bwd_pairs, lstm__gru_fwd_avx512,
     lstm__gru_bwd_avx512, lstm__adamw_avx512, lstm__wgrad_avx512, NULL,
     lstm__gemm_runs_avx512},
    {"amx", lstm__gemm_avx512, lstm__gemm_bf16_amx, lstm__lstm_fwd_amx,
     lstm__lstm_bwd_amx, lstm__wpack_fwd_amx, lstm__wpack_bwd_amx,
     lstm__gru_fwd_amx, lstm__gru_bwd_amx, lstm__adamw_avx512,
     lstm__wgrad_amx, lstm__wgrad_bf16_amx, lstm__gemm_runs_avx512},
#endif
};

#if LSTM_X86
/* CPUID leaf 7: AVX512-BF16 (subleaf 1, EAX bit 5), AMX-BF16 (subleaf 0,
 * EDX bit 22), AMX-TILE (subleaf 0, EDX bit 24). */
static int cpuid7(unsigned sub, int reg, int bit)
{
    unsigned r[4] = {0, 0, 0, 0};
    if (!__get_cpuid_count(7, sub, &r[0], &r[1], &r[2], &r[3]))
        return 0;
    return (int)(r[reg] >> bit) & 1;
}

/* Whether the CPU has AMX-BF16 and Linux lets this process use its tile
 * registers (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: once for the
 * whole process, before the first tile instruction; Linux 5.16 or later). */
static int amx_usable(void)
{
#if defined(__linux__)
    static int ok = -1;  /* asking twice is harmless: no lock */
    if (ok < 0)
        ok = cpuid7(0, 3, 22) && cpuid7(0, 3, 24) &&
             syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    return ok;
#else
    return 0;
#endif
}
#endif

/* Whether this CPU runs the instructions of set `name`. */
static int cpu_runs(const char *name)
{
#if LSTM_X86
    if (strcmp(name, "amx") == 0)
        return cpu_runs("avx512bf16") && amx_usable();
    if (strcmp(name, "avx512bf16") == 0)
        return cpu_runs("avx512") && cpuid7(1, 0, 5);
    /* the features of -march=x86-64-v3 and -v4 that the compiler may use */
    if (strcmp(name, "avx2") == 0 || strcmp(name, "avx512") == 0) {
        __builtin_cpu_init();
        int v3 = __builtin_cpu_supports("avx2") &&
                 __builtin_cpu_supports("fma") &&
                 __builtin_cpu_supports("bmi") &&
                 __builtin_cpu_supports("bmi2");
        if (strcmp(name, "avx2") == 0)
            return v3;
        return v3 && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
    }
#endif
    return 1;
}

const lstm__kernels *lstm__kernels_get(const char *name)
{
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        if (strcmp(sets[i].name, name) == 0)
            return cpu_runs(name) ? &sets[i] : NULL;
    return NULL;
}

/* amx where the CPU and the OS allow it; avx512bf16 by default only
 * without AMX: vdpbf16ps measured 1.85x the fp32 FMA rate on an AMD Zen 5
 * (no AMX), but half of it on an Intel Sapphire Rapids (AMX-BF16), where
 * LSTM_KERNELS=avx512bf16 still forces it. */
const lstm__kernels *lstm__kernels_best(void)
{
#if LSTM_X86
    const lstm__kernels *amx = lstm__kernels_get("amx");
    if (amx)
        return amx;
    if (!cpuid7(0, 3, 22)) {
        const lstm__kernels *k = lstm__kernels_get("avx512bf16");
        if (k)
            return k;
    }
#endif
    static const char *order[] = {"avx512", "avx2", "generic"};
    for (int i = 0; i < 3; i++) {
        const lstm__kernels *k = lstm__kernels_get(order[i]);
        if (k)
            return k;
    }
    return &sets[0];
}

void lstm__ftz(void)
{
#if defined(__x86_64__) || defined(__i386__)
    /* FTZ (bit 15) and DAZ (bit 6) of MXCSR */
    _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
}
