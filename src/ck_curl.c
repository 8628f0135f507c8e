/*
 * ck_curl.c - cometkey.curl: the libcurl transport. A "cometkey.curl" userdata
 * owns one easy handle for blocking requests (keep-alive through its
 * connection cache), a lazily created multi handle with a pool of easy handles
 * for bulk requests, the access token (copied out of a cometkey.secret, wiped
 * on close) and every buffer a transfer writes into. Requests are read from
 * Lua into that memory before libcurl runs; libcurl's callbacks are plain C,
 * so no Lua code runs and no Lua error is raised while a transfer is running.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ck_compat.h"
#include "ck_secret.h"
#include "ck_util.h"

#define CK_CURL_MT "cometkey.curl"
#define CK_FAILURE_KEY "cometkey.curl.failure" /* registry: cometkey.errors.curl_failure */

#define CK_DEFAULT_TIMEOUT_MS 30000L
#define CK_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define CK_DEFAULT_MAX_BODY (8u * 1024u * 1024u)
#define CK_MAX_BODY_LIMIT 2147483648.0     /* bytes; max_body may not exceed 2 GiB */
#define CK_MAX_TIMEOUT_SECONDS 2147483.0   /* the timeout in ms fits a 32-bit long */
#define CK_MAX_HEADER_BYTES (256u * 1024u) /* response header cap (all blocks, 1xx included) */
#define CK_MAX_HEADER_FIELDS 500u          /* response header fields cap (all blocks) */
#define CK_MAX_POOL 256                    /* easy handles the multi pool may hold */
#define CK_SHRINK_ABOVE (256u * 1024u)     /* buffers larger than this are freed per request */
#define CK_MIN_REDACT_LEN 4                /* header values this long are kept out of messages */
#define CK_STACK_NEEDED 40                 /* Lua stack slots perform and multi_wait may use */
#define CK_SHORT_NAME 64                   /* header names lowered in a stack buffer */

/* ---------------------------------------------------------------- buffers */

typedef struct ck_buf {
    char *data;
    size_t len;
    size_t cap;
} ck_buf;

