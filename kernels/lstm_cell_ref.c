/*
 * lstm_cell_ref.c - the reference recurrence of one LSTM layer, forward and
 * backward through time (see kernels.h for the contract): one sequence at a
 * time, one dot product per gate row, libm's expf and tanhf, no fused
 * multiply-adds. Slow and plain on purpose: lstm_cell.c's tuned kernels are
 * tested against it, and LSTM_KERNELS=ref runs it.
 */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "vmath.h"  /* lstm__vbf16 only */

static float sigmoid_ref(float x) { return 1.0f / (1.0f + expf(-x)); }

void lstm__lstm_fwd_ref(size_t nb, size_t T, size_t H, size_t k0, size_t k1,
                        const size_t *len, float *gates, const float *bias,
                        float *hs, float *cs, float *y, const float *w_hh,
                        const float *w_pk, int bf16, void (*sync)(void))
{
    const size_t G = 4 * H;
    assert(k0 == 0 && k1 == H && !sync);  /* no unit ranges here */
    (void)k0;
    (void)k1;
    (void)sync;
    (void)w_pk;
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
            /* a += b_ih + b_hh, then W_hh h_{t-1} */
            for (size_t j = 0; j < G; j++) {
                float acc = 0.0f;
                for (size_t k = 0; k < H; k++)
                    acc += (bf16 ? lstm__vbf16(w_hh[j * H + k])
                                 : w_hh[j * H + k]) * hp[k];
                a[j] += bias[j];
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
                hn[k] = bf16 ? lstm__vbf16(h) : h;  /* a GEMM operand */
                yt[k] = h;
            }
        }
    }
}

void lstm__lstm_bwd_ref(size_t nb, size_t T, size_t H, size_t k0, size_t k1,
                        const size_t *len, float *dA, float *dh, float *dc,
                        const float *dy, const float *gates, const float *cs,
                        const float *w_hh, const float *w_pk, float *db,
                        float *scratch, int bf16, void (*sync)(void))
{
    const size_t G = 4 * H;
    assert(k0 == 0 && k1 == H && !sync);
    memset(db, 0, nb * G * sizeof *db);
    (void)k0;
    (void)k1;
    (void)sync;
    (void)w_pk;
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
            if (bf16)  /* da is a GEMM operand from here on */
                for (size_t j = 0; j < G; j++)
                    da[j] = lstm__vbf16(da[j]);
            for (size_t j = 0; j < G; j++)  /* the bias gradient's share */
                db[b * G + j] += da[j];
            /* a = ... + W_hh h:  dh_{t-1} = W_hh^T da */
            for (size_t k = 0; k < H; k++) {
                float acc = 0.0f;
                for (size_t j = 0; j < G; j++)
                    acc += (bf16 ? lstm__vbf16(w_hh[j * H + k])
                                 : w_hh[j * H + k]) * da[j];
                dhb[k] = acc;
            }
        }
    }
}

