/*
 * fuzz_checkpoint.c - libFuzzer harness: arbitrary bytes as the files
 * news_classifier reads back: a model checkpoint (its metadata: vocabulary,
 * class names, configuration) through load_model, and a training state
 * (options, position, generator states, optimizer tensors) through
 * state_options and state_restore into a small fixed model. The program's
 * own parsers are static, so its source is included here.
 */
#define main news_classifier_main
#include "../../examples/news_classifier.c"
#undef main
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lstm_classifier tiny;
    static lstm_adamw opt;
    static float *best;
    static int ready;
    if (!ready) {
        lstm_classifier_config cfg = {6, 3, 2, 1, 2, {4, 3}, 2, 0.0f,
                                      LSTM_POOL_LAST, LSTM_FP32};
        if (lstm_classifier_init(&tiny, &cfg) ||
            lstm_adamw_init(&opt, tiny.ps.n, 1e-3, 0.9, 0.999, 1e-8, 0.0))
            return 0;
        best = calloc(tiny.ps.n, sizeof *best);
        ready = 1;
    }
    char path[64];
    if (fuzz_file("ckpt", data, size, path, sizeof path))
        return 0;

    lstm_classifier m;
    lstm_vocab vocab;
    char **classes;
    size_t ncl, max_len;
    if (load_model(path, &m, &vocab, &classes, &ncl, &max_len) == 0) {
        lstm_classifier_free(&m);
        lstm_vocab_free(&vocab);
        free_strings(classes, ncl);
    }

    lstm_safetensors st;
    if (lstm_safetensors_open(&st, path) == LSTM_OK) {
        options o;
        defaults(&o);
        if (state_options(&st, path, &o) == 0) {
            lstm_dataset ds = {0};
            train_pos pos = {0};
            char tbdir[256];
            lstm_buf metrics = {0};
            state_restore(&st, path, &tiny, &opt, best, &pos, tbdir,
                          sizeof tbdir, &metrics, &ds, 0, 100);
            lstm_buf_free(&metrics);
        }
        lstm_safetensors_close(&st);
    }
    unlink(path);
    return 0;
}
