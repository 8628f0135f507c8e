/*
 * ck_codec.c - the sans-I/O wire codec of cometkey.core:
 *   core.request(op, args [, conf])  -> one HTTP request as a table (no I/O)
 *   core.response(op, res [, method, path]) -> value | nil, message, info
 * The request side raises on misuse; the response side never raises for
 * anything the server sent and turns every answer into a value or a one-line
 * message plus an info table (kind, status, message, request_id, ...).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ck_json.h"
#include "ck_schema.h"
#include "ck_util.h"

#ifndef CK_VERSION
#define CK_VERSION "0.1.0"
#endif

#define RETRY_AFTER_DIGITS 9 /* longer Retry-After values are ignored */
#define STACK_NEEDED 48      /* slots the request builder and the mapper may use at once */
#define CODE_MAX 64          /* bytes of a server "code" kept in info.code */

/* Raises "bad argument #arg to 'request' (<op>: <message>)". */
static int misuse(lua_State *L, int arg, const char *op, const char *fmt, ...)
{
    va_list ap;
    lua_pushstring(L, op);
    lua_pushliteral(L, ": ");
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 3);
    return luaL_argerror(L, arg, lua_tostring(L, -1));
}

/* Reads the integer where.key from the table at t; dflt when absent and not required. */
static long long arg_integer(lua_State *L, int t, const char *op, const char *where,
                             const char *key, long long min, long long max, int required,
                             long long dflt)
{
    long long v = 0;
    lua_getfield(L, t, key);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (required)
            misuse(L, 2, op, "%s.%s is required", where, key);
        return dflt;
    }
    if (!ck_tointeger64(L, -1, &v))
        misuse(L, 2, op, "%s.%s must be an exact integer (got %s)", where, key,
               luaL_typename(L, -1));
    if (v < min || v > max) {
        char buf[80];
        snprintf(buf, sizeof buf, "%lld..%lld, got %lld", min, max, v);
        misuse(L, 2, op, "%s.%s must be in %s", where, key, buf);
    }
    lua_pop(L, 1);
    return v;
}

static void set_integer(lua_State *L, int t, const char *key, long long v)
{
    if (!ck_pushinteger64(L, v))
        luaL_error(L, "cometkey: integer %f cannot be represented exactly", (double)v);
    lua_setfield(L, t, key);
}

static void set_string(lua_State *L, int t, const char *key, const char *value)
{
    lua_pushstring(L, value);
    lua_setfield(L, t, key);
}

/* Pushes the value of the string at idx percent-encoded (RFC 3986 unreserved kept). */
static void push_encoded(lua_State *L, int idx)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, len;
    const char *s = lua_tolstring(L, idx, &len); /* anchored below the buffer */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            luaL_addchar(&b, (char)c);
        } else {
            luaL_addchar(&b, '%');
            luaL_addchar(&b, hex[c >> 4]);
            luaL_addchar(&b, hex[c & 15]);
        }
    }
    luaL_pushresult(&b);
}

/* Pushes "[keyword=..&][token=..&]p=<page>&page_size=<size>". */
static void push_page_query(lua_State *L, int args, const char *op, int with_filters)
{
    static const char *const filters[] = {"keyword", "token"};
    long long page, size;
    char buf[64];
    int i, pieces = 0;

    page = arg_integer(L, args, op, "args", "page", 1, 0x7FFFFFFF, 0, 1);
    size = arg_integer(L, args, op, "args", "page_size", 1, CK_PAGE_SIZE_MAX, 0, CK_PAGE_SIZE_MAX);
    for (i = 0; with_filters && i < 2; i++) {
        lua_getfield(L, args, filters[i]);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        if (lua_type(L, -1) != LUA_TSTRING)
            misuse(L, 2, op, "args.%s must be a string (got %s)", filters[i], luaL_typename(L, -1));
        push_encoded(L, lua_gettop(L));
        lua_pushfstring(L, "%s=%s&", filters[i], lua_tostring(L, -1));
        lua_replace(L, -3);
        lua_pop(L, 1);
        pieces++;
    }
    snprintf(buf, sizeof buf, "p=%lld&page_size=%lld", page, size);
    lua_pushstring(L, buf);
    lua_concat(L, pieces + 1);
}

