/*
 * version.c - the version of the library linked in.
 */
#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const char *lstm_version(void)
{
    return STR(LSTM_VERSION_MAJOR) "." STR(LSTM_VERSION_MINOR) "." STR(
        LSTM_VERSION_PATCH);
}
