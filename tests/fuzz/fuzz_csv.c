/*
 * fuzz_csv.c - libFuzzer harness: arbitrary bytes as a (possibly gzipped)
 * CSV file through lstm_dataset_load, which drives the CSV reader, the
 * UTF-8 checks and the label assignment. Any result is fine; a crash, a
 * leak or undefined behaviour is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "lstm_data.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    if (fuzz_file("csv", data, size, path, sizeof path))
        return 0;
    lstm_dataset ds;
    if (lstm_dataset_load(&ds, path) == LSTM_OK)
        lstm_dataset_free(&ds);
    unlink(path);
    return 0;
}
