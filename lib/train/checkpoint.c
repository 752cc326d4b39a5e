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

static const char *const MOMENT[2] = {"optimizer.exp_avg.",
                                      "optimizer.exp_avg_sq."};

int lstm_adamw_save(const char *path, const lstm_params *ps,
                    const lstm_adamw *o, const char *const *keys,
                    const char *const *vals, size_t nmeta)
{
    assert(o->n == ps->n && "lstm_adamw_save: optimizer of another block");
    const size_t np = ps->np, cap = 96;
    lstm_st_tensor *t = lstm_alloc((3 * np + 1) * sizeof *t);
    char *names = lstm_alloc((3 * np + 1) * cap);
    const char **k = lstm_alloc((nmeta + 1) * sizeof *k);
    const char **v = lstm_alloc((nmeta + 1) * sizeof *v);
    int err = LSTM_ENOMEM;
    char step[32];
    if (t && names && k && v) {
        snprintf(step, sizeof step, "%ld", o->step);
        k[0] = "optimizer.step";
        v[0] = step;
        for (size_t i = 0; i < nmeta; i++) {
            k[i + 1] = keys[i];
            v[i + 1] = vals[i];
        }
        err = lstm_safetensors_tensors(ps, ps->w, NULL, t, names, cap);
        for (int j = 0; j < 2 && !err; j++)
            err = lstm_safetensors_tensors(ps, j ? o->v : o->m, MOMENT[j],
                                           t + (size_t)(j + 1) * np,
                                           names + (size_t)(j + 1) * np * cap,
                                           cap);
        if (!err)
            err = lstm_safetensors_write(path, t, 3 * np, k, v, nmeta + 1);
    } else {
        lstm_error(err, "%s: out of memory", path);
    }
    lstm_free(t);
    lstm_free(names);
    lstm_free(k);
    lstm_free(v);
    return err;
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
    for (int j = 0; j < 2 && !err; j++)
        err = lstm_safetensors_load_into(st, ps, MOMENT[j], j ? o->v : o->m);
    if (!err)
        o->step = step;
    return err;
}
