/*
 * tokenize.c - the notebook's tokenizer on UTF-8 bytes.
 *
 * simple_tokenizer in Python is text.lower() then re.sub("[^a-záéíóúüñ]+",
 * " ") and split(). On bytes: ASCII letters are lowercased; the
 * two-byte forms of Á É Í Ó Ú Ü Ñ map to á é í ó ú ü ñ; the two Unicode
 * capitals whose lowercase falls in the alphabet are mapped as Python
 * maps them (KELVIN SIGN -> "k"; İ -> "i" plus a combining dot, which
 * separates); every other character, and any invalid byte, separates.
 */
#include "internal.h"
#include "lstm_text.h"

size_t lstm_tokenize(const char *text, size_t len, size_t max_words,
                     void (*fn)(const char *w, size_t n, void *ctx), void *ctx)
{
    const unsigned char *s = (const unsigned char *)text;
    char word[256];           /* words longer than this are split */
    size_t wl = 0, count = 0;
#define EMIT()                                                              \
    do {                                                                    \
        if (wl) {                                                           \
            fn(word, wl, ctx);                                              \
            wl = 0;                                                         \
            if (++count == max_words)                                       \
                return count;                                               \
        }                                                                   \
    } while (0)
#define PUT(c)                                                              \
    do {                                                                    \
        if (wl == sizeof word)                                              \
            EMIT();                                                         \
        word[wl++] = (char)(c);                                             \
    } while (0)
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c >= 'a' && c <= 'z') {
            PUT(c);
            i++;
        } else if (c >= 'A' && c <= 'Z') {
            PUT(c + 32);
            i++;
        } else if (c == 0xc3 && i + 1 < len) {
            unsigned d = s[i + 1];
            switch (d) {
            case 0xa1: case 0xa9: case 0xad: case 0xb3: case 0xba: /* áéíóú */
            case 0xbc: case 0xb1:                                  /* ü ñ */
                break;
            case 0x81: case 0x89: case 0x8d: case 0x93: case 0x9a: /* ÁÉÍÓÚ */
            case 0x9c: case 0x91:                                  /* Ü Ñ */
                d += 0x20;
                break;
            default:
                d = 0;
            }
            if (d) {
                if (wl + 2 > sizeof word)
                    EMIT();
                PUT(0xc3);
                PUT(d);
            } else {
                EMIT();
            }
            i += 2;
        } else if (c == 0xc4 && i + 1 < len && s[i + 1] == 0xb0) {
            PUT('i');  /* İ -> "i" + U+0307, which separates */
            EMIT();
            i += 2;
        } else if (c == 0xe2 && i + 2 < len && s[i + 1] == 0x84 &&
                   s[i + 2] == 0xaa) {
            PUT('k');  /* KELVIN SIGN */
            i += 3;
        } else {
            EMIT();
            /* skip one whole character: its lead byte and continuations */
            i++;
            while (i < len && (s[i] & 0xc0) == 0x80 && c >= 0xc0)
                i++;
        }
    }
    EMIT();
    return count;
#undef PUT
#undef EMIT
}
