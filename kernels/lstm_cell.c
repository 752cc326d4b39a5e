/*
 * lstm_cell.c - the recurrence of one LSTM layer, forward and backward
 * through time, for a slice of the batch. The input projection and all
 * weight gradients are GEMMs over every step at once, done by the caller;
 * what is left here is inherently sequential: h_{t-1} W_hh^T, the gate
 * math, and dh_{t-1} = dA_t W_hh.
 *
 * This file holds the tuned versions (_simd): all sequences of the slice
 * per step so each row of W_hh is read once per step, register-blocked
 * products, vmath.h's exp/tanh, compiled for AVX-512, AVX2 and baseline
 * x86-64 (chosen at load time), with multiply-adds fused (the Makefile
 * builds this file with -ffp-contract=fast -fno-trapping-math; without the
 * latter the gate math's selects stay scalar). lstm_cell_ref.c holds the
 * references they are tested against.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "vmath.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LSTM_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LSTM_CLONES
#endif

/* ---- the tuned recurrence ----
 *
 * Both directions need, per step, a product of a few rows (the batch slice)
 * with a matrix that stays in cache:
 *   forward:  a_b += h_b W_hh^T      (1,H) x (H,G)
 *   backward: dh_b = da_b W_hh       (1,G) x (G,H)
 * The matrix is packed once per call into 16-column panels (lstm__pack16),
 * so each step streams it linearly, and rowmm keeps a 16-column tile of up
 * to 6 rows in registers while it walks the panel: every load of W feeds
 * 2 to 12 fused multiply-adds. */

typedef float v8 __attribute__((vector_size(32), aligned(4)));

size_t lstm__pack16_size(size_t M, size_t N) { return M * ((N + 15) / 16) * 16; }

void lstm__pack16(float *restrict dst, const float *restrict W, size_t M,
                  size_t N, int trans)
{
    for (size_t n = 0; n < N; n += 16)
        for (size_t m = 0; m < M; m++)
            for (size_t j = 0; j < 16; j++, dst++)
                *dst = n + j >= N ? 0.0f : trans ? W[(n + j) * M + m]
                                                 : W[m * N + n + j];
}

static inline __attribute__((always_inline)) void
rowmm_block(size_t nb, size_t M, size_t N, const float *in, size_t ldi,
            const float *Wp, float *out, size_t ldo, int add)
{
    for (size_t n = 0; n < N; n += 16) {
        const float *panel = Wp + n * M;
        const size_t nn = N - n < 16 ? N - n : 16;
        v8 acc[6][2];
#pragma GCC unroll 6
        for (size_t b = 0; b < nb; b++) {
            if (add && nn == 16) {
                acc[b][0] = *(const v8 *)(out + b * ldo + n);
                acc[b][1] = *(const v8 *)(out + b * ldo + n + 8);
            } else {
                acc[b][0] = (v8){0};
                acc[b][1] = (v8){0};
            }
        }
        for (size_t m = 0; m < M; m++) {
            const v8 w0 = *(const v8 *)(panel + m * 16);
            const v8 w1 = *(const v8 *)(panel + m * 16 + 8);
#pragma GCC unroll 6
            for (size_t b = 0; b < nb; b++) {
                const float x = in[b * ldi + m];
                const v8 xb = {x, x, x, x, x, x, x, x};
                acc[b][0] += xb * w0;
                acc[b][1] += xb * w1;
            }
        }
        if (nn == 16) {
#pragma GCC unroll 6
            for (size_t b = 0; b < nb; b++) {
                *(v8 *)(out + b * ldo + n) = acc[b][0];
                *(v8 *)(out + b * ldo + n + 8) = acc[b][1];
            }
        } else {  /* the last, partial panel */
            for (size_t b = 0; b < nb; b++) {
                float tile[16];
                memcpy(tile, acc[b], sizeof tile);
                for (size_t j = 0; j < nn; j++)
                    out[b * ldo + n + j] =
                        (add ? out[b * ldo + n + j] : 0.0f) + tile[j];
            }
        }
    }
}

/* out (nb,N) (+)= in (nb,M) x W, W packed by lstm__pack16. Rows in blocks
 * of 6, each block size a constant the compiler unrolls. */
static inline __attribute__((always_inline)) void
rowmm(size_t nb, size_t M, size_t N, const float *in, size_t ldi,
      const float *Wp, float *out, size_t ldo, int add)
{
    for (size_t b = 0; b < nb; b += 6) {
        const float *i = in + b * ldi;
        float *o = out + b * ldo;
        switch (nb - b >= 6 ? 6 : nb - b) {
        case 6: rowmm_block(6, M, N, i, ldi, Wp, o, ldo, add); break;
        case 5: rowmm_block(5, M, N, i, ldi, Wp, o, ldo, add); break;
        case 4: rowmm_block(4, M, N, i, ldi, Wp, o, ldo, add); break;
        case 3: rowmm_block(3, M, N, i, ldi, Wp, o, ldo, add); break;
        case 2: rowmm_block(2, M, N, i, ldi, Wp, o, ldo, add); break;
        default: rowmm_block(1, M, N, i, ldi, Wp, o, ldo, add); break;
        }
    }
}

