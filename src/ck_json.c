/*
 * ck_json.c - wire JSON codec of cometkey.core on libjansson: JSON text ->
 * Lua values (ck_json_decode) and Lua values -> compact JSON text with sorted
 * keys (ck_json_encode), integers exact to 64 bits. Every jansson tree is
 * owned by a "box" userdata with __gc while Lua runs, so an error raised by
 * Lua (out of memory) cannot leak it; the dump goes into Lua-owned memory.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ck_json.h"
#include "ck_utf8.h"

#define BOX_METATABLE "cometkey.json_box"
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))
#define MAX_SHOWN_KEY 40      /* bytes of a key or literal quoted in a message */
#define DUMP_STACK_BYTES 1024 /* texts up to this long are dumped in one pass */

/* ------------------------------------------------------------------ box */

/* Owns what C allocated while Lua may raise; freed by release or by __gc. */
typedef struct json_box {
    json_t *json;
} json_box;

static void box_release(json_box *box)
{
    json_decref(box->json); /* NULL-safe */
    box->json = NULL;
}

static int l_box_gc(lua_State *L)
{
    box_release((json_box *)lua_touserdata(L, 1));
    return 0;
}

/* Pushes an empty box. Raises only on out-of-memory, before anything is held. */
static json_box *push_box(lua_State *L)
{
    json_box *box = (json_box *)ck_newuserdata(L, sizeof *box);
    box->json = NULL;
    lua_getfield(L, LUA_REGISTRYINDEX, BOX_METATABLE);
    if (lua_isnil(L, -1)) {
        /* Registered only once complete: an out-of-memory error half-way
         * must not leave a metatable without __gc behind. */
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, l_box_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, BOX_METATABLE);
    }
    lua_setmetatable(L, -2);
    return box;
}

/* ------------------------------------------------------------------ messages */

/* A bounded, always NUL-terminated message in the caller's buffer. */
typedef struct msg_t {
    char *buf;
    size_t cap; /* 0: discard everything */
    size_t len;
} msg_t;

static void msg_init(msg_t *m, char *buf, size_t cap)
{
    m->buf = buf;
    m->cap = buf != NULL ? cap : 0;
    m->len = 0;
    if (m->cap > 0)
        buf[0] = '\0';
}

static void msg_put(msg_t *m, const char *s, size_t n)
{
    size_t room;

    if (m->cap == 0)
        return;
    room = m->cap - 1 - m->len;
    if (n > room)
        n = room;
    memcpy(m->buf + m->len, s, n);
    m->len += n;
    m->buf[m->len] = '\0';
}

static void msg_str(msg_t *m, const char *s)
{
    msg_put(m, s, strlen(s));
}