/* Appends n bytes; returns 0 when memory runs out (the buffer is unchanged). */
static int buf_append(ck_buf *b, const char *p, size_t n)
{
    if (n > (size_t)-1 - b->len - 1)
        return 0;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *grown;
        while (cap < b->len + n + 1)
            cap = cap > (size_t)-1 / 2 ? b->len + n + 1 : cap * 2;
        grown = (char *)realloc(b->data, cap);
        if (grown == NULL)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

/* Empties the buffer for a new request; a large one is released. */
static void buf_reset(ck_buf *b)
{
    if (b->cap > CK_SHRINK_ABOVE) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static void buf_free(ck_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Frees a header list after zeroing every line (one of them holds the token). */
static void slist_wipe_free(struct curl_slist *list)
{
    struct curl_slist *node;
    for (node = list; node != NULL; node = node->next) {
        if (node->data != NULL)
            ck_wipe(node->data, strlen(node->data));
    }
    curl_slist_free_all(list);
}

/* ---------------------------------------------------------------- handle state */

enum ck_method { CK_GET, CK_POST, CK_PUT, CK_DELETE };
static const char *const ck_method_names[] = {"GET", "POST", "PUT", "DELETE", NULL};

enum ck_xfer_state { CK_FREE, CK_RUNNING, CK_DONE };

/* One easy handle and everything a transfer on it reads or writes. */
typedef struct ck_xfer {
    CURL *easy;
    enum ck_xfer_state state; /* multi pool only */
    int in_multi;             /* added to the multi handle */
    long long tag;            /* multi pool only: the caller's tag */
    unsigned long done_seq;   /* order of completion, for reporting */
    CURLcode result;          /* multi pool only: the finished transfer's code */
    enum ck_method method;
    int fresh;                  /* open a new connection (no replay of a non-idempotent request) */
    struct curl_slist *headers; /* request headers, Authorization included */
    ck_buf body;                /* request body (when has_body) */
    int has_body;
    ck_buf where; /* "METHOD /path" for messages (no query, no credentials) */
    ck_buf line;  /* scratch: one header line being made or compared */
    ck_buf resp_body;
    ck_buf resp_headers;
    size_t header_bytes;  /* response header bytes seen, every block counted */
    size_t header_fields; /* response header fields seen, every block counted */
    size_t max_body;
    int too_large;         /* the body cap was hit */
    int headers_too_large; /* the header cap was hit */
    int out_of_memory;     /* a callback could not grow a buffer */
    char errbuf[CURL_ERROR_SIZE];
} ck_xfer;

typedef struct ck_client {
    int closed;
    int plain_errors; /* programmer errors raise { rule = "..." } (for transport/curl.lua) */
    char *auth_line;  /* "Authorization: <token>", malloc'd, wiped on close */
    size_t auth_len;
    char *token; /* points into auth_line, for redaction checks */
    size_t token_len;
    char *ca_file;
    long timeout_ms;
    long connect_timeout_ms;
    int verify;
    size_t max_body;
    ck_xfer main; /* the blocking handle */
    CURLM *multi;
    ck_xfer **pool;
    size_t pool_len;
    size_t pool_cap;
    unsigned long done_seq;
    double requests;
    double connects;
} ck_client;

/* ---------------------------------------------------------------- libcurl callbacks (no Lua) */

static size_t on_body(char *p, size_t size, size_t nmemb, void *userdata)
{
    ck_xfer *x = (ck_xfer *)userdata;
    size_t n = size * nmemb;
    if (n > x->max_body - x->resp_body.len) {
        x->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (!buf_append(&x->resp_body, p, n)) {
        x->out_of_memory = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *userdata)
{
    ck_xfer *x = (ck_xfer *)userdata;
    size_t n = size * nitems;
    int status_line = n >= 5 && memcmp(p, "HTTP/", 5) == 0;
    /* Caps on the whole response (a flood of 1xx blocks counts too): bytes and fields. */
    if (n > CK_MAX_HEADER_BYTES - x->header_bytes ||
        (!status_line && n > 2 && ++x->header_fields > CK_MAX_HEADER_FIELDS)) {
        x->headers_too_large = 1;
        return 0;
    }
    x->header_bytes += n;
    /* A new status line (after 100 Continue, say) starts a new header block. */
    if (status_line)
        x->resp_headers.len = 0;
    if (!buf_append(&x->resp_headers, p, n)) {
        x->out_of_memory = 1;
        return 0;
    }
    return n;
}

/* ---------------------------------------------------------------- easy handle setup */

/* Options that are the same for every request of a client. */
static CURLcode easy_configure(ck_client *c, ck_xfer *x)
{
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;
#define CK_SET(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    CK_SET(CURLOPT_NOSIGNAL, 1L);
    CK_SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    CK_SET(CURLOPT_PROTOCOLS_STR, "http,https");
    CK_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    CK_SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    CK_SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* Proxies from the environment apply, but never to loopback: a local server
     * (the mock, a sidecar) is reached directly, with the token kept on the host. */
    CK_SET(CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
    CK_SET(CURLOPT_SSL_VERIFYPEER, c->verify ? 1L : 0L);
    CK_SET(CURLOPT_SSL_VERIFYHOST, c->verify ? 2L : 0L);
    if (c->ca_file != NULL)
        CK_SET(CURLOPT_CAINFO, c->ca_file);
    CK_SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    CK_SET(CURLOPT_TCP_KEEPALIVE, 1L);
    CK_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
    CK_SET(CURLOPT_WRITEFUNCTION, on_body);
    CK_SET(CURLOPT_WRITEDATA, (void *)x);
    CK_SET(CURLOPT_HEADERFUNCTION, on_header);
    CK_SET(CURLOPT_HEADERDATA, (void *)x);
    CK_SET(CURLOPT_ERRORBUFFER, x->errbuf);
    CK_SET(CURLOPT_PRIVATE, (void *)x);
#undef CK_SET
    x->max_body = c->max_body;
    return rc;
}

/* 1 when s[0..n) is a decimal octet 0..255 written without leading zeros. */
static int octet(const char *s, size_t n)
{
    size_t i;
    int v = 0;
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 255;
}

/*
 * 1 when the URL's host is one cometkey.options treats as loopback (and so
 * lets go over http://): localhost, [::1] or 127.a.b.c with decimal octets.
 * Such a request must never go through a proxy from the environment, which
 * CURLOPT_NOPROXY cannot express for all of 127.0.0.0/8 before libcurl 7.86.
 */
static int url_is_loopback(const char *url)
{
    const char *p = strstr(url, "://"), *host, *end, *q;
    size_t n, dots = 0;
    if (p == NULL)
        return 0;
    host = p + 3;
    for (end = host; *end != '\0' && *end != '/' && *end != '?' && *end != '#'; end++)
        ;
    for (q = host; q < end; q++) {
        if (*q == '@')
            return 0; /* credentials are refused anyway */
    }
    if (*host == '[') {
        q = (const char *)memchr(host, ']', (size_t)(end - host));
        return q != NULL && q - host == 4 && memcmp(host, "[::1]", 5) == 0;
    }
    q = (const char *)memchr(host, ':', (size_t)(end - host));
    if (q != NULL)
        end = q;
    n = (size_t)(end - host);
    if (n == 9 && ck_ascii_ieq(host, 9, "localhost"))
        return 1;
    if (n < 7 || memcmp(host, "127.", 4) != 0)
        return 0;
    for (p = host, q = host; q <= end; q++) {
        if (q == end || *q == '.') {
            if (!octet(p, (size_t)(q - p)))
                return 0;
            dots += q < end;
            p = q + 1;
        }
    }
    return dots == 3;
}

/* Options that change per request; everything else stays as configured. */
static CURLcode easy_prepare(ck_xfer *x, const char *url, long timeout_ms)
{
    CURL *e = x->easy;
    CURLcode rc;
    x->errbuf[0] = '\0';
    x->too_large = x->headers_too_large = x->out_of_memory = 0;
    x->header_bytes = x->header_fields = 0;
    buf_reset(&x->resp_body);
    buf_reset(&x->resp_headers);
    rc = curl_easy_setopt(e, CURLOPT_URL, url);
    /* "" disables every proxy (the environment's too); NULL restores the default. */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROXY, url_is_loopback(url) ? "" : (char *)NULL);
    /*
     * libcurl replays a request (POST too, body rewound) when a reused
     * connection dies before any answer. A create (or a batch delete) sent
     * twice may act twice. So a request that is not idempotent (req.idempotent
     * = false, from the endpoint table; without it, a POST) always opens a
     * fresh connection; the replay stays for idempotent ones (reads, updates,
     * a reveal, which is a read-only POST).
     */
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, x->fresh ? 1L : 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (rc != CURLE_OK)
        return rc;
    if (x->method == CK_GET || (x->method == CK_DELETE && !x->has_body)) {
        /* Drop a previous request's body pointer; HTTPGET then resets the method. */
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, (char *)NULL);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method == CK_GET ? NULL : "DELETE");
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        /* POST machinery carries the body; PUT and DELETE rename the method. */
        rc = curl_easy_setopt(e, CURLOPT_POST, 1L);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->has_body ? x->body.data : "");
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                                  x->method == CK_POST ? NULL : ck_method_names[x->method]);
    }
    return rc;
}

static void xfer_release(ck_xfer *x)
{
    if (x->easy != NULL) {
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    slist_wipe_free(x->headers);
    x->headers = NULL;
    buf_free(&x->body);
    buf_free(&x->where);
    if (x->line.data != NULL)
        ck_wipe(x->line.data, x->line.cap);
    buf_free(&x->line);
    buf_free(&x->resp_body);
    buf_free(&x->resp_headers);
}

/* ---------------------------------------------------------------- programmer errors */

/*
 * Raises a programmer error about argument arg: as luaL_argerror does, or,
 * when plain (the caller is cometkey.transport.curl, which names its own
 * method), as a table { rule = rule }, so nobody parses the text back.
 */
static int argerror(lua_State *L, int plain, int arg, const char *rule)
{
    if (!plain)
        return luaL_argerror(L, arg, rule);
    lua_createtable(L, 0, 1);
    lua_pushstring(L, rule);
    lua_setfield(L, -2, "rule");
    return lua_error(L);
}

/* luaL_checktype for a table, through argerror. */
static void check_table(lua_State *L, int plain, int idx, int arg)
{
    if (!lua_istable(L, idx)) {
        lua_pushfstring(L, "table expected, got %s", luaL_typename(L, idx));
        argerror(L, plain, arg, lua_tostring(L, -1));
    }
}

/* luaL_checknumber through argerror. */
static lua_Number check_number(lua_State *L, int plain, int arg)
{
    if (lua_type(L, arg) != LUA_TNUMBER) {
        lua_pushfstring(L, "number expected, got %s", luaL_typename(L, arg));
        argerror(L, plain, arg, lua_tostring(L, -1));
    }
    return lua_tonumber(L, arg);
}

/* ---------------------------------------------------------------- client lifecycle */

static ck_client *check_client(lua_State *L)
{
    return (ck_client *)luaL_checkudata(L, 1, CK_CURL_MT);
}

static ck_client *check_open(lua_State *L)
{
    ck_client *c = check_client(L);
    if (c->closed)
        luaL_error(L, "cometkey: client is closed");
    return c;
}

/*
 * Releases the handles, the token and every buffer. Idempotent, and complete
 * each time: Lua code (a metamethod, a finalizer) may run while a method
 * holds an ck_xfer, close the client, and let that method allocate again
 * before it notices; a later close or __gc frees that too. The ck_xfer
 * structs and the pool array themselves stay until __gc, so a method that
 * holds one never touches freed memory.
 */
static void client_close(ck_client *c)
{
    size_t i;
    c->closed = 1;
    for (i = 0; i < c->pool_len; i++) {
        ck_xfer *x = c->pool[i];
        if (x->in_multi && c->multi != NULL)
            curl_multi_remove_handle(c->multi, x->easy);
        x->in_multi = 0;
        x->state = CK_FREE;
        xfer_release(x);
    }
    if (c->multi != NULL) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
    }
    xfer_release(&c->main);
    if (c->auth_line != NULL) {
        ck_wipe(c->auth_line, c->auth_len);
        free(c->auth_line);
        c->auth_line = NULL;
        c->token = NULL;
        c->auth_len = c->token_len = 0;
    }
    free(c->ca_file);
    c->ca_file = NULL;
}

static int l_close(lua_State *L)
{
    client_close(check_client(L));
    return 0;
}

/* __gc: close, then free the pool (nothing can be using it any more). */
static int l_gc(lua_State *L)
{
    ck_client *c = check_client(L);
    size_t i;
    client_close(c);
    for (i = 0; i < c->pool_len; i++)
        free(c->pool[i]);
    free(c->pool);
    c->pool = NULL;
    c->pool_len = c->pool_cap = 0;
    return 0;
}

static int l_tostring(lua_State *L)
{
    ck_client *c = check_client(L);
    lua_pushstring(L, c->closed ? "cometkey.curl (closed)" : "cometkey.curl (open)");
    return 1;
}

/* ---------------------------------------------------------------- option reading */

/* Reads a duration in seconds from field of table idx into *ms (kept if nil); name labels errors.
 */
static void opt_seconds(lua_State *L, int plain, int idx, int arg, const char *field,
                        const char *name, long *ms)
{
    lua_Number s;
    lua_getfield(L, idx, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    if (lua_type(L, -1) != LUA_TNUMBER) {
        lua_pushfstring(L, "%s must be a number of seconds, got %s", name, luaL_typename(L, -1));
        argerror(L, plain, arg, lua_tostring(L, -1));
    }
    s = lua_tonumber(L, -1);
    if (!(s > 0 && s <= CK_MAX_TIMEOUT_SECONDS)) {
        lua_pushfstring(L, "%s must be greater than 0 and at most %d seconds", name,
                        (int)CK_MAX_TIMEOUT_SECONDS);
        argerror(L, plain, arg, lua_tostring(L, -1));
    }
    *ms = (long)(s * 1000.0);
    if ((lua_Number)*ms < s * 1000.0)
        (*ms)++; /* round up: a fraction of a millisecond still waits */
    if (*ms < 1)
        *ms = 1;
    lua_pop(L, 1);
}

/* Returns 1 when the value at idx is a cometkey.secret (never raises). */
static int is_secret(lua_State *L, int idx)
{
    int same;
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, CK_SECRET_MT);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

/* Returns 1 when s is printable ASCII without spaces (safe to quote in a message). */
static int is_plain_word(const char *s, size_t n)
{
    size_t i;
    if (n == 0 || n > 64)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return 0;
    }
    return 1;
}

static void check_option_names(lua_State *L, int plain)
{
    static const char *const known[] = {"timeout",  "connect_timeout", "verify",       "ca_file",
                                        "max_body", "token",           "plain_errors", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        size_t n;
        const char *key;
        int i, found = 0;
        lua_pop(L, 1); /* the value */
        if (lua_type(L, -1) != LUA_TSTRING)
            argerror(L, plain, 1, "option names must be strings");
        key = lua_tolstring(L, -1, &n);
        for (i = 0; known[i] != NULL; i++) {
            if (strcmp(known[i], key) == 0 && strlen(known[i]) == n)
                found = 1;
        }
        if (!found) {
            if (is_plain_word(key, n))
                lua_pushfstring(L, "unknown option '%s'", key);
            else
                lua_pushliteral(L, "unknown option");
            argerror(L, plain, 1, lua_tostring(L, -1));
        }
    }
}

/* curl.new{ timeout, connect_timeout, verify, ca_file, max_body, token } -> handle */
static int l_new(lua_State *L)
{
    long timeout_ms = CK_DEFAULT_TIMEOUT_MS, connect_timeout_ms = CK_DEFAULT_CONNECT_TIMEOUT_MS;
    int verify = 1;
    size_t max_body = CK_DEFAULT_MAX_BODY, ca_len = 0, i;
    const char *ca_file = NULL;
    ck_secret *secret = NULL;
    ck_client *c;
    int ca_idx = 0, plain = 0;

    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "plain_errors");
    plain = lua_toboolean(L, -1);
    lua_pop(L, 1);
    check_option_names(L, plain);
    opt_seconds(L, plain, 1, 1, "timeout", "timeout", &timeout_ms);
    opt_seconds(L, plain, 1, 1, "connect_timeout", "connect_timeout", &connect_timeout_ms);

    lua_getfield(L, 1, "verify");
    if (!lua_isnil(L, -1)) {
        if (!lua_isboolean(L, -1))
            argerror(L, plain, 1, "verify must be a boolean");
        verify = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);

    lua_getfield(L, 1, "max_body");
    if (!lua_isnil(L, -1)) {
        long long v = 0;
        if (!ck_tointeger64(L, -1, &v) || v < 1 || (double)v > CK_MAX_BODY_LIMIT)
            argerror(L, plain, 1, "max_body must be an integer number of bytes from 1 to 2^31");
        max_body = (size_t)v;
    }
    lua_pop(L, 1);

    lua_getfield(L, 1, "ca_file"); /* stays on the stack (slot 2) while it is copied */
    ca_idx = lua_gettop(L);
    if (!lua_isnil(L, ca_idx)) {
        FILE *probe;
        if (lua_type(L, ca_idx) != LUA_TSTRING)
            argerror(L, plain, 1, "ca_file must be a string (a path to PEM certificates)");
        ca_file = lua_tolstring(L, ca_idx, &ca_len);
        if (ca_len == 0 || strlen(ca_file) != ca_len)
            argerror(L, plain, 1, "ca_file must be a non-empty path without NUL bytes");
        probe = fopen(ca_file, "rb");
        if (probe == NULL) {
            lua_pushfstring(L, "ca_file '%s' cannot be read: %s", ca_file, strerror(errno));
            argerror(L, plain, 1, lua_tostring(L, -1));
        }
        fclose(probe);
    }

    lua_getfield(L, 1, "token"); /* slot 3 */
    if (!lua_isnil(L, -1)) {
        if (!is_secret(L, -1))
            argerror(L, plain, 1, "token must be a cometkey.secret (from cometkey.core.secret)");
        secret = ck_secret_check(L, lua_gettop(L));
        if (secret->value == NULL)
            argerror(L, plain, 1, "token was wiped (its client is closed)");
        for (i = 0; i < secret->len; i++) {
            unsigned char ch = (unsigned char)secret->value[i];
            if (ch < 0x20 || ch == 0x7f)
                argerror(L, plain, 1, "token must not contain control characters (CR, LF, NUL...)");
        }
    }

    /* The userdata exists, zeroed and with its __gc, before anything is acquired. */
    c = (ck_client *)ck_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c); /* close() and __gc handle every part still NULL */
    luaL_getmetatable(L, CK_CURL_MT);
    lua_setmetatable(L, -2);
    c->timeout_ms = timeout_ms;
    c->connect_timeout_ms = connect_timeout_ms;
    c->verify = verify;
    c->max_body = max_body;
    c->plain_errors = plain;

    if (ca_file != NULL) {
        c->ca_file = (char *)malloc(ca_len + 1);
        if (c->ca_file == NULL)
            return luaL_error(L, "cometkey: out of memory");
        memcpy(c->ca_file, ca_file, ca_len + 1);
    }
    if (secret != NULL && secret->value == NULL) /* wiped by a finalizer the GC just ran */
        return argerror(L, plain, 1, "token was wiped (its client is closed)");
    if (secret != NULL) {
        static const char prefix[] = "Authorization: ";
        size_t plen = sizeof prefix - 1;
        c->auth_line = (char *)malloc(plen + secret->len + 1);
        if (c->auth_line == NULL)
            return luaL_error(L, "cometkey: out of memory");
        memcpy(c->auth_line, prefix, plen);
        memcpy(c->auth_line + plen, secret->value, secret->len);
        c->auth_line[plen + secret->len] = '\0';
        c->auth_len = plen + secret->len;
        c->token = c->auth_line + plen;
        c->token_len = secret->len;
    }
    c->main.easy = curl_easy_init();
    if (c->main.easy == NULL)
        return luaL_error(L, "cometkey: curl_easy_init failed");
    if (easy_configure(c, &c->main) != CURLE_OK)
        return luaL_error(L, "cometkey: libcurl rejected the transport options");
    return 1;
}

