/*
 * ck_validate.c - core.check(fields [, mode]): the field rules the client
 * enforces before anything is sent (the server enforces fewer, or none) and
 * the normalised form of every field. All problems are collected, in the
 * canonical field order; a bad value never raises.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ck_schema.h"
#include "ck_utf8.h"
#include "ck_util.h"
#include "ck_allowlist.h"

enum check_mode { MODE_UPDATE, MODE_CREATE, MODE_REPLACE, MODE_EXPECT };
static const char *const mode_names[] = {"update", "create", "replace", "expect", NULL};

/* The canonical field order: problems are reported in it. */
enum field_id {
    F_ID,
    F_NAME,
    F_STATUS,
    F_EXPIRED_TIME,
    F_REMAIN_QUOTA,
    F_REMAIN_QUOTA_USD, /* client-side only: converted to remain_quota before sending */
    F_UNLIMITED_QUOTA,
    F_MODEL_LIMITS_ENABLED,
    F_MODEL_LIMITS,
    F_ALLOW_IPS,
    F_GROUP,
    F_CROSS_GROUP_RETRY,
    F_COUNT
};

/* Field names: id and status, and the nine editable ones from the schema. */
static const char *field_name(int f)
{
    switch ((enum field_id)f) {
    case F_ID:
        return "id";
    case F_STATUS:
        return "status";
    case F_NAME:
        return ck_fields[CK_F_NAME].name;
    case F_EXPIRED_TIME:
        return ck_fields[CK_F_EXPIRED_TIME].name;
    case F_REMAIN_QUOTA:
        return ck_fields[CK_F_REMAIN_QUOTA].name;
    case F_REMAIN_QUOTA_USD:
        return "remain_quota_usd";
    case F_UNLIMITED_QUOTA:
        return ck_fields[CK_F_UNLIMITED_QUOTA].name;
    case F_MODEL_LIMITS_ENABLED:
        return ck_fields[CK_F_MODEL_LIMITS_ENABLED].name;
    case F_MODEL_LIMITS:
        return ck_fields[CK_F_MODEL_LIMITS].name;
    case F_ALLOW_IPS:
        return ck_fields[CK_F_ALLOW_IPS].name;
    case F_GROUP:
        return ck_fields[CK_F_GROUP].name;
    case F_CROSS_GROUP_RETRY:
        return ck_fields[CK_F_CROSS_GROUP_RETRY].name;
    case F_COUNT:
        break;
    }
    return "?"; /* not reached */
}

/* "1-4 or one of \"enabled\", ..." from the schema's status names. */
static const char *status_rule(char *buf, size_t size)
{
    size_t n;
    int i;
    snprintf(buf, size, "%d-%d or one of ", CK_STATUS_MIN, CK_STATUS_MAX);
    for (i = 0; i < CK_STATUS_COUNT; i++) {
        n = strlen(buf);
        snprintf(buf + n, size - n, "%s\"%s\"", i == 0 ? "" : ", ", ck_status_names[i]);
    }
    return buf;
}

#define GOT_LEN 96      /* room for a described value: (got ...) */
#define QUOTE_LEN 40    /* bytes of a string value shown in a message */
#define SUGGEST_MAX 2   /* edit distance up to which an unknown field gets a suggestion */
#define KEY_SCAN_MAX 32 /* longer unknown keys get no suggestion */
#define STACK_NEEDED 32 /* slots check may use at once */

typedef struct checker {
    lua_State *L;
    int fields;   /* the caller's table */
    int out;      /* the normalised table */
    int problems; /* array of {field, message} */
    int count;    /* problems so far */
    int mode;
} checker;

/* ------------------------------------------------------------ messages */

/* Appends the problem table at the top to the list, made at the first problem. */
static void add_problem(checker *c)
{
    if (c->count == 0) {
        lua_newtable(c->L);
        lua_replace(c->L, c->problems); /* the slot held nil until now */
    }
    lua_rawseti(c->L, c->problems, ++c->count);
}

/* Appends {field = field, message = "field: <fmt>"}. */
static void problem(checker *c, const char *field, const char *fmt, ...)
{
    lua_State *L = c->L;
    va_list ap;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, field);
    lua_setfield(L, -2, "field");
    lua_pushstring(L, field);
    lua_pushliteral(L, ": ");
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 3);
    lua_setfield(L, -2, "message");
    add_problem(c);
}

