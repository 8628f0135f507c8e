/*
 * ck_allowlist.c - Lua binding of the allowlist (allow_ips): core.allowlist_parse,
 * core.allowlist_format, core.allowlist_compile and the "cometkey.allowlist"
 * matcher userdata, plus ck_allowlist_normalize for the validator. Bad values
 * come back as nil, message; only misuse of a matcher method raises. Scratch
 * entries live in Lua-owned userdata and the matcher is freed by __gc, so a
 * raise (out of memory) never leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ck_allowlist.h"
#include "ck_cidr.h"
#include "ck_core.h"
#include "ck_util.h"

/* How messages about a bad entry read. */
enum ck_msg_style {
    CK_MSG_SENTENCE, /* entry 2 ("x") is not an IP address or CIDR (...) */
    CK_MSG_FIELD     /* entry 2 ("x"): not an IP address or CIDR (...) */
};

/* ================================================================ reading values */

static void entry_message(char *err, size_t errlen, int style, size_t pos, const char *s,
                          size_t len, int code)
{
    char quoted[CK_QUOTE_MAX];
    ck_cidr_quote(s, len, quoted, sizeof quoted);
    snprintf(err, errlen,
             style == CK_MSG_FIELD ? "entry %zu (\"%s\"): %s" : "entry %zu (\"%s\") is %s", pos,
             quoted, ck_cidr_strerror(code));
}

/* Entries of a list string, counted first so the userdata has the right size. */
static int collect_string(lua_State *L, int idx, int style, ck_entry **out, size_t *count,
                          char *err, size_t errlen)
{
    size_t len, pos = 0, start, elen, n = 0, i = 0;
    const char *s = lua_tolstring(L, idx, &len);
    ck_entry *e;

    while (ck_list_next(s, len, &pos, &start, &elen))
        n++;
    if (n > (size_t)-1 / sizeof *e) /* a 32-bit size_t and a string of gigabytes */
        return luaL_error(L, "cometkey: out of memory");
    e = (ck_entry *)ck_newuserdata(L, (n > 0 ? n : 1) * sizeof *e);
    pos = 0;
    while (ck_list_next(s, len, &pos, &start, &elen)) {
        int code = ck_entry_parse(s + start, elen, &e[i]);
        if (code != CK_CIDR_OK) {
            entry_message(err, errlen, style, i + 1, s + start, elen, code);
            lua_pop(L, 1);
            return 0;
        }
        i++;
    }
    *out = e;
    *count = n;
    return 1;
}

/* Entries of an array: one per item, blanks around it ignored, empty items skipped;
 * positions in messages are the item's index. */
static int collect_array(lua_State *L, int idx, int style, ck_entry **out, size_t *count, char *err,
                         size_t errlen)
{
    size_t n = (size_t)ck_rawlen(L, idx), keys = 0, i, kept = 0;
    ck_entry *e;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        keys++;
        lua_pop(L, 1);
    }
    if (keys != n) {
        snprintf(err, errlen,
                 "expected a string or an array of strings, got a table with "
                 "non-array keys");
        return 0;
    }
    if (n > (size_t)-1 / sizeof *e)
        return luaL_error(L, "cometkey: out of memory");
    e = (ck_entry *)ck_newuserdata(L, (n > 0 ? n : 1) * sizeof *e);
    for (i = 1; i <= n; i++) {
        size_t len, a, b;
        const char *s;
        int code;
        lua_rawgeti(L, idx, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING) {
            snprintf(err, errlen,
                     style == CK_MSG_FIELD ? "entry %zu: not a string (got %s)"
                                           : "entry %zu is not a string (got %s)",
                     i, luaL_typename(L, -1));
            lua_pop(L, 2);
            return 0;
        }
        s = lua_tolstring(L, -1, &len);
        a = 0;
        b = len;
        while (a < b && ck_list_is_separator((unsigned char)s[a]))
            a++;
        while (b > a && ck_list_is_separator((unsigned char)s[b - 1]))
            b--;
        if (a == b) {
            lua_pop(L, 1);
            continue;
        }
        code = ck_entry_parse(s + a, b - a, &e[kept]);
        if (code != CK_CIDR_OK) {
            size_t j;
            for (j = a; j < b; j++)
                if (ck_list_is_separator((unsigned char)s[j]))
                    code = CK_CIDR_ESEPARATOR;
            entry_message(err, errlen, style, i, s + a, b - a, code);
            lua_pop(L, 2);
            return 0;
        }
        kept++;
        lua_pop(L, 1);
    }
    *out = e;
    *count = kept;
    return 1;
}

