/*
 * fuzz_codec.c - libFuzzer target for the wire codec and the validator of
 * cometkey.core. The first input byte picks an HTTP status, the rest is a
 * response body: core.response runs on it for every op (it must never raise),
 * and the same bytes go into core.check and core.request as field values,
 * header values, query filters and, when the body decodes to a table, as a
 * whole fields table (those may raise for misuse; nothing may crash).
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -I/usr/include/lua5.4 -Isrc \
 *   $(make -s print-CORE_SRC) fuzz/fuzz_codec.c -llua5.4 -ljansson -o build/fuzz/fuzz_codec
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <lualib.h>

#include "ck_core.h"
#include "ck_json.h"
#include "ck_schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The operations: every row of the endpoint table (src/ck_schema.c). */
#define OP_COUNT ck_endpoint_count
#define OP_NAME(i) (ck_endpoints[(i)].name)

static const char *const modes[] = {"update", "create", "replace", "expect"};
#define MODE_COUNT (sizeof modes / sizeof modes[0])

static const int statuses[] = {200, 200, 200, 200, 301, 307, 401, 403,
                               404, 429, 500, 502, 503, 504, 418, 204};
#define STATUS_COUNT (sizeof statuses / sizeof statuses[0])

static const char *const string_fields[] = {"name",      "status", "model_limits",
                                            "allow_ips", "group",  "stauts"};
#define STRING_FIELD_COUNT (sizeof string_fields / sizeof string_fields[0])

/* Aborts on a C-level failure of the harness itself (not of the code under test). */
static void must(int ok)
{
    if (!ok)
        abort();
}

/* Calls core[fn] with the nargs values on the stack top; errors are expected and dropped. */
static int call(lua_State *L, int core, const char *fn, int nargs, int expect_no_error)
{
    int rc;
    lua_getfield(L, core, fn);
    lua_insert(L, -(nargs + 1));
    rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
    if (rc != LUA_OK && rc != LUA_ERRRUN)
        abort(); /* memory or error-handler failure: a bug worth stopping for */
    if (expect_no_error && rc != LUA_OK)
        abort(); /* core.response must never raise for a well-formed res */
    return rc;
}

static void fuzz_response(lua_State *L, int core, int status, const char *body, size_t len,
                          const char *header)
{
    size_t i;
    for (i = 0; i < OP_COUNT; i++) {
        int top = lua_gettop(L);
        lua_pushstring(L, OP_NAME(i));
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
        lua_pushlstring(L, body, len);
        lua_setfield(L, -2, "body");
        lua_createtable(L, 0, 4);
        lua_pushstring(L, header);
        lua_setfield(L, -2, "retry-after");
        lua_pushstring(L, header);
        lua_setfield(L, -2, "location");
        lua_pushstring(L, header);
        lua_setfield(L, -2, "x-oneapi-request-id");
        lua_pushstring(L, header);
        lua_setfield(L, -2, "Content-Type");
        lua_setfield(L, -2, "headers");
        lua_createtable(L, 0, 2);
        lua_pushstring(L, "GET");
        lua_setfield(L, -2, "method");
        lua_pushstring(L, header);
        lua_setfield(L, -2, "path");
        lua_setfield(L, -2, "request");
        call(L, core, "response", 2, 1);
        lua_settop(L, top);
    }
}

static void fuzz_check_strings(lua_State *L, int core, const char *s, size_t len)
{
    size_t i, m;
    for (m = 0; m < MODE_COUNT; m++) {
        int top = lua_gettop(L);
        lua_createtable(L, 0, 8);
        lua_pushinteger(L, 1);
        lua_setfield(L, -2, "id");
        for (i = 0; i < STRING_FIELD_COUNT; i++) {
            lua_pushlstring(L, s, len);
            lua_setfield(L, -2, string_fields[i]);
        }
        lua_pushlstring(L, s, len); /* the bytes as a key too */
        lua_pushboolean(L, 1);
        lua_settable(L, -3);
        lua_pushstring(L, modes[m]);
        call(L, core, "check", 2, 1);
        lua_settop(L, top);
    }
}

static void fuzz_request_strings(lua_State *L, int core, const char *s, size_t len)
{
    int top = lua_gettop(L);
    /* search filters */
    lua_pushliteral(L, "search");
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "keyword");
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "token");
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "user_agent");
    lua_pushinteger(L, (lua_Integer)len + 1);
    lua_setfield(L, -2, "user_id");
    call(L, core, "request", 3, 0);
    lua_settop(L, top);
    /* a create body carrying the bytes in every string field */
    lua_pushliteral(L, "create");
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 4);
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "name");
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "model_limits");
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "allow_ips");
    lua_pushlstring(L, s, len);
    lua_setfield(L, -2, "group");
    lua_setfield(L, -2, "fields");
    call(L, core, "request", 2, 0);
    lua_settop(L, top);
}

/* The body as a fields table: whatever JSON decodes to goes through check and request. */
static void fuzz_structured(lua_State *L, int core, const char *body, size_t len)
{
    char err[CK_ERRLEN];
    int doc, top = lua_gettop(L);
    size_t m;
    if (!ck_json_decode(L, body, len, 0, err, sizeof err))
        return;
    doc = lua_gettop(L);
    if (lua_istable(L, doc)) {
        for (m = 0; m < MODE_COUNT; m++) {
            lua_pushvalue(L, doc);
            lua_pushstring(L, modes[m]);
            call(L, core, "check", 2, 1);
            lua_settop(L, doc);
        }
        lua_pushliteral(L, "update");
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, doc);
        lua_setfield(L, -2, "fields");
        call(L, core, "request", 2, 0);
        lua_settop(L, doc);
        lua_pushliteral(L, "create");
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, doc);
        lua_setfield(L, -2, "fields");
        call(L, core, "request", 2, 0);
        lua_settop(L, doc);
        lua_pushliteral(L, "list");
        lua_pushvalue(L, doc); /* page/page_size of any type */
        call(L, core, "request", 2, 0);
    }
    lua_settop(L, top);
}

int luaopen_cometkey_core(lua_State *L);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L;
    int core, status;
    const char *body;
    size_t len, cut;
    char header[64];

    if (size < 1)
        return 0;
    status = statuses[data[0] % STATUS_COUNT];
    body = (const char *)data + 1;
    len = size - 1;

    L = luaL_newstate();
    must(L != NULL);
    luaopen_cometkey_core(L);
    core = lua_gettop(L);

    /* a header value from the body's first bytes (up to a NUL or 63 bytes) */
    for (cut = 0; cut < len && cut < sizeof header - 1 && body[cut] != '\0'; cut++)
        header[cut] = body[cut];
    header[cut] = '\0';

    fuzz_response(L, core, status, body, len, header);
    fuzz_check_strings(L, core, body, len);
    fuzz_request_strings(L, core, body, len);
    fuzz_structured(L, core, body, len);

    lua_close(L);
    return 0;
}