/* Writes s as a double-quoted, printable, cut-short form into buf. */
static const char *quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t i = 0, o = 0;
    buf[o++] = '"';
    while (i < len) {
        const unsigned char *p = (const unsigned char *)s + i;
        size_t n = *p < 0x80 ? 1 : ck_utf8_seqlen(p, len - i);
        if (o + (n ? n : 1) + 5 > size || o > QUOTE_LEN) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\'))) {
            buf[o++] = '?'; /* unprintable, invalid or a quote character */
            i++;
        } else {
            memcpy(buf + o, p, n);
            o += n;
            i += n;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static void format_number(lua_State *L, int idx, char *buf, size_t size)
{
    lua_Number v;
#if CK_HAVE_INTEGERS
    if (lua_isinteger(L, idx)) {
        snprintf(buf, size, "%lld", (long long)lua_tointeger(L, idx));
        return;
    }
#endif
    v = lua_tonumber(L, idx);
    snprintf(buf, size, "%.15g", (double)v);
    if (strtod(buf, NULL) != (double)v)
        snprintf(buf, size, "%.17g", (double)v);
}

/* Describes the value at idx for "(got ...)": numbers and strings shown, others named. */
static const char *got(lua_State *L, int idx, char *buf, size_t size)
{
    size_t len;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return "nil";
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? "true" : "false";
    case LUA_TNUMBER:
        format_number(L, idx, buf, size);
        return buf;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        return quote(s, len, buf, size);
    case LUA_TLIGHTUSERDATA:
        return lua_touserdata(L, idx) == NULL ? "null" : "a light userdata";
    case LUA_TTABLE:
        return "a table";
    case LUA_TFUNCTION:
        return "a function";
    case LUA_TTHREAD:
        return "a coroutine";
    default:
        return "a userdata";
    }
}

/* Records "must be <what>" for a value of the wrong type, naming null explicitly. */
static void wrong_type(checker *c, int f, int idx, const char *what)
{
    char buf[GOT_LEN];
    if (ck_isnull(c->L, idx))
        problem(c, field_name(f), "must be %s (null is not allowed)", what);
    else
        problem(c, field_name(f), "must be %s (got %s)", what, got(c->L, idx, buf, sizeof buf));
}

/* Stores the value at the top of the stack as the normalised field f (pops it). */
static void keep(checker *c, int f)
{
    lua_setfield(c->L, c->out, field_name(f));
}

static void keep_integer(checker *c, int f, long long v)
{
    if (ck_pushinteger64(c->L, v))
        keep(c, f);
}

/* ------------------------------------------------------------ value helpers */

/* A finite number beyond 2^53: integral, but not exact as a Lua 5.1 number or a float. */
static int beyond_exact(lua_Number n)
{
    return n - n == 0 &&
           (n > (lua_Number)CK_MAX_SAFE_DOUBLE_INT || n < -(lua_Number)CK_MAX_SAFE_DOUBLE_INT);
}

/* Reads an exact integer into *out; records a problem (and returns 0) otherwise. */
static int want_integer(checker *c, int f, int idx, const char *what, long long *out)
{
    char buf[GOT_LEN];
    lua_State *L = c->L;
    if (ck_tointeger64(L, idx, out))
        return 1;
    if (lua_type(L, idx) == LUA_TNUMBER && beyond_exact(lua_tonumber(L, idx)))
        problem(c, field_name(f),
                "must be %s (got %s, a number beyond 2^53 that this Lua cannot hold exactly)", what,
                got(L, idx, buf, sizeof buf));
    else
        wrong_type(c, f, idx, what);
    return 0;
}

static int is_blank(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int is_control(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f;
}

/* Offset of the first control character in s, or len when there is none. */
static size_t control_at(const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len && !is_control((unsigned char)s[i]); i++)
        ;
    return i;
}

/* 1 when the table at idx is a sequence 1..n and nothing else. */
static int is_array(lua_State *L, int idx)
{
    size_t n, count = 0;
    idx = ck_absindex(L, idx);
    n = ck_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        long long k;
        lua_pop(L, 1);
        if (!ck_tointeger64(L, -1, &k) || k < 1 || (unsigned long long)k > n) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    return count == n;
}

/* ------------------------------------------------------------ one rule per field */

