/*
 * lstm_data.h - the text side of liblstm: a CSV reader, the tokenizer and
 * vocabulary, labelled datasets and their split, safetensors checkpoints,
 * TensorBoard event files, JSON and classification metrics. Everything the
 * news classifier needs besides the network itself (lstm.h).
 *
 * Errors follow lstm.h: a negative LSTM_E* code and, in lstm_errmsg(), one
 * line naming the file, line and field at fault.
 */
#ifndef LSTM_DATA_H
#define LSTM_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "lstm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CSV (RFC 4180), plain or gzip-compressed --------------------------
 * Quoted fields, doubled quotes, newlines inside quotes, CRLF or LF, an
 * optional UTF-8 byte-order mark, fields of any length up to 256 MiB.
 * Blank lines are skipped. A NUL byte, an unterminated quote or text after
 * a closing quote is an error naming the line. */
typedef struct lstm_csv lstm_csv;

int lstm_csv_open(lstm_csv **c, const char *path);
/* Reads the next record: 1 with *n fields (NUL-terminated, valid until
 * the next call), 0 at the end, or an error. */
int lstm_csv_next(lstm_csv *c, char ***fields, size_t **lens, size_t *n);
/* The line on which the last record started (1-based). */
size_t lstm_csv_line(const lstm_csv *c);
void lstm_csv_close(lstm_csv *c);

/* Length of the valid UTF-8 prefix of s (== n when all of s is valid). */
size_t lstm_utf8_valid(const char *s, size_t n);
/* Number of code points in valid UTF-8 (Python's len()). */
size_t lstm_utf8_len(const char *s, size_t n);

/* ---- labelled texts ------------------------------------------------------ */

typedef struct {
    size_t n;                 /* rows */
    char **text;              /* UTF-8, NUL-terminated */
    size_t *text_len;         /* bytes */
    int32_t *label;           /* index into classes */
    size_t *line;             /* CSV line of each row, for messages */
    char **classes;           /* sorted by byte order, as np.unique */
    size_t n_classes;
} lstm_dataset;

/* Reads a CSV with a header naming at least `text` and `category` columns
 * (any order, others ignored). Every row must have the header's number of
 * fields and valid UTF-8 in both columns, and a non-empty category. */
int lstm_dataset_load(lstm_dataset *ds, const char *path);
void lstm_dataset_free(lstm_dataset *ds);

/* ---- tokenizer and vocabulary --------------------------------------------
 * The notebook's simple_tokenizer: lowercase (Á->á ... Ñ->ñ, Ü->ü), then
 * every run of characters outside a-z á é í ó ú ü ñ separates words. */

/* Calls fn(word, len, ctx) for each of the first max_words words (0: all);
 * returns how many it found. Words are lowercase UTF-8, not terminated. */
size_t lstm_tokenize(const char *text, size_t len, size_t max_words,
                     void (*fn)(const char *w, size_t n, void *ctx), void *ctx);

enum { LSTM_PAD = 0, LSTM_UNK = 1 };

typedef struct {
    char **tok;               /* id -> token; tok[0] "[PAD]", tok[1] "[UNK]" */
    size_t n;
    size_t *slot;             /* open-addressing hash: id + 1, 0 empty */
    size_t nslot;
} lstm_vocab;

/* The max_size - 2 most frequent words of the given rows, after [PAD] and
 * [UNK]; ties in count keep the order of first appearance (as Python's
 * Counter.most_common). */
int lstm_vocab_build(lstm_vocab *v, const lstm_dataset *ds,
                     const size_t *rows, size_t nrows, size_t max_size);
/* A vocabulary from an id-ordered token list (a checkpoint's). */
int lstm_vocab_from_list(lstm_vocab *v, char *const *tokens, size_t n);
int32_t lstm_vocab_id(const lstm_vocab *v, const char *w, size_t n);
void lstm_vocab_free(lstm_vocab *v);
/* ids[0..max_len) = the first max_len word ids, then [PAD]; returns the
 * true length (at least 1: a text without words is one [UNK]). */
size_t lstm_encode(const lstm_vocab *v, const char *text, size_t len,
                   int32_t *ids, size_t max_len);

/* ---- split ---------------------------------------------------------------
 * A seeded random split as torch.utils.data.random_split with fractions:
 * floor(n*f) rows each, the remainder dealt one by one from the first part. */
typedef struct {
    size_t *idx[3];           /* train, val, test row indices */
    size_t n[3];
} lstm_split;

int lstm_split_random(lstm_split *s, size_t n, const double frac[3],
                      uint64_t seed);
/* Writes / reads {"train": [...], "val": [...], "test": [...]}; read checks
 * every index is < n and used once at most. */
int lstm_split_save(const lstm_split *s, const char *path);
int lstm_split_load(lstm_split *s, const char *path, size_t n);
void lstm_split_free(lstm_split *s);

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
void lstm_buf_free(lstm_buf *b);

/* ---- files ---------------------------------------------------------------- */

/* Writes data to path atomically: a temporary file in the same folder,
 * fsync, rename. The old file stays whole if anything fails. */
int lstm_write_atomic(const char *path, const void *data, size_t n);
/* Reads a whole file (NUL-terminated); at most max bytes. */
int lstm_read_file(const char *path, char **data, size_t *n, size_t max);

/* ---- safetensors checkpoints --------------------------------------------
 * 8-byte little-endian header length, a JSON header mapping each tensor
 * name to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
 * plus "__metadata__" (string values), then the raw little-endian data. */

/* Writes every parameter of ps, and the metadata pairs keys[i] = vals[i]. */
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
 * weights themselves, or a block beside them such as an AdamW moment). */
void lstm_safetensors_tensors(const lstm_params *ps, const float *data,
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
int lstm_tblog_scalar(lstm_tblog *t, const char *tag, float value,
                      int64_t step);
void lstm_tblog_close(lstm_tblog *t);
/* CRC-32C (Castagnoli) and TFRecord's masking of it. */
uint32_t lstm_crc32c(const void *data, size_t n);
uint32_t lstm_crc32c_mask(uint32_t crc);

/* ---- metrics --------------------------------------------------------------- */

typedef struct {
    size_t C;
    size_t *confusion;        /* (C,C): row = true class, column = predicted */
    double *precision, *recall, *f1;
    size_t *support;
    double accuracy, macro_f1;
    size_t total;
} lstm_metrics;

int lstm_metrics_init(lstm_metrics *m, size_t C);
void lstm_metrics_add(lstm_metrics *m, int32_t truth, int32_t pred);
/* Computes precision, recall, F1 (0 where undefined) and accuracy. */
void lstm_metrics_finish(lstm_metrics *m);
void lstm_metrics_free(lstm_metrics *m);

#ifdef __cplusplus
}
#endif
#endif /* LSTM_DATA_H */