/*
 * Reads the allowlist value at idx. On success pushes a userdata holding the
 * entries (Lua-owned scratch), sets *out and *count, and returns 1; otherwise
 * pushes nothing, writes the message into err and returns 0. Never raises
 * except when out of memory.
 */
static int collect(lua_State *L, int idx, int style, ck_entry **out, size_t *count, char *err,
                   size_t errlen)
{
    idx = ck_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL:
        break;
    case LUA_TSTRING:
        return collect_string(L, idx, style, out, count, err, errlen);
    case LUA_TTABLE:
        return collect_array(L, idx, style, out, count, err, errlen);
    default:
        if (ck_isnull(L, idx))
            break;
        snprintf(err, errlen, "expected a string, an array of strings or null, got %s",
                 luaL_typename(L, idx));
        return 0;
    }
    *out = (ck_entry *)ck_newuserdata(L, sizeof **out);
    *count = 0;
    return 1;
}

/* ================================================================ the server's reading */

/*
 * 1 when the options at idx ({ as = "server" | "client" }, or nil) ask for the
 * server's reading of a stored string; raises on anything else (nothing is
 * held then).
 */
static int server_mode(lua_State *L, int idx)
{
    int server = 0;
    if (lua_isnoneornil(L, idx))
        return 0;
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_argerror(L, idx, "options must be a table such as { as = \"server\" }");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t len;
        const char *v;
        if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "as") != 0)
            luaL_argerror(L, idx,
                          "unknown option (the only option is as = \"server\" | \"client\")");
        v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (v != NULL && len == 6 && memcmp(v, "server", 6) == 0)
            server = 1;
        else if (!(v != NULL && len == 6 && memcmp(v, "client", 6) == 0))
            luaL_argerror(L, idx, "option as must be \"server\" or \"client\"");
        lua_pop(L, 1);
    }
    return server;
}

/*
 * Reads a stored allow_ips value at idx as the server does (ck_server_next):
 * pushes a userdata with the valid entries, sets *out, *count (valid entries)
 * and *pieces (all non-empty pieces: > 0 means the list restricts). When
 * ignored is a table index, appends each invalid piece to it. Returns 0 with a
 * message for a value that is not a string or null.
 */
static int collect_server(lua_State *L, int idx, int ignored, ck_entry **out, size_t *count,
                          size_t *pieces, char *err, size_t errlen)
{
    size_t len = 0, pos = 0, blen, n = 0, kept = 0, bad = 0;
    const char *s = "";
    char *buf;
    ck_entry *e;
    idx = ck_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        s = lua_tolstring(L, idx, &len);
    } else if (!lua_isnoneornil(L, idx) && !ck_isnull(L, idx)) {
        snprintf(err, errlen, "as = \"server\" reads a stored string (or null), got %s",
                 luaL_typename(L, idx));
        return 0;
    }
    buf = (char *)ck_newuserdata(L, len > 0 ? len : 1); /* Lua-owned scratch */
    while (ck_server_next(s, len, &pos, buf, &blen))
        n++;
    if (n > (size_t)-1 / sizeof *e)
        return luaL_error(L, "cometkey: out of memory");
    e = (ck_entry *)ck_newuserdata(L, (n > 0 ? n : 1) * sizeof *e);
    pos = 0;
    while (ck_server_next(s, len, &pos, buf, &blen)) {
        if (ck_entry_parse(buf, blen, &e[kept]) == CK_CIDR_OK) {
            kept++;
        } else if (ignored != 0) {
            lua_pushlstring(L, buf, blen);
            lua_rawseti(L, ignored, (int)++bad);
        }
    }
    lua_remove(L, -2); /* the scratch */
    *out = e;
    *count = kept;
    *pieces = n;
    return 1;
}

/* De-duplicates in place; the scratch is freed before a raise. */
static size_t dedup_or_raise(lua_State *L, ck_entry *e, size_t n)
{
    size_t kept = ck_entries_dedup(e, n);
    if (kept == (size_t)-1)
        luaL_error(L, "cometkey: out of memory");
    return kept;
}

/* Pushes the newline-joined normalised entries. */
static void push_joined(lua_State *L, const ck_entry *e, size_t n)
{
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) {
        char text[CK_ENTRY_TEXT_MAX];
        size_t len = ck_entry_format(&e[i], text, sizeof text);
        if (i > 0)
            luaL_addchar(&b, '\n');
        luaL_addlstring(&b, text, len);
    }
    luaL_pushresult(&b);
}