static void check_id(checker *c, int idx)
{
    long long id;
    if (c->mode == MODE_CREATE) {
        problem(c, "id", "not allowed when creating a key (the server assigns ids)");
        return;
    }
    if (c->mode == MODE_EXPECT) {
        problem(c, "id",
                "not allowed in expect (it compares the stored fields of the key named "
                "by the update)");
        return;
    }
    if (!want_integer(c, F_ID, idx, "a positive integer", &id))
        return;
    if (id < 1) {
        char buf[GOT_LEN];
        problem(c, "id", "must be a positive integer (got %s)", got(c->L, idx, buf, sizeof buf));
        return;
    }
    keep_integer(c, F_ID, id);
}

static void check_name(checker *c, int idx)
{
    char buf[48];
    size_t len, bad;
    const char *s;
    if (lua_type(c->L, idx) != LUA_TSTRING) {
        wrong_type(c, F_NAME, idx, "a string");
        return;
    }
    s = lua_tolstring(c->L, idx, &len);
    bad = ck_utf8_invalid_at(s, len);
    if (bad < len) {
        snprintf(buf, sizeof buf, "%lu", (unsigned long)bad);
        problem(c, "name", "must be valid UTF-8 (invalid byte at offset %s)", buf);
    } else if (memchr(s, '\0', len) != NULL) {
        problem(c, "name", "must not contain NUL bytes");
    } else if ((bad = control_at(s, len)) < len) {
        snprintf(buf, sizeof buf, "byte 0x%02x at offset %lu", (unsigned char)s[bad],
                 (unsigned long)bad);
        problem(c, "name", "must not contain control characters (%s)", buf);
    } else if (len > CK_NAME_MAX_BYTES) {
        snprintf(buf, sizeof buf, "%lu", (unsigned long)len);
        problem(c, "name", "must be at most %d bytes (got %s)", CK_NAME_MAX_BYTES, buf);
    } else if (len == 0 && c->mode == MODE_CREATE) {
        problem(c, "name", "must not be empty when creating a key");
    } else {
        lua_pushvalue(c->L, idx);
        keep(c, F_NAME);
    }
}

static void check_status(checker *c, int idx)
{
    char rule[80];
    const char *what = status_rule(rule, sizeof rule);
    char buf[GOT_LEN];
    long long v;
    int i;
    lua_State *L = c->L;
    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        for (i = 0; i < CK_STATUS_COUNT; i++) {
            if (strcmp(s, ck_status_names[i]) == 0 && strlen(s) == ck_rawlen(L, idx)) {
                keep_integer(c, F_STATUS, i + 1);
                return;
            }
        }
        problem(c, "status", "must be %s (got %s)", what, got(L, idx, buf, sizeof buf));
        return;
    }
    if (lua_type(L, idx) == LUA_TNUMBER && ck_tointeger64(L, idx, &v) && v >= CK_STATUS_MIN &&
        v <= CK_STATUS_MAX) {
        keep_integer(c, F_STATUS, v);
        return;
    }
    wrong_type(c, F_STATUS, idx, what);
}

static void check_expired_time(checker *c, int idx)
{
    long long v;
    char buf[32];
    if (!want_integer(c, F_EXPIRED_TIME, idx, "an integer: -1 (never) or a Unix time in seconds",
                      &v))
        return;
    if (c->mode != MODE_EXPECT && v == 0) {
        problem(c, "expired_time",
                "0 is refused: the server takes it as \"already expired\" (the "
                "key stops working at once); use -1 for never, or a Unix "
                "time in seconds");
        return;
    }
    if (c->mode != MODE_EXPECT && v < -1) {
        snprintf(buf, sizeof buf, "%lld", v);
        problem(c, "expired_time", "must be -1 (never) or a positive Unix time in seconds (got %s)",
                buf);
        return;
    }
    keep_integer(c, F_EXPIRED_TIME, v);
}

static void check_remain_quota(checker *c, int idx)
{
    long long v;
    char buf[32], max[32];
    int unlimited;
    lua_pushliteral(c->L, "unlimited_quota");
    lua_rawget(c->L, c->fields);
    unlimited = lua_type(c->L, -1) == LUA_TBOOLEAN && lua_toboolean(c->L, -1);
    lua_pop(c->L, 1);
    if (!want_integer(c, F_REMAIN_QUOTA, idx, "an integer", &v))
        return;
    if (!unlimited && c->mode != MODE_EXPECT && (v < 0 || v > CK_QUOTA_MAX)) {
        snprintf(buf, sizeof buf, "%lld", v);
        snprintf(max, sizeof max, "%lld", CK_QUOTA_MAX);
        problem(c, "remain_quota",
                "must be between 0 and %s unless unlimited_quota is true (got %s)", max, buf);
        return;
    }
    keep_integer(c, F_REMAIN_QUOTA, v);
}

