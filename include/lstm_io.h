/*
 * lstm_io.h - files in and out of liblstm: JSON, a string builder, whole-file
 * reads and atomic writes, safetensors checkpoints, TensorBoard event files
 * and CRC-32C. Depends on lstm.h only.
 *
 * Errors follow lstm.h: a negative LSTM_E* code and, in lstm_errmsg(), one
 * line naming the file, line and field at fault.
 */
#ifndef LSTM_IO_H
#define LSTM_IO_H

#include <stddef.h>
#include <stdint.h>

#include "lstm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- JSON ----------------------------------------------------------------
 * A small DOM for headers, metadata and split files. */
enum { LSTM_JSON_NULL, LSTM_JSON_BOOL, LSTM_JSON_NUM, LSTM_JSON_STR,
       LSTM_JSON_ARR, LSTM_JSON_OBJ };

typedef struct lstm_json {
    int type;
    double num;               /* NUM, BOOL */
    char *str;                /* STR (NUL-terminated), OBJ keys */
    size_t len;               /* STR length */
    struct lstm_json *items;  /* ARR and OBJ children */
    char **keys;              /* OBJ keys */
    size_t n;
} lstm_json;

/* Parses s[0..n); on error the message says at which byte. */
int lstm_json_parse(lstm_json *j, const char *s, size_t n);
const lstm_json *lstm_json_get(const lstm_json *obj, const char *key);
void lstm_json_free(lstm_json *j);
/* The number obj[key] within [lo, hi] into *out: 0, or 1 when it is
 * missing, not a number or out of range. The _long form also needs an
 * integer, compared exactly (no double rounding past 2^53 lets 2^63 in). */
int lstm_json_num(const lstm_json *obj, const char *key, double lo,
                  double hi, double *out);
int lstm_json_long(const lstm_json *obj, const char *key, long lo, long hi,
                   long *out);

