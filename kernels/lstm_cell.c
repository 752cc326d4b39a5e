/*
 * lstm_cell.c - the recurrence of one LSTM layer, forward and backward
 * through time, for a slice of the batch. The input projection and all
 * weight gradients are GEMMs over every step at once, done by the caller;
 * what is left here is inherently sequential: h_{t-1} W_hh^T, the gate
 * math, and dh_{t-1} = dA_t W_hh.
 *
 * _ref: one sequence at a time, one dot product per gate row, libm.
 * _simd: all sequences of the slice per step so each row of W_hh is read
 * once per step, axpy loops the compiler vectorises, vmath.h's exp/tanh;
 * compiled for AVX-512, AVX2 and baseline x86-64, chosen at load time.
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

static float sigmoid_ref(float x) { return 1.0f / (1.0f + expf(-x)); }

void lstm__lstm_fwd_ref(size_t nb, size_t T, size_t H, const size_t *len,
                        float *gates, float *hs, float *cs, float *y,
                        const float *w_hh, const float *w_hhT, float *scratch)
{
    const size_t G = 4 * H;
    (void)w_hhT;
    (void)scratch;
    for (size_t b = 0; b < nb; b++) {
        for (size_t t = 0; t < T; t++) {
            float *a = gates + (b * T + t) * G;
            const float *hp = hs + (b * (T + 1) + t) * H;
            const float *cp = cs + (b * (T + 1) + t) * H;
            float *hn = hs + (b * (T + 1) + t + 1) * H;
            float *cn = cs + (b * (T + 1) + t + 1) * H;
            float *yt = y + (b * T + t) * H;
            if (t >= len[b]) {  /* past the end: the state is carried */
                memcpy(hn, hp, H * sizeof *hn);
                memcpy(cn, cp, H * sizeof *cn);
                memset(yt, 0, H * sizeof *yt);
                memset(a, 0, G * sizeof *a);
                continue;
            }
            /* a += W_hh h_{t-1} */
            for (size_t j = 0; j < G; j++) {
                float acc = 0.0f;
                for (size_t k = 0; k < H; k++)
                    acc += w_hh[j * H + k] * hp[k];
                a[j] += acc;
            }
            for (size_t k = 0; k < H; k++) {
                float i = sigmoid_ref(a[k]);          /* i = sigmoid(a_i) */
                float f = sigmoid_ref(a[H + k]);      /* f = sigmoid(a_f) */
                float g = tanhf(a[2 * H + k]);        /* g = tanh(a_g) */
                float o = sigmoid_ref(a[3 * H + k]);  /* o = sigmoid(a_o) */
                float c = f * cp[k] + i * g;          /* c' = f*c + i*g */
                float h = o * tanhf(c);               /* h' = o*tanh(c') */
                a[k] = i;
                a[H + k] = f;
                a[2 * H + k] = g;
                a[3 * H + k] = o;
                cn[k] = c;
                hn[k] = h;
                yt[k] = h;
            }
        }
    }
}

void lstm__lstm_bwd_ref(size_t nb, size_t T, size_t H, const size_t *len,
                        float *dA, float *dh, float *dc, const float *dy,
                        const float *gates, const float *cs, const float *w_hh,
                        float *scratch)
{
    const size_t G = 4 * H;
    (void)scratch;
    for (size_t b = 0; b < nb; b++) {
        float *dhb = dh + b * H, *dcb = dc + b * H;
        for (size_t t = T; t-- > 0;) {
            float *da = dA + (b * T + t) * G;
            if (t >= len[b]) {  /* carried state: dh, dc pass through */
                memset(da, 0, G * sizeof *da);
                continue;
            }
            const float *a = gates + (b * T + t) * G;
            const float *cp = cs + (b * (T + 1) + t) * H;
            const float *cn = cs + (b * (T + 1) + t + 1) * H;
            const float *dyt = dy ? dy + (b * T + t) * H : NULL;
            for (size_t k = 0; k < H; k++) {
                float i = a[k], f = a[H + k], g = a[2 * H + k];
                float o = a[3 * H + k];
                float dht = dhb[k] + (dyt ? dyt[k] : 0.0f);
                float tc = tanhf(cn[k]);
                /* h' = o*tanh(c'):  do = dh*tanh(c'), dc' += dh*o*(1-tanh^2) */
                float dcc = dcb[k] + dht * o * (1.0f - tc * tc);
                float d_o = dht * tc;
                /* c' = f*c + i*g:  di = dc'*g, df = dc'*c, dg = dc'*i */
                da[k] = dcc * g * i * (1.0f - i);           /* sigmoid' */
                da[H + k] = dcc * cp[k] * f * (1.0f - f);   /* sigmoid' */
                da[2 * H + k] = dcc * i * (1.0f - g * g);   /* tanh' */
                da[3 * H + k] = d_o * o * (1.0f - o);       /* sigmoid' */
                dcb[k] = dcc * f;                           /* dc = dc'*f */
            }
            /* a = ... + W_hh h:  dh_{t-1} = W_hh^T da */
            for (size_t k = 0; k < H; k++) {
                float acc = 0.0f;
                for (size_t j = 0; j < G; j++)
                    acc += w_hh[j * H + k] * da[j];
                dhb[k] = acc;
            }
        }
    }
}

