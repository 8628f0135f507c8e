/*
 * ck_json.h - wire JSON for cometkey: Lua values <-> JSON text through
 * libjansson, with exact 64-bit integers. Every jansson object is owned by a
 * GC-collected box while Lua runs, so a Lua error can never leak it.
 */
#ifndef CK_JSON_H
#define CK_JSON_H

#include <stddef.h>
#include "ck_core.h"

#define CK_JSON_MAX_DEPTH 32 /* deeper documents are refused (decode and encode) */

/* decode flags */
#define CK_JSON_NULL_AS_NIL 1 /* object members whose value is null are left out */

/*
 * Decodes len bytes of JSON text (any value at the top level). On success
 * pushes the value and returns 1. On failure pushes nothing, writes a one-line
 * message into err and returns 0: syntax errors (with position), invalid UTF-8,
 * duplicate object keys, nesting deeper than CK_JSON_MAX_DEPTH, and (5.1/LuaJIT)
 * integers beyond 2^53. Raises only on out-of-memory, leaking nothing.
 * Decoding: null -> cometkey null (NULL lightuserdata), integers -> exact
 * integers (Lua integers on 5.3+), reals -> numbers, arrays -> sequences.
 */
int ck_json_decode(lua_State *L, const char *text, size_t len, int flags, char *err, size_t errlen);

/*
 * Encodes the Lua value at idx as compact JSON with object keys sorted. On
 * success pushes the string and returns 1; on failure pushes nothing, writes a
 * one-line message into err and returns 0. Tables: a non-empty sequence (keys
 * 1..n) or a table whose metatable has __jsontype = "array" is an array;
 * anything else is an object with string keys. Integers are exact (floats with
 * an integral value within 2^53 are written as integers); other floats with 17
 * significant digits; NaN/inf, functions, userdata, non-UTF-8 strings, cycles
 * and nesting deeper than CK_JSON_MAX_DEPTH are refused.
 */
int ck_json_encode(lua_State *L, int idx, char *err, size_t errlen);

#endif /* CK_JSON_H */