static void msg_fmt(msg_t *m, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        msg_put(m, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/*
 * Appends at most max bytes of s so that the message stays one line of valid
 * UTF-8: control bytes and invalid sequences become \xNN, and quote (when not
 * 0) and backslash are escaped with a backslash. "..." marks a cut.
 */
static void msg_clean(msg_t *m, const char *s, size_t n, size_t max, char quote)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t pos = 0, k;

    while (pos < n && pos < max) {
        if (u[pos] >= 0x20 && u[pos] < 0x7F) {
            if (quote != 0 && (u[pos] == (unsigned char)quote || u[pos] == '\\'))
                msg_put(m, "\\", 1);
            msg_put(m, s + pos, 1);
            pos++;
        } else if (u[pos] >= 0x80 && (k = ck_utf8_seqlen(u + pos, n - pos)) > 0) {
            msg_put(m, s + pos, k);
            pos += k;
        } else {
            msg_fmt(m, "\\x%02X", (unsigned)u[pos]);
            pos++;
        }
    }
    if (pos < n)
        msg_str(m, "...");
}

/* A cut at the end of the buffer must not leave half a UTF-8 sequence. */
static void msg_finish(msg_t *m)
{
    size_t lead;

    if (m->cap == 0 || m->len + 1 < m->cap)
        return;
    lead = m->len;
    while (lead > 0 && m->len - lead < 4 && ((unsigned char)m->buf[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead > 0 && (unsigned char)m->buf[lead - 1] >= 0xC0) {
        lead--;
        if (ck_utf8_seqlen((const unsigned char *)m->buf + lead, m->len - lead) == 0)
            m->len = lead;
    }
    m->buf[m->len] = '\0';
}

/* ------------------------------------------------------------------ paths */

/* Where a value sits, as a Lua expression on the document: data.items[1].id */
typedef struct path_seg {
    const char *key; /* NULL: array element */
    size_t keylen;
    size_t index; /* 1-based, as in Lua */
} path_seg;

typedef struct json_path {
    path_seg seg[CK_JSON_MAX_DEPTH + 1];
    int len;
} json_path;

static void path_push_key(json_path *p, const char *key, size_t keylen)
{
    p->seg[p->len].key = key;
    p->seg[p->len].keylen = keylen;
    p->seg[p->len].index = 0;
    p->len++;
}

static void path_push_index(json_path *p, size_t index)
{
    p->seg[p->len].key = NULL;
    p->seg[p->len].keylen = 0;
    p->seg[p->len].index = index;
    p->len++;
}

static int is_identifier(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > MAX_SHOWN_KEY || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* Appends `"data.items[1]"`, or `the top level` for the document itself. */
static void msg_path(msg_t *m, const json_path *p)
{
    int i;

    if (p->len == 0) {
        msg_str(m, "the top level");
        return;
    }
    msg_str(m, "\"");
    for (i = 0; i < p->len; i++) {
        const path_seg *s = &p->seg[i];
        if (s->key == NULL) {
            msg_fmt(m, "[%lu]", (unsigned long)s->index);
        } else if (is_identifier(s->key, s->keylen)) {
            if (i > 0)
                msg_str(m, ".");
            msg_put(m, s->key, s->keylen);
        } else {
            msg_str(m, "['");
            msg_clean(m, s->key, s->keylen, MAX_SHOWN_KEY, '\'');
            msg_str(m, "']");
        }
    }
    msg_str(m, "\"");
}

/* ------------------------------------------------------------------ decode */

typedef struct dec_state {
    lua_State *L;
    int null_as_nil;
    json_path path;
    msg_t *msg;
} dec_state;

static int decode_value(dec_state *d, json_t *v, int level);

static int decode_container_check(dec_state *d, int level)
{
    if (level > CK_JSON_MAX_DEPTH) {
        msg_fmt(d->msg, "JSON nested deeper than %d levels", CK_JSON_MAX_DEPTH);
        return 0;
    }
    /* Raises (the box owns the tree): at this depth only a failed allocation
     * can make it fail, and that must not read as a bad document. */
    luaL_checkstack(d->L, 4, "JSON decode");
    return 1;
}

static int decode_array(dec_state *d, json_t *v, int level)
{
    size_t i, n = json_array_size(v);

    if (!decode_container_check(d, level))
        return 0;
    if (n > (size_t)0x7FFFFFFF) {
        msg_str(d->msg, "JSON array too long");
        return 0;
    }
    lua_createtable(d->L, (int)n, 0);
    for (i = 0; i < n; i++) {
        path_push_index(&d->path, i + 1);
        if (!decode_value(d, json_array_get(v, i), level + 1))
            return 0;
        d->path.len--;
        lua_rawseti(d->L, -2, (int)(i + 1));
    }
    return 1;
}

static int decode_object(dec_state *d, json_t *v, int level)
{
    size_t n = json_object_size(v);
    void *iter;

    if (!decode_container_check(d, level))
        return 0;
    lua_createtable(d->L, 0, n > 0x7FFFFFF ? 0x7FFFFFF : (int)n);
    for (iter = json_object_iter(v); iter != NULL; iter = json_object_iter_next(v, iter)) {
        const char *key = json_object_iter_key(iter);
        size_t keylen = json_object_iter_key_len(iter);
        json_t *child = json_object_iter_value(iter);

        if (d->null_as_nil && json_is_null(child))
            continue;
        lua_pushlstring(d->L, key, keylen);
        path_push_key(&d->path, key, keylen);
        if (!decode_value(d, child, level + 1))
            return 0;
        d->path.len--;
        lua_rawset(d->L, -3);
    }
    return 1;
}

/* Pushes the Lua value of v (level: 1 for the document). 0 on error. */
static int decode_value(dec_state *d, json_t *v, int level)
{
    lua_State *L = d->L;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return decode_object(d, v, level);
    case JSON_ARRAY:
        return decode_array(d, v, level);
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return 1;
    case JSON_INTEGER:
        if (!ck_pushinteger64(L, (long long)json_integer_value(v))) {
            msg_fmt(d->msg, "JSON integer %" JSON_INTEGER_FORMAT " at ", json_integer_value(v));
            msg_path(d->msg, &d->path);
            msg_str(d->msg, " exceeds 2^53 and cannot be represented exactly on this Lua");
            return 0;
        }
        return 1;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        return 1;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        return 1;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        return 1;
    case JSON_NULL:
    default:
        lua_pushlightuserdata(L, NULL);
        return 1;
    }
}

static int is_blank(const char *text, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            return 0;
    return 1;
}

/* The key (as written) that ends just before byte end: `"id"` -> id. */
static int find_key_before(const char *text, size_t len, size_t end, size_t *start)
{
    size_t i, slashes;

    if (end < 2 || end > len || text[end - 1] != '"')
        return 0;
    for (i = end - 1; i-- > 0;) {
        if (text[i] != '"')
            continue;
        for (slashes = 0; slashes < i && text[i - 1 - slashes] == '\\'; slashes++)
            ;
        if (slashes % 2 == 0) {
            *start = i + 1;
            return 1;
        }
    }
    return 0;
}

/* The number literal that ends just before byte end: `1e400`. */
static int find_number_before(const char *text, size_t len, size_t end, size_t *start)
{
    size_t i = end;

    if (end == 0 || end > len)
        return 0;
    while (i > 0 && strchr("0123456789+-.eE", text[i - 1]) != NULL && text[i - 1] != '\0')
        i--;
    *start = i;
    return i < end;
}

/* Turns jansson's load error into one line that starts with "JSON ". */
static void describe_load_error(msg_t *m, const char *text, size_t len, const json_error_t *e)
{
    size_t start, end = e->position > 0 ? (size_t)e->position : 0;
    const char *why = e->text;

    switch (json_error_code(e)) {
    case json_error_stack_overflow:
        msg_fmt(m, "JSON nested deeper than %d levels", CK_JSON_MAX_DEPTH);
        return;
    case json_error_invalid_utf8:
        msg_fmt(m, "JSON invalid UTF-8 at line %d column %d (", e->line, e->column);
        msg_clean(m, why, strlen(why), sizeof e->text, 0);
        msg_str(m, ")");
        return;
    case json_error_null_character:
    case json_error_null_byte_in_key:
        msg_fmt(m, "JSON string with a NUL character (\\u0000) at line %d column %d is refused",
                e->line, e->column);
        return;
    case json_error_duplicate_key:
        msg_str(m, "JSON duplicate object key ");
        if (find_key_before(text, len, end, &start)) {
            msg_str(m, "\"");
            msg_clean(m, text + start, end - 1 - start, MAX_SHOWN_KEY, 0);
            msg_str(m, "\" ");
        }
        msg_fmt(m, "at line %d column %d", e->line, e->column);
        return;
    case json_error_numeric_overflow:
        if (find_number_before(text, len, end, &start)) {
            int real = memchr(text + start, '.', end - start) != NULL ||
                       memchr(text + start, 'e', end - start) != NULL ||
                       memchr(text + start, 'E', end - start) != NULL;
            msg_str(m, real ? "JSON number " : "JSON integer ");
            msg_clean(m, text + start, end - start, MAX_SHOWN_KEY, 0);
            msg_fmt(m, " at line %d column %d %s", e->line, e->column,
                    real ? "is out of range for a double" : "does not fit in 64 bits");
        } else {
            msg_fmt(m, "JSON number out of range at line %d column %d (", e->line, e->column);
            msg_clean(m, why, strlen(why), sizeof e->text, 0);
            msg_str(m, ")");
        }
        return;
    case json_error_end_of_input_expected:
        msg_fmt(m, "JSON syntax error at line %d column %d: trailing characters after the value (",
                e->line, e->column);
        msg_clean(m, why, strlen(why), sizeof e->text, 0);
        msg_str(m, ")");
        return;
    case json_error_premature_end_of_input:
        msg_fmt(m, "JSON syntax error at line %d column %d: unexpected end of input (", e->line,
                e->column);
        msg_clean(m, why, strlen(why), sizeof e->text, 0);
        msg_str(m, ")");
        return;
    default:
        msg_fmt(m, "JSON syntax error at line %d column %d: ", e->line, e->column);
        msg_clean(m, why, strlen(why), sizeof e->text, 0);
        return;
    }
}

int ck_json_decode(lua_State *L, const char *text, size_t len, int flags, char *err, size_t errlen)
{
    int base = lua_gettop(L), ok;
    json_error_t jerr;
    json_box *box;
    dec_state d;
    msg_t msg;

    msg_init(&msg, err, errlen);
    if (text == NULL || is_blank(text, len)) {
        msg_str(&msg, "JSON empty input");
        return 0;
    }
    luaL_checkstack(L, 4, "JSON decode"); /* raises before anything is held */
    box = push_box(L);
    memset(&jerr, 0, sizeof jerr);
    box->json = json_loadb(text, len, LOAD_FLAGS, &jerr);
    if (box->json == NULL) {
        lua_settop(L, base);
        /* Every parse error comes with a text. jansson reports some allocation
         * failures (json_object() in the parser, say) with none, leaving the
         * code byte as it was: it is not read then. */
        if (jerr.text[0] == '\0' || json_error_code(&jerr) == json_error_out_of_memory)
            return luaL_error(L, "not enough memory");
        describe_load_error(&msg, text, len, &jerr);
        msg_finish(&msg);
        return 0;
    }
    d.L = L;
    d.null_as_nil = (flags & CK_JSON_NULL_AS_NIL) != 0;
    d.path.len = 0;
    d.msg = &msg;
    ok = decode_value(&d, box->json, 1);
    box_release(box);
    if (!ok) {
        lua_settop(L, base);
        msg_finish(&msg);
        return 0;
    }
    lua_remove(L, base + 1); /* the box, now empty */
    return 1;
}

/* ------------------------------------------------------------------ encode */

typedef struct enc_state {
    lua_State *L;
    json_box *box;
    json_path path;
    const void *open_tables[CK_JSON_MAX_DEPTH + 1]; /* the tables being encoded, outermost first */
    int out_of_memory;
    msg_t *msg;
} enc_state;

enum table_kind { AS_DEFAULT, AS_ARRAY, AS_OBJECT };

static int encode_value(enc_state *e, int idx, int level, json_t *parent, const char *key,
                        size_t keylen);

static int encode_fail(enc_state *e, const char *what, const char *problem)
{
    msg_str(e->msg, what);
    msg_path(e->msg, &e->path);
    msg_str(e->msg, problem);
    return 0;
}

/*
 * Hands the new value v to its parent (or to the box for the document) at
 * once, so it is owned before any further Lua call. jansson's *_new calls
 * release v when they fail.
 */
static int attach(enc_state *e, json_t *parent, const char *key, size_t keylen, json_t *v)
{
    int rc;

    if (v == NULL) {
        rc = -1;
    } else if (parent == NULL) {
        e->box->json = v;
        rc = 0;
    } else if (json_is_array(parent)) {
        rc = json_array_append_new(parent, v);
    } else {
        rc = json_object_setn_new_nocheck(parent, key, keylen, v);
    }
    if (rc != 0) {
        e->out_of_memory = 1;
        return 0;
    }
    return 1;
}

/* Refuses what the decoder would refuse: invalid UTF-8 and NUL. */
static int check_text(enc_state *e, const char *s, size_t n, const char *what)
{
    size_t bad = ck_utf8_invalid_at(s, n);

    if (bad < n) {
        msg_str(e->msg, what);
        msg_path(e->msg, &e->path);
        msg_fmt(e->msg, " has invalid UTF-8 at byte %lu", (unsigned long)bad + 1);
        return 0;
    }
    if (memchr(s, '\0', n) != NULL)
        return encode_fail(e, what, " contains a NUL character, which is refused");
    return 1;
}

/* Integers exact; integral floats within 2^53 as integers; other floats as reals. */
static int encode_number(enc_state *e, int idx, json_t *parent, const char *key, size_t keylen)
{
    lua_Number n;
    long long i;

#if CK_HAVE_INTEGERS
    if (lua_isinteger(e->L, idx))
        return attach(e, parent, key, keylen, json_integer((json_int_t)lua_tointeger(e->L, idx)));
#endif
    n = lua_tonumber(e->L, idx);
    if (isnan(n))
        return encode_fail(e, "JSON cannot encode NaN at ", "");
    if (isinf(n))
        return encode_fail(e, n > 0 ? "JSON cannot encode inf at " : "JSON cannot encode -inf at ",
                           "");
    if (ck_tointeger64(e->L, idx, &i))
        return attach(e, parent, key, keylen, json_integer((json_int_t)i));
    return attach(e, parent, key, keylen, json_real((double)n));
}

static enum table_kind declared_kind(lua_State *L, int idx)
{
    enum table_kind kind = AS_DEFAULT;

    if (!lua_getmetatable(L, idx))
        return kind;
    lua_pushliteral(L, "__jsontype");
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "array") == 0)
            kind = AS_ARRAY;
        else if (strcmp(s, "object") == 0)
            kind = AS_OBJECT;
    }
    lua_pop(L, 2);
    return kind;
}