/* ---------------------------------------------------------------- reading a request */

static int is_tchar(unsigned char ch)
{
    /* RFC 9110 token characters. */
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static void oom(lua_State *L)
{
    luaL_error(L, "cometkey: out of memory");
}

/* Appends one header line to x->headers (libcurl copies it; the list is owned by x). */
static void append_line(lua_State *L, ck_xfer *x, const char *line)
{
    struct curl_slist *grown = curl_slist_append(x->headers, line);
    if (grown == NULL)
        oom(L);
    x->headers = grown;
}

/*
 * Validates one header pair at stack -2 (name) and -1 (value, a string or a
 * number) and keeps both as strings just below them, so the stack ends as
 * ..., name, value-as-string, name, value: the caller pops the value and
 * lua_next goes on from the name. Raises on a programmer error. Touches no C
 * memory.
 */
static void add_header(lua_State *L, int plain, int arg)
{
    size_t nlen, vlen, i;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING)
        argerror(L, plain, arg, "req.headers keys must be header names (strings)");
    name = lua_tolstring(L, -2, &nlen);
    for (i = 0; i < nlen; i++) {
        if (!is_tchar((unsigned char)name[i]))
            break;
    }
    if (nlen == 0 || i < nlen)
        argerror(L, plain, arg,
                 "req.headers has an invalid header name (token characters only: no CR, "
                 "LF, NUL, spaces or colons)");
    if (ck_ascii_ieq(name, nlen, "authorization"))
        argerror(L, plain, arg,
                 "req.headers must not set Authorization (the transport adds the token)");
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
        lua_pushfstring(L, "req.headers[\"%s\"] must be a string", name);
        argerror(L, plain, arg, lua_tostring(L, -1));
    }
    lua_pushvalue(L, -1); /* convert a number on a copy, never on the lua_next key */
    value = lua_tolstring(L, -1, &vlen);
    for (i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            lua_pushfstring(L,
                            "req.headers[\"%s\"] must not contain CR, LF, NUL or other "
                            "control characters",
                            name);
            argerror(L, plain, arg, lua_tostring(L, -1));
        }
    }
    /* ..., name, value, value-as-string */
    lua_insert(L, -3);    /* ..., value-as-string, name, value */
    lua_pushvalue(L, -2); /* ..., value-as-string, name, value, name */
    lua_insert(L, -4);    /* ..., name, value-as-string, name, value */
}

