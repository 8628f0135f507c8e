/*
 * ck_json.h - wire JSON for cometkey: Lua values <-> JSON text through
 * libjansson, with exact 64-bit integers. Every jansson object is owned by a
 * GC-collected box while Lua runs, so a Lua error can never leak it.
 */
#ifndef CK_JSON_H
#define CK_JSON_H

#include <stddef.h>
#include "ck_core.h"

/* Deeper documents are refused (decode and encode). The document's own array or
 * object is level 1; 32 nested containers pass, 33 do not. */
#define CK_JSON_MAX_DEPTH 32

/* decode flags */
#define CK_JSON_NULL_AS_NIL 1 /* object members whose value is null are left out */

/*
 * Messages (into err, errlen bytes, always NUL-terminated, truncated on a UTF-8
 * boundary) are one line starting with "JSON ". Where a value is named, it is
 * by its Lua path on the document, e.g. "data.items[1].id" (1-based indices),
 * or "the top level".
 */

/*
 * Decodes len bytes of JSON text (any value at the top level). On success
 * pushes the value and returns 1. On failure pushes nothing, writes a one-line
 * message into err and returns 0: empty input, syntax errors and trailing
 * characters (with line and column), invalid UTF-8, a NUL character (\u0000)
 * in a string or key, duplicate object keys, numbers beyond 64-bit integers or
 * doubles, nesting deeper than CK_JSON_MAX_DEPTH, and (5.1/LuaJIT) integers
 * beyond 2^53. Raises only on out-of-memory, leaking nothing.
 * Decoding: null -> cometkey null (NULL lightuserdata), integers -> exact
 * integers (Lua integers on 5.3+), reals -> numbers, arrays -> plain sequences
 * (no metatable; an empty array becomes an empty table).
 */
int ck_json_decode(lua_State *L, const char *text, size_t len, int flags, char *err, size_t errlen);

/*
 * Encodes the Lua value at idx as compact JSON with object keys sorted
 * (bytewise). On success pushes the string and returns 1; on failure pushes
 * nothing, writes a one-line message into err and returns 0. Raises only on
 * out-of-memory, leaking nothing. Never calls Lua code (tables are read raw).
 * nil and the NULL lightuserdata -> null. Tables: a metatable field __jsontype
 * of "array" or "object" decides; otherwise a non-empty table with keys exactly
 * 1..n is an array and anything else an object, whose keys must all be
 * strings (an empty table is {}). Integers are exact (floats with an integral
 * value within 2^53 are written as integers); other floats with 17 significant
 * digits, so they read back exactly. Refused: NaN/inf, functions, threads,
 * userdata, strings or keys with invalid UTF-8 or a NUL byte (the decoder
 * refuses them too), mixed or sparse keys, cycles and nesting deeper than
 * CK_JSON_MAX_DEPTH.
 */
int ck_json_encode(lua_State *L, int idx, char *err, size_t errlen);

#endif /* CK_JSON_H */
