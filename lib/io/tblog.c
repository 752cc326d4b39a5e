/*
 * tblog.c - TensorBoard event files with scalar summaries, written by hand:
 * TFRecord framing around tensorflow.Event protos. Enough for
 * `tensorboard --logdir` to draw the training curves.
 *
 *   record = u64 length, u32 masked_crc32c(length), data,
 *            u32 masked_crc32c(data)                    (little-endian)
 *   Event  = 1: wall_time (double), 2: step (int64), 3: file_version
 *            (string) | 5: summary (Summary)
 *   Summary = 1: repeated Value;  Value = 1: tag (string),
 *            2: simple_value (float)
 * /
 */
#define _XOPEN_SOURCE 700  /* gethostname */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "lstm_io.h"

static size_t varint(unsigned char *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            out[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

static void le(unsigned char *out, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        out[k] = (unsigned char)(v >> (8 * k));
}

static int write_record(lstm_tblog *t, const unsigned char *data, size_t n)
{
    unsigned char head[12], tail[4];
    le(head, n, 8);
    le(head + 8, lstm_crc32c_mask(lstm_crc32c(head, 8)), 4);
    le(tail, lstm_crc32c_mask(lstm_crc32c(data, n)), 4);
    FILE *fp = t->fp;
    if (fwrite(head, 1, 12, fp) != 12 || fwrite(data, 1, n, fp) != n ||
        fwrite(tail, 1, 4, fp) != 4 || fflush(fp) != 0)
        return lstm_error(LSTM_EIO, "%s: write failed: %s", t->path,
                          strerror(errno));
    return LSTM_OK;
}

/* Event header: wall_time and step. */
static size_t event_head(unsigned char *out, int64_t step)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wall = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    uint64_t bits;
    memcpy(&bits, &wall, 8);
    size_t n = 0;
    out[n++] = 0x09;  /* field 1, 64-bit */
    le(out + n, bits, 8);
    n += 8;
    out[n++] = 0x10;  /* field 2, varint */
    n += varint(out + n, (uint64_t)step);
    return n;
}

int lstm_tblog_next_dir(char *dir, size_t cap, const char *root)
{
    for (int v = 0; v < 100000; v++) {
        int n = snprintf(dir, cap, "%s/version_%d", root, v);
        if (n < 0 || (size_t)n >= cap)
            return lstm_error(LSTM_EINVAL, "%s: path too long", root);
        struct stat sb;
        if (stat(dir, &sb) != 0)
            return lstm_mkdirs(dir);
    }
    return lstm_error(LSTM_EIO, "%s: too many versions", root);
}

int lstm_tblog_open(lstm_tblog *t, const char *dir)
{
    memset(t, 0, sizeof *t);
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    /* never over an existing file: a resumed run starting within the
     * same second as the first one gets a ".1" (".2", ...) suffix */
    for (int k = 0; !t->fp && k < 1000; k++) {
        int n = k ? snprintf(t->path, sizeof t->path,
                             "%s/events.out.tfevents.%ld.%s.%d", dir,
                             (long)time(NULL), host, k)
                  : snprintf(t->path, sizeof t->path,
                             "%s/events.out.tfevents.%ld.%s", dir,
                             (long)time(NULL), host);
        if (n < 0 || (size_t)n >= sizeof t->path)
            return lstm_error(LSTM_EINVAL, "%s: path too long", dir);
        t->fp = fopen(t->path, "wbx");
        if (!t->fp && errno != EEXIST)
            break;
    }
    if (!t->fp)
        return lstm_error(LSTM_EIO, "%s: cannot create: %s", t->path,
                          strerror(errno));
    unsigned char ev[64];
    size_t n = event_head(ev, 0);
    static const char version[] = "brain.Event:2";
    ev[n++] = 0x1a;  /* field 3, length-delimited */
    ev[n++] = (unsigned char)(sizeof version - 1);
    memcpy(ev + n, version, sizeof version - 1);
    n += sizeof version - 1;
    int err = write_record(t, ev, n);
    if (err)
        lstm_tblog_close(t);
    return err;
}

int lstm_tblog_scalar(lstm_tblog *t, const char *tag, float value,
                      int64_t step)
{
    size_t tl = strlen(tag);
    if (tl > 100)
        return lstm_error(LSTM_EINVAL, "tensorboard: tag too long");
    unsigned char val[128], ev[192];
    size_t vn = 0;
    val[vn++] = 0x0a;  /* Value.tag */
    val[vn++] = (unsigned char)tl;
    memcpy(val + vn, tag, tl);
    vn += tl;
    val[vn++] = 0x15;  /* Value.simple_value, 32-bit */
    uint32_t bits;
    memcpy(&bits, &value, 4);
    le(val + vn, bits, 4);
    vn += 4;
    size_t n = event_head(ev, step);
    ev[n++] = 0x2a;    /* Event.summary */
    ev[n++] = (unsigned char)(vn + 2);
    ev[n++] = 0x0a;    /* Summary.value */
    ev[n++] = (unsigned char)vn;
    memcpy(ev + n, val, vn);
    n += vn;
    return write_record(t, ev, n);
}

void lstm_tblog_close(lstm_tblog *t)
{
    if (t->fp)
        fclose(t->fp);
    t->fp = NULL;
}
