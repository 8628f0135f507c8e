/*
 * fuzz_allowlist.c - libFuzzer target for src/ck_cidr.c. The input is read as an
 * allowlist string; every valid entry is normalised, reparsed (must be a fixed
 * point), and the original and normalised lists are compiled and asked about
 * derived addresses and raw slices of the input, against the slow per-entry
 * Go reference. Any disagreement aborts.
 *
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc src/ck_cidr.c \
 *       fuzz/fuzz_allowlist.c -o build/fuzz/fuzz_allowlist
 * build/fuzz/fuzz_allowlist -max_total_time=60 fuzz/corpus/allowlist
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ck_cidr.h"

#define MAX_ENTRIES 512
#define MAX_DERIVED 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond)
{
    if (!cond)
        abort();
}

/* Go's answer: any entry admits the client; an empty list admits everything. */
static int reference(const ck_entry *e, size_t n, const ck_addr *a)
{
    size_t i;
    if (n == 0)
        return 1;
    for (i = 0; i < n; i++)
        if (ck_entry_contains(&e[i], a))
            return 1;
    return 0;
}

/* Every way of asking both matchers about a must give the reference answer. */
static void ask(const ck_matcher *m1, const ck_matcher *m2, const ck_entry *e, size_t n,
                const ck_addr *a)
{
    char text[CK_ENTRY_TEXT_MAX];
    ck_addr back;
    size_t len;
    int want = reference(e, n, a);

    expect(ck_matcher_contains(m1, a) == want);
    expect(ck_matcher_contains(m2, a) == want);
    expect(ck_matcher_contains_bytes(m1, a->b, 16) == want);
    if (memcmp(a->b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
        expect(ck_matcher_contains_bytes(m1, a->b + 12, 4) == want);
    len = ck_addr_format(a, text, sizeof text);
    expect(len < CK_ENTRY_TEXT_MAX);
    expect(ck_addr_parse(text, len, &back) && memcmp(back.b, a->b, 16) == 0);
    expect(ck_matcher_contains_text(m1, text, len) == want);
    expect(ck_matcher_contains_text(m2, text, len) == want);
}

static void step(uint8_t *b, int delta) /* 128-bit +1 / -1 */
{
    int i;
    for (i = 15; i >= 0; i--) {
        if (delta > 0 ? ++b[i] != 0 : b[i]-- != 0)
            break;
    }
}

/* Addresses at and around the edges of entry x, in both address forms. */
static void ask_around(const ck_matcher *m1, const ck_matcher *m2, const ck_entry *e, size_t n,
                       const ck_entry *x)
{
    unsigned host_from = x->kind == CK_ENTRY_NET4   ? 96u + x->prefix
                         : x->kind == CK_ENTRY_NET6 ? x->prefix
                                                    : 128u;
    ck_addr first, last, a;
    unsigned bit;
    int flip;

    memcpy(first.b, x->addr, 16);
    last = first;
    for (bit = host_from; bit < 128; bit++)
        last.b[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
    for (flip = 0; flip < 2; flip++) {
        ck_addr *edge[2];
        int k;
        edge[0] = &first;
        edge[1] = &last;
        for (k = 0; k < 2; k++) {
            a = *edge[k];
            if (flip) /* IPv4-mapped <-> IPv4-compatible / plain IPv6 */
                a.b[10] = a.b[11] = (uint8_t)(a.b[10] == 0xff ? 0 : 0xff);
            ask(m1, m2, e, n, &a);
            step(a.b, -1);
            ask(m1, m2, e, n, &a);
            step(a.b, +1);
            step(a.b, +1);
            ask(m1, m2, e, n, &a);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ck_entry e[MAX_ENTRIES], norm[MAX_ENTRIES];
    const char *s = (const char *)data;
    size_t n = 0, kept, pos = 0, start, len, i, j;
    ck_matcher *m1, *m2;
    ck_addr a;

    /* 1. parse every piece; a piece is a client address exactly when it is a plain entry */
    while (n < MAX_ENTRIES && ck_list_next(s, size, &pos, &start, &len)) {
        ck_entry x;
        char quoted[CK_QUOTE_MAX];
        int code = ck_entry_parse(s + start, len, &x), ok;
        expect(ck_cidr_strerror(code) != NULL);
        expect(ck_cidr_quote(s + start, len, quoted, sizeof quoted) < CK_QUOTE_MAX);
        ok = ck_addr_parse(s + start, len, &a);
        expect(ok == (code == CK_CIDR_OK && x.kind == CK_ENTRY_IP));
        if (code != CK_CIDR_OK)
            continue;
        expect(x.kind >= CK_ENTRY_IP && x.kind <= CK_ENTRY_NET6);
        expect(x.prefix <= (x.kind == CK_ENTRY_NET4 ? 32 : 128));
        if (ok)
            expect(memcmp(a.b, x.addr, 16) == 0);
        e[n++] = x;
    }

    /* 2. normalise: de-duplicate, then format and reparse must be a fixed point */
    memcpy(norm, e, n * sizeof *e);
    kept = ck_entries_dedup(norm, n);
    if (kept == (size_t)-1)
        return 0;
    expect(kept <= n && (n == 0 || kept > 0));
    for (i = 0; i < kept; i++) {
        char text[CK_ENTRY_TEXT_MAX], again[CK_ENTRY_TEXT_MAX];
        ck_entry re;
        size_t tlen = ck_entry_format(&norm[i], text, sizeof text);
        expect(tlen < CK_ENTRY_TEXT_MAX && strlen(text) == tlen);
        expect(ck_entry_parse(text, tlen, &re) == CK_CIDR_OK);
        expect(memcmp(&re, &norm[i], sizeof re) == 0);
        expect(ck_entry_format(&re, again, sizeof again) == tlen && memcmp(text, again, tlen) == 0);
        for (j = 0; j < tlen; j++)
            expect(!ck_list_is_separator((unsigned char)text[j]));
        for (j = 0; j < i; j++)
            expect(memcmp(&norm[j], &norm[i], sizeof *norm) != 0);
    }
    for (i = 0; i < n; i++) { /* every original entry survives, once */
        for (j = 0; j < kept; j++)
            if (memcmp(&e[i], &norm[j], sizeof *e) == 0)
                break;
        expect(j < kept);
    }

    /* 3. both lists must admit exactly the same clients */
    m1 = ck_matcher_new(e, n);
    m2 = ck_matcher_new(norm, kept);
    if (m1 == NULL || m2 == NULL) {
        ck_matcher_free(m1);
        ck_matcher_free(m2);
        return 0;
    }
    expect(ck_matcher_count(m1) == ck_matcher_count(m2));
    expect((n == 0) == (ck_matcher_count(m1) == 0));
    for (i = 0; i < n && i < MAX_DERIVED; i++)
        ask_around(m1, m2, e, n, &e[i]);

    /* 4. the raw input and its slices as text and as binary addresses */
    for (i = 0; i <= size && i <= 48; i += 4) {
        size_t tlen = size - i;
        int want = ck_addr_parse(s + i, tlen, &a) ? reference(e, n, &a) : n == 0;
        expect(ck_matcher_contains_text(m1, s + i, tlen) == want);
        expect(ck_matcher_contains_text(m2, s + i, tlen) == want);
        if (tlen >= 4) {
            ck_addr_from_bytes(s + i, 4, &a);
            expect(ck_matcher_contains_bytes(m1, s + i, 4) == reference(e, n, &a));
        }
        if (tlen >= 16) {
            ck_addr_from_bytes(s + i, 16, &a);
            expect(ck_matcher_contains_bytes(m1, s + i, 16) == reference(e, n, &a));
            expect(ck_matcher_contains_bytes(m2, s + i, 16) == reference(norm, kept, &a));
        }
        expect(ck_matcher_contains_bytes(m1, s + i, tlen < 3 ? tlen : 3) == (n == 0));
    }
    ck_matcher_free(m1);
    ck_matcher_free(m2);
    return 0;
}
