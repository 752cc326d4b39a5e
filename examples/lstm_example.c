/*
 * lstm_example.c - the README's example: a 2-layer LSTM over a padded
 * batch, forward and backward, linked against lib/liblstm.a.
 *
 *   cc -Iinclude examples/lstm_example.c lib/liblstm.a \
 *      $(pkg-config --libs openblas) -fopenmp -lz -lm -o lstm_example
 */
#include <stdio.h>
#include <stdlib.h>

#include "lstm.h"

int main(void)
{
    enum { B = 4, T = 10, I = 8, H = 16, L = 2 };
    lstm_params ps;
    lstm_lstm net;
    lstm_rng rng;
    lstm_rng_seed(&rng, 42);
    lstm_params_init(&ps);
    int err = lstm_lstm_init(&net, &ps, "lstm", I, H, L, 0.2f);
    if (!err)
        err = lstm_params_alloc(&ps);  /* one block of weights, one of grads */
    if (err) {
        fprintf(stderr, "lstm_example: %s\n", lstm_errmsg());
        return 1;
    }
    lstm_lstm_reset(&net, &rng);       /* U(-1/sqrt(H), 1/sqrt(H)) */

    static float x[B * T * I], dout[B * T * H], dx[B * T * I];
    int32_t len[B] = {10, 7, 3, 9};    /* true lengths; the rest is padding */
    lstm_fill_normal(x, B * T * I, 0.0f, 1.0f, &rng);
    lstm_fill_normal(dout, B * T * H, 0.0f, 1.0f, &rng);

    err = lstm_lstm_forward(&net, x, len, NULL, NULL, B, T, 1, &rng);
    if (!err) {
        lstm_params_zero_grad(&ps);
        err = lstm_lstm_backward(&net, dout, NULL, NULL, dx, NULL, NULL);
    }
    if (err) {
        fprintf(stderr, "lstm_example: %s\n", lstm_errmsg());
        return 1;
    }
    double gsum = 0.0;
    for (size_t k = 0; k < ps.n; k++)
        gsum += (double)ps.g[k] * (double)ps.g[k];
    printf("kernels %s, %zu parameters in %zu tensors\n", lstm_kernels_name(),
           ps.n, ps.np);
    printf("hn[last layer, seq 0, 0..3] = %.4f %.4f %.4f %.4f\n",
           (double)net.hn[(L - 1) * B * H + 0], (double)net.hn[(L - 1) * B * H + 1],
           (double)net.hn[(L - 1) * B * H + 2], (double)net.hn[(L - 1) * B * H + 3]);
    printf("|grad|^2 = %.6f, dx[0] = %.6f\n", gsum, (double)dx[0]);
    lstm_lstm_free(&net);
    lstm_params_free(&ps);
    return 0;
}