/* Appends a short description of the key at idx: `0`, `1.5`, `of type boolean`. */
static void msg_key(msg_t *m, lua_State *L, int idx)
{
    long long i;

    if (ck_tointeger64(L, idx, &i))
        msg_fmt(m, "%lld", i);
    else if (lua_type(L, idx) == LUA_TNUMBER)
        msg_fmt(m, "%.17g", (double)lua_tonumber(L, idx));
    else
        msg_fmt(m, "of type %s", luaL_typename(L, idx));
}

/* Decides array or object by looking at every key once (raw: no metamethods). */
static int classify_table(enc_state *e, int idx, int *is_array, size_t *count)
{
    lua_State *L = e->L;
    enum table_kind kind = declared_kind(L, idx);
    size_t n = 0, strings = 0, positive = 0;
    long long max = 0, i;
    int bad_key = 0; /* stack slot of the first key that is neither string nor 1.. */

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        n++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
        } else if (ck_tointeger64(L, -1, &i) && i >= 1) {
            positive++;
            if (i > max)
                max = i;
        } else if (bad_key == 0) {
            lua_pushvalue(L, -1); /* keep it for the message; iterate on the copy */
            bad_key = lua_gettop(L) - 1;
        }
    }
    *count = n;
    if (strings > 0 && (positive > 0 || (bad_key != 0 && lua_type(L, bad_key) == LUA_TNUMBER)))
        return encode_fail(e, "JSON table at ", " mixes array and object keys");
    if (bad_key != 0) {
        msg_str(e->msg, "JSON table at ");
        msg_path(e->msg, &e->path);
        msg_str(e->msg, " has a non-string key ");
        msg_key(e->msg, L, bad_key);
        msg_str(e->msg, " (object keys must be strings, array keys exactly 1..n)");
        return 0;
    }
    if (kind == AS_OBJECT && positive > 0)
        return encode_fail(e, "JSON table at ",
                           " has number keys but its __jsontype is \"object\"");
    if (kind == AS_ARRAY && strings > 0)
        return encode_fail(e, "JSON table at ", " has string keys but its __jsontype is \"array\"");
    if (positive > 0 && (size_t)max != positive)
        return encode_fail(e, "JSON table at ",
                           " is not a sequence: array keys must be exactly 1..n");
    *is_array = kind == AS_ARRAY || (kind == AS_DEFAULT && n > 0 && positive == n);
    return 1;
}