/* Appends "METHOD /path" to x->where: the URL's path only, never its query or userinfo. */
static int set_where(ck_xfer *x, const char *url, size_t len)
{
    const char *p = strstr(url, "://"), *end = url + len, *stop;
    x->where.len = 0;
    if (!buf_append(&x->where, ck_method_names[x->method], strlen(ck_method_names[x->method])) ||
        !buf_append(&x->where, " ", 1))
        return 0;
    p = p != NULL ? p + 3 : url;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
        p++;
    stop = p;
    while (stop < end && *stop != '?' && *stop != '#')
        stop++;
    if (stop == p)
        return buf_append(&x->where, "/", 1);
    return buf_append(&x->where, p, (size_t)(stop - p));
}

/* A request as read from Lua: the strings stay on the Lua stack. */
typedef struct ck_request {
    enum ck_method method;
    int fresh;
    long timeout_ms;
    int body;     /* stack slot: the body string, or nil */
    int headers;  /* stack slot of the first header name; its value (a string) follows */
    int nheaders; /* how many name, value pairs */
    int url;      /* stack slot: the URL string */
} ck_request;

/*
 * Reads and checks req (stack slot idx) into r, leaving the body, the header
 * names and values and the URL on the stack. Raises on programmer errors before anything
 * is sent. Lua code may run here (metamethods of req, finalizers run by the
 * GC), which may even close the client, so this touches no C memory of the
 * client: fill_request copies r into an ck_xfer afterwards.
 */