/*
 * remain_quota_usd: US dollars, converted by the client with the server's
 * quota_per_unit (GET /api/status). The server's maximum, 1e9 x quota_per_unit
 * units, is 1e9 dollars whatever quota_per_unit is, so it is checked here.
 */
static void check_remain_quota_usd(checker *c, int idx)
{
    lua_State *L = c->L;
    lua_Number v;
    int unlimited;
    char buf[GOT_LEN];
    if (c->mode == MODE_EXPECT) {
        problem(c, "remain_quota_usd", "cannot be expected (compare remain_quota, in quota units)");
        return;
    }
    lua_pushliteral(L, "remain_quota");
    lua_rawget(L, c->fields);
    if (!lua_isnil(L, -1)) {
        lua_pop(L, 1);
        problem(c, "remain_quota_usd",
                "give remain_quota (quota units) or remain_quota_usd (US dollars), not both");
        return;
    }
    lua_pop(L, 1);
    if (lua_type(L, idx) != LUA_TNUMBER) {
        wrong_type(c, F_REMAIN_QUOTA_USD, idx, "a number of US dollars");
        return;
    }
    v = lua_tonumber(L, idx);
    lua_pushliteral(L, "unlimited_quota");
    lua_rawget(L, c->fields);
    unlimited = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (v != v || v - v != 0 || v < 0 || (!unlimited && v > 1e9)) {
        problem(c, "remain_quota_usd",
                "must be a finite number of US dollars from 0 to 1e9 (the server's maximum is "
                "1e9 x quota_per_unit units) (got %s)",
                got(L, idx, buf, sizeof buf));
        return;
    }
    lua_pushvalue(L, idx);
    keep(c, F_REMAIN_QUOTA_USD);
}

static void check_boolean(checker *c, int f, int idx)
{
    if (lua_type(c->L, idx) != LUA_TBOOLEAN) {
        wrong_type(c, f, idx, "a boolean");
        return;
    }
    lua_pushvalue(c->L, idx);
    keep(c, f);
}

/*
 * One model id from a string or an array item: trimmed of blanks, then it
 * must be non-empty, free of blanks, control characters and commas, and valid
 * UTF-8. Good entries are appended to list (first occurrence kept).
 */
