/*
 * ck_util.h - the small helpers several files of cometkey share, one copy
 * each: the JSON null test, absolute stack indexes, ASCII case folding and
 * comparison, and (ck_util.c, cometkey.core only) the printable excerpt of a
 * server text. Internal (hidden symbols, ck_ prefix).
 */
#ifndef CK_UTIL_H
#define CK_UTIL_H

#include <stddef.h>
#include <string.h>

#include "ck_compat.h"

/* 1 when the value at idx is JSON null (the NULL lightuserdata: cjson.null, ngx.null). */
#define ck_isnull(L, idx)                                                                          \
    (lua_type((L), (idx)) == LUA_TLIGHTUSERDATA && lua_touserdata((L), (idx)) == NULL)

/* idx as a positive stack index (lua_absindex is not in Lua 5.1). */
#define ck_absindex(L, idx)                                                                        \
    ((idx) > 0 || (idx) <= LUA_REGISTRYINDEX ? (idx) : lua_gettop(L) + (idx) + 1)

/* ASCII lower case of ch; other bytes unchanged. */
static inline char ck_ascii_lower(char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* 1 when the n bytes at a equal the lower-case string b, ignoring ASCII case. */
static inline int ck_ascii_ieq(const char *a, size_t n, const char *b)
{
    size_t i;
    if (strlen(b) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (ck_ascii_lower(a[i]) != b[i])
            return 0;
    return 1;
}

/* 1 when the len bytes at s contain the lower-case word, ignoring ASCII case. */
static inline int ck_ascii_icontains(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word), i;
    for (i = 0; i + n <= len; i++)
        if (ck_ascii_ieq(s + i, n, word))
            return 1;
    return 0;
}

/*
 * Pushes s as one printable line of valid UTF-8 at most max bytes long (and
 * at most CK_TEXT_MAX): control characters become spaces, runs of blanks
 * collapse to one, invalid bytes become U+FFFD, the ends are trimmed and a
 * longer text is cut at a character boundary and ends in "...".
 */
void ck_push_excerpt(lua_State *L, const char *s, size_t len, size_t max);

#endif /* CK_UTIL_H */
