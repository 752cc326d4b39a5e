/*
 * fuzz_file.h - the loaders read files, so each harness writes its input
 * to a file of its own (one per process) first.
 */
#ifndef FUZZ_FILE_H
#define FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Writes data to /tmp/fuzz_<tag>_<pid>.bin, its name into path; 0 on
 * success. The caller unlinks it. */
static inline int fuzz_file(const char *tag, const uint8_t *data, size_t size,
                            char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/fuzz_%s_%d.bin", tag, (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return 1;
    size_t n = fwrite(data, 1, size, fp);
    return fclose(fp) != 0 || n != size;
}

#endif