static int model_entry(checker *c, int list, int seen, int *n, int index, const char *s, size_t len,
                       int from_array)
{
    lua_State *L = c->L;
    char buf[GOT_LEN];
    size_t i;
    while (len > 0 && is_blank((unsigned char)s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_blank((unsigned char)s[len - 1]))
        len--;
    if (len == 0) {
        problem(c, "model_limits", "entry %d is empty%s", index,
                from_array ? "" : " (model ids are separated by single commas)");
        return 0;
    }
    if (from_array && memchr(s, ',', len) != NULL) {
        problem(c, "model_limits",
                "entry %d (%s) must not contain commas: give one model id per "
                "array item",
                index, quote(s, len, buf, sizeof buf));
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (is_blank((unsigned char)s[i]) || is_control((unsigned char)s[i])) {
            problem(c, "model_limits",
                    "entry %d (%s) must not contain blanks or control characters", index,
                    quote(s, len, buf, sizeof buf));
            return 0;
        }
    }
    if (ck_utf8_invalid_at(s, len) < len) {
        problem(c, "model_limits", "entry %d (%s) must be valid UTF-8", index,
                quote(s, len, buf, sizeof buf));
        return 0;
    }
    lua_pushlstring(L, s, len);
    lua_pushvalue(L, -1);
    lua_rawget(L, seen);
    if (!lua_isnil(L, -1)) {
        lua_pop(L, 2); /* a duplicate: the first one stays */
        return 1;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, seen);
    lua_rawseti(L, list, ++*n);
    return 1;
}

static void check_model_limits(checker *c, int idx)
{
    static const char *const what = "a string of comma-separated model ids or an array of strings";
    lua_State *L = c->L;
    int list, seen, n = 0, ok = 1, i, top = lua_gettop(L);
    luaL_Buffer b;

    lua_newtable(L);
    list = lua_gettop(L);
    lua_newtable(L);
    seen = lua_gettop(L);
    if (ck_isnull(L, idx)) {
        /* JSON null: no models */
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        size_t len, start = 0, pos;
        const char *s = lua_tolstring(L, idx, &len);
        for (pos = 0, i = 1; len > 0 && pos <= len; pos++) {
            if (pos == len || s[pos] == ',') {
                ok &= model_entry(c, list, seen, &n, i++, s + start, pos - start, 0);
                start = pos + 1;
            }
        }
    } else if (lua_type(L, idx) == LUA_TTABLE) {
        int count = (int)ck_rawlen(L, idx);
        if (!is_array(L, idx)) {
            problem(c, "model_limits", "must be %s (got a table with keys other than 1..n)", what);
            ok = 0;
        }
        for (i = 1; ok && i <= count; i++) {
            lua_rawgeti(L, idx, i);
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t len;
                const char *s = lua_tolstring(L, -1, &len);
                ok &= model_entry(c, list, seen, &n, i, s, len, 1);
            } else {
                char buf[GOT_LEN];
                problem(c, "model_limits", "entry %d must be a string (got %s)", i,
                        got(L, -1, buf, sizeof buf));
                ok = 0;
            }
            lua_pop(L, 1);
        }
    } else {
        wrong_type(c, F_MODEL_LIMITS, idx, what);
        ok = 0;
    }
    if (ok) {
        luaL_buffinit(L, &b);
        for (i = 1; i <= n; i++) {
            if (i > 1)
                luaL_addchar(&b, ',');
            lua_rawgeti(L, list, i);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_getfield(L, c->out, "model_limits_enabled");
        if (n == 0 && c->mode != MODE_EXPECT && lua_toboolean(L, -1)) {
            problem(c, "model_limits",
                    "empty while model_limits_enabled is true: that would "
                    "block every model (list the allowed models, or set "
                    "model_limits_enabled = false)");
        } else {
            lua_pop(L, 1);
            keep(c, F_MODEL_LIMITS);
        }
    }
    lua_settop(L, top);
}

static void check_allow_ips(checker *c, int idx)
{
    char err[CK_ERRLEN];
    int t = lua_type(c->L, idx);
    if (ck_isnull(c->L, idx)) {
        lua_pushliteral(c->L, "");
        keep(c, F_ALLOW_IPS);
    } else if (t != LUA_TSTRING && t != LUA_TTABLE) {
        wrong_type(c, F_ALLOW_IPS, idx,
                   "a string (entries separated by newlines) or an array of strings");
    } else if (ck_allowlist_normalize(c->L, idx, err, sizeof err)) {
        keep(c, F_ALLOW_IPS);
    } else {
        err[sizeof err - 1] = '\0';
        problem(c, "allow_ips", "%s", err);
    }
}

static void check_group(checker *c, int idx)
{
    char buf[48];
    size_t len, i, bad;
    const char *s;
    if (ck_isnull(c->L, idx)) {
        lua_pushliteral(c->L, "");
        keep(c, F_GROUP);
        return;
    }
    if (lua_type(c->L, idx) != LUA_TSTRING) {
        wrong_type(c, F_GROUP, idx, "a string");
        return;
    }
    s = lua_tolstring(c->L, idx, &len);
    for (i = 0; i < len; i++) {
        if (is_control((unsigned char)s[i])) {
            snprintf(buf, sizeof buf, "byte 0x%02x at offset %lu", (unsigned char)s[i],
                     (unsigned long)i);
            problem(c, "group", "must not contain control characters (%s)", buf);
            return;
        }
    }
    bad = ck_utf8_invalid_at(s, len);
    if (bad < len) {
        snprintf(buf, sizeof buf, "%lu", (unsigned long)bad);
        problem(c, "group", "must be valid UTF-8 (invalid byte at offset %s)", buf);
        return;
    }
    lua_pushvalue(c->L, idx);
    keep(c, F_GROUP);
}

/* A field that is absent: required or not, depending on the mode. */
static void check_absent(checker *c, int f)
{
    if (f == F_ID && (c->mode == MODE_UPDATE || c->mode == MODE_REPLACE))
        problem(c, "id", "required: the positive integer id of the key to update");
    else if (f == F_NAME && c->mode == MODE_CREATE)
        problem(c, "name", "required when creating a key (a non-empty string)");
    else if (c->mode == MODE_REPLACE && f == F_REMAIN_QUOTA) {
        lua_pushliteral(c->L, "remain_quota_usd"); /* either one of them */
        lua_rawget(c->L, c->fields);
        if (lua_isnil(c->L, -1))
            problem(c, "remain_quota",
                    "required in replace mode (or remain_quota_usd): all nine editable fields "
                    "must be given (the server resets an omitted one)");
        lua_pop(c->L, 1);
    } else if (c->mode == MODE_REPLACE && f != F_ID && f != F_STATUS && f != F_REMAIN_QUOTA_USD)
        problem(c, field_name(f),
                "required in replace mode: all nine editable fields must be "
                "given (the server resets an omitted one)");
}

static void check_field(checker *c, int f, int idx)
{
    if (lua_isnil(c->L, idx)) {
        check_absent(c, f);
        return;
    }
    switch (f) {
    case F_ID:
        check_id(c, idx);
        break;
    case F_NAME:
        check_name(c, idx);
        break;
    case F_STATUS:
        check_status(c, idx);
        break;
    case F_EXPIRED_TIME:
        check_expired_time(c, idx);
        break;
    case F_REMAIN_QUOTA:
        check_remain_quota(c, idx);
        break;
    case F_REMAIN_QUOTA_USD:
        check_remain_quota_usd(c, idx);
        break;
    case F_MODEL_LIMITS:
        check_model_limits(c, idx);
        break;
    case F_ALLOW_IPS:
        check_allow_ips(c, idx);
        break;
    case F_GROUP:
        check_group(c, idx);
        break;
    default: /* unlimited_quota, model_limits_enabled, cross_group_retry */
        check_boolean(c, f, idx);
        break;
    }
}

/* ------------------------------------------------------------ unknown fields */

/* Optimal string alignment distance (edits, adjacent swaps count as one). */
static int edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    int d[KEY_SCAN_MAX + 1][KEY_SCAN_MAX + 1];
    size_t i, j;
    for (i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (i = 1; i <= la; i++) {
        for (j = 1; j <= lb; j++) {
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The known field closest to s, or NULL when none is within SUGGEST_MAX edits. */
static const char *suggestion(const char *s, size_t len)
{
    const char *best = NULL;
    int best_d = SUGGEST_MAX + 1, f;
    if (len > KEY_SCAN_MAX)
        return NULL;
    for (f = 0; f < F_COUNT; f++) {
        size_t lf = strlen(field_name(f));
        int d;
        if (lf > KEY_SCAN_MAX || (lf > len ? lf - len : len - lf) > SUGGEST_MAX)
            continue;
        d = edit_distance(s, len, field_name(f), lf);
        if (d < best_d && (size_t)d < lf) {
            best_d = d;
            best = field_name(f);
        }
    }
    return best;
}

static int known_field(const char *s, size_t len)
{
    int f;
    for (f = 0; f < F_COUNT; f++)
        if (strlen(field_name(f)) == len && memcmp(field_name(f), s, len) == 0)
            return 1;
    return 0;
}

typedef struct unknown_key {
    const char *s;
    size_t len;
    int is_string; /* 0: a non-string key shown as [value] */
} unknown_key;

static int compare_keys(const void *pa, const void *pb)
{
    const unknown_key *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int r = memcmp(a->s, b->s, n);
    if (r != 0)
        return r;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Pushes the name a key is reported under: the string itself, or "[value]". */
static void push_key_name(lua_State *L, int idx)
{
    char buf[GOT_LEN];
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushvalue(L, idx);
        return;
    }
    lua_pushfstring(L, "[%s]", got(L, idx, buf, sizeof buf));
}

static void report_unknown(checker *c, const unknown_key *k)
{
    lua_State *L = c->L;
    char shown[GOT_LEN];
    const char *hint = k->is_string ? suggestion(k->s, k->len) : NULL;
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, k->s, k->len);
    lua_setfield(L, -2, "field");
    if (k->is_string) {
        quote(k->s, k->len, shown, sizeof shown);
        /* drop the quotes when the name is printable as it is */
        if (strlen(shown) == k->len + 2 && memcmp(shown + 1, k->s, k->len) == 0) {
            memmove(shown, shown + 1, k->len);
            shown[k->len] = '\0';
        }
    } else {
        snprintf(shown, sizeof shown, "%.*s", (int)k->len, k->s);
    }
    if (hint != NULL)
        lua_pushfstring(L, "%s: unknown field (did you mean %s?)", shown, hint);
    else if (!k->is_string)
        lua_pushfstring(L, "%s: unknown field (field names are strings)", shown);
    else
        lua_pushfstring(L, "%s: unknown field", shown);
    lua_setfield(L, -2, "message");
    add_problem(c);
}

/* 1 when the table at fields has a key that is not a known field name. */
static int has_unknown(lua_State *L, int fields)
{
    lua_pushnil(L);
    while (lua_next(L, fields)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return 1;
        } else {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (!known_field(s, len)) {
                lua_pop(L, 1);
                return 1;
            }
        }
    }
    return 0;
}

static void check_unknown(checker *c)
{
    lua_State *L = c->L;
    int names, n = 0, i, top = lua_gettop(L);
    unknown_key *keys;

    if (!has_unknown(L, c->fields))
        return;      /* the usual case: no table is made */
    lua_newtable(L); /* anchors the reported names while their bytes are in use */
    names = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, c->fields)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if (known_field(s, len))
                continue;
        }
        push_key_name(L, lua_gettop(L));
        lua_pushboolean(L, lua_type(L, -2) == LUA_TSTRING);
        lua_rawseti(L, names, ++n);
        lua_rawseti(L, names, ++n);
    }
    if (n == 0) {
        lua_settop(L, top);
        return;
    }
    n /= 2;
    keys = (unknown_key *)ck_newuserdata(L, (size_t)n * sizeof *keys);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, names, 2 * i + 1);
        keys[i].is_string = lua_toboolean(L, -1);
        lua_rawgeti(L, names, 2 * i + 2);
        keys[i].s = lua_tolstring(L, -1, &keys[i].len); /* anchored in names */
        lua_pop(L, 2);
    }
    qsort(keys, (size_t)n, sizeof *keys, compare_keys);
    for (i = 0; i < n; i++)
        report_unknown(c, &keys[i]);
    lua_settop(L, top);
}