/* Checks one editable field of fields and stores it (or its create default) into body. */
static void put_editable(lua_State *L, int fields, int body, const char *op, const ck_field_def *f,
                         int required)
{
    long long v = 0;
    lua_getfield(L, fields, f->name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (required)
            misuse(L, 2, op,
                   "args.fields.%s is required: a full update sends all nine editable fields "
                   "(the server resets an omitted one)",
                   f->name);
        ck_push_default(L, f, 0); /* create: the server's meaning of "not given" */
        lua_setfield(L, body, f->name);
        return;
    }
    switch (f->kind) {
    case CK_K_STRING:
        /* allow_ips is a Go *string: an update echoes a stored NULL as null. */
        if (required && ck_isnull(L, -1) && f->echo_null)
            break;
        if (lua_type(L, -1) != LUA_TSTRING)
            misuse(L, 2, op, "args.fields.%s must be a string (got %s)", f->name,
                   luaL_typename(L, -1));
        break;
    case CK_K_BOOLEAN:
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            misuse(L, 2, op, "args.fields.%s must be a boolean (got %s)", f->name,
                   luaL_typename(L, -1));
        break;
    case CK_K_EXPIRY:
        /* An update echoes whatever is stored (even 0); new values were validated. */
        if (!ck_tointeger64(L, -1, &v) || (!required && (v == 0 || v < -1)))
            misuse(L, 2, op,
                   "args.fields.%s must be -1 or a positive integer Unix time (0 "
                   "means already expired)",
                   f->name);
        lua_pop(L, 1);
        ck_pushinteger64(L, v);
        break;
    case CK_K_QUOTA:
        if (!ck_tointeger64(L, -1, &v))
            misuse(L, 2, op, "args.fields.%s must be an exact integer", f->name);
        lua_pop(L, 1);
        ck_pushinteger64(L, v);
        break;
    }
    lua_setfield(L, body, f->name);
}

/* Refuses keys of fields the body would not carry (create: the nine; update: + id, status). */
static void refuse_extra_fields(lua_State *L, int fields, const char *op, int with_id_status)
{
    lua_pushnil(L);
    while (lua_next(L, fields)) {
        size_t i, len;
        const char *key;
        int known = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            misuse(L, 2, op, "args.fields has a %s key (field names are strings)",
                   luaL_typename(L, -1));
        key = lua_tolstring(L, -1, &len);
        for (i = 0; i < CK_FIELD_COUNT && !known; i++)
            known = strcmp(key, ck_fields[i].name) == 0 && strlen(key) == len;
        if (with_id_status && (strcmp(key, "id") == 0 || strcmp(key, "status") == 0))
            known = strlen(key) == len;
        if (!known)
            misuse(L, 2, op, "args.fields.%s cannot be sent with %s%s", key, op,
                   with_id_status ? "" : " (the server ignores it: set it with an update)");
    }
}

/* Pushes { ids = { ... } } from args.ids: 1..CK_BATCH_MAX positive integer ids. */
static void push_ids_body(lua_State *L, int args, const char *op)
{
    int i, n;
    long long v = 0;
    lua_getfield(L, args, "ids");
    if (!lua_istable(L, -1))
        misuse(L, 2, op, "args.ids must be an array of ids (got %s)", luaL_typename(L, -1));
    n = (int)ck_rawlen(L, -1);
    if (n < 1 || n > CK_BATCH_MAX)
        misuse(L, 2, op, "args.ids must hold 1 to %d ids (got %d)", CK_BATCH_MAX, n);
    lua_createtable(L, 0, 1);
    lua_createtable(L, n, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -3, i);
        if (!ck_tointeger64(L, -1, &v) || v < 1)
            misuse(L, 2, op, "args.ids[%d] must be a positive integer id", i);
        lua_pop(L, 1);
        ck_pushinteger64(L, v);
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "ids");
    lua_remove(L, -2); /* args.ids */
}

/* Pushes the body table of a create, update or status request. */
static void push_body_table(lua_State *L, int args, const ck_endpoint *ep)
{
    int fields, body;
    size_t i;
    long long v = 0;
    const char *op = ep->name;
    switch (ep->body) {
    case CK_BODY_NONE:
        lua_pushnil(L);
        return;
    case CK_BODY_IDS:
        push_ids_body(L, args, op);
        return;
    case CK_BODY_STATUS:
        lua_createtable(L, 0, 2);
        body = lua_gettop(L);
        set_integer(L, body, "id", arg_integer(L, args, op, "args", "id", 1, CK_ID_MAX, 1, 0));
        set_integer(L, body, "status",
                    arg_integer(L, args, op, "args", "status", CK_STATUS_MIN, CK_STATUS_MAX, 1, 0));
        return;
    case CK_BODY_CREATE:
    case CK_BODY_UPDATE:
        break;
    }
    lua_createtable(L, 0, (int)CK_FIELD_COUNT + 2);
    body = lua_gettop(L);
    lua_getfield(L, args, "fields");
    if (!lua_istable(L, -1))
        misuse(L, 2, op, "args.fields must be a table (got %s)", luaL_typename(L, -1));
    fields = lua_gettop(L);
    refuse_extra_fields(L, fields, op, ep->body == CK_BODY_UPDATE);
    if (ep->body == CK_BODY_UPDATE) {
        v = arg_integer(L, fields, op, "args.fields", "id", 1, CK_ID_MAX, 1, 0);
        set_integer(L, body, "id", v);
        /* Optional: without it the server neither copies a status nor runs its
         * enable guard (a full PUT never writes the body's status). */
        v = arg_integer(L, fields, op, "args.fields", "status", CK_STATUS_MIN, CK_STATUS_MAX, 0, 0);
        if (v != 0)
            set_integer(L, body, "status", v);
    }
    for (i = 0; i < CK_FIELD_COUNT; i++)
        put_editable(L, fields, body, op, &ck_fields[i], ep->body == CK_BODY_UPDATE);
    lua_pop(L, 1);
}

