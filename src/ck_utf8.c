/*
 * ck_utf8.c - UTF-8 well-formedness (RFC 3629) for the core: names, messages and
 * JSON strings are checked with these two functions.
 */
#include "ck_utf8.h"

size_t ck_utf8_seqlen(const unsigned char *s, size_t len)
{
    unsigned char c, lo = 0x80, hi = 0xBF;
    size_t need, i;
    if (len == 0)
        return 0;
    c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4;
    else
        return 0;
    if (len < need)
        return 0;
    if (c == 0xE0)
        lo = 0xA0; /* overlong */
    else if (c == 0xED)
        hi = 0x9F; /* surrogates */
    else if (c == 0xF0)
        lo = 0x90; /* overlong */
    else if (c == 0xF4)
        hi = 0x8F; /* above U+10FFFF */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return need;
}

size_t ck_utf8_invalid_at(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = ck_utf8_seqlen((const unsigned char *)s + i, len - i);
        if (n == 0)
            return i;
        i += n;
    }
    return len;
}
