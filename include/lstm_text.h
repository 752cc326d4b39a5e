/*
 * lstm_text.h - the text side of liblstm: a CSV reader, UTF-8 checks, labelled
 * datasets, the tokenizer and vocabulary, the train/val/test split, and the
 * encoded corpus that batches are gathered from.
 *
 * Errors follow lstm.h: a negative LSTM_E* code and, in lstm_errmsg(), one
 * line naming the file, line and field at fault.
 */
#ifndef LSTM_TEXT_H
#define LSTM_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "lstm.h"
#include "lstm_io.h"

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
/* labels[i] = the index of row i's category among classes[0..C) (a model's
 * classes, matched by name); LSTM_EINVAL naming name (the data's file) and
 * the line of the first category not among them. */
int lstm_dataset_labels_in(const lstm_dataset *ds, const char *name,
                           char *const *classes, size_t C, int32_t *labels);

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
/* The same, keeping only words seen at least min_count times. */
int lstm_vocab_build_min(lstm_vocab *v, const lstm_dataset *ds,
                         const size_t *rows, size_t nrows, size_t max_size,
                         size_t min_count);
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

/* ---- the encoded corpus and its batches ----------------------------------
 * Every text encoded once (lstm_encode), stored ragged: memory grows with
 * the tokens, not with n x max_len. Batches gather rows of it, padded with
 * [PAD] to the longest of them. */
typedef struct {
    int32_t *ids;             /* every text's tokens, one after another */
    size_t *off;              /* (n) where each text starts in ids */
    int32_t *len;             /* (n) tokens of each text, 1..max_len */
    size_t n, max_len;
} lstm_corpus;

/* Encodes text[0..n) (text_len[i] bytes each) with at most max_len tokens
 * a text. */
int lstm_corpus_encode(lstm_corpus *c, const lstm_vocab *v,
                       char *const *text, const size_t *text_len, size_t n,
                       size_t max_len);
void lstm_corpus_free(lstm_corpus *c);

typedef struct {
    int32_t *ids;             /* (B,T) zero-padded */
    int32_t *len, *y;         /* (B) true lengths, labels */
    size_t B, T;              /* of the last gather */
    size_t cap_B, cap_T;      /* what lstm_batch_init reserved */
} lstm_batch;

/* Room for up to B rows of up to T tokens. */
int lstm_batch_init(lstm_batch *b, size_t B, size_t T);
/* Rows rows[0..B) of c, padded to the longest of them; y[i] =
 * labels[rows[i]] unless labels is NULL. B <= cap_B. */
void lstm_batch_gather(lstm_batch *b, const lstm_corpus *c,
                       const size_t *rows, size_t B, const int32_t *labels);
void lstm_batch_free(lstm_batch *b);

/* ---- a classification text set ------------------------------------------
 * The data, its train/val/test split, the vocabulary of its training rows
 * and every text encoded: what training a text classifier starts from. */
typedef struct {
    lstm_dataset ds;
    lstm_split split;
    lstm_vocab vocab;         /* from the training rows; empty if not built */
    lstm_corpus tok;          /* every row, encoded with vocab */
} lstm_textset;

/* Loads the CSV at path; splits it as split_path says (a split.json) or,
 * when NULL, at random 80/10/10 by seed. With vocab_size > 0, builds the
 * vocabulary from the training rows (LSTM_EINVAL when there are none) of
 * the words seen at least min_count times (0 or 1: all), and with
 * max_len > 0 too, encodes every row with at most max_len tokens. */
int lstm_textset_load(lstm_textset *t, const char *path,
                      const char *split_path, uint64_t seed,
                      size_t vocab_size, size_t min_count, size_t max_len);
void lstm_textset_free(lstm_textset *t);
/* Appends a description of t, the data named name: rows, text lengths in
 * characters, rows per class; then (with a vocabulary) its size, the
 * number of training texts followed by split_note (how they were chosen),
 * and 15 tokens from its start, middle and end. */
void lstm_textset_report(lstm_buf *b, const lstm_textset *t,
                         const char *name, const char *split_note);

/* CRC-32C over every row's text and class name: a resumed run checks it
 * against the data it trained on. */
uint32_t lstm_dataset_crc(const lstm_dataset *ds);

#ifdef __cplusplus
}
#endif
#endif /* LSTM_TEXT_H */
