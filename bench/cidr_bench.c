/*
 * bench/cidr_bench.c - times cometkey's allowlist matcher in C, linked straight
 * against src/ck_cidr.c (no Lua), and measures its memory with mallinfo2().
 *
 *   cidr_bench ENTRIES V4_ADDRS V6_ADDRS   one entry / address per line
 *   cidr_bench ENTRIES                     compile and memory only
 *
 * Prints `key=value` lines:
 *   what=compile n= count= parse_ns= build_ns= compile_ns= (per entry)
 *   what=memory n= count= bytes= bytes_per_range=     (heap held by the matcher)
 *   what=contains form=bytes4|bytes16|text4|text6|addr4|addr6 ns= hits=   (per lookup)
 * Each lookup timing repeats its loop until it has run for at least 0.2 s of CPU
 * time, then runs the same work twice more and keeps the fastest of the three;
 * compile keeps its fastest run (at least 3 runs and 0.2 s).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ck_cidr.h"

#define MIN_SECONDS 0.2
#define REPEATS 3 /* each timing is run this many times; the fastest counts */
#define MAX_LINE 256

typedef struct lines {
    char **s;
    size_t *len;
    size_t n;
} lines;

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "cidr_bench: %s\n", what);
    exit(1);
}

static lines read_lines(const char *path)
{
    lines l = {NULL, NULL, 0};
    size_t cap = 0;
    char buf[MAX_LINE];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die("cannot open an input file");
    while (fgets(buf, sizeof buf, f) != NULL) {
        size_t len = strcspn(buf, "\r\n");
        if (len == 0)
            continue;
        if (l.n == cap) {
            cap = cap ? cap * 2 : 1024;
            l.s = (char **)realloc(l.s, cap * sizeof *l.s);
            l.len = (size_t *)realloc(l.len, cap * sizeof *l.len);
            if (l.s == NULL || l.len == NULL)
                die("out of memory");
        }
        l.s[l.n] = (char *)malloc(len + 1);
        if (l.s[l.n] == NULL)
            die("out of memory");
        memcpy(l.s[l.n], buf, len);
        l.s[l.n][len] = '\0';
        l.len[l.n] = len;
        l.n++;
    }
    fclose(f);
    return l;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static ck_entry *parse_all(const lines *l)
{
    ck_entry *e = (ck_entry *)malloc((l->n ? l->n : 1) * sizeof *e);
    size_t i;
    if (e == NULL)
        die("out of memory");
    for (i = 0; i < l->n; i++)
        if (ck_entry_parse(l->s[i], l->len[i], &e[i]) != CK_CIDR_OK)
            die("an entry does not parse");
    return e;
}

static void bench_compile(const lines *l)
{
    double t0, t1, parse = 0, build = 0, spent = 0;
    long reps = 0;
    size_t count = 0, before, bytes;
    ck_matcher *m;
    ck_entry *e;
    do {
        double p, b;
        t0 = cpu_seconds();
        e = parse_all(l);
        t1 = cpu_seconds();
        m = ck_matcher_new(e, l->n);
        b = cpu_seconds() - t1;
        p = t1 - t0;
        if (m == NULL)
            die("out of memory");
        count = ck_matcher_count(m);
        ck_matcher_free(m);
        free(e);
        reps++;
        if (reps == 1 || p + b < parse + build) { /* the fastest compile counts */
            parse = p;
            build = b;
        }
        spent += p + b;
    } while (spent < MIN_SECONDS || reps < REPEATS);
    printf("what=compile n=%zu count=%zu parse_ns=%.2f build_ns=%.2f compile_ns=%.2f\n", l->n,
           count, parse * 1e9 / (double)l->n, build * 1e9 / (double)l->n,
           (parse + build) * 1e9 / (double)l->n);

    e = parse_all(l);
    before = heap_in_use();
    m = ck_matcher_new(e, l->n);
    if (m == NULL)
        die("out of memory");
    bytes = heap_in_use() - before;
    printf("what=memory n=%zu count=%zu bytes=%zu bytes_per_range=%.2f\n", l->n,
           ck_matcher_count(m), bytes, count ? (double)bytes / (double)count : 0.0);
    ck_matcher_free(m);
    free(e);
}

typedef int (*lookup_fn)(const ck_matcher *m, const void *p, size_t len);

static int by_text(const ck_matcher *m, const void *p, size_t len)
{
    return ck_matcher_contains_text(m, (const char *)p, len);
}

static int by_bytes(const ck_matcher *m, const void *p, size_t len)
{
    return ck_matcher_contains_bytes(m, p, len);
}

static int by_addr(const ck_matcher *m, const void *p, size_t len)
{
    (void)len;
    return ck_matcher_contains(m, (const ck_addr *)p);
}

/* Times fn over n inputs of size stride (or the lengths in lens), cycling. */
static void bench_lookup(const ck_matcher *m, const char *form, lookup_fn fn, const char *inputs,
                         size_t stride, const size_t *lens, size_t n)
{
    volatile long sink = 0;
    long hits = 0, reps = 0;
    double t0 = cpu_seconds(), t;
    size_t i;
    int k;
    if (n == 0)
        return;
    for (i = 0; i < n; i++)
        hits += fn(m, inputs + i * stride, lens ? lens[i] : stride);
    do {
        long s = 0;
        for (i = 0; i < n; i++)
            s += fn(m, inputs + i * stride, lens ? lens[i] : stride);
        sink += s;
        reps++;
        t = cpu_seconds() - t0;
    } while (t < MIN_SECONDS);
    for (k = 1; k < REPEATS; k++) { /* the same work again; keep the fastest */
        double t1 = cpu_seconds(), tk;
        long r;
        for (r = 0; r < reps; r++)
            for (i = 0; i < n; i++)
                sink += fn(m, inputs + i * stride, lens ? lens[i] : stride);
        tk = cpu_seconds() - t1;
        if (tk < t)
            t = tk;
    }
    (void)sink;
    printf("what=contains form=%s ns=%.2f hits=%ld lookups=%zu\n", form,
           t * 1e9 / (double)reps / (double)n, hits, n);
}

/* Text, binary and pre-parsed forms of one address file, all timed. */
static void bench_family(const ck_matcher *m, const lines *l, int v6)
{
    size_t n = l->n, i, textw = 64;
    char *text = (char *)calloc(n ? n : 1, textw);
    size_t *lens = (size_t *)calloc(n ? n : 1, sizeof *lens);
    unsigned char *bin = (unsigned char *)calloc(n ? n : 1, 16);
    ck_addr *addr = (ck_addr *)calloc(n ? n : 1, sizeof *addr);
    size_t width = v6 ? 16 : 4;
    if (text == NULL || lens == NULL || bin == NULL || addr == NULL)
        die("out of memory");
    for (i = 0; i < n; i++) {
        if (l->len[i] >= textw || !ck_addr_parse(l->s[i], l->len[i], &addr[i]))
            die("an address does not parse");
        memcpy(text + i * textw, l->s[i], l->len[i]);
        lens[i] = l->len[i];
        memcpy(bin + i * width, v6 ? addr[i].b : addr[i].b + 12, width);
    }
    bench_lookup(m, v6 ? "bytes16" : "bytes4", by_bytes, (const char *)bin, width, NULL, n);
    bench_lookup(m, v6 ? "text6" : "text4", by_text, text, textw, lens, n);
    bench_lookup(m, v6 ? "addr6" : "addr4", by_addr, (const char *)addr, sizeof *addr, NULL, n);
    free(text);
    free(lens);
    free(bin);
    free(addr);
}

int main(int argc, char **argv)
{
    lines entries, v4, v6;
    ck_entry *e;
    ck_matcher *m;
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: %s ENTRIES [V4_ADDRS V6_ADDRS]\n", argv[0]);
        return 2;
    }
    entries = read_lines(argv[1]);
    bench_compile(&entries);
    if (argc == 2)
        return 0;
    e = parse_all(&entries);
    m = ck_matcher_new(e, entries.n);
    if (m == NULL)
        die("out of memory");
    v4 = read_lines(argv[2]);
    v6 = read_lines(argv[3]);
    bench_family(m, &v4, 0);
    bench_family(m, &v6, 1);
    ck_matcher_free(m);
    free(e);
    return 0;
}
