/*
 * ck_secret.c - the access token as a "cometkey.secret" userdata: a malloc'd
 * copy that lives only in C memory, is wiped on close/__gc, and prints as
 * "cometkey.secret (hidden)". Shared by cometkey.core and cometkey.curl.
 */
#include <stdlib.h>
#include <string.h>

#include "ck_secret.h"

void ck_wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n--)
        *v++ = 0;
}

void ck_secret_wipe(ck_secret *s)
{
    if (s->value != NULL) {
        ck_wipe(s->value, s->len);
        free(s->value);
        s->value = NULL;
        s->len = 0;
    }
}

ck_secret *ck_secret_check(lua_State *L, int idx)
{
    return (ck_secret *)luaL_checkudata(L, idx, CK_SECRET_MT);
}

/* secret(token) -> userdata; raises on a non-string or empty token. */
static int l_secret_new(lua_State *L)
{
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    ck_secret *s;
    if (len == 0)
        return luaL_argerror(L, 1, "token must not be empty");
    /* Userdata first (may raise), then the malloc, which nothing can interrupt. */
    s = (ck_secret *)ck_newuserdata(L, sizeof *s);
    s->value = NULL;
    s->len = 0;
    luaL_getmetatable(L, CK_SECRET_MT);
    lua_setmetatable(L, -2);
    s->value = (char *)malloc(len + 1);
    if (s->value == NULL)
        return luaL_error(L, "cometkey: out of memory");
    memcpy(s->value, token, len);
    s->value[len] = '\0';
    s->len = len;
    return 1;
}

/* secret:reveal() -> the token, for Lua transports that must send it. */
static int l_secret_reveal(lua_State *L)
{
    ck_secret *s = ck_secret_check(L, 1);
    if (s->value == NULL)
        return luaL_error(L, "cometkey: the token was wiped (client closed)");
    lua_pushlstring(L, s->value, s->len);
    return 1;
}

/*
 * secret:redact(text) -> text with every copy of the token replaced by
 * "<redacted>", and a token cut short just before a trailing "..." (a length
 * cap) too. Non-strings come back unchanged. The token never becomes a Lua
 * string: the comparison runs on the C copy.
 */
static int l_secret_redact(lua_State *L)
{
    ck_secret *s = ck_secret_check(L, 1);
    luaL_Buffer b;
    const char *text;
    size_t len, i = 0, end, n;
    int truncated = 0;
    lua_settop(L, 2);
    if (lua_type(L, 2) != LUA_TSTRING || s->value == NULL || s->len < 4)
        return 1;
    text = lua_tolstring(L, 2, &len);
    end = len;
    if (len >= 3 && memcmp(text + len - 3, "...", 3) == 0) {
        for (n = s->len - 1; n >= 4; n--) {
            if (len - 3 >= n && memcmp(text + len - 3 - n, s->value, n) == 0) {
                end = len - 3 - n;
                truncated = 1;
                break;
            }
        }
    }
    luaL_buffinit(L, &b);
    while (i < end) {
        /* The buffer may run the GC, and a finalizer may wipe the token. */
        if (s->value == NULL)
            return luaL_error(L, "cometkey: the token was wiped during redact");
        if (end - i >= s->len && memcmp(text + i, s->value, s->len) == 0) {
            luaL_addstring(&b, "<redacted>");
            i += s->len;
        } else {
            luaL_addchar(&b, text[i]);
            i++;
        }
    }
    if (truncated)
        luaL_addstring(&b, "<redacted>...");
    luaL_pushresult(&b);
    return 1;
}

/* secret:wiped() -> true once the token is gone (redact can no longer find it). */
static int l_secret_wiped(lua_State *L)
{
    lua_pushboolean(L, ck_secret_check(L, 1)->value == NULL);
    return 1;
}

static int l_secret_close(lua_State *L)
{
    ck_secret_wipe(ck_secret_check(L, 1));
    return 0;
}

static int l_secret_tostring(lua_State *L)
{
    ck_secret *s = ck_secret_check(L, 1);
    lua_pushstring(L, s->value != NULL ? "cometkey.secret (hidden)" : "cometkey.secret (wiped)");
    return 1;
}

void ck_secret_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"reveal", l_secret_reveal},
                                       {"redact", l_secret_redact},
                                       {"wipe", l_secret_close},
                                       {"wiped", l_secret_wiped},
                                       {NULL, NULL}};
    if (luaL_newmetatable(L, CK_SECRET_MT)) {
        lua_newtable(L);
        ck_setfuncs(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_secret_close);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, l_secret_close);
        lua_setfield(L, -2, "__close");
#endif
        lua_pushcfunction(L, l_secret_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "hidden");
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
}

void ck_secret_open(lua_State *L)
{
    ck_secret_register(L);
    lua_pushcfunction(L, l_secret_new);
    lua_setfield(L, -2, "secret");
}
