/*
 * check_data.c - the CSV reader on well-formed and hostile input, the
 * tokenizer, the vocabulary, the split, JSON, safetensors, TensorBoard
 * framing and metrics.
 */
#define _GNU_SOURCE  /* memmem, mkdtemp */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <math.h>
#include <zlib.h>

#include "lstm_data.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/lstm_test_XXXXXX";

static void setup(void) { ck_assert(mkdtemp(tmpdir) != NULL); }

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert(system(cmd) == 0);
    memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

/* Writes bytes to tmpdir/name; returns the path (static buffer). */
static const char *put_file(const char *name, const void *data, size_t n)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "wb");
    ck_assert(fp && fwrite(data, 1, n, fp) == n && fclose(fp) == 0);
    return path;
}

static const char *put_gz(const char *name, const char *data, size_t n)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    gzFile gz = gzopen(path, "wb");
    ck_assert(gz && gzwrite(gz, data, (unsigned)n) == (int)n);
    gzclose(gz);
    return path;
}

/* ---- CSV ---- */

START_TEST(csv_rfc4180)
{
    const char data[] = "\xef\xbb\xbf" "a,b,c\r\n"
                        "1,\"two, \"\"quoted\"\"\",3\r\n"
                        "\r\n"
                        "x,\"multi\nline\r\nfield\",\n"
                        "last,,\"\"";
    const char *path = put_file("r.csv", data, sizeof data - 1);
    lstm_csv *c;
    char **f;
    size_t *l, n;
    ck_assert_int_eq(lstm_csv_open(&c, path), 0);
    ck_assert_int_eq(lstm_csv_next(c, &f, &l, &n), 1);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(f[0], "a");  /* the BOM is gone */
    ck_assert_int_eq(lstm_csv_next(c, &f, &l, &n), 1);
    ck_assert_uint_eq(lstm_csv_line(c), 2);
    ck_assert_str_eq(f[1], "two, \"quoted\"");
    ck_assert_int_eq(lstm_csv_next(c, &f, &l, &n), 1);  /* blank line skipped */
    ck_assert_uint_eq(lstm_csv_line(c), 4);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(f[1], "multi\nline\r\nfield");
    ck_assert_str_eq(f[2], "");
    ck_assert_int_eq(lstm_csv_next(c, &f, &l, &n), 1);
    ck_assert_uint_eq(lstm_csv_line(c), 7);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(f[0], "last");
    ck_assert_uint_eq(l[2], 0);
    ck_assert_int_eq(lstm_csv_next(c, &f, &l, &n), 0);
    lstm_csv_close(c);
}
END_TEST

START_TEST(csv_gzip_and_long_field)
{
    const size_t big = 300000;
    char *data = malloc(big + 64);
    int k = sprintf(data, "text,category\n\"");
    for (size_t i = 0; i < big; i++)
        data[k + i] = (char)('a' + i % 26);
    k += (int)big;
    k += sprintf(data + k, "\",sport\n");
    const char *path = put_gz("big.csv.gz", data, (size_t)k);
    lstm_dataset ds;
    ck_assert_int_eq(lstm_dataset_load(&ds, path), 0);
    ck_assert_uint_eq(ds.n, 1);
    ck_assert_uint_eq(ds.text_len[0], big);
    ck_assert_str_eq(ds.classes[0], "sport");
    lstm_dataset_free(&ds);
    free(data);
}
END_TEST

/* Loads data as a dataset and checks the error message holds want. */
static void expect_error(const char *name, const char *data, size_t n,
                         int gz, const char *want)
{
    const char *path = gz ? put_gz(name, data, n) : put_file(name, data, n);
    lstm_dataset ds;
    long live = lstm_debug_live_allocs();
    int err = lstm_dataset_load(&ds, path);
    ck_assert_msg(err == LSTM_EFORMAT || err == LSTM_EIO,
                  "%s: loaded (%d)", name, err);
    ck_assert_msg(strstr(lstm_errmsg(), want) != NULL,
                  "%s: message '%s' lacks '%s'", name, lstm_errmsg(), want);
    ck_assert_msg(strstr(lstm_errmsg(), name) != NULL,
                  "%s: message '%s' does not name the file", name,
                  lstm_errmsg());
    ck_assert(strchr(lstm_errmsg(), '\n') == NULL);
    ck_assert_int_eq(lstm_debug_live_allocs(), live);
}

#define BAD(name, lit, gz, want) expect_error(name, lit, sizeof lit - 1, gz, want)

START_TEST(csv_hostile)
{
    BAD("unterminated.csv", "text,category\n\"abc,sport\nx,y\n", 0,
        "line 2: unterminated quoted field");
    BAD("nul.csv", "text,category\nab\0c,sport\n", 0, "line 2: NUL byte");
    BAD("afterquote.csv", "text,category\n\"abc\"x,sport\n", 0,
        "line 2: unexpected 'x' after a closing quote");
    BAD("columns.csv", "text,category,x\na,b\n", 0,
        "line 2: 2 fields, the header has 3");
    BAD("notext.csv", "language,category\nes,sport\n", 0,
        "no 'text' column in the header (found: language, category)");
    BAD("nocat.csv", "text\nhola\n", 0, "no 'category' column");
    BAD("empty.csv", "", 0, "empty file");
    BAD("header_only.csv", "text,category\n", 0, "no data rows");
    BAD("utf8.csv", "text,category\nca\xc3\x28,sport\n", 0,
        "line 2: field 'text' is not valid UTF-8 (byte 3)");
    BAD("utf8cat.csv", "text,category\nhola,\xff\n", 0,
        "field 'category' is not valid UTF-8");
    BAD("nocategory.csv", "text,category\nhola,\n", 0, "line 2: empty 'category'");
    lstm_dataset ds;
    char path[256];
    snprintf(path, sizeof path, "%s/does-not-exist.csv", tmpdir);
    ck_assert_int_eq(lstm_dataset_load(&ds, path), LSTM_EIO);
    ck_assert(strstr(lstm_errmsg(), "does-not-exist.csv: cannot open") != NULL);
}
END_TEST