int ck_allowlist_normalize(lua_State *L, int idx, char *err, size_t errlen)
{
    ck_entry *e;
    size_t n;
    if (!collect(L, idx, CK_MSG_FIELD, &e, &n, err, errlen))
        return 0;
    n = dedup_or_raise(L, e, n);
    push_joined(L, e, n);
    lua_remove(L, -2); /* the scratch entries */
    return 1;
}

/* ================================================================ core functions */

static int fail(lua_State *L, const char *message)
{
    lua_pushnil(L);
    lua_pushstring(L, message);
    return 2;
}

/*
 * allowlist_parse(value [, { as = "server" }]) -> array of normalised entries | nil, message
 * With as = "server": entries, ignored (the pieces the server ignores), restricts
 * (whether the server restricts at all: any piece, even if none is valid).
 */
static int l_allowlist_parse(lua_State *L)
{
    char err[CK_ERRLEN];
    ck_entry *e;
    size_t n, i, pieces = 0;
    int server = server_mode(L, 2);
    lua_settop(L, 1);
    if (server) {
        lua_newtable(L); /* 2: the ignored pieces */
        if (!collect_server(L, 1, 2, &e, &n, &pieces, err, sizeof err))
            return fail(L, err);
    } else if (!collect(L, 1, CK_MSG_SENTENCE, &e, &n, err, sizeof err)) {
        return fail(L, err);
    }
    n = dedup_or_raise(L, e, n);
    lua_createtable(L, n < 0x7fffffff ? (int)n : 0, 0);
    for (i = 0; i < n; i++) {
        char text[CK_ENTRY_TEXT_MAX];
        size_t len = ck_entry_format(&e[i], text, sizeof text);
        lua_pushlstring(L, text, len);
        lua_rawseti(L, -2, (int)(i + 1));
    }
    if (server) {
        lua_pushvalue(L, 2);
        lua_pushboolean(L, pieces > 0);
        return 3;
    }
    return 1;
}

/* allowlist_format(value) -> newline-joined normalised entries ("" for none) | nil, message */
static int l_allowlist_format(lua_State *L)
{
    char err[CK_ERRLEN];
    ck_entry *e;
    size_t n;
    if (!collect(L, 1, CK_MSG_SENTENCE, &e, &n, err, sizeof err))
        return fail(L, err);
    n = dedup_or_raise(L, e, n);
    push_joined(L, e, n);
    return 1;
}

/* ================================================================ matcher userdata */

/* XORed with the userdata's address into its cookie. */
#define CK_ALLOWLIST_COOKIE ((uintptr_t)0x6d2f1c3ba45e9087u)

typedef struct ck_allowlist_ud {
    uintptr_t cookie; /* (uintptr_t)self ^ CK_ALLOWLIST_COOKIE while alive, 0 after __gc */
    ck_matcher *m;    /* NULL once freed */
    int deny_all;     /* the server's reading of a list whose every entry is invalid */
} ck_allowlist_ud;

/*
 * The matcher at 1, else raises. Checked on every contains call, so instead of
 * fetching and comparing the metatable (about 10 ns, a sixth of a lookup) it
 * checks the size and a cookie made from the userdata's own address: Lua code
 * cannot write userdata bytes, and __gc clears the cookie so recycled memory
 * never carries a stale one.
 */
static ck_allowlist_ud *check_ud(lua_State *L)
{
    ck_allowlist_ud *u = (ck_allowlist_ud *)lua_touserdata(L, 1);
    if (u == NULL || lua_type(L, 1) != LUA_TUSERDATA || ck_rawlen(L, 1) != sizeof *u ||
        u->cookie != ((uintptr_t)u ^ CK_ALLOWLIST_COOKIE))
        luaL_argerror(L, 1, "cometkey.allowlist expected");
    return u;
}

static const ck_matcher *check_matcher(lua_State *L)
{
    ck_allowlist_ud *u = check_ud(L);
    if (u->m == NULL)
        luaL_error(L, "cometkey.allowlist: the matcher was freed");
    return u->m;
}