/*
 * Pushes ep's path: the template with "{id}" replaced by id, or, when id is
 * negative, by "<id>" (the form messages show).
 */
static void push_path(lua_State *L, const ck_endpoint *ep, long long id)
{
    const char *mark = strstr(ep->path, "{id}");
    char digits[32];
    if (mark == NULL) {
        lua_pushstring(L, ep->path);
        return;
    }
    if (id < 0)
        strcpy(digits, "<id>");
    else
        snprintf(digits, sizeof digits, "%lld", id);
    lua_pushlstring(L, ep->path, (size_t)(mark - ep->path));
    lua_pushstring(L, digits);
    lua_pushstring(L, mark + 4);
    lua_concat(L, 3);
}

/* Raises unless value (a header value) is free of CR, LF, NUL and other controls. */
static void check_header_value(lua_State *L, const char *what, const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            luaL_argerror(L, 3,
                          lua_pushfstring(L,
                                          "%s: a header value must not contain CR, LF, NUL or "
                                          "other control characters",
                                          what));
    }
}

static void push_headers(lua_State *L, int conf, int has_body)
{
    int headers;
    lua_createtable(L, 0, 5);
    headers = lua_gettop(L);
    set_string(L, headers, "Accept", "application/json");
    set_string(L, headers, "Accept-Language", "en");
    if (has_body)
        set_string(L, headers, "Content-Type", "application/json");
    if (conf != 0)
        lua_getfield(L, conf, "user_agent");
    else
        lua_pushnil(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "cometkey/" CK_VERSION);
    } else if (lua_type(L, -1) != LUA_TSTRING) {
        luaL_argerror(
            L, 3,
            lua_pushfstring(L, "conf.user_agent must be a string (got %s)", luaL_typename(L, -1)));
    } else {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        check_header_value(L, "conf.user_agent", s, len);
    }
    lua_setfield(L, headers, "User-Agent");
    if (conf != 0) {
        long long uid = 0;
        lua_getfield(L, conf, "user_id");
        if (!lua_isnil(L, -1)) {
            char buf[32];
            if (!ck_tointeger64(L, -1, &uid) || uid < 1)
                luaL_argerror(L, 3,
                              "conf.user_id must be a positive integer (the numeric user id)");
            snprintf(buf, sizeof buf, "%lld", uid);
            set_string(L, headers, "New-Api-User", buf);
        }
        lua_pop(L, 1);
    }
}

/* core.request(op, args [, conf]) -> { method, path, query, headers, body } */
static int l_request(lua_State *L)
{
    const ck_endpoint *ep = ck_endpoint_check(L, 1);
    const char *op = ep->name;
    int args, conf = 0, req;
    long long id = 0;
    char err[CK_ERRLEN];

    luaL_checkstack(L, STACK_NEEDED, "cometkey.core.request");
    if ((ep->paging || (ep->body == CK_BODY_NONE && !ep->id)) && lua_isnoneornil(L, 2)) {
        lua_settop(L, 3);
        lua_newtable(L);
        lua_replace(L, 2);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        conf = 3;
    }
    lua_settop(L, 3);
    args = 2;
    lua_createtable(L, 0, 5);
    req = lua_gettop(L);

    if (ep->id)
        id = arg_integer(L, args, op, "args", "id", 1, CK_ID_MAX, 1, 0);
    set_string(L, req, "method", ep->method);
    push_path(L, ep, id);
    lua_setfield(L, req, "path");
    if (ep->paging) {
        push_page_query(L, args, op, ep->filters);
        lua_setfield(L, req, "query");
    } else if (ep->query != NULL) {
        set_string(L, req, "query", ep->query);
    }
    push_body_table(L, args, ep);
    if (!lua_isnil(L, -1)) {
        if (!ck_json_encode(L, lua_gettop(L), err, sizeof err))
            misuse(L, 2, op, "cannot encode the body: %s", err);
        lua_setfield(L, req, "body");
    }
    lua_settop(L, req);
    push_headers(L, conf, ep->body != CK_BODY_NONE);
    lua_setfield(L, req, "headers");
    return 1;
}

/* ------------------------------------------------------------ response */