START_TEST(csv_bad_gzip)
{
    /* a gzip header followed by garbage, and a truncated stream */
    const char garbage[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage!!";
    BAD("garbage.csv.gz", garbage, 0, "cannot read");
    const char *full = put_gz("full.csv.gz", "text,category\nhola mundo,sport\n"
                              "adios,politics\n", 45);
    FILE *fp = fopen(full, "rb");
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    expect_error("truncated.csv.gz", buf, n - 12, 0, "cannot read");
}
END_TEST

START_TEST(utf8_checks)
{
    ck_assert_uint_eq(lstm_utf8_valid("año", 4), 4);
    ck_assert_uint_eq(lstm_utf8_valid("a\xc3", 2), 1);        /* truncated */
    ck_assert_uint_eq(lstm_utf8_valid("\xc0\xaf", 2), 0);     /* overlong */
    ck_assert_uint_eq(lstm_utf8_valid("\xed\xa0\x80", 3), 0); /* surrogate */
    ck_assert_uint_eq(lstm_utf8_valid("\xf4\x90\x80\x80", 4), 0); /* > 10FFFF */
    ck_assert_uint_eq(lstm_utf8_len("ñandú", 7), 5);
}
END_TEST

/* ---- tokenizer and vocabulary ---- */

typedef struct { char words[32][64]; size_t n; } words;

static void collect(const char *w, size_t n, void *ctx)
{
    words *ws = ctx;
    ck_assert(ws->n < 32 && n < 64);
    memcpy(ws->words[ws->n], w, n);
    ws->words[ws->n][n] = '\0';
    ws->n++;
}

static void expect_tokens(const char *text, const char *want)
{
    words ws = {0};
    lstm_tokenize(text, strlen(text), 0, collect, &ws);
    char got[1024] = "";
    for (size_t i = 0; i < ws.n; i++) {
        strcat(got, i ? "|" : "");
        strcat(got, ws.words[i]);
    }
    ck_assert_msg(strcmp(got, want) == 0, "tokenize(\"%s\") = \"%s\", want "
                  "\"%s\"", text, got, want);
}

START_TEST(tokenizer_cases)
{
    /* each expectation is what the notebook's simple_tokenizer returns */
    expect_tokens("Hola Mundo", "hola|mundo");
    expect_tokens("ÁRBOL Éxito ÍNDICE Óscar ÚLTIMO", "árbol|éxito|índice|óscar|último");
    expect_tokens("PINGÜINO Ñandú AÑO", "pingüino|ñandú|año");
    expect_tokens("2024: ¡el 50% subió!", "el|subió");
    expect_tokens("e-mail,correo.electrónico", "e|mail|correo|electrónico");
    expect_tokens("çà ê ß naïve", "na|ve");  /* outside a-z áéíóúüñ */
    expect_tokens("\xe2\x84\xaa" "ELVIN", "kelvin");  /* KELVIN SIGN -> k */
    expect_tokens("\xc4\xb0stanbul", "i|stanbul");   /* İ -> i + U+0307 */
    expect_tokens("", "");
    expect_tokens("   \n\t ", "");
    /* invalid UTF-8 never crashes; bad bytes separate words */
    expect_tokens("ab\xff\xfe" "cd\xc3", "ab|cd");
    expect_tokens("\xc3", "");
    words ws = {0};
    ck_assert_uint_eq(lstm_tokenize("uno dos tres cuatro", 19, 2, collect, &ws),
                      2);
    ck_assert_uint_eq(ws.n, 2);
}
END_TEST

static void make_ds(lstm_dataset *ds, const char **texts, size_t n)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->text = calloc(n, sizeof *ds->text);
    ds->text_len = calloc(n, sizeof *ds->text_len);
    for (size_t i = 0; i < n; i++) {
        ds->text[i] = (char *)texts[i];
        ds->text_len[i] = strlen(texts[i]);
    }
}

