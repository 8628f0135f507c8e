/*
 * ck_core.h - what the files of the cometkey.core C module share: the openers
 * that each add their functions to the module table, and common limits.
 * Every non-static symbol is ck_-prefixed and hidden; only luaopen_* is exported.
 *
 * Naming, in every file of src/:
 *   luaopen_cometkey_*  the only exported symbols (CK_EXPORT)
 *   l_<name>            static, Lua-callable (lua_CFunction: module functions,
 *                       methods, metamethods)
 *   ck_<name>           hidden, shared between files, declared in a ck_*.h header
 *   <name>              static helpers of one file, no prefix
 * Shared helpers have one copy: ck_util.h (JSON null, absolute index, ASCII
 * case), ck_util.c (printable excerpt), ck_secret.c (ck_wipe), ck_utf8.c.
 */
#ifndef CK_CORE_H
#define CK_CORE_H

#include "ck_compat.h"

#define CK_VERSION "0.2.0" /* keep in step with lua/cometkey.lua and the rockspec */
#define CK_ERRLEN 256      /* size of the error buffers the C helpers fill */

/* Each opener adds its functions to the table at the top of the stack. */
void ck_allowlist_open(lua_State *L); /* allowlist_parse, allowlist_format, allowlist_compile */
void ck_json_open(lua_State *L);      /* json_encode, json_decode */
void ck_validate_open(lua_State *L);  /* check */
void ck_codec_open(lua_State *L);     /* request, response */
void ck_schema_open(
    lua_State *L); /* fields, limits, status_names, create_defaults, echo_defaults, endpoints */
void ck_secret_open(lua_State *L); /* secret */

#endif /* CK_CORE_H */