/* What the mapper knows about one response while it classifies it. */
typedef struct answer {
    lua_State *L;
    const ck_endpoint *ep;
    long long status;
    const char *body;
    size_t body_len;
    int headers;           /* table index, or 0 */
    int method;            /* stack slot of the request's method string, or 0 */
    int path;              /* stack slot of the request's path string, or 0 */
    int doc;               /* decoded body, or 0 when it is not JSON */
    int text;              /* sanitised server text, or 0 */
    int code;              /* server "code", or 0 */
    int html;              /* the body is an HTML page */
    int empty;             /* the body is empty or blank */
    long long retry_after; /* -1: none */
    char json_error[CK_ERRLEN];
} answer;

/*
 * Pushes the value of header name (given in lower case) as a string, or nil.
 * Transports send lower-case names; other cases are found too, and a list of
 * values (a repeated header) gives its first string.
 */
static void push_header_string(answer *a, const char *name)
{
    lua_State *L = a->L;
    if (a->headers == 0) {
        lua_pushnil(L);
        return;
    }
    lua_getfield(L, a->headers, name);
    if (lua_isnil(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, a->headers)) {
            size_t len;
            const char *k;
            if (lua_type(L, -2) == LUA_TSTRING) {
                k = lua_tolstring(L, -2, &len);
                if (ck_ascii_ieq(k, len, name)) {
                    lua_replace(L, -3); /* the value takes the nil's slot */
                    lua_pop(L, 1);      /* the key */
                    break;
                }
            }
            lua_pop(L, 1);
        }
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Retry-After in its numeric (delta-seconds) form only. */
static long long parse_retry_after(const char *s, size_t len)
{
    size_t i = 0, digits = 0;
    long long v = 0;
    while (i < len && is_space(s[i]))
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9' && digits < RETRY_AFTER_DIGITS + 1) {
        v = v * 10 + (s[i++] - '0');
        digits++;
    }
    while (i < len && is_space(s[i]))
        i++;
    if (digits == 0 || digits > RETRY_AFTER_DIGITS || i != len)
        return -1;
    return v;
}

/* Takes the sanitised string at the top as the server text, unless nothing is left of it. */
static void keep_text(answer *a)
{
    if (ck_rawlen(a->L, -1) == 0)
        lua_pop(a->L, 1);
    else
        a->text = lua_gettop(a->L);
}

/* Looks at the body and headers: blank, HTML, JSON (decoded), server text and code. */
static void inspect(answer *a)
{
    lua_State *L = a->L;
    size_t i = 0, len;
    const char *s;
    while (i < a->body_len && is_space(a->body[i]))
        i++;
    a->empty = i == a->body_len;
    push_header_string(a, "content-type");
    s = lua_tolstring(L, -1, &len);
    a->html = (s != NULL && ck_ascii_icontains(s, len, "html")) || (!a->empty && a->body[i] == '<');
    lua_pop(L, 1);

    a->doc = 0;
    a->json_error[0] = '\0';
    if (!a->empty) {
        if (ck_json_decode(L, a->body, a->body_len, CK_JSON_NULL_AS_NIL, a->json_error,
                           sizeof a->json_error))
            a->doc = lua_gettop(L);
        else
            a->json_error[sizeof a->json_error - 1] = '\0';
    }
    a->text = 0;
    a->code = 0;
    if (a->doc != 0 && lua_istable(L, a->doc)) {
        /* {"success":false,"message":...,"code":...} or {"error":{"message":...,"code":...}} */
        int k;
        for (k = 0; k < 2; k++) {
            int from = a->doc;
            if (k == 1) {
                lua_getfield(L, a->doc, "error");
                if (!lua_istable(L, -1)) {
                    lua_pop(L, 1);
                    break;
                }
                from = lua_gettop(L);
            }
            if (a->text == 0) {
                lua_getfield(L, from, "message");
                s = lua_tolstring(L, -1, &len);
                if (lua_type(L, -1) == LUA_TSTRING && len > 0) {
                    ck_push_excerpt(L, s, len, CK_TEXT_MAX);
                    lua_remove(L, -2);
                    keep_text(a);
                } else {
                    lua_pop(L, 1);
                }
            }
            if (a->code == 0) {
                lua_getfield(L, from, "code");
                if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
                    lua_pushvalue(L, -1);
                    s = lua_tolstring(L, -1, &len); /* converts the copy only */
                    if (len > 0) {
                        ck_push_excerpt(L, s, len, CODE_MAX);
                        lua_replace(L, -3);
                        lua_pop(L, 1);
                        a->code = lua_gettop(L);
                    } else {
                        lua_pop(L, 2);
                    }
                } else {
                    lua_pop(L, 1);
                }
            }
        }
    } else if (!a->empty && !a->html && a->doc == 0) {
        /* plain text error bodies are shown as they are (sanitised) */
        ck_push_excerpt(L, a->body, a->body_len, CK_TEXT_MAX);
        keep_text(a);
    }
}

/*
 * Pushes the label of messages: "METHOD path" (sanitised), or the op name.
 * Made only when a message needs it: a success never does.
 */
