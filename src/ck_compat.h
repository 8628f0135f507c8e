/*
 * ck_compat.h - the few Lua API differences between 5.1/LuaJIT and 5.3/5.4,
 * under cometkey's own names. Nothing here redefines a luaL_* or lua_* name,
 * so the module cannot clash with a host (newer LuaJIT) that exports them.
 */
#ifndef CK_COMPAT_H
#define CK_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if defined(__GNUC__)
#define CK_EXPORT __attribute__((visibility("default")))
#else
#define CK_EXPORT
#endif

/* Largest integer a double holds exactly (2^53). */
#define CK_MAX_SAFE_DOUBLE_INT 9007199254740992LL

#if LUA_VERSION_NUM >= 502
#define ck_rawlen(L, i) lua_rawlen((L), (i))
#define ck_setfuncs(L, l) luaL_setfuncs((L), (l), 0)
#else
#define ck_rawlen(L, i) lua_objlen((L), (i))
static inline void ck_setfuncs(lua_State *L, const luaL_Reg *l)
{
    for (; l->name != NULL; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}
#endif

#if LUA_VERSION_NUM >= 503
#define CK_HAVE_INTEGERS 1
#else
#define CK_HAVE_INTEGERS 0
#endif

#if LUA_VERSION_NUM >= 504
#define ck_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define ck_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

/*
 * ck_tointeger64: reads an exact integer from stack slot idx.
 * Returns 1 and stores it in *out when the value is a number with an integral
 * value that is represented exactly (on 5.1/LuaJIT: |v| <= 2^53).
 * Returns 0 for non-numbers, fractions, NaN/inf and out-of-range values.
 * Never raises.
 */
static inline int ck_tointeger64(lua_State *L, int idx, long long *out)
{
    lua_Number n;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
#if CK_HAVE_INTEGERS
    if (lua_isinteger(L, idx)) {
        *out = (long long)lua_tointeger(L, idx);
        return 1;
    }
#endif
    n = lua_tonumber(L, idx);
    /* NaN fails both comparisons; the range test comes before the cast. */
    if (!(n <= (lua_Number)CK_MAX_SAFE_DOUBLE_INT && n >= -(lua_Number)CK_MAX_SAFE_DOUBLE_INT))
        return 0;
    if (n != (lua_Number)(long long)n)
        return 0; /* fraction */
    *out = (long long)n;
    return 1;
}

/*
 * ck_pushinteger64: pushes an exact integer. On 5.3+ as a Lua integer; on
 * 5.1/LuaJIT as a double, which is exact only up to 2^53: returns 0 (and
 * pushes nothing) when the value would be rounded.
 */
static inline int ck_pushinteger64(lua_State *L, long long v)
{
#if CK_HAVE_INTEGERS
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
#else
    if (v > CK_MAX_SAFE_DOUBLE_INT || v < -CK_MAX_SAFE_DOUBLE_INT)
        return 0;
    lua_pushnumber(L, (lua_Number)v);
    return 1;
#endif
}

#endif /* CK_COMPAT_H */
