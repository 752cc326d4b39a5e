/*
 * file.c - whole-file reads and atomic writes (temporary file, fsync,
 * rename), and a folder locked for one writer.
 */
#define _DEFAULT_SOURCE    /* flock */
#define _XOPEN_SOURCE 700  /* mkstemp, fsync */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "lstm_io.h"

int lstm_read_file(const char *path, char **data, size_t *n, size_t max)
{
    *data = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lstm_error(LSTM_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
    lstm_buf b = {0};
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (b.len + got > max) {
            fclose(fp);
            lstm_buf_free(&b);
            return lstm_error(LSTM_EFORMAT, "%s: larger than %zu bytes", path,
                              max);
        }
        lstm_buf_put(&b, chunk, got);
        if (b.err)  /* the buffer could not grow: stop reading */
            break;
    }
    int bad = !b.err && ferror(fp);
    fclose(fp);
    if (bad || b.err) {
        lstm_buf_free(&b);
        return bad ? lstm_error(LSTM_EIO, "%s: read error", path)
                   : lstm_error(LSTM_ENOMEM, "%s: out of memory after %zu "
                                "bytes", path, b.len);
    }
    if (!b.s) {
        b.s = lstm_alloc(1);
        if (!b.s)
            return LSTM_ENOMEM;
    }
    *data = b.s;
    *n = b.len;
    return LSTM_OK;
}

int lstm__read_regular(const char *path, char **data, size_t *n, size_t max)
{
    struct stat sb;
    *data = NULL;
    *n = 0;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return lstm_error(LSTM_EIO, "%s: not a regular file", path);
    return lstm_read_file(path, data, n, max);
}

/* lstm_write_atomic's temporary of NAME: NAME.tmp. and mkstemp's six
 * characters (lstm_dir_lock removes those a killed write left). */
#define TMP_SUFFIX ".tmp."

int lstm_write_atomic(const char *path, const void *data, size_t n)
{
    size_t pl = strlen(path);
    char *tmp = lstm_alloc(pl + 16);
    if (!tmp)
        return LSTM_ENOMEM;
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, TMP_SUFFIX "XXXXXX", sizeof TMP_SUFFIX + 6);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        lstm_free(tmp);
        return lstm_error(LSTM_EIO, "%s: cannot create a temporary file: %s",
                          path, strerror(e));
    }
    const char *p = data;
    size_t left = n;
    int err = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && chmod(tmp, 0644) != 0)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        lstm_free(tmp);
        return lstm_error(LSTM_EIO, "%s: cannot write: %s", path,
                          strerror(err));
    }
    lstm_free(tmp);
    return LSTM_OK;
}

int lstm_mkdirs(const char *path)
{
    size_t n = strlen(path);
    if (n == 0)
        return lstm_error(LSTM_EINVAL, "an empty path is no folder");
    char *tmp = lstm_alloc(n + 1);
    if (!tmp)
        return LSTM_ENOMEM;
    memcpy(tmp, path, n + 1);
    int err = LSTM_OK;
    for (size_t i = 1; i <= n && !err; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            err = lstm_error(LSTM_EIO, "%s: cannot create the folder: %s", tmp,
                             strerror(errno));
        tmp[i] = path[i];
    }
    lstm_free(tmp);
    return err;
}

int lstm_dir_lock(const char *dir, const char *lockname,
                  const char *const *names, size_t n)
{
    int err = lstm_mkdirs(dir);
    size_t cap = strlen(dir) + strlen(lockname) + 260;  /* a d_name fits */
    char *path = err ? NULL : lstm_alloc(cap);
    if (err || !path)
        return err ? err : LSTM_ENOMEM;
    snprintf(path, cap, "%s/%s", dir, lockname);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        err = lstm_error(LSTM_EIO, "%s: cannot create: %s", path,
                         strerror(errno));
    else if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        err = lstm_error(LSTM_EIO, "%s: another run is writing there (%s is "
                         "locked); wait for it or choose another folder", dir,
                         path);
    DIR *d = err ? NULL : opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        for (size_t k = 0; k < n; k++) {
            size_t l = strlen(names[k]);
            const size_t ls = sizeof TMP_SUFFIX - 1;
            if (!strncmp(e->d_name, names[k], l) &&
                !strncmp(e->d_name + l, TMP_SUFFIX, ls) &&
                strlen(e->d_name + l + ls) == 6) {
                snprintf(path, cap, "%s/%s", dir, e->d_name);
                unlink(path);
            }
        }
    if (d)
        closedir(d);
    lstm_free(path);
    if (err && fd >= 0)
        close(fd);
    return err ? err : fd;
}