static void push_label(answer *a)
{
    lua_State *L = a->L;
    size_t len;
    const char *s;
    if (a->method != 0 && a->path != 0)
        lua_pushfstring(L, "%s %s", lua_tostring(L, a->method), lua_tostring(L, a->path));
    else
        lua_pushstring(L, a->ep->name);
    s = lua_tolstring(L, -1, &len);
    ck_push_excerpt(L, s, len, CK_TEXT_MAX);
    lua_remove(L, -2); /* the raw label */
}

/* Returns nil, "cometkey: <label>: <what>", info; what is the string at the top. */
static int fail(answer *a, const char *kind, int retryable)
{
    lua_State *L = a->L;
    int what = lua_gettop(L);
    push_label(a);
    lua_pushnil(L);
    lua_pushfstring(L, "cometkey: %s: %s", lua_tostring(L, what + 1), lua_tostring(L, what));
    lua_remove(L, what + 1); /* the label */
    lua_createtable(L, 0, 8);
    set_string(L, lua_gettop(L), "kind", kind);
    set_integer(L, lua_gettop(L), "status", a->status);
    if (a->text != 0) {
        lua_pushvalue(L, a->text);
        lua_setfield(L, -2, "message");
    }
    if (a->code != 0) {
        lua_pushvalue(L, a->code);
        lua_setfield(L, -2, "code");
    }
    push_header_string(a, "x-oneapi-request-id");
    if (lua_isstring(L, -1)) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        ck_push_excerpt(L, s, len, CK_TEXT_MAX);
        lua_setfield(L, -3, "request_id");
    }
    lua_pop(L, 1);
    lua_pushboolean(L, retryable);
    lua_setfield(L, -2, "retryable");
    if (a->retry_after >= 0) {
        set_integer(L, lua_gettop(L), "retry_after", a->retry_after);
    }
    return 3;
}

/* ", <text>" style description of an error body: ": text", " with an HTML body", ... */
static const char *body_words(answer *a)
{
    if (a->empty)
        return " with an empty body";
    if (a->html)
        return " with an HTML body";
    return "";
}

static const char *text_of(answer *a)
{
    return a->text != 0 ? lua_tostring(a->L, a->text) : "";
}

static int fail_redirect(answer *a)
{
    lua_State *L = a->L;
    push_path(L, a->ep, -1); /* the exact path, "<id>" for the id */
    push_header_string(a, "location");
    if (lua_isstring(L, -1)) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        ck_push_excerpt(L, s, len, CK_TEXT_MAX);
        lua_pushfstring(L,
                        "redirect (HTTP %d to %s) refused: cometkey never follows redirects; "
                        "the exact path is %s — check base_url",
                        (int)a->status, lua_tostring(L, -1), lua_tostring(L, -3));
    } else {
        lua_pushfstring(L,
                        "redirect (HTTP %d, no Location) refused: cometkey never follows "
                        "redirects; the exact path is %s — check base_url",
                        (int)a->status, lua_tostring(L, -2));
    }
    return fail(a, "http", 0);
}

static const char *const auth_texts[] = {
    "Unauthorized, not logged in and no access token provided",
    "Unauthorized, invalid access token",
    "Unauthorized, New-Api-User header not provided",
    "Unauthorized, New-Api-User header format error",
    "Unauthorized, New-Api-User does not match logged in user",
    "User has been banned",
    "Unauthorized, insufficient privileges",
    "Unauthorized, invalid user info",
    "无权进行此操作，未登录且未提供 access token",
    "无权进行此操作，access token 无效",
    "无权进行此操作，未提供 New-Api-User",
    "无权进行此操作，New-Api-User 格式错误",
    "无权进行此操作，New-Api-User 与登录用户不匹配",
    "用户已被封禁",
    "无权进行此操作，权限不足",
    "无权进行此操作，用户信息无效",
    NULL,
};

static int is_auth_text(const char *s)
{
    int i;
    for (i = 0; auth_texts[i] != NULL; i++)
        if (strcmp(s, auth_texts[i]) == 0)
            return 1;
    /* the auth middleware's prefixes, whatever the detail after them */
    return strncmp(s, "Unauthorized, ", 14) == 0 || strncmp(s, "无权进行此操作，", 24) == 0;
}

/* success:false, at any HTTP status: not_found, auth or api. */
static int fail_refused(answer *a)
{
    lua_State *L = a->L;
    const char *text = text_of(a);
    char status[32] = "";
    if (a->status != 200)
        snprintf(status, sizeof status, " (HTTP %d)", (int)a->status);
    if (strcmp(text, "record not found") == 0) {
        lua_pushfstring(L, "key not found%s (record not found)", status);
        return fail(a, "not_found", 0);
    }
    if (is_auth_text(text)) {
        lua_pushfstring(L, "authentication failed%s: %s", status, text);
        return fail(a, "auth", 0);
    }
    if (a->text == 0)
        lua_pushfstring(L, "server refused the request%s (success:false without a message)",
                        status);
    else
        lua_pushfstring(L, "server refused the request%s: %s", status, text);
    return fail(a, "api", 0);
}