static void read_request(lua_State *L, ck_client *c, int idx, int arg, ck_request *r)
{
    size_t len, i;
    const char *s;
    int m, plain = c->plain_errors;

    check_table(L, plain, idx, arg);
    lua_getfield(L, idx, "method");
    if (lua_type(L, -1) != LUA_TSTRING)
        argerror(L, plain, arg, "req.method must be \"GET\", \"POST\", \"PUT\" or \"DELETE\"");
    s = lua_tolstring(L, -1, &len);
    for (m = 0; ck_method_names[m] != NULL; m++) {
        if (strlen(ck_method_names[m]) == len && strcmp(ck_method_names[m], s) == 0)
            break;
    }
    if (ck_method_names[m] == NULL)
        argerror(L, plain, arg, "req.method must be \"GET\", \"POST\", \"PUT\" or \"DELETE\"");
    r->method = (enum ck_method)m;
    lua_pop(L, 1);

    /* req.idempotent (the operation's, from the endpoint table): without it, by method. */
    lua_getfield(L, idx, "idempotent");
    if (lua_isboolean(L, -1))
        r->fresh = !lua_toboolean(L, -1);
    else if (lua_isnil(L, -1))
        r->fresh = r->method == CK_POST;
    else
        argerror(L, plain, arg, "req.idempotent must be a boolean or nil");
    lua_pop(L, 1);

    r->timeout_ms = c->timeout_ms;
    opt_seconds(L, plain, idx, arg, "timeout", "req.timeout", &r->timeout_ms);

    lua_getfield(L, idx, "body");
    r->body = lua_gettop(L);
    if (!lua_isnil(L, r->body)) {
        if (lua_type(L, r->body) != LUA_TSTRING)
            argerror(L, plain, arg, "req.body must be a string or nil");
        if (r->method == CK_GET)
            argerror(L, plain, arg, "req.body is not allowed with GET");
    }

    r->nheaders = 0;
    lua_getfield(L, idx, "headers");
    r->headers = lua_gettop(L) + 1;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        r->headers--;
    } else {
        int h = lua_gettop(L); /* stays: it anchors the names */
        if (!lua_istable(L, h))
            argerror(L, plain, arg, "req.headers must be a table of name = value");
        lua_pushnil(L);
        while (lua_next(L, h) != 0) {
            luaL_checkstack(L, 4, "cometkey.curl");
            add_header(L, plain, arg);
            r->nheaders++;
            lua_pop(L, 1);
        }
    }

    lua_getfield(L, idx, "url");
    r->url = lua_gettop(L);
    if (lua_type(L, -1) != LUA_TSTRING)
        argerror(L, plain, arg, "req.url must be a string");
    s = lua_tolstring(L, -1, &len);
    if (!(len > 7 && ck_ascii_ieq(s, 7, "http://")) && !(len > 8 && ck_ascii_ieq(s, 8, "https://")))
        argerror(L, plain, arg, "req.url must be an http:// or https:// URL");
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f)
            argerror(L, plain, arg, "req.url must not contain spaces or control characters");
    }
    for (i = (size_t)(strstr(s, "://") - s) + 3; i < len && !strchr("/?#", s[i]); i++) {
        if (s[i] == '@')
            argerror(L, plain, arg, "req.url must not contain credentials (user:password@)");
    }
}

/*
 * Writes header i of r into x->line as "Name: value" ("Name;" for an empty
 * value, which libcurl sends as an empty header; "Name: " would drop it). The
 * name and value are strings on the stack already: no Lua code runs. Raises
 * only when out of memory.
 */
static void header_line(lua_State *L, ck_xfer *x, const ck_request *r, int i)
{
    size_t nlen, vlen;
    const char *name = lua_tolstring(L, r->headers + 2 * i, &nlen);
    const char *value = lua_tolstring(L, r->headers + 2 * i + 1, &vlen);
    x->line.len = 0;
    if (!buf_append(&x->line, name, nlen) ||
        !buf_append(&x->line, vlen > 0 ? ": " : ";", vlen > 0 ? 2 : 1) ||
        !buf_append(&x->line, value, vlen))
        oom(L);
}

/* 1 when x->headers holds exactly the lines r would make, then "Expect:" and the token. */
static int same_headers(lua_State *L, ck_client *c, ck_xfer *x, const ck_request *r)
{
    const struct curl_slist *node = x->headers;
    int i;
    if (node == NULL)
        return 0;
    for (i = 0; i < r->nheaders; i++, node = node->next) {
        if (node == NULL)
            return 0;
        header_line(L, x, r, i);
        if (strcmp(node->data, x->line.data) != 0)
            return 0;
    }
    if (node == NULL || strcmp(node->data, "Expect:") != 0)
        return 0;
    node = node->next;
    if (c->auth_line != NULL) {
        if (node == NULL || strcmp(node->data, c->auth_line) != 0)
            return 0;
        node = node->next;
    }
    return node == NULL;
}

/*
 * Copies the request r (read by read_request) into x: method, body, header
 * list (with "Expect:" and the token, added by C only) and the message label.
 * Runs no Lua code; raises only when out of memory, and every allocation made
 * is owned by x (and so by the userdata).
 */
static void fill_request(lua_State *L, ck_client *c, ck_xfer *x, const ck_request *r)
{
    size_t len;
    const char *s;
    int i;

    x->method = r->method;
    x->fresh = r->fresh;
    buf_reset(&x->body);
    x->has_body = 0;
    if (lua_type(L, r->body) == LUA_TSTRING) {
        s = lua_tolstring(L, r->body, &len);
        if (!buf_append(&x->body, s, len)) /* data is never NULL after this */
            oom(L);
        x->has_body = 1;
    }

    /* The same headers as the previous request on x (the usual case): the list stays. */
    if (!same_headers(L, c, x, r)) {
        slist_wipe_free(x->headers);
        x->headers = NULL;
        for (i = 0; i < r->nheaders; i++) {
            header_line(L, x, r, i);
            append_line(L, x, x->line.data);
        }
        /* No "Expect: 100-continue" round trip; then the token. */
        append_line(L, x, "Expect:");
        if (c->auth_line != NULL)
            append_line(L, x, c->auth_line);
    }

    s = lua_tolstring(L, r->url, &len);
    if (!set_where(x, s, len))
        oom(L);
}

/* ---------------------------------------------------------------- outcomes */

/* Adds the finished transfer to the client's counters. */
static void count_transfer(ck_client *c, ck_xfer *x)
{
    long connects = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
        c->connects += (double)connects;
    c->requests += 1;
}

static int mem_contains(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    size_t i;
    if (nlen == 0 || nlen > hlen)
        return 0;
    for (i = 0; i + nlen <= hlen; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0)
            return 1;
    }
    return 0;
}

/* Returns 1 when text shows the token or the value of a header this request sent. */
static int leaks_secret(ck_client *c, ck_xfer *x, const char *text, size_t n)
{
    struct curl_slist *node;
    if (c->token != NULL && mem_contains(text, n, c->token, c->token_len))
        return 1;
    for (node = x->headers; node != NULL; node = node->next) {
        const char *colon = strchr(node->data, ':');
        size_t vlen;
        if (colon == NULL)
            continue;
        colon++;
        while (*colon == ' ')
            colon++;
        vlen = strlen(colon);
        if (vlen >= CK_MIN_REDACT_LEN && mem_contains(text, n, colon, vlen))
            return 1;
    }
    return 0;
}

/*
 * Writes libcurl's error text for code into out as one line: control
 * characters become spaces; text that would show a header value or the
 * token is replaced by libcurl's generic description of the code.
 */
