/*
 * ck_allowlist.h - the allowlist (allow_ips) as cometkey.core exposes it to Lua:
 * allowlist_parse/format/compile, the "cometkey.allowlist" matcher userdata, and
 * the normaliser the field validator calls. The parsing and matching are in
 * ck_cidr.c; this is only the binding.
 */
#ifndef CK_ALLOWLIST_H
#define CK_ALLOWLIST_H

#include <stddef.h>

#include "ck_compat.h"

/* Registry name of the matcher metatable. */
#define CK_ALLOWLIST_MT "cometkey.allowlist"

/*
 * Normalises the allowlist value at idx: a string (entries split on newlines,
 * commas, spaces, tabs, CR), an array of strings (one entry per item), or
 * ""/nil/the NULL lightuserdata (no restriction).
 * On success pushes the newline-joined normalised, de-duplicated entries ("" for
 * none) and returns 1. On an invalid value pushes nothing, writes a message such
 * as `entry 2 ("10.0.0.1:80"): not an IP address or CIDR (ports are not allowed)`
 * into err (NUL-terminated, cut to errlen) and returns 0.
 * Raises only when out of memory, and leaks nothing then.
 */
int ck_allowlist_normalize(lua_State *L, int idx, char *err, size_t errlen);

#endif /* CK_ALLOWLIST_H */