/* An HTTP status other than 200 (and not a success:false envelope handled first). */
static int fail_status(answer *a)
{
    lua_State *L = a->L;
    int st = (int)a->status;
    const char *sep = a->text != 0 ? ": " : "";
    if (st == 401 || st == 403) {
        lua_pushfstring(L, "authentication failed (HTTP %d)%s%s%s", st, body_words(a), sep,
                        text_of(a));
        return fail(a, "auth", 0);
    }
    if (st == 429) {
        if (a->retry_after >= 0)
            lua_pushfstring(L, "rate limited (HTTP 429), retry after %d s", (int)a->retry_after);
        else
            lua_pushliteral(L, "rate limited (HTTP 429)");
        return fail(a, "rate_limited", 1);
    }
    if (st == 502 || st == 503 || st == 504) {
        lua_pushfstring(L, "HTTP %d%s%s%s%s", st, body_words(a),
                        a->html ? " (proxy error page)" : "", sep, text_of(a));
        return fail(a, "http", 1);
    }
    if (st == 404) { /* a missing key is success:false "record not found"; this is a wrong route */
        lua_pushfstring(L,
                        "not found (HTTP 404)%s%s%s — no such route on this server; check base_url",
                        body_words(a), sep, text_of(a));
        return fail(a, "http", 0);
    }
    lua_pushfstring(L, "%s (HTTP %d)%s%s%s",
                    st >= 500 && st <= 599 ? "server error" : "unexpected status", st,
                    body_words(a), sep, text_of(a));
    return fail(a, "http", 0);
}

/* ------------------------------------------------------------ success shapes */

enum json_shape { SHAPE_OTHER, SHAPE_OBJECT, SHAPE_ARRAY, SHAPE_EMPTY };

/* Decoded JSON objects and arrays are both tables: tell them apart ({} and [] cannot be). */
static enum json_shape shape_of(lua_State *L, int idx)
{
    idx = ck_absindex(L, idx);
    if (!lua_istable(L, idx))
        return SHAPE_OTHER;
    if (ck_rawlen(L, idx) > 0)
        return SHAPE_ARRAY;
    lua_pushnil(L);
    if (lua_next(L, idx)) {
        lua_pop(L, 2);
        return SHAPE_OBJECT;
    }
    return SHAPE_EMPTY;
}

static int fail_decode(answer *a, const char *fmt, const char *detail)
{
    lua_pushfstring(a->L, fmt, detail);
    return fail(a, "decode", 0);
}

/* Every item of the array at idx must be a record (a JSON object). */
static int records_ok(answer *a, int idx, const char *where)
{
    lua_State *L = a->L;
    int i, n = (int)ck_rawlen(L, idx);
    for (i = 1; i <= n; i++) {
        enum json_shape s;
        lua_rawgeti(L, idx, i);
        s = shape_of(L, -1);
        lua_pop(L, 1);
        if (s != SHAPE_OBJECT && s != SHAPE_EMPTY) {
            lua_pushfstring(L, "unexpected response: %s[%d] is not a key record", where, i);
            fail(a, "decode", 0);
            return 0;
        }
    }
    return 1;
}

/* list and search: {items, total, page, page_size} from a page object (or a bare array). */
static int map_page(answer *a, int data)
{
    static const char *const numbers[] = {"total", "page", "page_size"};
    lua_State *L = a->L;
    enum json_shape s = shape_of(L, data);
    int result, i;
    long long v;

    lua_createtable(L, 0, 4);
    result = lua_gettop(L);
    if (a->ep->bare_array && (s == SHAPE_ARRAY || (s == SHAPE_EMPTY && lua_istable(L, data)))) {
        /* builds before 2026-02: a bare array, no paging */
        if (!records_ok(a, data, "data"))
            return 3;
        lua_pushvalue(L, data);
        lua_setfield(L, result, "items");
        v = (long long)ck_rawlen(L, data);
        set_integer(L, result, "total", v);
        set_integer(L, result, "page", 1);
        set_integer(L, result, "page_size", v);
        return 1;
    }
    if (s != SHAPE_OBJECT)
        return fail_decode(a, "unexpected response: data is not a page object (%s)",
                           "expected {page, page_size, total, items}");
    lua_getfield(L, data, "items");
    s = shape_of(L, -1);
    if (s != SHAPE_ARRAY && s != SHAPE_EMPTY)
        return fail_decode(a, "unexpected response: data.items is not an array%s", "");
    if (!records_ok(a, lua_gettop(L), "data.items"))
        return 3;
    lua_setfield(L, result, "items");
    for (i = 0; i < 3; i++) {
        lua_getfield(L, data, numbers[i]);
        if (!ck_tointeger64(L, -1, &v))
            return fail_decode(a, "unexpected response: data.%s is not an integer", numbers[i]);
        lua_setfield(L, result, numbers[i]);
    }
    lua_settop(L, result);
    return 1;
}

