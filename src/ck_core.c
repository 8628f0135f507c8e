/*
 * ck_core.c - luaopen_cometkey_core: builds the module table of the sans-I/O
 * core (validation, allowlist, JSON, request building, response mapping) by
 * calling each file's opener. The Lua facade lua/cometkey.lua is the public API;
 * everything here is internal to it.
 */
#include "ck_core.h"
#include "ck_secret.h"

CK_EXPORT int luaopen_cometkey_core(lua_State *L);

CK_EXPORT int luaopen_cometkey_core(lua_State *L)
{
    lua_newtable(L);
    lua_pushliteral(L, CK_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushlightuserdata(L, NULL); /* JSON null: equals cjson.null and ngx.null */
    lua_setfield(L, -2, "null");
#if CK_HAVE_INTEGERS
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "exact_integers");
    ck_secret_open(L);
    ck_allowlist_open(L);
    ck_json_open(L);
    ck_validate_open(L);
    ck_codec_open(L);
    ck_schema_open(L);
    return 1;
}
