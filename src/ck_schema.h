/*
 * ck_schema.h - the facts about the server's API, defined once (ck_schema.c)
 * and read by the validator, the codec and, through core.endpoints,
 * core.fields, core.limits, core.status_names and core.create_defaults, by
 * the Lua modules: the key's editable fields in wire order, their limits,
 * the status names, and one row per API operation. Internal to cometkey.core
 * (hidden symbols, ck_ prefix).
 */
#ifndef CK_SCHEMA_H
#define CK_SCHEMA_H

#include <stddef.h>
#include "ck_core.h"

/* ------------------------------------------------------------ limits */

#define CK_NAME_MAX_BYTES 50           /* the server compares len(name), in bytes */
#define CK_QUOTA_MAX 500000000000000LL /* 1e9 x QuotaPerUnit (500 000) */
#define CK_STATUS_MIN 1                /* enabled */
#define CK_STATUS_MAX 4                /* exhausted */
#define CK_PAGE_SIZE_MAX 100           /* the server caps list and search pages */
#define CK_BATCH_MAX 100               /* ids per batch request (reveal_many, delete_many) */
#define CK_ID_MAX 0x7FFFFFFFFFFFFFFFLL /* ids are the server's int64 */
#define CK_TEXT_MAX 200                /* server text in messages, in bytes, "..." included */

/* ------------------------------------------------------------ the key */

/* The nine fields a full update writes (and create sends), in wire order. */
enum ck_field {
    CK_F_NAME,
    CK_F_EXPIRED_TIME,
    CK_F_REMAIN_QUOTA,
    CK_F_UNLIMITED_QUOTA,
    CK_F_MODEL_LIMITS_ENABLED,
    CK_F_MODEL_LIMITS,
    CK_F_ALLOW_IPS,
    CK_F_GROUP,
    CK_F_CROSS_GROUP_RETRY,
    CK_FIELD_COUNT
};

enum ck_field_kind { CK_K_STRING, CK_K_BOOLEAN, CK_K_EXPIRY, CK_K_QUOTA };

typedef struct ck_field_def {
    const char *name;
    enum ck_field_kind kind;
    /*
     * Two defaults, on purpose different:
     * create_* is what create sends for a field the caller did not give: the
     * server's meaning of "not given" on a new key (expired_time -1: never
     * expires). echo_* is what an update writes back for a field the stored
     * record lacks: the Go zero value the server itself stored (expired_time
     * 0), so a full PUT leaves the key exactly as it was; allow_ips (a Go
     * *string) echoes a stored NULL as null (echo_null).
     */
    long long create_integer; /* CK_K_EXPIRY, CK_K_QUOTA */
    long long echo_integer;   /* CK_K_EXPIRY, CK_K_QUOTA */
    int echo_null;
} ck_field_def;

extern const ck_field_def ck_fields[CK_FIELD_COUNT];

#define CK_STATUS_COUNT 4
extern const char *const ck_status_names[CK_STATUS_COUNT]; /* status 1..4 */

/* ------------------------------------------------------------ the operations */

/* What a request carries as its JSON body. */
enum ck_body {
    CK_BODY_NONE,
    CK_BODY_CREATE, /* the nine editable fields, create defaults for absent ones */
    CK_BODY_UPDATE, /* id, optional status and all nine editable fields (a full replace) */
    CK_BODY_STATUS, /* id and status */
    CK_BODY_IDS     /* {"ids": [...]}, 1..CK_BATCH_MAX ids */
};

/* What a successful answer maps to. Switches over it have no default:. */
enum ck_result {
    CK_RESULT_RECORD,  /* data: a key record */
    CK_RESULT_PAGE,    /* data: {items, total, page, page_size} */
    CK_RESULT_TRUE,    /* true (status: data when it is a record) */
    CK_RESULT_STRING,  /* data.<field>: a string */
    CK_RESULT_COUNT,   /* data: a non-negative integer */
    CK_RESULT_MAP,     /* data.<field>: {"<id>": "<string>"} -> { [id] = string } */
    CK_RESULT_SETTINGS /* data: an object, as a table */
};

typedef struct ck_endpoint {
    const char *name;
    const char *method;
    const char *path;  /* template: "{id}" stands for args.id */
    const char *query; /* a fixed query string, or NULL */
    int id;            /* takes args.id (in the path or the body) */
    enum ck_body body;
    int paging;     /* takes args.page and args.page_size (query p, page_size) */
    int filters;    /* takes args.keyword and args.token (query) */
    int idempotent; /* may be sent again after it was sent (retries) */
    enum ck_result result;
    const char *result_field; /* CK_RESULT_STRING, CK_RESULT_MAP: the field of data */
    int record_if_given;      /* CK_RESULT_TRUE: data when it is a record */
    int bare_array;           /* CK_RESULT_PAGE: older builds answer a bare array */
    int secret;               /* the answer holds full keys: never in a message */
} ck_endpoint;

extern const ck_endpoint ck_endpoints[];
extern const size_t ck_endpoint_count;

/* The row named name (len bytes), or NULL. */
const ck_endpoint *ck_endpoint_find(const char *name, size_t len);

/* The row named by the string at arg; raises "invalid operation" otherwise. */
const ck_endpoint *ck_endpoint_check(lua_State *L, int arg);

/* Lua name of a result shape: "record", "page", ... */
const char *ck_result_name(enum ck_result r);

/* Pushes field f's default: create's "not given" (echo = 0) or the echo zero value (echo = 1). */
void ck_push_default(lua_State *L, const ck_field_def *f, int echo);

#endif /* CK_SCHEMA_H */