START_TEST(vocab_ranking_and_ties)
{
    const char *texts[] = {"b a c a", "d c c z", "a e", "never used here"};
    lstm_dataset ds;
    make_ds(&ds, texts, 4);
    size_t rows[3] = {0, 1, 2};  /* row 3 is not training data */
    lstm_vocab v;
    ck_assert_int_eq(lstm_vocab_build(&v, &ds, rows, 3, 100), 0);
    /* counts: a 3, c 3, b 1, d 1, z 1, e 1; ties by first appearance */
    const char *want[] = {"[PAD]", "[UNK]", "a", "c", "b", "d", "z", "e"};
    ck_assert_uint_eq(v.n, 8);
    for (size_t i = 0; i < 8; i++)
        ck_assert_str_eq(v.tok[i], want[i]);
    ck_assert_int_eq(lstm_vocab_id(&v, "c", 1), 3);
    ck_assert_int_eq(lstm_vocab_id(&v, "never", 5), LSTM_UNK);
    lstm_vocab_free(&v);
    ck_assert_int_eq(lstm_vocab_build(&v, &ds, rows, 3, 4), 0);  /* cut */
    ck_assert_uint_eq(v.n, 4);
    ck_assert_str_eq(v.tok[3], "c");
    int32_t ids[6];
    ck_assert_uint_eq(lstm_encode(&v, "C a x B", 7, ids, 6), 4);
    int32_t want_ids[6] = {3, 2, LSTM_UNK, LSTM_UNK, LSTM_PAD, LSTM_PAD};
    ck_assert(memcmp(ids, want_ids, sizeof ids) == 0);
    ck_assert_uint_eq(lstm_encode(&v, "a a a a a a a a", 15, ids, 3), 3);
    ck_assert_uint_eq(lstm_encode(&v, "123 !!", 6, ids, 3), 1);  /* no words */
    ck_assert_int_eq(ids[0], LSTM_UNK);
    ck_assert_int_eq(ids[1], LSTM_PAD);
    lstm_vocab_free(&v);
    ck_assert_int_eq(lstm_vocab_build(&v, &ds, rows, 3, 1), LSTM_EINVAL);
    char *list[3] = {"[PAD]", "[UNK]", "[PAD]"};
    ck_assert_int_eq(lstm_vocab_from_list(&v, list, 3), LSTM_EFORMAT);
    free(ds.text);
    free(ds.text_len);
}
END_TEST

/* ---- split ---- */

START_TEST(split_deterministic)
{
    lstm_split a, b, c;
    const double fr[3] = {0.8, 0.1, 0.1};
    ck_assert_int_eq(lstm_split_random(&a, 948, fr, 42), 0);
    ck_assert_int_eq(lstm_split_random(&b, 948, fr, 42), 0);
    ck_assert_int_eq(lstm_split_random(&c, 948, fr, 43), 0);
    /* torch.utils.data.random_split's sizes for 948 rows */
    ck_assert_uint_eq(a.n[0], 759);
    ck_assert_uint_eq(a.n[1], 95);
    ck_assert_uint_eq(a.n[2], 94);
    int differ = 0;
    unsigned char seen[948] = {0};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < a.n[k]; i++) {
            ck_assert_uint_eq(a.idx[k][i], b.idx[k][i]);
            differ |= a.idx[k][i] != c.idx[k][i];
            seen[a.idx[k][i]]++;
        }
    ck_assert(differ);
    for (size_t i = 0; i < 948; i++)
        ck_assert_uint_eq(seen[i], 1);
    char path[256];
    snprintf(path, sizeof path, "%s/split.json", tmpdir);
    ck_assert_int_eq(lstm_split_save(&a, path), 0);
    lstm_split d;
    ck_assert_int_eq(lstm_split_load(&d, path, 948), 0);
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(d.n[k], a.n[k]);
        ck_assert(memcmp(d.idx[k], a.idx[k], a.n[k] * sizeof(size_t)) == 0);
    }
    lstm_split_free(&d);
    ck_assert_int_eq(lstm_split_load(&d, path, 900), LSTM_EFORMAT);  /* range */
    ck_assert(strstr(lstm_errmsg(), "not a row index below 900") != NULL);
    lstm_split_free(&a);
    lstm_split_free(&b);
    lstm_split_free(&c);
    lstm_split_free(&d);
    const char *dj = "{\"train\":[1,2],\"val\":[2],\"test\":[]}";
    const char *dup = put_file("dup.json", dj, strlen(dj));
    ck_assert_int_eq(lstm_split_load(&d, dup, 10), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "row 2 appears twice") != NULL);
    const char *bad = put_file("bad.json", "{\"train\":[1,", 12);
    ck_assert_int_eq(lstm_split_load(&d, bad, 10), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "bad.json: invalid JSON") != NULL);
}
END_TEST

/* ---- JSON ---- */

START_TEST(json_cases)
{
    lstm_json j;
    const char *ok = " {\"a\": [1, -2.5e3, true, null, \"x\\u00f1\\ud83d\\ude00\\n\"],"
                     " \"b\": {}} ";
    ck_assert_int_eq(lstm_json_parse(&j, ok, strlen(ok)), 0);
    const lstm_json *a = lstm_json_get(&j, "a");
    ck_assert(a && a->type == LSTM_JSON_ARR && a->n == 5);
    ck_assert(a->items[1].num == -2500.0);
    ck_assert_str_eq(a->items[4].str, "x\xc3\xb1\xf0\x9f\x98\x80\n");
    ck_assert(lstm_json_get(&j, "b")->type == LSTM_JSON_OBJ);
    ck_assert(lstm_json_get(&j, "c") == NULL);
    lstm_json_free(&j);
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "01", "1.",
                         "tru", "\"\\ud800\"", "\"a\x01\"", "[1] x", "{1:2}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(lstm_json_parse(&j, bad[i], strlen(bad[i])) ==
                          LSTM_EFORMAT, "accepted '%s'", bad[i]);
    char deep[200];
    memset(deep, '[', sizeof deep);
    ck_assert_int_eq(lstm_json_parse(&j, deep, sizeof deep), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "nesting") != NULL);
    lstm_buf b = {0};
    lstm_buf_json_str(&b, "q\"\\\n", 4);
    ck_assert_str_eq(b.s, "\"q\\\"\\\\\\u000a\"");
    lstm_buf_free(&b);
}
END_TEST

