/*
 * fuzz_text.c - libFuzzer harness: arbitrary bytes through the tokenizer,
 * a vocabulary built from them, and the encoder (invalid UTF-8 included).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lstm_data.h"

static void count(const char *w, size_t n, void *ctx)
{
    (void)w;
    *(size_t *)ctx += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t chars = 0;
    lstm_tokenize((const char *)data, size, 0, count, &chars);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lstm_dataset ds = {0};
    size_t len = size, row = 0;
    ds.n = 1;
    ds.text = &text;
    ds.text_len = &len;
    lstm_vocab v;
    if (lstm_vocab_build(&v, &ds, &row, 1, 2 + size % 50) == LSTM_OK) {
        int32_t ids[64];
        size_t n = lstm_encode(&v, text, size, ids, 1 + size % 64);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || (size_t)ids[i] >= v.n)
                abort();
        lstm_vocab_free(&v);
    }
    free(text);
    return 0;
}