/* Gate math of one step for one sequence: a holds the pre-activations.
 * Always inlined, so it is compiled for the caller's instruction set. */
static inline __attribute__((always_inline)) void cell_fwd_simd(float *restrict a, float *restrict hn,
                                 float *restrict cn, float *restrict yt,
                                 const float *restrict cp, size_t H)
{
#pragma omp simd
    for (size_t k = 0; k < H; k++) {
        float i = lstm__vsigmoid(a[k]);
        float f = lstm__vsigmoid(a[H + k]);
        float g = lstm__vtanh(a[2 * H + k]);
        float o = lstm__vsigmoid(a[3 * H + k]);
        float c = f * cp[k] + i * g;
        float h = o * lstm__vtanh(c);
        a[k] = i;
        a[H + k] = f;
        a[2 * H + k] = g;
        a[3 * H + k] = o;
        cn[k] = c;
        hn[k] = h;
        yt[k] = h;
    }
}

LSTM_CLONES
void lstm__lstm_fwd_simd(size_t nb, size_t T, size_t H, const size_t *len,
                         float *gates, float *hs, float *cs, float *y,
                         const float *w_hh, const float *w_pk,
                         float *scratch)
{
    const size_t G = 4 * H;
    (void)w_hh;
    (void)scratch;
    for (size_t t = 0; t < T; t++) {
        /* a_b,t += h_b,t-1 W_hh^T for the whole slice (finished rows too:
         * their result is overwritten below) */
        rowmm(nb, H, G, hs + t * H, (T + 1) * H, w_pk, gates + t * G, T * G,
              1);
        for (size_t b = 0; b < nb; b++) {
            float *a = gates + (b * T + t) * G;
            float *hp = hs + (b * (T + 1) + t) * H;
            float *cp = cs + (b * (T + 1) + t) * H;
            float *yt = y + (b * T + t) * H;
            if (t >= len[b]) {  /* past the end: the state is carried */
                memcpy(hp + H, hp, H * sizeof *hp);
                memcpy(cp + H, cp, H * sizeof *cp);
                memset(yt, 0, H * sizeof *yt);
                memset(a, 0, G * sizeof *a);
                continue;
            }
            cell_fwd_simd(a, hp + H, cp + H, yt, cp, H);
        }
    }
}

LSTM_CLONES
void lstm__lstm_bwd_simd(size_t nb, size_t T, size_t H, const size_t *len,
                         float *dA, float *dh, float *dc, const float *dy,
                         const float *gates, const float *cs,
                         const float *w_hh, const float *w_pk,
                         float *scratch)
{
    (void)w_hh;
    const size_t G = 4 * H;
    for (size_t t = T; t-- > 0;) {
        for (size_t b = 0; b < nb; b++) {
            float *restrict da = dA + (b * T + t) * G;
            if (t >= len[b]) {  /* carried state: dh, dc pass through */
                memset(da, 0, G * sizeof *da);
                continue;
            }
            const float *restrict a = gates + (b * T + t) * G;
            const float *restrict cp = cs + (b * (T + 1) + t) * H;
            const float *restrict cn = cp + H;
            const float *restrict dyt = dy ? dy + (b * T + t) * H : NULL;
            float *restrict dhb = dh + b * H, *restrict dcb = dc + b * H;
#pragma omp simd
            for (size_t k = 0; k < H; k++) {
                float i = a[k], f = a[H + k], g = a[2 * H + k];
                float o = a[3 * H + k];
                float dht = dhb[k] + (dyt ? dyt[k] : 0.0f);
                float tc = lstm__vtanh(cn[k]);
                float dcc = dcb[k] + dht * o * (1.0f - tc * tc);
                float d_o = dht * tc;
                da[k] = dcc * g * i * (1.0f - i);
                da[H + k] = dcc * cp[k] * f * (1.0f - f);
                da[2 * H + k] = dcc * i * (1.0f - g * g);
                da[3 * H + k] = d_o * o * (1.0f - o);
                dcb[k] = dcc * f;
            }
        }
        /* dh_b,t-1 = da_b,t W_hh for the slice, into scratch; rows past
         * their end keep the dh they carry */
        rowmm(nb, G, H, dA + t * G, T * G, w_pk, scratch, H, 0);
        for (size_t b = 0; b < nb; b++)
            if (t < len[b])
                memcpy(dh + b * H, scratch + b * H, H * sizeof *dh);
    }
}