/* ---- safetensors ---- */

static void two_params(lstm_params *ps, size_t rows)
{
    size_t s1[2] = {rows, 3}, s2[1] = {5}, off;
    lstm_params_init(ps);
    ck_assert_int_eq(lstm_params_add(ps, "layer.weight", 2, s1, &off), 0);
    ck_assert_int_eq(lstm_params_add(ps, "layer.bias", 1, s2, &off), 0);
    ck_assert_int_eq(lstm_params_alloc(ps), 0);
}

START_TEST(safetensors_round_trip)
{
    lstm_params a, b;
    two_params(&a, 2);
    two_params(&b, 2);
    fill_randn(a.w, a.n, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", tmpdir);
    const char *keys[2] = {"vocab", "note"};
    const char *vals[2] = {"[\"[PAD]\",\"ñ\"]", "quote \" and \\"};
    ck_assert_int_eq(lstm_safetensors_save(path, &a, keys, vals, 2), 0);
    lstm_safetensors st;
    ck_assert_int_eq(lstm_safetensors_open(&st, path), 0);
    ck_assert_str_eq(lstm_safetensors_meta(&st, "vocab"), vals[0]);
    ck_assert_str_eq(lstm_safetensors_meta(&st, "note"), vals[1]);
    ck_assert(lstm_safetensors_meta(&st, "nope") == NULL);
    ck_assert_uint_eq((8 + (st.data - st.raw - 8)) % 8, 0);  /* aligned */
    ck_assert_int_eq(lstm_safetensors_load(&st, &b), 0);
    for (size_t i = 0; i < a.np; i++)
        ck_assert(memcmp(a.w + a.p[i].off, b.w + b.p[i].off,
                         a.p[i].numel * 4) == 0);
    lstm_safetensors_close(&st);
    /* a model with other shapes is refused with both shapes named */
    lstm_params c;
    two_params(&c, 4);
    ck_assert_int_eq(lstm_safetensors_open(&st, path), 0);
    ck_assert_int_eq(lstm_safetensors_load(&st, &c), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "layer.weight has shape (2,3), the model "
                                    "needs (4,3)") != NULL);
    lstm_safetensors_close(&st);
    lstm_params_free(&a);
    lstm_params_free(&b);
    lstm_params_free(&c);
}
END_TEST

static void st_bad(const char *name, const char *header, size_t data_bytes,
                   const char *want)
{
    char file[1024];
    uint64_t hl = strlen(header);
    memcpy(file, &hl, 8);  /* the test machine is little-endian */
    memcpy(file + 8, header, hl);
    memset(file + 8 + hl, 0, data_bytes);
    const char *path = put_file(name, file, 8 + hl + data_bytes);
    lstm_safetensors st;
    long live = lstm_debug_live_allocs();
    ck_assert_int_eq(lstm_safetensors_open(&st, path), LSTM_EFORMAT);
    ck_assert_msg(strstr(lstm_errmsg(), want) && strstr(lstm_errmsg(), name),
                  "%s: '%s' lacks '%s'", name, lstm_errmsg(), want);
    ck_assert_int_eq(lstm_debug_live_allocs(), live);
}

START_TEST(safetensors_malformed)
{
    st_bad("json.st", "{\"a\":", 0, "header: invalid JSON");
    st_bad("dtype.st", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],"
           "\"data_offsets\":[0,4]}}", 4, "dtype BF16");
    st_bad("range.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
           "\"data_offsets\":[0,8]}}", 4, "data_offsets outside the file");
    st_bad("size.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
           "\"data_offsets\":[0,8]}}", 8, "8 data bytes for a shape of 3");
    st_bad("shape.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],"
           "\"data_offsets\":[0,0]}}", 0, "bad shape");
    st_bad("meta.st", "{\"__metadata__\":{\"k\":1}}", 0, "non-string metadata");
    st_bad("partial.st", "{\"a\":{\"dtype\":\"F32\"}}", 0, "incomplete entry");
    const char *tiny = put_file("tiny.st", "\x05\0\0", 3);
    lstm_safetensors st;
    ck_assert_int_eq(lstm_safetensors_open(&st, tiny), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "shorter than 8 bytes") != NULL);
    const char *trunc = put_file("trunc.st", "\xff\0\0\0\0\0\0\0{}", 10);
    ck_assert_int_eq(lstm_safetensors_open(&st, trunc), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "truncated") != NULL);
    /* well-formed, but the model wants other tensors */
    lstm_params ps;
    two_params(&ps, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/ok.st", tmpdir);
    ck_assert_int_eq(lstm_safetensors_save(path, &ps, NULL, NULL, 0), 0);
    lstm_params other;
    size_t s1[2] = {2, 3}, off;
    lstm_params_init(&other);
    ck_assert_int_eq(lstm_params_add(&other, "layer.weight", 2, s1, &off), 0);
    ck_assert_int_eq(lstm_params_add(&other, "layer.scale", 2, s1, &off), 0);
    ck_assert_int_eq(lstm_params_alloc(&other), 0);
    ck_assert_int_eq(lstm_safetensors_open(&st, path), 0);
    ck_assert_int_eq(lstm_safetensors_load(&st, &other), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "tensor layer.scale is missing") != NULL);
    lstm_safetensors_close(&st);
    lstm_params_free(&other);
    lstm_params_init(&other);
    ck_assert_int_eq(lstm_params_add(&other, "layer.weight", 2, s1, &off), 0);
    ck_assert_int_eq(lstm_params_alloc(&other), 0);
    ck_assert_int_eq(lstm_safetensors_open(&st, path), 0);
    ck_assert_int_eq(lstm_safetensors_load(&st, &other), LSTM_EFORMAT);
    ck_assert(strstr(lstm_errmsg(), "unexpected tensor layer.bias") != NULL);
    lstm_safetensors_close(&st);
    lstm_params_free(&other);
    lstm_params_free(&ps);
}
END_TEST

