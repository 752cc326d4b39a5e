/*
 * error.c - error codes and the calling thread's last message.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char errbuf[512];

const char *lstm_strerror(int err)
{
    switch (err) {
    case LSTM_OK: return "success";
    case LSTM_EINVAL: return "invalid argument";
    case LSTM_ENOMEM: return "out of memory";
    case LSTM_EIO: return "input/output error";
    case LSTM_EFORMAT: return "malformed file";
    case LSTM_ERANGE: return "index out of range";
    default: return "unknown error";
    }
}

const char *lstm_errmsg(void) { return errbuf; }

int lstm_error(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return err;
}
