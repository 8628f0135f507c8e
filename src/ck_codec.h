/*
 * ck_codec.h - what ck_validate.c and ck_codec.c share: the field limits the
 * client enforces, the JSON null test and a UTF-8 sequence reader. Internal to
 * cometkey.core (hidden symbols, ck_ prefix).
 */
#ifndef CK_CODEC_H
#define CK_CODEC_H

#include <stddef.h>
#include "ck_core.h"
#include "ck_utf8.h"

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

#endif /* CK_CODEC_H */