static void error_text(ck_client *c, ck_xfer *x, CURLcode code, char *out, size_t size)
{
    size_t n = 0, i;
    const char *src = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(code);
    for (i = 0; src[i] != '\0' && n + 1 < size; i++) {
        unsigned char ch = (unsigned char)src[i];
        out[n++] = (ch < 0x20 || ch == 0x7f) ? ' ' : src[i];
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    if (n == 0 || leaks_secret(c, x, out, n)) {
        strncpy(out, curl_easy_strerror(code), size - 1);
        out[size - 1] = '\0';
    }
}

/*
 * Pushes the response's header fields as { lower-case name = value }, in linear
 * time: a repeated field's values are collected in an array (a second table,
 * made on the first repeat) and joined with ", " once at the end (RFC 9110
 * field combining), never by concatenating the growing value again and again.
 */
static void push_headers(lua_State *L, const char *p, size_t n)
{
    const char *end = p + n;
    int t, multi = 0;
    lua_createtable(L, 0, 8);
    t = lua_gettop(L);
    while (p < end) {
        const char *eol = (const char *)memchr(p, '\n', (size_t)(end - p));
        const char *line = p, *stop = eol != NULL ? eol : end, *colon, *v;
        p = eol != NULL ? eol + 1 : end;
        while (stop > line && (stop[-1] == '\r' || stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if (stop == line || (stop - line >= 5 && memcmp(line, "HTTP/", 5) == 0))
            continue; /* status line or the blank line that ends a block */
        colon = (const char *)memchr(line, ':', (size_t)(stop - line));
        if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t')
            continue; /* not a field (obsolete line folding is not supported) */
        {
            /* the name in lower case: in a stack buffer, or for a long one a Lua buffer */
            char small[CK_SHORT_NAME];
            size_t i, len = (size_t)(colon - line);
            if (len <= sizeof small) {
                for (i = 0; i < len; i++) {
                    char ch = line[i];
                    small[i] = ck_ascii_lower(ch);
                }
                lua_pushlstring(L, small, len);
            } else {
                luaL_Buffer b;
                luaL_buffinit(L, &b);
                for (i = 0; i < len; i++) {
                    char ch = line[i];
                    luaL_addchar(&b, ck_ascii_lower(ch));
                }
                luaL_pushresult(&b);
            }
        }
        for (v = colon + 1; v < stop && (*v == ' ' || *v == '\t'); v++)
            ;
        /* stack: ..., t, [multi], name */
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, v, (size_t)(stop - v));
            lua_rawset(L, t);
            continue;
        }
        /* A repeat: append to name's array in multi (made with the first value). */
        if (multi == 0) {
            lua_newtable(L);
            lua_replace(L, -2); /* ..., t, name, multi */
            lua_insert(L, -2);  /* ..., t, multi, name */
            multi = t + 1;
            lua_pushnil(L); /* stands for "no array yet" */
        } else {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_rawget(L, multi);
        }
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_createtable(L, 4, 0);
            lua_pushvalue(L, -2);
            lua_rawget(L, t); /* the first value */
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, multi); /* multi[name] = array */
        }
        /* ..., name, array */
        lua_pushlstring(L, v, (size_t)(stop - v));
        lua_rawseti(L, -2, (int)ck_rawlen(L, -2) + 1);
        lua_pop(L, 2);
    }
    if (multi != 0) {
        /* t[name] = table.concat(array, ", ") for every repeated name */
        lua_pushnil(L);
        while (lua_next(L, multi) != 0) {
            luaL_Buffer b;
            int i, count = (int)ck_rawlen(L, -1), arr = lua_gettop(L);
            lua_pushvalue(L, -2); /* the name, for rawset below */
            luaL_buffinit(L, &b);
            for (i = 1; i <= count; i++) {
                if (i > 1)
                    luaL_addlstring(&b, ", ", 2);
                lua_rawgeti(L, arr, i);
                luaL_addvalue(&b);
            }
            luaL_pushresult(&b);
            lua_rawset(L, t);
            lua_pop(L, 1); /* the array; the name stays for lua_next */
        }
        lua_pop(L, 1); /* multi */
    }
}

/*
 * libcurl's own refusal of oversized response headers: CURLE_TOO_LARGE from
 * 8.6.0; before that a header line over CURL_MAX_HTTP_HEADER (100 KiB) fails
 * with CURLE_OUT_OF_MEMORY and no error text, and a header block over its
 * total limit with "Too large response headers" (CURLE_RECV_ERROR). Any of
 * them before a body byte arrived is a too_large response, not a network error.
 */
static int libcurl_header_refusal(const ck_xfer *x, CURLcode code)
{
#if LIBCURL_VERSION_NUM >= 0x080600
    if (code == CURLE_TOO_LARGE)
        return 1;
#endif
    if (x->resp_body.len > 0 || x->out_of_memory)
        return 0;
    if (code == CURLE_OUT_OF_MEMORY && x->errbuf[0] == '\0')
        return 1;
    return strstr(x->errbuf, "Too large response header") != NULL ||
           strstr(x->errbuf, "giant realloc for header") != NULL;
}

/*
 * Pushes the outcome of a finished transfer: res (returns 1), or nil,
 * message, info (returns 3). Raises only when a callback ran out of memory.
 */
static int push_outcome(lua_State *L, ck_client *c, ck_xfer *x, CURLcode code)
{
    int too_large;
    long sent_bytes = 1;
    char text[CURL_ERROR_SIZE + 64];
    if (x->out_of_memory)
        return luaL_error(L, "cometkey: out of memory");
    if (code == CURLE_OK) {
        long status = 0;
        int body;
        size_t n;
        const char *h;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        /* Copied into Lua strings first: the GC may run Lua code (a finalizer)
         * at any allocation below, which may reuse or close this handle. */
        lua_pushlstring(L, x->resp_body.data != NULL ? x->resp_body.data : "", x->resp_body.len);
        body = lua_gettop(L);
        lua_pushlstring(L, x->resp_headers.data != NULL ? x->resp_headers.data : "",
                        x->resp_headers.len);
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
        h = lua_tolstring(L, body + 1, &n);
        push_headers(L, h, n);
        lua_setfield(L, -2, "headers");
        lua_pushvalue(L, body);
        lua_setfield(L, -2, "body");
        lua_replace(L, body); /* res takes the body's slot; then drop the header copy */
        lua_pop(L, 1);
        return 1;
    }
    too_large = x->too_large || x->headers_too_large || libcurl_header_refusal(x, code);
    if (x->headers_too_large)
        snprintf(text, sizeof text, "headers exceed %u bytes or %u fields",
                 (unsigned)CK_MAX_HEADER_BYTES, (unsigned)CK_MAX_HEADER_FIELDS);
    else if (too_large && !x->too_large)
        snprintf(text, sizeof text, "a header line is longer than libcurl accepts");
    else if (too_large || code == CURLE_FILESIZE_EXCEEDED)
        snprintf(text, sizeof text, "body exceeds max_body (%lu bytes)",
                 (unsigned long)x->max_body);
    else
        error_text(c, x, code, text, sizeof text);
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent_bytes);
    /* The facts go to cometkey.errors, which classifies the code (one table for
     * every transport) and writes the message. Lua runs here: every buffer of x
     * belongs to the userdata, and text is on the C stack. */
    lua_getfield(L, LUA_REGISTRYINDEX, CK_FAILURE_KEY);
    lua_pushstring(L, x->where.data != NULL ? x->where.data : "request");
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, text);
    lua_setfield(L, -2, "text");
    lua_pushboolean(L, sent_bytes > 0); /* false: no byte of the request left this host */
    lua_setfield(L, -2, "sent");
    if (too_large) {
        lua_pushliteral(L, "too_large");
        lua_setfield(L, -2, "kind");
    }
    lua_call(L, 2, 3);
    return 3;
}

