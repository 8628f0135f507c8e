/*
 * test_oom.c - cometkey.core under memory exhaustion. Each scenario calls the
 * core (check, request, response, json_decode, json_encode, allowlist_*,
 * secret) in a Lua 5.4 state whose allocations fail after N successful ones
 * (every later one fails too; then again with only that one failing, which
 * shows a failure misreported as a normal answer), for N = 0, 1, 2, ... until
 * the call no longer meets a failure. Every run must
 * either give exactly the result of an unconstrained run or raise a memory
 * error (never a wrong answer, such as a decode failure), and leave no C
 * memory behind: the src/ mallocs (redirected here with ld --wrap) and
 * jansson's (json_set_alloc_funcs) are counted and must return to their level
 * after a full collection, and to zero after lua_close.
 * jansson's parser cannot take a failed allocation part-way through a token
 * (akheron/jansson#362: lex_save drops it and assert(c == d) aborts), so
 * inside json_loadb (wrapped too) only the first allocation may fail; that is
 * the NULL-return path ck_json_decode handles. Everything else may fail.
 * Prints "oom: N passed, N failed"; --quick (under valgrind) tries every 7th N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_cometkey_core(lua_State *L);

/* ------------------------------------------------------------ failing allocators */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
json_t *__real_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error);
json_t *__wrap_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error);

static long budget = -1; /* allocations left before all fail; -1: no limit */
static int persistent;   /* 1: every allocation after the first refused one fails too */
static int refused;      /* an allocation was refused since the last reset */
static long live;        /* blocks from src/ and jansson not yet freed */
static int in_loadb;     /* allocations made so far inside json_loadb, plus 1; 0 outside */

static int take(void)
{
    if (budget < 0)
        return 1;
    if (budget == 0) {
        refused = 1;
        if (!persistent)
            budget = -1;
        return 0;
    }
    budget--;
    return 1;
}

/* malloc and friends as called from src/ (and only from there: --wrap). */
void *__wrap_malloc(size_t n)
{
    void *p = take() ? __real_malloc(n) : NULL;
    if (p != NULL)
        live++;
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    void *p = take() ? __real_calloc(n, size) : NULL;
    if (p != NULL)
        live++;
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    void *q = take() ? __real_realloc(p, n) : NULL;
    if (q != NULL && p == NULL)
        live++;
    return q;
}

void __wrap_free(void *p)
{
    if (p != NULL)
        live--;
    __real_free(p);
}

static void *json_malloc(size_t n)
{
    void *p;
    if (in_loadb > 0 && in_loadb++ > 1) { /* not the first one inside json_loadb */
        p = __real_malloc(n);
        if (p != NULL)
            live++;
        return p;
    }
    return __wrap_malloc(n);
}

json_t *__wrap_json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error)
{
    json_t *json;
    in_loadb = 1;
    json = __real_json_loadb(buffer, buflen, flags, error);
    in_loadb = 0;
    return json;
}

static void json_free(void *p)
{
    __wrap_free(p);
}

/* Lua's allocator: shrinking and freeing never fail (Lua relies on that). */
static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        __real_free(ptr);
        return NULL;
    }
    if ((ptr == NULL || nsize > osize) && !take())
        return NULL;
    return __real_realloc(ptr, nsize);
}

/* ------------------------------------------------------------ scenarios */

