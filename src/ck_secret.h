/*
 * ck_secret.h - the access token held in C memory. A "cometkey.secret"
 * userdata owns a malloc'd copy that is wiped and freed on close/__gc; its
 * __tostring never shows the value. cometkey.curl reads it through
 * ck_secret_check so the token never needs to be a Lua string again.
 */
#ifndef CK_SECRET_H
#define CK_SECRET_H

#include <stddef.h>
#include "ck_compat.h"

#define CK_SECRET_MT "cometkey.secret"

typedef struct ck_secret {
    char *value; /* NUL-terminated, malloc'd; NULL once wiped */
    size_t len;
} ck_secret;

/* Returns the secret at idx or raises a type error (holds no memory then). */
ck_secret *ck_secret_check(lua_State *L, int idx);

/* Overwrites n bytes at p through a volatile pointer (the compiler cannot drop it). */
void ck_wipe(char *p, size_t n);

/* Overwrites and frees the value; idempotent. */
void ck_secret_wipe(ck_secret *s);

/* Registers the metatable (shared by both C modules; first one wins). */
void ck_secret_register(lua_State *L);

/* Adds secret(token) to the module table at the top of the stack. */
void ck_secret_open(lua_State *L);

#endif /* CK_SECRET_H */
