/*
 * gru_cell_ref.c - the reference recurrence of one GRU layer, forward and
 * backward through time (see kernels.h for the contract): one sequence at
 * a time, one dot product per gate row, libm's expf and tanhf, no fused
 * multiply-adds. gru_cell.c's tuned kernels are tested against it.
 *
 * The backward, from h' = n + z*(h - n), n = tanh(a_n + r*s_n),
 * r = sigmoid(a_r + s_r), z = sigmoid(a_z + s_z) (a the input side with
 * its bias, s = W_hh h + b_hh), for dh' the gradient of h':
 *   dz = dh' * (h - n)          da_z = ds_z = dz * z*(1-z)
 *   dn = dh' * (1 - z)          da_n = dn * (1-n^2),  ds_n = da_n * r
 *   dr = da_n * s_n             da_r = ds_r = dr * r*(1-r)
 *   dh = dh' * z + ds W_hh
 */
#include <math.h>
#include <string.h>

#include "kernels.h"

static float sigmoid_ref(float x) { return 1.0f / (1.0f + expf(-x)); }

void lstm__gru_fwd_ref(size_t nb, size_t T, size_t H, const size_t *len,
                       float *gates, const float *b_ih, const float *b_hh,
                       float *hs, float *hn, float *y, const float *w_hh,
                       const float *w_pk, float *scratch)
{
    const size_t G = 3 * H;
    (void)w_pk;
    for (size_t b = 0; b < nb; b++) {
        float *s = scratch + b * G;
        for (size_t t = 0; t < T; t++) {
            float *a = gates + (b * T + t) * G;
            const float *hp = hs + (b * (T + 1) + t) * H;
            float *hnext = hs + (b * (T + 1) + t + 1) * H;
            float *sn = hn + (b * T + t) * H;
            float *yt = y + (b * T + t) * H;
            if (t >= len[b]) {  /* past the end: the state is carried */
                memcpy(hnext, hp, H * sizeof *hnext);
                memset(yt, 0, H * sizeof *yt);
                memset(sn, 0, H * sizeof *sn);
                memset(a, 0, G * sizeof *a);
                continue;
            }
            for (size_t j = 0; j < G; j++) {  /* s = W_hh h + b_hh */
                float acc = 0.0f;
                for (size_t k = 0; k < H; k++)
                    acc += w_hh[j * H + k] * hp[k];
                s[j] = acc + b_hh[j];
            }
            for (size_t k = 0; k < H; k++) {
                float r = sigmoid_ref(a[k] + b_ih[k] + s[k]);
                float z = sigmoid_ref(a[H + k] + b_ih[H + k] + s[H + k]);
                float n = tanhf(a[2 * H + k] + b_ih[2 * H + k] +
                                r * s[2 * H + k]);
                float h = n + z * (hp[k] - n);
                a[k] = r;
                a[H + k] = z;
                a[2 * H + k] = n;
                sn[k] = s[2 * H + k];
                hnext[k] = h;
                yt[k] = h;
            }
        }
    }
}

void lstm__gru_bwd_ref(size_t nb, size_t T, size_t H, const size_t *len,
                       float *dA, float *dAh, float *dh, const float *dy,
                       const float *gates, const float *hs, const float *hn,
                       const float *w_hh, const float *w_pk, float *db,
                       float *scratch)
{
    const size_t G = 3 * H;
    (void)w_pk;
    for (size_t b = 0; b < nb; b++) {
        float *dhb = dh + b * H, *dhp = scratch + b * H;
        float *dbi = db + b * 2 * G, *dbh = dbi + G;
        memset(dbi, 0, 2 * G * sizeof *dbi);
        for (size_t t = T; t-- > 0;) {
            float *da = dA + (b * T + t) * G, *ds = dAh + (b * T + t) * G;
            if (t >= len[b]) {  /* carried state: dh passes through */
                memset(da, 0, G * sizeof *da);
                memset(ds, 0, G * sizeof *ds);
                continue;
            }
            const float *a = gates + (b * T + t) * G;
            const float *hp = hs + (b * (T + 1) + t) * H;
            const float *sn = hn + (b * T + t) * H;
            const float *dyt = dy ? dy + (b * T + t) * H : NULL;
            for (size_t k = 0; k < H; k++) {
                float r = a[k], z = a[H + k], n = a[2 * H + k];
                float d = dhb[k] + (dyt ? dyt[k] : 0.0f);
                float dan = d * (1.0f - z) * (1.0f - n * n);
                float dar = dan * sn[k] * r * (1.0f - r);
                float daz = d * (hp[k] - n) * z * (1.0f - z);
                da[k] = ds[k] = dar;
                da[H + k] = ds[H + k] = daz;
                da[2 * H + k] = dan;
                ds[2 * H + k] = dan * r;
                dhp[k] = d * z;
            }
            for (size_t j = 0; j < G; j++) {
                dbi[j] += da[j];
                dbh[j] += ds[j];
            }
            for (size_t k = 0; k < H; k++) {  /* dh = dh'*z + ds W_hh */
                float acc = 0.0f;
                for (size_t j = 0; j < G; j++)
                    acc += w_hh[j * H + k] * ds[j];
                dhb[k] = dhp[k] + acc;
            }
        }
    }
}
