/*
 * fuzz_checkpoint.c - libFuzzer harness: arbitrary bytes as the files a
 * training run reads back: a model file through lstm_model_load (its
 * metadata: vocabulary, class names, configuration), and a training state
 * through lstm_trainer_load into a small fixed trainer (position,
 * generator states, optimizer and best-weight tensors).
 */
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
                                      LSTM_CELL_LSTM};
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
    unlink(path);
    return 0;
}