/* ------------------------------------------------------------ across fields */

/*
 * cross_group_retry = true is only kept for group "auto": 2026-08+ servers store
 * false for any other group (create could not find its key by its settings).
 * On an update that does not name group the client checks the stored group.
 */
static void check_cross_group(checker *c)
{
    lua_State *L = c->L;
    int retry, has_group, is_auto = 0;
    if (c->mode == MODE_EXPECT)
        return;
    lua_getfield(L, c->out, "cross_group_retry");
    retry = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!retry)
        return;
    lua_getfield(L, c->out, "group");
    has_group = lua_type(L, -1) == LUA_TSTRING;
    if (has_group) {
        size_t len;
        const char *g = lua_tolstring(L, -1, &len);
        is_auto = len == 4 && memcmp(g, "auto", 4) == 0;
    }
    lua_pop(L, 1);
    if (has_group ? !is_auto : c->mode == MODE_CREATE)
        problem(c, "cross_group_retry",
                "true needs group = \"auto\" (servers from 2026-08 store false for any other "
                "group)");
}

/* ------------------------------------------------------------ core.check */

static int l_check(lua_State *L)
{
    checker c;
    int f;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkstack(L, STACK_NEEDED, "cometkey.core.check");
    c.mode = luaL_checkoption(L, 2, "update", mode_names);
    lua_settop(L, 2);
    c.L = L;
    c.fields = 1;
    c.count = 0;
    lua_createtable(L, 0, 4); /* most updates name a few fields */
    c.out = lua_gettop(L);
    lua_pushnil(L); /* the problems table, made at the first problem */
    c.problems = lua_gettop(L);
    for (f = 0; f < F_COUNT; f++) {
        lua_pushstring(L, field_name(f));
        lua_rawget(L, c.fields);
        check_field(&c, f, lua_gettop(L));
        lua_settop(L, c.problems);
    }
    check_cross_group(&c);
    check_unknown(&c);
    if (c.count > 0) {
        lua_pushnil(L);
        lua_pushvalue(L, c.problems);
        return 2;
    }
    lua_pushvalue(L, c.out);
    return 1;
}

void ck_validate_open(lua_State *L)
{
    lua_pushcfunction(L, l_check);
    lua_setfield(L, -2, "check");
}