static int encode_table(enc_state *e, int idx, int level, json_t *parent, const char *key,
                        size_t keylen)
{
    lua_State *L = e->L;
    const void *self = lua_topointer(L, idx);
    json_t *container;
    size_t i, n;
    int is_array = 0, j;

    for (j = 0; j < level - 1; j++)
        if (e->open_tables[j] == self)
            return encode_fail(e, "JSON table at ",
                               " refers back to a table that contains it (a cycle)");
    if (level > CK_JSON_MAX_DEPTH) {
        msg_fmt(e->msg, "JSON nested deeper than %d levels at ", CK_JSON_MAX_DEPTH);
        msg_path(e->msg, &e->path);
        return 0;
    }
    luaL_checkstack(L, 6, "JSON encode"); /* as in decode: the box owns the tree */
    if (!classify_table(e, idx, &is_array, &n))
        return 0;
    container = is_array ? json_array() : json_object();
    if (!attach(e, parent, key, keylen, container))
        return 0;
    e->open_tables[level - 1] = self;
    if (is_array) {
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (int)i);
            path_push_index(&e->path, i);
            if (!encode_value(e, lua_gettop(L), level + 1, container, NULL, 0))
                return 0;
            e->path.len--;
            lua_pop(L, 1);
        }
        return 1;
    }
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t klen;
        const char *k = lua_tolstring(L, -2, &klen); /* a string: classify_table checked */

        path_push_key(&e->path, k, klen);
        if (!check_text(e, k, klen, "JSON object key at "))
            return 0;
        if (!encode_value(e, lua_gettop(L), level + 1, container, k, klen))
            return 0;
        e->path.len--;
        lua_pop(L, 1);
    }
    return 1;
}