/* Lua code that turns the results of a call into one comparable string. */
static const char digest_src[] =
    "local function d(v, out)\n"
    "  local t = type(v)\n"
    "  if t == 'table' then\n"
    "    local keys = {}\n"
    "    for k in pairs(v) do keys[#keys + 1] = k end\n"
    "    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "    out[#out + 1] = '{'\n"
    "    for _, k in ipairs(keys) do\n"
    "      d(k, out); out[#out + 1] = '='; d(v[k], out); out[#out + 1] = ','\n"
    "    end\n"
    "    out[#out + 1] = '}'\n"
    "  elseif t == 'string' then out[#out + 1] = string.format('%q', v)\n"
    "  elseif t == 'number' then out[#out + 1] = math.type(v) .. ':' .. tostring(v)\n"
    "  elseif t == 'userdata' then out[#out + 1] = 'userdata'\n"
    "  else out[#out + 1] = tostring(v) end\n"
    "end\n"
    "return function(...)\n"
    "  local out = {}\n"
    "  for i = 1, select('#', ...) do d((select(i, ...)), out); out[#out + 1] = ';' end\n"
    "  return table.concat(out)\n"
    "end\n";

typedef struct scenario {
    const char *name;
    const char *body; /* body of a function(core) returning what to compare */
} scenario;

static const scenario scenarios[] = {
    {"check update",
     "return core.check{ id = 12, name = 'ok name', status = 'disabled', expired_time = -1,\n"
     "  remain_quota = 1000, unlimited_quota = false, model_limits_enabled = true,\n"
     "  model_limits = ' gpt-4o, claude-3 ,gpt-4o', allow_ips = '10.0.0.0/8\\n192.168.1.1, ::1',\n"
     "  group = 'default', cross_group_retry = true }"},
    {"check problems",
     "return core.check({ id = 0, nmae = 'x', stauts = 1, name = ('x'):rep(60),\n"
     "  expired_time = 0, remain_quota = -5, model_limits = { 'a b', 3 },\n"
     "  allow_ips = '10.0.0.1:80', group = 'a\\1', [true] = 1, [5] = 2 }, 'create')"},
    {"check replace",
     "return core.check({ id = 3, name = '', expired_time = 1900000000, remain_quota = 0,\n"
     "  unlimited_quota = true, model_limits_enabled = false, model_limits = { 'a', 'b', 'a' },\n"
     "  allow_ips = { '10.1.2.3', ' fe80::1 ', '' }, group = core.null,\n"
     "  cross_group_retry = false }, 'replace')"},
    {"request update",
     "return core.request('update', { fields = { id = 9, status = 2, name = 'n',\n"
     "  expired_time = -1, remain_quota = 5, unlimited_quota = false,\n"
     "  model_limits_enabled = false, model_limits = '', allow_ips = core.null, group = '',\n"
     "  cross_group_retry = false } }, { user_agent = 'x/1', user_id = 7 })"},
    {"request search",
     "return core.request('search', { keyword = 'a b&c/\\xe4', token = 'sk-12', page = 2,\n"
     "  page_size = 50 })"},
    {"request others",
     "return core.request('create', { fields = { name = 'new', remain_quota = 1 } }),\n"
     "  core.request('status', { id = 4, status = 1 }), core.request('get', { id = 5 }),\n"
     "  core.request('delete', { id = 6 }), core.request('list')"},
    {"response list",
     "return core.response('list', { status = 200,\n"
     "  headers = { ['content-type'] = 'application/json', ['X-Oneapi-Request-Id'] = 'r1' },\n"
     "  body = '{\"success\":true,\"message\":\"\",\"data\":{\"page\":1,\"page_size\":10,'\n"
     "    .. '\"total\":2,\"items\":[{\"id\":1,\"name\":\"a\",\"remain_quota\":123456789012345,'\n"
     "    .. '\"allow_ips\":null},{\"id\":2,\"name\":\"\\\\u00e9\",\"model_limits\":\"x,y\"}]}}',\n"
     "  request = { method = 'GET', path = '/api/token/' } })"},
    {"response get and status",
     "return core.response('get', { status = 200, body = '{\"success\":true,\"data\":{\"id\":7}}' "
     "}),\n"
     "  core.response('status', { status = 200, body = '{\"success\":true,\"data\":null}' }),\n"
     "  core.response('search', { status = 200, body = '{\"success\":true,\"data\":[]}' })"},
    {"response failures",
     "return core.response('update', { status = 200, headers = { ['x-oneapi-request-id'] = 'q' },\n"
     "    body = '{\"success\":false,\"message\":\"record not found\"}' }),\n"
     "  core.response('get', { status = 429, headers = { ['retry-after'] = ' 3 ' }, body = '' }),\n"
     "  core.response('get', { status = 302, headers = { location = 'http://x/api/token' } }),\n"
     "  core.response('list', { status = 502, headers = { ['content-type'] = 'text/html' },\n"
     "    body = '<html>bad gateway</html>' }),\n"
     "  core.response('get', { status = 200, body = 'not json at all' }),\n"
     "  core.response('get', { status = 200, body = '[1,2]' }),\n"
     "  core.response('delete', { status = 401, body = "
     "'{\"error\":{\"message\":\"no\",\"code\":7}}' })"},
    {"json decode",
     "return core.json_decode('{\"a\":[1,2.5,-3,true,false,null,\"x\\\\u00e9\"],'\n"
     "  .. '\"b\":{\"c\":{\"d\":[[],{}]}},\"n\":9223372036854775807,\"e\":\"\"}'),\n"
     "  core.json_decode('{\"k\":null,\"v\":[null]}', true),\n"
     "  core.json_decode('{\"a\":1,\"a\":2}'), core.json_decode('[1e400]'),\n"
     "  core.json_decode(('['):rep(40) .. (']'):rep(40)), core.json_decode('{\"x\":')"},
    {"json encode",
     "local arr = setmetatable({}, { __jsontype = 'array' })\n"
     "local cyc = {}; cyc.self = cyc\n"
     "return core.json_encode({ id = 1, name = 'n\\xc3\\xa9', f = 0.1, big = 2^60, list = { 1, 2, "
     "3 },\n"
     "  nested = { a = { b = { c = { core.null, false } } } }, empty = {}, arr = arr }),\n"
     "  core.json_encode(cyc), core.json_encode({ [1] = 1, x = 2 }), core.json_encode(0/0)"},
    {"json at the depth limit", "local doc = ('{\"a\":['):rep(16) .. ('1]}'):rep(16)\n"
                                "local v = core.json_decode(doc)\n"
                                "return v, core.json_encode(v)"},
    {"allowlist compile",
     "local list = {}\n"
     "for i = 1, 40 do list[#list + 1] = '10.' .. i .. '.0.0/16' end\n"
     "list[#list + 1] = '2001:db8::/32'; list[#list + 1] = '10.1.0.0/16'\n"
     "local m = core.allowlist_compile(list)\n"
     "return m:contains('10.7.1.1'), m:contains('11.0.0.1'), m:contains('2001:db8::5'),\n"
     "  m:count(), tostring(m), core.allowlist_compile('bad entry')"},
    {"allowlist parse and format",
     "return core.allowlist_parse('1.2.3.4, 1.2.3.4\\n::ffff:1.2.3.4 fe80::/10'),\n"
     "  core.allowlist_format({ '10.0.0.1', ' 10.0.0.0/8 ' }), core.allowlist_parse({ 'x:1' }),\n"
     "  core.allowlist_format(core.null)"},
    {"secret", "local s = core.secret('sk-secret-token')\n"
               "local shown, revealed = tostring(s), s:reveal()\n"
               "local redacted = s:redact('a sk-secret-token b sk-secret-token c sk-secr...')\n"
               "s:wipe()\n"
               "return shown, revealed, redacted, tostring(s)"},
};

#define SCENARIO_COUNT (sizeof scenarios / sizeof scenarios[0])

/* ------------------------------------------------------------ driver */

static int passed, failed;

static void fail(const char *name, long n, const char *what, const char *detail)
{
    failed++;
    printf("FAIL %s at %ld allocations (%s): %s%s%s\n", name, n,
           persistent ? "all fail after" : "only that one fails", what, detail ? ": " : "",
           detail ? detail : "");
}

/*
 * Calls the scenario function at slot fn in a new thread (so its stack starts
 * small and must grow under the limit); leaves the digest of its results, or
 * the error, at the top and returns the pcall status. Only the call is limited.
 */
static int run_once(lua_State *L, int fn, int digest, long limit)
{
    int base = lua_gettop(L), status, nres;
    lua_State *T = lua_newthread(L);
    lua_pushvalue(L, fn);
    lua_xmove(L, T, 1);
    budget = limit;
    refused = 0;
    status = lua_pcall(T, 0, LUA_MULTRET, 0);
    budget = -1;
    nres = lua_gettop(T);
    luaL_checkstack(L, nres + 1, "results");
    if (status == LUA_OK)
        lua_pushvalue(L, digest);
    lua_xmove(T, L, nres);
    if (status == LUA_OK)
        lua_call(L, nres, 1);
    lua_remove(L, base + 1); /* the thread */
    return status;
}

static int is_memory_error(lua_State *L, int status)
{
    const char *msg;
    if (status == LUA_ERRMEM)
        return 1;
    msg = lua_tostring(L, -1);
    return status == LUA_ERRRUN && msg != NULL &&
           (strstr(msg, "memory") != NULL || strstr(msg, "stack overflow") != NULL);
}

static void run_scenario(const scenario *sc, long stride)
{
    lua_State *L = lua_newstate(lua_alloc, NULL);
    int fn, digest, status;
    long n, before;
    const char *expected;

    luaL_openlibs(L);
    luaL_requiref(L, "cometkey.core", luaopen_cometkey_core, 0);
    if (luaL_loadstring(L, digest_src) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fail(sc->name, -1, "digest", lua_tostring(L, -1));
        lua_close(L);
        return;
    }
    digest = lua_gettop(L);
    lua_pushfstring(L, "local core = ...\nreturn function()\n%s\nend", sc->body);
    if (luaL_loadstring(L, lua_tostring(L, -1)) != LUA_OK) {
        fail(sc->name, -1, "load", lua_tostring(L, -1));
        lua_close(L);
        return;
    }
    lua_remove(L, -2);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    fn = lua_gettop(L);

    /* The reference run, twice: the first creates what is made once (metatables). */
    run_once(L, fn, digest, -1);
    lua_settop(L, fn);
    if (run_once(L, fn, digest, -1) != LUA_OK) {
        fail(sc->name, -1, "reference run raised", lua_tostring(L, -1));
        lua_close(L);
        return;
    }
    expected = lua_tostring(L, -1); /* stays at slot fn + 1 */
    lua_gc(L, LUA_GCCOLLECT, 0);
    before = live;

    for (n = 0;; n += stride) {
        status = run_once(L, fn, digest, n);
        if (status == LUA_OK) {
            if (strcmp(lua_tostring(L, -1), expected) != 0)
                fail(sc->name, n, "a result differs from the reference", lua_tostring(L, -1));
            else
                passed++;
        } else if (!is_memory_error(L, status)) {
            fail(sc->name, n, "raised something other than a memory error", lua_tostring(L, -1));
        } else {
            passed++;
        }
        lua_settop(L, fn + 1);
        lua_gc(L, LUA_GCCOLLECT, 0);
        lua_gc(L, LUA_GCCOLLECT, 0);
        if (live != before) {
            char detail[64];
            snprintf(detail, sizeof detail, "%ld blocks instead of %ld", live, before);
            fail(sc->name, n, "C memory leaked", detail);
            before = live;
        }
        if (status == LUA_OK && !refused)
            break;
        if (n > 1000000) {
            fail(sc->name, n, "never completed", NULL);
            break;
        }
    }
    lua_close(L);
    if (live != 0) {
        fail(sc->name, n, "C memory left after lua_close", NULL);
        live = 0;
    }
}

int main(int argc, char **argv)
{
    long stride = (argc > 1 && strcmp(argv[1], "--quick") == 0) ? 7 : 1;
    size_t i;

    json_set_alloc_funcs(json_malloc, json_free);
    for (persistent = 1; persistent >= 0; persistent--)
        for (i = 0; i < SCENARIO_COUNT; i++)
            run_scenario(&scenarios[i], stride);
    printf("oom: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
