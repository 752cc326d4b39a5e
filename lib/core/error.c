/*
 * error.c - error codes and the calling thread's last message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

/* The arguments may hold lstm_errmsg() itself (a message prefixed or
 * extended): formatted aside, then copied. */
int lstm_error(int err, const char *fmt, ...)
{
    char msg[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(errbuf, msg, sizeof msg);
    return err;
}
