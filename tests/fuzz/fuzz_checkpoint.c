/*
 * fuzz_checkpoint.c - libFuzzer harness: arbitrary bytes as the files a
 * training run reads back: a model file through lstm_model_load (its
 * metadata: vocabulary, class names, configuration), and a training state
 * through lstm_trainer_load into a small fixed trainer (position,
 * generator states, optimizer and best-weight tensors), and as a run's
 * folder through lstm_run_resume (the saved options, the TensorBoard
 * folder).
 */
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lstm_data.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lstm_classifier tiny;
    static lstm_trainer tr;
    static lstm_corpus corpus;
    static int32_t labels[2];
    static size_t rows[2] = {0, 1};
    static int ready;
    if (!ready) {
        lstm_classifier_config cfg = {6, 3, 2, 1, 2, {4, 3}, 2, 0.0f,
                                      LSTM_POOL_LAST, LSTM_FP32, 0,
                                      LSTM_CELL_LSTM, 0, 0.0f};
        static int32_t ids[2] = {2, 3};
        static size_t off[2] = {0, 1};
        static int32_t len[2] = {1, 1};
        corpus = (lstm_corpus){ids, off, len, 2, 4};
        lstm_train_config tc;
        lstm_train_config_default(&tc);
        tc.monitor = LSTM_MONITOR_VAL_LOSS;  /* best weights kept */
        if (lstm_classifier_init(&tiny, &cfg) ||
            lstm_trainer_init(&tr, &tiny, &tc) ||
            lstm_trainer_data(&tr, &corpus, labels, rows, 2, rows, 2))
            return 0;
        ready = 1;
    }
    char path[64];
    if (fuzz_file("ckpt", data, size, path, sizeof path))
        return 0;
    lstm_model m;
    if (lstm_model_load(&m, path) == 0) {
        lstm_model_predict(&m, "hola mundo", 10);
        lstm_model_free(&m);
    }
    lstm_safetensors st;
    if (lstm_safetensors_open(&st, path) == LSTM_OK) {
        lstm_trainer_load(&tr, &st, path);
        lstm_safetensors_close(&st);
    }
    /* the same file as the state of a run's folder */
    typedef struct { const char *data, *pool; long hidden; double lr; } opts;
    static const lstm_opt flags[] = {
        {"--data", "data", 's', offsetof(opts, data), 0, 0, NULL, 0},
        {"--pool", "pool", 'e', offsetof(opts, pool), 0, 0, "last|mean", 0},
        {"--hidden", "hidden", 'l', offsetof(opts, hidden), 1, 64, NULL, 0},
        {"--lr", "lr", 'd', offsetof(opts, lr), 0, 1, NULL, LSTM_OPT_OPTIONAL},
    };
    opts o = {0};
    lstm_opts op = {flags, 4, &o, {0}, NULL, 0};
    char dir[64], state[128];
    snprintf(dir, sizeof dir, "/tmp/fuzz_run_%d", (int)getpid());
    snprintf(state, sizeof state, "%s/" LSTM_RUN_STATE, dir);
    mkdir(dir, 0700);
    lstm_run r;
    if (rename(path, state) == 0 && lstm_run_init(&r, dir, &op, 0, 1) == 0) {
        lstm_run_resume(&r);
        lstm_run_free(&r);
    }
    unlink(state);
    rmdir(dir);
    unlink(path);
    return 0;
}
