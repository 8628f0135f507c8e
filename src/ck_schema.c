/*
 * ck_schema.c - the key schema and the endpoint table (see ck_schema.h), and
 * their export to Lua: core.fields, core.limits, core.status_names,
 * core.create_defaults, core.echo_defaults and core.endpoints.
 */
#include <string.h>

#include "ck_schema.h"
#include "ck_util.h"

/* Wire order. Defaults: see ck_field_def (create vs echo). */
const ck_field_def ck_fields[CK_FIELD_COUNT] = {
    [CK_F_NAME] = {.name = "name", .kind = CK_K_STRING},
    [CK_F_EXPIRED_TIME] = {.name = "expired_time",
                           .kind = CK_K_EXPIRY,
                           .create_integer = -1, /* create: never expires */
                           .echo_integer = 0},   /* echo: the zero value the server stored */
    [CK_F_REMAIN_QUOTA] = {.name = "remain_quota", .kind = CK_K_QUOTA},
    [CK_F_UNLIMITED_QUOTA] = {.name = "unlimited_quota", .kind = CK_K_BOOLEAN},
    [CK_F_MODEL_LIMITS_ENABLED] = {.name = "model_limits_enabled", .kind = CK_K_BOOLEAN},
    [CK_F_MODEL_LIMITS] = {.name = "model_limits", .kind = CK_K_STRING},
    [CK_F_ALLOW_IPS] = {.name = "allow_ips", .kind = CK_K_STRING, .echo_null = 1},
    [CK_F_GROUP] = {.name = "group", .kind = CK_K_STRING},
    [CK_F_CROSS_GROUP_RETRY] = {.name = "cross_group_retry", .kind = CK_K_BOOLEAN},
};

const char *const ck_status_names[CK_STATUS_COUNT] = {"enabled", "disabled", "expired",
                                                      "exhausted"};

#define TOKEN "/api/token/"

/* One row per operation. Adding an endpoint: a row here, a client method, specs. */
const ck_endpoint ck_endpoints[] = {
    {.name = "get",
     .method = "GET",
     .path = TOKEN "{id}",
     .id = 1,
     .idempotent = 1,
     .result = CK_RESULT_RECORD},
    {.name = "list",
     .method = "GET",
     .path = TOKEN,
     .paging = 1,
     .idempotent = 1,
     .result = CK_RESULT_PAGE},
    {.name = "search",
     .method = "GET",
     .path = TOKEN "search",
     .paging = 1,
     .filters = 1,
     .idempotent = 1,
     .result = CK_RESULT_PAGE,
     .bare_array = 1},
    {.name = "create",
     .method = "POST",
     .path = TOKEN,
     .body = CK_BODY_CREATE,
     .idempotent = 0, /* sent twice, it creates two keys */
     .result = CK_RESULT_TRUE},
    {.name = "update",
     .method = "PUT",
     .path = TOKEN,
     .body = CK_BODY_UPDATE,
     .idempotent = 1,
     .result = CK_RESULT_RECORD},
    {.name = "status",
     .method = "PUT",
     .path = TOKEN,
     .query = "status_only=1",
     .id = 1,
     .body = CK_BODY_STATUS,
     .idempotent = 1,
     .result = CK_RESULT_TRUE,
     .record_if_given = 1},
    {.name = "delete",
     .method = "DELETE",
     .path = TOKEN "{id}",
     .id = 1,
     .idempotent = 1,
     .result = CK_RESULT_TRUE},
    {.name = "reveal",
     .method = "POST",
     .path = TOKEN "{id}/key",
     .id = 1,
     .idempotent = 1, /* a read-only POST */
     .result = CK_RESULT_STRING,
     .result_field = "key",
     .secret = 1},
    {.name = "reveal_many",
     .method = "POST",
     .path = TOKEN "batch/keys",
     .body = CK_BODY_IDS,
     .idempotent = 1, /* a read-only POST */
     .result = CK_RESULT_MAP,
     .result_field = "keys",
     .secret = 1},
    {.name = "delete_many",
     .method = "POST",
     .path = TOKEN "batch",
     .body = CK_BODY_IDS,
     .idempotent = 0, /* a second send would count 0 deleted: the first count is lost */
     .result = CK_RESULT_COUNT},
    {.name = "settings",
     .method = "GET",
     .path = "/api/status",
     .idempotent = 1,
     .result = CK_RESULT_SETTINGS},
};

const size_t ck_endpoint_count = sizeof ck_endpoints / sizeof ck_endpoints[0];

const ck_endpoint *ck_endpoint_find(const char *name, size_t len)
{
    size_t i;
    for (i = 0; i < ck_endpoint_count; i++)
        if (strlen(ck_endpoints[i].name) == len && memcmp(ck_endpoints[i].name, name, len) == 0)
            return &ck_endpoints[i];
    return NULL;
}

const ck_endpoint *ck_endpoint_check(lua_State *L, int arg)
{
    size_t len;
    const char *name = luaL_checklstring(L, arg, &len);
    const ck_endpoint *ep = ck_endpoint_find(name, len);
    if (ep == NULL)
        luaL_argerror(L, arg, lua_pushfstring(L, "invalid operation '%s'", name));
    return ep;
}