/* reveal: data.<field> must be a string. The string is a full key: never in a message. */
static int map_string(answer *a, int data, enum json_shape s)
{
    lua_State *L = a->L;
    const char *field = a->ep->result_field;
    if (s == SHAPE_OBJECT) {
        lua_getfield(L, data, field);
        if (lua_type(L, -1) == LUA_TSTRING)
            return 1;
    }
    lua_pushfstring(L, "unexpected response: data.%s is not a string", field);
    return fail(a, "decode", 0);
}

/* delete_many: data must be a non-negative integer. */
static int map_count(answer *a, int data)
{
    long long v = 0;
    if (!ck_tointeger64(a->L, data, &v) || v < 0)
        return fail_decode(a, "unexpected response: data is %s, not a count",
                           lua_isnil(a->L, data) ? "missing" : "not a non-negative integer");
    ck_pushinteger64(a->L, v);
    return 1;
}

/* Reads a decimal id (1..CK_ID_MAX, no sign, no blanks) from the len bytes at s; 0 if not one. */
static long long parse_id(const char *s, size_t len)
{
    long long v = 0;
    size_t i;
    if (len == 0 || len > 19 || s[0] == '0')
        return 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (CK_ID_MAX - (s[i] - '0')) / 10)
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/*
 * reveal_many: data.<field> = {"<id>": "<string>", ...} -> { [id] = string }.
 * The strings are full keys: no message shows them (nor the ids).
 */
static int map_ids_to_strings(answer *a, int data, enum json_shape s)
{
    lua_State *L = a->L;
    const char *field = a->ep->result_field;
    int from, result;
    enum json_shape fs;
    if (s != SHAPE_OBJECT)
        return fail_decode(a, "unexpected response: data is not an object with %s", field);
    lua_getfield(L, data, field);
    from = lua_gettop(L);
    fs = shape_of(L, from);
    if (fs != SHAPE_OBJECT && fs != SHAPE_EMPTY)
        return fail_decode(a, "unexpected response: data.%s is not an object", field);
    lua_newtable(L);
    result = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, from)) {
        size_t len;
        long long id = 0;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tolstring(L, -2, &len);
            id = parse_id(k, len);
        }
        if (id == 0 || lua_type(L, -1) != LUA_TSTRING)
            return fail_decode(a, "unexpected response: data.%s is not a map of ids to strings",
                               field);
        if (!ck_pushinteger64(L, id))
            return fail_decode(a,
                               "unexpected response: an id in data.%s is beyond 2^53 (not exact "
                               "on this Lua)",
                               field);
        lua_pushvalue(L, -2);
        lua_rawset(L, result);
        lua_pop(L, 1);
    }
    return 1;
}

static int map_success(answer *a)
{
    lua_State *L = a->L;
    int data;
    enum json_shape s;
    lua_getfield(L, a->doc, "data");
    data = lua_gettop(L);
    s = shape_of(L, data);
    switch (a->ep->result) {
    case CK_RESULT_RECORD:
        if (s != SHAPE_OBJECT && s != SHAPE_EMPTY)
            return fail_decode(a, "unexpected response: data is %s, not a key record",
                               lua_isnil(L, data) ? "missing" : luaL_typename(L, data));
        return 1;
    case CK_RESULT_TRUE: /* create, delete: the server sends no record; status may */
        if (!a->ep->record_if_given || s != SHAPE_OBJECT)
            lua_pushboolean(L, 1);
        return 1;
    case CK_RESULT_PAGE:
        return map_page(a, data);
    case CK_RESULT_STRING:
        return map_string(a, data, s);
    case CK_RESULT_COUNT:
        return map_count(a, data);
    case CK_RESULT_MAP:
        return map_ids_to_strings(a, data, s);
    case CK_RESULT_SETTINGS:
        if (s != SHAPE_OBJECT && s != SHAPE_EMPTY)
            return fail_decode(a, "unexpected response: data is %s, not the settings object",
                               lua_isnil(L, data) ? "missing" : luaL_typename(L, data));
        return 1;
    }
    return fail_decode(a, "%s", "unexpected response"); /* not reached: every shape is a case */
}

