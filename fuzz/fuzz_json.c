/*
 * fuzz_json.c - libFuzzer target for the wire JSON codec (src/ck_json.c).
 * Each input is decoded in both null modes; a failure must come with a
 * one-line "JSON ..." message. A decoded value must re-encode, decode again
 * and re-encode to the same text (the codec is a fixed point after one pass).
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I/usr/include/lua5.4
 *        -Isrc src/ck_json.c src/ck_utf8.c fuzz/fuzz_json.c -llua5.4 -ljansson -o
 * build/fuzz/fuzz_json
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "ck_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_input {
    const char *data;
    size_t size;
} fuzz_input;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s: %s\n", what, detail);
    abort();
}

static void check_message(const char *err)
{
    const unsigned char *p;

    if (strncmp(err, "JSON ", 5) != 0)
        fail("message does not start with \"JSON \"", err);
    for (p = (const unsigned char *)err; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7F)
            fail("message is not one printable line", err);
}

/* Encodes the value on top of the stack, pushing the text; aborts on failure. */
static const char *encode_top(lua_State *L, size_t *len, const char *stage)
{
    char err[CK_ERRLEN];

    if (!ck_json_encode(L, -1, err, sizeof err))
        fail(stage, err);
    return lua_tolstring(L, -1, len);
}

static void round_trip(lua_State *L, const fuzz_input *in, int flags)
{
    char err[CK_ERRLEN];
    const char *first, *second;
    size_t first_len, second_len;
    int base = lua_gettop(L);

    if (!ck_json_decode(L, in->data, in->size, flags, err, sizeof err)) {
        check_message(err);
        if (lua_gettop(L) != base)
            fail("failed decode left values on the stack", err);
        return;
    }
    first = encode_top(L, &first_len, "encoding a decoded value failed");
    if (!ck_json_decode(L, first, first_len, flags, err, sizeof err))
        fail("decoding our own output failed", err);
    second = encode_top(L, &second_len, "re-encoding failed");
    if (first_len != second_len || memcmp(first, second, first_len) != 0)
        fail("second encode differs from the first", first);
    if (lua_gettop(L) != base + 4)
        fail("unbalanced stack", first);
    lua_settop(L, base);
}

static int run(lua_State *L)
{
    const fuzz_input *in = (const fuzz_input *)lua_touserdata(L, 1);

    round_trip(L, in, 0);
    round_trip(L, in, CK_JSON_NULL_AS_NIL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in;
    lua_State *L = luaL_newstate();

    if (L == NULL)
        return 0;
    in.data = (const char *)data;
    in.size = size;
    lua_pushcfunction(L, run);
    lua_pushlightuserdata(L, &in);
    if (lua_pcall(L, 1, 0, 0) != 0)
        fail("Lua error", lua_tostring(L, -1));
    lua_close(L);
    return 0;
}
