/*
 * fuzz_json.c - libFuzzer harness: arbitrary bytes through the JSON reader
 * (headers, checkpoint metadata, split files), then a write of every string
 * it found back through the JSON string writer.
 */
#include <stdint.h>

#include "lstm_data.h"

static void walk(const lstm_json *j, lstm_buf *b)
{
    if (j->type == LSTM_JSON_STR)
        lstm_buf_json_str(b, j->str, j->len);
    for (size_t i = 0; i < j->n; i++) {
        if (j->keys)
            lstm_buf_puts(b, j->keys[i]);
        walk(&j->items[i], b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lstm_json j;
    if (lstm_json_parse(&j, (const char *)data, size) == LSTM_OK) {
        lstm_buf b = {0};
        walk(&j, &b);
        lstm_buf_free(&b);
        lstm_json_get(&j, "train");
        lstm_json_free(&j);
    }
    return 0;
}
