/*
 * checkpoint.c - a layer-level run's checkpoint: weights, AdamW's moments
 * and step in one safetensors file.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_train.h"

const char *const lstm__block_prefix[4] = {
    "", "optimizer.exp_avg.", "optimizer.exp_avg_sq.", "best."};

int lstm__save_blocks(const char *path, const lstm_params *ps,
                      const float *const *blk, size_t nblk, const char *key0,
                      const char *val0, const char *const *keys,
                      const char *const *vals, size_t nmeta)
{
    const size_t np = ps->np, cap = 96;
    lstm_st_tensor *t = lstm_alloc((nblk * np + 1) * sizeof *t);
    char *names = lstm_alloc((nblk * np + 1) * cap);
    const char **k = lstm_alloc((nmeta + 1) * sizeof *k);
    const char **v = lstm_alloc((nmeta + 1) * sizeof *v);
    int err = t && names && k && v ? LSTM_OK
                                   : lstm_error(LSTM_ENOMEM, "%s: out of "
                                                "memory", path);
    for (size_t j = 0; !err && j < nblk; j++)
        err = lstm_safetensors_tensors(ps, blk[j], lstm__block_prefix[j],
                                       t + j * np, names + j * np * cap, cap);
    if (!err) {
        k[0] = key0;
        v[0] = val0;
        for (size_t i = 0; i < nmeta; i++) {
            k[i + 1] = keys[i];
            v[i + 1] = vals[i];
        }
        err = lstm_safetensors_write(path, t, nblk * np, k, v, nmeta + 1);
    }
    lstm_free(t);
    lstm_free(names);
    lstm_free(k);
    lstm_free(v);
    return err;
}

int lstm_adamw_save(const char *path, const lstm_params *ps,
                    const lstm_adamw *o, const char *const *keys,
                    const char *const *vals, size_t nmeta)
{
    assert(o->n == ps->n && "lstm_adamw_save: optimizer of another block");
    char step[32];
    snprintf(step, sizeof step, "%ld", o->step);
    const float *blk[3] = {ps->w, o->m, o->v};
    return lstm__save_blocks(path, ps, blk, 3, "optimizer.step", step, keys,
                             vals, nmeta);
}

int lstm_adamw_load(const lstm_safetensors *st, lstm_params *ps,
                    lstm_adamw *o)
{
    assert(o->n == ps->n && "lstm_adamw_load: optimizer of another block");
    const char *s = lstm_safetensors_meta(st, "optimizer.step");
    char *end = NULL;
    long step = s ? strtol(s, &end, 10) : -1;
    if (!s || !*s || *end || step < 0 || step == LONG_MAX)
        return lstm_error(LSTM_EFORMAT, "checkpoint: no valid "
                          "\"optimizer.step\" in the metadata");
    int err = lstm_safetensors_load_into(st, ps, NULL, ps->w);
    if (!err)
        err = lstm_safetensors_load_into(st, ps, lstm__block_prefix[1], o->m);
    if (!err)
        err = lstm_safetensors_load_into(st, ps, lstm__block_prefix[2], o->v);
    if (!err)
        o->step = step;
    return err;
}