/* allowlist_compile(value [, { as = "server" }]) -> matcher | nil, message */
static int l_allowlist_compile(lua_State *L)
{
    char err[CK_ERRLEN];
    ck_entry *e;
    size_t n, pieces = 0;
    ck_allowlist_ud *u;
    int server = server_mode(L, 2);
    lua_settop(L, 1);
    if (server) {
        if (!collect_server(L, 1, 0, &e, &n, &pieces, err, sizeof err))
            return fail(L, err);
    } else if (!collect(L, 1, CK_MSG_SENTENCE, &e, &n, err, sizeof err)) {
        return fail(L, err);
    }
    /* userdata and metatable first (may raise), then the malloc nothing interrupts */
    u = (ck_allowlist_ud *)ck_newuserdata(L, sizeof *u);
    u->cookie = (uintptr_t)u ^ CK_ALLOWLIST_COOKIE;
    u->m = NULL;
    u->deny_all = server && pieces > 0 && n == 0;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, -2);
    u->m = ck_matcher_new(e, n);
    if (u->m == NULL)
        return luaL_error(L, "cometkey: out of memory");
    return 1;
}

/* matcher:contains(ip [, form]) -> boolean; form "text" | "binary" | nil (auto) */
static int l_contains(lua_State *L)
{
    const ck_matcher *m = check_matcher(L);
    size_t len, flen;
    const char *ip, *form;
    ck_addr a;
    int ok;

    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_argerror(L, 2,
                             lua_pushfstring(L, "string expected, got %s", luaL_typename(L, 2)));
    ip = lua_tolstring(L, 2, &len);
    if (check_ud(L)->deny_all) {
        ok = 0;
    } else if (lua_type(L, 3) <= LUA_TNIL) { /* auto: nginx's $binary_remote_addr or text */
        if (len == 4)
            ok = ck_matcher_contains_bytes(m, ip, 4);
        else if (len == 16 && !ck_addr_parse(ip, 16, &a))
            ok = ck_matcher_contains_bytes(m, ip, 16);
        else
            ok = ck_matcher_contains_text(m, ip, len);
    } else if (lua_type(L, 3) == LUA_TSTRING && (form = lua_tolstring(L, 3, &flen)) != NULL &&
               flen == 4 && memcmp(form, "text", 4) == 0) {
        ok = ck_matcher_contains_text(m, ip, len);
    } else if (lua_type(L, 3) == LUA_TSTRING && (form = lua_tolstring(L, 3, &flen)) != NULL &&
               flen == 6 && memcmp(form, "binary", 6) == 0) {
        ok = ck_matcher_contains_bytes(m, ip, len);
    } else {
        return luaL_argerror(L, 3, "form must be \"text\", \"binary\" or nil");
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* matcher:count() and #matcher -> number of address ranges after merging */
static int l_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)ck_matcher_count(check_matcher(L)));
    return 1;
}

static int l_tostring(lua_State *L)
{
    if (check_ud(L)->deny_all)
        lua_pushliteral(L, "cometkey.allowlist (0 ranges, no valid entry: matches nothing)");
    else
        lua_pushfstring(L, "cometkey.allowlist (%d ranges)",
                        (int)ck_matcher_count(check_matcher(L)));
    return 1;
}

static int l_gc(lua_State *L)
{
    ck_allowlist_ud *u = check_ud(L);
    ck_matcher_free(u->m);
    u->m = NULL;
    u->cookie = 0;
    return 0;
}

/* ================================================================ registration */

/* Sets each function as a closure over the metatable at index mt in table t. */
static void set_closures(lua_State *L, int t, int mt, const luaL_Reg *l)
{
    for (; l->name != NULL; l++) {
        lua_pushvalue(L, mt);
        lua_pushcclosure(L, l->func, 1);
        lua_setfield(L, t, l->name);
    }
}

void ck_allowlist_open(lua_State *L)
{
    static const luaL_Reg functions[] = {{"allowlist_parse", l_allowlist_parse},
                                         {"allowlist_format", l_allowlist_format},
                                         {"allowlist_compile", l_allowlist_compile},
                                         {NULL, NULL}};
    static const luaL_Reg methods[] = {{"contains", l_contains}, {"count", l_count}, {NULL, NULL}};
    static const luaL_Reg metamethods[] = {
        {"__len", l_count}, {"__tostring", l_tostring}, {"__gc", l_gc}, {NULL, NULL}};
    int module = lua_gettop(L), mt;

    luaL_newmetatable(L, CK_ALLOWLIST_MT);
    mt = lua_gettop(L);
    lua_newtable(L);
    ck_setfuncs(L, methods);
    lua_setfield(L, mt, "__index");
    ck_setfuncs(L, metamethods);
    lua_pushliteral(L, "cometkey.allowlist");
    lua_setfield(L, mt, "__metatable");
    set_closures(L, module, mt, functions);
    lua_settop(L, module);
}
