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

/* ---- files ---------------------------------------------------------------- */

/* Writes data to path atomically: a temporary file in the same folder,
 * fsync, rename. The old file stays whole if anything fails. */
int lstm_write_atomic(const char *path, const void *data, size_t n);
/* Reads a whole file into *data (NUL-terminated, *n bytes before the NUL),
 * at most max bytes; the caller frees *data with lstm_free. */
int lstm_read_file(const char *path, char **data, size_t *n, size_t max);
/* Creates the folder path and any missing parents (mkdir -p). */
int lstm_mkdirs(const char *path);

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
