/*
 * options.c - a table of command-line flags over the fields of a caller's
 * struct: parsed from argv with one-line messages, saved as JSON members
 * and restored from a JSON object (a run's options in its training state).
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "lstm_io.h"

#define FIELD(o, f, T) ((T *)(void *)((char *)(o)->obj + (f)->off))

int lstm_choice(const char *choices, const char *v)
{
    const size_t n = strlen(v);
    for (const char *c = choices; n && c; c = strchr(c, '|'), c = c ? c + 1 : c)
        if (!strncmp(c, v, n) && (c[n] == '|' || c[n] == '\0'))
            return 1;
    return 0;
}

int lstm_opts_given(const lstm_opts *o, const char *flag)
{
    for (size_t k = 0; k < o->n; k++)
        if (!strcmp(o->def[k].flag, flag))
            return o->given[k];
    return 0;
}

/* Sets f from v, or says in one line why not. */
static int set_opt(lstm_opts *o, const lstm_opt *f, const char *v)
{
    char *end = NULL;
    double x;
    errno = 0;
    if (f->type == 's' || f->type == 'e') {
        if (!*v)
            return lstm_error(LSTM_EINVAL, "bad value for %s: '' (empty)",
                              f->flag);
        if (f->type == 'e' && !lstm_choice(f->choices, v)) {
            char list[128];  /* "a|b|c" as "a, b or c" */
            size_t n = 0;
            for (const char *c = f->choices; *c && n + 5 < sizeof list; c++)
                if (*c != '|')
                    list[n++] = *c;
                else
                    n += (size_t)sprintf(list + n,
                                         strchr(c + 1, '|') ? ", " : " or ");
            list[n] = '\0';
            return lstm_error(LSTM_EINVAL, "bad value for %s: '%s' (%s)",
                              f->flag, v, list);
        }
        *FIELD(o, f, const char *) = v;
        return 0;
    }
    if (f->type == 'l') {
        long l = strtol(v, &end, 10);
        if (f->choices && *v && !*end && !errno && l < (long)f->lo)
            return lstm_error(LSTM_EINVAL, "bad value for %s: '%s' (%s)",
                              f->flag, v, f->choices);
        if (errno || !*v || *end || l < (long)f->lo || l > (long)f->hi)
            return lstm_error(LSTM_EINVAL, "bad value for %s: '%s' (an "
                              "integer from %ld to %ld)", f->flag, v,
                              (long)f->lo, (long)f->hi);
        *FIELD(o, f, long) = l;
        return 0;
    }
    x = strtod(v, &end);
    if (f->type == 'z') {  /* bytes, with a K, M, G or T (binary) suffix */
        const char *u = *end ? strchr("KMGT", *end) : NULL;
        for (const char *q = "KMGT"; u && q <= u; q++)
            x *= 1024.0;
        if (errno || end == v || (*end && (!u || end[1])) ||
            !(x >= f->lo && x <= f->hi))
            return lstm_error(LSTM_EINVAL, "bad value for %s: '%s' (bytes, "
                              "with K, M, G or T for KiB, MiB, GiB, TiB)",
                              f->flag, v);
        *FIELD(o, f, double) = floor(x);
        return 0;
    }
    if (errno || !*v || *end || !(x >= f->lo && x <= f->hi))
        return lstm_error(LSTM_EINVAL, "bad value for %s: '%s' (a number "
                          "from %g to %g)", f->flag, v, f->lo, f->hi);
    *FIELD(o, f, double) = x;
    return 0;
}

int lstm_opts_parse(lstm_opts *o, int argc, char **argv, int first)
{
    assert(o->n <= sizeof o->given && o->obj && "lstm_opts: at most 64 flags");
    int kept = first;  /* inputs are moved down to argv[first..kept) */
    for (int i = first; i < argc; i++) {
        char *a = argv[i];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) != 0) {
            argv[kept++] = a;
            continue;
        }
        size_t fl = eq ? (size_t)(eq - a) : strlen(a), k = 0;
        if (fl == 6 && !strncmp(a, "--help", 6))
            return 1;
        while (k < o->n && (strlen(o->def[k].flag) != fl ||
                            strncmp(o->def[k].flag, a, fl)))
            k++;
        if (k == o->n)
            return lstm_error(LSTM_EINVAL, "unknown flag %.*s",
                              fl < 64 ? (int)fl : 40, a);
        const lstm_opt *f = &o->def[k];
        o->given[k] = 1;
        if (!(f->how & LSTM_OPT_KEEP) && !o->first_setting)
            o->first_setting = f->flag;
        if (f->type == 'b') {
            *FIELD(o, f, long) = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v)
            return lstm_error(LSTM_EINVAL, "%s needs a value", f->flag);
        int e = set_opt(o, f, v);
        if (e)
            return e;
    }
    o->ninputs = kept - first;
    return 0;
}

void lstm_opts_json(lstm_buf *b, const lstm_opts *o)
{
    int any = 0;
    for (size_t k = 0; k < o->n; k++) {
        const lstm_opt *f = &o->def[k];
        if (!f->key)
            continue;
        lstm_buf_printf(b, "%s\"%s\":", any++ ? "," : "", f->key);
        if (f->type == 'l' || f->type == 'b')
            lstm_buf_printf(b, "%ld", *FIELD(o, f, const long));
        else if (f->type == 'd' || f->type == 'z')
            lstm_buf_printf(b, "%.17g", *FIELD(o, f, const double));
        else
            lstm_buf_json_str(b, *FIELD(o, f, char *const),
                              strlen(*FIELD(o, f, char *const)));
    }
}

int lstm_opts_restore(lstm_opts *o, const lstm_json *j)
{
    if (j->type != LSTM_JSON_OBJ)
        return lstm_error(LSTM_EFORMAT, "the saved options are no JSON "
                          "object");
    for (size_t k = 0; k < o->n; k++) {
        const lstm_opt *f = &o->def[k];
        const lstm_json *v = f->key ? lstm_json_get(j, f->key) : NULL;
        if (!f->key || (!v && (f->how & LSTM_OPT_OPTIONAL)))
            continue;
        const int keep = (f->how & LSTM_OPT_KEEP) && o->given[k];
        long l;
        double x;
        int bad;
        if (f->type == 'l' || f->type == 'b')
            bad = lstm_json_long(j, f->key, (long)f->lo, (long)f->hi,
                                 keep ? &l : FIELD(o, f, long));
        else if (f->type == 'd' || f->type == 'z')
            bad = lstm_json_num(j, f->key, f->lo, f->hi,
                                keep ? &x : FIELD(o, f, double));
        else {
            bad = !v || v->type != LSTM_JSON_STR || !*v->str ||
                  (f->type == 'e' && !lstm_choice(f->choices, v->str));
            if (!bad && !keep)
                *FIELD(o, f, const char *) = v->str;
        }
        if (bad)
            return lstm_error(LSTM_EFORMAT, "the saved option \"%s\" is "
                              "missing or out of range", f->key);
    }
    return 0;
}
