/*
 * ck_codec.h - what ck_validate.c and ck_codec.c share: the field limits the
 * client enforces, the JSON null test and a UTF-8 sequence reader. Internal to
 * cometkey.core (hidden symbols, ck_ prefix).
 */
#ifndef CK_CODEC_H
#define CK_CODEC_H

#include <stddef.h>
#include "ck_core.h"

#define CK_NAME_MAX_BYTES 50           /* the server compares len(name), in bytes */
#define CK_QUOTA_MAX 500000000000000LL /* 1e9 x QuotaPerUnit (500 000) */
#define CK_STATUS_MIN 1                /* enabled */
#define CK_STATUS_MAX 4                /* exhausted */
#define CK_TEXT_MAX 200                /* server text in messages, in bytes, "..." included */

/* 1 when the value at idx is JSON null (the NULL lightuserdata: cjson.null, ngx.null). */
#define ck_isnull(L, idx)                                                                          \
    (lua_type((L), (idx)) == LUA_TLIGHTUSERDATA && lua_touserdata((L), (idx)) == NULL)

/* idx as a positive stack index (lua_absindex is not in Lua 5.1). */
#define ck_absindex(L, idx)                                                                        \
    ((idx) > 0 || (idx) <= LUA_REGISTRYINDEX ? (idx) : lua_gettop(L) + (idx) + 1)

/*
 * Length (1-4) of the well-formed UTF-8 sequence that starts s (len bytes
 * available), or 0 when s does not start one: stray continuation bytes,
 * overlong forms, surrogates and code points above U+10FFFF are all refused.
 */
size_t ck_utf8_seqlen(const unsigned char *s, size_t len);

/*
 * Offset of the first byte of s that is not part of well-formed UTF-8, or
 * len when the whole string is valid.
 */
size_t ck_utf8_invalid_at(const char *s, size_t len);

#endif /* CK_CODEC_H */
