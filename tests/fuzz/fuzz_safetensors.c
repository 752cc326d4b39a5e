/*
 * fuzz_safetensors.c - libFuzzer harness: arbitrary bytes as a checkpoint
 * through lstm_safetensors_open, its metadata lookups and a load into a
 * small model's parameter block.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lstm_data.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lstm_params ps;
    static int ready;
    if (!ready) {
        size_t s1[2] = {2, 3}, s2[1] = {3}, off;
        lstm_params_init(&ps);
        lstm_params_add(&ps, "w", 2, s1, &off);
        lstm_params_add(&ps, "b", 1, s2, &off);
        lstm_params_alloc(&ps);
        ready = 1;
    }
    char path[64];
    if (fuzz_file("st", data, size, path, sizeof path))
        return 0;
    lstm_safetensors st;
    if (lstm_safetensors_open(&st, path) == LSTM_OK) {
        const char *m = lstm_safetensors_meta(&st, "vocab");
        if (m)
            (void)strlen(m);
        lstm_safetensors_load(&st, &ps);
        lstm_safetensors_close(&st);
    }
    unlink(path);
    return 0;
}