/* Releases what a finished transfer no longer needs (large buffers go back to the system). */
static void xfer_trim(ck_xfer *x)
{
    /* A response body may hold a revealed key: the C copies of both bodies are
     * zeroed once Lua has its strings (which cometkey cannot wipe). */
    if (x->resp_body.data != NULL)
        ck_wipe(x->resp_body.data, x->resp_body.len);
    if (x->body.data != NULL)
        ck_wipe(x->body.data, x->body.len);
    buf_reset(&x->resp_body);
    buf_reset(&x->resp_headers);
    buf_reset(&x->body);
}

/* ---------------------------------------------------------------- blocking requests */

/* h:perform(req) -> res | nil, message, info */
static int l_perform(lua_State *L)
{
    ck_client *c = check_open(L);
    ck_xfer *x = &c->main;
    ck_request r;
    CURLcode code;
    int nret;
    luaL_checkstack(L, CK_STACK_NEEDED, "cometkey.curl");
    read_request(L, c, 2, 2, &r);
    if (c->closed) /* by Lua code that ran while req was read */
        return luaL_error(L, "cometkey: client is closed");
    /* From here to curl_easy_perform's return, no Lua code runs. */
    fill_request(L, c, x, &r);
    code = easy_prepare(x, lua_tostring(L, r.url), r.timeout_ms);
    if (code != CURLE_OK)
        return luaL_error(L, "cometkey: libcurl rejected the request options: %s",
                          curl_easy_strerror(code));
    /* From here to its return, only libcurl and the C callbacks above run. */
    code = curl_easy_perform(x->easy);
    count_transfer(c, x);
    nret = push_outcome(L, c, x, code);
    xfer_trim(x);
    return nret;
}

/* h:stats() -> { requests = n, connects = n } */
static int l_stats(lua_State *L)
{
    ck_client *c = check_client(L);
    lua_createtable(L, 0, 2);
    ck_pushinteger64(L, (long long)c->requests); /* counts stay far below 2^53 */
    lua_setfield(L, -2, "requests");
    ck_pushinteger64(L, (long long)c->connects);
    lua_setfield(L, -2, "connects");
    return 1;
}

/* ---------------------------------------------------------------- bulk requests (multi) */

/*
 * A free easy handle from the pool; a new one (owned by c from its first
 * byte) when all are busy. A slot whose setup failed keeps easy == NULL and
 * is set up again the next time, so a raise here never frees or leaks.
 */
static ck_xfer *pool_take(lua_State *L, ck_client *c)
{
    size_t i;
    ck_xfer *x = NULL;
    for (i = 0; i < c->pool_len && x == NULL; i++) {
        if (c->pool[i]->state == CK_FREE)
            x = c->pool[i];
    }
    if (x == NULL) {
        if (c->pool_len >= CK_MAX_POOL)
            luaL_error(L, "cometkey: more than %d requests in flight", CK_MAX_POOL);
        if (c->pool_len == c->pool_cap) {
            size_t cap = c->pool_cap ? c->pool_cap * 2 : 8;
            ck_xfer **grown = (ck_xfer **)realloc(c->pool, cap * sizeof *grown);
            if (grown == NULL)
                oom(L);
            c->pool = grown;
            c->pool_cap = cap;
        }
        x = (ck_xfer *)calloc(1, sizeof *x);
        if (x == NULL)
            oom(L);
        c->pool[c->pool_len++] = x; /* state CK_FREE, easy NULL */
    }
    if (x->easy == NULL) {
        x->easy = curl_easy_init();
        if (x->easy == NULL)
            luaL_error(L, "cometkey: curl_easy_init failed");
        if (easy_configure(c, x) != CURLE_OK ||
            curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L) != CURLE_OK) {
            curl_easy_cleanup(x->easy);
            x->easy = NULL;
            luaL_error(L, "cometkey: libcurl rejected the transport options");
        }
    }
    return x;
}

/* h:multi_add(tag, req) -> true; the transfer runs during multi_wait */
static int l_multi_add(lua_State *L)
{
    ck_client *c = check_open(L);
    long long tag = 0;
    ck_request r;
    ck_xfer *x;
    CURLcode code;
    CURLMcode mc;
    if (!ck_tointeger64(L, 2, &tag))
        argerror(L, c->plain_errors, 2, "tag must be an integer");
    check_table(L, c->plain_errors, 3, 3);
    read_request(L, c, 3, 3, &r);
    if (c->closed) /* by Lua code that ran while req was read */
        return luaL_error(L, "cometkey: client is closed");
    /* From here to the return, no Lua code runs: the slot taken stays ours. */
    if (c->multi == NULL) {
        c->multi = curl_multi_init();
        if (c->multi == NULL)
            return luaL_error(L, "cometkey: curl_multi_init failed");
    }
    x = pool_take(L, c);
    fill_request(L, c, x, &r);
    code = easy_prepare(x, lua_tostring(L, r.url), r.timeout_ms);
    if (code != CURLE_OK)
        return luaL_error(L, "cometkey: libcurl rejected the request options: %s",
                          curl_easy_strerror(code));
    mc = curl_multi_add_handle(c->multi, x->easy);
    if (mc != CURLM_OK)
        return luaL_error(L, "cometkey: curl_multi_add_handle failed: %s", curl_multi_strerror(mc));
    x->in_multi = 1;
    x->state = CK_RUNNING;
    x->tag = tag;
    lua_pushboolean(L, 1);
    return 1;
}

/* Moves every transfer libcurl reports finished to CK_DONE; returns how many. */
static int multi_collect(ck_client *c)
{
    CURLMsg *msg;
    int left, n = 0;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        char *priv = NULL;
        ck_xfer *x;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        x = (ck_xfer *)(void *)priv;
        x->result = msg->data.result; /* msg is invalid once the handle is removed */
        count_transfer(c, x);
        curl_multi_remove_handle(c->multi, x->easy); /* its connection returns to the cache */
        x->in_multi = 0;
        x->state = CK_DONE;
        x->done_seq = ++c->done_seq;
        n++;
    }
    return n;
}

