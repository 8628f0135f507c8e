/*
 * ck_util.c - the printable excerpt of a server text (see ck_util.h).
 */
#include <string.h>

#include "ck_schema.h"
#include "ck_utf8.h"
#include "ck_util.h"

void ck_push_excerpt(lua_State *L, const char *s, size_t len, size_t max)
{
    char out[CK_TEXT_MAX + 8];
    size_t i = 0, o = 0;
    int cut = 0, space = 1; /* 1: the last output byte is a space (or nothing yet) */
    if (max > CK_TEXT_MAX)
        max = CK_TEXT_MAX;
    while (i < len) {
        const unsigned char *p = (const unsigned char *)s + i;
        const char *piece = (const char *)p;
        size_t n = ck_utf8_seqlen(p, len - i), plen = n, adv = n;
        if (n == 0) {
            piece = "\xEF\xBF\xBD";
            plen = 3;
            adv = 1;
        } else if ((n == 1 && (*p <= 0x20 || *p == 0x7F)) ||
                   (n == 2 && p[0] == 0xC2 && p[1] < 0xA0)) {
            i += n; /* a blank or a control character: one space for the whole run */
            if (!space && o < max) {
                out[o++] = ' ';
                space = 1;
            }
            continue;
        }
        if (o + plen > max) {
            cut = 1;
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += adv;
        space = 0;
    }
    if (cut) {
        while (o + 3 > max && o > 0) {
            while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
                o--; /* continuation bytes of the last character */
            if (o > 0)
                o--;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    lua_pushlstring(L, out, o);
}