/* ---- TensorBoard ---- */

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

START_TEST(tblog_framing)
{
    /* the CRC-32C check value, and a masked CRC from TensorFlow's tests */
    ck_assert_uint_eq(lstm_crc32c("123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(lstm_crc32c("", 0), 0);
    ck_assert_uint_eq(lstm_crc32c_mask(0), 0xa282ead8u);
    lstm_tblog t;
    ck_assert_int_eq(lstm_tblog_open(&t, tmpdir), 0);
    ck_assert_int_eq(lstm_tblog_scalar(&t, "train-loss", 0.5f, 3), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s", t.path);
    lstm_tblog_close(&t);
    ck_assert(strstr(path, "/events.out.tfevents.") != NULL);
    FILE *fp = fopen(path, "rb");
    unsigned char buf[512];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    size_t at = 0, records = 0;
    int found = 0;
    while (at < n) {
        ck_assert(n - at >= 16);
        uint64_t len = rd32(buf + at) | (uint64_t)rd32(buf + at + 4) << 32;
        ck_assert_uint_eq(rd32(buf + at + 8),
                          lstm_crc32c_mask(lstm_crc32c(buf + at, 8)));
        ck_assert(at + 16 + len <= n);
        const unsigned char *d = buf + at + 12;
        ck_assert_uint_eq(rd32(d + len),
                          lstm_crc32c_mask(lstm_crc32c(d, (size_t)len)));
        ck_assert_uint_eq(d[0], 0x09);  /* wall_time */
        if (records == 0)
            ck_assert(memmem(d, (size_t)len, "brain.Event:2", 13) != NULL);
        else {
            /* step 3, then summary { value { tag, simple_value 0.5 } } */
            ck_assert_uint_eq(d[9], 0x10);
            ck_assert_uint_eq(d[10], 3);
            ck_assert(memmem(d, (size_t)len, "train-loss", 10) != NULL);
            float half = 0.5f;
            ck_assert(memmem(d, (size_t)len, &half, 4) != NULL);
            found = 1;
        }
        at += 16 + (size_t)len;
        records++;
    }
    ck_assert_uint_eq(records, 2);
    ck_assert(found);
}
END_TEST

/* ---- metrics ---- */

START_TEST(metrics_known)
{
    lstm_metrics m;
    ck_assert_int_eq(lstm_metrics_init(&m, 4), 0);
    int32_t truth[6] = {0, 0, 1, 1, 1, 2}, pred[6] = {0, 1, 1, 1, 0, 1};
    for (int i = 0; i < 6; i++)
        lstm_metrics_add(&m, truth[i], pred[i]);
    lstm_metrics_finish(&m);
    ck_assert(fabs(m.accuracy - 0.5) < 1e-12);
    ck_assert(fabs(m.precision[1] - 0.5) < 1e-12);  /* 2 of 4 predicted */
    ck_assert(fabs(m.recall[1] - 2.0 / 3.0) < 1e-12);  /* 2 of 3 true */
    ck_assert(m.f1[2] == 0.0 && m.support[2] == 1 && m.support[3] == 0);
    /* class 3 never occurs: the macro average is over classes 0-2 */
    ck_assert(fabs(m.macro_f1 - (0.5 + 4.0 / 7.0 + 0.0) / 3.0) < 1e-12);
    ck_assert_uint_eq(m.confusion[1 * 4 + 0], 1);
    lstm_metrics_free(&m);
}
END_TEST

/* metrics_of equals init/add/finish over rows; the report names every
 * class, pads multibyte names by characters, and holds the matrix. */
START_TEST(metrics_of_and_report)
{
    int32_t labels[5] = {0, 1, 1, 0, 1}, pred[3] = {1, 1, 0};
    size_t rows[3] = {4, 2, 0};
    lstm_metrics m;
    ck_assert_int_eq(lstm_metrics_of(&m, 2, rows, 3, labels, pred), 0);
    ck_assert_uint_eq(m.total, 3);
    /* rows 4 and 2: class 1 predicted 1; row 0: class 0 predicted 0 */
    ck_assert(m.confusion[0] == 1 && m.confusion[1] == 0 &&
              m.confusion[2] == 0 && m.confusion[3] == 2);
    char *classes[2] = {"política", "x"};
    lstm_buf b = {0};
    lstm_metrics_report(&b, &m, classes);
    ck_assert(!b.err && strstr(b.s, "precision  recall      f1  support"));
    /* "política" is 8 characters, 9 bytes: padded to the width 8 */
    ck_assert_msg(strstr(b.s, "\npolítica  ") != NULL, "%s", b.s);
    ck_assert(strstr(b.s, "confusion matrix") && strstr(b.s, "accuracy"));
    lstm_buf_free(&b);
    lstm_metrics_free(&m);
}
END_TEST

/* Excerpts stop at whole characters, fold newlines, and mark a cut only
 * when there was one; padding counts characters. */
START_TEST(buf_excerpt_and_pad)
{
    lstm_buf b = {0};
    lstm_buf_excerpt(&b, "ab\ncd", 5, 5);
    ck_assert_str_eq(b.s, "ab cd");
    b.len = 0;
    lstm_buf_excerpt(&b, "ab\ncd", 5, 4);
    ck_assert_str_eq(b.s, "ab c...");
    b.len = 0;
    lstm_buf_excerpt(&b, "añoñ", 6, 2);  /* the 2nd character is 2 bytes */
    ck_assert_str_eq(b.s, "añ...");
    b.len = 0;
    lstm_buf_excerpt(&b, "", 0, 3);
    ck_assert_str_eq(b.s, "");
    b.len = 0;
    lstm_buf_pad(&b, "ñ", 3);
    lstm_buf_puts(&b, "|");
    ck_assert_str_eq(b.s, "ñ  |");
    lstm_buf_free(&b);
}
END_TEST

/* The text set: the split as the split functions make it, the vocabulary of
 * the training rows only, every row encoded; labels mapped to another
 * class list by name, with the line of a class it lacks. */
START_TEST(textset_and_labels)
{
    const char csv[] = "text,category\n"
                       "uno dos,a\ntres,b\nuno,a\ncuatro cinco,b\nseis,a\n";
    const char *path = put_file("ts.csv", csv, sizeof csv - 1);
    lstm_textset t;
    ck_assert_int_eq(lstm_textset_load(&t, path, NULL, 7, 100, 1, 3), 0);
    lstm_split sp;
    ck_assert_int_eq(lstm_split_random(&sp, 5, (double[3]){0.8, 0.1, 0.1}, 7),
                     0);
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(t.split.n[k], sp.n[k]);
        for (size_t i = 0; i < sp.n[k]; i++)
            ck_assert_uint_eq(t.split.idx[k][i], sp.idx[k][i]);
    }
    lstm_vocab v;
    ck_assert_int_eq(lstm_vocab_build(&v, &t.ds, sp.idx[0], sp.n[0], 100), 0);
    ck_assert_uint_eq(v.n, t.vocab.n);
    for (size_t i = 0; i < v.n; i++)
        ck_assert_str_eq(v.tok[i], t.vocab.tok[i]);
    ck_assert_uint_eq(t.tok.n, 5);
    ck_assert_uint_eq(t.tok.max_len, 3);
    int32_t ids[3];
    for (size_t r = 0; r < 5; r++) {
        size_t n = lstm_encode(&v, t.ds.text[r], t.ds.text_len[r], ids, 3);
        ck_assert_int_eq(t.tok.len[r], (int32_t)n);
        ck_assert_int_eq(memcmp(ids, t.tok.ids + t.tok.off[r], n * 4), 0);
    }
    char *mine[3] = {"b", "z", "a"}, *lacking[1] = {"a"};
    int32_t lab[5];
    ck_assert_int_eq(lstm_dataset_labels_in(&t.ds, "ts.csv", mine, 3, lab), 0);
    ck_assert(lab[0] == 2 && lab[1] == 0 && lab[4] == 2);
    ck_assert_int_eq(lstm_dataset_labels_in(&t.ds, "ts.csv", lacking, 1, lab),
                     LSTM_EINVAL);
    ck_assert_str_eq(lstm_errmsg(), "ts.csv: line 3: category 'b' is not one "
                                    "of the model's 1 classes");
    lstm_vocab_free(&v);
    /* --min-freq 2: only the words seen twice or more */
    ck_assert_int_eq(lstm_vocab_build_min(&v, &t.ds, sp.idx[0], sp.n[0], 100,
                                          2), 0);
    size_t twice = 0;
    for (size_t i = 2; i < t.vocab.n; i++) {
        size_t seen = 0;
        for (size_t r = 0; r < sp.n[0]; r++) {
            const size_t row = sp.idx[0][r];
            size_t m = lstm_encode(&t.vocab, t.ds.text[row],
                                   t.ds.text_len[row], ids, 3);
            for (size_t k = 0; k < m; k++)
                seen += ids[k] == (int32_t)i;
        }
        twice += seen >= 2;
        ck_assert_int_eq(lstm_vocab_id(&v, t.vocab.tok[i],
                                       strlen(t.vocab.tok[i])) > 1,
                         seen >= 2);
    }
    ck_assert_uint_eq(v.n, 2 + twice);
    lstm_vocab_free(&v);
    lstm_split_free(&sp);
    lstm_textset_free(&t);
    /* without a vocabulary: nothing encoded; a bad split file: an error */
    ck_assert_int_eq(lstm_textset_load(&t, path, NULL, 7, 0, 0, 0), 0);
    ck_assert(t.vocab.n == 0 && t.tok.n == 0 && t.ds.n == 5);
    lstm_textset_free(&t);
    const char *bad = put_file("split.json", "{\"train\":[9]}", 13);
    ck_assert_int_lt(lstm_textset_load(&t, path, bad, 7, 100, 1, 3), 0);
    ck_assert(t.ds.n == 0);  /* freed on failure */
}
END_TEST

/* Readers stop when memory runs out (reading /dev/zero used to go on for
 * ever once the buffer could not grow), and say it is memory. */
START_TEST(read_stops_without_memory)
{
    char *data;
    size_t n;
    lstm_debug_fail_alloc(12);  /* a few doublings in */
    int err = lstm_read_file("/dev/zero", &data, &n, (size_t)1 << 40);
    lstm_debug_fail_alloc(0);
    ck_assert_int_eq(err, LSTM_ENOMEM);
    ck_assert_msg(strstr(lstm_errmsg(), "/dev/zero: out of memory after"),
                  "%s", lstm_errmsg());
    ck_assert_ptr_null(data);
    /* a confusion matrix past 8 GB is refused before it is tried */
    lstm_metrics m;
    ck_assert_int_eq(lstm_metrics_init(&m, 60000), LSTM_ENOMEM);
    ck_assert(strstr(lstm_errmsg(), "60000 classes: the confusion matrix"));
}
END_TEST

/* predictions.csv is RFC 4180 whatever the class names hold, and reads
 * back through the library's own CSV reader field for field. */
START_TEST(predictions_csv_quotes)
{
    const char *csv = "text,category\n\"one, \"\"two\"\"\",a\nthree,b\n";
    lstm_dataset ds;
    ck_assert_int_eq(lstm_dataset_load(&ds, put_file("p.csv", csv,
                                                     strlen(csv))), 0);
    char *classes[2] = {"a,comma", "say \"hi\"\nnext line"};
    size_t rows[2] = {0, 1};
    int32_t labels[2] = {0, 1}, pred[2] = {1, 1};
    float probs[4] = {0.25f, 0.75f, 0.5f, 0.5f};
    char path[256];
    snprintf(path, sizeof path, "%s/pred.csv", tmpdir);
    ck_assert_int_eq(lstm_predictions_csv(path, &ds, rows, 2, labels, pred,
                                          probs, classes, 2), 0);
    lstm_csv *c;
    char **f;
    size_t *fl, nf;
    ck_assert_int_eq(lstm_csv_open(&c, path), 0);
    ck_assert_int_eq(lstm_csv_next(c, &f, &fl, &nf), 1);  /* header */
    ck_assert_uint_eq(nf, 7);
    ck_assert_int_eq(lstm_csv_next(c, &f, &fl, &nf), 1);
    ck_assert_uint_eq(nf, 7);
    ck_assert_str_eq(f[2], classes[0]);
    ck_assert_str_eq(f[3], classes[1]);
    ck_assert_str_eq(f[6], "one, \"two\"");
    ck_assert_int_eq(lstm_csv_next(c, &f, &fl, &nf), 1);
    ck_assert_str_eq(f[2], classes[1]);
    ck_assert_int_eq(lstm_csv_next(c, &f, &fl, &nf), 0);
    lstm_csv_close(c);
    lstm_dataset_free(&ds);
}
END_TEST

/* mkdirs makes every missing parent, accepts what exists, and names the
 * folder it could not make; TensorBoard versions count up. */
START_TEST(mkdirs_and_versions)
{
    char dir[300], got[400];
    snprintf(dir, sizeof dir, "%s/a/b/c", tmpdir);
    ck_assert_int_eq(lstm_mkdirs(dir), 0);
    ck_assert_int_eq(lstm_mkdirs(dir), 0);
    ck_assert_int_eq(lstm_mkdirs(""), LSTM_EINVAL);
    ck_assert_int_eq(lstm_tblog_next_dir(got, sizeof got, dir), 0);
    ck_assert(strstr(got, "/a/b/c/version_0") != NULL);
    ck_assert_int_eq(lstm_tblog_next_dir(got, sizeof got, dir), 0);
    ck_assert(strstr(got, "/a/b/c/version_1") != NULL);
    const char *file = put_file("plain", "x", 1);
    snprintf(dir, sizeof dir, "%s/sub", file);
    ck_assert_int_eq(lstm_mkdirs(dir), LSTM_EIO);
    ck_assert(strstr(lstm_errmsg(), "plain/sub: cannot create the folder"));
}
END_TEST

/* ---- limits: far beyond the notebook's data ---- */

static int quick(void) { return getenv("LSTM_TEST_QUICK") != NULL; }

/* A 50 MB text field: read whole, tokenized, encoded to 10,000 tokens. */
START_TEST(limits_50mb_field)
{
    if (quick())
        return;
    const size_t big = (size_t)50 << 20;
    char *data = malloc(big + 64);
    int k = sprintf(data, "text,category\n\"");
    for (size_t i = 0; i < big; i++)
        data[k + i] = i % 8 == 7 ? ' ' : (char)('a' + i % 8 % 3);
    size_t n = (size_t)k + big;
    n += (size_t)sprintf(data + n, "\",sport\nhola,politics\n");
    const char *path = put_file("big.csv", data, n);
    free(data);
    lstm_dataset ds;
    ck_assert_int_eq(lstm_dataset_load(&ds, path), 0);
    ck_assert_uint_eq(ds.n, 2);
    ck_assert_uint_eq(ds.text_len[0], big);
    lstm_vocab v;
    size_t rows[2] = {0, 1};
    ck_assert_int_eq(lstm_vocab_build(&v, &ds, rows, 2, 10), 0);
    ck_assert_uint_eq(v.n, 4);  /* [PAD] [UNK] abcabca hola */
    int32_t *ids = malloc(10000 * sizeof *ids);
    ck_assert_uint_eq(lstm_encode(&v, ds.text[0], ds.text_len[0], ids, 10000),
                      10000);
    ck_assert_int_eq(ids[9999], ids[0]);
    free(ids);
    lstm_vocab_free(&v);
    lstm_dataset_free(&ds);
}
END_TEST

/* A million rows, every one a new word: a million-word vocabulary. */
START_TEST(limits_million_rows)
{
    if (quick())
        return;
    const size_t rows = 1000000;
    char path[256];
    snprintf(path, sizeof path, "%s/rows.csv.gz", tmpdir);
    gzFile gz = gzopen(path, "wb1");
    gzprintf(gz, "text,category\n");
    for (size_t i = 0; i < rows; i++) {
        char w[8];  /* the row number in letters: the tokenizer drops digits */
        for (size_t k = 0, x = i; k < 5; k++, x /= 26)
            w[k] = (char)('a' + x % 26);
        w[5] = '\0';
        gzprintf(gz, "w%s de,c%zu\n", w, i % 7);
    }
    gzclose(gz);
    lstm_dataset ds;
    ck_assert_int_eq(lstm_dataset_load(&ds, path), 0);
    ck_assert_uint_eq(ds.n, rows);
    ck_assert_uint_eq(ds.n_classes, 7);
    lstm_split sp;
    ck_assert_int_eq(lstm_split_random(&sp, rows, (double[3]){0.8, 0.1, 0.1},
                                       3), 0);
    lstm_vocab v;
    ck_assert_int_eq(lstm_vocab_build(&v, &ds, sp.idx[0], sp.n[0], 10000000),
                     0);
    ck_assert_uint_eq(v.n, 2 + 1 + sp.n[0]);  /* "de" and one word a row */
    ck_assert_str_eq(v.tok[2], "de");
    int32_t ids[4];
    ck_assert_uint_eq(lstm_encode(&v, ds.text[sp.idx[1][0]],
                                  ds.text_len[sp.idx[1][0]], ids, 4), 2);
    ck_assert_int_eq(ids[0], LSTM_UNK);  /* a validation row's own word */
    lstm_vocab_free(&v);
    lstm_split_free(&sp);
    lstm_dataset_free(&ds);
}
END_TEST

static size_t files_in(const char *d)
{
    DIR *dp = opendir(d);
    size_t n = 0;
    for (struct dirent *e; dp && (e = readdir(dp));)
        n += e->d_name[0] != '.';
    if (dp)
        closedir(dp);
    return n;
}

/* A write that runs out of room (here: the file size limit, as a full
 * disk would) fails with the file named, and the old file stays whole. */
START_TEST(write_atomic_out_of_room)
{
    char path[256];
    snprintf(path, sizeof path, "%s/keep.bin", tmpdir);
    ck_assert_int_eq(lstm_write_atomic(path, "old contents", 12), 0);
    const size_t before = files_in(tmpdir);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {4096, 4096};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        static char big[1 << 20];
        int err = lstm_write_atomic(path, big, sizeof big);
        _exit(err == LSTM_EIO && strstr(lstm_errmsg(), "keep.bin: cannot "
                                                       "write: File too large")
                  ? 0 : 1);
    }
    int status;
    ck_assert(waitpid(pid, &status, 0) == pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the write did not fail as it should");
    char *back;
    size_t n;
    ck_assert_int_eq(lstm_read_file(path, &back, &n, 100), 0);
    ck_assert(n == 12 && memcmp(back, "old contents", 12) == 0);
    lstm_free(back);
    ck_assert_uint_eq(files_in(tmpdir), before);  /* no temporary left */
}
END_TEST

Suite *data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("text side");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, csv_rfc4180);
    tcase_add_test(tc, csv_gzip_and_long_field);
    tcase_add_test(tc, csv_hostile);
    tcase_add_test(tc, csv_bad_gzip);
    tcase_add_test(tc, utf8_checks);
    tcase_add_test(tc, tokenizer_cases);
    tcase_add_test(tc, vocab_ranking_and_ties);
    tcase_add_test(tc, split_deterministic);
    tcase_add_test(tc, json_cases);
    tcase_add_test(tc, safetensors_round_trip);
    tcase_add_test(tc, safetensors_malformed);
    tcase_add_test(tc, tblog_framing);
    tcase_add_test(tc, metrics_known);
    tcase_add_test(tc, metrics_of_and_report);
    tcase_add_test(tc, buf_excerpt_and_pad);
    tcase_add_test(tc, textset_and_labels);
    tcase_add_test(tc, mkdirs_and_versions);
    tcase_add_test(tc, read_stops_without_memory);
    tcase_add_test(tc, predictions_csv_quotes);
    tcase_add_test(tc, write_atomic_out_of_room);
    TCase *lim = tcase_create("limits");
    tcase_set_timeout(lim, 600);
    tcase_add_checked_fixture(lim, setup, teardown);
    tcase_add_test(lim, limits_50mb_field);
    tcase_add_test(lim, limits_million_rows);
    suite_add_tcase(s, lim);
    suite_add_tcase(s, tc);
    return s;
}