/* Converts the value at idx (absolute) and attaches it; level 1 is the document. */
static int encode_value(enc_state *e, int idx, int level, json_t *parent, const char *key,
                        size_t keylen)
{
    lua_State *L = e->L;
    const char *s;
    size_t n;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return attach(e, parent, key, keylen, json_null());
    case LUA_TBOOLEAN:
        return attach(e, parent, key, keylen, json_boolean(lua_toboolean(L, idx)));
    case LUA_TNUMBER:
        return encode_number(e, idx, parent, key, keylen);
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        if (!check_text(e, s, n, "JSON string at "))
            return 0;
        return attach(e, parent, key, keylen, json_stringn_nocheck(s, n));
    case LUA_TTABLE:
        return encode_table(e, idx, level, parent, key, keylen);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return attach(e, parent, key, keylen, json_null());
        return encode_fail(e, "JSON cannot encode a lightuserdata other than null at ", "");
    default:
        msg_fmt(e->msg, "JSON cannot encode a %s value at ", luaL_typename(L, idx));
        msg_path(e->msg, &e->path);
        return 0;
    }
}

int ck_json_encode(lua_State *L, int idx, char *err, size_t errlen)
{
    int base = lua_gettop(L), ok;
    enc_state e;
    msg_t msg;

    if (idx < 0 && idx > LUA_REGISTRYINDEX)
        idx = base + idx + 1;
    msg_init(&msg, err, errlen);
    luaL_checkstack(L, 8, "JSON encode"); /* raises before anything is held */
    e.L = L;
    e.box = push_box(L);
    e.path.len = 0;
    e.out_of_memory = 0;
    e.msg = &msg;
    ok = encode_value(&e, idx, 1, NULL, NULL, 0);
    if (ok) {
        /*
         * Written into a fixed buffer (json_dumpb cannot fail in its output,
         * unlike json_dumps: when its buffer fails to grow inside an object
         * key, jansson ignores the error and goes on, and a later write that
         * succeeds gives valid JSON with a key cut short). json_dumpb returns
         * the size the text needs: a text too long for the stack buffer is
         * written again into a Lua-owned buffer of that size. A pass fails
         * (0) only when jansson's own allocations (key sorting, cycle check)
         * do. One pass for the usual small body: each costs a key sort and
         * jansson's cycle-check table.
         */
        char local[DUMP_STACK_BYTES];
        size_t need = json_dumpb(e.box->json, local, sizeof local, DUMP_FLAGS);
        if (need == 0) {
            e.out_of_memory = 1;
        } else if (need <= sizeof local) {
            lua_pushlstring(L, local, need); /* may raise: the box owns the tree */
        } else {
            char *text = (char *)ck_newuserdata(L, need); /* may raise */
            if (json_dumpb(e.box->json, text, need, DUMP_FLAGS) != need)
                e.out_of_memory = 1;
            else
                lua_pushlstring(L, text, need);
        }
    }
    box_release(e.box);
    if (!ok || e.out_of_memory) {
        lua_settop(L, base);
        if (e.out_of_memory)
            return luaL_error(L, "not enough memory");
        msg_finish(&msg);
        return 0;
    }
    lua_replace(L, base + 1); /* the text takes the box's slot; the buffer goes */
    lua_settop(L, base + 1);
    return 1;
}

/* ------------------------------------------------------------------ Lua API */

/* json_decode(text [, null_as_nil]) -> value | nil, message */
static int l_json_decode(lua_State *L)
{
    char err[CK_ERRLEN];
    const char *text;
    size_t len;
    int flags = 0;

    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_argerror(L, 1,
                             lua_pushfstring(L, "string expected, got %s", luaL_typename(L, 1)));
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TBOOLEAN);
        if (lua_toboolean(L, 2))
            flags |= CK_JSON_NULL_AS_NIL;
    }
    text = lua_tolstring(L, 1, &len);
    if (ck_json_decode(L, text, len, flags, err, sizeof err))
        return 1;
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* json_encode(value) -> string | nil, message */
static int l_json_encode(lua_State *L)
{
    char err[CK_ERRLEN];

    luaL_checkany(L, 1);
    lua_settop(L, 1);
    if (ck_json_encode(L, 1, err, sizeof err))
        return 1;
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

void ck_json_open(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"json_decode", l_json_decode},
        {"json_encode", l_json_encode},
        {NULL, NULL},
    };
    ck_setfuncs(L, functions);
}
