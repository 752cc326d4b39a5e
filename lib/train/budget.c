/*
 * budget.c - what a classifier training run will hold in memory and
 * write, from its configuration and data, before any weight exists, and
 * whether the machine has it.
 */
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "internal.h"
#include "lstm_train.h"

void lstm_train_budget_of(lstm_train_budget *b,
                          const lstm_classifier_config *cfg, size_t batch,
                          size_t max_len, int keep_best,
                          const lstm_dataset *ds, const lstm_corpus *c,
                          const lstm_vocab *v)
{
    const double n = (double)lstm_classifier_params(cfg);
    const size_t B = batch > LSTM_EVAL_BATCH ? batch : LSTM_EVAL_BATCH;
    const double model = (double)lstm_classifier_memory(cfg, B, max_len);
    b->rows = B;
    b->params = 4.0 * n * (4 + keep_best);
    b->activations = model - 8.0 * n;
    /* the texts as read (with about 48 bytes of bookkeeping a row) and
     * their tokens */
    b->texts = 0;
    for (size_t i = 0; i < ds->n; i++)
        b->texts += (double)ds->text_len[i] + 49.0 + 16.0 + 4.0 * c->len[i];
    /* the state is serialised in one buffer before it is written */
    b->state = 4.0 * n * (3 + keep_best) + 65536.0;
    b->total = model + 4.0 * n * (2 + keep_best) + b->texts + b->state;
    double vocab = 0;
    for (size_t i = 0; i < v->n; i++)
        vocab += 2.0 * (double)strlen(v->tok[i]) + 3.0;
    b->checkpoint = 4.0 * n + vocab + 65536.0;
}

/* The address space (ulimit -v) below which Debian's OpenBLAS 0.3.21 may
 * retry its buffer allocation for ever at its first call: measured, a
 * prediction needs about 350 MiB with it; 512 leaves a margin. */
#define AS_FLOOR (512.0 * 1024 * 1024)
#define MIB(x) ((x) / (1024.0 * 1024.0))

/* The address-space limit in bytes, HUGE_VAL without one. */
static double address_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return HUGE_VAL;
    return (double)rl.rlim_cur;
}

int lstm_address_check(void)
{
    const double as = address_limit();
    if (as < AS_FLOOR)
        return lstm_error(LSTM_ENOMEM, "the address-space limit (ulimit -v) "
                          "is %.0f MiB; OpenBLAS may wait for ever below about "
                          "350 MiB: raise it to %.0f MiB or more", MIB(as),
                          MIB(AS_FLOOR));
    return LSTM_OK;
}

int lstm_train_budget_check(const lstm_train_budget *b, double limit,
                            const char *limit_name, const char *dir)
{
    const int given = limit > 0;
    if (!given) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
        limit = pages > 0 && psz > 0 ? (double)pages * (double)psz : HUGE_VAL;
    }
    const double room = address_limit() - AS_FLOOR;
    const int by_as = room < limit;
    limit = by_as ? room : limit;
    if (b->total > limit)
        return lstm_error(LSTM_ENOMEM, "training needs about %.0f MiB of "
                          "memory, more than the %.0f MiB %s%s",
                          MIB(b->total), MIB(limit),
                          by_as ? "the address-space limit (ulimit -v) leaves "
                                  "beside OpenBLAS's reserve"
                          : given ? limit_name : "this machine has",
                          !by_as && given ? " allows" : "");
    struct statvfs fs;  /* an atomic write holds the new file beside the old */
    const double avail = statvfs(dir, &fs)
                             ? HUGE_VAL
                             : (double)fs.f_bavail * (double)fs.f_frsize;
    if (avail < b->state + b->checkpoint)
        return lstm_error(LSTM_EIO, "%s: %.1f MiB free, a checkpoint needs "
                          "%.1f MiB (the training state and the model file); "
                          "free some space or choose another folder", dir,
                          MIB(avail), MIB(b->state + b->checkpoint));
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (double)rl.rlim_cur < b->state)
        return lstm_error(LSTM_EIO, "the file size limit (ulimit -f) is %.0f "
                          "KiB, the training state needs %.0f KiB",
                          (double)rl.rlim_cur / 1024, b->state / 1024);
    return LSTM_OK;
}