/* Gate math of one step for one sequence: a holds the pre-activations. */
static inline void cell_fwd_simd(float *restrict a, float *restrict hn,
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
                         const float *w_hh, const float *w_hhT,
                         float *scratch)
{
    const size_t G = 4 * H;
    (void)w_hh;
    for (size_t t = 0; t < T; t++) {
        /* acc_b = gates_b,t + h_b,t-1 W_hh^T, W_hh^T row k read once for
         * the whole slice. Sequences past their end are skipped. */
        for (size_t b = 0; b < nb; b++)
            if (t < len[b])
                memcpy(scratch + b * G, gates + (b * T + t) * G,
                       G * sizeof *scratch);
        for (size_t k = 0; k < H; k++) {
            const float *restrict wk = w_hhT + k * G;
            for (size_t b = 0; b < nb; b++) {
                if (t >= len[b])
                    continue;
                float *restrict acc = scratch + b * G;
                const float hk = hs[(b * (T + 1) + t) * H + k];
#pragma omp simd
                for (size_t j = 0; j < G; j++)
                    acc[j] += hk * wk[j];
            }
        }
        for (size_t b = 0; b < nb; b++) {
            float *a = gates + (b * T + t) * G;
            float *hp = hs + (b * (T + 1) + t) * H;
            float *cp = cs + (b * (T + 1) + t) * H;
            float *yt = y + (b * T + t) * H;
            if (t >= len[b]) {
                memcpy(hp + H, hp, H * sizeof *hp);
                memcpy(cp + H, cp, H * sizeof *cp);
                memset(yt, 0, H * sizeof *yt);
                memset(a, 0, G * sizeof *a);
                continue;
            }
            memcpy(a, scratch + b * G, G * sizeof *a);
            cell_fwd_simd(a, hp + H, cp + H, yt, cp, H);
        }
    }
}

LSTM_CLONES
void lstm__lstm_bwd_simd(size_t nb, size_t T, size_t H, const size_t *len,
                         float *dA, float *dh, float *dc, const float *dy,
                         const float *gates, const float *cs,
                         const float *w_hh, float *scratch)
{
    const size_t G = 4 * H;
    for (size_t t = T; t-- > 0;) {
        for (size_t b = 0; b < nb; b++) {
            float *restrict da = dA + (b * T + t) * G;
            if (t >= len[b]) {
                memset(da, 0, G * sizeof *da);
                continue;
            }
            const float *restrict a = gates + (b * T + t) * G;
            const float *restrict cp = cs + (b * (T + 1) + t) * H;
            const float *restrict cn = cp + H;
            const float *restrict dyt = dy ? dy + (b * T + t) * H : NULL;
            float *restrict dhb = dh + b * H, *restrict dcb = dc + b * H;
            float *restrict dhsum = scratch + b * H;
            if (dyt) {
#pragma omp simd
                for (size_t k = 0; k < H; k++)
                    dhsum[k] = dhb[k] + dyt[k];
            } else {
                memcpy(dhsum, dhb, H * sizeof *dhsum);
            }
#pragma omp simd
            for (size_t k = 0; k < H; k++) {
                float i = a[k], f = a[H + k], g = a[2 * H + k];
                float o = a[3 * H + k];
                float dht = dhsum[k];
                float tc = lstm__vtanh(cn[k]);
                float dcc = dcb[k] + dht * o * (1.0f - tc * tc);
                float d_o = dht * tc;
                da[k] = dcc * g * i * (1.0f - i);
                da[H + k] = dcc * cp[k] * f * (1.0f - f);
                da[2 * H + k] = dcc * i * (1.0f - g * g);
                da[3 * H + k] = d_o * o * (1.0f - o);
                dcb[k] = dcc * f;
            }
            /* dh_{t-1} = W_hh^T da, as axpys over the rows of W_hh */
            memset(dhb, 0, H * sizeof *dhb);
            for (size_t j = 0; j < G; j++) {
                const float *restrict wj = w_hh + j * H;
                const float dj = da[j];
#pragma omp simd
                for (size_t k = 0; k < H; k++)
                    dhb[k] += dj * wj[k];
            }
        }
    }
}