/* HTTP 200 that is not a success:false envelope. */
static int map_ok(answer *a)
{
    lua_State *L = a->L;
    if (a->doc == 0) {
        ck_push_excerpt(L, a->json_error, strlen(a->json_error), CK_TEXT_MAX);
        if (a->empty)
            lua_pushliteral(L, "HTTP 200 with an empty body (expected JSON)");
        else if (a->html)
            lua_pushfstring(L, "HTTP 200 with an HTML body, not JSON (%s)", lua_tostring(L, -1));
        else
            lua_pushfstring(L, "cannot decode the response: %s", lua_tostring(L, -1));
        return fail(a, "decode", 0);
    }
    if (shape_of(L, a->doc) != SHAPE_OBJECT)
        return fail_decode(a, "unexpected response: %s, not the {success, message, data} envelope",
                           lua_istable(L, a->doc) ? "a JSON array" : "not a JSON object");
    lua_getfield(L, a->doc, "success");
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        return fail_decode(a, "unexpected response: %s",
                           "no boolean \"success\" (not the {success, message, data} envelope)");
    lua_pop(L, 1);
    return map_success(a);
}

/* 1 when the decoded body is an envelope with "success": false. */
static int is_refusal(answer *a)
{
    int r;
    if (a->doc == 0 || shape_of(a->L, a->doc) != SHAPE_OBJECT)
        return 0;
    lua_getfield(a->L, a->doc, "success");
    r = lua_type(a->L, -1) == LUA_TBOOLEAN && !lua_toboolean(a->L, -1);
    lua_pop(a->L, 1);
    return r;
}

/*
 * Reads res.<key> as an optional string, left on the stack (nil or the string:
 * a metamethod may have made it, so only the stack keeps it alive); raises
 * when it is something else.
 */
static const char *opt_string(lua_State *L, int t, const char *key, const char *where)
{
    lua_getfield(L, t, key);
    if (lua_isnil(L, -1))
        return NULL;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, 2,
                      lua_pushfstring(L, "%s.%s must be a string (got %s)", where, key,
                                      luaL_typename(L, -1)));
    return lua_tostring(L, -1);
}

/*
 * core.response(op, res [, method, path]) -> value | nil, message, info
 * method and path (both strings) name the request in messages; without them,
 * res.request = { method, path } does; without either, the op name.
 */
static int l_response(lua_State *L)
{
    answer a;
    const char *method = NULL, *path = NULL;
    size_t len;

    luaL_checkstack(L, STACK_NEEDED, "cometkey.core.response");
    a.L = L;
    a.ep = ck_endpoint_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 4); /* 3, 4: method and path, or nil */
    a.method = a.path = 0;
    if (!lua_isnil(L, 3) || !lua_isnil(L, 4)) {
        if (lua_type(L, 3) != LUA_TSTRING || lua_type(L, 4) != LUA_TSTRING)
            return luaL_argerror(L, 3, "method and path must both be strings");
        a.method = 3;
        a.path = 4;
    }

    lua_getfield(L, 2, "status");
    if (!ck_tointeger64(L, -1, &a.status) || a.status < 0 || a.status > 999)
        luaL_argerror(L, 2, "res.status must be an integer HTTP status");
    lua_pop(L, 1);

    lua_getfield(L, 2, "headers"); /* slot 5 */
    if (lua_isnil(L, 5))
        a.headers = 0;
    else if (lua_istable(L, 5))
        a.headers = 5;
    else
        luaL_argerror(L, 2, "res.headers must be a table or nil");

    lua_getfield(L, 2, "body"); /* slot 6 */
    if (lua_isnil(L, 6)) {
        a.body = "";
        a.body_len = 0;
    } else if (lua_type(L, 6) == LUA_TSTRING) {
        a.body = lua_tolstring(L, 6, &a.body_len);
    } else {
        return luaL_argerror(L, 2, "res.body must be a string or nil");
    }

    if (a.method == 0) {
        lua_getfield(L, 2, "request"); /* slot 7 */
        if (lua_istable(L, 7)) {
            /* left on the stack (slots 8 and 9): the label is made from them on failure */
            method = opt_string(L, 7, "method", "res.request");
            path = opt_string(L, 7, "path", "res.request");
            if (method != NULL && path != NULL) {
                a.method = 8;
                a.path = 9;
            }
        } else if (!lua_isnil(L, 7)) {
            return luaL_argerror(L, 2, "res.request must be a table or nil");
        }
    }

    a.retry_after = -1;
    if (a.status == 429) {
        push_header_string(&a, "retry-after");
        if (lua_isstring(L, -1)) {
            const char *s = lua_tolstring(L, -1, &len);
            a.retry_after = parse_retry_after(s, len);
        }
        lua_pop(L, 1);
    }
    inspect(&a);

    if (a.status >= 300 && a.status <= 399)
        return fail_redirect(&a);
    if (a.status == 401 || a.status == 403 || a.status == 429 || a.status == 502 ||
        a.status == 503 || a.status == 504)
        return fail_status(&a);
    if (is_refusal(&a))
        return fail_refused(&a);
    if (a.status != 200)
        return fail_status(&a);
    return map_ok(&a);
}

void ck_codec_open(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"request", l_request},
        {"response", l_response},
        {NULL, NULL},
    };
    ck_setfuncs(L, functions);
}