static size_t count_state(ck_client *c, enum ck_xfer_state state)
{
    size_t i, n = 0;
    for (i = 0; i < c->pool_len; i++)
        n += c->pool[i]->state == state;
    return n;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* h:multi_wait(timeout_seconds) -> { { tag = n, res = res } | { tag = n, err = msg, info = info } }
 */
static int l_multi_wait(lua_State *L)
{
    ck_client *c = check_open(L);
    lua_Number seconds = check_number(L, c->plain_errors, 2);
    double deadline;
    size_t done, i, n;
    luaL_checkstack(L, CK_STACK_NEEDED, "cometkey.curl");
    if (!(seconds >= 0 && seconds <= CK_MAX_TIMEOUT_SECONDS))
        argerror(L, c->plain_errors, 2, "timeout must be a number of seconds from 0 to 2147483");
    deadline = monotonic_seconds() + seconds;
    done = count_state(c, CK_DONE);
    while (done == 0 && count_state(c, CK_RUNNING) > 0) {
        int running = 0;
        double remaining;
        long ms;
        /* Drives every transfer; only libcurl and the C callbacks run. */
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK)
            return luaL_error(L, "cometkey: curl_multi_perform failed: %s",
                              curl_multi_strerror(mc));
        done += (size_t)multi_collect(c);
        remaining = deadline - monotonic_seconds();
        if (done > 0 || remaining <= 0)
            break;
        ms = (long)(remaining * 1000.0) + 1;
#if LIBCURL_VERSION_NUM >= 0x074200
        mc = curl_multi_poll(c->multi, NULL, 0, (int)ms, NULL);
#else
        mc = curl_multi_wait(c->multi, NULL, 0, (int)ms, NULL);
#endif
        if (mc != CURLM_OK)
            return luaL_error(L, "cometkey: curl_multi_poll failed: %s", curl_multi_strerror(mc));
    }
    lua_createtable(L, (int)done, 0);
    for (n = 1; n <= done; n++) {
        ck_xfer *x = NULL;
        int nret;
        for (i = 0; i < c->pool_len; i++) {
            ck_xfer *y = c->pool[i];
            if (y->state == CK_DONE && (x == NULL || y->done_seq < x->done_seq))
                x = y;
        }
        if (x == NULL || c->closed) /* closed by a finalizer run by the GC meanwhile */
            break;
        x->state = CK_FREE; /* reported exactly once, even if pushing raises */
        lua_createtable(L, 0, 3);
        if (!ck_pushinteger64(L, x->tag))
            lua_pushnumber(L, (lua_Number)x->tag);
        lua_setfield(L, -2, "tag");
        nret = push_outcome(L, c, x, x->result);
        if (nret == 1) {
            lua_setfield(L, -2, "res");
        } else {
            lua_setfield(L, -4, "info");
            lua_setfield(L, -3, "err");
            lua_pop(L, 1); /* the nil */
        }
        xfer_trim(x);
        lua_rawseti(L, -2, (int)n);
    }
    return 1;
}

/* h:multi_pending() -> transfers added and not yet returned by multi_wait */
static int l_multi_pending(lua_State *L)
{
    ck_client *c = check_client(L);
    lua_pushinteger(L, (lua_Integer)(count_state(c, CK_RUNNING) + count_state(c, CK_DONE)));
    return 1;
}

/*
 * h:multi_cancel() -> n: drops every transfer added and not yet returned by
 * multi_wait (running ones are removed from the multi handle, their
 * connection closed; finished ones are discarded), so a later multi_wait can
 * never report them. Only libcurl runs here; no Lua error while a handle is held.
 */
static int l_multi_cancel(lua_State *L)
{
    ck_client *c = check_client(L);
    size_t i, n = 0;
    for (i = 0; i < c->pool_len; i++) {
        ck_xfer *x = c->pool[i];
        if (x->state == CK_FREE)
            continue;
        if (x->in_multi && c->multi != NULL)
            curl_multi_remove_handle(c->multi, x->easy);
        x->in_multi = 0;
        x->state = CK_FREE;
        xfer_trim(x);
        n++;
    }
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* ---------------------------------------------------------------- module functions */

/*
 * curl.version() -> libcurl's version ("7.88.1"), its TLS library ("OpenSSL/3.0.11").
 * Read from curl_version_info: curl_version() would also initialise libldap.
 */
static int l_version(lua_State *L)
{
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    lua_pushstring(L, info->version);
    if (info->ssl_version != NULL)
        lua_pushstring(L, info->ssl_version);
    else
        lua_pushnil(L);
    return 2;
}

/* curl.now() -> monotonic seconds (float) */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)monotonic_seconds());
    return 1;
}

/* curl.sleep(seconds [, plain_errors]): blocks the calling thread (retry backoff in blocking mode)
 */
static int l_sleep(lua_State *L)
{
    int plain = lua_toboolean(L, 2);
    lua_Number s = check_number(L, plain, 1);
    struct timespec req, rem;
    if (!(s >= 0 && s <= CK_MAX_TIMEOUT_SECONDS))
        argerror(L, plain, 1, "seconds must be a number from 0 to 2147483");
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
    if (req.tv_nsec > 999999999L)
        req.tv_nsec = 999999999L;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
    return 0;
}

/* curl.file_mode(path) -> permission bits, owner uid, this process's effective uid
 * | nil, message. stat(2) follows symlinks: a link is judged by its target. For the
 * command-line tool's --token-file check (no stat(1) dialect needed). */
static int l_file_mode(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        lua_pushnil(L);
        lua_pushstring(L, strerror(e));
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_pushinteger(L, (lua_Integer)st.st_uid);
    lua_pushinteger(L, (lua_Integer)geteuid());
    return 3;
}

CK_EXPORT int luaopen_cometkey_curl(lua_State *L);

CK_EXPORT int luaopen_cometkey_curl(lua_State *L)
{
    static int curl_ready = 0;
    static const luaL_Reg methods[] = {{"perform", l_perform},
                                       {"stats", l_stats},
                                       {"close", l_close},
                                       {"multi_add", l_multi_add},
                                       {"multi_wait", l_multi_wait},
                                       {"multi_pending", l_multi_pending},
                                       {"multi_cancel", l_multi_cancel},
                                       {NULL, NULL}};
    static const luaL_Reg functions[] = {
        {"new", l_new},     {"version", l_version},     {"now", l_now},
        {"sleep", l_sleep}, {"file_mode", l_file_mode}, {NULL, NULL}};
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return luaL_error(L, "cometkey: curl_global_init failed");
        curl_ready = 1;
    }
    ck_secret_register(L);
    /* Failures are classified and worded by cometkey.errors (shared with the
     * Neovim transport, which runs the curl tool and sees the same codes). */
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED"); /* package.loaded, 5.1 to 5.4 */
    if (lua_istable(L, -1))
        lua_getfield(L, -1, "cometkey.errors");
    else
        lua_pushnil(L);
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "require");
        lua_pushliteral(L, "cometkey.errors");
        if (!lua_isfunction(L, -2) || lua_pcall(L, 1, 1, 0) != 0)
            return luaL_error(L, "cometkey: cometkey.curl needs the Lua module cometkey.errors "
                                 "(lua/cometkey/errors.lua) on package.path");
    }
    lua_getfield(L, -1, "curl_failure");
    if (lua_type(L, -1) != LUA_TFUNCTION)
        return luaL_error(L, "cometkey: cometkey.errors has no curl_failure");
    lua_setfield(L, LUA_REGISTRYINDEX, CK_FAILURE_KEY);
    lua_pop(L, 1);
    if (luaL_newmetatable(L, CK_CURL_MT)) {
        lua_newtable(L);
        ck_setfuncs(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
#endif
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, CK_CURL_MT);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    ck_setfuncs(L, functions);
    return 1;
}
