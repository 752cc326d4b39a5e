/*
 * train_state.c - the trainer's whole state in one safetensors file, so a
 * stopped run continues bit for bit: the weights, AdamW's moments, the
 * best weights (when kept), and the metadata "state" (docs/formats.md).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_train.h"

enum { STATE_FORMAT = 2 };  /* 1: the same, with a "tb_dir" field */

static void put_rng(lstm_buf *b, const char *key, const lstm_rng *r)
{
    lstm_buf_printf(b, ",\"%s\":\"", key);
    for (int k = 0; k < 4; k++)
        lstm_buf_printf(b, "%016llx", (unsigned long long)r->s[k]);
    lstm_buf_puts(b, "\"");
}

int lstm_trainer_save(const lstm_trainer *t, const char *path,
                      const char *const *keys, const char *const *vals,
                      size_t nmeta)
{
    const lstm_params *ps = &t->model->ps;
    lstm_buf st = {0};
    lstm_buf_printf(&st,
                    "{\"format\":%d,\"epoch\":%ld,\"step\":%zu,\"lsum\":%.17g,"
                    "\"correct\":%zu,\"seen\":%zu,\"adam_step\":%ld,"
                    "\"best_epoch\":%ld,\"wait\":%ld,\"stopped\":%d,"
                    "\"data_rows\":%llu,\"data_crc\":%lu",
                    STATE_FORMAT, t->epoch, t->step, t->lsum, t->correct,
                    t->seen, t->opt.step, t->best_epoch, t->wait, t->stopped,
                    (unsigned long long)t->cfg.data_rows,
                    (unsigned long)t->cfg.data_crc);
    if (t->best_epoch)
        lstm_buf_printf(&st, ",\"best_metric\":%.17g", t->best_metric);
    put_rng(&st, "rng_init", &t->rng_init);
    put_rng(&st, "rng_shuffle", &t->rng_shuffle);
    put_rng(&st, "rng_dropout", &t->rng_dropout);
    lstm_buf_puts(&st, "}");
    /* the best weights once an epoch has been best */
    const float *blk[4] = {ps->w, t->opt.m, t->opt.v, t->best};
    int err = st.err ? lstm_error(LSTM_ENOMEM, "out of memory saving the "
                                  "training state")
                     : lstm__save_blocks(path, ps, blk,
                                         t->best && t->best_epoch ? 4 : 3,
                                         "state", st.s, keys, vals, nmeta);
    lstm_buf_free(&st);
    return err;
}

static int get_rng(const lstm_json *j, const char *key, lstm_rng *r)
{
    const lstm_json *v = lstm_json_get(j, key);
    if (!v || v->type != LSTM_JSON_STR || v->len != 64)
        return 1;
    for (int k = 0; k < 4; k++) {
        char hex[17], *end;
        memcpy(hex, v->str + 16 * k, 16);
        hex[16] = '\0';
        r->s[k] = (uint64_t)strtoull(hex, &end, 16);
        if (*end)
            return 1;
    }
    return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0;
}

int lstm_trainer_load(lstm_trainer *t, const lstm_safetensors *st,
                      const char *path)
{
    assert(t->corpus && "lstm_trainer_load before lstm_trainer_data");
    const char *s = lstm_safetensors_meta(st, "state");
    lstm_json j = {0};
    int perr = s ? lstm_json_parse(&j, s, strlen(s)) : 0;
    if (perr == LSTM_ENOMEM)
        return perr;
    if (!s || perr || j.type != LSTM_JSON_OBJ) {
        lstm_json_free(&j);
        return lstm_error(LSTM_EFORMAT, "%s: no valid \"state\" in the "
                          "metadata", path);
    }
    const size_t steps = lstm_trainer_steps(t);
    double lsum = 0, crc = 0, rows = 0, step = 0, correct = 0, seen = 0;
    double best_metric = 0;
    long format, epoch, adam_step, best_epoch, wait, stopped;
    lstm_rng ri, rs, rd;
    int err = LSTM_OK;
    if (lstm_json_long(&j, "format", 1, STATE_FORMAT, &format) ||
        lstm_json_long(&j, "epoch", 1, 100001, &epoch) ||
        lstm_json_num(&j, "step", 0, (double)steps, &step) ||
        lstm_json_num(&j, "lsum", 0, HUGE_VAL, &lsum) ||
        lstm_json_num(&j, "correct", 0, 1e15, &correct) ||
        lstm_json_num(&j, "seen", 0, 1e15, &seen) ||
        lstm_json_long(&j, "adam_step", 0, LONG_MAX, &adam_step) ||
        lstm_json_long(&j, "best_epoch", 0, 100000, &best_epoch) ||
        lstm_json_long(&j, "wait", 0, 100000, &wait) ||
        lstm_json_long(&j, "stopped", 0, 1, &stopped) ||
        lstm_json_num(&j, "data_rows", 0, 1e15, &rows) ||
        lstm_json_num(&j, "data_crc", 0, 4294967295.0, &crc) ||
        get_rng(&j, "rng_init", &ri) || get_rng(&j, "rng_shuffle", &rs) ||
        get_rng(&j, "rng_dropout", &rd) ||
        (best_epoch &&
         lstm_json_num(&j, "best_metric", -HUGE_VAL, HUGE_VAL, &best_metric)))
        err = lstm_error(LSTM_EFORMAT, "%s: the saved state is incomplete or "
                         "out of range", path);
    else if ((uint64_t)rows != t->cfg.data_rows ||
             (uint32_t)crc != t->cfg.data_crc)
        err = lstm_error(LSTM_EINVAL, "%s: the data differ from the run's "
                         "(%.0f rows then, %llu now, or changed texts)", path,
                         rows, (unsigned long long)t->cfg.data_rows);
    lstm_json_free(&j);
    const lstm_params *ps = &t->model->ps;
    float *dst[4] = {ps->w, t->opt.m, t->opt.v, t->best};
    for (int k = 0; !err && k < 4; k++) {
        if (!dst[k] || (k == 3 && !best_epoch))
            continue;
        err = lstm_safetensors_load_into(st, ps, lstm__block_prefix[k],
                                         dst[k]);
        if (err) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s", lstm_errmsg());
            lstm_error(err, "%s: %s", path, msg);
        }
    }
    if (err)
        return err;
    t->epoch = epoch;
    t->step = (size_t)step;
    t->lsum = lsum;
    t->correct = (size_t)correct;
    t->seen = (size_t)seen;
    t->opt.step = adam_step;
    t->best_epoch = best_epoch;
    t->wait = wait;
    t->stopped = (int)stopped;
    t->best_metric = best_epoch ? best_metric : t->best_metric;
    t->rng_init = ri;
    t->rng_shuffle = rs;
    t->rng_dropout = rd;
    return LSTM_OK;
}