const char *ck_result_name(enum ck_result r)
{
    switch (r) {
    case CK_RESULT_RECORD:
        return "record";
    case CK_RESULT_PAGE:
        return "page";
    case CK_RESULT_TRUE:
        return "true";
    case CK_RESULT_STRING:
        return "string";
    case CK_RESULT_COUNT:
        return "count";
    case CK_RESULT_MAP:
        return "map";
    case CK_RESULT_SETTINGS:
        return "settings";
    }
    return "?"; /* not reached: every shape is a case above */
}

static const char *field_type_name(enum ck_field_kind k)
{
    switch (k) {
    case CK_K_STRING:
        return "string";
    case CK_K_BOOLEAN:
        return "boolean";
    case CK_K_EXPIRY:
        return "expiry";
    case CK_K_QUOTA:
        return "quota";
    }
    return "?"; /* not reached: every kind is a case above */
}

static void set_bool(lua_State *L, const char *key, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, key);
}

static void set_number(lua_State *L, const char *key, long long v)
{
    ck_pushinteger64(L, v); /* every limit here is below 2^53 */
    lua_setfield(L, -2, key);
}

/* Pushes field f's default: what create means by "not given", or (echo) the zero value a
 * full PUT writes back for a field the stored record lacks. */
void ck_push_default(lua_State *L, const ck_field_def *f, int echo)
{
    switch (f->kind) {
    case CK_K_STRING:
        if (echo && f->echo_null)
            lua_pushlightuserdata(L, NULL);
        else
            lua_pushliteral(L, "");
        break;
    case CK_K_BOOLEAN:
        lua_pushboolean(L, 0);
        break;
    case CK_K_EXPIRY:
    case CK_K_QUOTA:
        ck_pushinteger64(L, echo ? f->echo_integer : f->create_integer);
        break;
    }
}

static void push_defaults(lua_State *L, int echo)
{
    size_t i;
    lua_createtable(L, 0, CK_FIELD_COUNT);
    for (i = 0; i < CK_FIELD_COUNT; i++) {
        const ck_field_def *f = &ck_fields[i];
        ck_push_default(L, f, echo);
        lua_setfield(L, -2, f->name);
    }
}

void ck_schema_open(lua_State *L)
{
    size_t i;

    lua_createtable(L, CK_FIELD_COUNT, 0);
    for (i = 0; i < CK_FIELD_COUNT; i++) {
        lua_pushstring(L, ck_fields[i].name);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "fields");

    lua_createtable(L, 0, CK_FIELD_COUNT);
    for (i = 0; i < CK_FIELD_COUNT; i++) {
        lua_pushstring(L, field_type_name(ck_fields[i].kind));
        lua_setfield(L, -2, ck_fields[i].name);
    }
    lua_setfield(L, -2, "field_types");

    lua_createtable(L, 0, 7);
    set_number(L, "name_bytes", CK_NAME_MAX_BYTES);
    set_number(L, "quota_max", CK_QUOTA_MAX);
    set_number(L, "status_min", CK_STATUS_MIN);
    set_number(L, "status_max", CK_STATUS_MAX);
    set_number(L, "page_size_max", CK_PAGE_SIZE_MAX);
    set_number(L, "batch_max", CK_BATCH_MAX);
    set_number(L, "text_max", CK_TEXT_MAX);
    lua_setfield(L, -2, "limits");

    lua_createtable(L, CK_STATUS_COUNT, 0);
    for (i = 0; i < CK_STATUS_COUNT; i++) {
        lua_pushstring(L, ck_status_names[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "status_names");

    push_defaults(L, 0);
    lua_setfield(L, -2, "create_defaults");
    push_defaults(L, 1);
    lua_setfield(L, -2, "echo_defaults");

    lua_createtable(L, 0, (int)ck_endpoint_count);
    for (i = 0; i < ck_endpoint_count; i++) {
        const ck_endpoint *ep = &ck_endpoints[i];
        lua_createtable(L, 0, 10);
        lua_pushstring(L, ep->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, ep->method);
        lua_setfield(L, -2, "method");
        lua_pushstring(L, ep->path);
        lua_setfield(L, -2, "path");
        if (ep->query != NULL) {
            lua_pushstring(L, ep->query);
            lua_setfield(L, -2, "query");
        }
        set_bool(L, "id", ep->id);
        set_bool(L, "body", ep->body != CK_BODY_NONE);
        set_bool(L, "ids", ep->body == CK_BODY_IDS);
        set_bool(L, "paging", ep->paging);
        set_bool(L, "filters", ep->filters);
        set_bool(L, "idempotent", ep->idempotent);
        set_bool(L, "secret", ep->secret);
        lua_pushstring(L, ck_result_name(ep->result));
        lua_setfield(L, -2, "result");
        lua_setfield(L, -2, ep->name);
    }
    lua_setfield(L, -2, "endpoints");
}