/* A growable string, for building JSON and messages. */
typedef struct { char *s; size_t len, cap; int err; } lstm_buf;
void lstm_buf_put(lstm_buf *b, const char *s, size_t n);
void lstm_buf_puts(lstm_buf *b, const char *s);
void lstm_buf_printf(lstm_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends s as a quoted JSON string. */
void lstm_buf_json_str(lstm_buf *b, const char *s, size_t n);
/* Appends s[0..n) as one CSV field (RFC 4180): quoted, its quotes doubled,
 * when it holds a comma, quote, CR or LF, or when always is set. */
void lstm_buf_csv(lstm_buf *b, const char *s, size_t n, int always);
/* Appends s (NULL: nothing), then spaces up to width characters (UTF-8
 * code points). */
void lstm_buf_pad(lstm_buf *b, const char *s, size_t width);
/* Appends s[0..n) on one line: at most nchars characters, newlines and tabs
 * as spaces, never half a UTF-8 character, "..." when cut. */
void lstm_buf_excerpt(lstm_buf *b, const char *s, size_t n, size_t nchars);
void lstm_buf_free(lstm_buf *b);

/* ---- command-line options ------------------------------------------------
 * A table of flags over the fields of the caller's struct: parsed from
 * argv with one-line messages naming the flag, saved as JSON members and
 * restored from a JSON object (a run's options in its training state). */
enum { LSTM_OPT_KEEP = 1,      /* restore keeps a given value (a flag that
                                  may change when a run resumes) */
       LSTM_OPT_OPTIONAL = 2 };/* may be absent from saved options (the
                                  field keeps its value) */
typedef struct {
    const char *flag;         /* "--epochs" */
    const char *key;          /* its name in saved options; NULL: not saved */
    char type;                /* 's' string, 'e' one of choices, 'l' long,
                                 'd' double, 'z' bytes (double; K, M, G, T
                                 suffixes), 'b' switch (long, set to 1) */
    size_t off;               /* offsetof(struct, field) */
    double lo, hi;            /* the range of l, d, z and saved b */
    const char *choices;      /* e: "a|b|c"; l: what the message says of a
                                 value below lo (NULL: the range) */
    int how;                  /* LSTM_OPT_* */
} lstm_opt;

typedef struct {
    const lstm_opt *def;      /* the table: n flags, at most 64 */
    size_t n;
    void *obj;                /* the struct the offsets point into */
    unsigned char given[64];  /* by index in def */
    const char *first_setting;/* the first flag given without KEEP */
    int ninputs;              /* arguments not starting with "--" */
} lstm_opts;

/* Parses argv[first..argc): "--flag value", "--flag=value" and switches
 * into o->obj; string fields point into argv. The other arguments, in
 * order, are moved to argv[first..first + o->ninputs). Returns 0, 1 when
 * "--help" is met (parsing stops there), or LSTM_EINVAL naming the flag
 * and the values it takes. */
int lstm_opts_parse(lstm_opts *o, int argc, char **argv, int first);
/* Whether flag was on the command line. */
int lstm_opts_given(const lstm_opts *o, const char *flag);
/* Appends the flags with a key as JSON members ("key":value, ...). */
void lstm_opts_json(lstm_buf *b, const lstm_opts *o);
/* Sets the fields from the JSON object j, except given KEEP flags (and
 * absent OPTIONAL ones); string fields point into j, which must outlive
 * them. LSTM_EFORMAT names the first key missing or out of range. */
int lstm_opts_restore(lstm_opts *o, const lstm_json *j);
/* Whether v is one of choices "a|b|c". */
int lstm_choice(const char *choices, const char *v);

/* ---- files ---------------------------------------------------------------- */

/* Writes data to path atomically: a temporary file in the same folder,
 * fsync, rename. The old file stays whole if anything fails. */
int lstm_write_atomic(const char *path, const void *data, size_t n);
/* Reads a whole file into *data (NUL-terminated, *n bytes before the NUL),
 * at most max bytes; the caller frees *data with lstm_free. */
int lstm_read_file(const char *path, char **data, size_t *n, size_t max);
/* Creates the folder path and any missing parents (mkdir -p). */
int lstm_mkdirs(const char *path);
/* Creates the folder dir (lstm_mkdirs) and takes an exclusive lock on
 * dir/lockname: returns its descriptor (>= 0; the lock lasts until it is
 * closed or the process ends) or an error; a second writer is refused
 * with a message saying so. Then removes the temporaries that
 * lstm_write_atomic leaves in dir when killed mid-write ("NAME.tmp." and
 * six characters, for each NAME of names[0..n)). */
int lstm_dir_lock(const char *dir, const char *lockname,
                  const char *const *names, size_t n);

/* ---- safetensors checkpoints --------------------------------------------
 * 8-byte little-endian header length, a JSON header mapping each tensor
 * name to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
 * plus "__metadata__" (string values), then the raw little-endian data. */

/* Writes every parameter of ps, and the metadata pairs keys[i] = vals[i].
 * Tensor names must be unique (LSTM_EINVAL otherwise). */
int lstm_safetensors_save(const char *path, const lstm_params *ps,
                          const char *const *keys, const char *const *vals,
                          size_t nmeta);

/* Any list of float32 tensors (the training state: weights, optimizer
 * moments, best weights), written in one atomic piece. */
typedef struct {
    const char *name;
    const float *data;
    size_t numel;
    size_t shape[LSTM_MAXDIM];
    int ndim;
} lstm_st_tensor;
int lstm_safetensors_write(const char *path, const lstm_st_tensor *t,
                           size_t nt, const char *const *keys,
                           const char *const *vals, size_t nmeta);
/* Fills t[0..ps->np) with the parameters' names (each prefixed, written
 * into names[i*name_cap]) and shapes, over data laid out as ps->w (the
 * weights themselves, or a block beside them such as an AdamW moment).
 * LSTM_EINVAL when a prefixed name does not fit in name_cap bytes. */
int lstm_safetensors_tensors(const lstm_params *ps, const float *data,
                              const char *prefix, lstm_st_tensor *t,
                              char *names, size_t name_cap);

typedef struct {
    char *raw;                /* the whole file */
    size_t size;
    lstm_json header;
    const char *data;         /* start of the data section */
    size_t data_size;
} lstm_safetensors;

/* Reads and validates a file: header JSON, F32 tensors whose offsets lie
 * in the data and match their shapes. */
int lstm_safetensors_open(lstm_safetensors *st, const char *path);
/* A metadata string, or NULL. */
const char *lstm_safetensors_meta(const lstm_safetensors *st, const char *key);
/* Copies the tensor name, which must have exactly this shape, into dst. */
int lstm_safetensors_get(const lstm_safetensors *st, const char *name,
                         const size_t *shape, int ndim, float *dst);
/* Copies every parameter of ps from the file; names and shapes must match
 * exactly, and the file must hold no other tensor. */
int lstm_safetensors_load(const lstm_safetensors *st, lstm_params *ps);
/* Copies every parameter of ps from the tensor called prefix + its name
 * (prefix may be NULL or ""), over data laid out as ps->w (ps->w itself, or
 * a block beside it such as an AdamW moment). Tensors of the file that are
 * not asked for are ignored. */
int lstm_safetensors_load_into(const lstm_safetensors *st,
                               const lstm_params *ps, const char *prefix,
                               float *data);
void lstm_safetensors_close(lstm_safetensors *st);


/* ---- TensorBoard event files ---------------------------------------------
 * TFRecord framing (length, masked CRC32C of it, an Event proto, masked
 * CRC32C of that) holding scalar summaries: what `tensorboard --logdir`
 * reads. */
typedef struct {
    void *fp;
    char path[1024];
} lstm_tblog;

/* Creates dir/events.out.tfevents.<time>.<host> with the file_version
 * record. */
int lstm_tblog_open(lstm_tblog *t, const char *dir);
/* dir = root/version_N for the first N not taken (PyTorch Lightning's
 * layout), created with its parents. */
int lstm_tblog_next_dir(char *dir, size_t cap, const char *root);
int lstm_tblog_scalar(lstm_tblog *t, const char *tag, float value,
                      int64_t step);
void lstm_tblog_close(lstm_tblog *t);
/* CRC-32C (Castagnoli) and TFRecord's masking of it. */
uint32_t lstm_crc32c(const void *data, size_t n);
uint32_t lstm_crc32c_mask(uint32_t crc);

#ifdef __cplusplus
}
#endif
#endif /* LSTM_IO_H */
